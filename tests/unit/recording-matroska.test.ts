import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/canonical.ts';
import { H264_RULES, h264SpsSize, VP8_RULES } from '../../src/node/recording/codecs.ts';
import { JitterBuffer } from '../../src/node/recording/JitterBuffer.ts';
import { MatroskaWriter, type WriterTrack } from '../../src/node/recording/MatroskaWriter.ts';
import { finalizeMatroska, scanMatroska } from '../../src/node/recording/matroskaFile.ts';
import {
  decode,
  h264Packets,
  readH264AccessUnits,
  readWebmFrames,
  type SourceFrame,
  sourceClip,
  vp8Packets,
} from '../helpers/recordingMedia.ts';

const VIDEO: WriterTrack = { number: 1, kind: 'video', codec: 'VP8' };
const AUDIO: WriterTrack = { number: 2, kind: 'audio', codec: 'OPUS' };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'returncam-mkv-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the recorder does, in memory: header, the first keyframe's size patched in, frames in order. */
function writeLive(tracks: WriterTrack[], frames: SourceFrame[]): Buffer {
  const w = new MatroskaWriter({
    tracks,
    startedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    app: 'returncam test',
  });
  const parts = [w.header()];
  const patches = [];
  for (const f of frames) {
    const track = tracks.find((t) => t.number === f.track)!;
    if (track.kind === 'video' && f.key) {
      const d = f.data;
      patches.push(
        ...w.videoFormat({ width: d.readUInt16LE(6) & 0x3fff, height: d.readUInt16LE(8) & 0x3fff }),
      );
    }
    parts.push(w.frame(track, f.t, f.key, f.data));
  }
  const buf = Buffer.concat(parts);
  for (const p of patches) p.bytes.copy(buf, p.offset);
  return buf;
}

describe('Matroska recording files', () => {
  it('a live file cut at any point decodes up to the cut, and finalising makes it clean', async () => {
    const src = readWebmFrames(await sourceClip('vp8-320', 3));
    const live = writeLive([VIDEO, AUDIO], src.frames);
    const full = join(dir, 'live.webm');
    writeFileSync(full, live);
    const whole = await decode(full);
    expect(whole.errors).toBe('');
    expect(whole.videoFrames).toBe(90);
    expect(whole.audioFrames).toBe(src.frames.filter((f) => f.track === 2).length);

    let previous = 0;
    for (const cut of [0.15, 0.4, 0.65, 0.95]) {
      const file = join(dir, `cut-${cut}.webm`);
      copyFileSync(full, file);
      truncateSync(file, Math.floor(live.length * cut));
      // as a crash leaves it: readable up to the cut
      const raw = await decode(file);
      expect(raw.videoFrames, `cut at ${cut}`).toBeGreaterThan(previous);
      expect(raw.audioFrames).toBeGreaterThan(0);
      previous = raw.videoFrames;

      const fin = await finalizeMatroska(file);
      expect(fin.cutBytes).toBeGreaterThanOrEqual(0);
      const clean = await decode(file);
      expect(clean.errors, `cut at ${cut}`).toBe('');
      expect(clean.videoFrames).toBe(raw.videoFrames);
      expect(Math.abs(fin.durationMs / 1000 - clean.videoEnd)).toBeLessThan(0.1);

      const scan = await scanMatroska(file);
      expect(scan).toMatchObject({ segmentSizeKnown: true, truncated: false, problems: [] });
      expect(scan.cuesOffset).toBeGreaterThan(0);
      expect(scan.startedAt).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
      expect(scan.tracks.find((t) => t.kind === 'video')).toMatchObject({
        width: 320,
        height: 240,
      });
      // finalising again changes nothing
      const hash = sha256Hex(readFileSync(file));
      await finalizeMatroska(file);
      expect(sha256Hex(readFileSync(file))).toBe(hash);
    }
  });

  it('a picture size change mid-stream decodes at both sizes', async () => {
    const small = readWebmFrames(await sourceClip('vp8-320', 3)).frames.filter(
      (f) => f.track === 1 && f.t < 1000,
    );
    const big = readWebmFrames(await sourceClip('vp8-640', 1)).frames.filter((f) => f.track === 1);
    expect(big[0]!.key).toBe(true);
    const frames = [...small, ...big.map((f) => ({ ...f, t: f.t + 1000 }))];
    const file = join(dir, 'resize.webm');
    writeFileSync(file, writeLive([VIDEO], frames));
    await finalizeMatroska(file);
    const d = await decode(file);
    expect(d.errors).toBe('');
    expect(d.videoFrames).toBe(frames.length);
    expect(d.sizes).toEqual(['320x240', '640x360']);
  });

  it('H.264 over RTP (FU-A, SPS/PPS in band) becomes a playable Matroska file', async () => {
    const units = readH264AccessUnits(await sourceClip('h264-320', 2));
    expect(units.length).toBe(60);
    const jb = new JitterBuffer({ rules: H264_RULES, deadlineMs: 100 });
    const state = { seq: 65_500 }; // wraps past 65535
    const frames = units.flatMap((nals, i) =>
      h264Packets(nals, 1_000_000 + i * 3000, state, 700).flatMap((p) =>
        jb.processInput(p, i * 33),
      ),
    );
    expect(frames.length).toBe(60);
    expect(frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    const track: WriterTrack = { number: 1, kind: 'video', codec: 'H264' };
    const w = new MatroskaWriter({ tracks: [track], startedAt: Date.now(), app: 'returncam test' });
    expect(w.docType).toBe('matroska');
    const parts = [w.header()];
    const patches = w.videoFormat({
      width: 320,
      height: 240,
      codecPrivate: frames[0]!.codecPrivate,
    });
    expect(patches).toHaveLength(3);
    for (const [i, f] of frames.entries()) {
      parts.push(w.frame(track, Math.round((i * 1000) / 30), f.keyframe, f.data));
    }
    const buf = Buffer.concat(parts);
    for (const p of patches) p.bytes.copy(buf, p.offset);
    const file = join(dir, 'h264.mkv');
    writeFileSync(file, buf);
    await finalizeMatroska(file);
    const d = await decode(file);
    expect(d.errors).toBe('');
    expect(d.videoFrames).toBe(60);
    expect(d.sizes).toEqual(['320x240']);
  });

  it.each([
    // SPS NAL units written by x264 (baseline with cropping, High 4:4:4)
    ['320x240 baseline', '6742c00dda0507ec0440000003004000000f03c50aa8', 320, 240],
    [
      '1920x1080 cropped from 1088',
      '6742c028da01e0089f970110000003001000000303c0f1832a',
      1920,
      1080,
    ],
    ['640x360 High 4:4:4', '67f4001e919680a02ff89c0440000003004000000f03c58ba8', 640, 360],
    ['854x480 odd width', '6742c01fda0360f79bc044000003000400000300f03c60ca80', 854, 480],
  ])('reads the picture size from an SPS (%s)', (_name, hex, width, height) => {
    expect(h264SpsSize(Buffer.from(hex, 'hex'))).toEqual({ width, height });
  });

  it('VP8 frame joining finds keyframes and their size', async () => {
    const frames = readWebmFrames(await sourceClip('vp8-320', 3)).frames.filter(
      (f) => f.track === 1,
    );
    const packets = vp8Packets(frames[0]!.data, 0, { seq: 0 }, 300);
    expect(packets.length).toBeGreaterThan(1);
    expect(packets.map((p) => VP8_RULES.isFrameStart(p.payload))).toEqual(
      packets.map((_, i) => i === 0),
    );
    expect(VP8_RULES.assemble(packets.map((p) => p.payload))).toMatchObject({
      keyframe: true,
      width: 320,
      height: 240,
    });
  });
});
