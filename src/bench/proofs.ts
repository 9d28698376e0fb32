/**
 * The goals a run is checked against, each as one line: the goal, the measured figure, and
 * whether it was met. The p95 latency target applies to every run; the others come from the
 * profile's `goals` (a profile with outages gets the default recovery goal).
 */
import type { ProfileGoals } from './profiles.ts';

/** Video back within this long after an outage, unless the profile says otherwise. */
export const DEFAULT_RECOVERY_MS = 1000;

/**
 * Send rates are read about once a second and the readings' spacing wobbles by some ms: two
 * readings under the mark are a 2 s collapse even when they span 2.004 s.
 */
export const READING_SLACK_S = 0.1;

export type ProofId = 'latency' | 'ramp' | 'settle' | 'collapse' | 'freezeRatio' | 'recovery';

export interface Proof {
  id: ProofId;
  /** What must hold, e.g. `p95 camera to screen <= 600 ms`. */
  goal: string;
  /** The figure this run measured, as text (`512 ms`), or why it was not measured. */
  measured: string;
  /** The measured figure in the goal's unit (ms, s, share); null: not reached or not measured. */
  value: number | null;
  limit: number;
  /** true: met; false: missed (fails the run); null: not measured in this run (does not fail it). */
  pass: boolean | null;
}

/** The figures of a run the goals are checked on. */
export interface ProofInput {
  mode: 'synthetic' | 'browser' | 'baseline';
  goals: ProfileGoals;
  hasOutages: boolean;
  latency: { label: string; p95Ms?: number; allowanceMs: number; targetMs: number };
  sendRate?: {
    ceilingKbps: number;
    rampSeconds: number | null;
    settle?: { medianKbps: number; inBandFraction: number; longestCollapseSeconds: number };
  };
  freezeRatio: number;
  /** Measured time the freeze ratio covers, ms (0: nothing measured). */
  measuredMs: number;
  /** One per outage the run reached; recoveryMs undefined: video did not come back. */
  outages: { where: string; recoveryMs?: number }[];
  /** Outages the run ended before. */
  unreachedOutages: number;
}

const fmtMs = (v: number) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ms`;
const fmtPct = (v: number) => `${(v * 100).toFixed(v < 0.1 ? 2 : 1)} %`;
const fmtS = (v: number) => `${v.toFixed(1)} s`;

export function evaluateProofs(input: ProofInput): Proof[] {
  const out: Proof[] = [];
  const { goals, latency } = input;
  const p95 = latency.p95Ms;
  out.push({
    id: 'latency',
    goal: `p95 ${latency.label} <= ${latency.targetMs} ms`,
    measured:
      p95 === undefined
        ? 'no frame reached the viewer'
        : `${fmtMs(p95)}${latency.allowanceMs ? ` (incl. ${latency.allowanceMs} ms allowance)` : ''}`,
    value: p95 ?? null,
    limit: latency.targetMs,
    pass: p95 !== undefined && p95 <= latency.targetMs,
  });

  const browserOnly = (id: ProofId, goal: string, limit: number): Proof => ({
    id,
    goal,
    measured: 'not measured: needs --browser (Chrome sets the send rate)',
    value: null,
    limit,
    pass: null,
  });
  const rate = input.mode === 'browser' ? input.sendRate : undefined;
  if (goals.ramp) {
    const within = goals.ramp.within / 1000;
    const goal = `send rate reaches ${(goals.ramp.to * 100).toFixed(0)} % of the ceiling within ${fmtS(within)}`;
    if (!rate) out.push(browserOnly('ramp', goal, within));
    else
      out.push({
        id: 'ramp',
        goal: `${goal} (${(goals.ramp.to * rate.ceilingKbps).toFixed(0)} of ${rate.ceilingKbps.toFixed(0)} kbit/s)`,
        measured: rate.rampSeconds === null ? 'never reached' : fmtS(rate.rampSeconds),
        value: rate.rampSeconds,
        limit: within,
        pass: rate.rampSeconds !== null && rate.rampSeconds <= within + READING_SLACK_S,
      });
  }
  if (goals.settle) {
    const { low, high } = goals.settle;
    const maxCollapse = goals.settle.maxCollapse / 1000;
    const band = `${(low * 100).toFixed(0)}-${(high * 100).toFixed(0)} %`;
    const settleGoal = `after the ramp, send rate settles (median) within ${band} of the ceiling`;
    const collapseGoal = `after the ramp, send rate never under ${(low * 100).toFixed(0)} % of the ceiling for more than ${fmtS(maxCollapse)}`;
    if (!rate) {
      out.push(browserOnly('settle', settleGoal, high));
      out.push(browserOnly('collapse', collapseGoal, maxCollapse));
    } else if (!rate.settle) {
      const why = 'not measured: the run ended before the ramp did; run longer';
      out.push({
        id: 'settle',
        goal: settleGoal,
        measured: why,
        value: null,
        limit: high,
        pass: null,
      });
      out.push({
        id: 'collapse',
        goal: collapseGoal,
        measured: why,
        value: null,
        limit: maxCollapse,
        pass: null,
      });
    } else {
      const s = rate.settle;
      const share = s.medianKbps / rate.ceilingKbps;
      out.push({
        id: 'settle',
        goal: `${settleGoal} (${(low * rate.ceilingKbps).toFixed(0)}-${(high * rate.ceilingKbps).toFixed(0)} kbit/s)`,
        measured: `median ${s.medianKbps.toFixed(0)} kbit/s (${fmtPct(share)}), ${fmtPct(s.inBandFraction)} of the time in the band`,
        value: share,
        limit: high,
        pass: share >= low && share <= high,
      });
      out.push({
        id: 'collapse',
        goal: collapseGoal,
        measured: `longest ${fmtS(s.longestCollapseSeconds)}`,
        value: s.longestCollapseSeconds,
        limit: maxCollapse,
        pass: s.longestCollapseSeconds <= maxCollapse + READING_SLACK_S,
      });
    }
  }
  if (goals.freezeRatio !== undefined) {
    const measured = input.measuredMs > 0;
    out.push({
      id: 'freezeRatio',
      goal: `video frozen at most ${fmtPct(goals.freezeRatio)} of the time`,
      measured: measured ? fmtPct(input.freezeRatio) : 'not measured',
      value: measured ? input.freezeRatio : null,
      limit: goals.freezeRatio,
      pass: measured ? input.freezeRatio <= goals.freezeRatio : null,
    });
  }
  const recoveryLimit = goals.recovery ?? (input.hasOutages ? DEFAULT_RECOVERY_MS : undefined);
  if (recoveryLimit !== undefined) {
    const goal = `video back within ${fmtMs(recoveryLimit)} of the link returning`;
    if (input.outages.length === 0) {
      out.push({
        id: 'recovery',
        goal,
        measured:
          input.unreachedOutages > 0
            ? 'not measured: the run ended before the outage; run longer'
            : 'not measured: no outage in this profile',
        value: null,
        limit: recoveryLimit,
        pass: null,
      });
    } else {
      const never = input.outages.filter((o) => o.recoveryMs === undefined);
      const worst = Math.max(...input.outages.map((o) => o.recoveryMs ?? 0));
      out.push({
        id: 'recovery',
        goal,
        measured: never.length
          ? `video did not come back after ${never.map((o) => o.where).join(', ')}`
          : `${fmtMs(worst)}${input.outages.length > 1 ? ` (worst of ${input.outages.length})` : ''}`,
        value: never.length ? null : worst,
        limit: recoveryLimit,
        pass: never.length === 0 && worst <= recoveryLimit,
      });
    }
  }
  return out;
}

/** The misses among `proofs`, as a short phrase each, for the verdict. */
export function missed(proofs: readonly Proof[]): string[] {
  return proofs
    .filter((p) => p.pass === false && p.id !== 'latency')
    .map((p) => `missed: ${p.goal} (${p.measured})`);
}
