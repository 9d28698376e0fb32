/**
 * EBML (the binary format under Matroska/WebM): element IDs the recorder writes and reads, and
 * encoders for sizes and values. Pure functions, no I/O.
 */

export const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  SeekHead: 0x114d9b74,
  Seek: 0x4dbb,
  SeekID: 0x53ab,
  SeekPosition: 0x53ac,
  Info: 0x1549a966,
  TimestampScale: 0x2ad7b1,
  Duration: 0x4489,
  DateUTC: 0x4461,
  Title: 0x7ba9,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  FlagLacing: 0x9c,
  Name: 0x536e,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  CodecDelay: 0x56aa,
  SeekPreRoll: 0x56bb,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Audio: 0xe1,
  SamplingFrequency: 0xb5,
  Channels: 0x9f,
  Cluster: 0x1f43b675,
  Timestamp: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  Cues: 0x1c53bb6b,
  CuePoint: 0xbb,
  CueTime: 0xb3,
  CueTrackPositions: 0xb7,
  CueTrack: 0xf7,
  CueClusterPosition: 0xf1,
  Void: 0xec,
  Tags: 0x1254c367,
  Chapters: 0x1043a770,
  Attachments: 0x1941a469,
} as const;

/** The 8-byte "unknown size" marker: lets a Segment or Cluster grow while it is written. */
export const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Milliseconds between 1970-01-01 and Matroska's epoch, 2001-01-01 (UTC). */
export const MATROSKA_EPOCH_MS = Date.UTC(2001, 0, 1);

export function idBytes(id: number): Buffer {
  if (id <= 0xff) return Buffer.from([id]);
  if (id <= 0xffff) return Buffer.from([id >> 8, id & 0xff]);
  if (id <= 0xffffff) return Buffer.from([id >> 16, (id >> 8) & 0xff, id & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(id);
  return b;
}

/** An EBML variable-size integer (element size) in the fewest bytes, or exactly `width` bytes. */
/** Bytes of an EBML size in the fewest bytes. */
export function vintLength(value: number): number {
  let len = 1;
  while (len < 8 && value >= 2 ** (7 * len) - 1) len++;
  return len;
}

/** Bytes of an unsigned integer element's value in the fewest bytes (at least 1). */
export function uintLength(value: number): number {
  let len = 1;
  while (len < 8 && value >= 2 ** (8 * len)) len++;
  return len;
}

/** Writes `value` big-endian in `width` bytes at `at`; returns the offset after it. */
export function writeUintBE(buf: Buffer, at: number, value: number, width: number): number {
  let v = value;
  for (let i = width - 1; i >= 0; i--) {
    buf[at + i] = v % 256;
    v = Math.floor(v / 256);
  }
  return at + width;
}

/** Writes an EBML size in `width` bytes at `at`; returns the offset after it. */
export function writeVint(buf: Buffer, at: number, value: number, width: number): number {
  writeUintBE(buf, at, value, width);
  buf[at] = buf[at]! | (1 << (8 - width));
  return at + width;
}

export function vint(value: number, width?: number): Buffer {
  const len = vintLength(value);
  const w = width ?? len;
  if (w < len || w > 8) throw new RangeError(`EBML size ${value} does not fit in ${w} bytes`);
  const b = Buffer.alloc(w);
  writeVint(b, 0, value, w);
  return b;
}

export function element(id: number, ...payload: Buffer[]): Buffer {
  const data = payload.length === 1 ? payload[0]! : Buffer.concat(payload);
  return Buffer.concat([idBytes(id), vint(data.length), data]);
}

/** An unsigned integer element in the fewest bytes, or exactly `width` bytes (for later patching). */
export function uintEl(id: number, value: number, width?: number): Buffer {
  const w = width ?? uintLength(value);
  const b = Buffer.alloc(w);
  writeUintBE(b, 0, value, w);
  return element(id, b);
}

export function intEl(id: number, value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(value);
  return element(id, b);
}

export function floatEl(id: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value);
  return element(id, b);
}

export function stringEl(id: number, value: string): Buffer {
  return element(id, Buffer.from(value, 'utf8'));
}

/** A Void element of exactly `total` bytes (≥ 2): reserved space that can be overwritten later. */
export function voidEl(total: number): Buffer {
  if (total < 2) throw new RangeError('a Void element needs at least 2 bytes');
  // one size byte covers payloads up to 126 bytes; beyond that use 8 size bytes
  const sizeLen = total - 2 <= 126 ? 1 : 8;
  const payload = total - 1 - sizeLen;
  return Buffer.concat([Buffer.from([ID.Void]), vint(payload, sizeLen), Buffer.alloc(payload)]);
}

/** Reads an element ID at `pos`: [id, length] or undefined when the bytes are not a valid ID. */
export function readId(buf: Buffer, pos: number): [number, number] | undefined {
  if (pos >= buf.length) return undefined;
  const first = buf[pos]!;
  let len = 0;
  for (let i = 0; i < 4; i++) {
    if (first & (0x80 >> i)) {
      len = i + 1;
      break;
    }
  }
  if (len === 0 || pos + len > buf.length) return undefined;
  let id = 0;
  for (let i = 0; i < len; i++) id = id * 256 + buf[pos + i]!;
  return [id, len];
}

/**
 * Reads an element size at `pos`: [size, length], with size `-1` for "unknown", or undefined when
 * the bytes run out or are not a valid size.
 */
export function readSize(buf: Buffer, pos: number): [number, number] | undefined {
  if (pos >= buf.length) return undefined;
  const first = buf[pos]!;
  let len = 0;
  for (let i = 0; i < 8; i++) {
    if (first & (0x80 >> i)) {
      len = i + 1;
      break;
    }
  }
  if (len === 0 || pos + len > buf.length) return undefined;
  let value = first & (0xff >> len);
  let allOnes = value === 0xff >> len;
  for (let i = 1; i < len; i++) {
    const b = buf[pos + i]!;
    if (b !== 0xff) allOnes = false;
    value = value * 256 + b;
  }
  return [allOnes ? -1 : value, len];
}

export function readUint(buf: Buffer): number {
  let v = 0;
  for (const b of buf) v = v * 256 + b;
  return v;
}

export function readFloat(buf: Buffer): number {
  if (buf.length === 4) return buf.readFloatBE(0);
  if (buf.length === 8) return buf.readDoubleBE(0);
  return 0;
}

/** Where one element sits in a buffer: its start, where its data starts, and its data size. */
export interface ElementSpan {
  id: number;
  start: number;
  dataStart: number;
  size: number;
}

/** The direct children of the element data in `buf[start, end)` (sizes must be known). */
export function children(buf: Buffer, start: number, end: number): ElementSpan[] {
  const out: ElementSpan[] = [];
  let pos = start;
  while (pos < end) {
    const id = readId(buf, pos);
    if (!id) break;
    const size = readSize(buf, pos + id[1]);
    if (!size || size[0] < 0) break;
    const dataStart = pos + id[1] + size[1];
    if (dataStart + size[0] > end) break;
    out.push({ id: id[0], start: pos, dataStart, size: size[0] });
    pos = dataStart + size[0];
  }
  return out;
}

/** Follows a path of element IDs down from `buf[start, end)`; the first match at each level. */
export function findPath(
  buf: Buffer,
  start: number,
  end: number,
  path: readonly number[],
): ElementSpan | undefined {
  let span: ElementSpan | undefined;
  let from = start;
  let to = end;
  for (const id of path) {
    span = children(buf, from, to).find((c) => c.id === id);
    if (!span) return undefined;
    from = span.dataStart;
    to = span.dataStart + span.size;
  }
  return span;
}
