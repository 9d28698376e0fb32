/**
 * What one subscriber's downlink can carry, from its own feedback: a loss-based AIMD on RTCP
 * receiver reports (as libwebrtc's send-side loss controller: under 2 % loss grow ~8 % per
 * second, over 10 % cut by half the loss, in between hold), and the receiver's REMB: a falling
 * REMB cuts the estimate, and a REMB under the rate sent that has stopped climbing holds it down.
 * Pure: the caller passes the time.
 *
 * Why not any REMB under the rate sent: Chrome's receive-side estimator starts near 50 kbit/s and
 * climbs 8-10 %/s however much it receives (measured: 47 k -> 165 k over 13 s while it received a
 * clean 500 k). While it climbs it says "not converged yet", not "congested"; a fall (overuse: it
 * drops to ~0.85 x what it receives) or a plateau under what it is sent is a limit.
 */

import { seqDiff } from '../../core/NackTracker.ts';

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
  /** A REMB at most this share of the previous one is a fall (overuse): the estimate follows it. */
  rembFallRatio?: number;
  /** A REMB older than this is ignored. */
  rembTimeoutMs?: number;
  /**
   * Reports resuming after a silence this long (an outage in both directions) say what was lost
   * while nothing got through, not what the link carries now: their loss neither cuts nor grows
   * the estimate.
   */
  silenceMs?: number;
}

export const LINK_ESTIMATE_DEFAULTS = {
  startBps: 2_000_000,
  minBps: 30_000,
  maxBps: 10_000_000,
  lowLoss: 0.02,
  highLoss: 0.1,
  growthPerSecond: 1.08,
  rembFallRatio: 0.95,
  rembTimeoutMs: 3_000,
  silenceMs: 2_500,
} as const;

export class LinkEstimate {
  private readonly o: Required<LinkEstimateOptions>;
  private lossBasedBps: number;
  private ceilingBps: number;
  private lastReportAt: number | undefined;
  private remb: number | undefined;
  private rembAt = Number.NEGATIVE_INFINITY;
  /** The REMB about a second before the latest, to tell a climbing one from a plateau. */
  private rembAnchor: { bps: number; at: number } | undefined;
  private rembClimbing = true;
  private loss = 0;

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

  /**
   * A receiver report's loss (0..1) on the subscriber's own leg: of the packets the node sent it,
   * not counting sequence numbers the node never sent (the publisher's uplink lost them).
   * Returns false when the report came after a silence and its loss was not acted on.
   */
  onReceiverReport(fractionLost: number, now: number): boolean {
    const loss = Math.min(1, Math.max(0, Number.isFinite(fractionLost) ? fractionLost : 0));
    const since = this.lastReportAt === undefined ? 1000 : now - this.lastReportAt;
    this.lastReportAt = now;
    if (since > this.o.silenceMs) {
      // What went missing during the outage says nothing about the link now that it is back.
      this.loss = 0;
      return false;
    }
    this.loss = loss;
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
    return true;
  }

  /** Reports are arriving and the latest showed loss below `lowLoss`. */
  clean(now: number): boolean {
    return (
      this.lastReportAt !== undefined &&
      now - this.lastReportAt <= this.o.silenceMs &&
      this.loss < this.o.lowLoss
    );
  }

  /**
   * The node tries sending `bps` again (leaving still-frame mode): the estimate reads at least
   * that. Reports with real loss, or a falling REMB, cut it again.
   */
  probe(bps: number): void {
    this.lossBasedBps = Math.max(
      this.lossBasedBps,
      Math.max(this.o.minBps, Math.min(this.ceilingBps, bps)),
    );
  }

  /**
   * A REMB (receiver estimated maximum bitrate) for the streams the node sends (`sentBps` now):
   * when it falls below what is sent, the estimate is cut to it (and grows again from there on
   * clean reports).
   */
  onRemb(bps: number, now: number, sentBps: number): void {
    if (!Number.isFinite(bps) || bps < 0) return;
    const previous = this.remb;
    this.remb = bps;
    this.rembAt = now;
    // A REMB that falls while the node sends less than it says (the publisher paused, an outage
    // upstream) follows what arrives, not what the link carries: not a cut.
    if (previous !== undefined && bps <= this.o.rembFallRatio * previous && bps < sentBps) {
      this.lossBasedBps = Math.max(this.o.minBps, Math.min(this.lossBasedBps, bps));
    }
    const anchor = this.rembAnchor;
    if (anchor === undefined) {
      this.rembAnchor = { bps, at: now };
    } else if (now - anchor.at >= 1_000) {
      this.rembClimbing = bps > 1.02 * anchor.bps;
      anchor.bps = bps;
      anchor.at = now;
    }
  }

  /**
   * The publisher has gone quiet (an outage upstream): the viewer's REMB follows what arrives, so
   * its standing still now says nothing about the link. It counts as climbing again until a
   * second of REMBs after media resumes shows otherwise.
   */
  upstreamSilent(): void {
    this.rembClimbing = true;
    this.rembAnchor = undefined;
  }

  /** The estimate now, given what the node is sending this subscriber (`sentBps`). */
  value(now: number, sentBps: number): number {
    const bps = Math.min(this.lossBasedBps, this.ceilingBps);
    const remb = this.remb;
    if (
      remb !== undefined &&
      !this.rembClimbing &&
      remb < sentBps &&
      now - this.rembAt <= this.o.rembTimeoutMs
    ) {
      return Math.min(bps, remb);
    }
    return bps;
  }
}

/** Entries of {@link LegLoss}'s ring: 8 s of a 1000-packet/s stream. */
const SENT_RING = 8192;
/**
 * A loss figure covers at least this many packets the node sent, or this long: Chrome sends a
 * receiver report with each NACK and PLI, some 5–250 ms apart, and one packet missing of the five
 * such a report covers (a repair the node forwarded late, still on its way) read as 20 % loss.
 */
const MIN_SAMPLE_PACKETS = 30;
/** Receivers report at least about once a second; a longer gap means their link was down. */
const REPORT_SILENCE_MS = 2_000;
const MAX_SAMPLE_MS = 1_000;

/** One report block of a subscriber's RTCP receiver report, as werift parses it. */
export interface ReceiverReportBlock {
  ssrc: number;
  /** Raw 8-bit fraction (× 256). */
  fractionLost: number;
  /** Cumulative, 24 bits as on the wire. */
  packetsLost: number;
  /** Extended highest sequence number received. */
  highestSequence: number;
}

/**
 * The loss on a subscriber's own leg between two of its receiver reports: of the sequence numbers
 * the node sent it in that interval, the share it did not get. The forwarder keeps the
 * publisher's numbering (so a late repair from the publisher still fills its place), which leaves
 * a hole wherever the publisher's uplink lost a packet; the subscriber counts those holes as lost
 * (and NACKs them in vain) although the node never sent them, so they are taken out here. The
 * report's own fraction-lost field includes them: it is used only if nothing was sent yet.
 *
 * Reports are summed until they cover `MIN_SAMPLE_PACKETS` sent packets or `MAX_SAMPLE_MS`; a
 * packet a report counted lost and a later one received (it arrived late) cancels out.
 *
 * A late send (a publisher repair the node forwarded after newer numbers) within the last round
 * trip was still on its way when the subscriber wrote the report, under its highest number, so
 * the report counts it lost. It is taken out like a hole and carried to the next report, where
 * its arrival lowers the cumulative count again (or, lost on the leg, does not). Without that, a
 * burst of repairs forwarded just before a report read as the leg's loss: 4 of 31 packets
 * (12.9 %) on a leg that lost 4 packets in 40 s; 20 % sends a viewer to still frames.
 */
export class LegLoss {
  /**
   * When recent sequence numbers went out (ms), in a ring indexed by the number's low bits, with
   * the number itself beside it: a report looks back about a second, a few hundred packets. (A
   * 65536-entry table per viewer was 512 KB each, filled page by page over a call.)
   */
  private readonly sentAt = new Float64Array(SENT_RING);
  private readonly sentSeq = new Uint16Array(SENT_RING);
  /** 1 where the number went out after a newer one. */
  private readonly sentLate = new Uint8Array(SENT_RING);
  private newestSent = -1;
  private last: { highest: number; lost: number; at: number } | undefined;
  private first: { seq: number; at: number } | undefined;
  /** Numbers sent before this (ms) are not counted: they went out before a report silence. */
  private horizon = Number.NEGATIVE_INFINITY;
  /** Reports not yet turned into a figure: packets sent in them, and lost of those. */
  private sample: { sent: number; lost: number; since: number } | undefined;
  /** Numbers the last report covered that were still on their way to the subscriber. */
  private inFlight = 0;
  /** What the latest figure was made of (for logs). */
  lastSample: { sent: number; lost: number } | undefined;
  /** An ICE restart is under way (see {@link pause}). */
  private paused = false;

  /**
   * The leg's path is being replaced (an ICE restart): what the node sends until {@link resume}
   * may be lost with the old path, and the reports that come meanwhile would charge it to the
   * link. No figures until then.
   */
  pause(): void {
    this.paused = true;
  }

  /**
   * The new path carries media from `now`: numbers sent before it are not counted, as after a
   * report silence.
   */
  resume(now: number): void {
    if (!this.paused) return;
    this.paused = false;
    this.horizon = now;
    this.sample = undefined;
    this.inFlight = 0;
  }

  /** The node sent (not resent) sequence number `seq` at `now` (> 0). */
  sent(seq: number, now: number): void {
    const slot = seq & (SENT_RING - 1);
    const n = seq & 0xffff;
    this.sentAt[slot] = now;
    this.sentSeq[slot] = n;
    // After a newer number: a late send (a publisher repair), which may pass a report.
    const late = this.newestSent >= 0 && seqDiff(n, this.newestSent) < 0;
    this.sentLate[slot] = late ? 1 : 0;
    if (!late) this.newestSent = n;
    this.first ??= { seq: n, at: now };
  }

  /**
   * The loss (0..1) on the leg since the last figure, once the reports since then cover enough;
   * undefined until they do. `rttMs`: the leg's round trip (0 when not known yet).
   */
  report(block: ReceiverReportBlock, now: number, rttMs = 0): number | undefined {
    const highest = block.highestSequence >>> 0;
    const lost = block.packetsLost & 0xffffff;
    // The first report covers everything from the first number sent (the receiver counts from
    // the first it got).
    const first = this.first;
    const previous =
      this.last ??
      (first && {
        highest: (highest - ((highest - first.seq) & 0xffff) - 1) >>> 0,
        lost: 0,
        at: first.at,
      });
    this.last = { highest, lost, at: now };
    if (this.paused) return undefined;
    if (!previous) return block.fractionLost / 256;
    // 16 bits apart: some receivers (werift) report the highest number without its cycle count.
    const expected = (highest - previous.highest) & 0xffff;
    if (expected > 0x8000) return undefined;
    // Cumulative lost is a signed 24-bit count (late arrivals and duplicates lower it).
    const lostDelta = (((lost - previous.lost) & 0xffffff) << 8) >> 8;
    // Only numbers sent since a little before the previous report count: an older mark is from
    // a previous lap of the 16-bit space.
    const since = Math.max(previous.at - 5_000, this.horizon);
    // A report after a silence (the viewer's link was down) sets a horizon for the next ones:
    // what went out before it is the outage's, which this report may not show yet (sent as the
    // link returned, before any packet did) and the next would charge to the link as it is now.
    if (now - previous.at > REPORT_SILENCE_MS) this.horizon = now;
    // Sent after this, a packet had not reached the subscriber when it wrote the report.
    const onTheWay = now - rttMs;
    let sent = 0;
    let inFlight = 0;
    for (let i = 1; i <= expected; i++) {
      const seq = (previous.highest + i) & 0xffff;
      const slot = seq & (SENT_RING - 1);
      const at = this.sentSeq[slot] === seq ? this.sentAt[slot]! : 0;
      if (at > 0 && at > since) {
        if (rttMs > 0 && at > onTheWay && this.sentLate[slot] === 1) inFlight++;
        else sent++;
      }
    }
    this.sample ??= { sent: 0, lost: 0, since: previous.at };
    const sample = this.sample;
    // Those on their way at the last report count here: arrived, the cumulative count fell by
    // one each (lostDelta); lost on the way, it did not.
    sample.sent += sent + this.inFlight;
    sample.lost += lostDelta - (expected - sent) + this.inFlight;
    this.inFlight = inFlight;
    if (sample.sent < MIN_SAMPLE_PACKETS && now - sample.since < MAX_SAMPLE_MS) return undefined;
    this.sample = undefined;
    this.lastSample = { sent: sample.sent, lost: sample.lost };
    if (sample.sent === 0) return 0;
    return Math.min(sample.sent, Math.max(0, sample.lost)) / sample.sent;
  }
}
