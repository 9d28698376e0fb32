/**
 * Test media for the synthetic clients: a VP8 IVF file and an Opus Ogg file made by ffmpeg (and
 * cached by parameters), plus pure parsers for both containers.
 */
import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.ts';
import { ffmpegPath } from '../../core/ffmpeg.ts';

export interface TestMediaOptions {
  seconds: number;
  fps: number;
  width: number;
  height: number;
  bitrateKbps: number;
  /** Seconds between keyframes (default 2). */
  keyframeSeconds?: number;
}

export interface TestMedia {
  /** VP8 in IVF: testsrc pattern, a keyframe every `keyframeSeconds`, realtime encoder settings. */
  videoPath: string;
  /** Opus in Ogg: a 440 Hz sine, 20 ms frames. */
  audioPath: string;
}

function runFfmpeg(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(ffmpegPath(), args, { maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve();
        return;
      }
      const tail = String(stderr).trim().split('\n').slice(-4).join(' | ');
      reject(new Error(`ffmpeg failed (${errorMessage(err)}): ${tail}`));
    });
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).size > 0;
  } catch {
    return false;
  }
}

/** Writes `path` through a temporary file, so a crash or a parallel run never leaves half a file. */
async function makeOnce(path: string, make: (tmp: string) => Promise<void>): Promise<void> {
  if (await exists(path)) return;
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await make(tmp);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Makes (or reuses from `dir`) the VP8 and Opus test files for these parameters. */
export async function ensureTestMedia(dir: string, options: TestMediaOptions): Promise<TestMedia> {
  const { seconds, fps, width, height, bitrateKbps, keyframeSeconds = 2 } = options;
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error(`test media: ${name} must be a positive number, got ${value}`);
    }
  }
  await mkdir(dir, { recursive: true });
  const videoPath = join(
    dir,
    `testsrc-vp8-${width}x${height}-${fps}fps-${bitrateKbps}k-${seconds}s${keyframeSeconds === 2 ? '' : `-key${keyframeSeconds}s`}.ivf`,
  );
  const audioPath = join(dir, `sine-opus-20ms-${seconds}s.ogg`);
  const gop = Math.max(1, Math.round(fps * keyframeSeconds));
  await makeOnce(videoPath, (tmp) =>
    runFfmpeg([
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=${width}x${height}:rate=${fps}:duration=${seconds}`,
      '-c:v',
      'libvpx',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      `${bitrateKbps}k`,
      '-minrate',
      `${bitrateKbps}k`,
      '-maxrate',
      `${bitrateKbps}k`,
      '-bufsize',
      `${Math.round(bitrateKbps / 2)}k`,
      '-deadline',
      'realtime',
      '-cpu-used',
      '8',
      '-lag-in-frames',
      '0',
      '-auto-alt-ref',
      '0',
      '-error-resilient',
      '1',
      '-g',
      String(gop),
      '-keyint_min',
      String(gop),
      '-f',
      'ivf',
      tmp,
    ]),
  );
  await makeOnce(audioPath, (tmp) =>
    runFfmpeg([
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      '-c:a',
      'libopus',
      '-b:a',
      '32k',
      '-frame_duration',
      '20',
      '-application',
      'lowdelay',
      '-f',
      'ogg',
      tmp,
    ]),
  );
  return { videoPath, audioPath };
}

// ---- IVF ----

export interface IvfHeader {
  fourcc: string;
  width: number;
  height: number;
  /** Frame rate = timebaseDenominator / timebaseNumerator. */
  timebaseDenominator: number;
  timebaseNumerator: number;
  frameCount: number;
}

export interface IvfFrame {
  /** Presentation time in timebase units. */
  pts: number;
  data: Buffer;
  keyframe: boolean;
}

export interface IvfFile {
  header: IvfHeader;
  frames: IvfFrame[];
}

const IVF_FILE_HEADER = 32;
const IVF_FRAME_HEADER = 12;

/** Parses an IVF file (32-byte file header, then 12-byte frame headers). */
export function parseIvf(buf: Buffer): IvfFile {
  if (buf.length < IVF_FILE_HEADER || buf.toString('latin1', 0, 4) !== 'DKIF') {
    throw new Error('not an IVF file: missing DKIF signature');
  }
  const headerSize = buf.readUInt16LE(6);
  const header: IvfHeader = {
    fourcc: buf.toString('latin1', 8, 12),
    width: buf.readUInt16LE(12),
    height: buf.readUInt16LE(14),
    timebaseDenominator: buf.readUInt32LE(16),
    timebaseNumerator: buf.readUInt32LE(20),
    frameCount: buf.readUInt32LE(24),
  };
  const frames: IvfFrame[] = [];
  let offset = Math.max(IVF_FILE_HEADER, headerSize);
  while (offset + IVF_FRAME_HEADER <= buf.length) {
    const size = buf.readUInt32LE(offset);
    const pts = Number(buf.readBigUInt64LE(offset + 4));
    const start = offset + IVF_FRAME_HEADER;
    if (start + size > buf.length) {
      throw new Error(`IVF frame ${frames.length} is truncated: needs ${size} bytes at ${start}`);
    }
    const data = buf.subarray(start, start + size);
    frames.push({ pts, data, keyframe: data.length > 0 && (data[0]! & 0x01) === 0 });
    offset = start + size;
  }
  return { header, frames };
}

// ---- Ogg Opus ----

export interface OpusHead {
  channels: number;
  preSkip: number;
  inputSampleRate: number;
}

export interface OggOpusFile {
  head: OpusHead;
  /** Audio packets in order (OpusHead and OpusTags excluded). */
  packets: Buffer[];
}

/** Splits an Ogg stream into packets (RFC 3533), joining packets that span pages. */
export function parseOggPackets(buf: Buffer): Buffer[] {
  const packets: Buffer[] = [];
  let pending: Buffer[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (offset + 27 > buf.length || buf.toString('latin1', offset, offset + 4) !== 'OggS') {
      throw new Error(`not an Ogg stream: no OggS page at byte ${offset}`);
    }
    const segments = buf[offset + 26]!;
    const table = offset + 27;
    if (table + segments > buf.length) throw new Error(`Ogg page at byte ${offset} is truncated`);
    let data = table + segments;
    for (let i = 0; i < segments; i++) {
      const lace = buf[table + i]!;
      if (data + lace > buf.length) throw new Error(`Ogg page at byte ${offset} is truncated`);
      pending.push(buf.subarray(data, data + lace));
      data += lace;
      if (lace < 255) {
        packets.push(pending.length === 1 ? pending[0]! : Buffer.concat(pending));
        pending = [];
      }
    }
    offset = data;
  }
  return packets;
}

/** Parses an Ogg Opus file (RFC 7845) into its header and audio packets. */
export function parseOggOpus(buf: Buffer): OggOpusFile {
  const packets = parseOggPackets(buf);
  const first = packets[0];
  if (!first || first.length < 19 || first.toString('latin1', 0, 8) !== 'OpusHead') {
    throw new Error('not an Ogg Opus stream: the first packet is not OpusHead');
  }
  const head: OpusHead = {
    channels: first[9]!,
    preSkip: first.readUInt16LE(10),
    inputSampleRate: first.readUInt32LE(12),
  };
  const audio = packets.slice(1).filter((p) => p.toString('latin1', 0, 8) !== 'OpusTags');
  return { head, packets: audio };
}

/** Duration of one Opus packet in ms, from its TOC byte (RFC 6716 §3.1). */
export function opusPacketDurationMs(packet: Uint8Array): number {
  if (packet.length === 0) return 0;
  const toc = packet[0]!;
  const config = toc >> 3;
  let frameMs: number;
  if (config < 12) frameMs = [10, 20, 40, 60][config & 3]!;
  else if (config < 16) frameMs = [10, 20][config & 1]!;
  else frameMs = [2.5, 5, 10, 20][config & 3]!;
  const code = toc & 3;
  const frames = code === 0 ? 1 : code === 3 ? (packet[1] ?? 0) & 0x3f : 2;
  return frameMs * frames;
}
