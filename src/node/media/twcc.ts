/**
 * Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01),
 * the receive side: records the arrival time of every RTP packet of a publisher connection by its
 * transport-wide sequence number and turns them into RTCP transport feedback packets (PT 205,
 * FMT 15) that the sender's delay-based estimator (Chrome's GoogCC) can trust.
 *
 * Differences from werift 0.24.4's `ReceiverTWCC`, which this replaces on the publisher leg:
 * - the first receive delta of each feedback is measured from the reference time as written
 *   (floored to 64 ms), so the sender reconstructs every arrival time to within 250 µs;
 * - sequence numbers that never arrived are reported as "not received" instead of being folded
 *   into the previous run, so the deltas stay aligned with their packets after a loss;
 * - each packet is reported once: arrivals of sequence numbers already reported are ignored.
 *
 * Recording is allocation-free (a preallocated ring of arrival times); building a feedback packet
 * allocates only the packet itself.
 */

/** Header extension URI of the transport-wide sequence number. */
export const TRANSPORT_CC_URI =
  'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

/** Packet status symbols (draft section 3.1.1). */
export const STATUS_NOT_RECEIVED = 0;
export const STATUS_SMALL_DELTA = 1;
export const STATUS_LARGE_DELTA = 2;

/** Receive deltas are in multiples of 250 µs; the reference time in multiples of 64 ms. */
export const DELTA_TICK_US = 250;
export const REFERENCE_TICK_US = 64_000;

const RTPFB = 205;
const FMT_TRANSPORT_CC = 15;
const HEADER_BYTES = 20;
const MAX_RUN_LENGTH = 0x1fff;
/** Sequence numbers held between two feedbacks; older unreported ones are dropped past this. */
const RING_SIZE = 1 << 14;
const RING_MASK = RING_SIZE - 1;
/** Most sequence numbers one feedback covers (the packet status count is 16 bits). */
const MAX_STATUS_COUNT = 0xffff;
/** Most received packets one feedback reports, so it stays within one datagram (≤ ~1.2 kB). */
const MAX_RECEIVED_PER_FEEDBACK = 300;

/**
 * One run-length chunk (draft section 3.1.3): `0`, a 2-bit status symbol, a 13-bit run length.
 */
export function runLengthChunk(symbol: number, runLength: number): number {
  if (runLength < 1 || runLength > MAX_RUN_LENGTH) {
    throw new RangeError(`run length ${runLength} is outside 1..${MAX_RUN_LENGTH}`);
  }
  return ((symbol & 0b11) << 13) | runLength;
}

/**
 * One status vector chunk (draft section 3.1.4): `1`, the symbol size (0: fourteen 1-bit
 * symbols, not received / received with small delta; 1: seven 2-bit symbols). Symbols past the
 * end of `symbols[start..end)` are written as "not received".
 */
export function statusVectorChunk(
  symbols: ArrayLike<number>,
  start: number,
  end: number,
  twoBit: boolean,
): number {
  const capacity = twoBit ? 7 : 14;
  let chunk = twoBit ? 0xc000 : 0x8000;
  for (let k = 0; k < capacity; k++) {
    const i = start + k;
    const symbol = i < end ? symbols[i]! : STATUS_NOT_RECEIVED;
    if (twoBit) chunk |= (symbol & 0b11) << (12 - 2 * k);
    else chunk |= (symbol & 0b1) << (13 - k);
  }
  return chunk;
}

/**
 * Encodes `symbols[0..count)` as packet status chunks into `out` (16-bit values); returns how
 * many were written. Runs of 14 or more equal symbols (7 or more where 1-bit symbols cannot
 * express the next ones) become run-length chunks; the rest status vectors, 1-bit when no large
 * delta is among the next fourteen symbols, 2-bit otherwise.
 */
export function encodeStatusChunks(
  symbols: ArrayLike<number>,
  count: number,
  out: Uint16Array,
): number {
  let written = 0;
  let i = 0;
  while (i < count) {
    let run = 1;
    while (i + run < count && run < MAX_RUN_LENGTH && symbols[i + run] === symbols[i]) run++;
    if (run >= 14 || i + run === count) {
      out[written++] = runLengthChunk(symbols[i]!, run);
      i += run;
      continue;
    }
    let hasLarge = false;
    for (let k = i; k < Math.min(count, i + 14); k++) {
      if (symbols[k] === STATUS_LARGE_DELTA) {
        hasLarge = true;
        break;
      }
    }
    if (!hasLarge) {
      out[written++] = statusVectorChunk(symbols, i, count, false);
      i += 14;
    } else if (run >= 7) {
      out[written++] = runLengthChunk(symbols[i]!, run);
      i += run;
    } else {
      out[written++] = statusVectorChunk(symbols, i, count, true);
      i += 7;
    }
  }
  return written;
}

export interface TransportFeedbackStats {
  /** RTP packets that carried a transport-wide sequence number. */
  recorded: number;
  /** Arrivals ignored: sequence number already reported, or a duplicate. */
  ignored: number;
  /** Sequence numbers reported as not received. */
  reportedLost: number;
  /** Feedback packets built. */
  feedbacks: number;
}

export interface TransportFeedbackOptions {
  /** SSRC written as the feedback's packet sender. */
  senderSsrc: number;
}

/**
 * Records arrivals and builds transport feedback packets. Pure: the caller supplies arrival times
 * (microseconds on any monotonic clock) and sends what {@link flush} returns.
 */
export class TransportFeedbackGenerator {
  readonly stats: TransportFeedbackStats = {
    recorded: 0,
    ignored: 0,
    reportedLost: 0,
    feedbacks: 0,
  };
  private readonly arrivals = new Float64Array(RING_SIZE).fill(Number.NaN);
  private readonly symbols = new Uint8Array(MAX_STATUS_COUNT);
  private readonly deltas = new Int16Array(MAX_STATUS_COUNT);
  private readonly chunks = new Uint16Array(MAX_STATUS_COUNT);
  /** First unreported sequence number (unwrapped); -1 before the first packet. */
  private base = -1;
  /** Highest sequence number recorded (unwrapped). */
  private highest = -1;
  private mediaSsrc = 0;
  private fbPacketCount = 0;

  constructor(private readonly options: TransportFeedbackOptions) {
    if (!Number.isInteger(options.senderSsrc) || options.senderSsrc < 0) {
      throw new RangeError(
        `senderSsrc must be a 32-bit unsigned integer, got ${options.senderSsrc}`,
      );
    }
  }

  /** Sequence numbers recorded but not yet reported (received or not). */
  get pending(): number {
    return this.base < 0 ? 0 : this.highest - this.base + 1;
  }

  /**
   * Records one packet: its 16-bit transport-wide sequence number, when it arrived (µs) and its
   * SSRC (the feedback names the last one as media source, as libwebrtc does).
   */
  record(sequenceNumber: number, arrivalUs: number, ssrc: number): void {
    const seq = this.unwrap(sequenceNumber & 0xffff);
    this.mediaSsrc = ssrc >>> 0;
    if (this.base < 0) {
      this.base = seq;
      this.highest = seq;
    } else if (seq < this.base) {
      this.stats.ignored++;
      return;
    }
    if (seq - this.base >= RING_SIZE) {
      // A jump further than the ring holds: what is older was never going to be reported in time.
      const newBase = seq - RING_SIZE + 1;
      for (let s = this.base; s < Math.min(newBase, this.highest + 1); s++) {
        this.arrivals[s & RING_MASK] = Number.NaN;
      }
      this.base = newBase;
    }
    const slot = seq & RING_MASK;
    if (!Number.isNaN(this.arrivals[slot]!)) {
      this.stats.ignored++;
      return;
    }
    this.arrivals[slot] = arrivalUs;
    if (seq > this.highest) this.highest = seq;
    this.stats.recorded++;
  }

  /**
   * Builds feedback for every sequence number from the first unreported one to the highest
   * recorded: usually one packet, more when a delta does not fit 16 bits or the range is long.
   */
  flush(): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (this.base >= 0 && this.base <= this.highest) {
      out.push(this.buildOne());
    }
    return out;
  }

  private unwrap(seq16: number): number {
    if (this.highest < 0) return seq16;
    let diff = seq16 - (this.highest & 0xffff);
    if (diff > 0x7fff) diff -= 0x10000;
    else if (diff < -0x8000) diff += 0x10000;
    return this.highest + diff;
  }

  private buildOne(): Uint8Array {
    const base = this.base;
    // The reference time comes from the first received packet; every later one is received too
    // (the range ends at the highest recorded), so this search stops inside it.
    let first = base;
    while (Number.isNaN(this.arrivals[first & RING_MASK]!)) first++;
    const referenceTicks = Math.floor(this.arrivals[first & RING_MASK]! / REFERENCE_TICK_US);
    let previousUs = referenceTicks * REFERENCE_TICK_US;
    let count = 0;
    let deltaCount = 0;
    let deltaBytes = 0;
    let lost = 0;
    let seq = base;
    for (; seq <= this.highest && count < MAX_STATUS_COUNT; seq++) {
      const slot = seq & RING_MASK;
      const arrival = this.arrivals[slot]!;
      if (Number.isNaN(arrival)) {
        this.symbols[count++] = STATUS_NOT_RECEIVED;
        lost++;
        continue;
      }
      if (deltaCount === MAX_RECEIVED_PER_FEEDBACK) break;
      const ticks = Math.floor((arrival - previousUs) / DELTA_TICK_US);
      if (ticks < -0x8000 || ticks > 0x7fff) break; // starts the next feedback, with its own reference
      this.symbols[count++] = ticks >= 0 && ticks <= 0xff ? STATUS_SMALL_DELTA : STATUS_LARGE_DELTA;
      deltaBytes += ticks >= 0 && ticks <= 0xff ? 1 : 2;
      this.deltas[deltaCount++] = ticks;
      previousUs += ticks * DELTA_TICK_US;
      this.arrivals[slot] = Number.NaN;
    }
    // A feedback never ends on a loss: trailing losses stay for the next one, after the packet
    // that follows them (a feedback only reaches the highest recorded, which was received).
    while (count > 0 && this.symbols[count - 1] === STATUS_NOT_RECEIVED) {
      count--;
      lost--;
      seq--;
    }
    this.base = seq;
    this.stats.reportedLost += lost;
    this.stats.feedbacks++;

    const chunkCount = encodeStatusChunks(this.symbols, count, this.chunks);
    const unpadded = HEADER_BYTES + 2 * chunkCount + deltaBytes;
    const padding = (4 - (unpadded % 4)) % 4;
    const bytes = new Uint8Array(unpadded + padding);
    const view = new DataView(bytes.buffer);
    view.setUint8(0, 0x80 | (padding > 0 ? 0x20 : 0) | FMT_TRANSPORT_CC);
    view.setUint8(1, RTPFB);
    view.setUint16(2, bytes.length / 4 - 1);
    view.setUint32(4, this.options.senderSsrc >>> 0);
    view.setUint32(8, this.mediaSsrc);
    view.setUint16(12, base & 0xffff);
    view.setUint16(14, count);
    // 24-bit reference time (wraps, as the draft allows), then the 8-bit feedback packet count.
    view.setUint32(16, (((referenceTicks & 0xffffff) << 8) | this.fbPacketCount) >>> 0);
    this.fbPacketCount = (this.fbPacketCount + 1) & 0xff;
    let offset = HEADER_BYTES;
    for (let c = 0; c < chunkCount; c++, offset += 2) view.setUint16(offset, this.chunks[c]!);
    for (let d = 0; d < deltaCount; d++) {
      const ticks = this.deltas[d]!;
      if (ticks >= 0 && ticks <= 0xff) view.setUint8(offset++, ticks);
      else {
        view.setInt16(offset, ticks);
        offset += 2;
      }
    }
    // RTCP padding (RFC 3550 section 6.4.1): zeros, the last byte counting the padding bytes.
    if (padding > 0) bytes[bytes.length - 1] = padding;
    return bytes;
  }
}

/**
 * The transport-wide sequence number of a packet, read from its parsed one- or two-byte header
 * extensions; `extensionIds[id]` is non-zero for each id negotiated for it (offers may give each
 * bundled m-section its own). Undefined when absent.
 */
export function transportSequenceNumber(
  extensions: readonly { id: number; payload: Uint8Array }[],
  extensionIds: Uint8Array,
): number | undefined {
  for (let i = 0; i < extensions.length; i++) {
    const ext = extensions[i]!;
    if (extensionIds[ext.id] && ext.payload.length >= 2) {
      return (ext.payload[0]! << 8) | ext.payload[1]!;
    }
  }
  return undefined;
}

/** A lookup table for {@link transportSequenceNumber}: one entry per possible extension id. */
export function extensionIdTable(ids: readonly number[]): Uint8Array {
  const table = new Uint8Array(256);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 1 || id > 255) {
      throw new RangeError(`header extension id ${id} is outside 1..255`);
    }
    table[id] = 1;
  }
  return table;
}
