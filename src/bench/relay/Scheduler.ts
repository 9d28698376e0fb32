/**
 * Delivers items at given times with one timer for the whole relay: a binary min-heap ordered by
 * time (ties in insertion order), and a single `setTimeout` armed for the earliest item. Times are
 * `performance.now()` milliseconds. Nothing is delivered early; Node's timers have 1 ms resolution,
 * so a delivery may be up to about a millisecond late (`lateDeliveries` counts those over 2 ms).
 */
interface Entry<T> {
  at: number;
  order: number;
  item: T;
}

export interface SchedulerOptions<T> {
  deliver: (item: T, at: number) => void;
  /** Deliver items due this close to now in the same turn (default 0: never early). */
  toleranceMs?: number;
  /** A deliver callback threw: reported here, the other items are still delivered. */
  onError?: (err: unknown) => void;
}

export class Scheduler<T> {
  private readonly heap: Entry<T>[] = [];
  private order = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Number.POSITIVE_INFINITY;
  private closed = false;
  private readonly tolerance: number;
  /** Deliveries late by more than 2 ms (event loop busy): a measure of the relay's own accuracy. */
  lateDeliveries = 0;
  delivered = 0;
  /** Sum of lateness over all deliveries, ms. */
  latenessSumMs = 0;

  constructor(private readonly options: SchedulerOptions<T>) {
    this.tolerance = options.toleranceMs ?? 0;
  }

  get size(): number {
    return this.heap.length;
  }

  schedule(at: number, item: T): void {
    if (this.closed) return;
    this.push({ at, order: this.order++, item });
    if (at < this.armedAt) this.arm();
  }

  /** Drops everything pending and stops the timer. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.heap.length = 0;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const first = this.heap[0];
    if (!first || this.closed) {
      this.armedAt = Number.POSITIVE_INFINITY;
      return;
    }
    this.armedAt = first.at;
    const wait = Math.max(0, first.at - performance.now());
    this.timer = setTimeout(this.fire, wait);
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const limit = now + this.tolerance;
    while (this.heap.length > 0 && this.heap[0]!.at <= limit) {
      const entry = this.pop()!;
      const late = now - entry.at;
      if (late > 0) this.latenessSumMs += late;
      if (late > 2) this.lateDeliveries++;
      this.delivered++;
      try {
        this.options.deliver(entry.item, entry.at);
      } catch (err) {
        this.options.onError?.(err);
      }
      if (this.closed) return;
    }
    this.arm();
  };

  private less(a: Entry<T>, b: Entry<T>): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private push(entry: Entry<T>): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Entry<T> | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
