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

  it('goes over to the backup once the main picture has stood still for 100 ms, and back once it has played 200 ms', () => {
    const fallback = new PictureFallback();
    // a 400 ms wait for a repair on the buyer's uplink
    const shown = play(fallback, 3_000, [[1_000, 1_400]]);
    const backupShown = shown.filter((e) => e.showing === 'backup' && e.at > 300);
    expect(backupShown.length).toBeGreaterThan(0);
    // not before the main picture had stood still for holdMs
    expect(backupShown[0]!.at - 1_000).toBeGreaterThan(100 - 33);
    // the main picture's first frames back (held for the repair, older) stay behind the backup
    const mainBack = shown.find((e) => e.at >= 1_400 && e.which === 'main')!;
    expect(mainBack.showing).toBe('backup');
    const returned = shown.find(
      (e) => e.at > mainBack.at && e.which === 'main' && e.showing === 'main',
    )!;
    expect(returned.at - mainBack.at).toBeGreaterThanOrEqual(200);
    expect(returned.at - mainBack.at).toBeLessThan(200 + 34);
    expect(fallback.fallbacks).toBe(1);
    // what the viewer saw never stood still long enough to count as a freeze (Chrome's rule:
    // at 30 fps, about 180 ms)
    expect(longestFreeze(shown)).toBeLessThanOrEqual(100 + 33 + 5);
  });

  it('goes over to the backup when the main picture drops to a fraction of its frame rate, and back once that is its pace', () => {
    const fallback = new PictureFallback();
    const events: { at: number; which: Picture }[] = [];
    for (let at = 0; at < 6_000; at += 33) {
      // 30 fps, then 7.5 fps (the base temporal layer alone) from 1 s on
      if (at < 1_000 || Math.round(at / 33) % 4 === 0) events.push({ at, which: 'main' });
      events.push({ at: at + 5, which: 'backup' });
    }
    const shown = events.map((e) => ({ ...e, showing: fallback.frame(e.which, e.at) }));
    // the first long gaps stand out against 30 fps: the backup shows
    expect(
      shown.filter((e) => e.at >= 1_100 && e.at < 1_300).some((e) => e.showing === 'backup'),
    ).toBe(true);
    // once 7.5 fps is the main picture's pace, it shows again, and stays
    expect(shown.filter((e) => e.at >= 4_000).every((e) => e.showing === 'main')).toBe(true);
    expect(fallback.stoppedAfterMs).toBeGreaterThan(200);
  });

  it('does not take a main picture that runs at 8 fps by itself for one standing still', () => {
    const fallback = new PictureFallback();
    const events: { at: number; which: Picture }[] = [];
    for (let at = 0; at < 5_000; at += 125) {
      events.push({ at, which: 'main' });
      for (let b = 5; b < 125; b += 33) events.push({ at: at + b, which: 'backup' });
    }
    const shown = events.map((e) => ({ ...e, showing: fallback.frame(e.which, e.at) }));
    // it learns the pace from its first frames; from then on it stays on screen
    expect(shown.filter((e) => e.at >= 1_000).every((e) => e.showing === 'main')).toBe(true);
    expect(fallback.fallbacks).toBeLessThanOrEqual(1);
    // and a real stop still shows the backup: 600 ms without a frame at 8 fps
    let at = 5_000;
    for (; at < 5_600; at += 33) fallback.frame('backup', at);
    expect(fallback.showing).toBe('backup');
  });

  it('shows the main picture at once when the backup has stopped too', () => {
    const fallback = new PictureFallback();
    fallback.frame('main', 0);
    fallback.frame('backup', 150);
    expect(fallback.showing).toBe('backup');
    // the backup's last frame was 150: at 400 the main picture is all there is
    expect(fallback.frame('main', 400)).toBe('main');
  });

  it('leaves a short hiccup of the main picture alone', () => {
    const fallback = new PictureFallback();
    play(fallback, 2_000, [[500, 580]]);
    expect(fallback.fallbacks).toBe(0);
  });

  it('shows the backup until the main picture has played 200 ms, and after a reset', () => {
    const fallback = new PictureFallback();
    let at = 0;
    for (; at < 300; at += 33) expect(fallback.frame('backup', at)).toBe('backup');
    const firstMain = at;
    for (; fallback.showing === 'backup'; at += 33) {
      fallback.frame('main', at);
      fallback.frame('backup', at + 5);
    }
    expect(at - 33 - firstMain).toBeGreaterThanOrEqual(200);
    // a first frame is not a fallback
    expect(fallback.fallbacks).toBe(0);
    fallback.reset();
    expect(fallback.showing).toBe('backup');
    expect(fallback.frame('backup', 400)).toBe('backup');
  });

  it('takes its hold and return times from the options', () => {
    const fallback = new PictureFallback({ holdMs: 300, returnMs: 50 });
    expect(fallback.holdMs).toBe(300);
    expect(fallback.returnMs).toBe(50);
    play(fallback, 2_000, [[500, 750]]);
    expect(fallback.fallbacks).toBe(0);
    play(fallback, 2_000, [[500, 900]]);
    expect(fallback.fallbacks).toBe(1);
  });
});
