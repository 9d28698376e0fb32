import { describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/bench/profiles.ts';
import { evaluateProofs, type ProofInput } from '../../src/bench/proofs.ts';
import {
  counterRates,
  frozenTime,
  mergeWindows,
  pictureFrozenTime,
  type RatePoint,
  rampSeconds,
  recoveryMs,
  settleStats,
} from '../../src/bench/resilience.ts';

/** One rate point per second from a list of kbit/s, the first ending at t = 1 s. */
function perSecond(kbps: number[]): RatePoint[] {
  return kbps.map((k, i) => ({ t: i + 1, dt: 1, kbps: k }));
}

/** Frames shown every `interval` ms from `from` to `to` (exclusive). */
function steady(from: number, to: number, interval = 1000 / 30): number[] {
  const out: number[] = [];
  for (let t = from; t < to; t += interval) out.push(t);
  return out;
}

describe('send rate from a byte counter', () => {
  it('turns cumulative bytes into kbit/s per interval, skipping resets and empty intervals', () => {
    const rates = counterRates(
      [
        { at: 1000, value: 0 },
        { at: 2000, value: 125_000 }, // 1 Mbit in 1 s
        { at: 2500, value: 156_250 }, // 250 kbit in 0.5 s
        { at: 2500, value: 160_000 }, // no time passed
        { at: 3500, value: 1000 }, // counter went back (a new stream)
        { at: 4500, value: 63_500 },
      ],
      1000,
    );
    expect(rates).toEqual([
      { t: 1, dt: 1, kbps: 1000 },
      { t: 1.5, dt: 0.5, kbps: 500 },
      { t: 3.5, dt: 1, kbps: 500 },
    ]);
  });
});

describe('ramp to the ceiling', () => {
  it.each([
    ['reaches 90 % at 6 s', [200, 300, 450, 700, 1000, 1360, 1500], 1500, 6],
    ['exactly 90 % counts', [500, 1350], 1500, 2],
    ['climbs to 85 % only: never', [300, 600, 900, 1200, 1275, 1275, 1275], 1500, null],
    ['reaches it only after 12 s', [...Array(11).fill(400), 1400], 1500, 12],
    ['nothing sent', [], 1500, null],
  ] as const)('%s', (_name, kbps, ceiling, expected) => {
    expect(rampSeconds(perSecond([...kbps]), ceiling)).toBe(expected);
  });

  it('ignores what was sent before connecting (t <= 0)', () => {
    expect(rampSeconds([{ t: -0.5, dt: 1, kbps: 2000 }, ...perSecond([100, 1400])], 1500)).toBe(2);
  });
});

describe('where the send rate settles after the ramp', () => {
  const cap = 750;
  it('steady inside the band: all the time in band, no collapse', () => {
    const s = settleStats(perSecond([300, 700, 600, 650, 700, 620, 580, 690]), cap, 2)!;
    expect(s.fromSeconds).toBe(2);
    expect(s.seconds).toBe(6);
    expect(s.medianKbps).toBe(635); // 580 600 620 | 650 690 700
    expect(s.inBandFraction).toBe(1);
    expect(s.longestCollapseSeconds).toBe(0);
  });

  it('a 3 s collapse under 50 % is the longest run, even when the median looks fine', () => {
    const s = settleStats(perSecond([700, 700, 300, 200, 250, 700, 300, 700, 700]), cap, 0)!;
    expect(s.longestCollapseSeconds).toBe(3);
    expect(s.inBandFraction).toBeCloseTo(5 / 9, 9);
    expect(s.medianKbps).toBe(700);
  });

  it('over the ceiling is out of the band but no collapse', () => {
    const s = settleStats(perSecond([800, 900, 700, 700]), cap, 0)!;
    expect(s.inBandFraction).toBe(0.5);
    expect(s.longestCollapseSeconds).toBe(0);
  });

  it('only counts intervals inside the phase, weighted by their length', () => {
    const points: RatePoint[] = [
      { t: 1, dt: 1, kbps: 100 },
      { t: 2, dt: 1, kbps: 100 }, // before the phase
      { t: 2.5, dt: 0.5, kbps: 100 }, // collapse, half a second
      { t: 4.5, dt: 2, kbps: 600 }, // two seconds in band
      { t: 5.5, dt: 1, kbps: 100 }, // after the end
    ];
    const s = settleStats(points, cap, 2, 5)!;
    expect(s.seconds).toBe(2.5);
    expect(s.inBandFraction).toBeCloseTo(0.8, 9);
    expect(s.longestCollapseSeconds).toBe(0.5);
    expect(settleStats(points, cap, 10)).toBeUndefined();
  });
});

describe('frozen time of the picture on screen (presented frames, main or backup)', () => {
  it('counts a freeze that ends in the window whole, as Chrome does, and lists each', () => {
    // a 600 ms gap from 1700 to 2300; the window starts at 2000
    const times = [...steady(0, 1700), ...steady(2300, 6000), ...steady(6400, 10_000)];
    const f = pictureFrozenTime(times, 2000, 10_000);
    expect(f.count).toBe(2);
    expect(f.freezes.map((e) => Math.round(e.at))).toEqual([2300, 6400]);
    expect(f.freezes[0]!.durationMs).toBeGreaterThan(590);
    expect(f.measuredMs).toBe(8000);
    expect(f.ratio).toBeCloseTo(f.frozenMs / 8000, 9);
    // frozenTime alone would miss the first: its window starts after the gap's first frame
    expect(frozenTime(times, 2000, 10_000).count).toBe(1);
  });

  it('smooth video has none; video that stops is frozen to the end of the window', () => {
    expect(pictureFrozenTime(steady(0, 10_000), 2000, 10_000)).toMatchObject({
      count: 0,
      frozenMs: 0,
      freezes: [],
    });
    const stopped = pictureFrozenTime(steady(0, 6000), 2000, 10_000);
    expect(stopped.count).toBe(1);
    expect(stopped.freezes).toHaveLength(1);
    expect(stopped.freezes[0]!.at).toBe(10_000);
    expect(stopped.ratio).toBeCloseTo(0.5, 1);
    // nothing shown in the window at all
    expect(pictureFrozenTime(steady(0, 1000), 2000, 10_000).ratio).toBe(1);
  });
});

describe('frozen time at the viewer', () => {
  it('smooth 30 fps video is never frozen', () => {
    const f = frozenTime(steady(0, 10_000), 0, 10_000);
    expect(f).toMatchObject({ count: 0, frozenMs: 0, measuredMs: 10_000, ratio: 0 });
  });

  it('a 400 ms gap in 30 fps video is one freeze of 400 ms', () => {
    const times = [...steady(0, 5000), ...steady(5400, 10_000)];
    const f = frozenTime(times, 0, 10_000);
    expect(f.count).toBe(1);
    expect(f.frozenMs).toBeCloseTo(5400 - times[times.indexOf(5400) - 1]!, 6);
    expect(f.ratio).toBeGreaterThan(0.03);
    expect(f.ratio).toBeLessThan(0.05);
  });

  it('a 150 ms gap at 30 fps is no freeze (under avg + 150 ms)', () => {
    const times = [...steady(0, 5000), ...steady(5150, 10_000)];
    expect(frozenTime(times, 0, 10_000).count).toBe(0);
  });

  it('video that stops and never comes back is frozen until the end of the window', () => {
    const f = frozenTime(steady(0, 4000), 0, 10_000);
    expect(f.count).toBe(1);
    expect(f.frozenMs).toBeGreaterThan(5990);
    expect(f.ratio).toBeCloseTo(0.6, 2);
    // nothing shown at all: all frozen
    expect(frozenTime([], 0, 10_000).ratio).toBe(1);
  });

  it('only frames inside the window count', () => {
    const times = [...steady(0, 2000), ...steady(3000, 10_000)];
    expect(frozenTime(times, 2500, 10_000).count).toBe(0);
    expect(frozenTime(times, 0, 10_000).count).toBe(1);
  });

  it('misses a 1 % goal with 1.5 % of the time frozen', () => {
    // 60 s, two freezes of ~450 ms each: 0.9 s frozen = 1.5 %
    const times = [...steady(0, 20_000), ...steady(20_450, 40_000), ...steady(40_450, 60_000)];
    const f = frozenTime(times, 0, 60_000);
    expect(f.count).toBe(2);
    expect(f.ratio).toBeGreaterThan(0.01);
  });
});

describe('recovery after an outage', () => {
  const outage = { startAt: 10_000, endAt: 15_000 };
  /** Frames captured from `sentFrom` every 33 ms until `sentTo`, each shown `delay` ms later. */
  const video = (sentFrom: number, sentTo: number, delay: number) =>
    steady(sentFrom, sentTo).map((sentAt) => ({ sentAt, shownAt: sentAt + delay }));
  it.each([
    [
      'live video 400 ms after the link returns',
      [...video(9_000, 10_000, 90), ...video(15_100, 18_000, 300)],
      400,
    ],
    [
      'frames from during the outage, resent after it, show the past: they do not count',
      [...video(14_000, 15_000, 500), ...video(15_050, 18_000, 450)],
      500,
    ],
    [
      'a stale frame from before the outage shown late does not count',
      [{ sentAt: 9_950, shownAt: 15_050 }, ...video(16_000, 18_000, 300)],
      1300,
    ],
    [
      'one frame, then a still picture, then video 2 s later: back when video plays on',
      [{ sentAt: 15_010, shownAt: 15_070 }, ...video(17_000, 19_000, 60)],
      2060,
    ],
    [
      'a stutter (gaps of 450 ms) is not playback yet',
      [0, 450, 900, 1350, 1800].map((d) => ({ sentAt: 15_000 + d, shownAt: 15_100 + d })),
      undefined,
    ],
    ['video never came back', video(8_000, 10_000, 50), undefined],
  ] as const)('%s', (_name, frames, expected) => {
    const result = recoveryMs(outage, [...frames], 30_000);
    if (expected === undefined) expect(result).toBeUndefined();
    else expect(result).toBeCloseTo(expected, 0);
  });

  it('video still playing when the data ends counts, even if shorter than a second', () => {
    const frames = video(15_000, 15_500, 200);
    expect(recoveryMs(outage, frames, 15_750)).toBeCloseTo(200, 6);
    // but not when the data goes on and the frames stopped
    expect(recoveryMs(outage, frames, 20_000)).toBeUndefined();
  });

  it('merges overlapping windows: the link is back when every direction is', () => {
    expect(
      mergeWindows([
        { where: 'buyer.down', startAt: 10_000, endAt: 15_000 },
        { where: 'buyer.up', startAt: 10_000, endAt: 15_500 },
        { where: 'staff.down', startAt: 30_000, endAt: 31_000 },
      ]),
    ).toEqual([
      { where: 'buyer.down+buyer.up', startAt: 10_000, endAt: 15_500 },
      { where: 'staff.down', startAt: 30_000, endAt: 31_000 },
    ]);
  });
});

describe('goals of a run', () => {
  const goals = (g: Record<string, unknown>) => parseProfile({ name: 'g', goals: g }, 'test').goals;
  const base: ProofInput = {
    mode: 'browser',
    goals: goals({}),
    hasOutages: false,
    latency: { label: 'camera to screen', p95Ms: 450, allowanceMs: 0, targetMs: 600 },
    freezeRatio: 0,
    measuredMs: 30_000,
    outages: [],
    unreachedOutages: 0,
  };
  const byId = (input: ProofInput) =>
    Object.fromEntries(evaluateProofs(input).map((p) => [p.id, p]));

  it('always checks p95 against the target', () => {
    expect(byId(base).latency).toMatchObject({ pass: true, value: 450, limit: 600 });
    expect(byId({ ...base, latency: { ...base.latency, p95Ms: 640 } }).latency!.pass).toBe(false);
    expect(byId({ ...base, latency: { ...base.latency, p95Ms: undefined } }).latency).toMatchObject(
      { pass: false, measured: 'no frame reached the viewer' },
    );
  });

  it('ramp: met, missed when late or never, not measured without a browser', () => {
    const ramp = (rampSeconds: number | null, mode: ProofInput['mode'] = 'browser') =>
      byId({
        ...base,
        mode,
        goals: goals({ ramp: { to: 0.9, within: '10s' } }),
        sendRate: { ceilingKbps: 1500, rampSeconds },
      }).ramp!;
    expect(ramp(6.2)).toMatchObject({ pass: true, value: 6.2, limit: 10 });
    expect(ramp(6.2).goal).toMatch(/1350 of 1500 kbit\/s/);
    expect(ramp(11)).toMatchObject({ pass: false });
    expect(ramp(null)).toMatchObject({ pass: false, measured: 'never reached' });
    expect(ramp(3, 'synthetic')).toMatchObject({ pass: null });
    expect(ramp(3, 'synthetic').measured).toMatch(/--browser/);
  });

  it('settle and collapse: each judged on its own', () => {
    const settle = (medianKbps: number, longestCollapseSeconds: number) =>
      byId({
        ...base,
        goals: goals({ settle: { low: 0.5, high: 1, maxCollapse: '2s' } }),
        sendRate: {
          ceilingKbps: 750,
          rampSeconds: 8,
          settle: { medianKbps, inBandFraction: 0.9, longestCollapseSeconds },
        },
      });
    expect(settle(600, 1).settle!.pass).toBe(true);
    expect(settle(600, 1).collapse!.pass).toBe(true);
    expect(settle(600, 3).collapse!.pass).toBe(false);
    // two readings a second apart span a little over 2 s: still a 2 s collapse
    expect(settle(600, 2.004).collapse!.pass).toBe(true);
    expect(settle(600, 2.9).collapse!.pass).toBe(false);
    expect(settle(300, 0).settle!.pass).toBe(false); // settled at 40 %
    expect(settle(800, 0).settle!.pass).toBe(false); // over the cap: the queue overflows
  });

  it('freeze ratio: 1 % goal missed at 1.2 %', () => {
    const g = goals({ freezeRatio: 0.01 });
    expect(byId({ ...base, goals: g, freezeRatio: 0.004 }).freezeRatio!.pass).toBe(true);
    expect(byId({ ...base, goals: g, freezeRatio: 0.012 }).freezeRatio!.pass).toBe(false);
  });

  it('recovery: 1 s by default for a profile with outages; never back is a miss; unreached is not measured', () => {
    const outages = (list: ProofInput['outages'], unreached = 0) =>
      byId({ ...base, hasOutages: true, outages: list, unreachedOutages: unreached }).recovery!;
    expect(outages([{ where: 'buyer.up', recoveryMs: 420 }])).toMatchObject({
      pass: true,
      limit: 1000,
    });
    expect(outages([{ where: 'buyer.up', recoveryMs: 1400 }]).pass).toBe(false);
    expect(outages([{ where: 'buyer.up' }])).toMatchObject({ pass: false, value: null });
    expect(outages([], 1)).toMatchObject({ pass: null });
    expect(byId(base).recovery).toBeUndefined();
  });
});
