/**
 * Repeated runs of one profile (`bench run --repeat N`, seeds --seed, --seed+1, ...): one 40-60 s
 * run says little on a lossy profile. Measured on `3g-cross-border` with the browser, sets of six
 * to eight runs of the same build gave median freeze ratios from 0.7 % to 2.9 %, and single runs
 * from 0 % to 10 %. So each goal is judged over the runs: met when the median run meets it, that
 * is when at least half of the runs that measured it met it.
 */
import type { Proof, ProofId } from './proofs.ts';
import type { BenchResult } from './result.ts';

export interface RepeatGoal {
  id: ProofId;
  /** The goal as the runs state it (the first run's wording). */
  goal: string;
  /** Runs that measured it, and of those, runs that met it. */
  measured: number;
  met: number;
  /** Median, least and most of the measured figures (a figure never reached counts as the worst). */
  median: number | null;
  min: number | null;
  max: number | null;
  /** true: met in at least half of the runs that measured it; null: no run measured it. */
  pass: boolean | null;
}

export interface RepeatSummary {
  profile: string;
  runs: string[];
  seeds: number[];
  goals: RepeatGoal[];
  /** Every measured goal met by the median run. */
  pass: boolean;
}

/** The median of values sorted ascending (the mean of the middle two for an even count). */
export function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One summary per profile, in the order the profiles first ran. */
export function summarizeRepeats(results: readonly BenchResult[]): RepeatSummary[] {
  const byProfile = new Map<string, BenchResult[]>();
  for (const r of results) {
    const list = byProfile.get(r.profile.name) ?? [];
    list.push(r);
    byProfile.set(r.profile.name, list);
  }
  const out: RepeatSummary[] = [];
  for (const [profile, runs] of byProfile) {
    // Results kept before goals existed have no proofs.
    const proofsOf = (r: BenchResult): readonly Proof[] => r.proofs ?? [];
    const ids: ProofId[] = [];
    for (const r of runs) for (const p of proofsOf(r)) if (!ids.includes(p.id)) ids.push(p.id);
    const goals = ids.map((id): RepeatGoal => {
      const proofs = runs.flatMap((r) => proofsOf(r).filter((p) => p.id === id));
      const measured = proofs.filter((p) => p.pass !== null);
      // A figure never reached (a ramp that never got there, no frame at all) is the worst.
      const values = measured.map((p) => p.value ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
      const finite = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? null : v);
      const met = measured.filter((p) => p.pass === true).length;
      return {
        id,
        goal: proofs[0]!.goal,
        measured: measured.length,
        met,
        median: values.length > 0 ? finite(median(values)) : null,
        min: finite(values[0]),
        max: finite(values.at(-1)),
        pass: measured.length === 0 ? null : 2 * met >= measured.length,
      };
    });
    out.push({
      profile,
      runs: runs.map((r) => r.id),
      seeds: runs.map((r) => r.settings.seed),
      goals,
      pass: goals.every((g) => g.pass !== false),
    });
  }
  return out;
}

function figure(id: ProofId, v: number | null): string {
  if (v === null) return 'never';
  switch (id) {
    case 'latency':
      return `${v.toFixed(0)} ms`;
    case 'freezeRatio':
      return `${(v * 100).toFixed(2)} %`;
    case 'settle':
      return `${(v * 100).toFixed(0)} %`;
    case 'recovery':
      return `${v.toFixed(0)} ms`;
    default:
      return `${v.toFixed(1)} s`;
  }
}

/** The summaries as text: per profile, each goal's median (range) and how many runs met it. */
export function renderRepeatText(summaries: readonly RepeatSummary[]): string {
  const lines: string[] = [];
  for (const s of summaries) {
    const seeds =
      s.seeds.length > 1 ? `seeds ${s.seeds[0]}-${s.seeds.at(-1)}` : `seed ${s.seeds[0]}`;
    lines.push(
      `${s.profile}: ${s.runs.length} runs (${seeds}), judged on the median run: ${s.pass ? 'PASS' : 'MISS'}`,
    );
    for (const g of s.goals) {
      const verdict = g.pass === null ? '-   ' : g.pass ? 'PASS' : 'MISS';
      const figures =
        g.measured === 0
          ? 'not measured'
          : `median ${figure(g.id, g.median)} (${figure(g.id, g.min)} to ${figure(g.id, g.max)}), met in ${g.met} of ${g.measured}`;
      lines.push(`  ${verdict} ${g.goal}: ${figures}`);
    }
  }
  return lines.join('\n');
}
