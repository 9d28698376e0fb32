import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import { children, ID, readSize, readUint } from '../../src/node/recording/ebml.ts';
import type { RtpIn } from '../../src/node/recording/JitterBuffer.ts';

/** Media made once per machine by ffmpeg and shared by the recording tests. */
const CACHE = join(import.meta.dirname, '..', '..', '.returncam-cache', 'recording-media');
/**
 * Bumped when the encoder settings change, so a machine's cache is made again. v2: libvpx's
 * realtime deadline adapts to how busy the machine is, so the same command wrote a different
 * clip under load (and a seeded loss test then lost other frames); the good deadline on one
 * thread writes the same bytes every time.
 */
const CLIP_VERSION = 2;

export interface SourceFrame {
  track: number;
  /** ms */
  t: number;
  key: boolean;
  data: Buffer;
}

/** Generates (once) a clip with ffmpeg: VP8 + Opus WebM, or H.264 Annex B. */
export async function sourceClip(
  name: 'vp8-320' | 'vp8-640' | 'h264-320',
  seconds = 3,
): Promise<string> {
  mkdirSync(CACHE, { recursive: true });
  const ext = name.startsWith('h264') ? 'h264' : 'webm';
  const file = join(CACHE, `${name}-${seconds}s-v${CLIP_VERSION}.${ext}`);
  if (existsSync(file)) return file;
  const size = name.endsWith('640') ? '640x360' : '320x240';
  const video = ['-f', 'lavfi', '-i', `testsrc=size=${size}:rate=30`];
  const args =
    ext === 'webm'
      ? [
          ...video,
          '-f',
          'lavfi',
          '-i',
          'sine=frequency=440:sample_rate=48000',
          '-t',
          String(seconds),
          '-c:v',
          'libvpx',
          '-b:v',
          '400k',
          '-g',
          '30',
          '-deadline',
          'good',
          '-cpu-used',
          '5',
          '-threads',
          '1',
          '-c:a',
          'libopus',
          '-b:a',
          '32k',
          '-ac',
          '2',
        ]
      : [
          ...video,
          '-t',
          String(seconds),
          '-c:v',
          'libx264',
          '-preset',
          'ultrafast',
          '-tune',
          'zerolatency',
          '-g',
          '30',
          '-pix_fmt',
          'yuv420p',
          '-bsf:v',
          'h264_mp4toannexb',
          '-f',
          'h264',
        ];
  const tmp = `${file}.${process.pid}.tmp`;
  await execa(ffmpegPath(), [
    '-v',
    'error',
    '-y',
    ...args,
    ...(ext === 'webm' ? ['-f', 'webm'] : []),
    tmp,
  ]);
  const { renameSync } = await import('node:fs');
  renameSync(tmp, file);
  return file;
}

/** Frames of a WebM written by ffmpeg (known sizes, SimpleBlocks or BlockGroups). */
export function readWebmFrames(file: string): {
  tracks: Map<number, string>;
  frames: SourceFrame[];
} {
  const buf = readFileSync(file);
  const top = children(buf, 0, buf.length);
  const seg = top.find((e) => e.id === ID.Segment);
  if (!seg) throw new Error(`${file}: no segment`);
  const tracks = new Map<number, string>();
  const frames: SourceFrame[] = [];
  for (const el of children(buf, seg.dataStart, seg.dataStart + seg.size)) {
    if (el.id === ID.Tracks) {
      for (const entry of children(buf, el.dataStart, el.dataStart + el.size)) {
        let num = 0;
        let codec = '';
        for (const c of children(buf, entry.dataStart, entry.dataStart + entry.size)) {
          if (c.id === ID.TrackNumber)
            num = readUint(buf.subarray(c.dataStart, c.dataStart + c.size));
          if (c.id === ID.CodecID) codec = buf.toString('utf8', c.dataStart, c.dataStart + c.size);
        }
        tracks.set(num, codec);
      }
    }
    if (el.id !== ID.Cluster) continue;
    let clusterTs = 0;
    for (const c of children(buf, el.dataStart, el.dataStart + el.size)) {
      if (c.id === ID.Timestamp)
        clusterTs = readUint(buf.subarray(c.dataStart, c.dataStart + c.size));
      let block: { start: number; size: number; simple: boolean } | undefined;
      if (c.id === ID.SimpleBlock) block = { start: c.dataStart, size: c.size, simple: true };
      if (c.id === ID.BlockGroup) {
        const b = children(buf, c.dataStart, c.dataStart + c.size).find((x) => x.id === ID.Block);
        if (b) block = { start: b.dataStart, size: b.size, simple: false };
      }
      if (!block) continue;
      const tn = readSize(buf, block.start)!;
      const rel = buf.readInt16BE(block.start + tn[1]);
      const flags = buf[block.start + tn[1] + 2]!;
      const data = buf.subarray(block.start + tn[1] + 3, block.start + block.size);
      const key = block.simple ? (flags & 0x80) !== 0 : (data[0]! & 1) === 0;
      frames.push({ track: tn[0], t: clusterTs + rel, key, data: Buffer.from(data) });
    }
  }
  return { tracks, frames };
}

/** NAL units of an H.264 Annex B stream, grouped into access units (a new one at each VCL slice with first_mb 0). */
export function readH264AccessUnits(file: string): Buffer[][] {
  const buf = readFileSync(file);
  const nals: Buffer[] = [];
  let i = 0;
  let start = -1;
  while (i + 3 <= buf.length) {
    const sc3 = buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1;
    if (sc3) {
      if (start >= 0) {
        let end = i;
        if (end > start && buf[end - 1] === 0) end--;
        nals.push(buf.subarray(start, end));
      }
      start = i + 3;
      i += 3;
    } else i++;
  }
  if (start >= 0) nals.push(buf.subarray(start));
  const units: Buffer[][] = [];
  let cur: Buffer[] = [];
  let hasSlice = false;
  for (const n of nals) {
    const type = n[0]! & 0x1f;
    const isSlice = type === 1 || type === 5;
    // a slice whose first_mb_in_slice is 0 (first bit of ue(0) is 1) starts a new picture
    const firstMb0 = isSlice && (n[1]! & 0x80) !== 0;
    if ((firstMb0 || type === 7 || type === 9) && hasSlice) {
      units.push(cur);
      cur = [];
      hasSlice = false;
    }
    cur.push(n);
    if (isSlice) hasSlice = true;
  }
  if (cur.length) units.push(cur);
  return units;
}

export interface Packetizer {
  seq: number;
  /** VP8: a 15-bit PictureID in every descriptor, this one on the next frame (then counted up). */
  pictureId?: number;
}

/** VP8 RTP packets for one frame (RFC 7741; a 1-byte descriptor, or 4 with a PictureID). */
export function vp8Packets(frame: Buffer, ts: number, state: Packetizer, mtu = 900): RtpIn[] {
  const out: RtpIn[] = [];
  const pid = state.pictureId;
  if (pid !== undefined) state.pictureId = (pid + 1) & 0x7fff;
  for (let off = 0; off < frame.length; off += mtu) {
    const chunk = frame.subarray(off, off + mtu);
    const start = off === 0 ? 0x10 : 0x00;
    const descriptor =
      pid === undefined
        ? Buffer.from([start])
        : Buffer.from([0x80 | start, 0x80, 0x80 | (pid >> 8), pid & 0xff]);
    out.push({
      sequenceNumber: state.seq++ & 0xffff,
      timestamp: ts >>> 0,
      marker: off + mtu >= frame.length,
      payload: Buffer.concat([descriptor, chunk]),
    });
  }
  return out;
}

/** H.264 RTP packets for one access unit (single NAL units and FU-A, RFC 6184 mode 1). */
export function h264Packets(nals: Buffer[], ts: number, state: Packetizer, mtu = 900): RtpIn[] {
  const out: RtpIn[] = [];
  nals.forEach((nal, n) => {
    const last = n === nals.length - 1;
    if (nal.length <= mtu) {
      out.push({
        sequenceNumber: state.seq++ & 0xffff,
        timestamp: ts >>> 0,
        marker: last,
        payload: nal,
      });
      return;
    }
    const indicator = (nal[0]! & 0xe0) | 28;
    const type = nal[0]! & 0x1f;
    for (let off = 1; off < nal.length; off += mtu) {
      const end = off + mtu >= nal.length;
      const header = (off === 1 ? 0x80 : 0) | (end ? 0x40 : 0) | type;
      out.push({
        sequenceNumber: state.seq++ & 0xffff,
        timestamp: ts >>> 0,
        marker: last && end,
        payload: Buffer.concat([Buffer.from([indicator, header]), nal.subarray(off, off + mtu)]),
      });
    }
  });
  return out;
}

export interface DecodeReport {
  /** ffmpeg's messages at level error. */
  errors: string;
  exitCode: number;
  videoFrames: number;
  audioFrames: number;
  /** Start of the first and end of the last decoded video frame, seconds. */
  videoStart: number;
  videoEnd: number;
  audioStart: number;
  audioEnd: number;
  /** Decoded picture sizes in order of appearance. */
  sizes: string[];
}

function framemd5Stats(text: string): { frames: number; start: number; end: number } {
  let tb = 1;
  let frames = 0;
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const line of text.split('\n')) {
    const m = /^#tb \d+: (\d+)\/(\d+)/.exec(line);
    if (m) tb = Number(m[1]) / Number(m[2]);
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(',').map((s) => s.trim());
    frames++;
    start = Math.min(start, Number(parts[2]) * tb);
    end = Math.max(end, (Number(parts[2]) + Number(parts[3])) * tb);
  }
  return { frames, start: frames ? start : 0, end };
}

/** Decodes a file fully with ffmpeg: errors, frame counts and end times per kind. */
export async function decode(file: string): Promise<DecodeReport> {
  const ff = ffmpegPath();
  const all = await execa(ff, ['-v', 'error', '-i', file, '-f', 'null', '-'], { reject: false });
  const v = await execa(ff, ['-v', 'error', '-i', file, '-map', '0:v?', '-f', 'framemd5', '-'], {
    reject: false,
  });
  const a = await execa(ff, ['-v', 'error', '-i', file, '-map', '0:a?', '-f', 'framemd5', '-'], {
    reject: false,
  });
  const sizes = await execa(
    ff,
    ['-v', 'info', '-i', file, '-map', '0:v?', '-vf', 'showinfo', '-f', 'null', '-'],
    { reject: false, env: { AV_LOG_FORCE_NOCOLOR: '1' } },
  );
  const vs = framemd5Stats(v.stdout);
  const as = framemd5Stats(a.stdout);
  const seen: string[] = [];
  for (const m of sizes.stderr.matchAll(/Parsed_showinfo.* s:(\d+x\d+) /g)) {
    if (seen.at(-1) !== m[1]) seen.push(m[1]!);
  }
  return {
    errors: all.stderr.trim(),
    exitCode: all.exitCode ?? -1,
    videoFrames: vs.frames,
    audioFrames: as.frames,
    videoStart: vs.start,
    videoEnd: vs.end,
    audioStart: as.start,
    audioEnd: as.end,
    sizes: seen,
  };
}
