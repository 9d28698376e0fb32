/**
 * The frames a session recorder holds to put its tracks in time order (the jitter wait plus a
 * little, a few hundred ms), kept in time order with their bytes copied into one byte ring.
 *
 * Holding each frame as its own Buffer and object kept ~100 of them per call alive across
 * several young-generation collections, so every recorded frame was promoted and freed only by a
 * full collection, whose marking stalls the packet path. The queue's fields are typed arrays and
 * the frames' bytes one ring, both allocated once and grown (doubled) only when a longer wait
 * or a higher bitrate needs it, so a frame leaves nothing behind in the heap.
 */

export interface QueuedFrameInput {
  data: Buffer;
  keyframe: boolean;
  width?: number;
  height?: number;
  codecPrivate?: Buffer;
}

/** The frame at the front of the queue: one object, refilled by {@link FrameQueue.front}. */
export interface FrontFrame {
  t: number;
  track: number;
  keyframe: boolean;
  /** 0 when the frame does not carry it. */
  width: number;
  height: number;
  codecPrivate: Buffer | undefined;
  /** A view of the ring (or the frame's own Buffer): valid until the next push. */
  data: Buffer;
}

export interface FrameQueueOptions {
  /** Starting size of the byte ring. */
  initialBytes?: number;
  /** The ring never grows past this (it doubles); a frame that does not fit then keeps its own Buffer. */
  maxBytes?: number;
  /** Starting number of entries (a power of two). */
  initialEntries?: number;
}

export const FRAME_QUEUE_DEFAULTS = {
  initialBytes: 64 * 1024,
  maxBytes: 16 * 1024 * 1024,
  initialEntries: 64,
} as const;

/**
 * A queue of frames by media time. `push` puts a frame after every frame with the same or an
 * earlier time (in order, the usual case, it goes at the end); `front` reads the earliest and
 * `shift` drops it.
 */
export class FrameQueue {
  private readonly maxBytes: number;
  // Entries, a ring of parallel arrays indexed by (head + i) & mask, in time order.
  private mask: number;
  private head = 0;
  private count = 0;
  private times: Float64Array;
  private tracks: Uint8Array;
  private keyframes: Uint8Array;
  private widths: Uint16Array;
  private heights: Uint16Array;
  /** Where the frame's bytes start in the ring (bytes ever written), -1 when it kept its own Buffer. */
  private starts: Float64Array;
  private lengths: Uint32Array;
  /** Buffers kept by reference: H.264 codec records, frames too large for the ring. Rare. */
  private extras: (Buffer | undefined)[];
  private owned: (Buffer | undefined)[];
  private ring: Buffer;
  /** Bytes ever written to the ring; it holds [written - ring.length, written). */
  private written = 0;
  /** No held frame starts before this (exact after {@link oldestStart}, a lower bound otherwise). */
  private oldest = 0;
  private readonly frontFrame: FrontFrame = {
    t: 0,
    track: 0,
    keyframe: false,
    width: 0,
    height: 0,
    codecPrivate: undefined,
    data: Buffer.alloc(0),
  };

  constructor(options: FrameQueueOptions = {}) {
    const initialBytes = options.initialBytes ?? FRAME_QUEUE_DEFAULTS.initialBytes;
    this.maxBytes = options.maxBytes ?? FRAME_QUEUE_DEFAULTS.maxBytes;
    const entries = options.initialEntries ?? FRAME_QUEUE_DEFAULTS.initialEntries;
    if (!(initialBytes > 0) || this.maxBytes < initialBytes)
      throw new RangeError('frame queue: initialBytes must be positive and at most maxBytes');
    if (!(entries > 0) || (entries & (entries - 1)) !== 0)
      throw new RangeError('frame queue: initialEntries must be a power of two');
    this.ring = Buffer.allocUnsafeSlow(initialBytes);
    this.mask = entries - 1;
    this.times = new Float64Array(entries);
    this.tracks = new Uint8Array(entries);
    this.keyframes = new Uint8Array(entries);
    this.widths = new Uint16Array(entries);
    this.heights = new Uint16Array(entries);
    this.starts = new Float64Array(entries);
    this.lengths = new Uint32Array(entries);
    this.extras = new Array(entries).fill(undefined);
    this.owned = new Array(entries).fill(undefined);
  }

  get length(): number {
    return this.count;
  }

  /** Size of the byte ring now. */
  get ringBytes(): number {
    return this.ring.length;
  }

  /** Media time of the earliest frame (Infinity when empty). */
  get firstTime(): number {
    return this.count === 0 ? Number.POSITIVE_INFINITY : this.times[this.head]!;
  }

  /** Adds a frame of `track` at media time `t`, copying its bytes. */
  push(t: number, track: number, frame: QueuedFrameInput): void {
    if (this.count === this.mask + 1) this.growEntries();
    // In time order (the common case) it goes at the end; otherwise later frames move up one.
    let i = this.count;
    while (i > 0 && this.times[(this.head + i - 1) & this.mask]! > t) {
      this.move((this.head + i - 1) & this.mask, (this.head + i) & this.mask);
      i--;
    }
    const slot = (this.head + i) & this.mask;
    this.count++;
    this.times[slot] = t;
    this.tracks[slot] = track;
    this.keyframes[slot] = frame.keyframe ? 1 : 0;
    this.widths[slot] = frame.width ?? 0;
    this.heights[slot] = frame.height ?? 0;
    this.extras[slot] = frame.codecPrivate;
    const data = frame.data;
    const start = this.place(data.length);
    if (start < 0) {
      this.starts[slot] = -1;
      this.owned[slot] = data;
    } else {
      data.copy(this.ring, start % this.ring.length);
      this.starts[slot] = start;
      this.owned[slot] = undefined;
    }
    this.lengths[slot] = data.length;
  }

  /** The earliest frame, in a shared object (call only when `length > 0`). */
  front(): FrontFrame {
    const s = this.head;
    const f = this.frontFrame;
    f.t = this.times[s]!;
    f.track = this.tracks[s]!;
    f.keyframe = this.keyframes[s] === 1;
    f.width = this.widths[s]!;
    f.height = this.heights[s]!;
    f.codecPrivate = this.extras[s];
    const start = this.starts[s]!;
    if (start < 0) f.data = this.owned[s]!;
    else {
      const at = start % this.ring.length;
      f.data = this.ring.subarray(at, at + this.lengths[s]!);
    }
    return f;
  }

  /** Drops the earliest frame. */
  shift(): void {
    if (this.count === 0) return;
    this.extras[this.head] = undefined;
    this.owned[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.count--;
    if (this.count === 0) this.oldest = this.written;
  }

  clear(): void {
    while (this.count > 0) this.shift();
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.tracks[to] = this.tracks[from]!;
    this.keyframes[to] = this.keyframes[from]!;
    this.widths[to] = this.widths[from]!;
    this.heights[to] = this.heights[from]!;
    this.starts[to] = this.starts[from]!;
    this.lengths[to] = this.lengths[from]!;
    this.extras[to] = this.extras[from];
    this.owned[to] = this.owned[from];
  }

  /**
   * Where `length` bytes go (bytes ever written; contiguous in the ring), growing the ring when
   * they would overwrite a frame still held; -1 when it cannot grow enough.
   */
  private place(length: number): number {
    if (length > this.maxBytes) return -1;
    for (;;) {
      const size = this.ring.length;
      if (length <= size) {
        let start = this.written;
        // a frame never wraps: it starts the next lap instead
        if ((start % size) + length > size) start += size - (start % size);
        if (start + length - this.oldest <= size) {
          this.written = start + length;
          return start;
        }
        this.oldest = this.oldestStart(start);
        if (start + length - this.oldest <= size) {
          this.written = start + length;
          return start;
        }
      }
      // only doubling keeps every held frame contiguous in the larger ring
      if (size * 2 > this.maxBytes) return -1;
      this.growRing(size * 2);
    }
  }

  /** The start of the earliest-written frame held in the ring, or `fallback` when none is. */
  private oldestStart(fallback: number): number {
    let oldest = fallback;
    for (let i = 0; i < this.count; i++) {
      const s = this.starts[(this.head + i) & this.mask]!;
      if (s >= 0 && s < oldest) oldest = s;
    }
    return oldest;
  }

  /** A larger ring: each held frame moves to where its position falls in it. */
  private growRing(size: number): void {
    const old = this.ring;
    const ring = Buffer.allocUnsafeSlow(size);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) & this.mask;
      const start = this.starts[slot]!;
      if (start < 0) continue;
      const from = start % old.length;
      // a frame contiguous in the old ring is contiguous in one twice (or more) its size
      old.copy(ring, start % size, from, from + this.lengths[slot]!);
    }
    this.ring = ring;
  }

  private growEntries(): void {
    const n = this.mask + 1;
    const size = n * 2;
    const order = (arr: Float64Array | Uint8Array | Uint16Array | Uint32Array) => {
      const next = new (arr.constructor as new (n: number) => typeof arr)(size);
      for (let i = 0; i < this.count; i++) next[i] = arr[(this.head + i) & this.mask]!;
      return next;
    };
    const orderRefs = (arr: (Buffer | undefined)[]) => {
      const next: (Buffer | undefined)[] = new Array(size).fill(undefined);
      for (let i = 0; i < this.count; i++) next[i] = arr[(this.head + i) & this.mask];
      return next;
    };
    this.times = order(this.times) as Float64Array;
    this.tracks = order(this.tracks) as Uint8Array;
    this.keyframes = order(this.keyframes) as Uint8Array;
    this.widths = order(this.widths) as Uint16Array;
    this.heights = order(this.heights) as Uint16Array;
    this.starts = order(this.starts) as Float64Array;
    this.lengths = order(this.lengths) as Uint32Array;
    this.extras = orderRefs(this.extras);
    this.owned = orderRefs(this.owned);
    this.head = 0;
    this.mask = size - 1;
  }
}
