import { randomBytes } from 'node:crypto';
import {
  element,
  findPath,
  floatEl,
  ID,
  idBytes,
  intEl,
  MATROSKA_EPOCH_MS,
  stringEl,
  UNKNOWN_SIZE,
  uintEl,
  uintLength,
  vint,
  vintLength,
  voidEl,
  writeUintBE,
  writeVint,
} from './ebml.ts';

export type VideoCodec = 'VP8' | 'H264';
export type AudioCodec = 'OPUS';

export interface WriterTrack {
  /** Matroska track number, from 1. */
  number: number;
  kind: 'video' | 'audio';
  codec: VideoCodec | AudioCodec;
}

export interface MatroskaWriterOptions {
  tracks: readonly WriterTrack[];
  /** Wall-clock time (UTC ms) of media time 0, written as the segment's DateUTC. */
  startedAt: number;
  /** WritingApp, e.g. `returncam 0.1.0`. */
  app: string;
  /** A new cluster starts at the latest after this many ms (and at every video keyframe). */
  maxClusterMs?: number;
}

/** Bytes to write at an absolute file offset (over space reserved earlier). */
export interface FilePatch {
  offset: number;
  bytes: Buffer;
}

/** Space reserved for the SeekHead, written when the file is finalised. */
export const SEEK_SLOT_BYTES = 96;
/** Space reserved for the Duration (ID 2 + size 1 + float 8). */
export const DURATION_SLOT_BYTES = 11;
/** Space reserved in an H.264 track for its CodecPrivate (avcC), filled at the first keyframe. */
export const CODEC_PRIVATE_SLOT_BYTES = 320;

export const CODEC_IDS: Record<VideoCodec | AudioCodec, string> = {
  VP8: 'V_VP8',
  H264: 'V_MPEG4/ISO/AVC',
  OPUS: 'A_OPUS',
};

/** OpusHead (RFC 7845 §5.1): stereo, 48 kHz, no pre-skip, channel mapping family 0. */
function opusHead(): Buffer {
  const b = Buffer.alloc(19);
  b.write('OpusHead', 0, 'ascii');
  b[8] = 1;
  b[9] = 2;
  b.writeUInt16LE(0, 10);
  b.writeUInt32LE(48_000, 12);
  b.writeInt16LE(0, 16);
  b[18] = 0;
  return b;
}

/**
 * Produces a live Matroska/WebM byte stream: a header whose Segment has unknown size, then
 * clusters of unknown size holding SimpleBlocks. Every byte it returns is final except the slots
 * it reserves (video size, H.264 CodecPrivate, Duration, SeekHead), which are patched in place.
 * A file cut anywhere after the header is still readable up to the cut. Pure: no I/O.
 */
export class MatroskaWriter {
  readonly docType: 'webm' | 'matroska';
  private readonly tracks: readonly WriterTrack[];
  private readonly maxClusterMs: number;
  private written = 0;
  private clusterAt: number | undefined;
  private videoFormatSet = false;
  private widthOffset = -1;
  private heightOffset = -1;
  private codecPrivateOffset = -1;

  constructor(private readonly options: MatroskaWriterOptions) {
    this.tracks = options.tracks;
    this.maxClusterMs = options.maxClusterMs ?? 1000;
    const video = this.tracks.find((t) => t.kind === 'video');
    this.docType = video?.codec === 'H264' ? 'matroska' : 'webm';
  }

  /** Bytes produced so far (the file offset of the next byte). */
  get offset(): number {
    return this.written;
  }

  /** The EBML header, the open Segment, Info and Tracks. Call once, first. */
  header(): Buffer {
    if (this.written !== 0) throw new Error('matroska writer: header() must be the first call');
    const ebml = element(
      ID.EBML,
      uintEl(ID.EBMLVersion, 1),
      uintEl(ID.EBMLReadVersion, 1),
      uintEl(ID.EBMLMaxIDLength, 4),
      uintEl(ID.EBMLMaxSizeLength, 8),
      stringEl(ID.DocType, this.docType),
      uintEl(ID.DocTypeVersion, 4),
      uintEl(ID.DocTypeReadVersion, 2),
    );
    const segmentStart = Buffer.concat([idBytes(ID.Segment), UNKNOWN_SIZE]);
    const dateNs = BigInt(this.options.startedAt - MATROSKA_EPOCH_MS) * 1_000_000n;
    const info = element(
      ID.Info,
      uintEl(ID.TimestampScale, 1_000_000),
      intEl(ID.DateUTC, dateNs),
      stringEl(ID.MuxingApp, 'returncam'),
      stringEl(ID.WritingApp, this.options.app),
      voidEl(DURATION_SLOT_BYTES),
    );
    const entries = this.tracks.map((t) => this.trackEntry(t));
    const tracks = element(ID.Tracks, ...entries);
    const head = Buffer.concat([ebml, segmentStart, voidEl(SEEK_SLOT_BYTES), info, tracks]);
    const tracksStart = head.length - tracks.length;
    const videoNumber = this.tracks.find((t) => t.kind === 'video')?.number;
    if (videoNumber !== undefined) {
      const entry = this.findEntry(head, tracksStart, videoNumber);
      if (entry) {
        const end = entry.dataStart + entry.size;
        const w = findPath(head, entry.dataStart, end, [ID.Video, ID.PixelWidth]);
        const h = findPath(head, entry.dataStart, end, [ID.Video, ID.PixelHeight]);
        if (w && h) {
          this.widthOffset = w.dataStart;
          this.heightOffset = h.dataStart;
        }
        const slot = findPath(head, entry.dataStart, end, [ID.Void]);
        if (slot) this.codecPrivateOffset = slot.start;
      }
    }
    this.written = head.length;
    return head;
  }

  private findEntry(head: Buffer, tracksStart: number, number: number) {
    const tracks = findPath(head, tracksStart, head.length, [ID.Tracks]);
    if (!tracks) return undefined;
    let pos = tracks.dataStart;
    const end = tracks.dataStart + tracks.size;
    while (pos < end) {
      const entry = findPath(head, pos, end, [ID.TrackEntry]);
      if (!entry) return undefined;
      const num = findPath(head, entry.dataStart, entry.dataStart + entry.size, [ID.TrackNumber]);
      if (num && head[num.dataStart + num.size - 1] === number) return entry;
      pos = entry.dataStart + entry.size;
    }
    return undefined;
  }

  private trackEntry(t: WriterTrack): Buffer {
    const common = [
      uintEl(ID.TrackNumber, t.number),
      uintEl(ID.TrackUID, randomBytes(4).readUInt32BE() + 1),
      uintEl(ID.TrackType, t.kind === 'video' ? 1 : 2),
      uintEl(ID.FlagLacing, 0),
      stringEl(ID.CodecID, CODEC_IDS[t.codec]),
    ];
    if (t.kind === 'video') {
      return element(
        ID.TrackEntry,
        ...common,
        // fixed-width placeholders, patched with the first keyframe's size
        element(ID.Video, uintEl(ID.PixelWidth, 0, 2), uintEl(ID.PixelHeight, 0, 2)),
        ...(t.codec === 'H264' ? [voidEl(CODEC_PRIVATE_SLOT_BYTES)] : []),
      );
    }
    return element(
      ID.TrackEntry,
      ...common,
      element(ID.CodecPrivate, opusHead()),
      uintEl(ID.SeekPreRoll, 80_000_000),
      element(ID.Audio, floatEl(ID.SamplingFrequency, 48_000), uintEl(ID.Channels, 2)),
    );
  }

  /**
   * The video track's size (and for H.264 its avcC), known at the first keyframe: patches for the
   * reserved header slots. Later calls return nothing (a size change mid-stream is carried by the
   * bitstream itself; decoders follow it).
   */
  videoFormat(format: { width: number; height: number; codecPrivate?: Buffer }): FilePatch[] {
    if (this.videoFormatSet || this.widthOffset < 0) return [];
    this.videoFormatSet = true;
    const patches: FilePatch[] = [];
    const dim = (v: number) => {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(Math.min(v, 0xffff));
      return b;
    };
    patches.push({ offset: this.widthOffset, bytes: dim(format.width) });
    patches.push({ offset: this.heightOffset, bytes: dim(format.height) });
    if (format.codecPrivate && this.codecPrivateOffset >= 0) {
      const len = format.codecPrivate.length;
      let el = Buffer.concat([idBytes(ID.CodecPrivate), vint(len, 2), format.codecPrivate]);
      let rest = CODEC_PRIVATE_SLOT_BYTES - el.length;
      if (rest === 1) {
        el = Buffer.concat([idBytes(ID.CodecPrivate), vint(len, 3), format.codecPrivate]);
        rest = 0;
      }
      if (rest >= 0) {
        patches.push({
          offset: this.codecPrivateOffset,
          bytes: rest > 0 ? Buffer.concat([el, voidEl(rest)]) : el,
        });
      }
    }
    return patches;
  }

  /**
   * One frame at media time `t` (ms from the start), as a new Buffer. Opens a new cluster at each
   * video keyframe and at least every `maxClusterMs`. Frames must come in time order.
   */
  frame(track: WriterTrack, t: number, keyframe: boolean, data: Buffer): Buffer {
    const sink = new OneBuffer();
    this.writeFrame(sink, track, t, keyframe, data);
    return sink.buffer;
  }

  /**
   * {@link frame}, written straight into `out` (a recording file's chunk): no Buffer per frame.
   */
  writeFrame(out: ByteSink, track: WriterTrack, t: number, keyframe: boolean, data: Buffer): void {
    const ms = Math.max(0, Math.round(t));
    const at = this.clusterAt;
    const newCluster =
      at === undefined ||
      ms - at >= this.maxClusterMs ||
      ms - at < -30_000 ||
      (track.kind === 'video' && keyframe && ms > at);
    const clusterAt = newCluster ? ms : at!;
    // Cluster: ID (4) + unknown size (8) + Timestamp element (ID, 1-byte size, value)
    const tsBytes = newCluster ? uintLength(ms) : 0;
    const clusterBytes = newCluster ? 4 + 8 + 2 + tsBytes : 0;
    const blockSize = data.length + 4;
    const sizeBytes = vintLength(blockSize);
    const total = clusterBytes + 1 + sizeBytes + blockSize;
    const start = out.reserve(total);
    if (start < 0) return;
    const buf = out.buffer;
    let p = start;
    if (newCluster) {
      this.clusterAt = ms;
      p = buf.writeUInt32BE(ID.Cluster, p);
      p += UNKNOWN_SIZE.copy(buf, p);
      buf[p++] = ID.Timestamp;
      buf[p++] = 0x80 | tsBytes;
      p = writeUintBE(buf, p, ms, tsBytes);
    }
    buf[p++] = ID.SimpleBlock;
    p = writeVint(buf, p, blockSize, sizeBytes);
    buf[p++] = 0x80 | track.number;
    p = buf.writeInt16BE(ms - clusterAt, p);
    buf[p++] = keyframe ? 0x80 : 0;
    data.copy(buf, p);
    this.written += total;
  }
}

/** Where {@link MatroskaWriter.writeFrame} puts its bytes. */
export interface ByteSink {
  /** Room for `n` bytes: their offset in `buffer`, or -1 to drop them. */
  reserve(n: number): number;
  readonly buffer: Buffer;
}

class OneBuffer implements ByteSink {
  buffer = Buffer.alloc(0);
  reserve(n: number): number {
    this.buffer = Buffer.alloc(n);
    return 0;
  }
}
