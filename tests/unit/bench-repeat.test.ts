import { describe, expect, it } from 'vitest';
import type { Proof } from '../../src/bench/proofs.ts';
import { renderRepeatText, summarizeRepeats } from '../../src/bench/repeat.ts';
import { compareSets, renderSetComparison } from '../../src/bench/report/compare.ts';
import type { BenchResult } from '../../src/bench/result.ts';

const FREEZE_GOAL = 'video frozen at most 1.00 % of the time';
const LATENCY_GOAL = 'p95 camera to screen <= 600 ms';

/** A kept run with only what the repeat summary and the set comparison read. */
function fakeRun(o: {
  id: string;
  profile?: string;
  seed: number;
  p95: number;
  freeze: number;
  ramp?: number | null;
}): BenchResult {
  const proofs: Proof[] = [
    {
      id: 'latency',
      goal: LATENCY_GOAL,
      measured: `${o.p95} ms`,
      value: o.p95,
      limit: 600,
      pass: o.p95 <= 600,
    },
    {
      id: 'freezeRatio',
      goal: FREEZE_GOAL,
      measured: `${(o.freeze * 100).toFixed(2)} %`,
      value: o.freeze,
      limit: 0.01,
      pass: o.freeze <= 0.01,
    },
    o.ramp === undefined
      ? {
          id: 'ramp',
          goal: 'send rate reaches 90 % of the ceiling within 10.0 s',
          measured: 'not measured: needs --browser (Chrome sets the send rate)',
          value: null,
          limit: 10,
          pass: null,
        }
      : {
          id: 'ramp',
          goal: 'send rate reaches 90 % of the ceiling within 10.0 s',
          measured: o.ramp === null ? 'never reached' : `${o.ramp} s`,
          value: o.ramp,
          limit: 10,
          pass: o.ramp !== null && o.ramp <= 10,
        },
  ];
  return {
    id: o.id,
    profile: { name: o.profile ?? '3g-cross-border' },
    settings: { mode: 'browser', seed: o.seed },
    endToEnd: { p95: o.p95 },
    frames: { freezeRatio: o.freeze },
    sendRate:
      o.ramp === undefined
        ? undefined
        : { rampSeconds: o.ramp, ceilingKbps: 1500, settle: undefined },
    outages: [],
    proofs,
    verdict: { pass: proofs.every((p) => p.pass !== false) },
  } as unknown as BenchResult;
}

describe('summarizeRepeats', () => {
  it('judges each goal on the median run: met in at least half of the runs that measured it', () => {
    const runs = [
      fakeRun({ id: 'r1', seed: 601, p95: 507, freeze: 0.05 }),
      fakeRun({ id: 'r2', seed: 602, p95: 632, freeze: 0.0071 }),
      fakeRun({ id: 'r3', seed: 603, p95: 525, freeze: 0.0284 }),
      fakeRun({ id: 'r4', seed: 604, p95: 647, freeze: 0 }),
    ];
    // Every run but one misses a goal; over the four, latency is met in 2 (half: met) and the
    // freeze ratio in 2 (met).
    expect(runs.filter((r) => r.verdict.pass)).toHaveLength(0);
    const [s] = summarizeRepeats(runs);
    expect(s).toMatchObject({
      profile: '3g-cross-border',
      runs: ['r1', 'r2', 'r3', 'r4'],
      seeds: [601, 602, 603, 604],
      pass: true,
    });
    const latency = s!.goals.find((g) => g.id === 'latency')!;
    expect(latency).toMatchObject({ measured: 4, met: 2, min: 507, max: 647, pass: true });
    expect(latency.median).toBeCloseTo((525 + 632) / 2, 9);
    const freeze = s!.goals.find((g) => g.id === 'freezeRatio')!;
    expect(freeze).toMatchObject({ measured: 4, met: 2, pass: true });
    expect(freeze.median).toBeCloseTo((0.0071 + 0.0284) / 2, 9);
    // A goal no run measured neither passes nor fails the set.
    expect(s!.goals.find((g) => g.id === 'ramp')).toMatchObject({
      measured: 0,
      met: 0,
      median: null,
      pass: null,
    });

    // One more run missing both: 2 of 5 is under half, so both goals are missed.
    const [five] = summarizeRepeats([
      ...runs,
      fakeRun({ id: 'r5', seed: 605, p95: 612, freeze: 0.0213 }),
    ]);
    expect(five!.pass).toBe(false);
    expect(five!.goals.filter((g) => g.pass === false).map((g) => g.id)).toEqual([
      'latency',
      'freezeRatio',
    ]);
  });

  it('counts a figure never reached as the worst, and keeps profiles apart in the order they ran', () => {
    const summaries = summarizeRepeats([
      fakeRun({ id: 'a1', profile: 'lan', seed: 1, p95: 90, freeze: 0, ramp: 4 }),
      fakeRun({ id: 'b1', seed: 1, p95: 500, freeze: 0, ramp: null }),
      fakeRun({ id: 'a2', profile: 'lan', seed: 2, p95: 95, freeze: 0, ramp: null }),
      fakeRun({ id: 'b2', seed: 2, p95: 510, freeze: 0, ramp: null }),
      fakeRun({ id: 'b3', seed: 3, p95: 520, freeze: 0, ramp: 6 }),
    ]);
    expect(summaries.map((s) => [s.profile, s.runs])).toEqual([
      ['lan', ['a1', 'a2']],
      ['3g-cross-border', ['b1', 'b2', 'b3']],
    ]);
    const lanRamp = summaries[0]!.goals.find((g) => g.id === 'ramp')!;
    // 4 s and never: the median lies past any figure, met in 1 of 2 (half).
    expect(lanRamp).toMatchObject({ median: null, min: 4, max: null, met: 1, pass: true });
    const ramp = summaries[1]!.goals.find((g) => g.id === 'ramp')!;
    expect(ramp).toMatchObject({ median: null, min: 6, max: null, met: 1, pass: false });
  });

  it('prints each goal with its median, range and count', () => {
    const text = renderRepeatText(
      summarizeRepeats([
        fakeRun({ id: 'r1', seed: 601, p95: 507, freeze: 0.05 }),
        fakeRun({ id: 'r2', seed: 602, p95: 520, freeze: 0.0071 }),
        fakeRun({ id: 'r3', seed: 603, p95: 525, freeze: 0.0284 }),
      ]),
    );
    expect(text).toContain(
      '3g-cross-border: 3 runs (seeds 601-603), judged on the median run: MISS',
    );
    expect(text).toContain(`PASS ${LATENCY_GOAL}: median 520 ms (507 ms to 525 ms), met in 3 of 3`);
    expect(text).toContain(`MISS ${FREEZE_GOAL}: median 2.84 % (0.71 % to 5.00 %), met in 1 of 3`);
    expect(text).toMatch(/- {4}send rate reaches 90 % .*: not measured/);
  });
});

describe('compareSets with repeated runs', () => {
  it('shows each side as the medians of its runs, with the median run verdict', () => {
    const before = [
      fakeRun({ id: 'b1', seed: 1, p95: 566, freeze: 0.0198 }),
      fakeRun({ id: 'b2', seed: 2, p95: 548, freeze: 0.0203 }),
      fakeRun({ id: 'b3', seed: 3, p95: 590, freeze: 0.005 }),
    ];
    const after = [fakeRun({ id: 'a1', seed: 1, p95: 461, freeze: 0.0195 })];
    const c = compareSets(before, after);
    expect(c.profiles).toHaveLength(1);
    expect(c.profiles[0]!.a).toMatchObject({
      id: 'b1,b2,b3',
      runs: 3,
      p95Ms: 566,
      freezeRatio: 0.0198,
      pass: false,
      missed: ['freezeRatio'],
    });
    expect(c.profiles[0]!.b).toMatchObject({ id: 'a1', runs: 1, p95Ms: 461 });
    const text = renderSetComparison(c);
    expect(text).toMatch(/runs \(figures are medians\)\s+3\s+1/);
    expect(text).toMatch(/p95\s+566 ms\s+461 ms/);
    expect(text).toMatch(/frozen\s+1\.98 %\s+1\.95 %/);
    // One run a side: no run-count row.
    expect(renderSetComparison(compareSets([before[0]!], after))).not.toMatch(/runs \(/);
  });
});
