/**
 * What one subscriber's downlink can carry, from its own feedback: a loss-based AIMD on RTCP
 * receiver reports (as libwebrtc's send-side loss controller: under 2 % loss grow ~8 % per
 * second, over 10 % cut by half the loss, in between hold) bounded by the receiver's REMB when
 * the REMB says something. Pure: the caller passes the time.
 */

export interface LinkEstimateOptions {
  /** Estimate before any feedback. Optimistic: a subscriber starts on the best layer and is moved down on evidence. */
  startBps?: number;
  /** Floor of the loss-based estimate. */
  minBps?: number;
  /** Ceiling of the loss-based estimate (growth stops there; the caller may move it). */
  maxBps?: number;
  /** Loss below this grows the estimate. */
  lowLoss?: number;
  /** Loss above this cuts the estimate by `loss / 2`. */
  highLoss?: number;
  /** Growth factor per second of low loss. */
  growthPerSecond?: number;
  /** A REMB older than this is ignored. */
  rembTimeoutMs?: number;
  /**
   * A receiver-side estimator stops growing at ~1.5 × what it receives. A REMB at least this many
   * times the rate sent to it is that ceiling, not a measured limit, and does not hold the
   * estimate down (otherwise a subscriber could never be moved to a bigger layer).
   */
  rembCeilingRatio?: number;
  /**
   * After the node raises what it sends (a bigger layer), a receiver-side estimator needs a few
   * seconds to follow (it grows ~8 %/s): for this long a REMB that is not falling is not taken
   * as a limit.
   */
  rembGraceMs?: number;
}

export const LINK_ESTIMATE_DEFAULTS = {
  startBps: 2_000_000,
  minBps: 30_000,
  maxBps: 10_000_000,
  lowLoss: 0.02,
  highLoss: 0.1,
  growthPerSecond: 1.08,
  rembTimeoutMs: 3_000,
  rembCeilingRatio: 1.4,
  rembGraceMs: 5_000,
} as const;

export class LinkEstimate {
  private readonly o: Required<LinkEstimateOptions>;
  private lossBasedBps: number;
  private ceilingBps: number;
  private lastReportAt: number | undefined;
  private remb: number | undefined;
  private rembAt = Number.NEGATIVE_INFINITY;
  private loss = 0;
  private graceUntil = Number.NEGATIVE_INFINITY;
  private rembAtRaise: number | undefined;

  constructor(options: LinkEstimateOptions = {}) {
    this.o = { ...LINK_ESTIMATE_DEFAULTS, ...options };
    for (const [name, value] of Object.entries(this.o)) {
      if (!Number.isFinite(value) || value < 0) {
        throw new Error(`link estimate: ${name} must be a non-negative number, got ${value}`);
      }
    }
    this.ceilingBps = this.o.maxBps;
    this.lossBasedBps = Math.min(this.o.startBps, this.ceilingBps);
  }

  /** Loss fraction of the latest receiver report (0..1). */
  get lossFraction(): number {
    return this.loss;
  }

  /** The latest REMB, if any. */
  get rembBps(): number | undefined {
    return this.remb;
  }

  /** The loss-based part alone (under the ceiling). */
  get lossBased(): number {
    return Math.min(this.lossBasedBps, this.ceilingBps);
  }

  /**
   * Moves the ceiling (never below the floor): the estimate reads no higher, and low loss does
   * not grow it past the ceiling.
   */
  setCeiling(bps: number): void {
    this.ceilingBps = Math.max(this.o.minBps, Math.min(this.o.maxBps, bps));
  }

  /** A receiver report's fraction lost (0..1) for the stream the node sends. */
  onReceiverReport(fractionLost: number, now: number): void {
    const loss = Math.min(1, Math.max(0, Number.isFinite(fractionLost) ? fractionLost : 0));
    this.loss = loss;
    const since = this.lastReportAt === undefined ? 1000 : now - this.lastReportAt;
    this.lastReportAt = now;
    const seconds = Math.min(2, Math.max(0, since) / 1000);
    const before = this.lossBasedBps;
    if (loss < this.o.lowLoss) {
      this.lossBasedBps = Math.max(
        before,
        Math.min(this.ceilingBps, before * this.o.growthPerSecond ** seconds),
      );
    } else if (loss > this.o.highLoss) {
      // Cut from what the estimate reads now, not from a value above the ceiling.
      this.lossBasedBps = Math.min(before, this.ceilingBps) * (1 - loss / 2);
    }
    this.lossBasedBps = Math.max(this.o.minBps, Math.min(this.o.maxBps, this.lossBasedBps));
  }

  /** A REMB (receiver estimated maximum bitrate) for the streams the node sends. */
  onRemb(bps: number, now: number): void {
    if (!Number.isFinite(bps) || bps < 0) return;
    this.remb = bps;
    this.rembAt = now;
  }

  /** The node has just started sending more (a subscriber's first or a bigger layer). */
  onRateRaised(now: number): void {
    this.graceUntil = now + this.o.rembGraceMs;
    this.rembAtRaise = this.remb;
  }

  /** The estimate now, given what the node is sending this subscriber (`sentBps`). */
  value(now: number, sentBps: number): number {
    let bps = Math.min(this.lossBasedBps, this.ceilingBps);
    const remb = this.remb;
    if (
      remb !== undefined &&
      now - this.rembAt <= this.o.rembTimeoutMs &&
      remb < this.o.rembCeilingRatio * sentBps &&
      !this.rembCatchingUp(now, remb)
    ) {
      bps = Math.min(bps, remb);
    }
    return bps;
  }

  /** Within the grace after a raise, a REMB that has not fallen is still catching up. */
  private rembCatchingUp(now: number, remb: number): boolean {
    if (now >= this.graceUntil) return false;
    return this.rembAtRaise === undefined || remb >= 0.95 * this.rembAtRaise;
  }
}
