import { rtpHeader } from './relay/packets.ts';
import type { VideoPayloadTypes } from './relay/sdp.ts';

interface Passage {
  seq: number;
  timestamp: number;
  marker: boolean;
  at: number;
}

class StreamPassages {
  readonly passages: Passage[] = [];
  private readonly seen = new Set<number>();
  private highest: number | undefined;

  record(seq16: number, timestamp: number, marker: boolean, at: number): void {
    const seq = this.unwrap(seq16);
    if (this.seen.has(seq)) return;
    this.seen.add(seq);
    this.passages.push({ seq, timestamp, marker, at });
  }

  private unwrap(seq16: number): number {
    if (this.highest === undefined) {
      this.highest = seq16;
      return seq16;
    }
    const base = this.highest - (this.highest & 0xffff);
    let candidate = base + seq16;
    if (candidate - this.highest > 0x8000) candidate -= 0x10000;
    else if (this.highest - candidate > 0x8000) candidate += 0x10000;
    if (candidate > this.highest) this.highest = candidate;
    return candidate;
  }
}

/**
 * Watches one video stream at one point of the path (e.g. where the relay hands the buyer's
 * packets to the node) and tells when each frame had passed there entirely. SRTP leaves the RTP
 * header in the clear, so the relay can read sequence numbers, timestamps and marker bits. A
 * packet counts when it first passes (a retransmission of one that already passed does not); a
 * frame is every sequence number from the one after the previous frame's last packet to its own
 * marker packet, and has passed when the last of them has, with no gap.
 */
export class FrameTap {
  private readonly streams = new Map<number, StreamPassages>();

  constructor(private readonly videoPayloadTypes: () => VideoPayloadTypes) {}

  /** Feeds a packet seen at `at` (wall clock, ms); anything but the video stream is ignored. */
  record(packet: Buffer, at: number): void {
    const header = rtpHeader(packet);
    if (!header) return;
    const pts = this.videoPayloadTypes();
    const pt = header.payloadType;
    // RED carries FEC too, indistinguishable here (encrypted payload): a FEC packet's number
    // is counted into the frame after it, which passes once it has.
    if (pts.media === undefined || (pt !== pts.media && pt !== pts.red)) return;
    let stream = this.streams.get(header.ssrc);
    if (!stream) {
      stream = new StreamPassages();
      this.streams.set(header.ssrc, stream);
    }
    stream.record(header.sequenceNumber, header.timestamp, header.marker, at);
  }

  /** Packets recorded so far. */
  get packets(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.passages.length;
    return n;
  }

  /** RTP timestamp -> when the frame's last packet had passed, for frames that passed whole. */
  framesPassed(): Map<number, number> {
    const out = new Map<number, number>();
    for (const stream of this.streams.values()) {
      const list = [...stream.passages].sort((a, b) => a.seq - b.seq);
      let i = 0;
      while (i < list.length) {
        // the run of packets with this timestamp
        let j = i;
        let done = list[i]!.at;
        let contiguous = true;
        while (j + 1 < list.length && list[j + 1]!.timestamp === list[i]!.timestamp) {
          if (list[j + 1]!.seq !== list[j]!.seq + 1) contiguous = false;
          j++;
          done = Math.max(done, list[j]!.at);
        }
        const prev = list[i - 1];
        const startsClean =
          prev !== undefined &&
          prev.seq === list[i]!.seq - 1 &&
          prev.timestamp !== list[i]!.timestamp;
        if (contiguous && startsClean && list[j]!.marker) out.set(list[i]!.timestamp, done);
        i = j + 1;
      }
    }
    return out;
  }
}
