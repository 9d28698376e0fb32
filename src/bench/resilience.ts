/**
 * Resilience figures of a benchmark, as pure functions on recorded series: how fast the buyer's
 * send rate ramps to its ceiling and where it settles, how much of the time the viewer's video was
 * frozen, and how long video took to come back after an outage.
 */
import { detectFreezes } from './stats.ts';

/** A cumulative counter read at a moment (wall clock, ms). */
export interface CounterSample {
  at: number;
  value: number;
}

/** One point of a rate series: the rate over the interval that ends at `t` (s), lasting `dt` (s). */
export interface RatePoint {
  t: number;
  dt: number;
  kbps: number;
}

/**
 * Per-interval rates (kbit/s) of a cumulative byte counter, `t` in seconds since `origin`. An
 * interval where the counter went backwards (a stream replaced) or no time passed is skipped.
 */
export function counterRates(samples: readonly CounterSample[], origin: number): RatePoint[] {
  const out: RatePoint[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const ms = b.at - a.at;
    const bytes = b.value - a.value;
    if (!(ms > 0) || bytes < 0) continue;
    out.push({ t: (b.at - origin) / 1000, dt: ms / 1000, kbps: (bytes * 8) / ms });
  }
  return out;
}

/**
 * Seconds from the start (t = 0) until the first interval whose rate reached `fraction` of the
 * ceiling; null when none did.
 */
export function rampSeconds(
  points: readonly RatePoint[],
  ceilingKbps: number,
  fraction = 0.9,
): number | null {
  const hit = points.find((p) => p.t > 0 && p.kbps >= fraction * ceilingKbps);
  return hit ? hit.t : null;
}

export interface SettleStats {
  /** The settle phase starts here (s): the end of the ramp, or where the ramp was due. */
  fromSeconds: number;
  /** How long the settle phase lasted (s) and its median rate. */
  seconds: number;
  medianKbps: number;
  /** Share of the settle phase's time with the rate in [low, high] × ceiling. */
  inBandFraction: number;
  /** Longest run of consecutive intervals under low × ceiling, s. */
  longestCollapseSeconds: number;
}

/**
 * Where the rate sits after the ramp: intervals that end after `fromSeconds` (and no later than
 * `toSeconds`) are weighed by their length. Undefined when no interval falls in the phase.
 */
export function settleStats(
  points: readonly RatePoint[],
  ceilingKbps: number,
  fromSeconds: number,
  toSeconds = Number.POSITIVE_INFINITY,
  band: { low: number; high: number } = { low: 0.5, high: 1 },
): SettleStats | undefined {
  const phase = points.filter((p) => p.t > fromSeconds && p.t <= toSeconds);
  if (phase.length === 0) return undefined;
  const low = band.low * ceilingKbps;
  const high = band.high * ceilingKbps;
  let total = 0;
  let inBand = 0;
  let run = 0;
  let longest = 0;
  for (const p of phase) {
    total += p.dt;
    if (p.kbps >= low && p.kbps <= high) inBand += p.dt;
    if (p.kbps < low) {
      run += p.dt;
      longest = Math.max(longest, run);
    } else {
      run = 0;
    }
  }
  const sorted = phase.map((p) => p.kbps).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    fromSeconds,
    seconds: total,
    medianKbps: median,
    inBandFraction: total > 0 ? inBand / total : 0,
    longestCollapseSeconds: longest,
  };
}

export interface FrozenTime {
  count: number;
  frozenMs: number;
  measuredMs: number;
  /** frozenMs / measuredMs. */
  ratio: number;
}

/**
 * Frozen time of a viewer from the times frames were shown (ascending, ms), over the measured
 * window, as Chrome counts freezes (webrtc-stats `freezeCount`: a gap between two shown frames of
 * at least max(3 × mean gap, mean gap + 150 ms), over the last 30 gaps; the whole gap is frozen).
 * Video that stopped and did not come back before `windowEnd` is frozen too, from the last frame
 * shown: Chrome would count that freeze only when the next frame comes.
 */
export function frozenTime(
  shownTimes: readonly number[],
  windowStart: number,
  windowEnd: number,
): FrozenTime {
  const measuredMs = Math.max(0, windowEnd - windowStart);
  const times = shownTimes.filter((t) => t >= windowStart && t <= windowEnd);
  const freezes = detectFreezes(times);
  let count = freezes.count;
  let frozenMs = freezes.totalMs;
  const last = times.at(-1);
  const tail = last === undefined ? measuredMs : windowEnd - last;
  if (tail > 0 && tail >= freezeThresholdMs(times)) {
    count++;
    frozenMs += tail;
  }
  return { count, frozenMs, measuredMs, ratio: measuredMs > 0 ? frozenMs / measuredMs : 0 };
}

/** One freeze of the picture a viewer saw: when it ended and how long it lasted, ms. */
export interface PictureFreeze {
  at: number;
  durationMs: number;
}

/**
 * Frozen time of the picture a viewer saw, from the times its page presented frames (ascending,
 * ms; with a backup picture, the frames of whichever was on screen), over [from, to]. As Chrome
 * counts a freeze, by when it ends: a gap that ends in the window counts whole, even when it
 * began before. Also lists each freeze (one still going at `to` ends there).
 */
export function pictureFrozenTime(
  presented: readonly number[],
  from: number,
  to: number,
): FrozenTime & { freezes: PictureFreeze[] } {
  // the frames before the window set the mean gap a freeze is judged against, as in Chrome
  const times = presented.filter((t) => t <= to);
  const freezes: PictureFreeze[] = detectFreezes(times)
    .events.filter((e) => e.at >= from)
    .map((e) => ({ at: e.at, durationMs: e.durationMs }));
  const last = times.at(-1);
  const tail = to - Math.max(last ?? from, from);
  if (tail > 0 && (last === undefined || last < from || tail >= freezeThresholdMs(times))) {
    freezes.push({ at: to, durationMs: tail });
  }
  const measuredMs = Math.max(0, to - from);
  const frozenMs = freezes.reduce((sum, f) => sum + f.durationMs, 0);
  return {
    count: freezes.length,
    frozenMs,
    measuredMs,
    ratio: measuredMs > 0 ? Math.min(1, frozenMs / measuredMs) : 0,
    freezes,
  };
}

/** The gap that would count as a freeze after these frames (Chrome's rule; 150 ms with no history). */
export function freezeThresholdMs(shownTimes: readonly number[]): number {
  const gaps: number[] = [];
  for (let i = Math.max(1, shownTimes.length - 30); i < shownTimes.length; i++)
    gaps.push(shownTimes[i]! - shownTimes[i - 1]!);
  if (gaps.length === 0) return 150;
  const avg = gaps.reduce((s, g) => s + g, 0) / gaps.length;
  return Math.max(3 * avg, avg + 150);
}

/** One frame as the viewer got it: captured (sent) at `sentAt`, shown at `shownAt` (ms). */
export interface ShownFrame {
  sentAt: number;
  shownAt: number;
}

/** How recovery is judged: video is back when it plays on for `sustainMs` with no gap of `maxGapMs`. */
export const RECOVERY_SUSTAIN_MS = 1000;
export const RECOVERY_MAX_GAP_MS = 400;

/**
 * Time from the end of an outage (the link is back) to live video on the viewer's screen: the
 * first frame captured at or after the link returned that starts playback going on for
 * `RECOVERY_SUSTAIN_MS` with no gap of `RECOVERY_MAX_GAP_MS` or more (a single frame followed by
 * a still picture is not video back). Frames from before or during the outage that arrive late
 * show the past and do not count. Playback still going when the data ends (`until`, ms) counts
 * as sustained. Undefined when video did not come back. `frames` in any order.
 */
export function recoveryMs(
  outage: { startAt: number; endAt: number },
  frames: readonly ShownFrame[],
  until = Number.POSITIVE_INFINITY,
): number | undefined {
  const live = frames
    .filter((f) => f.sentAt >= outage.endAt)
    .map((f) => f.shownAt)
    .sort((a, b) => a - b);
  let runStart: number | undefined;
  let previous: number | undefined;
  for (const t of live) {
    if (runStart === undefined || previous === undefined || t - previous >= RECOVERY_MAX_GAP_MS)
      runStart = t;
    previous = t;
    if (t - runStart >= RECOVERY_SUSTAIN_MS) return runStart - outage.endAt;
  }
  // the data ended while video was still playing
  if (runStart !== undefined && previous !== undefined && until - previous < RECOVERY_MAX_GAP_MS)
    return runStart - outage.endAt;
  return undefined;
}

/** Overlapping windows merged (the link is down while any direction named is down). */
export function mergeWindows(
  windows: readonly { where: string; startAt: number; endAt: number }[],
): { where: string; startAt: number; endAt: number }[] {
  const sorted = [...windows].sort((a, b) => a.startAt - b.startAt);
  const out: { where: string; startAt: number; endAt: number }[] = [];
  for (const w of sorted) {
    const last = out.at(-1);
    if (last && w.startAt <= last.endAt) {
      last.endAt = Math.max(last.endAt, w.endAt);
      if (!last.where.split('+').includes(w.where)) last.where += `+${w.where}`;
    } else {
      out.push({ ...w });
    }
  }
  return out;
}
