import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ID, idBytes, UNKNOWN_SIZE, uintEl, vint } from '../../src/node/recording/ebml.ts';
import { FrameQueue } from '../../src/node/recording/FrameQueue.ts';
import { MatroskaWriter } from '../../src/node/recording/MatroskaWriter.ts';
import { defaultIo, RecordingFile } from '../../src/node/recording/RecordingFile.ts';
import { seededRandom } from '../helpers/random.ts';

/** A frame whose bytes say which it is: `n` repeated, with its number in the first 4 bytes. */
function frameBytes(n: number, length: number): Buffer {
  const b = Buffer.alloc(length, n & 0xff);
  if (length >= 4) b.writeUInt32BE(n);
  return b;
}

describe('FrameQueue', () => {
  it('lets frames out in time order, equal times in arrival order, with their bytes and fields', () => {
    const q = new FrameQueue({ initialBytes: 1024 });
    q.push(0, 0, { data: frameBytes(1, 100), keyframe: true, width: 640, height: 360 });
    q.push(20, 1, { data: frameBytes(2, 30), keyframe: true });
    q.push(33, 0, { data: frameBytes(3, 90), keyframe: false });
    // audio that came late: before the last video frame
    q.push(20, 1, { data: frameBytes(4, 30), keyframe: true });
    q.push(10, 1, { data: frameBytes(5, 30), keyframe: true, codecPrivate: Buffer.from([9, 9]) });
    expect(q.length).toBe(5);
    const out: { t: number; track: number; n: number; len: number }[] = [];
    let first = true;
    while (q.length > 0) {
      const f = q.front();
      if (first) {
        expect([f.keyframe, f.width, f.height, f.codecPrivate]).toEqual([
          true,
          640,
          360,
          undefined,
        ]);
        first = false;
      }
      if (f.data.readUInt32BE(0) === 5) expect(f.codecPrivate).toEqual(Buffer.from([9, 9]));
      const n = f.data.readUInt32BE(0);
      expect(f.data.equals(frameBytes(n, f.data.length))).toBe(true);
      out.push({ t: f.t, track: f.track, n, len: f.data.length });
      q.shift();
    }
    expect(out).toEqual([
      { t: 0, track: 0, n: 1, len: 100 },
      { t: 10, track: 1, n: 5, len: 30 },
      { t: 20, track: 1, n: 2, len: 30 },
      { t: 20, track: 1, n: 4, len: 30 },
      { t: 33, track: 0, n: 3, len: 90 },
    ]);
    expect(q.firstTime).toBe(Number.POSITIVE_INFINITY);
  });

  it('grows to hold what is waiting at any bitrate, byte-exact, then stops growing', () => {
    const q = new FrameQueue({ initialBytes: 4096, initialEntries: 4 });
    const random = seededRandom(7);
    const held: { n: number; len: number; t: number }[] = [];
    let n = 0;
    // 400 ms held at 30 video + 50 audio frames a second, video frames up to 12 KB; audio comes
    // a little late, so frames leave in another order than their bytes were written
    const push = (t: number) => {
      const video = n % 8 < 3;
      const len = video ? 500 + Math.floor(random() * 12_000) : 60 + Math.floor(random() * 100);
      const at = video ? t : t - 20;
      q.push(at, video ? 0 : 1, { data: frameBytes(n, len), keyframe: !video });
      let i = held.length;
      while (i > 0 && held[i - 1]!.t > at) i--;
      held.splice(i, 0, { n, len, t: at });
      n++;
    };
    const release = (upTo: number) => {
      while (q.length > 0 && q.firstTime <= upTo) {
        const f = q.front();
        const want = held.shift()!;
        expect(f.data.length).toBe(want.len);
        expect(f.data.equals(frameBytes(want.n, want.len))).toBe(true);
        q.shift();
      }
    };
    let t = 0;
    for (; t < 10_000; t += 12.5) {
      push(t);
      release(t - 400);
    }
    const grown = q.ringBytes;
    expect(grown).toBeGreaterThan(4096);
    expect(q.length).toBeGreaterThan(30);
    for (; t < 60_000; t += 12.5) {
      push(t);
      release(t - 400);
    }
    expect(q.ringBytes).toBe(grown);
    release(Number.POSITIVE_INFINITY);
    expect(held).toEqual([]);
  });

  it('at its limit, a frame keeps its own bytes instead of overwriting a held one', () => {
    const q = new FrameQueue({ initialBytes: 1024, maxBytes: 2048 });
    for (let i = 0; i < 10; i++) q.push(i, 0, { data: frameBytes(i, 700), keyframe: false });
    q.push(10, 0, { data: frameBytes(10, 5000), keyframe: true });
    expect(q.ringBytes).toBe(2048);
    for (let i = 0; i <= 10; i++) {
      const f = q.front();
      expect(f.data.readUInt32BE(0)).toBe(i);
      expect(f.data.equals(frameBytes(i, i === 10 ? 5000 : 700))).toBe(true);
      q.shift();
    }
  });

  it('refuses options it cannot work with', () => {
    expect(() => new FrameQueue({ initialBytes: 0 })).toThrow(/initialBytes/);
    expect(() => new FrameQueue({ initialBytes: 4096, maxBytes: 1024 })).toThrow(/maxBytes/);
    expect(() => new FrameQueue({ initialEntries: 48 })).toThrow(/power of two/);
  });
});

describe('RecordingFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-recfile-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes every appended byte in order across chunks, flushes and patches', async () => {
    const path = join(dir, 'a.bin');
    const file = new RecordingFile({ path, flushMs: 5, flushBytes: 50_000 });
    const random = seededRandom(3);
    const expected: Buffer[] = [];
    let size = 0;
    for (let i = 0; i < 400; i++) {
      // mostly frame-sized pieces, some larger than a chunk
      const len = i % 97 === 0 ? 70_000 : 1 + Math.floor(random() * 3000);
      const piece = frameBytes(i, len);
      if (i % 2) file.append(piece);
      else {
        const at = file.reserve(len);
        piece.copy(file.buffer, at);
      }
      expected.push(piece);
      size += len;
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 8));
    }
    const want = Buffer.concat(expected);
    file.patch(10, Buffer.from('patched'));
    Buffer.from('patched').copy(want, 10);
    expect(file.size).toBe(size);
    await file.close();
    expect(file.written).toBe(size);
    expect(readFileSync(path).equals(want)).toBe(true);
  });

  it('a write that fails cuts the file back to the last whole piece', async () => {
    const path = join(dir, 'b.bin');
    let writes = 0;
    let failed: Error | undefined;
    const file = new RecordingFile({
      path,
      flushMs: 10_000,
      flushBytes: 1 << 30,
      io: {
        open: defaultIo.open,
        write: (fh, buf, position) => {
          writes++;
          if (writes === 3)
            return Promise.reject(Object.assign(new Error('full'), { code: 'ENOSPC' }));
          return defaultIo.write(fh, buf, position);
        },
      },
      onFailed: (err) => {
        failed = err;
      },
    });
    // three chunks' worth: the third write fails
    const pieces = Array.from({ length: 30 }, (_, i) => frameBytes(i, 3000));
    for (const p of pieces) file.append(p);
    await file.close();
    expect(failed?.message).toMatch(/ENOSPC/);
    const kept = readFileSync(path);
    expect(kept.length % 3000).toBe(0);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.equals(Buffer.concat(pieces).subarray(0, kept.length))).toBe(true);
    expect(file.reserve(10)).toBe(-1);
  });
});

describe('MatroskaWriter.writeFrame', () => {
  /** A cluster and a SimpleBlock as the EBML helpers build them, element by element. */
  function reference(
    cluster: number | undefined,
    relative: number,
    track: number,
    key: boolean,
    data: Buffer,
  ) {
    const head = Buffer.alloc(4);
    head[0] = 0x80 | track;
    head.writeInt16BE(relative, 1);
    head[3] = key ? 0x80 : 0;
    return Buffer.concat([
      ...(cluster === undefined
        ? []
        : [idBytes(ID.Cluster), UNKNOWN_SIZE, uintEl(ID.Timestamp, cluster)]),
      idBytes(ID.SimpleBlock),
      vint(data.length + 4),
      head,
      data,
    ]);
  }

  it('writes clusters and blocks into a sink byte for byte as EBML elements', () => {
    const tracks = [
      { number: 1, kind: 'video' as const, codec: 'VP8' as const },
      { number: 2, kind: 'audio' as const, codec: 'OPUS' as const },
    ];
    const writer = new MatroskaWriter({ tracks, startedAt: 0, app: 'test' });
    const header = writer.header();
    const sink = { buffer: Buffer.alloc(1 << 20), used: 0 };
    const into = {
      reserve: (n: number) => {
        const at = sink.used;
        sink.used += n;
        return at;
      },
      get buffer() {
        return sink.buffer;
      },
    };
    const parts: Buffer[] = [];
    // sizes around the EBML size steps (126/127, 16382/16383), times across cluster starts and
    // a jump past 2^16 ms (a 3-byte cluster timestamp)
    const sizes = [1, 122, 123, 124, 200, 16_378, 16_379, 16_380, 40_000];
    let t = 0;
    let cluster: number | undefined;
    for (let i = 0; i < 60; i++) {
      const len = sizes[i % sizes.length]!;
      const track = tracks[i % 3 === 0 ? 0 : 1]!;
      const key = i % 20 === 0;
      t += i === 30 ? 70_000 : 37;
      const opens =
        cluster === undefined ||
        t - cluster >= 1000 ||
        (track.kind === 'video' && key && t > cluster);
      if (opens) cluster = t;
      parts.push(
        reference(opens ? t : undefined, t - cluster!, track.number, key, frameBytes(i, len)),
      );
      writer.writeFrame(into, track, t, key, frameBytes(i, len));
    }
    expect(sink.buffer.subarray(0, sink.used).equals(Buffer.concat(parts))).toBe(true);
    expect(writer.offset).toBe(header.length + sink.used);
    // frame() is the same encoding, as one Buffer
    const again = new MatroskaWriter({ tracks, startedAt: 0, app: 'test' });
    again.header();
    expect(again.frame(tracks[0]!, 5, true, frameBytes(1, 10))).toEqual(
      reference(5, 0, 1, true, frameBytes(1, 10)),
    );
  });
});
