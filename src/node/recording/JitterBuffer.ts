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
}

interface Pkt {
  ts: number;
  marker: boolean;
  payload: Buffer;
  arrival: number;
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
  };
  private readonly rules: CodecRules;
  private deadlineMs: number;
  private readonly maxPackets: number;
  private readonly packets = new Map<number, Pkt>();
  private next: number | undefined;
  private highest: number | undefined;
  private emitted = false;
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
    this.packets.set(ext, { ts: p.timestamp, marker: p.marker, payload: p.payload, arrival: now });
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
    while (this.next !== undefined && this.packets.size > 0) {
      const first = this.packets.get(this.next);
      const head = first !== undefined && this.rules.isFrameStart(first.payload);
      if (first && !head && this.emitted) {
        // a frame's tail whose head was given up
        this.packets.delete(this.next);
        this.next++;
        continue;
      }
      // (before anything left, a tail may still get its head: reordering at the start)
      if (first && head) {
        const end = this.frameEnd(this.next, first);
        if (end !== undefined) {
          const payloads: Buffer[] = [];
          let arrival = first.arrival;
          for (let s = this.next; s <= end; s++) {
            const p = this.packets.get(s)!;
            payloads.push(p.payload);
            if (p.arrival < arrival) arrival = p.arrival;
            this.packets.delete(s);
          }
          this.next = end + 1;
          this.stuckSince = undefined;
          this.emitted = true;
          const frame = this.rules.assemble(payloads);
          if (!frame) this.lost();
          else if (this.deliverable(frame)) {
            out ??= [];
            out.push({ ...frame, rtpTimestamp: first.ts, arrival });
          }
          continue;
        }
      }
      this.stuckSince ??= now;
      if (now - this.stuckSince < this.deadlineMs && this.packets.size < this.maxPackets) break;
      this.skip(first?.ts);
      this.stuckSince = now === Number.POSITIVE_INFINITY ? undefined : now;
    }
    if (this.packets.size === 0) this.stuckSince = undefined;
    return out ?? NO_FRAMES;
  }

  /** The last sequence number of the complete frame starting at `start`, if it is complete. */
  private frameEnd(start: number, first: Pkt): number | undefined {
    if (this.rules.singlePacket || first.marker) return start;
    for (let s = start + 1; ; s++) {
      const p = this.packets.get(s);
      if (!p) return undefined;
      if (p.ts !== first.ts) return s - 1; // the next frame began without a marker on this one
      if (p.marker) return s;
    }
  }

  /** Gives up the frame at `next`: resumes at the next packet that starts another frame. */
  private skip(brokenTs: number | undefined): void {
    const keys = [...this.packets.keys()].filter((k) => k > this.next!).sort((a, b) => a - b);
    let resume: number | undefined;
    for (const k of keys) {
      const p = this.packets.get(k)!;
      if (brokenTs !== undefined && p.ts === brokenTs) continue;
      if (!this.rules.isFrameStart(p.payload)) continue;
      const prev = this.packets.get(k - 1);
      if (this.rules.singlePacket || !prev || prev.marker || prev.ts !== p.ts) {
        resume = k;
        break;
      }
    }
    const stop = resume ?? (keys.length ? keys[keys.length - 1]! + 1 : this.next! + 1);
    for (const k of [...this.packets.keys()]) if (k < stop) this.packets.delete(k);
    this.next = stop;
    this.emitted = true;
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
