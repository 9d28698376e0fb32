import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { directionSchema } from '../../src/bench/profiles.ts';
import { RelayHub, type UdpRelay } from '../../src/bench/relay/index.ts';
import { sha256Hex } from '../../src/core/canonical.ts';
import { requestKeyframe } from '../../src/node/recording/mediaBridge.ts';
import type { RecordingRecord } from '../../src/node/store/Store.ts';
import { startNodeProcess } from '../helpers/cli.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { decode } from '../helpers/recordingMedia.ts';
import { testDir } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';

/** Recording on, whatever the free space of the test machine. */
const DISK_OK = { minFreeBytes: 1, stopFreeBytes: 0 };

interface NewCase {
  case: { id: string };
  links: { buyer: { token: string } };
}

async function newCase(
  admin: (path: string, init?: RequestInit) => Promise<Response>,
): Promise<NewCase> {
  const res = await admin('/api/admin/cases', {
    method: 'POST',
    body: JSON.stringify({ orderId: 'ORD-1', sku: 'SKU-1', reason: 'damaged' }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as NewCase;
}

async function finishedRecordings(
  t: TestNode,
  caseId: string,
  count: number,
): Promise<RecordingRecord[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const list = t.node.recordings.list({ caseId });
    if (list.length >= count && list.every((r) => r.status !== 'recording'))
      return list.sort((a, b) => a.startedAt - b.startedAt);
    if (Date.now() > deadline)
      throw new Error(`recordings of ${caseId} did not finish: ${JSON.stringify(list)}`);
    await sleep(100);
  }
}

/**
 * WHIP through an impairment relay: a small HTTP proxy in front of the node rewrites the offer and
 * the answer so that the publisher's media crosses `relay` (the bench's userspace UDP relay).
 */
async function whipProxy(
  nodeUrl: string,
  relay: UdpRelay,
): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const post = req.method === 'POST';
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      const body = post
        ? relay.rewriteClientSdp(Buffer.concat(chunks).toString('utf8'))
        : undefined;
      const r = await fetch(`${nodeUrl}${req.url}`, { method: req.method, headers, body });
      let text = await r.text();
      if (post && r.status === 201) text = relay.rewriteNodeSdp(text);
      const out: Record<string, string> = {
        'Content-Type': r.headers.get('content-type') ?? 'text/plain',
      };
      const location = r.headers.get('location');
      if (location) out.Location = location;
      res.writeHead(r.status, out);
      res.end(text);
    })().catch((err: unknown) => {
      res.writeHead(502);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

let media: TestMedia;
beforeAll(async () => {
  media = await testMedia({ seconds: 5 });
});
afterAll(() => nodeDataChannel.cleanup());

describe('recording a real WHIP publisher (node-datachannel, ffmpeg VP8 + Opus)', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ recording: DISK_OK });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('records 5 s exactly (length, frames, audio); 5 % loss and reordering on the publisher leg still decode end to end', async () => {
    const clean = await newCase(t.admin);
    const lossy = await newCase(t.admin);
    // the lossy publisher's uplink: 5 % random loss and 5 % of packets held back 30 ms (overtaken)
    const impaired = directionSchema.parse({ loss: 0.05, reorder: 0.05, reorderDelay: '30ms' });
    const clear = directionSchema.parse({});
    const hub = new RelayHub({
      profile: { buyer: { up: impaired, down: clear }, staff: { up: clear, down: clear } },
      seed: 5,
    });
    const relay = await hub.create('buyer', 'buyer-1');
    hub.start(performance.now());
    const proxy = await whipProxy(t.url, relay);
    const publisher = (c: NewCase, baseUrl: string) =>
      new WhipPublisher({
        baseUrl,
        caseId: c.case.id,
        token: c.links.buyer.token,
        media,
        loop: false,
      });
    const pubs = [publisher(clean, t.url), publisher(lossy, proxy.url)];
    try {
      await Promise.all(pubs.map((p) => p.start()));
      await Promise.all(pubs.map((p) => p.finished));
      await sleep(300);
    } finally {
      await Promise.all(pubs.map((p) => p.close()));
      proxy.close();
      hub.close();
    }
    const [sent, sentLossy] = pubs.map((p) => p.results());

    const [rec] = await finishedRecordings(t, clean.case.id, 1);
    expect(rec).toMatchObject({ status: 'finished', role: 'buyer', container: 'webm' });
    const file = join(t.dataDir, rec!.path);
    expect(sha256Hex(readFileSync(file))).toBe(rec!.sha256);
    const d = await decode(file);
    expect(d.errors).toBe('');
    const sentSeconds = sent!.framesSent / 30;
    const recordedSeconds = d.videoEnd - d.videoStart;
    console.log(
      `recording: sent ${sent!.framesSent} frames (${sentSeconds.toFixed(3)} s), decoded ${d.videoFrames} video frames ` +
        `(${recordedSeconds.toFixed(3)} s, error ${(recordedSeconds - sentSeconds).toFixed(3)} s, ratio ${(d.videoFrames / sent!.framesSent).toFixed(4)}), ` +
        `${d.audioFrames}/${sent!.audioPacketsSent} audio frames, stored length ${rec!.durationMs} ms`,
    );
    expect(Math.abs(recordedSeconds - sentSeconds)).toBeLessThan(0.2);
    expect(Math.abs(d.videoFrames / sent!.framesSent - 1)).toBeLessThan(0.02);
    expect(d.audioFrames).toBeGreaterThan(sent!.audioPacketsSent * 0.95);
    // audio: 20 ms a packet (a loaded sender may send fewer packets than 5 s worth)
    expect(Math.abs(d.audioEnd - d.audioStart - sent!.audioPacketsSent * 0.02)).toBeLessThan(0.2);
    expect(rec!.tracks.map((x) => `${x.kind}/${x.codec}`).sort()).toEqual([
      'audio/OPUS',
      'video/VP8',
    ]);
    expect(rec!.tracks.find((x) => x.kind === 'video')).toMatchObject({ width: 640, height: 360 });
    // the timeline says so, with the same hash
    const events = t.node.store.events(clean.case.id);
    const finished = events.find((e) => e.type === 'recording.finished')!;
    expect(finished.data).toMatchObject({
      recordingId: rec!.id,
      sha256: rec!.sha256,
      bytes: rec!.bytes,
      durationMs: rec!.durationMs,
    });
    expect(events.map((e) => e.type)).toContain('recording.started');

    const [lossyRec] = await finishedRecordings(t, lossy.case.id, 1);
    const up = relay.stats().up;
    const dl = await decode(join(t.dataDir, lossyRec!.path));
    const video = lossyRec!.tracks.find((x) => x.kind === 'video')!;
    console.log(
      `recording with 5 % loss + 5 % reordering on the uplink: relay dropped ${up.dropped.random}/${up.packets} packets, reordered ${up.reordered}; ` +
        `decoded ${dl.videoFrames}/${sentLossy!.framesSent} video frames (lost ${video.framesLost}, skipped ${video.framesSkipped}), ` +
        `${dl.audioFrames}/${sentLossy!.audioPacketsSent} audio frames`,
    );
    expect(dl.errors).toBe('');
    expect(dl.videoFrames).toBeGreaterThan(sentLossy!.framesSent * 0.6);
    expect(dl.audioFrames).toBeGreaterThan(sentLossy!.audioPacketsSent * 0.85);
    expect(dl.videoEnd).toBeGreaterThan(4);
  });

  it('a reconnect starts a new segment after the previous one ends (no overlap on the case timeline)', async () => {
    const c = await newCase(t.admin);
    const opts = {
      baseUrl: t.url,
      caseId: c.case.id,
      token: c.links.buyer.token,
      media,
      loop: true,
    };
    const first = new WhipPublisher(opts);
    const second = new WhipPublisher(opts);
    try {
      await first.start();
      await sleep(1500);
      await second.start(); // the same role publishing again replaces the first session
      await sleep(1000);
      // the recorder's keyframe requests reach the publisher as PLI
      const live = t.node.recordings
        .list({ caseId: c.case.id })
        .find((r) => r.status === 'recording');
      expect(live).toBeDefined();
      const before = second.results().keyframeRequests;
      requestKeyframe(t.node.rooms, {
        caseId: c.case.id,
        role: 'buyer',
        sessionId: live!.sessionId,
      });
      await sleep(500);
      expect(second.results().keyframeRequests).toBeGreaterThan(before);
    } finally {
      await second.close();
      await first.close({ skipDelete: true });
    }
    const [a, b] = await finishedRecordings(t, c.case.id, 2);
    expect(a!.sessionId).not.toBe(b!.sessionId);
    expect(a!.endedAt).toBeLessThanOrEqual(b!.startedAt);
    for (const r of [a!, b!]) {
      expect(r.status).toBe('finished');
      expect(r.durationMs).toBeGreaterThan(1000);
      const d = await decode(join(t.dataDir, r.path));
      expect(d.errors).toBe('');
    }
  });

  it('refuses a WHIP session with 507 when the disk is below recording.minFreeBytes, and counts it', async () => {
    const full = await startTestNode({
      recording: { minFreeBytes: Number.MAX_SAFE_INTEGER, stopFreeBytes: 0 },
    });
    try {
      const c = await newCase(full.admin);
      const res = await fetch(`${full.url}/whip/${c.case.id}`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${c.links.buyer.token}`,
          'Content-Type': 'application/sdp',
        },
        body: 'v=0\r\n',
      });
      expect(res.status).toBe(507);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('insufficient_storage');
      expect(body.error.message).toMatch(/recording\.minFreeBytes/);
      const metrics = await (await fetch(`${full.url}/metrics`)).text();
      expect(metrics).toMatch(/^returncam_recording_refused_total 1$/m);
      expect(metrics).toMatch(/^returncam_recording_disk_free_bytes \d+/m);
    } finally {
      await full.close();
    }
  });
});

describe('recording across kill -9', () => {
  it('what arrived up to ~1 s before the kill plays back; the next start repairs it and says so in the timeline', async () => {
    const env = {
      RETURNCAM_RECORDING_MIN_FREE_BYTES: '1',
      RETURNCAM_RECORDING_STOP_FREE_BYTES: '0',
    };
    const node = await startNodeProcess([], { env, dataDir: testDir('returncam-kill-') });
    const token = readFileSync(join(node.dataDir, 'admin.token'), 'utf8').trim();
    const admin =
      (url: string) =>
      (path: string, init: RequestInit = {}) =>
        fetch(`${url}${path}`, {
          ...init,
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        });
    const c = await newCase(admin(node.url));
    const pub = new WhipPublisher({
      baseUrl: node.url,
      caseId: c.case.id,
      token: c.links.buyer.token,
      media,
      loop: true,
    });
    let killAt = 0;
    let receivingSince = 0;
    try {
      await pub.start();
      // "what arrived": count from when the node is really receiving media (on a loaded machine
      // the handshake can take a while after the publisher starts sending)
      const deadline = Date.now() + 10_000;
      while (!receivingSince && Date.now() < deadline) {
        const metrics = await (await fetch(`${node.url}/metrics`)).text();
        const packetsIn = Number(/^returncam_rtp_packets_in_total (\S+)$/m.exec(metrics)?.[1] ?? 0);
        if (packetsIn > 0) receivingSince = Date.now();
        else await sleep(50);
      }
      expect(receivingSince).toBeGreaterThan(0);
      await sleep(3000);
      killAt = Date.now();
      node.proc.kill('SIGKILL');
      await node.proc;
    } finally {
      await pub.close({ skipDelete: true });
    }
    const sentSeconds = (killAt - receivingSince) / 1000;

    const restarted = await startNodeProcess([], { env, dataDir: node.dataDir });
    try {
      const res = await admin(restarted.url)(`/api/admin/recordings?case=${c.case.id}`);
      const { recordings } = (await res.json()) as { recordings: RecordingRecord[] };
      expect(recordings).toHaveLength(1);
      const rec = recordings[0]!;
      expect(rec.status).toBe('repaired');
      expect(rec.originalPath).toMatch(/\.webm$/);
      expect(rec.path).toMatch(/\.repaired\.webm$/);
      // the file as the kill left it is kept untouched, and decodes as it is
      const original = join(node.dataDir, rec.originalPath!);
      expect(sha256Hex(readFileSync(original))).toBe(rec.originalSha256);
      const raw = await decode(original);
      const repaired = await decode(join(node.dataDir, rec.path));
      console.log(
        `kill -9 after ${sentSeconds.toFixed(2)} s of media: ${raw.videoEnd.toFixed(2)} s on disk, ` +
          `${(sentSeconds - raw.videoEnd).toFixed(2)} s lost; repaired copy ${repaired.videoFrames} video / ${repaired.audioFrames} audio frames`,
      );
      expect(raw.videoEnd).toBeGreaterThan(sentSeconds - 1.2);
      expect(repaired.errors).toBe('');
      expect(repaired.videoFrames).toBe(raw.videoFrames);
      expect(repaired.audioFrames).toBeGreaterThan(0);
      const details = (await (
        await admin(restarted.url)(`/api/admin/cases/${c.case.id}`)
      ).json()) as {
        events: { type: string; data: Record<string, unknown> }[];
      };
      const types = details.events.map((e) => e.type);
      expect(types).toEqual(
        expect.arrayContaining(['recording.started', 'recording.repaired', 'recording.finished']),
      );
      expect(details.events.find((e) => e.type === 'recording.repaired')!.data).toMatchObject({
        recordingId: rec.id,
        originalSha256: rec.originalSha256,
      });
    } finally {
      await restarted.stop();
    }
  });
});
