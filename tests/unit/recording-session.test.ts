import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/log.ts';
import type { RtpIn } from '../../src/node/recording/JitterBuffer.ts';
import { Recorder } from '../../src/node/recording/Recorder.ts';
import type { RecordingFileIo } from '../../src/node/recording/RecordingFile.ts';
import { RecordingLibrary } from '../../src/node/recording/RecordingLibrary.ts';
import { SessionRecorder, type TrackSource } from '../../src/node/recording/SessionRecorder.ts';
import { Store } from '../../src/node/store/Store.ts';
import { seededRandom } from '../helpers/random.ts';
import {
  decode,
  readWebmFrames,
  type SourceFrame,
  sourceClip,
  vp8Packets,
} from '../helpers/recordingMedia.ts';

type Listener = (p: RtpIn & { payloadType?: number }) => void;

/** A published track the test drives by hand. */
class FakeTrack implements TrackSource {
  listener: Listener | undefined;
  repairRoundTripMs?: () => number | undefined;
  constructor(
    readonly kind: 'audio' | 'video',
    readonly mimeType: string,
    roundTripMs?: number,
  ) {
    if (roundTripMs !== undefined) this.repairRoundTripMs = () => roundTripMs;
  }
  subscribe(l: Listener) {
    this.listener = l;
    return () => {
      this.listener = undefined;
    };
  }
  send(p: RtpIn) {
    this.listener?.(p);
  }
}

interface Timed {
  kind: 'audio' | 'video';
  p: RtpIn;
  at: number;
}

let frames: SourceFrame[];
beforeAll(async () => {
  frames = readWebmFrames(await sourceClip('vp8-320', 3)).frames;
});

/** The clip as RTP: VP8 in ~4 packets a frame, Opus one packet a frame, at their media times. */
function packets(): Timed[] {
  const v = { seq: 40_000 };
  let aSeq = 7;
  const out: Timed[] = [];
  for (const f of frames) {
    if (f.track === 1) {
      for (const p of vp8Packets(f.data, 1234 + f.t * 90, v, 300))
        out.push({ kind: 'video', p, at: f.t });
    } else {
      out.push({
        kind: 'audio',
        p: { sequenceNumber: aSeq++, timestamp: 999 + f.t * 48, marker: false, payload: f.data },
        at: f.t,
      });
    }
  }
  return out;
}

let dir: string;
let store: Store;
let library: RecordingLibrary;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'returncam-rec-'));
  store = new Store(join(dir, 'returncam.db'));
  store.insertCase({
    id: 'c1',
    orderId: 'o',
    sku: 's',
    marketplace: null,
    warehouseId: null,
    reason: 'damaged',
    note: null,
    createdAt: Date.now(),
  });
  library = new RecordingLibrary({ store, dataDir: dir, retentionDays: 180 });
});
afterEach(() => {
  store.closeDb();
  rmSync(dir, { recursive: true, force: true });
});

/** Feeds timed packets through a session recorder on a fake clock, ticking every 50 ms. */
async function record(
  timed: Timed[],
  opts: {
    io?: RecordingFileIo;
    flushBytes?: number;
    onFailed?: (e: Error) => void;
    /** The publisher's repair round trip the node reports, ms. */
    roundTripMs?: number;
  } = {},
) {
  let now = 1_000_000;
  const keyframes: number[] = [];
  const tracks = {
    video: new FakeTrack('video', 'video/VP8', opts.roundTripMs),
    audio: new FakeTrack('audio', 'audio/opus'),
  };
  const rec = new SessionRecorder({
    basePath: join(dir, 'recordings', 'r1'),
    app: 'returncam test',
    jitterMs: 120,
    flushBytes: opts.flushBytes,
    io: opts.io,
    log: silentLogger,
    now: () => now,
    requestKeyframe: () => keyframes.push(now),
    onStart: (startedAt, t, path) => {
      mkdirSync(join(dir, 'recordings'), { recursive: true });
      store.insertRecording({
        id: 'r1',
        caseId: 'c1',
        sessionId: 's1',
        role: 'buyer',
        path: path.slice(dir.length + 1),
        container: 'webm',
        tracks: t.map((x) => ({ ...x })),
        startedAt,
      });
    },
    onFailed: opts.onFailed ?? (() => {}),
  });
  rec.addTrack(tracks.video);
  rec.addTrack(tracks.audio);
  const sorted = [...timed].sort((a, b) => a.at - b.at);
  let nextTick = 0;
  for (const t of sorted) {
    while (nextTick <= t.at) {
      now = 1_000_000 + nextTick;
      rec.tick();
      nextTick += 50;
      await new Promise((r) => setImmediate(r));
    }
    now = 1_000_000 + t.at;
    tracks[t.kind].send(t.p);
  }
  const result = await rec.stop();
  return { result, keyframes, rec };
}

describe('session recorder', () => {
  it('5 % loss (mostly repaired late), reordering and duplicates at its input: the file decodes end to end', async () => {
    const rnd = seededRandom(42);
    const impaired: Timed[] = [];
    for (const t of packets()) {
      const r = rnd();
      if (t.kind === 'video' && r < 0.05) {
        // lost; the retransmission answers the NACK 40-90 ms later, unless it is lost too (1 in 5)
        if (rnd() > 0.2) impaired.push({ ...t, at: t.at + 40 + rnd() * 50 });
      } else if (r < 0.1)
        impaired.push({ ...t, at: t.at + 5 + rnd() * 40 }); // reordered
      else impaired.push(t);
      if (rnd() < 0.01) impaired.push({ ...t, at: t.at + 3 }); // duplicated
    }
    const { result } = await record(impaired);
    const rec = await library.finish('r1', result);
    expect(rec.status).toBe('finished');
    const d = await decode(join(dir, rec.path));
    expect(d.errors).toBe('');
    const video = result.tracks.find((t) => t.kind === 'video')!;
    // what is written is complete frames only; lost ones cost frames up to the next keyframe
    expect(d.videoFrames).toBe(video.written);
    expect(d.videoFrames).toBeGreaterThan(30);
    expect(d.audioFrames).toBeGreaterThan(140);
    expect(video.framesLost).toBeGreaterThan(0); // some losses were never repaired
    expect(d.audioEnd).toBeGreaterThan(2.9);
    expect(d.videoEnd).toBeGreaterThan(2);
  });

  /** Every 40th video packet lost and repaired 450 ms later (one NACK round trip of 400 ms). */
  const repairedLate = (): Timed[] => {
    let n = 0;
    return packets().map((t) =>
      t.kind === 'video' && ++n % 40 === 0 ? { ...t, at: t.at + 450 } : t,
    );
  };

  it('over a 3G round trip a gap waits for its retransmission: nothing given up, no keyframe asked', async () => {
    const { result, keyframes } = await record(repairedLate(), { roundTripMs: 400 });
    const video = result.tracks.find((t) => t.kind === 'video')!;
    expect(video.framesLost).toBe(0);
    expect(keyframes).toEqual([]);
    const rec = await library.finish('r1', result);
    const d = await decode(join(dir, rec.path));
    expect(d.errors).toBe('');
    expect(d.videoFrames).toBe(frames.filter((f) => f.track === 1).length);
  });

  it('with no round trip measured, the configured wait gives the same gaps up and asks for keyframes', async () => {
    const { result, keyframes } = await record(repairedLate());
    expect(result.tracks.find((t) => t.kind === 'video')!.framesLost).toBeGreaterThan(0);
    expect(keyframes.length).toBeGreaterThan(0);
  });

  it('a full disk stops the recording cleanly: what was written plays and the recording is truncated', async () => {
    const limit = 60_000;
    const io: RecordingFileIo = {
      open: (path) => open(path, 'wx'),
      async write(fh, buf, position) {
        if (position >= limit)
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        const n = Math.min(buf.length, limit - position);
        return (await fh.write(buf, 0, n, position)).bytesWritten;
      },
    };
    let failed: Error | undefined;
    const { result } = await record(packets(), {
      io,
      flushBytes: 4096,
      onFailed: (e) => (failed = e),
    });
    expect(failed?.message).toContain('ENOSPC');
    expect(result.failure).toContain('ENOSPC');
    expect(result.bytes).toBeLessThanOrEqual(limit);
    const rec = await library.finish('r1', result);
    expect(rec.status).toBe('truncated');
    expect(rec.note).toContain('ENOSPC');
    const d = await decode(join(dir, rec.path));
    expect(d.errors).toBe('');
    expect(d.videoFrames).toBeGreaterThan(10);
    expect(d.videoFrames).toBeLessThan(90);
    const events = store.events('c1').map((e) => e.type);
    expect(events).toContain('recording.finished');
  });
});

describe('recorder disk guard', () => {
  it('refuses publishers (507) below minFreeBytes, counts it, and stops running recordings below stopFreeBytes', async () => {
    let free = 10_000;
    const metrics = new Registry();
    const recorder = new Recorder({
      library,
      config: {
        enabled: true,
        minFreeBytes: 5000,
        stopFreeBytes: 1000,
        retentionDays: 180,
        pruneInterval: 0,
        nackWait: 100,
        syncInterval: 1000,
      },
      app: 'returncam test',
      log: silentLogger,
      metrics,
      requestKeyframe: () => {},
      freeBytes: async () => free,
    });
    try {
      await recorder.admitPublisher();
      const video = new FakeTrack('video', 'video/VP8');
      const audio = new FakeTrack('audio', 'audio/opus');
      recorder.trackPublished({
        caseId: 'c1',
        role: 'buyer',
        sessionId: 's1',
        kind: 'video',
        source: video,
      });
      recorder.trackPublished({
        caseId: 'c1',
        role: 'buyer',
        sessionId: 's1',
        kind: 'audio',
        source: audio,
      });
      const start = Date.now();
      for (const t of packets().filter((p) => p.at < 600)) {
        const wait = start + t.at - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        (t.kind === 'video' ? video : audio).send(t.p);
      }
      free = 3000;
      const refused = await recorder.admitPublisher().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(HttpError);
      expect(refused).toMatchObject({ status: 507, code: 'insufficient_storage' });
      expect(await metrics.getSingleMetricAsString('returncam_recording_refused_total')).toMatch(
        / 1$/m,
      );
      free = 500;
      await recorder.checkDisk();
      const rec = await recorder.sessionEnded('s1');
      expect(rec?.status).toBe('truncated');
      expect(rec?.note).toMatch(/nearly full/);
      const d = await decode(join(dir, rec!.path));
      expect(d.errors).toBe('');
      expect(d.videoFrames).toBeGreaterThan(0);
      expect(await metrics.getSingleMetricAsString('returncam_recording_disk_free_bytes')).toMatch(
        / 500$/m,
      );
    } finally {
      await recorder.close();
    }
    expect(existsSync(join(dir, 'recordings'))).toBe(true);
  });
});
