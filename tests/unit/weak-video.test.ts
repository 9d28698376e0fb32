import { describe, expect, it } from 'vitest';
import { WeakVideoDetector } from '../../src/node/web/js/weak.js';

/**
 * Feeds the detector one getStats sample every 500 ms (as the staff page does) for `seconds`,
 * at the given frame and packet rates; returns what it said after each sample.
 */
function run(
  detector: WeakVideoDetector,
  phases: { seconds: number; fps: number; audioPps: number; videoPps?: number }[],
  start = { at: 0, framesDecoded: 0, videoPackets: 0, audioPackets: 0 },
) {
  const s = { ...start };
  const said: { at: number; weak: boolean }[] = [];
  for (const phase of phases) {
    for (let i = 0; i < phase.seconds * 2; i++) {
      s.at += 500;
      s.framesDecoded += phase.fps / 2;
      s.audioPackets += phase.audioPps / 2;
      s.videoPackets += (phase.videoPps ?? phase.fps * 3) / 2;
      said.push({ at: s.at, weak: detector.update({ ...s }) });
    }
  }
  return { said, last: s };
}

const firstWeak = (said: { at: number; weak: boolean }[], after = 0) =>
  said.find((x) => x.at > after && x.weak)?.at;

describe('WeakVideoDetector', () => {
  it('stays quiet while video runs', () => {
    const { said } = run(new WeakVideoDetector(), [{ seconds: 10, fps: 30, audioPps: 50 }]);
    expect(said.some((x) => x.weak)).toBe(false);
  });

  it('says weak ~3 s after video stalls while audio flows, and clears when video returns', () => {
    const d = new WeakVideoDetector();
    const { said } = run(d, [
      { seconds: 5, fps: 30, audioPps: 50 },
      { seconds: 8, fps: 0, audioPps: 50, videoPps: 0 },
      { seconds: 3, fps: 30, audioPps: 50 },
    ]);
    const shown = firstWeak(said, 5000)!;
    expect(shown - 5000).toBeGreaterThanOrEqual(2500);
    expect(shown - 5000).toBeLessThanOrEqual(3500);
    // stays while stalled
    expect(said.filter((x) => x.at > shown && x.at <= 13_000).every((x) => x.weak)).toBe(true);
    // clears within ~1.5 s of the video's return
    const cleared = said.find((x) => x.at > 13_000 && !x.weak)!.at;
    expect(cleared - 13_000).toBeLessThanOrEqual(1500);
    expect(said.at(-1)!.weak).toBe(false);
  });

  it('counts a still frame every few seconds (under 2 fps) as weak', () => {
    const { said } = run(new WeakVideoDetector(), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 8, fps: 0.5, audioPps: 50, videoPps: 20 },
    ]);
    expect(firstWeak(said, 3000)).toBeDefined();
    expect(said.at(-1)!.weak).toBe(true);
  });

  it('does not call a 3 fps stream weak', () => {
    const { said } = run(new WeakVideoDetector(), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 8, fps: 3, audioPps: 50 },
    ]);
    expect(said.some((x) => x.weak)).toBe(false);
  });

  it('is not weak when the audio stopped too (the sender is gone, not short of bandwidth)', () => {
    const { said } = run(new WeakVideoDetector(), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 8, fps: 0, audioPps: 0, videoPps: 0 },
    ]);
    expect(said.some((x) => x.weak)).toBe(false);
  });

  it('clears when the audio stops while weak', () => {
    const { said } = run(new WeakVideoDetector(), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 5, fps: 0, audioPps: 50, videoPps: 0 },
      { seconds: 3, fps: 0, audioPps: 0, videoPps: 0 },
    ]);
    expect(said.find((x) => x.at === 8000)!.weak).toBe(true);
    expect(said.at(-1)!.weak).toBe(false);
  });

  it('does not call a stream that is only starting weak', () => {
    // the first frames come slowly (encoder start, bandwidth ramp-up)
    const { said } = run(new WeakVideoDetector({ requireVideoPackets: true }), [
      { seconds: 4, fps: 0, audioPps: 50, videoPps: 0 },
      { seconds: 1, fps: 4, audioPps: 50 },
      { seconds: 4, fps: 30, audioPps: 50 },
    ]);
    expect(said.some((x) => x.weak)).toBe(false);
  });

  it('never fires before any video was seen', () => {
    const { said } = run(new WeakVideoDetector(), [{ seconds: 8, fps: 0, audioPps: 50 }]);
    expect(said.some((x) => x.weak)).toBe(false);
  });

  it('with requireVideoPackets, a sender that stopped its camera is not weak', () => {
    const opts = { requireVideoPackets: true };
    const stopped = run(new WeakVideoDetector(opts), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 6, fps: 0, audioPps: 50, videoPps: 0 },
    ]);
    expect(stopped.said.some((x) => x.weak)).toBe(false);
    const trickle = run(new WeakVideoDetector(opts), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 6, fps: 0.4, audioPps: 50, videoPps: 10 },
    ]);
    expect(trickle.said.at(-1)!.weak).toBe(true);
  });

  it('with requireVideoPackets, clears once the trickle stops for good (camera off)', () => {
    const { said } = run(new WeakVideoDetector({ requireVideoPackets: true }), [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 6, fps: 0.5, audioPps: 50, videoPps: 10 },
      { seconds: 8, fps: 0, audioPps: 50, videoPps: 0 },
    ]);
    expect(said.find((x) => x.at === 9000)!.weak).toBe(true);
    expect(said.at(-1)!.weak).toBe(false);
  });

  it('starts over when the counters go back (a new connection)', () => {
    const d = new WeakVideoDetector();
    const first = run(d, [
      { seconds: 3, fps: 30, audioPps: 50 },
      { seconds: 5, fps: 0, audioPps: 50, videoPps: 0 },
    ]);
    expect(first.said.at(-1)!.weak).toBe(true);
    // a new subscription: counters from zero, video not seen yet on it
    const second = run(d, [{ seconds: 2, fps: 0, audioPps: 50, videoPps: 0 }], {
      at: first.last.at,
      framesDecoded: 0,
      videoPackets: 0,
      audioPackets: 0,
    });
    expect(second.said.every((x) => !x.weak)).toBe(true);
  });
});
