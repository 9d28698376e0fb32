import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/bench/clients/rtp.ts';
import {
  Bottleneck,
  droppedTotal,
  GilbertElliott,
  histogramPercentile,
  LinkModel,
} from '../../src/bench/impairment.ts';
import { type DirectionSpec, parseProfile } from '../../src/bench/profiles.ts';
import { Scheduler } from '../../src/bench/relay/Scheduler.ts';

/** A direction spec with the schema's defaults, from YAML-like input. */
function spec(input: Record<string, unknown>): DirectionSpec {
  return parseProfile({ name: 't', buyer: { up: input } }, 'test').buyer.up;
}

function meanSd(values: number[]): { mean: number; sd: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
  return { mean, sd };
}

/** Feeds `n` packets of `size` bytes, one every `gapMs`; returns each packet's delay or undefined. */
function feed(model: LinkModel, n: number, gapMs: number, size = 1000): (number | undefined)[] {
  const out: (number | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const t = i * gapMs;
    const v = model.admit(t, size);
    out.push(v.deliverAt === undefined ? undefined : v.deliverAt - t);
  }
  return out;
}

describe('impairment model', () => {
  it('delays by at least the configured delay, jitter adding a half-normal extra (packets far apart)', () => {
    const model = new LinkModel(spec({ delay: '100ms', jitter: '20ms' }), 7);
    const delays = feed(model, 20_000, 500) as number[];
    const { mean, sd } = meanSd(delays);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(100);
    // half-normal: mean σ·√(2/π) ≈ 15.96, sd σ·√(1 − 2/π) ≈ 12.06
    expect(mean).toBeGreaterThan(100 + 15.96 - 0.5);
    expect(mean).toBeLessThan(100 + 15.96 + 0.5);
    expect(sd).toBeGreaterThan(12.06 - 0.5);
    expect(sd).toBeLessThan(12.06 + 0.5);
    expect(model.stats.delivered).toBe(20_000);
    expect(
      Math.abs(histogramPercentile(model.stats.delayHistogram, 50)! - (100 + 20 * 0.6745)),
    ).toBeLessThan(1);
    // no jitter: exactly the delay
    const fixed = feed(new LinkModel(spec({ delay: '42ms' }), 1), 100, 10) as number[];
    expect(new Set(fixed)).toEqual(new Set([42]));
  });

  it('keeps packets in order under jitter unless reordering is asked for', () => {
    const ordered = new LinkModel(spec({ delay: '50ms', jitter: '30ms' }), 3);
    const times = feed(ordered, 5000, 1).map((d, i) => d! + i);
    for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
    expect(ordered.stats.reordered).toBe(0);
    // no packet leaves before it arrived, whatever the jitter draws
    expect(
      Math.min(
        ...feed(new LinkModel(spec({ delay: '5ms', jitter: '50ms' }), 1), 2000, 10).map(Number),
      ),
    ).toBeGreaterThanOrEqual(0);

    const reordering = new LinkModel(
      spec({ delay: '50ms', reorder: 0.05, reorderDelay: '20ms' }),
      3,
    );
    const delays = feed(reordering, 20_000, 2);
    expect(reordering.stats.reordered / 20_000).toBeGreaterThan(0.045);
    expect(reordering.stats.reordered / 20_000).toBeLessThan(0.055);
    // a held-back packet is overtaken by the packets sent in the next 20 ms
    // and each is overtaken by the ~10 packets sent in its extra 20 ms
    let latest = Number.NEGATIVE_INFINITY;
    let overtakers = 0;
    delays.forEach((d, i) => {
      const leaves = d! + i * 2;
      if (leaves < latest) overtakers++;
      latest = Math.max(latest, leaves);
    });
    expect(overtakers / 20_000).toBeGreaterThan(0.3);
    expect(overtakers / 20_000).toBeLessThan(0.6);
  });

  it.each([
    [0.01, 100_000],
    [0.05, 50_000],
    [0.2, 20_000],
  ])('drops %f at random, within tolerance', (loss, n) => {
    const model = new LinkModel(spec({ loss }), 11);
    feed(model, n, 1);
    const measured = model.stats.dropped.random / n;
    expect(Math.abs(measured - loss)).toBeLessThan(4 * Math.sqrt((loss * (1 - loss)) / n));
  });

  it.each([
    { p: 0.01, r: 0.25 },
    { p: 0.002, r: 0.4 },
    { p: 0.05, r: 0.5 },
  ])('Gilbert-Elliott $p/$r: loss p/(p+r), mean burst length 1/r', ({ p, r }) => {
    const ge = new GilbertElliott({ p, r, badLoss: 1, goodLoss: 0 }, seededRandom(5));
    const n = 400_000;
    let lost = 0;
    let bursts = 0;
    let previous = false;
    for (let i = 0; i < n; i++) {
      const l = ge.lost();
      if (l) lost++;
      if (l && !previous) bursts++;
      previous = l;
    }
    const expectedRate = p / (p + r);
    expect(lost / n).toBeGreaterThan(expectedRate * 0.93);
    expect(lost / n).toBeLessThan(expectedRate * 1.07);
    expect(lost / bursts).toBeGreaterThan((1 / r) * 0.93);
    expect(lost / bursts).toBeLessThan((1 / r) * 1.07);
  });

  it('limits throughput to the rate and drops what overflows the queue', () => {
    // 2 Mbit/s offered (1000 B every 4 ms) into 1 Mbit/s with a 50-packet queue, for 20 s
    const model = new LinkModel(spec({ rateKbps: 1000, queuePackets: 50 }), 1);
    const delays = feed(model, 5000, 4);
    const delivered = delays.filter((d) => d !== undefined) as number[];
    const lastDeparture = Math.max(...delays.map((d, i) => (d === undefined ? 0 : d + i * 4)));
    const kbps = (model.stats.deliveredBytes * 8) / lastDeparture;
    expect(kbps).toBeGreaterThan(980);
    expect(kbps).toBeLessThanOrEqual(1005); // the bucket's first 3000 B pass at once
    expect(model.stats.dropped.queue / 5000).toBeGreaterThan(0.45);
    expect(model.stats.dropped.queue / 5000).toBeLessThan(0.52);
    expect(model.stats.maxQueue).toBe(50);
    // a full queue of 50 packets of 8 ms each: delay levels off near 400 ms
    expect(Math.max(...delivered)).toBeLessThanOrEqual(50 * 8 + 0.001);
    expect(delivered[delivered.length - 1]!).toBeGreaterThan(380);
  });

  it('adds only serialisation delay below the rate', () => {
    const model = new LinkModel(spec({ rateKbps: 1000, queuePackets: 10, delay: '10ms' }), 1);
    const delays = feed(model, 1000, 20) as number[];
    expect(model.stats.dropped.queue).toBe(0);
    // the bucket (3000 B) lets a lone 1000 B packet through at once
    expect(Math.max(...delays)).toBeLessThanOrEqual(10.001);
    const b = new Bottleneck(800, 100, 1500);
    // a burst of 10 packets of 1000 B at 800 kbit/s (100 B/ms): 10 ms apart once the bucket is spent
    const departures = Array.from({ length: 10 }, () => b.admit(0, 1000)!);
    for (let i = 2; i < 10; i++) expect(departures[i]! - departures[i - 1]!).toBeCloseTo(10, 6);
  });

  it('drops everything inside an outage, counted from start(), and nothing outside', () => {
    const model = new LinkModel(
      spec({ delay: '20ms', outages: [{ at: '1s', duration: '500ms' }] }),
      1,
    );
    // before start(): no outage applies
    expect(model.admit(1200, 100).deliverAt).toBeDefined();
    model.start(10_000);
    const verdicts = Array.from({ length: 300 }, (_, i) => ({
      t: i * 10,
      v: model.admit(10_000 + i * 10, 100),
    }));
    for (const { t, v } of verdicts) {
      if (t >= 1000 && t < 1500) expect(v.cause).toBe('outage');
      else expect(v.deliverAt).toBeDefined();
    }
    expect(model.stats.dropped.outage).toBe(50);
    expect(droppedTotal(model.stats)).toBe(50);
  });

  it('replays exactly with the same seed', () => {
    const s = spec({
      delay: '80ms',
      jitter: '25ms',
      jitterCorrelation: 0.6,
      loss: 0.02,
      burst: { p: 0.01, r: 0.3 },
    });
    expect(feed(new LinkModel(s, 42), 2000, 3)).toEqual(feed(new LinkModel(s, 42), 2000, 3));
    expect(feed(new LinkModel(s, 42), 2000, 3)).not.toEqual(feed(new LinkModel(s, 43), 2000, 3));
  });
});

describe('scheduler', () => {
  it('delivers many items in time order with one timer, close to their time', async () => {
    const got: { at: number; item: number; now: number }[] = [];
    const scheduler = new Scheduler<number>({
      deliver: (item, at) => got.push({ item, at, now: performance.now() }),
    });
    const start = performance.now();
    const random = seededRandom(9);
    const times = Array.from({ length: 3000 }, () => start + 20 + random() * 200);
    times.forEach((t, i) => {
      scheduler.schedule(t, i);
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toHaveLength(3000);
    for (let i = 1; i < got.length; i++) expect(got[i]!.at).toBeGreaterThanOrEqual(got[i - 1]!.at);
    const lateness = got.map((g) => g.now - g.at);
    expect(Math.min(...lateness)).toBeGreaterThanOrEqual(-0.31);
    expect(lateness.reduce((s, v) => s + v, 0) / lateness.length).toBeLessThan(3);
    // ties keep insertion order
    const order: number[] = [];
    const s2 = new Scheduler<number>({ deliver: (i) => order.push(i) });
    const at = performance.now() + 5;
    for (let i = 0; i < 50; i++) s2.schedule(at, i);
    await new Promise((r) => setTimeout(r, 30));
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));
    s2.close();
    scheduler.close();
  });

  it('a throwing delivery is reported and does not stop the others; close() drops the rest', async () => {
    const errors: unknown[] = [];
    const got: number[] = [];
    const s = new Scheduler<number>({
      deliver: (i) => {
        if (i === 1) throw new Error('boom');
        got.push(i);
      },
      onError: (e) => errors.push(e),
    });
    const now = performance.now();
    s.schedule(now + 2, 0);
    s.schedule(now + 3, 1);
    s.schedule(now + 4, 2);
    s.schedule(now + 500, 3);
    await new Promise((r) => setTimeout(r, 40));
    s.close();
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([0, 2]);
    expect(errors).toHaveLength(1);
    expect(s.size).toBe(0);
  });
});
