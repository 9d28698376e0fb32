/**
 * Latency statistics of a benchmark, as pure functions: percentiles, summaries, which frames a
 * decoder could show and when, freezes (W3C webrtc-stats definition), and recovery after outages.
 */

import { percentile } from '../core/stats.ts';
import { recoveryMs } from './resilience.ts';

export { percentile };

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Percentile `p` (0..100) of ascending `sorted` values, linear between closest ranks. */

/** Count, min, mean, p50/p95/p99 and max; undefined for no values. */
export function summarize(values: readonly number[]): Summary | undefined {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return undefined;
  const sorted = [...finite].sort((a, b) => a - b);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    min: sorted[0]!,
    mean: sum / sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}

/** Points of an empirical CDF, at most `points` of them (for charts). */
export function cdf(values: readonly number[], points = 200): { x: number; p: number }[] {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const out: { x: number; p: number }[] = [];
  const step = Math.max(1, Math.floor(sorted.length / points));
  for (let i = 0; i < sorted.length; i += step)
    out.push({ x: sorted[i]!, p: (i + 1) / sorted.length });
  const last = sorted[sorted.length - 1]!;
  if (out[out.length - 1]!.x !== last || out[out.length - 1]!.p !== 1) out.push({ x: last, p: 1 });
  return out;
}

/** One video frame as sent and (maybe) received, times in ms on one clock. */
export interface FrameRecord {
  sentAt: number;
  keyframe: boolean;
  /** When its last packet arrived (after repair); undefined if it never completed. */
  receivedAt?: number;
}

export interface RenderedFrame {
  index: number;
  sentAt: number;
  /** When a decoder showing frames in order, as soon as they are decodable, would show it. */
  renderedAt: number;
}

/**
 * Which frames a decoder could show, and when: a frame is decodable when it is complete and is a
 * keyframe or follows a decodable frame (VP8 inter frames need their predecessor); frames are
 * shown in order, so one that completes before its predecessor waits for it. `frames` are in
 * sending order.
 */
export function renderTimeline(frames: readonly FrameRecord[]): RenderedFrame[] {
  const out: RenderedFrame[] = [];
  let chainOk = false;
  let lastShown = Number.NEGATIVE_INFINITY;
  frames.forEach((f, index) => {
    const complete = f.receivedAt !== undefined;
    chainOk = complete && (f.keyframe || chainOk);
    if (!chainOk) return;
    const renderedAt = Math.max(f.receivedAt!, lastShown);
    lastShown = renderedAt;
    out.push({ index, sentAt: f.sentAt, renderedAt });
  });
  return out;
}

export interface Freeze {
  /** When the frame after the freeze was shown. */
  at: number;
  durationMs: number;
}

export interface FreezeStats {
  count: number;
  totalMs: number;
  events: Freeze[];
}

/**
 * Freezes as webrtc-stats defines `freezeCount`: the interval between two consecutively rendered
 * frames is a freeze when it is at least max(3 × avg, avg + 150 ms), avg being the mean interval
 * over the last 30 rendered frames. `renderTimes` ascending, ms.
 */
export function detectFreezes(renderTimes: readonly number[]): FreezeStats {
  const events: Freeze[] = [];
  const window: number[] = [];
  let windowSum = 0;
  for (let i = 1; i < renderTimes.length; i++) {
    const d = renderTimes[i]! - renderTimes[i - 1]!;
    if (window.length > 0) {
      const avg = windowSum / window.length;
      if (d >= Math.max(3 * avg, avg + 150)) events.push({ at: renderTimes[i]!, durationMs: d });
    }
    window.push(d);
    windowSum += d;
    if (window.length > 30) windowSum -= window.shift()!;
  }
  return { count: events.length, totalMs: events.reduce((s, e) => s + e.durationMs, 0), events };
}

export interface OutageRecovery {
  /** Leg and direction: `buyer.up`. */
  where: string;
  /** Wall-clock start and end of the outage, ms. */
  startAt: number;
  endAt: number;
  /** From the end of the outage until live video played again (see `recoveryMs`); undefined: never, within the run. */
  recoveryMs?: number;
}

/**
 * Recovery after each outage: from its end (the link is back) to live video playing again (see
 * `recoveryMs`); `until`: when the data ends.
 */
export function outageRecovery(
  outages: readonly { where: string; startAt: number; endAt: number }[],
  rendered: readonly RenderedFrame[],
  until?: number,
): OutageRecovery[] {
  const shown = rendered.map((r) => ({ sentAt: r.sentAt, shownAt: r.renderedAt }));
  return outages.map((o) => ({ ...o, recoveryMs: recoveryMs(o, shown, until) }));
}

/** Values per time bucket (for charts): the p50 and max of each `bucketMs` window. */
export function timeSeries(
  points: readonly { at: number; value: number }[],
  start: number,
  bucketMs: number,
): { t: number; p50: number; max: number; count: number }[] {
  const buckets = new Map<number, number[]>();
  for (const p of points) {
    const b = Math.floor((p.at - start) / bucketMs);
    if (b < 0) continue;
    let list = buckets.get(b);
    if (!list) {
      list = [];
      buckets.set(b, list);
    }
    list.push(p.value);
  }
  return [...buckets.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([b, values]) => {
      const sorted = values.sort((x, y) => x - y);
      return {
        t: (b * bucketMs) / 1000,
        p50: percentile(sorted, 50),
        max: sorted[sorted.length - 1]!,
        count: sorted.length,
      };
    });
}
