import { beforeAll, describe, expect, it } from 'vitest';
import { OPUS_RULES, VP8_RULES } from '../../src/node/recording/codecs.ts';
import { JitterBuffer, type RtpIn } from '../../src/node/recording/JitterBuffer.ts';
import { MediaClock } from '../../src/node/recording/MediaClock.ts';
import {
  readWebmFrames,
  type SourceFrame,
  sourceClip,
  vp8Packets,
} from '../helpers/recordingMedia.ts';

interface Timed {
  p: RtpIn;
  at: number;
  frame: number;
}

let video: SourceFrame[];
beforeAll(async () => {
  video = readWebmFrames(await sourceClip('vp8-320', 3)).frames.filter((f) => f.track === 1);
});

/** 90 VP8 frames (keyframes at 0, 30, 60) as RTP, 3-6 packets each, one frame every 33 ms. */
function stream(firstSeq = 1000): Timed[] {
  const state = { seq: firstSeq };
  return video.flatMap((f, i) =>
    vp8Packets(f.data, 5000 + i * 3000, state, 200).map((p, k) => ({
      p,
      at: i * 33 + k * 0.1,
      frame: i,
    })),
  );
}

function run(packets: Timed[], deadlineMs = 100) {
  let keyframeRequests = 0;
  const jb = new JitterBuffer({
    rules: VP8_RULES,
    deadlineMs,
    onKeyframeNeeded: () => keyframeRequests++,
  });
  /** Each frame let out, with when it went out (ms). */
  const outAt: { frame: number; at: number }[] = [];
  const take = (frames: { rtpTimestamp: number }[], at: number) => {
    for (const f of frames) outAt.push({ frame: (f.rtpTimestamp - 5000) / 3000, at });
  };
  const sorted = [...packets].sort((a, b) => a.at - b.at);
  for (const t of sorted) {
    take(jb.tick(t.at), t.at);
    take(jb.processInput(t.p, t.at), t.at);
  }
  take(jb.flush(), Number.POSITIVE_INFINITY);
  return { out: outAt.map((o) => o.frame), outAt, stats: jb.stats, keyframeRequests };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe('jitter buffer: reordering, loss, retransmission, keyframes', () => {
  it.each<[string, (s: Timed[]) => Timed[], number[], Partial<JitterBuffer['stats']>]>([
    ['in order', (s) => s, range(0, 90), { framesLost: 0 }],
    [
      'reordered: every 5th packet swapped with the next',
      (s) => s.map((t, i) => (i % 5 === 0 && s[i + 1] ? { ...t, at: s[i + 1]!.at + 0.05 } : t)),
      range(0, 90),
      { framesLost: 0 },
    ],
    [
      'every packet twice',
      (s) => s.flatMap((t) => [t, { ...t, at: t.at + 1 }]),
      range(0, 90),
      { framesLost: 0 },
    ],
    [
      'a lost packet retransmitted 60 ms later (within the deadline)',
      (s) => s.map((t, i) => (i === 200 ? { ...t, at: t.at + 60 } : t)),
      range(0, 90),
      { framesLost: 0 },
    ],
    [
      'a packet of frame 40 never arrives: frames 40-59 are not written (no keyframe until 60)',
      (s) => s.filter((t) => !(t.frame === 40 && t.p.marker)),
      [...range(0, 40), ...range(60, 90)],
      { framesLost: 1, framesSkipped: 19 },
    ],
    [
      'the first keyframe never arrives: nothing before the next keyframe is written',
      (s) => s.filter((t) => t.frame !== 0),
      range(30, 90),
      { framesLost: 0, framesSkipped: 29 },
    ],
    [
      'the stream starts mid-frame and its first packets arrive out of order',
      (s) => s.slice(2).map((t, i) => (i === 0 ? { ...t, at: t.at + 0.5 } : t)),
      range(30, 90),
      {},
    ],
    [
      'a marker bit is lost but the next frame begins: the frame still ends',
      (s) =>
        s.map((t) => (t.frame === 10 && t.p.marker ? { ...t, p: { ...t.p, marker: false } } : t)),
      range(0, 90),
      { framesLost: 0 },
    ],
    [
      'a whole keyframe is lost: the next one restarts the recording',
      (s) => s.filter((t) => t.frame !== 30),
      [...range(0, 30), ...range(60, 90)],
      {},
    ],
  ])('%s', (_name, transform, expected, stats) => {
    const r = run(transform(stream()));
    expect(r.out).toEqual(expected);
    expect(r.stats).toMatchObject(stats);
    if (expected[0] !== 0 || expected.length < 90) expect(r.keyframeRequests).toBeGreaterThan(0);
  });

  it('follows sequence numbers across the 16-bit wrap', () => {
    const r = run(stream(65_400));
    expect(r.out).toEqual(range(0, 90));
  });

  it('gives a gap up only after the deadline, measured from when it blocked', () => {
    const s = stream();
    const lost = s.findIndex((t) => t.frame === 45);
    const late = { ...s[lost]!, at: s[lost]!.at + 250 };
    const withLate = [...s.slice(0, lost), ...s.slice(lost + 1), late];
    expect(run(withLate, 300).out).toEqual(range(0, 90)); // waits: the retransmit is in time
    expect(run(withLate, 100).out).toEqual([...range(0, 45), ...range(60, 90)]); // too late: given up
  });

  it('holds hundreds of packets behind a long gap, across the wrap, and lets them out whole', () => {
    // A packet of frame 20 comes 1.5 s late: everything behind it (well over the buffer's first
    // 64 slots) waits, then all of it goes out in order.
    const s = stream(65_300);
    const lost = s.findIndex((t) => t.frame === 20);
    const late = { ...s[lost]!, at: s[lost]!.at + 1500 };
    const rest = [...s.slice(0, lost), ...s.slice(lost + 1)];
    const held = new JitterBuffer({ rules: VP8_RULES, deadlineMs: 2000 });
    let most = 0;
    for (const t of rest.filter((t) => t.at < late.at)) {
      held.processInput(t.p, t.at);
      most = Math.max(most, held.pending);
    }
    expect(most).toBeGreaterThan(150);
    expect(run([...rest, late], 2000).out).toEqual(range(0, 90));
    // never repaired: given up at the deadline, resumed at the next keyframe
    const r = run(rest, 1000);
    expect(r.out).toEqual([...range(0, 20), ...range(30, 90)]);
    expect(r.stats).toMatchObject({ framesLost: 1, framesSkipped: 9 });
  });

  it('Opus: each packet is a frame; a missing one is skipped after a short wait', () => {
    const jb = new JitterBuffer({ rules: OPUS_RULES, deadlineMs: 40 });
    const out: number[] = [];
    for (let i = 0; i < 50; i++) {
      if (i === 10) continue;
      const p = {
        sequenceNumber: (65_530 + i) & 0xffff,
        timestamp: i * 960,
        marker: false,
        payload: Buffer.from([0xfc, i]),
      };
      out.push(...jb.processInput(p, i * 20).map((f) => f.rtpTimestamp / 960));
    }
    out.push(...jb.flush().map((f) => f.rtpTimestamp / 960));
    expect(out).toEqual([...range(0, 10), ...range(11, 50)]);
    expect(jb.stats.framesLost).toBe(1);
  });
});

describe('media clock: RTP time without sender reports', () => {
  it.each<[string, Array<[number, number]>, number[], number]>([
    // [rtp timestamp, arrival ms] → media ms; rebases
    [
      'steady 90 kHz clock, jittery arrival',
      [
        [0, 100],
        [3000, 140],
        [6000, 160],
        [9000, 230],
      ],
      [100, 133, 167, 200],
      0,
    ],
    [
      '32-bit wrap',
      [
        [2 ** 32 - 3000, 0],
        [0, 33],
        [3000, 66],
      ],
      [0, 33, 67],
      0,
    ],
    [
      'a late burst keeps RTP spacing',
      [
        [0, 0],
        [90_000, 3000],
        [93_000, 3001],
      ],
      [0, 1000, 1033],
      0,
    ],
    [
      'sender restarted (timestamp jumps back): placed at arrival',
      [
        [900_000, 0],
        [903_000, 33],
        [5, 1000],
      ],
      [0, 33, 1000],
      1,
    ],
    [
      'timestamp jumps 10 s ahead: placed at arrival',
      [
        [0, 0],
        [900_000, 40],
      ],
      [0, 40],
      1,
    ],
  ])('%s', (_name, input, expected, rebases) => {
    const clock = new MediaClock({ clockRate: 90_000 });
    expect(input.map(([ts, at]) => clock.toMs(ts, at))).toEqual(expected);
    expect(clock.rebases).toBe(rebases);
  });

  it('never goes backwards', () => {
    const clock = new MediaClock({ clockRate: 48_000 });
    expect([clock.toMs(960, 10), clock.toMs(960 + 10, 11), clock.toMs(960 + 20, 12)]).toEqual([
      10, 11, 12,
    ]);
  });
});

describe('jitter buffer: numbers that held no media', () => {
  /**
   * The clip with PictureIDs (across their 15-bit wrap). After each frame in `fecAfter` the
   * publisher used one more number, for a FEC packet that never arrives (Chrome never resends
   * FEC). `drop` lists frames whose packets are lost for good, `dropFirst` frames that lose only
   * their first packet.
   */
  function numbered(fecAfter: number[], drop: number[] = [], dropFirst: number[] = []): Timed[] {
    const state = { seq: 65_500, pictureId: 0x7ff0 };
    const out: Timed[] = [];
    video.forEach((f, i) => {
      const packets = vp8Packets(f.data, 5000 + i * 3000, state, 200);
      if (fecAfter.includes(i)) state.seq++;
      packets.forEach((p, k) => {
        if (drop.includes(i) || (k === 0 && dropFirst.includes(i))) return;
        out.push({ p, at: i * 33 + k * 0.1, frame: i });
      });
    });
    return out;
  }

  it('passes a number between two consecutive frames at once, with no keyframe asked for', () => {
    const { out, outAt, stats, keyframeRequests } = run(numbered([10, 40, 41, 89]), 300);
    expect(out).toEqual(range(0, 90));
    expect(stats).toMatchObject({ framesLost: 0, framesSkipped: 0, emptyGaps: 3 });
    expect(keyframeRequests).toBe(0);
    // the frames after the empty numbers did not wait for them: out as their last packet came
    for (const frame of [11, 41, 42]) {
      expect(outAt.find((o) => o.frame === frame)!.at).toBeLessThan(frame * 33 + 5);
    }
  });

  it('still waits, then gives up, when a whole frame is missing between them', () => {
    const { out, stats, keyframeRequests } = run(numbered([], [20]), 300);
    expect(out).toEqual([...range(0, 20), ...range(30, 90)]);
    expect(stats.framesLost).toBe(1);
    expect(stats.emptyGaps).toBe(0);
    expect(keyframeRequests).toBeGreaterThan(0);
  });

  it("still waits for a frame's lost first packet after a whole frame", () => {
    const { out, stats } = run(numbered([], [], [50]), 300);
    expect(out).toEqual([...range(0, 50), ...range(60, 90)]);
    expect(stats.framesLost).toBe(1);
    expect(stats.emptyGaps).toBe(0);
  });
});
