import { describe, expect, it } from 'vitest';
import { type Picture, PictureFallback } from '../../src/node/web/js/fallback.js';

/**
 * Both pictures present frames every `interval` ms from 0 to `until`, the main one not within
 * `mainGaps`; returns which picture was shown after each frame, in time order.
 */
function play(
  fallback: PictureFallback,
  until: number,
  mainGaps: [number, number][],
  interval = 33,
): { at: number; which: Picture; showing: Picture }[] {
  const events: { at: number; which: Picture }[] = [];
  for (let at = 0; at <= until; at += interval) {
    if (!mainGaps.some(([from, to]) => at >= from && at < to)) events.push({ at, which: 'main' });
    // the backup's frames come a few ms after the main one's
    events.push({ at: at + 5, which: 'backup' });
  }
  return events.map((e) => ({ ...e, showing: fallback.frame(e.which, e.at) }));
}

/** Longest time the viewer saw no new frame: gaps between frames of the picture on screen. */
function longestFreeze(shown: { at: number; which: Picture; showing: Picture }[]): number {
  const times = shown.filter((e) => e.which === e.showing).map((e) => e.at);
  let longest = 0;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]! - times[i - 1]!);
  return longest;
}

describe('PictureFallback: which picture the staff page shows', () => {
  it('shows the main picture while it plays, and never the backup', () => {
    const fallback = new PictureFallback();
    const shown = play(fallback, 3_000, []);
    expect(shown.filter((e) => e.at > 0).every((e) => e.showing === 'main')).toBe(true);
    expect(fallback.fallbacks).toBe(0);
  });

  it('goes over to the backup once the main picture has stood still for 100 ms, and back at its next frame', () => {
    const fallback = new PictureFallback();
    // a 400 ms wait for a repair on the buyer's uplink
    const shown = play(fallback, 3_000, [[1_000, 1_400]]);
    const backupShown = shown.filter((e) => e.showing === 'backup' && e.at > 100);
    expect(backupShown.length).toBeGreaterThan(0);
    // not before the main picture had stood still for holdMs
    expect(backupShown[0]!.at - 1_000).toBeGreaterThan(100 - 33);
    expect(backupShown.at(-1)!.at).toBeLessThan(1_400);
    const back = shown.find((e) => e.at >= 1_400 && e.which === 'main');
    expect(back?.showing).toBe('main');
    expect(fallback.fallbacks).toBe(1);
    // what the viewer saw never stood still long enough to count as a freeze (Chrome's rule:
    // at 30 fps, about 180 ms)
    expect(longestFreeze(shown)).toBeLessThanOrEqual(100 + 33 + 5);
  });

  it('leaves a short hiccup of the main picture alone', () => {
    const fallback = new PictureFallback();
    play(fallback, 2_000, [[500, 580]]);
    expect(fallback.fallbacks).toBe(0);
  });

  it('shows the backup until the main picture has its first frame, and after a reset', () => {
    const fallback = new PictureFallback();
    expect(fallback.frame('backup', 10)).toBe('backup');
    expect(fallback.frame('backup', 300)).toBe('backup');
    expect(fallback.frame('main', 320)).toBe('main');
    // a first frame is not a fallback
    expect(fallback.fallbacks).toBe(0);
    fallback.reset();
    expect(fallback.showing).toBe('backup');
    expect(fallback.frame('backup', 400)).toBe('backup');
  });

  it('takes its hold from the options', () => {
    const fallback = new PictureFallback({ holdMs: 300 });
    expect(fallback.holdMs).toBe(300);
    play(fallback, 2_000, [[500, 750]]);
    expect(fallback.fallbacks).toBe(0);
    play(fallback, 2_000, [[500, 900]]);
    expect(fallback.fallbacks).toBe(1);
  });
});
