/**
 * What the recorder needs to know about each RTP payload format: where a frame starts, and how
 * its packets join into one frame for the container. VP8 (RFC 7741), H.264 (RFC 6184,
 * packetization modes 0 and 1) and Opus (RFC 7587). Pure functions.
 */

import { vp8FrameInfo } from '../media/vp8Ids.ts';

export type RecordedCodec = 'VP8' | 'H264' | 'OPUS';

export interface AssembledFrame {
  data: Buffer;
  keyframe: boolean;
  /** Picture size, when the frame carries it (VP8 keyframes, H.264 frames with an SPS). */
  width?: number;
  height?: number;
  /** H.264: an avcC record built from the frame's SPS and PPS. */
  codecPrivate?: Buffer;
}

export interface CodecRules {
  codec: RecordedCodec;
  kind: 'audio' | 'video';
  clockRate: number;
  /** Every packet is a whole frame (audio). */
  singlePacket: boolean;
  /** Whether a packet can begin a frame. */
  isFrameStart(payload: Buffer): boolean;
  /** Joins one frame's payloads (in sequence order); undefined when they do not form a frame. */
  assemble(payloads: readonly Buffer[]): AssembledFrame | undefined;
  /**
   * Whether the frame whose first packet is `head` comes right after the one whose first packet
   * was `previousHead`, with no frame between them (VP8: consecutive PictureIDs). Formats that
   * number no frames leave it out.
   */
  follows?(previousHead: Buffer, head: Buffer): boolean;
}

/** Parses a VP8 payload descriptor: whether the packet starts a frame and where the data begins. */
export function vp8Descriptor(p: Buffer): { start: boolean; offset: number } | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0]!;
  let i = 1;
  if (b0 & 0x80) {
    if (p.length < 2) return undefined;
    const b1 = p[1]!;
    i = 2;
    if (b1 & 0x80) {
      if (p.length <= i) return undefined;
      i += p[i]! & 0x80 ? 2 : 1;
    }
    if (b1 & 0x40) i++;
    if (b1 & 0x30) i++;
  }
  if (i > p.length) return undefined;
  return { start: (b0 & 0x10) !== 0 && (b0 & 0x07) === 0, offset: i };
}

export const VP8_RULES: CodecRules = {
  codec: 'VP8',
  kind: 'video',
  clockRate: 90_000,
  singlePacket: false,
  isFrameStart: (payload) => vp8Descriptor(payload)?.start ?? false,
  follows(previousHead, head) {
    const a = vp8FrameInfo(previousHead);
    const b = vp8FrameInfo(head);
    if (a.pid < 0 || b.pid < 0 || a.mask !== b.mask) return false;
    return b.pid === ((a.pid + 1) & a.mask);
  },
  assemble(payloads) {
    const parts: Buffer[] = [];
    for (const p of payloads) {
      const d = vp8Descriptor(p);
      if (!d) return undefined;
      parts.push(p.subarray(d.offset));
    }
    const data = Buffer.concat(parts);
    if (data.length < 3) return undefined;
    const keyframe = (data[0]! & 0x01) === 0;
    if (!keyframe) return { data, keyframe };
    if (data.length < 10 || data[3] !== 0x9d || data[4] !== 0x01 || data[5] !== 0x2a)
      return undefined;
    return {
      data,
      keyframe,
      width: data.readUInt16LE(6) & 0x3fff,
      height: data.readUInt16LE(8) & 0x3fff,
    };
  },
};

export const OPUS_RULES: CodecRules = {
  codec: 'OPUS',
  kind: 'audio',
  clockRate: 48_000,
  singlePacket: true,
  isFrameStart: () => true,
  assemble: (payloads) =>
    payloads[0] && payloads[0].length > 0
      ? { data: Buffer.from(payloads[0]), keyframe: true }
      : undefined,
};

/** Reads Exp-Golomb coded fields from an H.264 RBSP. */
class BitReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  bit(): number {
    const byte = this.buf[this.pos >> 3];
    if (byte === undefined) throw new RangeError('SPS ended early');
    const v = (byte >> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return v;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      zeros++;
      if (zeros > 31) throw new RangeError('bad Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k % 2 ? (k + 1) / 2 : -k / 2;
  }
}

function rbsp(nal: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i]!);
  }
  return Buffer.from(out);
}

/** Picture size from an H.264 SPS NAL unit (with its header byte), or undefined. */
export function h264SpsSize(sps: Buffer): { width: number; height: number } | undefined {
  try {
    const r = new BitReader(rbsp(sps.subarray(1)));
    const profile = r.bits(8);
    r.bits(16); // constraint flags, level
    r.ue(); // seq_parameter_set_id
    let chroma = 1;
    if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
      chroma = r.ue();
      if (chroma === 3) r.bit();
      r.ue();
      r.ue();
      r.bit();
      if (r.bit()) {
        for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) {
          if (!r.bit()) continue;
          const size = i < 6 ? 16 : 64;
          let last = 8;
          let next = 8;
          for (let j = 0; j < size; j++) {
            if (next !== 0) next = (last + r.se() + 256) % 256;
            last = next === 0 ? last : next;
          }
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) r.ue();
    else if (pocType === 1) {
      r.bit();
      r.se();
      r.se();
      const n = r.ue();
      for (let i = 0; i < n; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.bit();
    const wMbs = r.ue() + 1;
    const hMaps = r.ue() + 1;
    const frameMbsOnly = r.bit();
    if (!frameMbsOnly) r.bit();
    r.bit();
    let [cl, cr, ct, cb] = [0, 0, 0, 0];
    if (r.bit()) [cl, cr, ct, cb] = [r.ue(), r.ue(), r.ue(), r.ue()];
    const subW = chroma === 1 || chroma === 2 ? 2 : 1;
    const subH = chroma === 1 ? 2 : 1;
    const unitX = chroma === 0 ? 1 : subW;
    const unitY = (chroma === 0 ? 1 : subH) * (2 - frameMbsOnly);
    return {
      width: wMbs * 16 - (cl + cr) * unitX,
      height: (2 - frameMbsOnly) * hMaps * 16 - (ct + cb) * unitY,
    };
  } catch {
    return undefined;
  }
}

/** An avcC record (ISO 14496-15) for one SPS and one PPS, with 4-byte NAL lengths. */
export function avcC(sps: Buffer, pps: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([1, sps[1] ?? 0x42, sps[2] ?? 0, sps[3] ?? 0x1f, 0xff, 0xe1]),
    Buffer.from([sps.length >> 8, sps.length & 0xff]),
    sps,
    Buffer.from([1, pps.length >> 8, pps.length & 0xff]),
    pps,
  ]);
}

/** NAL units of one H.264 frame from its RTP payloads (single NAL, STAP-A, FU-A). */
export function h264Nals(payloads: readonly Buffer[]): Buffer[] | undefined {
  const nals: Buffer[] = [];
  let fu: Buffer[] | undefined;
  for (const p of payloads) {
    if (p.length < 1) return undefined;
    const type = p[0]! & 0x1f;
    if (type >= 1 && type <= 23) {
      if (fu) return undefined;
      nals.push(p);
    } else if (type === 24) {
      if (fu) return undefined;
      let i = 1;
      while (i + 2 <= p.length) {
        const size = p.readUInt16BE(i);
        if (size === 0 || i + 2 + size > p.length) return undefined;
        nals.push(p.subarray(i + 2, i + 2 + size));
        i += 2 + size;
      }
    } else if (type === 28) {
      if (p.length < 3) return undefined;
      const header = p[1]!;
      if (header & 0x80) {
        if (fu) return undefined;
        fu = [Buffer.from([(p[0]! & 0xe0) | (header & 0x1f)])];
      } else if (!fu) return undefined;
      fu.push(p.subarray(2));
      if (header & 0x40) {
        nals.push(Buffer.concat(fu));
        fu = undefined;
      }
    } else {
      return undefined; // STAP-B, MTAP, FU-B: interleaved mode, which WebRTC does not use
    }
  }
  return fu ? undefined : nals;
}

export const H264_RULES: CodecRules = {
  codec: 'H264',
  kind: 'video',
  clockRate: 90_000,
  singlePacket: false,
  isFrameStart(payload) {
    if (payload.length < 2) return false;
    const type = payload[0]! & 0x1f;
    if (type === 28) return (payload[1]! & 0x80) !== 0;
    return type >= 1 && type <= 24;
  },
  assemble(payloads) {
    const nals = h264Nals(payloads);
    if (!nals || nals.length === 0) return undefined;
    let keyframe = false;
    let sps: Buffer | undefined;
    let pps: Buffer | undefined;
    const parts: Buffer[] = [];
    for (const nal of nals) {
      const type = nal[0]! & 0x1f;
      if (type === 5) keyframe = true;
      if (type === 7) sps ??= nal;
      if (type === 8) pps ??= nal;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(nal.length);
      parts.push(len, nal);
    }
    const frame: AssembledFrame = { data: Buffer.concat(parts), keyframe };
    if (sps) Object.assign(frame, h264SpsSize(sps));
    if (sps && pps) frame.codecPrivate = avcC(sps, pps);
    return frame;
  },
};

/** The rules for a codec by its MIME type (`video/VP8`) or name (`vp8`); undefined when not recorded. */
export function rulesFor(mimeOrName: string): CodecRules | undefined {
  const name = mimeOrName.split('/').pop()!.toUpperCase();
  if (name === 'VP8') return VP8_RULES;
  if (name === 'H264') return H264_RULES;
  if (name === 'OPUS') return OPUS_RULES;
  return undefined;
}
