import { type FileHandle, open } from 'node:fs/promises';
import {
  children,
  element,
  findPath,
  floatEl,
  ID,
  idBytes,
  MATROSKA_EPOCH_MS,
  readFloat,
  readId,
  readSize,
  readUint,
  uintEl,
  vint,
  voidEl,
} from './ebml.ts';
import { DURATION_SLOT_BYTES, SEEK_SLOT_BYTES } from './MatroskaWriter.ts';

/**
 * Reading back what {@link MatroskaWriter} wrote (or any simple Matroska file): a streaming scan
 * that finds where the last complete element ends, and an in-place finaliser that turns a live
 * file (unknown sizes) into a clean one: sizes, Duration, Cues and SeekHead.
 */

export interface ScannedTrack {
  number: number;
  kind: 'video' | 'audio' | 'other';
  codecId: string;
  width?: number;
  height?: number;
  frames: number;
  keyframes: number;
  /** Media time (ms) of the first and last block. */
  firstMs?: number;
  lastMs?: number;
  bytes: number;
}

export interface ScannedCluster {
  offset: number;
  sizeOffset: number;
  sizeLength: number;
  sizeKnown: boolean;
  dataStart: number;
  end: number;
  timestamp: number;
  /** Time of the cluster's first block when that is a video keyframe (a seek point). */
  keyframeAt?: number;
}

export interface MatroskaScan {
  docType: string;
  fileSize: number;
  /** End of the last complete element: everything before it is readable. */
  goodEnd: number;
  truncated: boolean;
  segmentSizeOffset: number;
  segmentSizeKnown: boolean;
  segmentDataStart: number;
  /** Wall-clock start from DateUTC (UTC ms), if present. */
  startedAt?: number;
  durationMs?: number;
  infoOffset?: number;
  tracksOffset?: number;
  cuesOffset?: number;
  /** Reserved Void slots the writer left for finalising. */
  seekSlot?: { offset: number; size: number };
  durationSlot?: { offset: number; size: number };
  tracks: ScannedTrack[];
  clusters: ScannedCluster[];
  problems: string[];
}

const LEVEL1 = new Set<number>([
  ID.SeekHead,
  ID.Info,
  ID.Tracks,
  ID.Cluster,
  ID.Cues,
  ID.Tags,
  ID.Chapters,
  ID.Attachments,
  ID.Void,
]);

/** Sequential reads through a window, so a scan reads each byte of the file about once. */
class WindowReader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly window = 1 << 20,
  ) {}

  /** `n` bytes at `pos`, or fewer when the file ends first. */
  async read(pos: number, n: number): Promise<Buffer> {
    if (pos >= this.bufStart && pos + n <= this.bufStart + this.buf.length) {
      return this.buf.subarray(pos - this.bufStart, pos - this.bufStart + n);
    }
    const len = Math.min(Math.max(n, this.window), this.size - pos);
    if (len <= 0) return Buffer.alloc(0);
    const b = Buffer.alloc(len);
    const { bytesRead } = await this.fh.read(b, 0, len, pos);
    this.buf = b.subarray(0, bytesRead);
    this.bufStart = pos;
    return this.buf.subarray(0, Math.min(n, bytesRead));
  }

  /** An element header at `pos`: id, size (-1 unknown), header length; undefined when cut. */
  async header(
    pos: number,
  ): Promise<{ id: number; size: number; headerLength: number; sizeLength: number } | undefined> {
    const b = await this.read(pos, 12);
    const id = readId(b, 0);
    if (!id) return undefined;
    const size = readSize(b, id[1]);
    if (!size) return undefined;
    return { id: id[0], size: size[0], headerLength: id[1] + size[1], sizeLength: size[1] };
  }
}

function parseTracks(buf: Buffer): ScannedTrack[] {
  const out: ScannedTrack[] = [];
  for (const entry of children(buf, 0, buf.length)) {
    if (entry.id !== ID.TrackEntry) continue;
    const end = entry.dataStart + entry.size;
    const get = (path: number[]) => {
      const s = findPath(buf, entry.dataStart, end, path);
      return s ? buf.subarray(s.dataStart, s.dataStart + s.size) : undefined;
    };
    const type = get([ID.TrackType]);
    const t = type ? readUint(type) : 0;
    const w = get([ID.Video, ID.PixelWidth]);
    const h = get([ID.Video, ID.PixelHeight]);
    out.push({
      number: readUint(get([ID.TrackNumber]) ?? Buffer.alloc(0)),
      kind: t === 1 ? 'video' : t === 2 ? 'audio' : 'other',
      codecId: get([ID.CodecID])?.toString('utf8') ?? '',
      ...(w ? { width: readUint(w) } : {}),
      ...(h ? { height: readUint(h) } : {}),
      frames: 0,
      keyframes: 0,
      bytes: 0,
    });
  }
  return out;
}

/** Scans a Matroska file without loading it: layout, per-track frame counts and the readable end. */
export async function scanMatroska(file: string): Promise<MatroskaScan> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    return await scanHandle(new WindowReader(fh, size));
  } finally {
    await fh.close();
  }
}

async function scanHandle(r: WindowReader): Promise<MatroskaScan> {
  const scan: MatroskaScan = {
    docType: '',
    fileSize: r.size,
    goodEnd: 0,
    truncated: false,
    segmentSizeOffset: -1,
    segmentSizeKnown: false,
    segmentDataStart: -1,
    tracks: [],
    clusters: [],
    problems: [],
  };
  const ebml = await r.header(0);
  if (!ebml || ebml.id !== ID.EBML || ebml.size < 0 || ebml.headerLength + ebml.size > r.size) {
    scan.problems.push('the file does not start with a complete EBML header');
    scan.truncated = true;
    return scan;
  }
  const ebmlData = await r.read(ebml.headerLength, ebml.size);
  const dt = findPath(ebmlData, 0, ebmlData.length, [ID.DocType]);
  scan.docType = dt
    ? ebmlData.subarray(dt.dataStart, dt.dataStart + dt.size).toString('ascii')
    : '';
  const segPos = ebml.headerLength + ebml.size;
  scan.goodEnd = segPos;
  const seg = await r.header(segPos);
  if (!seg || seg.id !== ID.Segment) {
    scan.problems.push('no Segment after the EBML header');
    scan.truncated = true;
    return scan;
  }
  scan.segmentSizeOffset = segPos + seg.headerLength - seg.sizeLength;
  scan.segmentSizeKnown = seg.size >= 0;
  scan.segmentDataStart = segPos + seg.headerLength;
  const segEnd = seg.size >= 0 ? Math.min(scan.segmentDataStart + seg.size, r.size) : r.size;
  if (seg.size >= 0 && scan.segmentDataStart + seg.size > r.size) {
    scan.problems.push('the Segment is shorter than its declared size');
  }
  scan.goodEnd = scan.segmentDataStart;
  const byNumber = new Map<number, ScannedTrack>();
  let pos = scan.segmentDataStart;
  let first = true;
  while (pos < segEnd) {
    const h = await r.header(pos);
    if (!h) {
      scan.truncated = true;
      break;
    }
    if (!LEVEL1.has(h.id)) {
      scan.problems.push(`unexpected element 0x${h.id.toString(16)} at byte ${pos}`);
      scan.truncated = true;
      break;
    }
    const dataStart = pos + h.headerLength;
    if (h.id === ID.Cluster) {
      const end = await scanCluster(r, scan, byNumber, pos, h, segEnd);
      if (end === undefined) break;
      pos = end;
      scan.goodEnd = pos;
      first = false;
      continue;
    }
    if (h.size < 0 || dataStart + h.size > segEnd) {
      scan.truncated = true;
      break;
    }
    if (h.id === ID.Void && first && h.headerLength + h.size >= SEEK_SLOT_BYTES - 1) {
      scan.seekSlot = { offset: pos, size: h.headerLength + h.size };
    } else if (h.id === ID.Info) {
      scan.infoOffset = pos;
      const info = await r.read(dataStart, h.size);
      for (const c of children(info, 0, info.length)) {
        const data = info.subarray(c.dataStart, c.dataStart + c.size);
        if (c.id === ID.Duration) scan.durationMs = readFloat(data);
        else if (c.id === ID.DateUTC && c.size === 8) {
          scan.startedAt = Number(data.readBigInt64BE() / 1_000_000n) + MATROSKA_EPOCH_MS;
        } else if (c.id === ID.Void && c.dataStart - c.start + c.size === DURATION_SLOT_BYTES) {
          scan.durationSlot = { offset: dataStart + c.start, size: DURATION_SLOT_BYTES };
        }
      }
    } else if (h.id === ID.Tracks) {
      scan.tracksOffset = pos;
      scan.tracks = parseTracks(await r.read(dataStart, h.size));
      for (const t of scan.tracks) byNumber.set(t.number, t);
    } else if (h.id === ID.Cues) {
      scan.cuesOffset = pos;
    } else if (h.id === ID.SeekHead && first) {
      scan.seekSlot = { offset: pos, size: h.headerLength + h.size };
    }
    first = false;
    pos = dataStart + h.size;
    scan.goodEnd = pos;
  }
  if (scan.goodEnd < r.size && !scan.truncated) scan.truncated = true;
  return scan;
}

/** Scans one cluster; returns where it ends, or undefined when the file is cut inside it. */
async function scanCluster(
  r: WindowReader,
  scan: MatroskaScan,
  byNumber: Map<number, ScannedTrack>,
  offset: number,
  h: { size: number; headerLength: number; sizeLength: number },
  segEnd: number,
): Promise<number | undefined> {
  const dataStart = offset + h.headerLength;
  const declaredEnd = h.size >= 0 ? dataStart + h.size : undefined;
  const limit = Math.min(declaredEnd ?? segEnd, segEnd);
  const cluster: ScannedCluster = {
    offset,
    sizeOffset: offset + h.headerLength - h.sizeLength,
    sizeLength: h.sizeLength,
    sizeKnown: h.size >= 0,
    dataStart,
    end: dataStart,
    timestamp: 0,
  };
  let pos = dataStart;
  let sawBlock = false;
  let cut = false;
  while (pos < limit) {
    const c = await r.header(pos);
    if (!c) {
      cut = true;
      break;
    }
    if (declaredEnd === undefined && LEVEL1.has(c.id) && c.id !== ID.Void) break; // next top-level element
    if (c.size < 0 || pos + c.headerLength + c.size > limit) {
      cut = true;
      break;
    }
    const cData = pos + c.headerLength;
    if (c.id === ID.Timestamp) {
      cluster.timestamp = readUint(await r.read(cData, c.size));
    } else if (c.id === ID.SimpleBlock || c.id === ID.BlockGroup) {
      let blockData = cData;
      let blockSize = c.size;
      let key = false;
      if (c.id === ID.BlockGroup) {
        let found = false;
        for (let p = cData; p < cData + c.size; ) {
          const g = await r.header(p);
          if (!g || g.size < 0) break;
          if (g.id === ID.Block) {
            blockData = p + g.headerLength;
            blockSize = g.size;
            found = true;
            break;
          }
          p += g.headerLength + g.size;
        }
        if (!found) {
          pos = cData + c.size;
          cluster.end = pos;
          continue;
        }
      }
      const head = await r.read(blockData, 5);
      const tn = readSize(head, 0);
      if (tn && head.length >= tn[1] + 3) {
        const rel = head.readInt16BE(tn[1]);
        const flags = head[tn[1] + 2]!;
        key = c.id === ID.SimpleBlock ? (flags & 0x80) !== 0 : false;
        const t = cluster.timestamp + rel;
        const track = byNumber.get(tn[0]);
        if (track) {
          track.frames++;
          if (key) track.keyframes++;
          track.bytes += blockSize - tn[1] - 3;
          track.firstMs ??= t;
          track.lastMs = Math.max(track.lastMs ?? t, t);
          if (!sawBlock && track.kind === 'video' && key) cluster.keyframeAt = t;
        }
        sawBlock = true;
      }
    }
    pos = cData + c.size;
    cluster.end = pos;
  }
  if (declaredEnd !== undefined && pos < declaredEnd && !cut) cut = true;
  if (cut) {
    scan.truncated = true;
    if (cluster.end > dataStart) scan.clusters.push(cluster);
    scan.goodEnd = cluster.end > dataStart ? cluster.end : offset;
    return undefined;
  }
  cluster.end = pos;
  scan.clusters.push(cluster);
  return pos;
}

/** Length of media in a scan: the last block of any track plus one typical frame of that track. */
export function scannedDurationMs(scan: MatroskaScan): number {
  let end = 0;
  for (const t of scan.tracks) {
    if (t.lastMs === undefined || t.firstMs === undefined) continue;
    const typical =
      t.kind === 'audio'
        ? 20
        : t.frames > 1
          ? Math.min(100, (t.lastMs - t.firstMs) / (t.frames - 1))
          : 33;
    end = Math.max(end, t.lastMs + typical);
  }
  return Math.round(end);
}

function cues(scan: MatroskaScan): Buffer {
  const video = scan.tracks.find((t) => t.kind === 'video' && t.frames > 0);
  const audio = scan.tracks.find((t) => t.kind === 'audio' && t.frames > 0);
  const points: Buffer[] = [];
  for (const c of scan.clusters) {
    let track: number | undefined;
    let time = c.timestamp;
    if (video && c.keyframeAt !== undefined) {
      track = video.number;
      time = c.keyframeAt;
    } else if (!video && audio) track = audio.number;
    if (track === undefined) continue;
    points.push(
      element(
        ID.CuePoint,
        uintEl(ID.CueTime, Math.max(0, time)),
        element(
          ID.CueTrackPositions,
          uintEl(ID.CueTrack, track),
          uintEl(ID.CueClusterPosition, c.offset - scan.segmentDataStart),
        ),
      ),
    );
  }
  return points.length ? element(ID.Cues, ...points) : Buffer.alloc(0);
}

function seekHead(scan: MatroskaScan, cuesOffset: number | undefined): Buffer {
  const seek = (id: number, offset: number) =>
    element(
      ID.Seek,
      element(ID.SeekID, idBytes(id)),
      uintEl(ID.SeekPosition, offset - scan.segmentDataStart, 8),
    );
  const entries: Buffer[] = [];
  if (scan.infoOffset !== undefined) entries.push(seek(ID.Info, scan.infoOffset));
  if (scan.tracksOffset !== undefined) entries.push(seek(ID.Tracks, scan.tracksOffset));
  if (cuesOffset !== undefined) entries.push(seek(ID.Cues, cuesOffset));
  return element(ID.SeekHead, ...entries);
}

export interface FinalizeResult {
  /** Bytes cut from the end (a partly written element). */
  cutBytes: number;
  durationMs: number;
  size: number;
  scan: MatroskaScan;
}

/**
 * Makes a live file clean, in place: cuts a partly written element from the end, appends Cues,
 * writes every unknown cluster and segment size, the Duration and the SeekHead, then syncs.
 * Each step leaves a readable file, so a crash half-way is repaired by running this again.
 */
export async function finalizeMatroska(file: string): Promise<FinalizeResult> {
  let scan = await scanMatroska(file);
  if (scan.segmentDataStart < 0 || scan.tracksOffset === undefined) {
    throw new Error(
      `${file}: not a readable Matroska file (${scan.problems.join('; ') || 'no tracks'})`,
    );
  }
  if (scan.segmentSizeKnown && !scan.truncated && scan.cuesOffset !== undefined) {
    return {
      cutBytes: 0,
      durationMs: scan.durationMs ?? scannedDurationMs(scan),
      size: scan.fileSize,
      scan,
    };
  }
  const fh = await open(file, 'r+');
  try {
    let end = scan.goodEnd;
    // Cues left by an earlier, interrupted run sit after the last cluster: write them again
    if (scan.cuesOffset !== undefined && scan.cuesOffset >= (scan.clusters.at(-1)?.end ?? 0)) {
      end = scan.cuesOffset;
    }
    const cutBytes = scan.fileSize - scan.goodEnd;
    if (end < scan.fileSize) {
      await fh.truncate(end);
      await fh.sync();
      if (end !== scan.goodEnd) scan = await scanMatroska(file);
    }
    const durationMs = scannedDurationMs(scan);
    const cuesBytes = cues(scan);
    const cuesOffset = cuesBytes.length ? end : undefined;
    if (cuesBytes.length) await fh.write(cuesBytes, 0, cuesBytes.length, end);
    const size = end + cuesBytes.length;
    await fh.sync();
    for (const c of scan.clusters) {
      if (c.sizeKnown) continue;
      const b = vint(c.end - c.dataStart, c.sizeLength);
      await fh.write(b, 0, b.length, c.sizeOffset);
    }
    if (scan.durationSlot) {
      const b = floatEl(ID.Duration, durationMs);
      await fh.write(b, 0, b.length, scan.durationSlot.offset);
    }
    if (scan.seekSlot) {
      const head = seekHead(scan, cuesOffset);
      const rest = scan.seekSlot.size - head.length;
      if (rest === 0 || rest >= 2) {
        const b = rest ? Buffer.concat([head, voidEl(rest)]) : head;
        await fh.write(b, 0, b.length, scan.seekSlot.offset);
      }
    }
    await fh.sync();
    if (!scan.segmentSizeKnown) {
      const b = vint(size - scan.segmentDataStart, 8);
      await fh.write(b, 0, b.length, scan.segmentSizeOffset);
      await fh.sync();
    }
    return { cutBytes, durationMs, size, scan };
  } finally {
    await fh.close();
  }
}
