/**
 * Minimal RTP/RTCP building and parsing for the synthetic clients: RTP headers (RFC 3550), the
 * VP8 payload format (RFC 7741), generic NACK and PLI feedback (RFC 4585), RTX (RFC 4588).
 * Pure functions, no I/O.
 */

import { seqDiff } from '../../core/NackTracker.ts';

export const RTP_HEADER_SIZE = 12;
/** Payload bytes per RTP packet: fits a 1200-byte packet with SRTP overhead on any path. */
export const DEFAULT_MAX_PAYLOAD = 1100;

export interface RtpHeaderFields {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
}

export interface ParsedRtp extends RtpHeaderFields {
  /** Offset of the payload in the packet. */
  payloadOffset: number;
  /** End of the payload (padding excluded). */
  payloadEnd: number;
}

/** One RFC 8285 one-byte header extension element (id 1–14, 1–16 bytes of data). */
export interface RtpExtensionElement {
  id: number;
  data: Uint8Array;
}

/**
 * Writes a 12-byte RTP header (no CSRC), optionally one-byte header extensions (RFC 8285), then
 * `payload`.
 */
export function buildRtp(
  fields: RtpHeaderFields,
  payload: Uint8Array,
  extensions: readonly RtpExtensionElement[] = [],
): Buffer {
  let extBytes = 0;
  for (const e of extensions) {
    if (e.id < 1 || e.id > 14 || e.data.length < 1 || e.data.length > 16) {
      throw new Error(`RTP: one-byte header extension id ${e.id} with ${e.data.length} bytes`);
    }
    extBytes += 1 + e.data.length;
  }
  const extWords = Math.ceil(extBytes / 4);
  const extSize = extensions.length > 0 ? 4 + extWords * 4 : 0;
  const size = RTP_HEADER_SIZE + extSize + payload.length;
  // Extension padding must be zero; without extensions every byte is written below.
  const buf = extSize > 0 ? Buffer.alloc(size) : Buffer.allocUnsafe(size);
  buf[0] = extensions.length > 0 ? 0x90 : 0x80;
  buf[1] = (fields.marker ? 0x80 : 0) | (fields.payloadType & 0x7f);
  buf.writeUInt16BE(fields.sequenceNumber & 0xffff, 2);
  buf.writeUInt32BE(fields.timestamp >>> 0, 4);
  buf.writeUInt32BE(fields.ssrc >>> 0, 8);
  if (extSize > 0) {
    buf.writeUInt16BE(0xbede, RTP_HEADER_SIZE);
    buf.writeUInt16BE(extWords, RTP_HEADER_SIZE + 2);
    let at = RTP_HEADER_SIZE + 4;
    for (const e of extensions) {
      buf[at++] = (e.id << 4) | (e.data.length - 1);
      buf.set(e.data, at);
      at += e.data.length;
    }
  }
  buf.set(payload, RTP_HEADER_SIZE + extSize);
  return buf;
}

/** RFC 8285 one-byte header extensions of an RTP packet, by id; empty when there are none. */
export function parseRtpExtensions(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  if (buf.length < RTP_HEADER_SIZE || !(buf[0]! & 0x10)) return out;
  const start = RTP_HEADER_SIZE + (buf[0]! & 0x0f) * 4;
  if (buf.length < start + 4 || buf.readUInt16BE(start) !== 0xbede) return out;
  const end = Math.min(buf.length, start + 4 + buf.readUInt16BE(start + 2) * 4);
  let at = start + 4;
  while (at < end) {
    const b = buf[at]!;
    if (b === 0) {
      at++;
      continue;
    }
    const id = b >> 4;
    const len = (b & 0x0f) + 1;
    if (id === 15 || at + 1 + len > end) break;
    out.set(id, buf.subarray(at + 1, at + 1 + len));
    at += 1 + len;
  }
  return out;
}

/** True when the packet is RTCP (RFC 5761 demultiplexing: packet type 192–223). */
export function isRtcp(buf: Uint8Array): boolean {
  if (buf.length < 2) return false;
  const pt = buf[1]!;
  return pt >= 192 && pt <= 223;
}

/** Parses an RTP header, skipping CSRCs and header extensions; undefined if malformed. */
export function parseRtp(buf: Buffer): ParsedRtp | undefined {
  if (buf.length < RTP_HEADER_SIZE || buf[0]! >> 6 !== 2) return undefined;
  const csrcCount = buf[0]! & 0x0f;
  let offset = RTP_HEADER_SIZE + csrcCount * 4;
  if (buf[0]! & 0x10) {
    if (buf.length < offset + 4) return undefined;
    const words = buf.readUInt16BE(offset + 2);
    offset += 4 + words * 4;
  }
  let end = buf.length;
  if (buf[0]! & 0x20) end -= buf[buf.length - 1]!;
  if (offset > end) return undefined;
  return {
    payloadType: buf[1]! & 0x7f,
    marker: (buf[1]! & 0x80) !== 0,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    payloadOffset: offset,
    payloadEnd: end,
  };
}

export { seqDiff };

/**
 * RFC 7741 VP8 packetizer: splits one frame into payloads, each with a payload descriptor
 * carrying a 15-bit PictureID; S=1 and PID=0 on the first packet of the frame.
 */
export class Vp8Packetizer {
  private pictureId: number;

  constructor(
    private readonly maxPayload = DEFAULT_MAX_PAYLOAD,
    initialPictureId = 0,
  ) {
    this.pictureId = initialPictureId & 0x7fff;
  }

  packetize(frame: Uint8Array): Buffer[] {
    const descriptorSize = 4;
    const room = this.maxPayload - descriptorSize;
    if (room <= 0) throw new Error(`VP8 packetizer: max payload ${this.maxPayload} is too small`);
    const count = Math.max(1, Math.ceil(frame.length / room));
    // Even split, so the last packet is not a runt.
    const size = Math.ceil(frame.length / count);
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const chunk = frame.subarray(i * size, Math.min(frame.length, (i + 1) * size));
      const payload = Buffer.allocUnsafe(descriptorSize + chunk.length);
      payload[0] = 0x80 | (i === 0 ? 0x10 : 0); // X=1, S on the first packet, PID=0
      payload[1] = 0x80; // I=1: PictureID present
      payload[2] = 0x80 | (this.pictureId >> 8); // M=1: 15-bit PictureID
      payload[3] = this.pictureId & 0xff;
      payload.set(chunk, descriptorSize);
      out.push(payload);
    }
    this.pictureId = (this.pictureId + 1) & 0x7fff;
    return out;
  }

  /** Uses up one PictureID without a frame: the next frame refers to a picture never sent. */
  skipPicture(): void {
    this.pictureId = (this.pictureId + 1) & 0x7fff;
  }
}

export interface Vp8Descriptor {
  /** First packet of a partition (S bit). */
  start: boolean;
  partitionIndex: number;
  pictureId?: number;
  /** Offset of the VP8 payload after the descriptor. */
  headerSize: number;
}

/** Parses an RFC 7741 payload descriptor; undefined if truncated. */
export function parseVp8Descriptor(payload: Uint8Array): Vp8Descriptor | undefined {
  if (payload.length < 1) return undefined;
  const b0 = payload[0]!;
  let offset = 1;
  let pictureId: number | undefined;
  if (b0 & 0x80) {
    if (payload.length < 2) return undefined;
    const b1 = payload[1]!;
    offset = 2;
    if (b1 & 0x80) {
      if (payload.length < offset + 1) return undefined;
      if (payload[offset]! & 0x80) {
        if (payload.length < offset + 2) return undefined;
        pictureId = ((payload[offset]! & 0x7f) << 8) | payload[offset + 1]!;
        offset += 2;
      } else {
        pictureId = payload[offset]! & 0x7f;
        offset += 1;
      }
    }
    if (b1 & 0x40) offset += 1; // TL0PICIDX
    if (b1 & 0x30) offset += 1; // TID / KEYIDX
  }
  if (offset > payload.length) return undefined;
  return { start: (b0 & 0x10) !== 0, partitionIndex: b0 & 0x07, pictureId, headerSize: offset };
}

/** A VP8 frame (or the first bytes of its first partition) is a keyframe when P=0. */
export function isVp8Keyframe(frameStart: Uint8Array): boolean {
  return frameStart.length > 0 && (frameStart[0]! & 0x01) === 0;
}

/** RFC 4585 generic NACK for `lost` sequence numbers (any order, duplicates ignored). */
export function buildNack(senderSsrc: number, mediaSsrc: number, lost: readonly number[]): Buffer {
  const sorted = [...new Set(lost.map((s) => s & 0xffff))].sort((a, b) => seqDiff(a, b));
  const fci: [number, number][] = [];
  for (const seq of sorted) {
    const last = fci[fci.length - 1];
    if (last) {
      const d = seqDiff(seq, last[0]);
      if (d >= 1 && d <= 16) {
        last[1] |= 1 << (d - 1);
        continue;
      }
    }
    fci.push([seq, 0]);
  }
  const buf = Buffer.alloc(12 + fci.length * 4);
  buf[0] = 0x80 | 1; // V=2, FMT=1 (generic NACK)
  buf[1] = 205; // RTPFB
  buf.writeUInt16BE(buf.length / 4 - 1, 2);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(mediaSsrc >>> 0, 8);
  fci.forEach(([pid, blp], i) => {
    buf.writeUInt16BE(pid, 12 + i * 4);
    buf.writeUInt16BE(blp, 14 + i * 4);
  });
  return buf;
}

/** Sequence numbers a generic NACK asks for. */
export function parseNackFci(fci: Uint8Array): number[] {
  const out: number[] = [];
  const view = Buffer.from(fci.buffer, fci.byteOffset, fci.byteLength);
  for (let i = 0; i + 4 <= view.length; i += 4) {
    const pid = view.readUInt16BE(i);
    const blp = view.readUInt16BE(i + 2);
    out.push(pid);
    for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) out.push((pid + bit + 1) & 0xffff);
  }
  return out;
}

/** RFC 4585 picture loss indication. */
export function buildPli(senderSsrc: number, mediaSsrc: number): Buffer {
  const buf = Buffer.alloc(12);
  buf[0] = 0x80 | 1; // FMT=1 (PLI)
  buf[1] = 206; // PSFB
  buf.writeUInt16BE(2, 2);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(mediaSsrc >>> 0, 8);
  return buf;
}

export type RtcpFeedback =
  | { kind: 'pli'; mediaSsrc: number }
  | { kind: 'fir' }
  | { kind: 'nack'; mediaSsrc: number; lost: number[] }
  | { kind: 'other'; packetType: number };

/** Splits a (compound) RTCP packet and names the feedback messages in it. */
export function parseRtcpFeedback(buf: Buffer): RtcpFeedback[] {
  const out: RtcpFeedback[] = [];
  let offset = 0;
  while (offset + 4 <= buf.length) {
    const fmt = buf[offset]! & 0x1f;
    const packetType = buf[offset + 1]!;
    const length = (buf.readUInt16BE(offset + 2) + 1) * 4;
    if (offset + length > buf.length) break;
    if (packetType === 206 && fmt === 1 && length >= 12) {
      out.push({ kind: 'pli', mediaSsrc: buf.readUInt32BE(offset + 8) });
    } else if (packetType === 206 && fmt === 4) {
      out.push({ kind: 'fir' });
    } else if (packetType === 205 && fmt === 1 && length >= 12) {
      out.push({
        kind: 'nack',
        mediaSsrc: buf.readUInt32BE(offset + 8),
        lost: parseNackFci(buf.subarray(offset + 12, offset + length)),
      });
    } else {
      out.push({ kind: 'other', packetType });
    }
    offset += length;
  }
  return out;
}

export interface SenderReport {
  ssrc: number;
  /** The report's NTP timestamp as Unix epoch milliseconds. */
  ntpMs: number;
  /** The middle 32 bits of the NTP timestamp (what a receiver report echoes as LSR). */
  ntpMiddle: number;
  rtpTimestamp: number;
}

const NTP_EPOCH_OFFSET_MS = 2_208_988_800_000;

/** The sender reports (RFC 3550 section 6.4.1) in a (compound) RTCP packet. */
export function parseSenderReports(buf: Buffer): SenderReport[] {
  const out: SenderReport[] = [];
  let offset = 0;
  while (offset + 4 <= buf.length) {
    const packetType = buf[offset + 1]!;
    const length = (buf.readUInt16BE(offset + 2) + 1) * 4;
    if (offset + length > buf.length) break;
    if (packetType === 200 && length >= 28) {
      const seconds = buf.readUInt32BE(offset + 8);
      const fraction = buf.readUInt32BE(offset + 12);
      out.push({
        ssrc: buf.readUInt32BE(offset + 4),
        ntpMs: seconds * 1000 + (fraction / 4_294_967_296) * 1000 - NTP_EPOCH_OFFSET_MS,
        ntpMiddle: (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0,
        rtpTimestamp: buf.readUInt32BE(offset + 16),
      });
    }
    offset += length;
  }
  return out;
}

/**
 * What one receiver got of one media SSRC (RFC 3550 appendix A.3), for its receiver reports. A
 * sequence number counts once however often it arrives, and a repair (RTX) counts as received.
 */
export class ReceptionStats {
  private base: number | undefined;
  private maxSeq = 0;
  private cycles = 0;
  private readonly seen = new Uint8Array(65536);
  private receivedCount = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;

  /** A packet with sequence number `seq` arrived (original or repair). */
  received(seq: number): void {
    seq &= 0xffff;
    if (this.base === undefined) {
      this.base = seq;
      this.maxSeq = seq;
    } else {
      const delta = (seq - this.maxSeq) & 0xffff;
      if (delta !== 0 && delta < 0x8000) {
        if (seq < this.maxSeq) this.cycles += 0x10000;
        // Numbers skipped over are forgotten from the previous lap of the 16-bit space.
        for (let i = 1; i <= delta; i++) this.seen[(this.maxSeq + i) & 0xffff] = 0;
        this.maxSeq = seq;
      }
    }
    if (this.seen[seq] === 1) return;
    this.seen[seq] = 1;
    this.receivedCount++;
  }

  /** The report block's loss fields for the interval since the previous call; undefined before any packet. */
  report(): { fractionLost: number; cumulativeLost: number; extendedHighest: number } | undefined {
    if (this.base === undefined) return undefined;
    const extendedHighest = this.cycles + this.maxSeq;
    const expected = extendedHighest - this.base + 1;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.receivedCount - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.receivedCount;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0
        ? 0
        : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    // 24-bit signed on the wire: duplicates and repairs can make it negative.
    const cumulativeLost = Math.max(-0x800000, Math.min(0x7fffff, expected - this.receivedCount));
    return { fractionLost, cumulativeLost, extendedHighest: extendedHighest >>> 0 };
  }
}

/** A receiver report (RFC 3550 section 6.4.2) with one report block. */
export function buildReceiverReport(
  senderSsrc: number,
  block: {
    ssrc: number;
    fractionLost: number;
    cumulativeLost: number;
    extendedHighest: number;
    jitter?: number;
    /** Middle 32 bits of the last sender report's NTP time; 0 if none. */
    lastSr?: number;
    /** Since that sender report, in 1/65536 s. */
    delaySinceLastSr?: number;
  },
): Buffer {
  const buf = Buffer.alloc(32);
  buf[0] = 0x80 | 1; // V=2, RC=1
  buf[1] = 201; // RR
  buf.writeUInt16BE(buf.length / 4 - 1, 2);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(block.ssrc >>> 0, 8);
  buf.writeUInt32BE(
    (((block.fractionLost & 0xff) << 24) | (block.cumulativeLost & 0xffffff)) >>> 0,
    12,
  );
  buf.writeUInt32BE(block.extendedHighest >>> 0, 16);
  buf.writeUInt32BE((block.jitter ?? 0) >>> 0, 20);
  buf.writeUInt32BE((block.lastSr ?? 0) >>> 0, 24);
  buf.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(block.delaySinceLastSr ?? 0))), 28);
  return buf;
}

/**
 * REMB (draft-alvestrand-rmcat-remb): the receiver's estimate of what it can take, in bit/s, for
 * the media SSRCs listed.
 */
export function buildRemb(senderSsrc: number, bitrate: number, ssrcs: readonly number[]): Buffer {
  let mantissa = Math.max(0, Math.floor(bitrate));
  let exp = 0;
  while (mantissa > 0x3ffff) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  const buf = Buffer.alloc(20 + 4 * ssrcs.length);
  buf[0] = 0x80 | 15; // FMT=15 (application layer feedback)
  buf[1] = 206; // PSFB
  buf.writeUInt16BE(buf.length / 4 - 1, 2);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(0, 8);
  buf.write('REMB', 12, 'ascii');
  buf[16] = ssrcs.length;
  buf[17] = (exp << 2) | (mantissa >> 16);
  buf.writeUInt16BE(mantissa & 0xffff, 18);
  for (const [i, ssrc] of ssrcs.entries()) buf.writeUInt32BE(ssrc >>> 0, 20 + 4 * i);
  return buf;
}

/** Picture size of a VP8 keyframe from the start of its first partition, if it is one. */
export function vp8KeyframeSize(
  frameStart: Uint8Array,
): { width: number; height: number } | undefined {
  if (frameStart.length < 10 || !isVp8Keyframe(frameStart)) return undefined;
  if (frameStart[3] !== 0x9d || frameStart[4] !== 0x01 || frameStart[5] !== 0x2a) return undefined;
  return {
    width: (frameStart[6]! | (frameStart[7]! << 8)) & 0x3fff,
    height: (frameStart[8]! | (frameStart[9]! << 8)) & 0x3fff,
  };
}

/** Seeded PRNG (mulberry32): reproducible artificial loss. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
