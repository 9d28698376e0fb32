/**
 * Bitrate of a stream over a sliding window, from bytes added as packets pass: a ring of
 * fixed-width time buckets, no allocation per packet. The caller passes the time.
 */
export class RateMeter {
  private readonly buckets: Float64Array;
  private readonly bucketMs: number;
  /** Index (time / bucketMs) of the newest bucket written. */
  private head = -1;

  constructor(
    readonly windowMs = 1_000,
    buckets = 10,
  ) {
    if (!(windowMs > 0) || !Number.isInteger(buckets) || buckets < 1) {
      throw new Error(`rate meter: window ${windowMs} ms and ${buckets} buckets are not usable`);
    }
    this.buckets = new Float64Array(buckets);
    this.bucketMs = windowMs / buckets;
  }

  /** Hot path: counts `bytes` at time `now` (ms). */
  add(bytes: number, now: number): void {
    const index = Math.floor(now / this.bucketMs);
    this.advance(index);
    this.buckets[index % this.buckets.length]! += bytes;
  }

  /** Bits per second over the last window ending at `now`. */
  bitsPerSecond(now: number): number {
    this.advance(Math.floor(now / this.bucketMs));
    let bytes = 0;
    for (let i = 0; i < this.buckets.length; i++) bytes += this.buckets[i]!;
    return (bytes * 8 * 1000) / this.windowMs;
  }

  private advance(index: number): void {
    const head = this.head;
    if (index <= head) return;
    const n = this.buckets.length;
    if (head < 0 || index - head >= n) {
      this.buckets.fill(0);
    } else {
      for (let i = head + 1; i <= index; i++) this.buckets[i % n] = 0;
    }
    this.head = index;
  }
}
