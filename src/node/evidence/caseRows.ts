import type { CaseAggregate } from './EvidenceStore.ts';

/**
 * One row per case for analysis (`returncam export cases`): the case's facts, how long each step
 * took, how much video, how many snapshots and messages, reconnects, calls and network quality.
 * Pure functions; the same keys in CSV, JSON and NDJSON.
 */

/** Buyer publisher sessions less than this apart belong to one call (a reconnect, not a new call). */
export const CALL_GAP_MS = 5 * 60_000;

export interface CaseRow {
  case_id: string;
  order_id: string;
  sku: string;
  marketplace: string | null;
  warehouse_id: string | null;
  reason: string;
  status: string;
  outcome: string | null;
  disposition: string | null;
  created_at: string;
  first_joined_at: string | null;
  decided_at: string | null;
  closed_at: string | null;
  /** created → first joined, seconds. */
  created_to_joined_s: number | null;
  /** first joined → decided, seconds. */
  joined_to_decided_s: number | null;
  /** decided → closed, seconds. */
  decided_to_closed_s: number | null;
  /** created → decided (handling time), seconds. */
  created_to_decided_s: number | null;
  /** created → closed, seconds. */
  created_to_closed_s: number | null;
  video_minutes: number;
  recordings: number;
  snapshots: number;
  messages: number;
  prompts: number;
  /** Buyer calls: buyer publisher sessions, those less than CALL_GAP_MS apart counted as one. */
  calls: number;
  /** Publisher sessions after the first, per role, summed. */
  reconnects: number;
  /** Decided with exactly one buyer call before the decision; null if undecided or no call. */
  decided_on_first_call: boolean | null;
  /** Mean measured round-trip time of the case's sessions, ms; null when none was reported. */
  rtt_ms: number | null;
  /** Mean measured packet loss, 0..1; null when none was reported. */
  packet_loss: number | null;
  /** Mean share of time the video was frozen, 0..1; null when none was reported. */
  freeze_ratio: number | null;
}

export const CASE_COLUMNS: readonly (keyof CaseRow)[] = [
  'case_id',
  'order_id',
  'sku',
  'marketplace',
  'warehouse_id',
  'reason',
  'status',
  'outcome',
  'disposition',
  'created_at',
  'first_joined_at',
  'decided_at',
  'closed_at',
  'created_to_joined_s',
  'joined_to_decided_s',
  'decided_to_closed_s',
  'created_to_decided_s',
  'created_to_closed_s',
  'video_minutes',
  'recordings',
  'snapshots',
  'messages',
  'prompts',
  'calls',
  'reconnects',
  'decided_on_first_call',
  'rtt_ms',
  'packet_loss',
  'freeze_ratio',
];

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** Seconds between two times (ms precision), or null when either is missing. */
export function seconds(from: number | null, to: number | null): number | null {
  if (from === null || to === null) return null;
  return Math.round(to - from) / 1000;
}

function round(v: number | null, digits: number): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Call start times: sessions of the buyer, a gap of CALL_GAP_MS or more starting a new call. */
export function callStarts(
  sessions: readonly { role: string; startedAt: number; endedAt: number | null }[],
  gapMs = CALL_GAP_MS,
): number[] {
  const buyer = sessions
    .filter((s) => s.role === 'buyer')
    .sort((a, b) => a.startedAt - b.startedAt);
  const starts: number[] = [];
  let lastEnd = Number.NEGATIVE_INFINITY;
  for (const s of buyer) {
    if (s.startedAt - lastEnd >= gapMs) starts.push(s.startedAt);
    lastEnd = Math.max(lastEnd, s.endedAt ?? s.startedAt);
  }
  return starts;
}

/** Publisher sessions after the first, per role. */
export function reconnectCount(sessions: readonly { role: string }[]): number {
  const perRole = new Map<string, number>();
  for (const s of sessions) perRole.set(s.role, (perRole.get(s.role) ?? 0) + 1);
  let n = 0;
  for (const count of perRole.values()) n += Math.max(0, count - 1);
  return n;
}

export function toCaseRow(a: CaseAggregate): CaseRow {
  const c = a.case;
  const calls = callStarts(a.publishSessions);
  const callsBeforeDecision =
    c.decidedAt === null ? 0 : calls.filter((t) => t <= c.decidedAt!).length;
  return {
    case_id: c.id,
    order_id: c.orderId,
    sku: c.sku,
    marketplace: c.marketplace,
    warehouse_id: c.warehouseId,
    reason: c.reason,
    status: c.status,
    outcome: c.outcome,
    disposition: c.disposition,
    created_at: iso(c.createdAt)!,
    first_joined_at: iso(c.firstJoinedAt),
    decided_at: iso(c.decidedAt),
    closed_at: iso(c.closedAt),
    created_to_joined_s: seconds(c.createdAt, c.firstJoinedAt),
    joined_to_decided_s: seconds(c.firstJoinedAt, c.decidedAt),
    decided_to_closed_s: seconds(c.decidedAt, c.closedAt),
    created_to_decided_s: seconds(c.createdAt, c.decidedAt),
    created_to_closed_s: seconds(c.createdAt, c.closedAt),
    video_minutes: round(a.videoMs / 60_000, 3) ?? 0,
    recordings: a.recordings,
    snapshots: a.snapshots,
    messages: a.messages,
    prompts: a.prompts,
    calls: calls.length,
    reconnects: reconnectCount(a.publishSessions),
    decided_on_first_call:
      c.decidedAt === null || callsBeforeDecision === 0 ? null : callsBeforeDecision === 1,
    rtt_ms: round(a.rttMs, 1),
    packet_loss: round(a.lossRatio, 4),
    freeze_ratio: round(a.freezeRatio, 4),
  };
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV with a header row; empty cells for nulls; CRLF line ends. */
export function toCsv(rows: readonly CaseRow[]): string {
  const lines = [CASE_COLUMNS.join(',')];
  for (const r of rows) lines.push(CASE_COLUMNS.map((k) => csvCell(r[k])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function toNdjson(rows: readonly CaseRow[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}
