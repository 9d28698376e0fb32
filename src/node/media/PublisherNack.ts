import { NackTracker } from '../../core/NackTracker.ts';

export interface PublisherNackOptions {
  /** Sends one NACK listing `lost` sequence numbers. */
  send: (lost: number[]) => void;
  /** Round trip assumed until one is measured. */
  defaultRttMs?: number;
  /** A gap is NACKed once it has been open this long (reordering allowance). */
  reorderMs?: number;
  /** NACKs per packet before giving up. */
  maxTries?: number;
  /** A packet missing for longer than this is not worth repairing (jitter budget). */
  maxAgeMs?: number;
}

export const PUBLISHER_NACK_DEFAULTS = {
  defaultRttMs: 100,
  reorderMs: 15,
  maxTries: 4,
  maxAgeMs: 1000,
  minRetryMs: 20,
  maxRetryMs: 500,
} as const;

/** Weight of a new round-trip sample in the smoothed estimate (as TCP's SRTT, RFC 6298). */
const RTT_ALPHA = 1 / 8;

/** Smoothed round trip after one more sample. */
export function smoothRtt(current: number | undefined, sampleMs: number): number {
  return current === undefined ? sampleMs : current + RTT_ALPHA * (sampleMs - current);
}

/** Spacing of repeated NACKs for a packet: a little over one round trip, clamped. */
export function retryIntervalMs(rttMs: number): number {
  const { minRetryMs, maxRetryMs } = PUBLISHER_NACK_DEFAULTS;
  return Math.min(maxRetryMs, Math.max(minRetryMs, Math.round(rttMs * 1.2)));
}

/**
 * The node's NACK generator for one publisher video stream, in place of werift's (which NACKs
 * every gap every 5 ms, ten times). A gap is NACKed once after `reorderMs`, then again at most
 * once per round trip, at most `maxTries` times and never once the packet is older than
 * `maxAgeMs`. The round trip is measured from a packet's first NACK to its repair, since a
 * send-only publisher sends no receiver reports the node could read it from.
 */
export class PublisherNack {
  private readonly tracker: NackTracker;
  private readonly send: (lost: number[]) => void;
  private rttMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(options: PublisherNackOptions) {
    const d = PUBLISHER_NACK_DEFAULTS;
    this.send = options.send;
    this.tracker = new NackTracker({
      retryMs: retryIntervalMs(options.defaultRttMs ?? d.defaultRttMs),
      reorderMs: options.reorderMs ?? d.reorderMs,
      maxTries: options.maxTries ?? d.maxTries,
      maxAgeMs: options.maxAgeMs ?? d.maxAgeMs,
    });
  }

  /** The measured round trip to the publisher, if any. */
  get roundTripMs(): number | undefined {
    return this.rttMs;
  }

  /** Packets given up on. */
  get lost(): number {
    return this.tracker.lost;
  }

  /** Hot path: one call per received packet (RTX already unwrapped). */
  received(seq: number, now: number): void {
    if (this.closed) return;
    const before = this.tracker.missingCount;
    const arrival = this.tracker.received(seq, now);
    if (arrival === 'recovered') {
      const sample = this.tracker.repairSampleMs;
      if (sample !== undefined) {
        this.tracker.repairSampleMs = undefined;
        this.rttMs = smoothRtt(this.rttMs, sample);
        this.tracker.setRetryMs(retryIntervalMs(this.rttMs));
      }
    } else if (this.tracker.missingCount > before) {
      this.schedule(now);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(now: number): void {
    const at = this.tracker.nextDueAt();
    if (at === undefined || this.closed) return;
    if (this.timer) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(this.run, Math.max(1, Math.ceil(at - now)));
    this.timer.unref();
  }

  private readonly run = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    const now = performance.now();
    const { nack } = this.tracker.due(now);
    if (nack.length > 0) this.send(nack);
    this.schedule(now);
  };
}
