import { describe, expect, it } from 'vitest';
import { buildRtp } from '../../src/bench/clients/rtp.ts';
import { FrameTap } from '../../src/bench/FrameTap.ts';
import { harnessNotes } from '../../src/bench/result.ts';
import {
  cdf,
  detectFreezes,
  type FrameRecord,
  outageRecovery,
  percentile,
  renderTimeline,
  summarize,
  timeSeries,
} from '../../src/bench/stats.ts';

describe('latency statistics', () => {
  const hundred = Array.from({ length: 101 }, (_, i) => i);
  it.each([
    ['one value', [5], 50, 5],
    ['median of four', [1, 2, 3, 4], 50, 2.5],
    ['p0', [1, 2, 3, 4], 0, 1],
    ['p100', [1, 2, 3, 4], 100, 4],
    ['p95 of 0..100', hundred, 95, 95],
    ['p99 of 0..100', hundred, 99, 99],
    ['between two', [10, 20], 75, 17.5],
  ])('percentile: %s', (_name, values, p, expected) => {
    expect(percentile(values, p)).toBeCloseTo(expected, 9);
  });

  it('summarises, ignoring non-finite values; nothing to summarise is undefined', () => {
    const s = summarize([30, 10, 20, Number.NaN, 40]);
    expect(s).toEqual({
      count: 4,
      min: 10,
      mean: 25,
      p50: 25,
      p95: expect.closeTo(38.5, 9),
      p99: expect.closeTo(39.7, 9),
      max: 40,
    });
    expect(summarize([])).toBeUndefined();
    const points = cdf(
      Array.from({ length: 1000 }, (_, i) => i),
      100,
    );
    expect(points.length).toBeLessThanOrEqual(101);
    expect(points.at(-1)).toEqual({ x: 999, p: 1 });
  });

  it('shows a frame only when it and the frames it depends on arrived, in order', () => {
    const f = (sentAt: number, keyframe: boolean, receivedAt?: number): FrameRecord => ({
      sentAt,
      keyframe,
      receivedAt,
    });
    const rendered = renderTimeline([
      f(0, true, 100),
      f(33, false, 140),
      f(66, false, undefined), // lost: what follows cannot be decoded ...
      f(100, false, 210),
      f(133, true, 260), // ... until the next keyframe
      f(166, false, 250), // complete before its predecessor: shown after it
      f(200, false, 300),
    ]);
    expect(rendered.map((r) => [r.index, r.renderedAt])).toEqual([
      [0, 100],
      [1, 140],
      [4, 260],
      [5, 260],
      [6, 300],
    ]);
  });

  it('counts freezes as webrtc-stats defines them', () => {
    // 30 fps, then a 400 ms gap (freeze: > max(3 × 33, 33 + 150)), then a 150 ms gap (not one)
    const times: number[] = [];
    const add = (gap: number, count = 1) => {
      for (let i = 0; i < count; i++) times.push((times.at(-1) ?? 0) + gap);
    };
    add(33.3, 60);
    add(400);
    add(33.3, 40);
    add(150);
    add(33.3, 10);
    const freezes = detectFreezes(times);
    expect(freezes.count).toBe(1);
    expect(freezes.totalMs).toBeCloseTo(400, 6);
    // at 5 fps (200 ms apart) a 500 ms gap is no freeze: 3 × 200 = 600 ms would be
    const slow = [0, 200, 400, 600, 800, 1300, 1500];
    expect(detectFreezes(slow).count).toBe(0);
    expect(detectFreezes([0, 200, 400, 600, 800, 1450]).count).toBe(1);
    expect(detectFreezes([]).count).toBe(0);
  });

  it('measures recovery after an outage from its end to live video (captured after it) being shown', () => {
    const rendered = [
      { index: 0, sentAt: 0, renderedAt: 300 },
      { index: 1, sentAt: 5_100, renderedAt: 5_700 },
      { index: 2, sentAt: 5_200, renderedAt: 5_750 },
    ];
    expect(
      outageRecovery(
        [
          { where: 'buyer.up', startAt: 1000, endAt: 5000 },
          { where: 'buyer.down', startAt: 9000, endAt: 9500 },
        ],
        rendered,
        5_800, // the data ends 50 ms after the last frame: still playing
      ),
    ).toEqual([
      { where: 'buyer.up', startAt: 1000, endAt: 5000, recoveryMs: 700 },
      { where: 'buyer.down', startAt: 9000, endAt: 9500, recoveryMs: undefined },
    ]);
  });

  it('buckets a series over time', () => {
    const series = timeSeries(
      [
        { at: 1000, value: 10 },
        { at: 1500, value: 30 },
        { at: 2100, value: 50 },
        { at: 500, value: 99 },
      ],
      1000,
      1000,
    );
    expect(series).toEqual([
      { t: 0, p50: 20, max: 30, count: 2 },
      { t: 1, p50: 50, max: 50, count: 1 },
    ]);
  });
});

describe('frame tap (RTP headers seen in the clear at the relay)', () => {
  const rtp = (seq: number, ts: number, marker: boolean, pt = 96) =>
    buildRtp(
      { payloadType: pt, sequenceNumber: seq, timestamp: ts, ssrc: 1234, marker },
      Buffer.alloc(20),
    );

  it('says when each whole frame had passed, ignoring retransmissions and other streams', () => {
    const tap = new FrameTap(() => ({ media: 96 }));
    // frame A: 65534, 65535 (marker); frame B: 0, 1, 2 (marker) across the wrap; frame C: 3 lost, 4 (marker)
    tap.record(rtp(65534, 1000, false), 10);
    tap.record(rtp(65535, 1000, true), 11);
    tap.record(rtp(0, 4000, false), 40);
    tap.record(rtp(2, 4000, true), 42);
    tap.record(rtp(1, 4000, false), 95); // late (a repair): the frame passed when it did
    tap.record(rtp(1, 4000, false), 99); // a second copy changes nothing
    tap.record(rtp(4, 7000, true), 70);
    tap.record(rtp(5, 10000, true), 100);
    tap.record(rtp(6, 13000, true, 111), 130); // audio: ignored
    const frames = tap.framesPassed();
    // the very first frame cannot be known whole (its start was before the tap), frame C has a gap
    expect([...frames.entries()]).toEqual([
      [4000, 95],
      [10000, 100],
    ]);
    expect(tap.packets).toBe(7);
  });
});

describe("notes on the relays' timekeeping", () => {
  const harness = (late: number, kernelTimedArrivals?: number, udpBufferDrops?: number) => ({
    deliveries: 1000,
    lateDeliveries: late,
    meanLatenessMs: 0.4,
    cpuPercent: 50,
    rssBytes: 1,
    kernelTimedArrivals,
    udpBufferDrops,
  });

  it('says nothing when the kernel timed the arrivals and few deliveries were late', () => {
    expect(harnessNotes(harness(20, 1))).toEqual([]);
    expect(harnessNotes(harness(20, 0.995))).toEqual([]);
  });

  it("keeps a busy machine's stalls out of the node's part when the kernel timed the arrivals", () => {
    const notes = harnessNotes(harness(50, 1));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/^this machine was busy: 5\.0 % of relay deliveries/);
    expect(notes[0]).toContain("(not the node's part: the kernel timed the packets it sent)");
  });

  it("says when the relays timed arrivals themselves: the node's part then holds their stalls", () => {
    const notes = harnessNotes(harness(50, 0.2));
    expect(notes).toHaveLength(2);
    expect(notes[0]).toMatch(
      /^80\.0 % of the packets reaching the relays were timed when the harness read them, not by the kernel \(the native addon is off or not built: npm run build:native\)/,
    );
    expect(notes[1]).toMatch(/^this machine was busy/);
    expect(notes[1]).not.toContain("not the node's part");
    // a result from before arrivals were timed claims nothing either way
    const older = harnessNotes(harness(50));
    expect(older).toHaveLength(1);
    expect(older[0]).not.toContain("not the node's part");
  });

  it("says when full socket buffers dropped datagrams: the losses may not be the profile's", () => {
    expect(harnessNotes(harness(20, 1, 0))).toEqual([]);
    const notes = harnessNotes(harness(20, 1, 37));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^37 datagrams were dropped on this machine during the measured window because a socket's receive buffer was full/,
    );
    expect(notes[0]).toContain('not from the profile');
  });
});
