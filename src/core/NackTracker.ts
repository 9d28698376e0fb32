/** Signed distance from sequence number `b` to `a` on the 16-bit RTP circle. */
export function seqDiff(a: number, b: number): number {
  const d = (a - b) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}

export interface NackTrackerOptions {
  /** Minimum time between two NACKs for the same packet (about one round trip). */
  retryMs: number;
  /** NACKs per packet before giving up. */
  maxTries: number;
  /** A packet missing for longer than this is given up. */
  maxAgeMs: number;
  /** Gaps wider than this are a stream restart, not loss. */
  maxGap?: number;
  /** A gap is NACKed only after it has been open this long (reordering allowance). Default 0. */
  reorderMs?: number;
  /** Told each sequence number given up on, as `due` gives it up. */
  onGiveUp?: (seq: number) => void;
}

export type PacketArrival = 'new' | 'duplicate' | 'recovered' | 'late';

interface Missing {
  since: number;
  firstNackAt: number;
  lastNackAt: number;
  tries: number;
}

const HISTORY = 4096;

/**
 * Receive-side loss tracking for one RTP stream: finds sequence-number gaps, says which missing
 * packets to NACK now (first after `reorderMs`, then spaced by `retryMs`, at most `maxTries`
 * times, never once older than `maxAgeMs`), recognises packets that fill a gap, and drops
 * duplicates. Pure logic: the caller passes the time.
 */
export class NackTracker {
  /** Packets given up on. */
  lost = 0;
  /**
   * Time from the first NACK of a packet to its repair, set when one arrives: a round-trip
   * sample (too long only when an earlier repair was itself lost). The caller clears it.
   */
  repairSampleMs: number | undefined;
  /**
   * With `repairSampleMs`: time from when the gap was seen to the repair, how much later than its
   * neighbours the packet came. The caller clears it.
   */
  repairDelayMs: number | undefined;
  private highest: number | undefined;
  private readonly missing = new Map<number, Missing>();
  private readonly seen = new Int32Array(HISTORY).fill(-1);
  private readonly maxGap: number;
  private readonly reorderMs: number;
  private retryMs: number;

  constructor(private readonly options: NackTrackerOptions) {
    this.maxGap = options.maxGap ?? 1000;
    this.reorderMs = options.reorderMs ?? 0;
    this.retryMs = options.retryMs;
  }

  get missingCount(): number {
    return this.missing.size;
  }

  /** Changes the spacing of repeated NACKs (e.g. when the round-trip estimate changes). */
  setRetryMs(ms: number): void {
    this.retryMs = ms;
  }

  received(seq: number, now: number): PacketArrival {
    const slot = seq & (HISTORY - 1);
    if (this.highest === undefined) {
      this.highest = seq;
      this.seen[slot] = seq;
      return 'new';
    }
    const diff = seqDiff(seq, this.highest);
    if (diff > 0) {
      if (diff > this.maxGap) {
        this.missing.clear();
      } else {
        for (let s = (this.highest + 1) & 0xffff; s !== seq; s = (s + 1) & 0xffff) {
          this.missing.set(s, {
            since: now,
            firstNackAt: 0,
            lastNackAt: Number.NEGATIVE_INFINITY,
            tries: 0,
          });
        }
      }
      this.highest = seq;
      this.seen[slot] = seq;
      return 'new';
    }
    if (this.seen[slot] === seq) return 'duplicate';
    this.seen[slot] = seq;
    const missing = this.missing.get(seq);
    if (missing) {
      this.missing.delete(seq);
      if (missing.tries > 0) {
        this.repairSampleMs = now - missing.firstNackAt;
        this.repairDelayMs = now - missing.since;
      }
      return 'recovered';
    }
    return 'late';
  }

  /**
   * `seq` needs no repair (it held no media, or was rebuilt otherwise): no longer missing, and
   * not a repair-time sample. Only for numbers at or behind the newest.
   */
  forget(seq: number): void {
    if (this.highest === undefined || seqDiff(seq, this.highest) > 0) return;
    this.seen[seq & (HISTORY - 1)] = seq;
    this.missing.delete(seq);
  }

  /** The earliest time `due` may have something to do, or undefined when nothing is missing. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const m of this.missing.values()) {
      const at =
        m.tries === 0
          ? m.since + this.reorderMs
          : Math.min(m.lastNackAt + this.retryMs, m.since + this.options.maxAgeMs);
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** Sequence numbers to NACK now; forgets (and counts as lost) the ones past their limits. */
  due(now: number): { nack: number[]; gaveUp: number } {
    const nack: number[] = [];
    let gaveUp = 0;
    for (const [seq, m] of this.missing) {
      if (m.tries >= this.options.maxTries || now - m.since > this.options.maxAgeMs) {
        this.missing.delete(seq);
        this.options.onGiveUp?.(seq);
        gaveUp++;
        continue;
      }
      if (now - m.since < this.reorderMs) continue;
      if (now - m.lastNackAt >= this.retryMs) {
        if (m.tries === 0) m.firstNackAt = now;
        m.lastNackAt = now;
        m.tries++;
        nack.push(seq);
      }
    }
    this.lost += gaveUp;
    return { nack, gaveUp };
  }
}
