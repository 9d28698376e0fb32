/**
 * Classifying the packets a WebRTC 5-tuple carries (RFC 7983 demultiplexing), reading STUN
 * transaction ids, and the RTP header fields that SRTP leaves in the clear. Pure functions.
 */

export type PacketKind = 'stun' | 'dtls' | 'rtp' | 'rtcp' | 'other';

export const PACKET_KINDS: readonly PacketKind[] = ['stun', 'dtls', 'rtp', 'rtcp', 'other'];

const STUN_MAGIC = 0x2112a442;

export function packetKind(buf: Buffer): PacketKind {
  if (buf.length === 0) return 'other';
  const b0 = buf[0]!;
  if (b0 <= 3) return buf.length >= 20 && buf.readUInt32BE(4) === STUN_MAGIC ? 'stun' : 'other';
  if (b0 >= 20 && b0 <= 63) return 'dtls';
  if (b0 >= 128 && b0 <= 191) {
    if (buf.length < 2) return 'other';
    const b1 = buf[1]!;
    return b1 >= 192 && b1 <= 223 ? 'rtcp' : 'rtp';
  }
  return 'other';
}

export type StunClass = 'request' | 'indication' | 'success' | 'error';

/** The class and transaction id (hex) of a STUN message; undefined when it is not one. */
export function stunInfo(buf: Buffer): { cls: StunClass; txid: string } | undefined {
  if (packetKind(buf) !== 'stun') return undefined;
  const type = buf.readUInt16BE(0);
  const c = ((type & 0x0100) >> 7) | ((type & 0x0010) >> 4);
  const cls = (['request', 'indication', 'success', 'error'] as const)[c]!;
  return { cls, txid: buf.toString('hex', 8, 20) };
}

export interface RtpHeaderInfo {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
}

/** The fixed RTP header (in the clear in SRTP); undefined for RTCP and anything else. */
export function rtpHeader(buf: Buffer): RtpHeaderInfo | undefined {
  if (buf.length < 12 || packetKind(buf) !== 'rtp') return undefined;
  const b1 = buf[1]!;
  return {
    payloadType: b1 & 0x7f,
    marker: (b1 & 0x80) !== 0,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
  };
}
