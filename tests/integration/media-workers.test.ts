import { join } from 'node:path';
import nodeDataChannel from 'node-datachannel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { collectResults } from '../../src/bench/clients/index.ts';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { NODE_SEMI_SPACE_MB, WORKER_YOUNG_GENERATION_MB } from '../../src/node/heapFlags.ts';
import type { RecordingRecord } from '../../src/node/store/Store.ts';
import { MediaWorkerPool } from '../../src/node/workers/MediaWorkerPool.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { decode } from '../helpers/recordingMedia.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/**
 * `media.workers: 2`: rooms spread over two worker threads, behind the same WHIP/WHEP routes.
 * Real node-datachannel publishers and viewers, real recordings, a worker killed mid-call.
 */

const DISK_OK = { minFreeBytes: 1, stopFreeBytes: 0 };
const FRAG = 'application/trickle-ice-sdpfrag';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

function newCase(t: TestNode, orderId: string) {
  const c = t.node.cases.create({ orderId, sku: 'SKU-W', reason: 'damaged' });
  return {
    caseId: c.case.id,
    buyer: bearer(c.links.buyer.token),
    staff: bearer(c.links.staff.token),
    staffToken: c.links.staff.token,
  };
}

/** `name{worker="i"} value` lines of a Prometheus text. */
function perWorker(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\S+)$`, 'gm'))) {
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

const metric = (text: string, name: string) =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

async function finishedRecordings(t: TestNode, caseId: string, count: number) {
  let list: RecordingRecord[] = [];
  await waitFor(`${count} finished recording(s) of ${caseId}`, () => {
    list = t.node.recordings.list({ caseId });
    return list.length >= count && list.every((r) => r.status !== 'recording');
  });
  return list.sort((a, b) => a.startedAt - b.startedAt);
}

describe('media rooms in worker threads (media.workers: 2)', () => {
  let media: TestMedia;
  let t: TestNode;
  let pool: MediaWorkerPool;
  const clients: { close(): Promise<void> }[] = [];
  const track = <T extends { close(): Promise<void> }>(client: T): T => {
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    media = await testMedia({ seconds: 5 });
    t = await startTestNode({ media: { workers: 2 }, recording: DISK_OK });
    expect(t.node.media).toBeInstanceOf(MediaWorkerPool);
    pool = t.node.media as MediaWorkerPool;
    // /healthz answers while the workers are still starting, and says so
    const early = await (await fetch(`${t.url}/healthz`)).json();
    expect(early.status).toBe('ok');
    expect(early.media.mode).toBe('workers');
    expect(early.media.workers).toHaveLength(2);
    await pool.ready();
    const ready = await (await fetch(`${t.url}/healthz`)).json();
    expect(ready.media).toMatchObject({
      ready: true,
      workers: [{ state: 'ready' }, { state: 'ready' }],
    });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    await t?.close();
    nodeDataChannel.cleanup();
  });

  it('puts two cases on different workers; media flows through each and both recordings decode', async () => {
    const cases = [newCase(t, 'ORD-W1'), newCase(t, 'ORD-W2')];
    const viewers = cases.map((c) =>
      track(new WhepSubscriber({ baseUrl: t.url, caseId: c.caseId, headers: c.staff })),
    );
    await Promise.all(viewers.map((v) => v.start()));
    const publishers = cases.map((c) =>
      track(
        new WhipPublisher({
          baseUrl: t.url,
          caseId: c.caseId,
          headers: c.buyer,
          media,
          loop: false,
        }),
      ),
    );
    await Promise.all(publishers.map((p) => p.start()));

    const hosts = cases.map((c) => pool.workerOf(c.caseId));
    expect(hosts.sort()).toEqual([0, 1]);
    expect(t.node.media.stats()).toEqual({ rooms: 2, publishers: 2, subscribers: 2 });
    const during = await (await fetch(`${t.url}/metrics`)).text();
    expect(perWorker(during, 'returncam_media_worker_publishers')).toEqual({ '0': 1, '1': 1 });
    expect(perWorker(during, 'returncam_media_worker_subscribers')).toEqual({ '0': 1, '1': 1 });
    expect(perWorker(during, 'returncam_media_worker_up')).toEqual({ '0': 1, '1': 1 });

    await Promise.all(publishers.map((p) => p.finished));
    await sleep(500);
    const after = await (await fetch(`${t.url}/metrics`)).text();
    const inPerWorker = perWorker(after, 'returncam_media_worker_rtp_packets_in_total');
    for (let i = 0; i < 2; i++) {
      const sent = publishers[i]!.results();
      const got = collectResults(publishers[i]!, viewers[i]!);
      console.info(
        `worker case ${i} on worker ${pool.workerOf(cases[i]!.caseId)}: sent ${sent.framesSent} frames, ` +
          `viewer ${got.completeFrames}/${got.framesReceived} complete, audio ${got.audioPackets}/${sent.audioPacketsSent}`,
      );
      expect(sent.framesSent).toBeGreaterThanOrEqual(145);
      expect(got.completeFrames / sent.framesSent).toBeGreaterThanOrEqual(0.95);
      expect(got.audioPackets / sent.audioPacketsSent).toBeGreaterThanOrEqual(0.95);
    }
    // each worker received its own publisher's packets; the totals are their sum
    for (let i = 0; i < 2; i++) {
      const sent = publishers[i]!.results();
      const received = inPerWorker[String(pool.workerOf(cases[i]!.caseId))]!;
      expect(received).toBeGreaterThanOrEqual(sent.videoPacketsSent + sent.audioPacketsSent);
    }
    // forwarding time is measured in the workers and reported by the main thread's histogram
    expect(metric(after, 'returncam_forward_seconds_count')).toBeGreaterThan(0);
    expect(metric(after, 'returncam_rtp_packets_in_total')).toBe(
      inPerWorker['0']! + inPerWorker['1']!,
    );
    // each worker reports its own heap, and runs with the node's young generation, not V8's
    // default (which grows to four times this under load)
    const heapUsed = perWorker(after, 'returncam_media_worker_heap_used_bytes');
    const young = perWorker(after, 'returncam_media_worker_young_generation_bytes');
    for (const w of ['0', '1']) {
      expect(heapUsed[w]).toBeGreaterThan(1024 * 1024);
      expect(young[w]).toBeGreaterThan(0);
      expect(young[w]).toBeLessThanOrEqual(2 * NODE_SEMI_SPACE_MB * 1024 * 1024);
    }
    const status = await t.node.media.status(true);
    expect(status.workers.map((w) => w.heap.youngGenerationLimitBytes)).toEqual([
      WORKER_YOUNG_GENERATION_MB * 1024 * 1024,
      WORKER_YOUNG_GENERATION_MB * 1024 * 1024,
    ]);

    await Promise.all(clients.splice(0).map((client) => client.close()));
    await waitFor('sessions to end', () => t.node.media.stats().rooms === 0);
    for (let i = 0; i < 2; i++) {
      const [rec] = await finishedRecordings(t, cases[i]!.caseId, 1);
      expect(rec).toMatchObject({ status: 'finished', role: 'buyer', container: 'webm' });
      const d = await decode(join(t.dataDir, rec!.path));
      const sent = publishers[i]!.results();
      console.info(
        `worker recording ${i}: decoded ${d.videoFrames}/${sent.framesSent} video frames, ` +
          `${d.audioFrames}/${sent.audioPacketsSent} audio, ${(d.videoEnd - d.videoStart).toFixed(3)} s`,
      );
      expect(d.errors).toBe('');
      expect(Math.abs(d.videoFrames / sent.framesSent - 1)).toBeLessThan(0.02);
      expect(d.audioFrames).toBeGreaterThan(sent.audioPacketsSent * 0.95);
      expect(Math.abs(d.videoEnd - d.videoStart - sent.framesSent / 30)).toBeLessThan(0.2);
      const left = t.node.cases
        .events(cases[i]!.caseId)
        .filter((e) => e.type === 'participant.left')
        .map((e) => e.data.reason);
      expect(left).toEqual(['closed', 'closed']);
    }
  });

  it('restarts ICE over WHEP PATCH on a worker-hosted session', async () => {
    const c = newCase(t, 'ORD-W-ICE');
    const pc = new RTCPeerConnection({ iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'] });
    clients.push({ close: () => pc.close() });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`${t.url}/whep/${c.caseId}`, {
      method: 'POST',
      headers: { ...c.staff, 'Content-Type': 'application/sdp' },
      body: pc.localDescription!.sdp,
    });
    expect(res.status).toBe(201);
    const location = new URL(res.headers.get('Location')!, t.url).href;
    const etag = res.headers.get('ETag')!;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    await waitFor('the viewer to connect', () => pc.connectionState === 'connected');

    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    const offer = pc.localDescription!.sdp;
    const pick = (prefix: string) => offer.split(/\r?\n/).filter((l) => l.startsWith(prefix));
    const fragment = `${[
      'm=video 9 UDP/TLS/RTP/SAVPF 0',
      ...pick('a=mid:').slice(0, 1),
      ...pick('a=ice-ufrag:').slice(0, 1),
      ...pick('a=ice-pwd:').slice(0, 1),
      ...pick('a=candidate:'),
      'a=end-of-candidates',
    ].join('\r\n')}\r\n`;
    const patch = (body: string, ifMatch: string) =>
      fetch(location, {
        method: 'PATCH',
        headers: { ...c.staff, 'Content-Type': FRAG, 'If-Match': ifMatch },
        body,
      });
    const restarted = await patch(fragment, etag);
    const body = await restarted.text();
    expect(restarted.status, body).toBe(200);
    const newTag = restarted.headers.get('ETag')!;
    expect(newTag).not.toBe(etag);
    expect(body).toMatch(/^a=ice-ufrag:\S+/m);
    expect(body).toMatch(/^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/m);
    // the old entity-tag is stale now; the new one takes a trickle PATCH
    expect((await patch('a=end-of-candidates\r\n', etag)).status).toBe(412);
    const trickle = await patch('a=end-of-candidates\r\n', newTag);
    expect(trickle.status).toBe(204);
    expect(trickle.headers.get('ETag')).toBe(newTag);
    const view = await t.node.media.session(c.caseId, location.split('/').pop()!);
    expect(view).toEqual({ direction: 'subscribe', role: 'staff', iceEntityTag: newTag });
  });

  it('a worker that dies mid-call is restarted; its sessions end in the case log and the case reconnects', async () => {
    const c = newCase(t, 'ORD-W-CRASH');
    const viewer = track(
      new WhepSubscriber({ baseUrl: t.url, caseId: c.caseId, headers: c.staff }),
    );
    await viewer.start();
    const publisher = track(
      new WhipPublisher({ baseUrl: t.url, caseId: c.caseId, headers: c.buyer, media, loop: true }),
    );
    await publisher.start();
    await waitFor('frames at the viewer', () => viewer.results().completeFrames > 60);
    const host = pool.workerOf(c.caseId)!;
    expect(host).toBeDefined();
    const restarted = pool.onWorkerReady.asPromise();

    const framesBeforeCrash = viewer.results().completeFrames;
    pool.crashWorker(host);
    const left = () => t.node.cases.events(c.caseId).filter((e) => e.type === 'participant.left');
    await waitFor('both sessions to end in the case log', () => left().length === 2);
    expect(left().map((e) => e.data.reason)).toEqual(['worker_failed', 'worker_failed']);
    // the recording of the call up to the crash is finished, and plays
    const [rec] = await finishedRecordings(t, c.caseId, 1);
    expect(rec!.status).toBe('finished');
    const d = await decode(join(t.dataDir, rec!.path));
    expect(d.errors).toBe('');
    // everything up to the crash, but the last batch in flight (20 ms, about one frame)
    console.info(
      `worker crash: viewer had ${framesBeforeCrash} frames, the recording holds ${d.videoFrames}`,
    );
    expect(d.videoFrames).toBeGreaterThanOrEqual(framesBeforeCrash - 3);
    expect(await restarted).toEqual({ index: host, restarts: 1 });
    await Promise.all(clients.splice(0).map((client) => client.close()));

    // the pages reconnect: a new publisher and viewer for the same case get media
    const viewer2 = track(
      new WhepSubscriber({ baseUrl: t.url, caseId: c.caseId, headers: c.staff }),
    );
    await viewer2.start();
    const publisher2 = track(
      new WhipPublisher({ baseUrl: t.url, caseId: c.caseId, headers: c.buyer, media, loop: true }),
    );
    await publisher2.start();
    await waitFor('frames at the new viewer', () => viewer2.results().completeFrames > 30);
    const health = await (await fetch(`${t.url}/healthz`)).json();
    expect(health.media.ready).toBe(true);
    expect(health.media.workers[host].restarts).toBe(1);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(perWorker(text, 'returncam_media_worker_restarts_total')[String(host)]).toBe(1);
    expect(perWorker(text, 'returncam_media_worker_up')).toEqual({ '0': 1, '1': 1 });
  });
});

describe('media.portRange with worker threads', () => {
  let t: TestNode;
  const peers: RTCPeerConnection[] = [];

  beforeAll(async () => {
    t = await startTestNode({ media: { workers: 2, portRange: [42000, 42199] } });
  });

  afterAll(async () => {
    await Promise.all(peers.map((pc) => pc.close()));
    await t?.close();
  });

  it('gives each worker its own half of the range: the answers of its cases use only those ports', async () => {
    const pool = t.node.media as MediaWorkerPool;
    const ports: Record<number, number[]> = { 0: [], 1: [] };
    for (const orderId of ['ORD-P1', 'ORD-P2', 'ORD-P3', 'ORD-P4']) {
      const c = newCase(t, orderId);
      const pc = new RTCPeerConnection({ iceServers: [] });
      peers.push(pc);
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      const res = await fetch(`${t.url}/whep/${c.caseId}`, {
        method: 'POST',
        headers: { ...c.staff, 'Content-Type': 'application/sdp' },
        body: pc.localDescription!.sdp,
      });
      const answer = await res.text();
      expect(res.status, answer).toBe(201);
      const worker = pool.workerOf(c.caseId)!;
      for (const m of answer.matchAll(/^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gm)) {
        ports[worker]!.push(Number(m[1]));
      }
    }
    expect(ports[0]!.length).toBeGreaterThan(0);
    expect(ports[1]!.length).toBeGreaterThan(0);
    for (const p of ports[0]!) expect(p >= 42000 && p <= 42099, `worker 0 port ${p}`).toBe(true);
    for (const p of ports[1]!) expect(p >= 42100 && p <= 42199, `worker 1 port ${p}`).toBe(true);
  });
});
