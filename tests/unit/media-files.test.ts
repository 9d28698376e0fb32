import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureTestMedia,
  type IvfFile,
  type OggOpusFile,
  opusPacketDurationMs,
  parseIvf,
  parseOggOpus,
  type TestMedia,
} from '../../src/bench/clients/media.ts';
import {
  buildNack,
  buildPli,
  parseRtcpFeedback,
  parseVp8Descriptor,
  Vp8Packetizer,
} from '../../src/bench/clients/rtp.ts';
import { NackTracker } from '../../src/core/NackTracker.ts';

const PARAMS = { seconds: 4, fps: 15, width: 320, height: 180, bitrateKbps: 300 };

let dir: string;
let media: TestMedia;
let ivf: IvfFile;
let ogg: OggOpusFile;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'returncam-media-'));
  media = await ensureTestMedia(dir, PARAMS);
  ivf = parseIvf(await readFile(media.videoPath));
  ogg = parseOggOpus(await readFile(media.audioPath));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ensureTestMedia', () => {
  it('reuses the cached files for the same parameters', async () => {
    const before = statSync(media.videoPath).mtimeMs;
    const again = await ensureTestMedia(dir, PARAMS);
    expect(again).toEqual(media);
    expect(statSync(again.videoPath).mtimeMs).toBe(before);
  });

  it('names files by their parameters', async () => {
    expect(media.videoPath).toContain('320x180-15fps-300k-4s');
    await expect(ensureTestMedia(dir, { ...PARAMS, fps: 0 })).rejects.toThrow(
      /fps must be a positive number/,
    );
  });
});

describe('parseIvf on ffmpeg output', () => {
  it('reads the header: VP8, size, frame rate', () => {
    expect(ivf.header).toMatchObject({
      fourcc: 'VP80',
      width: 320,
      height: 180,
      timebaseDenominator: 15,
      timebaseNumerator: 1,
    });
  });

  it('reads every frame in order, a keyframe every 2 s', () => {
    expect(ivf.frames).toHaveLength(PARAMS.seconds * PARAMS.fps);
    expect(ivf.frames.map((f) => f.pts)).toEqual(ivf.frames.map((_, i) => i));
    const keyframes = ivf.frames.flatMap((f, i) => (f.keyframe ? [i] : []));
    expect(keyframes).toEqual([0, 30]);
  });

  it('carries roughly the requested bitrate', () => {
    const bits = ivf.frames.reduce((sum, f) => sum + f.data.length * 8, 0);
    const kbps = bits / PARAMS.seconds / 1000;
    expect(kbps).toBeGreaterThan(PARAMS.bitrateKbps * 0.4);
    expect(kbps).toBeLessThan(PARAMS.bitrateKbps * 1.5);
  });

  it('rejects a file that is not IVF', () => {
    expect(() => parseIvf(Buffer.from('hello world, definitely not a video file'))).toThrow(
      /not an IVF file/,
    );
  });

  it('rejects a truncated frame', () => {
    // The 32-byte header, a 12-byte frame header and part of the first frame.
    const head = readFileSync(media.videoPath).subarray(0, 100);
    expect(() => parseIvf(head)).toThrow(/IVF frame 0 is truncated/);
  });
});

describe('parseOggOpus on ffmpeg output', () => {
  it('reads OpusHead', () => {
    expect(ogg.head).toMatchObject({ channels: 1, inputSampleRate: 48000 });
    expect(ogg.head.preSkip).toBeGreaterThan(0);
  });

  it('returns one 20 ms packet per 20 ms of audio, headers excluded', () => {
    expect(ogg.packets.length).toBeGreaterThanOrEqual(PARAMS.seconds * 50);
    expect(ogg.packets.length).toBeLessThanOrEqual(PARAMS.seconds * 50 + 2);
    expect(new Set(ogg.packets.map(opusPacketDurationMs))).toEqual(new Set([20]));
    expect(ogg.packets.some((p) => p.toString('latin1', 0, 4) === 'Opus')).toBe(false);
  });

  it('rejects a file that is not Ogg', () => {
    expect(() => parseOggOpus(Buffer.from('RIFF....WAVEfmt '))).toThrow(/not an Ogg stream/);
  });
});

describe('RTP helpers on the real frames', () => {
  it('packetizes every VP8 frame (RFC 7741) so that it reassembles byte for byte', () => {
    const packetizer = new Vp8Packetizer(500);
    for (const [index, frame] of ivf.frames.entries()) {
      const payloads = packetizer.packetize(frame.data);
      expect(payloads.every((p) => p.length <= 500)).toBe(true);
      const parts = payloads.map((p, i) => {
        const d = parseVp8Descriptor(p)!;
        expect(d.start).toBe(i === 0);
        expect(d.pictureId).toBe(index & 0x7fff);
        return p.subarray(d.headerSize);
      });
      expect(Buffer.concat(parts).equals(frame.data)).toBe(true);
    }
  });

  it.each([
    [[100], [100]],
    [
      [5, 7, 6, 21],
      [5, 6, 7, 21],
    ],
    [
      [65534, 65535, 0, 2],
      [65534, 65535, 0, 2],
    ],
    [
      [1, 40, 1],
      [1, 40],
    ],
  ])('NACK for %j asks for %j', (lost, expected) => {
    const [feedback] = parseRtcpFeedback(buildNack(1, 2, lost));
    expect(feedback).toEqual({ kind: 'nack', mediaSsrc: 2, lost: expected });
  });

  it('parses a PLI', () => {
    expect(parseRtcpFeedback(buildPli(1, 0xdeadbeef))).toEqual([
      { kind: 'pli', mediaSsrc: 0xdeadbeef },
    ]);
  });

  it.each([
    ['in order', [1, 2, 3], ['new', 'new', 'new'], 0],
    ['a gap then its repair', [1, 3, 2], ['new', 'new', 'recovered'], 0],
    ['a duplicate', [1, 2, 2], ['new', 'new', 'duplicate'], 0],
    ['a gap across the wrap', [65535, 1, 0], ['new', 'new', 'recovered'], 0],
    ['a gap left open', [10, 13], ['new', 'new'], 2],
  ])('NackTracker: %s', (_name, seqs, arrivals, stillMissing) => {
    const tracker = new NackTracker({ retryMs: 10, maxTries: 3, maxAgeMs: 1000 });
    expect(seqs.map((s) => tracker.received(s, 0))).toEqual(arrivals);
    expect(tracker.missingCount).toBe(stillMissing);
  });

  it('NackTracker spaces repeats by retryMs and gives up after maxTries', () => {
    const tracker = new NackTracker({ retryMs: 10, maxTries: 2, maxAgeMs: 1000 });
    tracker.received(1, 0);
    tracker.received(3, 0);
    expect(tracker.due(0).nack).toEqual([2]);
    expect(tracker.due(5).nack).toEqual([]);
    expect(tracker.due(10).nack).toEqual([2]);
    expect(tracker.due(20)).toEqual({ nack: [], gaveUp: 1 });
    expect(tracker.lost).toBe(1);
  });
});
