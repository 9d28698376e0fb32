import type { RtpPacket } from 'werift';

export interface RetransmitHistoryOptions {
  /** Packets are kept at least this long, ms. */
  minWindowMs?: number;
  /** The window is this many round trips when that is longer. */
  rttMultiple?: number;
  /** Starting capacity (a power of two). */
  initialCapacity?: number;
  /** Capacity never grows past this (a power of two). */
  maxCapacity?: number;
}

export const RETRANSMIT_HISTORY_DEFAULTS = {
  minWindowMs: 1_000,
  rttMultiple: 3,
  initialCapacity: 256,
  maxCapacity: 8_192,
} as const;

/**
 * The packets one subscriber leg was sent, by the sequence number it saw, for answering its
 * NACKs. Keeps every packet for max(`minWindowMs`, `rttMultiple` × RTT): a ring indexed by
 * sequence number that doubles when it would overwrite a packet still inside the window (a
 * higher bitrate or a longer round trip). Stores references, allocates only when it grows.
 */
export class RetransmitHistory {
  private readonly o: Required<RetransmitHistoryOptions>;
  private packets: (RtpPacket | undefined)[];
  private sentAt: Float64Array;
  private mask: number;
  private rttMs = 0;

  constructor(options: RetransmitHistoryOptions = {}) {
    this.o = { ...RETRANSMIT_HISTORY_DEFAULTS, ...options };
    const { initialCapacity: c, maxCapacity: max } = this.o;
    if (!isPowerOfTwo(c) || !isPowerOfTwo(max) || c > max) {
      throw new Error(
        `retransmit history: capacities must be powers of two with initial <= max, got ${c} and ${max}`,
      );
    }
    this.packets = new Array(c).fill(undefined);
    this.sentAt = new Float64Array(c);
    this.mask = c - 1;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  /** How long packets are kept now, ms. */
  get windowMs(): number {
    return Math.max(this.o.minWindowMs, this.o.rttMultiple * this.rttMs);
  }

  /** The leg's round trip, when measured. */
  setRtt(rttMs: number): void {
    if (Number.isFinite(rttMs) && rttMs >= 0) this.rttMs = rttMs;
  }

  /** Hot path: `packet` was sent with (16-bit) sequence number `seq` at `now`. */
  add(seq: number, packet: RtpPacket, now: number): void {
    let slot = seq & this.mask;
    const old = this.packets[slot];
    if (
      old !== undefined &&
      now - this.sentAt[slot]! < this.windowMs &&
      this.capacity < this.o.maxCapacity &&
      old.header.sequenceNumber !== seq
    ) {
      this.grow();
      slot = seq & this.mask;
    }
    this.packets[slot] = packet;
    this.sentAt[slot] = now;
  }

  /** The packet sent as `seq`, if it is still inside the window. */
  get(seq: number, now: number): RtpPacket | undefined {
    const slot = seq & 0xffff & this.mask;
    const packet = this.packets[slot];
    if (!packet || packet.header.sequenceNumber !== (seq & 0xffff)) return undefined;
    if (now - this.sentAt[slot]! > this.windowMs) return undefined;
    return packet;
  }

  private grow(): void {
    const size = this.capacity * 2;
    const packets: (RtpPacket | undefined)[] = new Array(size).fill(undefined);
    const sentAt = new Float64Array(size);
    const mask = size - 1;
    for (let i = 0; i < this.packets.length; i++) {
      const p = this.packets[i];
      if (!p) continue;
      const slot = p.header.sequenceNumber & mask;
      packets[slot] = p;
      sentAt[slot] = this.sentAt[i]!;
    }
    this.packets = packets;
    this.sentAt = sentAt;
    this.mask = mask;
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
