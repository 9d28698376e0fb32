import { seqDiff } from './rtp.ts';

export interface NackTrackerOptions {
  /** Minimum time between two NACKs for the same packet (about one round trip). */
  retryMs: number;
  /** NACKs per packet before giving up. */
  maxTries: number;
  /** A packet missing for longer than this is given up. */
  maxAgeMs: number;
  /** Gaps wider than this are a stream restart, not loss. */
  maxGap?: number;
}

export type PacketArrival = 'new' | 'duplicate' | 'recovered' | 'late';

interface Missing {
  since: number;
  lastNackAt: number;
  tries: number;
}

const HISTORY = 4096;

/**
 * Receive-side loss tracking for one RTP stream: finds sequence-number gaps, says which missing
 * packets to NACK now (spaced by `retryMs`, at most `maxTries` times), recognises packets that
 * fill a gap, and drops duplicates. Pure logic: the caller passes the time.
 */
export class NackTracker {
  /** Packets given up on. */
  lost = 0;
  private highest: number | undefined;
  private readonly missing = new Map<number, Missing>();
  private readonly seen = new Int32Array(HISTORY).fill(-1);
  private readonly maxGap: number;

  constructor(private readonly options: NackTrackerOptions) {
    this.maxGap = options.maxGap ?? 1000;
  }

  get missingCount(): number {
    return this.missing.size;
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
          this.missing.set(s, { since: now, lastNackAt: Number.NEGATIVE_INFINITY, tries: 0 });
        }
      }
      this.highest = seq;
      this.seen[slot] = seq;
      return 'new';
    }
    if (this.seen[slot] === seq) return 'duplicate';
    this.seen[slot] = seq;
    if (this.missing.delete(seq)) return 'recovered';
    return 'late';
  }

  /** Sequence numbers to NACK now; forgets (and counts as lost) the ones past their limits. */
  due(now: number): { nack: number[]; gaveUp: number } {
    const nack: number[] = [];
    let gaveUp = 0;
    for (const [seq, m] of this.missing) {
      if (m.tries >= this.options.maxTries || now - m.since > this.options.maxAgeMs) {
        this.missing.delete(seq);
        gaveUp++;
        continue;
      }
      if (now - m.lastNackAt >= this.options.retryMs) {
        m.lastNackAt = now;
        m.tries++;
        nack.push(seq);
      }
    }
    this.lost += gaveUp;
    return { nack, gaveUp };
  }
}
