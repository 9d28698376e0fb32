/**
 * Forwarding time through the node: from a packet's arrival in `PublishedTrack.onRtp` to the
 * moment a subscriber's copy has been handed to the socket. One packet in `SAMPLE_EVERY` is
 * timed into a preallocated ring (no allocation per sample); the ring is observed into the
 * Prometheus histogram `returncam_forward_seconds` in batches: when it is full, and at every
 * scrape. Per thread: a media worker thread keeps its own.
 */
import { Histogram, type Registry } from 'prom-client';

/** Every this many forwarded packets one is timed (a power of two). */
export const SAMPLE_EVERY = 16;
const SAMPLE_MASK = SAMPLE_EVERY - 1;
const RING_SIZE = 4096;

/** Buckets in seconds, 0.1 to 50 ms. */
export const FORWARD_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
];

export type SampleSink = (seconds: number) => void;

class ForwardTiming {
  private readonly ring = new Float64Array(RING_SIZE);
  private count = 0;
  private tick = 0;
  private sink: SampleSink | undefined;

  /** Hot path: true when this packet is to be timed (1 in `SAMPLE_EVERY`). */
  shouldSample(): boolean {
    return (++this.tick & SAMPLE_MASK) === 0;
  }

  /** Hot path: one timed packet, ms. */
  record(ms: number): void {
    this.ring[this.count++] = ms;
    if (this.count === RING_SIZE) this.flush();
  }

  /** Samples waiting in the ring. */
  get pending(): number {
    return this.count;
  }

  /** Where batches go; without one, a full ring starts over (the oldest batch is dropped). */
  setSink(sink: SampleSink | undefined): void {
    this.sink = sink;
  }

  /** Hands every waiting sample to the sink, in seconds. */
  flush(): void {
    const n = this.count;
    this.count = 0;
    const sink = this.sink;
    if (!sink) return;
    for (let i = 0; i < n; i++) sink(this.ring[i]! / 1000);
  }
}

/** This thread's forwarding-time samples. */
export const forwardTiming = new ForwardTiming();

/** Registers `returncam_forward_seconds`, fed from `timing` (this thread's by default). */
export function registerForwardHistogram(
  registry: Registry,
  timing: ForwardTiming = forwardTiming,
): Histogram {
  const histogram: Histogram = new Histogram({
    name: 'returncam_forward_seconds',
    help: 'Time from a packet arriving from a publisher to its copy being handed to a subscriber socket (1 in 16 packets sampled)',
    buckets: FORWARD_BUCKETS,
    registers: [registry],
    collect() {
      timing.flush();
    },
  });
  timing.setSink((seconds) => histogram.observe(seconds));
  return histogram;
}
