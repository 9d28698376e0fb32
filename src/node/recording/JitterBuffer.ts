import type { AssembledFrame, CodecRules } from './codecs.ts';

/** The parts of an RTP packet the buffer reads (werift's packets are never changed). */
export interface RtpIn {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export interface BufferedFrame extends AssembledFrame {
  /** RTP timestamp of the frame. */
  rtpTimestamp: number;
  /** Arrival (ms, the caller's clock) of the frame's earliest packet. */
  arrival: number;
}

export interface JitterBufferOptions {
  rules: CodecRules;
  /** How long a gap may wait for a retransmission before its frame is given up. */
  deadlineMs: number;
  /** Upper bound on packets held; past it the oldest gap is given up at once. */
  maxPackets?: number;
  /** Called when a keyframe is needed (start, after a lost frame). The caller throttles. */
  onKeyframeNeeded?: () => void;
}

export interface JitterBufferStats {
  packets: number;
  duplicates: number;
  /** Packets that came after their frame was written or given up. */
  late: number;
  frames: number;
  /** Frames given up because packets were missing past the deadline or did not parse. */
  framesLost: number;
  /** Complete frames not written because they depend on a frame that was lost (waiting for a keyframe). */
  framesSkipped: number;
  keyframeRequests: number;
  /** Sequence restarts (a jump too large to be loss). */
  resets: number;
  /** Gaps between two consecutive frames that held no media (FEC numbers), passed at once. */
  emptyGaps: number;
}

/**
 * The packets held, by extended sequence number: parallel arrays indexed by `ext & mask`, no
 * object per packet. Held packets span at most MAX_JUMP plus the start's widening, so the ring
 * doubles only while it is smaller than that span (a packet landing on a slot still held).
 */
class PacketRing {
  size = 0;
  private mask!: number;
  private ext!: Float64Array;
  private ts!: Float64Array;
  private arrival!: Float64Array;
  private marker!: Uint8Array;
  private payload!: (Buffer | undefined)[];

  constructor(capacity = 64) {
    this.allocate(capacity);
  }

  /** Empty arrays of `capacity` slots (a power of two). */
  private allocate(capacity: number): void {
    this.mask = capacity - 1;
    this.ext = new Float64Array(capacity);
    this.ts = new Float64Array(capacity);
    this.arrival = new Float64Array(capacity);
    this.marker = new Uint8Array(capacity);
    this.payload = new Array(capacity).fill(undefined);
  }

  has(e: number): boolean {
    const i = e & this.mask;
    return this.payload[i] !== undefined && this.ext[i] === e;
  }

  set(e: number, ts: number, marker: boolean, payload: Buffer, arrival: number): void {
    let i = e & this.mask;
    while (this.payload[i] !== undefined && this.ext[i] !== e) {
      this.grow();
      i = e & this.mask;
    }
    if (this.payload[i] === undefined) this.size++;
    this.ext[i] = e;
    this.ts[i] = ts;
    this.marker[i] = marker ? 1 : 0;
    this.arrival[i] = arrival;
    this.payload[i] = payload;
  }

  /** The fields of a held packet (check `has` first). */
  tsOf(e: number): number {
    return this.ts[e & this.mask]!;
  }
  markerOf(e: number): boolean {
    return this.marker[e & this.mask] === 1;
  }
  arrivalOf(e: number): number {
    return this.arrival[e & this.mask]!;
  }
  payloadOf(e: number): Buffer {
    return this.payload[e & this.mask]!;
  }

  delete(e: number): void {
    const i = e & this.mask;
    if (this.payload[i] !== undefined && this.ext[i] === e) {
      this.payload[i] = undefined;
      this.size--;
    }
  }

  clear(): void {
    this.payload.fill(undefined);
    this.size = 0;
  }

  private grow(): void {
    const old = { ext: this.ext, ts: this.ts, arrival: this.arrival, marker: this.marker };
    const oldPayload = this.payload;
    this.allocate((this.mask + 1) * 2);
    for (let j = 0; j < oldPayload.length; j++) {
      const payload = oldPayload[j];
      if (payload === undefined) continue;
      const e = old.ext[j]!;
      const i = e & this.mask;
      this.ext[i] = e;
      this.ts[i] = old.ts[j]!;
      this.arrival[i] = old.arrival[j]!;
      this.marker[i] = old.marker[j]!;
      this.payload[i] = payload;
    }
  }
}

const MAX_JUMP = 3000;
/** What a call returns when no frame is ready (most calls): shared, never written to. */
const NO_FRAMES: BufferedFrame[] = Object.freeze([]) as unknown as BufferedFrame[];

/**
 * Reorders one track's RTP packets by sequence number, joins them into frames and lets a frame out
 * only when all its packets are there. A gap waits up to `deadlineMs` for a retransmission (werift
 * NACKs the publisher); then the frame is given up and, for video, nothing is written until the
 * next keyframe (a frame whose reference was lost would decode to garbage). Video also waits for a
 * keyframe at the start. A processor: `processInput` and `tick` return the frames now ready (a
 * shared empty array, not to be written to, when there are none).
 */
export class JitterBuffer {
  readonly stats: JitterBufferStats = {
    packets: 0,
    duplicates: 0,
    late: 0,
    frames: 0,
    framesLost: 0,
    framesSkipped: 0,
    keyframeRequests: 0,
    resets: 0,
    emptyGaps: 0,
  };
  private readonly rules: CodecRules;
  private deadlineMs: number;
  private readonly maxPackets: number;
  private readonly packets = new PacketRing();
  private next: number | undefined;
  private highest: number | undefined;
  private emitted = false;
  /** The first packet and the last number of the frame let out last, while nothing is lost after it. */
  private lastHead: Buffer | undefined;
  private lastEnd = -1;
  private stuckSince: number | undefined;
  private needKeyframe: boolean;

  constructor(private readonly options: JitterBufferOptions) {
    this.rules = options.rules;
    this.deadlineMs = options.deadlineMs;
    this.maxPackets = options.maxPackets ?? 2000;
    this.needKeyframe = options.rules.kind === 'video';
  }

  /** How long a gap waits for a retransmission now, ms. */
  get deadline(): number {
    return this.deadlineMs;
  }

  /** Changes how long a gap waits (the round trip to the publisher changed). */
  setDeadline(ms: number): void {
    this.deadlineMs = ms;
  }

  /** Packets waiting for their frame to complete. */
  get pending(): number {
    return this.packets.size;
  }

  private unwrap(seq: number): number {
    if (this.highest === undefined) {
      this.highest = seq + 0x100000;
      return this.highest;
    }
    const delta = ((seq - (this.highest & 0xffff) + 0x18000) & 0xffff) - 0x8000;
    const ext = this.highest + delta;
    if (ext > this.highest) this.highest = ext;
    return ext;
  }

  processInput(p: RtpIn, now: number): BufferedFrame[] {
    this.stats.packets++;
    const ext = this.unwrap(p.sequenceNumber);
    if (this.next === undefined) this.next = ext;
    if (ext - this.next > MAX_JUMP) {
      // the sender restarted its sequence (or a very long outage): start over
      this.stats.resets++;
      this.packets.clear();
      this.highest = ext;
      this.next = ext;
      this.stuckSince = undefined;
      this.lastHead = undefined;
      if (this.rules.kind === 'video') this.needKeyframe = true;
    } else if (ext < this.next) {
      if (!this.emitted && this.next - ext < 512) {
        this.next = ext; // reordered before anything left: widen the start
      } else {
        this.stats.late++;
        return NO_FRAMES;
      }
    }
    if (this.packets.has(ext)) {
      this.stats.duplicates++;
      return NO_FRAMES;
    }
    this.packets.set(ext, p.timestamp, p.marker, p.payload, now);
    return this.drain(now);
  }

  /** Gives up gaps whose deadline passed; call periodically. */
  tick(now: number): BufferedFrame[] {
    return this.drain(now);
  }

  /** Everything complete goes out and every gap is given up (the track ended). */
  flush(): BufferedFrame[] {
    return this.drain(Number.POSITIVE_INFINITY);
  }

  private drain(now: number): BufferedFrame[] {
    // Allocated only when a frame is delivered: most packets complete nothing.
    let out: BufferedFrame[] | undefined;
    const packets = this.packets;
    while (this.next !== undefined && packets.size > 0) {
      const next = this.next;
      const held = packets.has(next);
      const head = held && this.rules.isFrameStart(packets.payloadOf(next));
      if (held && !head && this.emitted) {
        // a frame's tail whose head was given up
        packets.delete(next);
        this.next++;
        continue;
      }
      // (before anything left, a tail may still get its head: reordering at the start)
      if (head) {
        const end = this.frameEnd(next);
        if (end !== undefined) {
          const payloads: Buffer[] = new Array(end - next + 1);
          const ts = packets.tsOf(next);
          let arrival = packets.arrivalOf(next);
          for (let s = next; s <= end; s++) {
            payloads[s - next] = packets.payloadOf(s);
            const a = packets.arrivalOf(s);
            if (a < arrival) arrival = a;
            packets.delete(s);
          }
          this.next = end + 1;
          this.stuckSince = undefined;
          this.emitted = true;
          const frame = this.rules.assemble(payloads);
          this.lastHead = frame ? payloads[0] : undefined;
          this.lastEnd = end;
          if (!frame) this.lost();
          else if (this.deliverable(frame)) {
            out ??= [];
            // one literal of a fixed shape (a spread built each frame field by field)
            out.push({
              data: frame.data,
              keyframe: frame.keyframe,
              width: frame.width,
              height: frame.height,
              codecPrivate: frame.codecPrivate,
              rtpTimestamp: ts,
              arrival,
            });
          }
          continue;
        }
      }
      if (!held && this.skipEmptyGap(next)) continue;
      this.stuckSince ??= now;
      if (now - this.stuckSince < this.deadlineMs && packets.size < this.maxPackets) break;
      this.skip(held ? packets.tsOf(next) : undefined);
      this.stuckSince = now === Number.POSITIVE_INFINITY ? undefined : now;
    }
    if (packets.size === 0) this.stuckSince = undefined;
    return out ?? NO_FRAMES;
  }

  /**
   * A gap right after a whole frame, up to a packet that starts the very next frame, held no media
   * (FEC the publisher sends under the same numbers, or padding): move past it without waiting or
   * asking for a keyframe. True when it did.
   */
  private skipEmptyGap(next: number): boolean {
    const follows = this.rules.follows;
    const lastHead = this.lastHead;
    if (!follows || !lastHead || next !== this.lastEnd + 1) return false;
    const packets = this.packets;
    const highest = this.highest ?? next;
    let k = next + 1;
    while (k <= highest && !packets.has(k)) k++;
    if (k > highest) return false;
    const head = packets.payloadOf(k);
    if (!this.rules.isFrameStart(head) || !follows(lastHead, head)) return false;
    this.stats.emptyGaps++;
    this.next = k;
    this.lastEnd = k - 1;
    this.stuckSince = undefined;
    return true;
  }

  /** The last sequence number of the complete frame starting at `start`, if it is complete. */
  private frameEnd(start: number): number | undefined {
    const packets = this.packets;
    if (this.rules.singlePacket || packets.markerOf(start)) return start;
    const ts = packets.tsOf(start);
    for (let s = start + 1; ; s++) {
      if (!packets.has(s)) return undefined;
      if (packets.tsOf(s) !== ts) return s - 1; // the next frame began without a marker on this one
      if (packets.markerOf(s)) return s;
    }
  }

  /** Gives up the frame at `next`: resumes at the next packet that starts another frame. */
  private skip(brokenTs: number | undefined): void {
    // Held packets lie in [next, highest] (nothing older than `next` is kept).
    const packets = this.packets;
    const from = this.next!;
    const to = this.highest ?? from;
    let resume: number | undefined;
    let last: number | undefined;
    for (let k = from + 1; k <= to; k++) {
      if (!packets.has(k)) continue;
      last = k;
      if (resume !== undefined) continue;
      if (brokenTs !== undefined && packets.tsOf(k) === brokenTs) continue;
      if (!this.rules.isFrameStart(packets.payloadOf(k))) continue;
      const prevHeld = packets.has(k - 1);
      if (
        this.rules.singlePacket ||
        !prevHeld ||
        packets.markerOf(k - 1) ||
        packets.tsOf(k - 1) !== packets.tsOf(k)
      ) {
        resume = k;
      }
    }
    const stop = resume ?? (last !== undefined ? last + 1 : from + 1);
    for (let k = from; k < stop; k++) packets.delete(k);
    this.next = stop;
    this.emitted = true;
    this.lastHead = undefined;
    this.lost();
  }

  private lost(): void {
    this.stats.framesLost++;
    if (this.rules.kind === 'video') {
      this.needKeyframe = true;
      this.askKeyframe();
    }
  }

  private askKeyframe(): void {
    this.stats.keyframeRequests++;
    this.options.onKeyframeNeeded?.();
  }

  /** Whether an assembled frame goes out (not while waiting for a keyframe); counts it. */
  private deliverable(frame: AssembledFrame): boolean {
    if (this.needKeyframe && !frame.keyframe) {
      this.stats.framesSkipped++;
      this.askKeyframe();
      return false;
    }
    this.needKeyframe = false;
    this.stats.frames++;
    return true;
  }
}
