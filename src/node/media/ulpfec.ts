/**
 * Video FEC from publishers: RED (RFC 2198) carrying ULPFEC (RFC 5109), as Chrome sends it when
 * the answer lists `red` and `ulpfec`. A lost media packet that a FEC packet protects together
 * with packets that did arrive is rebuilt at once, instead of one round trip later by a NACK: on
 * a 3G uplink that round trip (300 ms and more) is longer than the viewer's jitter buffer, so a
 * NACK repair arrives after the picture has already frozen.
 *
 * Chrome computes FEC over the media packet as it would be without RED (libwebrtc
 * `RtpSenderEgress`: RED header dropped, payload type set to the inner one), header extensions
 * included. What is protected, per packet: the first two header bytes (P, X, CC, M, PT), the
 * timestamp, and everything after the 12-byte fixed header (CSRCs, extensions, payload), whose
 * length is protected too. The extension bytes of a rebuilt packet may differ from what was sent
 * (the sender writes some after computing FEC); the node takes none from it.
 */

/** RTP fixed header size. */
const RTP_HEADER = 12;
/** ULPFEC header (RFC 5109 §7.3). */
const FEC_HEADER = 10;
/**
 * Media packets remembered behind the newest, and how far back a waiting FEC packet may be, in
 * sequence numbers (a FEC packet protects at most 48 packets before it). Each remembered packet
 * keeps its decrypted buffer alive: about 0.3 MB per stream.
 */
const WINDOW = 256;
/** FEC packets waiting for a second loss to be repaired by NACK (each holds ~1 packet of bytes). */
const MAX_PENDING_FEC = 64;

/** The primary (last) block of a RED payload: its payload type and where its data begins. */
export function redPrimary(payload: Uint8Array): { pt: number; offset: number } | undefined {
  let offset = 0;
  let redundant = 0;
  for (;;) {
    if (offset >= payload.length) return undefined;
    const b = payload[offset]!;
    if ((b & 0x80) === 0) {
      const start = offset + 1 + redundant;
      return start <= payload.length ? { pt: b & 0x7f, offset: start } : undefined;
    }
    if (offset + 4 > payload.length) return undefined;
    redundant += ((payload[offset + 2]! & 0x03) << 8) | payload[offset + 3]!;
    offset += 4;
  }
}

/** What FEC protects of one media packet (its RED-less form). */
export interface ProtectedPacket {
  seq: number;
  /** Header byte 0 (V, P, X, CC) and byte 1 (M, inner PT). */
  b0: number;
  b1: number;
  timestamp: number;
  /** Bytes after the fixed header, in parts (e.g. CSRC + extensions, then the payload). */
  tail: readonly Uint8Array[];
}

/** A media packet rebuilt from FEC. */
export interface RecoveredPacket {
  seq: number;
  marker: boolean;
  payloadType: number;
  timestamp: number;
  /** The media payload (CSRCs, extensions and padding removed). */
  payload: Buffer;
}

interface FecPacket {
  seq: number;
  protectedSeqs: number[];
  b0: number;
  b1: number;
  timestamp: number;
  length: number;
  /** The FEC payload (protection length bytes). */
  payload: Uint8Array;
}

function tailLength(tail: readonly Uint8Array[]): number {
  let n = 0;
  for (const part of tail) n += part.length;
  return n;
}

/** Parses a ULPFEC packet (the RED block's data), or undefined when it is malformed. */
export function parseUlpfec(seq: number, data: Uint8Array): FecPacket | undefined {
  if (data.length < FEC_HEADER + 4) return undefined;
  const long = (data[0]! & 0x40) !== 0;
  const maskBytes = long ? 6 : 2;
  const levelHeader = 2 + maskBytes;
  if (data.length < FEC_HEADER + levelHeader) return undefined;
  const base = (data[2]! << 8) | data[3]!;
  const protection = (data[FEC_HEADER]! << 8) | data[FEC_HEADER + 1]!;
  const payloadStart = FEC_HEADER + levelHeader;
  if (data.length < payloadStart + protection) return undefined;
  const protectedSeqs: number[] = [];
  for (let i = 0; i < maskBytes; i++) {
    const byte = data[FEC_HEADER + 2 + i]!;
    for (let bit = 0; bit < 8; bit++) {
      if (byte & (0x80 >> bit)) protectedSeqs.push((base + i * 8 + bit) & 0xffff);
    }
  }
  if (protectedSeqs.length === 0) return undefined;
  return {
    seq,
    protectedSeqs,
    b0: data[0]!,
    b1: data[1]!,
    timestamp: ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0,
    length: (data[8]! << 8) | data[9]!,
    payload: data.subarray(payloadStart, payloadStart + protection),
  };
}

/** `a` is at or behind `b` by less than half the sequence space. */
function notNewer(a: number, b: number): boolean {
  return ((b - a) & 0xffff) < 0x8000;
}

/**
 * The ULPFEC receiver of one stream (one SSRC): remembers the media packets of the last
 * `WINDOW` sequence numbers and the FEC packets that still miss one of theirs, and rebuilds a
 * media packet as soon as a FEC packet misses only that one.
 */
export class UlpfecReceiver {
  private readonly media = new Map<number, ProtectedPacket>();
  private pending: FecPacket[] = [];
  private newest = -1;
  /** Media packets rebuilt. */
  recovered = 0;

  /** A media packet arrived (or was repaired); returns what it let FEC rebuild. */
  addMedia(packet: ProtectedPacket): RecoveredPacket[] {
    this.advance(packet.seq);
    this.media.set(packet.seq, packet);
    return this.pending.length > 0 ? this.recover() : [];
  }

  /** A FEC packet arrived (`data`: the RED block's data); returns what it let FEC rebuild. */
  addFec(seq: number, data: Uint8Array): RecoveredPacket[] {
    this.advance(seq);
    const fec = parseUlpfec(seq, data);
    if (!fec) return [];
    this.pending.push(fec);
    if (this.pending.length > MAX_PENDING_FEC) this.pending.shift();
    return this.recover();
  }

  private advance(seq: number): void {
    if (this.newest < 0 || !notNewer(seq, this.newest)) this.newest = seq;
    // Swept when twice the window is held, so each packet costs O(1) on average.
    if (this.media.size > 2 * WINDOW) {
      for (const s of this.media.keys()) {
        if (((this.newest - s) & 0xffff) >= WINDOW) this.media.delete(s);
      }
    }
  }

  private recover(): RecoveredPacket[] {
    const out: RecoveredPacket[] = [];
    for (let again = true; again; ) {
      again = false;
      const keep: FecPacket[] = [];
      for (const fec of this.pending) {
        if (((this.newest - fec.seq) & 0xffff) >= WINDOW) continue;
        let missing = -1;
        let count = 0;
        for (const s of fec.protectedSeqs) {
          if (!this.media.has(s)) {
            missing = s;
            count++;
          }
        }
        if (count === 0) continue; // everything it protects is here
        if (count > 1) {
          keep.push(fec);
          continue;
        }
        const rebuilt = this.rebuild(fec, missing);
        if (!rebuilt) continue;
        this.media.set(missing, rebuilt.protectedForm);
        this.recovered++;
        out.push(rebuilt.packet);
        again = true;
      }
      this.pending = keep;
    }
    return out;
  }

  private rebuild(
    fec: FecPacket,
    seq: number,
  ): { packet: RecoveredPacket; protectedForm: ProtectedPacket } | undefined {
    let b0 = fec.b0;
    let b1 = fec.b1;
    let timestamp = fec.timestamp;
    let length = fec.length;
    const bytes = Buffer.from(fec.payload);
    for (const s of fec.protectedSeqs) {
      if (s === seq) continue;
      const p = this.media.get(s)!;
      b0 ^= p.b0;
      b1 ^= p.b1;
      timestamp ^= p.timestamp;
      const len = tailLength(p.tail);
      length ^= len;
      if (len > bytes.length) return undefined; // protection shorter than a protected packet
      let at = 0;
      for (const part of p.tail) {
        for (let i = 0; i < part.length; i++) bytes[at + i] = bytes[at + i]! ^ part[i]!;
        at += part.length;
      }
    }
    if (length > bytes.length || length < 1) return undefined;
    b0 = 0x80 | (b0 & 0x3f);
    const tail = bytes.subarray(0, length);
    let start = 4 * (b0 & 0x0f);
    if (b0 & 0x10) {
      if (tail.length < start + 4) return undefined;
      start += 4 + 4 * ((tail[start + 2]! << 8) | tail[start + 3]!);
    }
    let end = tail.length;
    if (b0 & 0x20) end -= tail[tail.length - 1]!;
    if (start > end) return undefined;
    return {
      packet: {
        seq,
        marker: (b1 & 0x80) !== 0,
        payloadType: b1 & 0x7f,
        timestamp: timestamp >>> 0,
        payload: tail.subarray(start, end),
      },
      protectedForm: { seq, b0, b1, timestamp: timestamp >>> 0, tail: [tail] },
    };
  }
}

/** Offset of the payload in a raw RTP packet (after CSRCs and the extension block). */
export function rtpHeaderEnd(raw: Uint8Array): number {
  let end = RTP_HEADER + 4 * (raw[0]! & 0x0f);
  if (raw[0]! & 0x10) end += 4 + 4 * ((raw[end + 2]! << 8) | raw[end + 3]!);
  return end;
}

/**
 * One raw RED packet (decrypted RTP) as media (`fec: false`: its protected form) or as FEC
 * (`fec: true`: the ULPFEC data), or undefined when it does not parse.
 */
export function splitRed(
  raw: Uint8Array,
  fecPayloadType: number,
):
  | { fec: false; pt: number; media: ProtectedPacket }
  | { fec: true; seq: number; data: Uint8Array }
  | undefined {
  if (raw.length < RTP_HEADER) return undefined;
  const headerEnd = rtpHeaderEnd(raw);
  const padding = raw[0]! & 0x20 ? raw[raw.length - 1]! : 0;
  if (headerEnd + padding > raw.length) return undefined;
  const body = raw.subarray(headerEnd, raw.length - padding);
  const red = redPrimary(body);
  if (!red) return undefined;
  const seq = (raw[2]! << 8) | raw[3]!;
  const data = body.subarray(red.offset);
  if (red.pt === fecPayloadType) return { fec: true, seq, data };
  return {
    fec: false,
    pt: red.pt,
    media: {
      seq,
      b0: raw[0]! & ~0x20,
      b1: (raw[1]! & 0x80) | red.pt,
      timestamp: ((raw[4]! << 24) | (raw[5]! << 16) | (raw[6]! << 8) | raw[7]!) >>> 0,
      tail: [raw.subarray(RTP_HEADER, headerEnd), data],
    },
  };
}
