import { NackTracker, type PacketArrival, seqDiff } from '../../core/NackTracker.ts';

export interface PublisherNackOptions {
  /** Sends one NACK listing `lost` sequence numbers. */
  send: (lost: number[]) => void;
  /**
   * Packets were given up on (tries or age used up, still missing): the viewers' pictures now
   * reference media that will never come, so the caller asks for a keyframe. (Chrome as a
   * viewer asks for one itself only after 3 s without a decodable frame.)
   */
  onGiveUp?: (count: number, seqs: readonly number[]) => void;
  /** A NACKed packet came back `delayMs` after its gap was seen. */
  onRepaired?: (delayMs: number, now: number) => void;
  /** Round trip assumed until one is measured. */
  defaultRttMs?: number;
  /** A gap is NACKed once it has been open this long (reordering allowance). */
  reorderMs?: number;
  /** NACKs per packet before giving up. */
  maxTries?: number;
  /** A packet missing for longer than this is not worth repairing (jitter budget). */
  maxAgeMs?: number;
  /** A gap behind a silence longer than max(this, 2 × round trip) is left to a keyframe. */
  staleGapMs?: number;
  /** A gap of more sequence numbers than this is left to a keyframe. */
  staleGapPackets?: number;
}

/**
 * What `PublisherNack.received` made of a packet: 'stale' = a gap left to a keyframe;
 * 'duplicate' = a number that already arrived (or FEC rebuilt), such as a second repair.
 */
export type NackArrival = 'ok' | 'stale' | 'duplicate';

export const PUBLISHER_NACK_DEFAULTS = {
  defaultRttMs: 100,
  reorderMs: 15,
  maxTries: 4,
  maxAgeMs: 1000,
  minRetryMs: 20,
  maxRetryMs: 500,
  staleGapMs: 500,
  staleGapPackets: 300,
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
 *
 * A gap too old to be worth repairing is not NACKed at all: one that opened behind a silence
 * longer than max(`staleGapMs`, 2 × round trip) (an outage: the missing media was sent before a
 * viewer could still play it) or that spans more than `staleGapPackets` sequence numbers. Its
 * retransmissions would reach viewers seconds late; `received` says 'stale' so the caller asks
 * for a keyframe instead. Holes still pending from before it are older still and are dropped too.
 */
export class PublisherNack {
  private tracker: NackTracker;
  private readonly trackerOptions: ConstructorParameters<typeof NackTracker>[0];
  private readonly send: (lost: number[]) => void;
  private readonly onGiveUp: ((count: number, seqs: readonly number[]) => void) | undefined;
  private readonly onRepaired: ((delayMs: number, now: number) => void) | undefined;
  /** Sequence numbers the tracker gave up on in the current `run`. */
  private givenUp: number[] = [];
  private readonly staleGapMs: number;
  private readonly staleGapPackets: number;
  /** Packets given up on by trackers replaced after a stale gap, plus the stale gaps. */
  private lostBefore = 0;
  private highest = -1;
  private lastArrivalAt = Number.NEGATIVE_INFINITY;
  private rttMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(options: PublisherNackOptions) {
    const d = PUBLISHER_NACK_DEFAULTS;
    this.send = options.send;
    this.onGiveUp = options.onGiveUp;
    this.onRepaired = options.onRepaired;
    this.staleGapMs = options.staleGapMs ?? d.staleGapMs;
    this.staleGapPackets = options.staleGapPackets ?? d.staleGapPackets;
    this.trackerOptions = {
      retryMs: retryIntervalMs(options.defaultRttMs ?? d.defaultRttMs),
      reorderMs: options.reorderMs ?? d.reorderMs,
      maxTries: options.maxTries ?? d.maxTries,
      maxAgeMs: options.maxAgeMs ?? d.maxAgeMs,
      onGiveUp: (seq) => this.givenUp.push(seq),
    };
    this.tracker = new NackTracker(this.trackerOptions);
  }

  /** The measured round trip to the publisher, if any. */
  get roundTripMs(): number | undefined {
    return this.rttMs;
  }

  /** Packets given up on. */
  get lost(): number {
    return this.lostBefore + this.tracker.lost;
  }

  /** Packets missing and not yet given up on. */
  get pending(): number {
    return this.tracker.missingCount;
  }

  /** Oldest media (ms behind the newest) still worth repairing: max(staleGapMs, 2 × RTT). */
  get repairWindowMs(): number {
    const rtt = this.rttMs ?? this.trackerOptions.retryMs / 1.2;
    return Math.max(this.staleGapMs, 2 * rtt);
  }

  /**
   * Hot path: one call per received packet (RTX already unwrapped). 'stale' when the packet ends
   * a gap too old to repair: nothing of it is NACKed and the caller should ask for a keyframe.
   * 'duplicate' when the number already arrived: a repair that came after an earlier copy (each
   * NACK retry can bring one) or a copy sent as probe padding, which viewers need not get again.
   */
  received(seq: number, now: number): NackArrival {
    if (this.closed) return 'ok';
    const silentFor = now - this.lastArrivalAt;
    this.lastArrivalAt = now;
    if (this.highest >= 0) {
      const jump = seqDiff(seq, this.highest);
      if (jump <= 0) return this.arrive(seq, now) === 'duplicate' ? 'duplicate' : 'ok';
      this.highest = seq;
      const missing = jump - 1;
      if (missing > 0 && (missing > this.staleGapPackets || silentFor > this.repairWindowMs)) {
        this.restartAt(seq, now, missing);
        return 'stale';
      }
    } else {
      this.highest = seq;
    }
    this.arrive(seq, now);
    return 'ok';
  }

  /** `seq` needs no NACK: it held no media, or FEC rebuilt it (no round-trip sample either). */
  forget(seq: number): void {
    this.tracker.forget(seq);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Forgets every hole up to `seq` (counted lost) and tracks on from `seq`. */
  private restartAt(seq: number, now: number, gap: number): void {
    this.lostBefore += this.tracker.lost + this.tracker.missingCount + gap;
    this.tracker = new NackTracker({
      ...this.trackerOptions,
      retryMs: this.rttMs === undefined ? this.trackerOptions.retryMs : retryIntervalMs(this.rttMs),
    });
    this.tracker.received(seq, now);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arrive(seq: number, now: number): PacketArrival {
    const before = this.tracker.missingCount;
    const arrival = this.tracker.received(seq, now);
    if (arrival === 'recovered') {
      const sample = this.tracker.repairSampleMs;
      if (sample !== undefined) {
        this.tracker.repairSampleMs = undefined;
        this.rttMs = smoothRtt(this.rttMs, sample);
        this.tracker.setRetryMs(retryIntervalMs(this.rttMs));
        const delay = this.tracker.repairDelayMs;
        this.tracker.repairDelayMs = undefined;
        if (delay !== undefined) this.onRepaired?.(delay, now);
      }
    } else if (this.tracker.missingCount > before) {
      this.schedule(now);
    }
    return arrival;
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
    this.givenUp = [];
    const { nack, gaveUp } = this.tracker.due(now);
    if (nack.length > 0) this.send(nack);
    if (gaveUp > 0) this.onGiveUp?.(gaveUp, this.givenUp);
    this.schedule(now);
  };
}
