/** `bench compare A B`: two runs side by side, metric by metric, with the change. */
import { UserError } from '../../core/errors.ts';
import type { BenchResult } from '../result.ts';
import { columns } from './text.ts';

export interface ComparisonRow {
  metric: string;
  a: number | undefined;
  b: number | undefined;
  /** b - a. */
  delta: number | undefined;
  /** Lower is better for every metric here except the ones marked. */
  better: 'lower' | 'higher';
}

export interface Comparison {
  version: 1;
  a: { id: string; profile: string; startedAt: string; pass: boolean };
  b: { id: string; profile: string; startedAt: string; pass: boolean };
  rows: ComparisonRow[];
}

/** Checks that a stored result is a `bench run` result this version can read. */
export function asRunResult(value: unknown, id: string): BenchResult {
  const v = value as Partial<BenchResult> | undefined;
  if (v?.version !== 1 || v.kind !== 'run') {
    throw new UserError(
      `${id} is not a bench run result (version 1); compare takes two bench run results`,
    );
  }
  return v as BenchResult;
}

export function compareRuns(a: BenchResult, b: BenchResult): Comparison {
  const rows: ComparisonRow[] = [];
  const add = (
    metric: string,
    get: (r: BenchResult) => number | undefined,
    better: 'lower' | 'higher' = 'lower',
  ) => {
    const va = get(a);
    const vb = get(b);
    rows.push({
      metric,
      a: va,
      b: vb,
      delta: va !== undefined && vb !== undefined ? vb - va : undefined,
      better,
    });
  };
  const main = (r: BenchResult) => r.endToEnd ?? r.transit;
  add('latency p50, ms', (r) => main(r)?.p50);
  add('latency p95, ms', (r) => main(r)?.p95);
  add('latency p99, ms', (r) => main(r)?.p99);
  add('latency max, ms', (r) => main(r)?.max);
  for (const part of ['uplink', 'node', 'downlink', 'jitterBuffer', 'decodeRender'] as const) {
    add(`${part} p50, ms`, (r) => r.budget.find((x) => x.part === part)?.summary?.p50);
  }
  add('node p99, ms', (r) => r.budget.find((x) => x.part === 'node')?.summary?.p99);
  add('frames lost, %', (r) => r.frames.lossRatio * 100);
  add('freezes', (r) => r.frames.freezeCount);
  add('frozen, % of time', (r) => r.frames.freezeRatio * 100);
  add('received, kbit/s', (r) => r.bitrate.receivedKbps, 'higher');
  add('node CPU, %', (r) => r.nodeResources?.cpuPercent);
  const info = (r: BenchResult) => ({
    id: r.id,
    profile: r.profile.name,
    startedAt: r.startedAt,
    pass: r.verdict.pass,
  });
  return {
    version: 1,
    a: info(a),
    b: info(b),
    rows: rows.filter((r) => r.a !== undefined || r.b !== undefined),
  };
}

export function renderComparison(c: Comparison): string {
  const f = (v: number | undefined) =>
    v === undefined ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
  const rows = [['', `A ${c.a.id}`, `B ${c.b.id}`, 'B - A', '']];
  for (const r of c.rows) {
    let verdict = '';
    if (
      r.delta !== undefined &&
      r.a !== undefined &&
      Math.abs(r.delta) > Math.max(0.5, Math.abs(r.a) * 0.05)
    ) {
      const improved = r.better === 'lower' ? r.delta < 0 : r.delta > 0;
      verdict = improved ? 'better' : 'worse';
    }
    rows.push([
      r.metric,
      f(r.a),
      f(r.b),
      r.delta === undefined ? '-' : `${r.delta > 0 ? '+' : ''}${f(r.delta)}`,
      verdict,
    ]);
  }
  return [
    `A: ${c.a.profile}, ${c.a.startedAt}, ${c.a.pass ? 'PASS' : 'FAIL'}`,
    `B: ${c.b.profile}, ${c.b.startedAt}, ${c.b.pass ? 'PASS' : 'FAIL'}`,
    '',
    columns(rows),
  ].join('\n');
}
