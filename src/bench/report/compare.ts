/** `bench compare A B`: two runs side by side, metric by metric, with the change. */
import { UserError } from '../../core/errors.ts';
import { median, summarizeRepeats } from '../repeat.ts';
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
  /** Each goal either run was checked against, with both runs' figure and mark. */
  goals: { goal: string; a?: ComparisonGoal; b?: ComparisonGoal }[];
}

export interface ComparisonGoal {
  measured: string;
  pass: boolean | null;
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
  add('send-rate ceiling, kbit/s', (r) => r.sendRate?.ceilingKbps, 'higher');
  // a ramp that never reached the mark counts as the whole run (worse than any that did)
  add('ramp to 90 % of ceiling, s', (r) =>
    r.sendRate ? (r.sendRate.rampSeconds ?? r.settings.durationMs / 1000) : undefined,
  );
  add('send rate after ramp (median), kbit/s', (r) => r.sendRate?.settle?.medianKbps, 'higher');
  add(
    'send rate in band, % of time',
    (r) => (r.sendRate?.settle ? r.sendRate.settle.inBandFraction * 100 : undefined),
    'higher',
  );
  add('longest collapse, s', (r) => r.sendRate?.settle?.longestCollapseSeconds);
  add('outage recovery (worst), ms', (r) =>
    r.outages.length === 0 || r.outages.some((o) => o.recoveryMs === undefined)
      ? undefined
      : Math.max(...r.outages.map((o) => o.recoveryMs!)),
  );
  add('goals missed', (r) =>
    r.proofs ? r.proofs.filter((p) => p.pass === false).length : undefined,
  );
  add('node CPU, %', (r) => r.nodeResources?.cpuPercent);
  const info = (r: BenchResult) => ({
    id: r.id,
    profile: r.profile.name,
    startedAt: r.startedAt,
    pass: r.verdict.pass,
  });
  const goals: Comparison['goals'] = [];
  for (const [side, r] of [
    ['a', a],
    ['b', b],
  ] as const) {
    for (const p of r.proofs ?? []) {
      const key = p.id === 'latency' ? p.goal : `${p.id}: ${p.goal.replace(/ \(.*\)$/, '')}`;
      let row = goals.find((g) => g.goal === key);
      if (!row) {
        row = { goal: key };
        goals.push(row);
      }
      row[side] = { measured: p.measured, pass: p.pass };
    }
  }
  return {
    version: 1,
    a: info(a),
    b: info(b),
    rows: rows.filter((r) => r.a !== undefined || r.b !== undefined),
    goals,
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
  const mark = (g: ComparisonGoal | undefined) =>
    g ? `${g.pass === null ? '-' : g.pass ? 'PASS' : 'MISS'} ${g.measured}` : '-';
  const goalRows = [['goal', 'A', 'B'], ...c.goals.map((g) => [g.goal, mark(g.a), mark(g.b)])];
  return [
    `A: ${c.a.profile}, ${c.a.startedAt}, ${c.a.pass ? 'PASS' : 'FAIL'}`,
    `B: ${c.b.profile}, ${c.b.startedAt}, ${c.b.pass ? 'PASS' : 'FAIL'}`,
    '',
    columns(rows),
    ...(c.goals.length ? ['', columns(goalRows)] : []),
  ].join('\n');
}

/** One profile's key figures in two sets of runs (before and after a change). */
export interface ProfilePair {
  profile: string;
  a?: KeyFigures;
  b?: KeyFigures;
}

/**
 * The figures the resilience goals are about, for a before/after table. For several runs of a
 * profile in one set (`bench run --repeat`), each figure is the runs' median and the verdict is
 * the median run's (`repeat.ts`).
 */
export interface KeyFigures {
  id: string;
  /** Runs these figures are made of (1: a single run's own). */
  runs: number;
  mode: string;
  p95Ms?: number;
  freezeRatio: number;
  rampSeconds?: number | null;
  settleMedianShare?: number;
  longestCollapseSeconds?: number;
  /** Worst recovery; null: video did not come back. */
  recoveryMs?: number | null;
  pass: boolean;
  missed: string[];
}

export interface SetComparison {
  version: 1;
  kind: 'sets';
  profiles: ProfilePair[];
}

export function keyFigures(r: BenchResult): KeyFigures {
  const main = r.endToEnd ?? r.transit;
  const sr = r.sendRate;
  return {
    id: r.id,
    runs: 1,
    mode: r.settings.mode,
    p95Ms: main?.p95,
    freezeRatio: r.frames.freezeRatio,
    rampSeconds: sr ? sr.rampSeconds : undefined,
    settleMedianShare: sr?.settle ? sr.settle.medianKbps / sr.ceilingKbps : undefined,
    longestCollapseSeconds: sr?.settle?.longestCollapseSeconds,
    recoveryMs: r.outages.length
      ? r.outages.some((o) => o.recoveryMs === undefined)
        ? null
        : Math.max(...r.outages.map((o) => o.recoveryMs!))
      : undefined,
    pass: r.verdict.pass,
    missed: (r.proofs ?? []).filter((p) => p.pass === false).map((p) => p.id),
  };
}

/**
 * The median of figures that may be missing (undefined: not measured, left out) or never reached
 * (null: counts as the worst, so a median of mostly never-reached runs is null).
 */
function medianOf(values: readonly (number | null | undefined)[]): number | null | undefined {
  const measured = values.filter((v): v is number | null => v !== undefined);
  if (measured.length === 0) return undefined;
  const sorted = measured
    .map((v) => (v === null ? Number.POSITIVE_INFINITY : v))
    .sort((x, y) => x - y);
  const m = median(sorted);
  return Number.isFinite(m) ? m : null;
}

/** One profile's runs in one set: a single run's figures, or the medians of several. */
export function keyFiguresOf(runs: readonly BenchResult[]): KeyFigures {
  if (runs.length === 1) return keyFigures(runs[0]!);
  const each = runs.map(keyFigures);
  const [summary] = summarizeRepeats(runs);
  const defined = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
  return {
    id: each.map((k) => k.id).join(','),
    runs: runs.length,
    mode: each[0]!.mode,
    p95Ms: defined(medianOf(each.map((k) => k.p95Ms))),
    freezeRatio: medianOf(each.map((k) => k.freezeRatio)) ?? 0,
    rampSeconds: medianOf(each.map((k) => k.rampSeconds)),
    settleMedianShare: defined(medianOf(each.map((k) => k.settleMedianShare))),
    longestCollapseSeconds: defined(medianOf(each.map((k) => k.longestCollapseSeconds))),
    recoveryMs: medianOf(each.map((k) => k.recoveryMs)),
    pass: summary!.pass,
    missed: summary!.goals.filter((g) => g.pass === false).map((g) => g.id),
  };
}

/**
 * Runs of two sets paired by profile, in the order the profiles first appear; several runs of a
 * profile on one side are summed up as their medians ({@link keyFiguresOf}).
 */
export function compareSets(a: readonly BenchResult[], b: readonly BenchResult[]): SetComparison {
  const names: string[] = [];
  for (const r of [...a, ...b]) if (!names.includes(r.profile.name)) names.push(r.profile.name);
  const side = (runs: readonly BenchResult[], name: string) => {
    const mine = runs.filter((r) => r.profile.name === name);
    return mine.length > 0 ? keyFiguresOf(mine) : undefined;
  };
  const profiles = names.map((profile): ProfilePair => {
    const pair: ProfilePair = { profile };
    const figuresA = side(a, profile);
    const figuresB = side(b, profile);
    if (figuresA) pair.a = figuresA;
    if (figuresB) pair.b = figuresB;
    return pair;
  });
  return { version: 1, kind: 'sets', profiles };
}

const RUNS_LABEL = 'runs (figures are medians)';

/**
 * The before/after table: one row per profile and figure, A and B side by side (with a row of
 * run counts when a side has several runs of the profile).
 */
export function renderSetComparison(c: SetComparison): string {
  const num = (v: number | null | undefined, unit: string, digits = 0) =>
    v === undefined ? '-' : v === null ? 'never' : `${v.toFixed(digits)}${unit}`;
  const figures: [string, (k: KeyFigures) => string][] = [
    [RUNS_LABEL, (k) => String(k.runs)],
    ['p95', (k) => num(k.p95Ms, ' ms')],
    ['frozen', (k) => num(k.freezeRatio * 100, ' %', 2)],
    ['ramp to 90 %', (k) => num(k.rampSeconds, ' s', 1)],
    [
      'settle (median / ceiling)',
      (k) => num(k.settleMedianShare && k.settleMedianShare * 100, ' %'),
    ],
    ['longest collapse', (k) => num(k.longestCollapseSeconds, ' s', 1)],
    ['outage recovery', (k) => num(k.recoveryMs, ' ms')],
    [
      'verdict',
      (k) =>
        `${k.pass ? 'PASS' : 'FAIL'}${k.missed.length ? ` (missed ${k.missed.join(', ')})` : ''}`,
    ],
  ];
  const rows = [['profile', 'figure', 'A (before)', 'B (after)']];
  for (const p of c.profiles) {
    let first = true;
    for (const [label, get] of figures) {
      const a = p.a ? get(p.a) : 'not run';
      const b = p.b ? get(p.b) : 'not run';
      if (a === '-' && b === '-') continue;
      if (label === RUNS_LABEL && (p.a?.runs ?? 1) === 1 && (p.b?.runs ?? 1) === 1) continue;
      rows.push([first ? p.profile : '', label, a, b]);
      first = false;
    }
  }
  return columns(rows);
}
