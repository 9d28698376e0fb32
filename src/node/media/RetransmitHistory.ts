import { RtpPacket } from 'werift';

export interface RetransmitHistoryOptions {
  /** Packets are kept at least this long, ms. */
  minWindowMs?: number;
  /** The window is this many round trips when that is longer. */
  rttMultiple?: number;
  /** Starting number of sequence-number slots (a power of two). */
  initialCapacity?: number;
  /** Slots never grow past this (a power of two). */
  maxCapacity?: number;
  /** Starting size of the byte ring the packets are copied into. */
  initialBytes?: number;
  /** The byte ring never grows past this. */
  maxBytes?: number;
}

export const RETRANSMIT_HISTORY_DEFAULTS = {
  minWindowMs: 1_000,
  rttMultiple: 3,
  initialCapacity: 256,
  maxCapacity: 8_192,
  initialBytes: 64 * 1024,
  maxBytes: 8 * 1024 * 1024,
} as const;

/** The ring is watched in this many parts: writing into one still inside the window grows it. */
const CHUNKS = 16;
/** An RTP packet larger than this is not kept (the smallest ring holds 16 of them; UDP on a 1500-byte path carries less). */
const MAX_PACKET_BYTES = 2_048;

/**
 * The packets one subscriber leg was sent, by the sequence number it saw, for answering its
 * NACKs. Keeps every packet for max(`minWindowMs`, `rttMultiple` × RTT), and more while nothing
 * newer has taken its place.
 *
 * The packets are copied, header and payload as they went out, into one byte ring, and only
 * rebuilt as objects when one is asked for. Keeping the sent packet objects instead would hold
 * each of them (and its payload) for a second or more: past the young generation, so every
 * forwarded packet would be promoted and then collected by a full collection, whose marking
 * stalls the packet path. Copying ~1 KB costs far less than that. The slots (indexed by sequence
 * number) double when one would be reused while its packet is still inside the window, and the
 * byte ring doubles when it would overwrite a part written inside the window (a higher bitrate,
 * or a longer round trip).
 */
export class RetransmitHistory {
  private readonly o: Required<RetransmitHistoryOptions>;
  /** Per slot: the sequence number held (-1 none), where its bytes start (bytes ever written), its length, when it was sent. */
  private seqs: Int32Array;
  private starts: Float64Array;
  private lengths: Uint16Array;
  private sentAt: Float64Array;
  private mask: number;
  private ring: Buffer;
  /** Bytes ever written to the ring; the ring holds [written - ring.length, written). */
  private written = 0;
  /** When the newest packet starting in each part of the ring (this lap or the last) was sent. */
  private chunkAt: Float64Array;
  private rttMs = 0;

  constructor(options: RetransmitHistoryOptions = {}) {
    this.o = { ...RETRANSMIT_HISTORY_DEFAULTS, ...options };
    const { initialCapacity: c, maxCapacity: max, initialBytes, maxBytes } = this.o;
    if (!isPowerOfTwo(c) || !isPowerOfTwo(max) || c > max) {
      throw new Error(
        `retransmit history: capacities must be powers of two with initial <= max, got ${c} and ${max}`,
      );
    }
    if (
      !isPowerOfTwo(initialBytes) ||
      !isPowerOfTwo(maxBytes) ||
      initialBytes < CHUNKS * MAX_PACKET_BYTES ||
      initialBytes > maxBytes
    ) {
      throw new Error(
        `retransmit history: byte sizes must be powers of two with ${CHUNKS * MAX_PACKET_BYTES} <= initial <= max, got ${initialBytes} and ${maxBytes}`,
      );
    }
    this.seqs = new Int32Array(c).fill(-1);
    this.starts = new Float64Array(c);
    this.lengths = new Uint16Array(c);
    this.sentAt = new Float64Array(c);
    this.mask = c - 1;
    this.ring = Buffer.allocUnsafeSlow(initialBytes);
    this.chunkAt = new Float64Array(CHUNKS).fill(Number.NEGATIVE_INFINITY);
  }

  /** Sequence-number slots. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** Size of the byte ring. */
  get bytes(): number {
    return this.ring.length;
  }

  /** How long packets are kept now, ms. */
  get windowMs(): number {
    return Math.max(this.o.minWindowMs, this.o.rttMultiple * this.rttMs);
  }

  /** The leg's round trip, when measured. */
  setRtt(rttMs: number): void {
    if (Number.isFinite(rttMs) && rttMs >= 0) this.rttMs = rttMs;
  }

  /**
   * Hot path: the packet sent with (16-bit) sequence number `seq` at `now`, as its serialized
   * header (`header[0, headerLength)`) and payload. Both are copied.
   */
  add(
    seq: number,
    header: Uint8Array,
    headerLength: number,
    payload: Uint8Array,
    now: number,
  ): void {
    const length = headerLength + payload.length;
    if (length > MAX_PACKET_BYTES) return;
    let slot = seq & this.mask;
    if (
      this.seqs[slot]! >= 0 &&
      this.seqs[slot] !== seq &&
      now - this.sentAt[slot]! < this.windowMs &&
      this.capacity < this.o.maxCapacity
    ) {
      this.growSlots();
      slot = seq & this.mask;
    }
    const start = this.reserve(length, now);
    const at = start % this.ring.length;
    const ring = this.ring;
    // byte by byte: a header is a few dozen bytes, and `subarray` would make a view per packet
    for (let i = 0; i < headerLength; i++) ring[at + i] = header[i]!;
    ring.set(payload, at + headerLength);
    this.seqs[slot] = seq;
    this.starts[slot] = start;
    this.lengths[slot] = length;
    this.sentAt[slot] = now;
  }

  /** The packet sent as `seq`, rebuilt, if it is still inside the window. */
  get(seq: number, now: number): RtpPacket | undefined {
    const s = seq & 0xffff;
    const slot = s & this.mask;
    if (this.seqs[slot] !== s) return undefined;
    if (now - this.sentAt[slot]! > this.windowMs) return undefined;
    const start = this.starts[slot]!;
    if (start < this.written - this.ring.length) return undefined; // overwritten (ring at its most)
    const at = start % this.ring.length;
    const raw = Buffer.from(this.ring.subarray(at, at + this.lengths[slot]!));
    return RtpPacket.deSerialize(raw);
  }

  /** Where (in bytes ever written) `length` bytes go, growing the ring first if need be. */
  private reserve(length: number, now: number): number {
    for (;;) {
      const size = this.ring.length;
      let start = this.written;
      // a packet is never split across the ring's end: the tail is skipped
      const offset = start % size;
      if (offset + length > size) start += size - offset;
      const chunk = size / CHUNKS;
      const first = Math.floor(start / chunk);
      const last = Math.floor((start + length - 1) / chunk);
      // the parts entered now (not the one the last packet ended in) hold the last lap's bytes
      const entered = Math.max(
        first,
        this.written > 0 ? Math.floor((this.written - 1) / chunk) + 1 : 0,
      );
      let inWindow = false;
      for (let a = entered; a <= last && !inWindow; a++) {
        inWindow = now - this.chunkAt[a % CHUNKS]! < this.windowMs;
      }
      if (inWindow && size < this.o.maxBytes) {
        this.growRing();
        continue;
      }
      for (let a = first; a <= last; a++) this.chunkAt[a % CHUNKS] = now;
      this.written = start + length;
      return start;
    }
  }

  private growSlots(): void {
    const size = this.capacity * 2;
    const seqs = new Int32Array(size).fill(-1);
    const starts = new Float64Array(size);
    const lengths = new Uint16Array(size);
    const sentAt = new Float64Array(size);
    const mask = size - 1;
    for (let i = 0; i < this.seqs.length; i++) {
      const seq = this.seqs[i]!;
      if (seq < 0) continue;
      const slot = seq & mask;
      seqs[slot] = seq;
      starts[slot] = this.starts[i]!;
      lengths[slot] = this.lengths[i]!;
      sentAt[slot] = this.sentAt[i]!;
    }
    this.seqs = seqs;
    this.starts = starts;
    this.lengths = lengths;
    this.sentAt = sentAt;
    this.mask = mask;
  }

  /** Doubles the ring, moving the packets still in it, oldest first, to its start. */
  private growRing(): void {
    const old = this.ring;
    const oldFloor = this.written - old.length;
    const size = old.length * 2;
    const ring = Buffer.allocUnsafeSlow(size);
    const order: number[] = [];
    for (let i = 0; i < this.seqs.length; i++) {
      if (this.seqs[i]! >= 0 && this.starts[i]! >= oldFloor) order.push(i);
      else this.seqs[i] = -1;
    }
    order.sort((a, b) => this.starts[a]! - this.starts[b]!);
    const chunkAt = new Float64Array(CHUNKS).fill(Number.NEGATIVE_INFINITY);
    const chunk = size / CHUNKS;
    let written = 0;
    for (const i of order) {
      const at = this.starts[i]! % old.length;
      const length = this.lengths[i]!;
      old.copy(ring, written, at, at + length);
      this.starts[i] = written;
      const last = Math.floor((written + length - 1) / chunk);
      for (let c = Math.floor(written / chunk); c <= last; c++) {
        chunkAt[c] = Math.max(chunkAt[c]!, this.sentAt[i]!);
      }
      written += length;
    }
    this.ring = ring;
    this.written = written;
    this.chunkAt = chunkAt;
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
