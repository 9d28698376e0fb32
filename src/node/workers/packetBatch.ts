/**
 * A published track's packets carried from a media worker to the main thread (the recorder) as
 * one transferable buffer per batch instead of one message per packet. Each record is
 *
 *   sequenceNumber u16 | timestamp u32 | flags u8 (bit 0 = marker) | payloadType u8 | length u16 | payload
 *
 * big-endian, back to back. A batch holds at most {@link BATCH_PACKETS} packets.
 */

/** What the recorder needs of one RTP packet. */
export interface BatchedPacket {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payloadType: number;
  payload: Uint8Array;
}

export const RECORD_HEADER_BYTES = 10;
/** A batch is posted once it holds this many packets (or when its timer fires). */
export const BATCH_PACKETS = 32;
/** Largest payload a record can carry (the length field is 16 bits). */
export const MAX_PAYLOAD_BYTES = 0xffff;
/** Room for a full batch of ordinary (MTU-sized) packets. */
const DEFAULT_CAPACITY = BATCH_PACKETS * (RECORD_HEADER_BYTES + 1300);

/** Collects packets into one buffer; `take()` hands the buffer over (to be transferred). */
export class PacketBatchWriter {
  private buffer: ArrayBuffer;
  private bytes: Uint8Array;
  private view: DataView;
  private offset = 0;
  private packets = 0;

  constructor(private readonly capacity = DEFAULT_CAPACITY) {
    this.buffer = new ArrayBuffer(capacity);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  get count(): number {
    return this.packets;
  }

  get full(): boolean {
    return this.packets >= BATCH_PACKETS;
  }

  /** Appends a packet; false when it does not fit (take the batch, then add it again). */
  add(
    sequenceNumber: number,
    timestamp: number,
    marker: boolean,
    payloadType: number,
    payload: Uint8Array,
  ): boolean {
    const length = payload.length;
    if (length > MAX_PAYLOAD_BYTES) {
      throw new RangeError(`RTP payload of ${length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
    }
    const size = RECORD_HEADER_BYTES + length;
    if (this.offset + size > this.buffer.byteLength) {
      if (this.packets > 0) return false;
      // a lone packet larger than the buffer gets a buffer of its own size
      this.replace(Math.max(this.capacity, size));
    }
    const v = this.view;
    const o = this.offset;
    v.setUint16(o, sequenceNumber & 0xffff);
    v.setUint32(o + 2, timestamp >>> 0);
    v.setUint8(o + 6, marker ? 1 : 0);
    v.setUint8(o + 7, payloadType & 0x7f);
    v.setUint16(o + 8, length);
    this.bytes.set(payload, o + RECORD_HEADER_BYTES);
    this.offset = o + size;
    this.packets++;
    return true;
  }

  /** The batch so far (`buffer` is trimmed to what was written) and a fresh empty one. */
  take(): { buffer: ArrayBuffer; count: number } | undefined {
    if (this.packets === 0) return undefined;
    const out = { buffer: this.buffer.slice(0, this.offset), count: this.packets };
    this.offset = 0;
    this.packets = 0;
    return out;
  }

  private replace(capacity: number): void {
    this.buffer = new ArrayBuffer(capacity);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
  }
}

/**
 * Calls `each` for every packet of a batch, in order. Payloads are views into `buffer` (no copy).
 * Throws on a batch that does not parse, saying where.
 */
export function readPacketBatch(
  buffer: ArrayBuffer,
  each: (packet: BatchedPacket & { payload: Buffer }) => void,
): number {
  const view = new DataView(buffer);
  let offset = 0;
  let count = 0;
  while (offset < buffer.byteLength) {
    if (offset + RECORD_HEADER_BYTES > buffer.byteLength) {
      throw new RangeError(`packet batch: truncated header at byte ${offset}`);
    }
    const length = view.getUint16(offset + 8);
    const start = offset + RECORD_HEADER_BYTES;
    if (start + length > buffer.byteLength) {
      throw new RangeError(`packet batch: payload of ${length} bytes at byte ${start} overruns`);
    }
    each({
      sequenceNumber: view.getUint16(offset),
      timestamp: view.getUint32(offset + 2),
      marker: (view.getUint8(offset + 6) & 1) === 1,
      payloadType: view.getUint8(offset + 7),
      payload: Buffer.from(buffer, start, length),
    });
    offset = start + length;
    count++;
  }
  return count;
}
