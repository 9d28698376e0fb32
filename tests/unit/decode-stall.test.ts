import { describe, expect, it } from 'vitest';
import { DecodeStallWatch } from '../../src/node/web/js/stall.js';

interface Phase {
  ms: number;
  /** frames decoded per second */
  fps: number;
  /** video packets per second */
  pps: number;
}

/**
 * Feeds the watch one sample every 250 ms (as the staff page does) through `phases`; returns
 * the times (ms) at which it said to ask for a keyframe.
 */
function run(watch: DecodeStallWatch, phases: Phase[]): number[] {
  const s = { at: 0, framesDecoded: 0, videoPackets: 0 };
  const asked: number[] = [];
  for (const phase of phases) {
    for (let t = 0; t < phase.ms; t += 250) {
      s.at += 250;
      s.framesDecoded += Math.round(phase.fps / 4);
      s.videoPackets += Math.round(phase.pps / 4);
      if (watch.update({ ...s })) asked.push(s.at);
    }
  }
  return asked;
}

const playing: Phase = { ms: 3000, fps: 28, pps: 90 };

describe('DecodeStallWatch', () => {
  it('stays quiet while video decodes, and through a repair-sized pause', () => {
    expect(run(new DecodeStallWatch(), [playing, { ms: 750, fps: 0, pps: 90 }, playing])).toEqual(
      [],
    );
  });

  it('asks once a second without a decoded frame while packets still arrive, then every 2 s', () => {
    const asked = run(new DecodeStallWatch(), [playing, { ms: 5000, fps: 0, pps: 90 }]);
    // the last frame was decoded at 3000 ms
    expect(asked).toEqual([4000, 6000, 8000]);
  });

  it('asks again at once for a new stall after the picture came back', () => {
    const asked = run(new DecodeStallWatch(), [
      playing,
      { ms: 1250, fps: 0, pps: 90 },
      { ms: 500, fps: 28, pps: 90 },
      { ms: 1250, fps: 0, pps: 90 },
    ]);
    expect(asked).toEqual([4000, 5750]);
  });

  it('never asks while no video packets arrive (camera off, link down)', () => {
    expect(run(new DecodeStallWatch(), [playing, { ms: 6000, fps: 0, pps: 0 }])).toEqual([]);
  });

  it('does not ask when the packets stopped before the stall was long enough', () => {
    // packets for half a second after the last frame, then nothing: an outage, not a stall
    expect(
      run(new DecodeStallWatch(), [
        playing,
        { ms: 500, fps: 0, pps: 90 },
        { ms: 4000, fps: 0, pps: 0 },
      ]),
    ).toEqual([]);
  });

  it('does not ask for a stream that has not decoded its first frame', () => {
    expect(run(new DecodeStallWatch(), [{ ms: 5000, fps: 0, pps: 90 }])).toEqual([]);
  });

  it('starts over when the counters go back (a new connection)', () => {
    const watch = new DecodeStallWatch();
    run(watch, [playing]);
    expect(watch.update({ at: 3250, framesDecoded: 0, videoPackets: 3 })).toBe(false);
    expect(watch.update({ at: 5000, framesDecoded: 0, videoPackets: 200 })).toBe(false);
    expect(watch.requests).toBe(0);
  });

  it('takes its thresholds from the options', () => {
    const asked = run(new DecodeStallWatch({ stallMs: 500, repeatMs: 1000 }), [
      playing,
      { ms: 2000, fps: 0, pps: 90 },
    ]);
    expect(asked).toEqual([3500, 4500]);
  });
});
