export interface MediaClockOptions {
  /** RTP clock rate of the track (90000 video, 48000 Opus). */
  clockRate: number;
  /** Rebase when RTP time runs this far ahead of arrival time. */
  maxAheadMs?: number;
  /** Rebase when RTP time falls this far behind arrival time (a stalled or reset sender clock). */
  maxBehindMs?: number;
}

/**
 * Maps one track's RTP timestamps to media time (ms since the recording started) without sender
 * reports: the first frame is placed at its arrival time, later frames follow the RTP clock, and
 * when the RTP clock jumps (a sender restart, a camera that paused its clock) the track is placed
 * at arrival time again. Media time never goes backwards.
 */
export class MediaClock {
  private baseExt: number | undefined;
  private baseMs = 0;
  private lastExt = 0;
  private lastMs = Number.NEGATIVE_INFINITY;
  private readonly maxAheadMs: number;
  private readonly maxBehindMs: number;
  /** How often the track was placed at arrival time again. */
  rebases = 0;

  constructor(private readonly options: MediaClockOptions) {
    this.maxAheadMs = options.maxAheadMs ?? 1000;
    this.maxBehindMs = options.maxBehindMs ?? 5000;
  }

  private unwrap(ts: number): number {
    if (this.baseExt === undefined) return ts;
    const last = this.lastExt;
    const delta = ((ts - (last % 2 ** 32) + 2 ** 32 + 2 ** 31) % 2 ** 32) - 2 ** 31;
    return last + delta;
  }

  /**
   * Media time of a frame with RTP timestamp `ts` whose first packet arrived `arrivalMs` after
   * the recording started. Whole milliseconds, strictly increasing.
   */
  toMs(ts: number, arrivalMs: number): number {
    const ext = this.unwrap(ts);
    let t: number;
    if (this.baseExt === undefined) {
      this.baseExt = ext;
      this.baseMs = Math.max(0, arrivalMs);
      t = this.baseMs;
    } else {
      t = this.baseMs + ((ext - this.baseExt) * 1000) / this.options.clockRate;
      if (t > arrivalMs + this.maxAheadMs || t < arrivalMs - this.maxBehindMs) {
        this.rebases++;
        this.baseExt = ext;
        this.baseMs = Math.max(arrivalMs, this.lastMs + 1);
        t = this.baseMs;
      }
    }
    this.lastExt = ext;
    t = Math.round(t);
    if (t <= this.lastMs) t = this.lastMs + 1;
    this.lastMs = t;
    return t;
  }
}
