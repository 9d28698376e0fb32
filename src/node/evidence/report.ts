import { percentile } from '../../core/stats.ts';
import { OUTCOMES, REASONS } from '../store/Store.ts';
import type { CaseRow } from './caseRows.ts';

/**
 * What the cases of a period say (`returncam report`): handling times, reasons and outcomes,
 * which SKUs and warehouses come back most and are refunded most, and how often one call was
 * enough. Pure: computed from case rows.
 */

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p95: number;
  max: number;
}

export interface RankRow {
  key: string;
  cases: number;
  decided: number;
  /** Refunds and partial refunds. */
  refunds: number;
  /** refunds / decided; null when nothing is decided. */
  refundRate: number | null;
}

export interface CaseReport {
  version: 1;
  generatedAt: string;
  filter: { since: string | null; until: string | null; warehouse: string | null };
  cases: number;
  decided: number;
  /** Seconds. */
  handling: {
    createdToDecided: Percentiles | null;
    joinedToDecided: Percentiles | null;
    createdToJoined: Percentiles | null;
  };
  /** Cases per return reason, split by outcome ('undecided' for none yet). */
  byReason: { reason: string; cases: number; outcomes: Record<string, number> }[];
  byOutcome: { outcome: string; cases: number }[];
  skusByCount: RankRow[];
  skusByRefundRate: RankRow[];
  warehousesByCount: RankRow[];
  warehousesByRefundRate: RankRow[];
  firstCall: {
    /** Decided cases that had at least one buyer call before the decision. */
    decidedWithCall: number;
    onFirstCall: number;
    /** onFirstCall / decidedWithCall; null when there is none. */
    share: number | null;
    decidedWithoutCall: number;
  };
  video: { minutes: number; snapshots: number; messages: number; reconnects: number };
}

export const UNDECIDED = 'undecided';
const REFUND_OUTCOMES = new Set(['refund', 'partial_refund']);

export function percentiles(values: readonly (number | null)[]): Percentiles | null {
  const sorted = values
    .filter((v): v is number => v !== null && Number.isFinite(v))
    .sort((a, b) => a - b);
  if (!sorted.length) return null;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p95: percentile(sorted, 95),
    max: sorted[sorted.length - 1]!,
  };
}

function rank(rows: readonly CaseRow[], keyOf: (r: CaseRow) => string): RankRow[] {
  const map = new Map<string, RankRow>();
  for (const r of rows) {
    const key = keyOf(r);
    let row = map.get(key);
    if (!row) {
      row = { key, cases: 0, decided: 0, refunds: 0, refundRate: null };
      map.set(key, row);
    }
    row.cases++;
    if (r.outcome) {
      row.decided++;
      if (REFUND_OUTCOMES.has(r.outcome)) row.refunds++;
    }
  }
  for (const row of map.values()) row.refundRate = row.decided ? row.refunds / row.decided : null;
  return [...map.values()];
}

const byCount = (a: RankRow, b: RankRow) => b.cases - a.cases || a.key.localeCompare(b.key);
const byRate = (a: RankRow, b: RankRow) =>
  (b.refundRate ?? -1) - (a.refundRate ?? -1) ||
  b.decided - a.decided ||
  a.key.localeCompare(b.key);

export function buildReport(
  rows: readonly CaseRow[],
  filter: { since?: number; until?: number; warehouse?: string },
  now = Date.now(),
): CaseReport {
  const decided = rows.filter((r) => r.outcome !== null);
  const byReason = REASONS.map((reason) => {
    const outcomes: Record<string, number> = {};
    const of = rows.filter((r) => r.reason === reason);
    for (const r of of) {
      const k = r.outcome ?? UNDECIDED;
      outcomes[k] = (outcomes[k] ?? 0) + 1;
    }
    return { reason, cases: of.length, outcomes };
  }).filter((r) => r.cases > 0);
  const byOutcome = [...OUTCOMES, UNDECIDED]
    .map((outcome) => ({
      outcome,
      cases: rows.filter((r) => (r.outcome ?? UNDECIDED) === outcome).length,
    }))
    .filter((o) => o.cases > 0);
  const skus = rank(rows, (r) => r.sku);
  const warehouses = rank(rows, (r) => r.warehouse_id ?? '(none)');
  const withCall = decided.filter((r) => r.decided_on_first_call !== null);
  const onFirst = withCall.filter((r) => r.decided_on_first_call === true).length;
  return {
    version: 1,
    generatedAt: new Date(now).toISOString(),
    filter: {
      since: filter.since !== undefined ? new Date(filter.since).toISOString() : null,
      until: filter.until !== undefined ? new Date(filter.until).toISOString() : null,
      warehouse: filter.warehouse ?? null,
    },
    cases: rows.length,
    decided: decided.length,
    handling: {
      createdToDecided: percentiles(rows.map((r) => r.created_to_decided_s)),
      joinedToDecided: percentiles(rows.map((r) => r.joined_to_decided_s)),
      createdToJoined: percentiles(rows.map((r) => r.created_to_joined_s)),
    },
    byReason,
    byOutcome,
    skusByCount: [...skus].sort(byCount),
    skusByRefundRate: skus.filter((s) => s.decided > 0).sort(byRate),
    warehousesByCount: [...warehouses].sort(byCount),
    warehousesByRefundRate: warehouses.filter((s) => s.decided > 0).sort(byRate),
    firstCall: {
      decidedWithCall: withCall.length,
      onFirstCall: onFirst,
      share: withCall.length ? onFirst / withCall.length : null,
      decidedWithoutCall: decided.length - withCall.length,
    },
    video: {
      minutes: Math.round(rows.reduce((n, r) => n + r.video_minutes, 0) * 100) / 100,
      snapshots: rows.reduce((n, r) => n + r.snapshots, 0),
      messages: rows.reduce((n, r) => n + r.messages, 0),
      reconnects: rows.reduce((n, r) => n + r.reconnects, 0),
    },
  };
}

/** 93 s → "1m 33s", 7260 s → "2h 1m", 3 d → "3d 0h". */
export function humanSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s - m * 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m - h * 60}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h - d * 24}h`;
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${(v * 100).toFixed(1)} %`;
}
