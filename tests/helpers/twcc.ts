/**
 * An independent decoder of transport-wide congestion control feedback, written from
 * draft-holmer-rmcat-transport-wide-cc-extensions-01 alone, so tests can read back what the node
 * (or werift) sent without trusting either encoder.
 */

export interface DecodedFeedback {
  padding: boolean;
  senderSsrc: number;
  mediaSsrc: number;
  baseSeq: number;
  fbCount: number;
  referenceUs: number;
  /** Per reported sequence number (16-bit), its arrival time in µs, or null when not received. */
  arrivals: Map<number, number | null>;
}

/**
 * Decodes one transport feedback packet. Throws when the packet is malformed: a length field
 * that disagrees with the bytes, deltas running past the end. `lenient` decodes every byte
 * present even when the length field says less (to read what a broken sender meant).
 */
export function decodeFeedback(bytes: Uint8Array, lenient = false): DecodedFeedback {
  const b = Buffer.from(bytes);
  const first = b[0]!;
  if (first >> 6 !== 2) throw new Error('not RTCP version 2');
  if ((first & 0x1f) !== 15 || b[1] !== 205) throw new Error('not a transport feedback packet');
  const padding = (first & 0x20) !== 0;
  const declared = (b.readUInt16BE(2) + 1) * 4;
  if (!lenient && declared !== b.length) {
    throw new Error(`length field says ${declared} bytes, packet has ${b.length}`);
  }
  const end = (lenient ? b.length : declared) - (padding ? b[b.length - 1]! : 0);
  const baseSeq = b.readUInt16BE(12);
  const count = b.readUInt16BE(14);
  const referenceTicks = b.readUIntBE(16, 3);
  const statuses: number[] = [];
  let at = 20;
  while (statuses.length < count) {
    if (at + 2 > end) throw new Error(`status chunks run past the packet end (${end} bytes)`);
    const chunk = b.readUInt16BE(at);
    at += 2;
    if ((chunk & 0x8000) === 0) {
      const symbol = (chunk >> 13) & 0b11;
      for (let k = 0; k < (chunk & 0x1fff); k++) statuses.push(symbol);
    } else if ((chunk & 0x4000) === 0) {
      for (let k = 0; k < 14; k++) statuses.push((chunk >> (13 - k)) & 1);
    } else {
      for (let k = 0; k < 7; k++) statuses.push((chunk >> (12 - 2 * k)) & 0b11);
    }
  }
  statuses.length = count;
  const arrivals = new Map<number, number | null>();
  let time = referenceTicks * 64_000;
  statuses.forEach((status, i) => {
    const seq = (baseSeq + i) & 0xffff;
    if (status === 0) {
      arrivals.set(seq, null);
      return;
    }
    const size = status === 2 ? 2 : 1;
    if (status !== 3 && at + size > end) {
      throw new Error(`receive deltas run past the packet end (${end} bytes)`);
    }
    if (status === 1) {
      time += b.readUInt8(at) * 250;
      at += 1;
    } else if (status === 2) {
      time += b.readInt16BE(at) * 250;
      at += 2;
    } else {
      throw new Error('status "received without delta" is not expected here');
    }
    arrivals.set(seq, time);
  });
  if (end - at > 3) throw new Error(`${end - at} bytes left over after the receive deltas`);
  return {
    padding,
    senderSsrc: b.readUInt32BE(4),
    mediaSsrc: b.readUInt32BE(8),
    baseSeq,
    fbCount: b[19]!,
    referenceUs: referenceTicks * 64_000,
    arrivals,
  };
}

/** Splits a compound RTCP packet into its packets by their length fields. */
export function splitCompound(bytes: Uint8Array): Uint8Array[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at + 4 <= b.length; ) {
    const length = (b.readUInt16BE(at + 2) + 1) * 4;
    out.push(b.subarray(at, Math.min(b.length, at + length)));
    at += length;
  }
  return out;
}

/** True for an RTCP transport feedback packet (PT 205, FMT 15). */
export function isTransportFeedback(packet: Uint8Array): boolean {
  return packet.length >= 20 && packet[1] === 205 && (packet[0]! & 0x1f) === 15;
}
