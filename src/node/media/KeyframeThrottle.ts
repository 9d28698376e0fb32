export interface KeyframeThrottleOptions {
  /** Minimum spacing of requests actually sent. */
  intervalMs: number;
  /** Sends one request; `false` when it could not be sent (the window does not start). */
  send: () => boolean;
  /** Clock (ms); `performance.now` unless given. */
  now?: () => number;
}

/**
 * Spaces keyframe requests to one stream: at most one per `intervalMs`; a request inside the
 * window is not dropped but sent when the window ends (once, however many came meanwhile).
 */
export class KeyframeThrottle {
  private readonly now: () => number;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: KeyframeThrottleOptions) {
    if (!(options.intervalMs >= 0)) {
      throw new Error(`keyframe throttle: intervalMs must be >= 0, got ${options.intervalMs}`);
    }
    this.now = options.now ?? (() => performance.now());
  }

  /** True while a request waits for the window to end. */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  request(): void {
    if (this.closed) return;
    const now = this.now();
    const wait = this.lastSentAt + this.options.intervalMs - now;
    if (wait <= 0) {
      this.fire(now);
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.fire(this.now());
    }, wait);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(now: number): void {
    if (this.options.send()) this.lastSentAt = now;
  }
}
