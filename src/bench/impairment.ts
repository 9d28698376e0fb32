/**
 * The impairment maths of one direction of one leg, as a pure model: given a packet's arrival
 * time and size, it says when the packet leaves the far end, or why it was dropped. No I/O and no
 * clock of its own (the caller passes the time); randomness from a seeded PRNG, so a run can be
 * replayed exactly.
 *
 * Order of operations per packet, as on a real access link:
 *   1. outage: inside a scheduled outage window, everything is dropped;
 *   2. bottleneck: a token bucket (rate, depth) in front of a FIFO queue of bounded length; a
 *      packet that finds the queue full is dropped (tail drop), so delay grows under congestion
 *      and loss follows when it persists;
 *   3. loss after the bottleneck (the radio): Gilbert-Elliott bursts and independent random loss;
 *   4. propagation: the one-way delay is the floor (light in fibre is never faster); jitter adds
 *      on top of it, half-normal (|N(0, jitter)|, mean 0.8 × jitter), correlated from packet to
 *      packet by `jitterCorrelation`; packets keep their order (a packet never leaves before the
 *      one sent before it) unless picked for reordering, which holds it back by `reorderDelay`
 *      and lets later packets overtake it.
 */
import { seededRandom } from './clients/rtp.ts';
import type { DirectionSpec } from './profiles.ts';

export type DropCause = 'outage' | 'queue' | 'burst' | 'random';

export const DROP_CAUSES: readonly DropCause[] = ['outage', 'queue', 'burst', 'random'];

/** The fate of one packet: when it is delivered (same time base as `arrival`), or why not. */
export type Verdict =
  | { deliverAt: number; cause?: undefined }
  | { deliverAt?: undefined; cause: DropCause };

/** Counters of one direction. Delays are in ms, from arrival at the relay to delivery. */
export interface DirectionStats {
  packets: number;
  bytes: number;
  delivered: number;
  deliveredBytes: number;
  dropped: Record<DropCause, number>;
  /** Packets held back for reordering (later packets may overtake them). */
  reordered: number;
  /** Highest queue occupancy seen, packets. */
  maxQueue: number;
  /** Sum of delays of delivered packets (for the mean). */
  delaySumMs: number;
  /** Delay histogram, 1 ms bins, last bin open-ended. */
  delayHistogram: Uint32Array;
}

export const DELAY_HISTOGRAM_BINS = 5000;

function emptyStats(): DirectionStats {
  return {
    packets: 0,
    bytes: 0,
    delivered: 0,
    deliveredBytes: 0,
    dropped: { outage: 0, queue: 0, burst: 0, random: 0 },
    reordered: 0,
    maxQueue: 0,
    delaySumMs: 0,
    delayHistogram: new Uint32Array(DELAY_HISTOGRAM_BINS),
  };
}

/** Standard normal deviate (Box-Muller) from a uniform source. */
export function normal(random: () => number): number {
  let u = random();
  while (u <= Number.EPSILON) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Gilbert-Elliott two-state loss: `lost()` advances the chain by one packet. */
export class GilbertElliott {
  private bad = false;

  constructor(
    private readonly params: { p: number; r: number; badLoss: number; goodLoss: number },
    private readonly random: () => number,
  ) {}

  get inBadState(): boolean {
    return this.bad;
  }

  lost(): boolean {
    if (this.bad) {
      if (this.random() < this.params.r) this.bad = false;
    } else if (this.random() < this.params.p) {
      this.bad = true;
    }
    return this.random() < (this.bad ? this.params.badLoss : this.params.goodLoss);
  }
}

/**
 * A token bucket in front of a FIFO queue with room for `queuePackets`: `admit` returns when the
 * packet finishes leaving the bottleneck, or undefined when the queue is full.
 */
export class Bottleneck {
  private readonly bytesPerMs: number;
  private tokens: number;
  private tokensAt = Number.NEGATIVE_INFINITY;
  private lastDeparture = Number.NEGATIVE_INFINITY;
  /** Departure times of packets still in the queue (a ring buffer, oldest first). */
  private readonly departures: Float64Array;
  private head = 0;
  private count = 0;

  constructor(
    rateKbps: number,
    private readonly queuePackets: number,
    private readonly bucketBytes: number,
  ) {
    this.bytesPerMs = rateKbps / 8; // kbit/s = bits/ms; /8 = bytes/ms
    this.tokens = bucketBytes;
    this.departures = new Float64Array(queuePackets);
  }

  /** Packets waiting or being sent at `now`. */
  occupancy(now: number): number {
    while (this.count > 0 && this.departures[this.head]! <= now) {
      this.head = (this.head + 1) % this.departures.length;
      this.count--;
    }
    return this.count;
  }

  admit(now: number, size: number): number | undefined {
    if (this.occupancy(now) >= this.queuePackets) return undefined;
    const start = Math.max(now, this.lastDeparture);
    const available = Math.min(
      this.bucketBytes,
      this.tokens + (start - this.tokensAt) * this.bytesPerMs,
    );
    const departure = available >= size ? start : start + (size - available) / this.bytesPerMs;
    this.tokens =
      Math.min(this.bucketBytes, available + (departure - start) * this.bytesPerMs) - size;
    this.tokensAt = departure;
    this.lastDeparture = departure;
    this.departures[(this.head + this.count) % this.departures.length] = departure;
    this.count++;
    return departure;
  }
}

/**
 * One direction of one leg. `epoch` is the time the measurement starts: outage windows count
 * from it, and none applies before `start()` is called (connection set-up is not cut).
 */
export class LinkModel {
  readonly stats: DirectionStats = emptyStats();
  private readonly random: () => number;
  private readonly bottleneck: Bottleneck | undefined;
  private readonly burst: GilbertElliott | undefined;
  private epoch: number | undefined;
  private jitterState = 0;
  private lastInOrder = Number.NEGATIVE_INFINITY;

  constructor(
    readonly spec: DirectionSpec,
    seed = 1,
  ) {
    this.random = seededRandom(seed);
    if (spec.rateKbps) {
      this.bottleneck = new Bottleneck(spec.rateKbps, spec.queuePackets, spec.bucketBytes);
    }
    if (spec.burst) this.burst = new GilbertElliott(spec.burst, seededRandom(seed ^ 0x5bd1e995));
  }

  /** Starts the outage clock. */
  start(epoch: number): void {
    this.epoch = epoch;
  }

  /** True inside a scheduled outage at `now`. */
  inOutage(now: number): boolean {
    if (this.epoch === undefined) return false;
    const t = now - this.epoch;
    for (const o of this.spec.outages) if (t >= o.at && t < o.at + o.duration) return true;
    return false;
  }

  /** Decides the fate of a packet of `size` bytes arriving at `now`. */
  admit(now: number, size: number): Verdict {
    const s = this.stats;
    s.packets++;
    s.bytes += size;
    if (this.inOutage(now)) return this.drop('outage');
    let departure = now;
    if (this.bottleneck) {
      const d = this.bottleneck.admit(now, size);
      if (d === undefined) return this.drop('queue');
      departure = d;
      const q = this.bottleneck.occupancy(now);
      if (q > s.maxQueue) s.maxQueue = q;
    }
    if (this.burst?.lost()) return this.drop('burst');
    if (this.spec.loss > 0 && this.random() < this.spec.loss) return this.drop('random');
    let deliverAt = departure + this.spec.delay;
    if (this.spec.jitter > 0) {
      const c = this.spec.jitterCorrelation;
      this.jitterState =
        c * this.jitterState + Math.sqrt(1 - c * c) * this.spec.jitter * normal(this.random);
      deliverAt += Math.abs(this.jitterState);
    }
    if (this.spec.reorder > 0 && this.random() < this.spec.reorder) {
      // held back: it leaves after packets that arrive later; the order of the others stands
      deliverAt = Math.max(deliverAt, this.lastInOrder) + this.spec.reorderDelay;
      s.reordered++;
    } else {
      deliverAt = Math.max(deliverAt, this.lastInOrder);
      this.lastInOrder = deliverAt;
    }
    s.delivered++;
    s.deliveredBytes += size;
    const delay = deliverAt - now;
    s.delaySumMs += delay;
    s.delayHistogram[Math.min(DELAY_HISTOGRAM_BINS - 1, Math.floor(delay))]!++;
    return { deliverAt };
  }

  private drop(cause: DropCause): Verdict {
    this.stats.dropped[cause]++;
    return { cause };
  }
}

/** Total drops of a direction. */
export function droppedTotal(s: DirectionStats): number {
  return s.dropped.outage + s.dropped.queue + s.dropped.burst + s.dropped.random;
}

/** A percentile (0..100) of a 1 ms-bin delay histogram, interpolated within the bin. */
export function histogramPercentile(h: Uint32Array, p: number): number | undefined {
  let total = 0;
  for (const n of h) total += n;
  if (total === 0) return undefined;
  const target = (p / 100) * total;
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    const n = h[i]!;
    if (n > 0 && seen + n >= target) return i + (target - seen) / n;
    seen += n;
  }
  return h.length;
}
