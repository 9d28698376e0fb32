import { join } from 'node:path';
import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestMedia, type TestMedia } from '../../src/bench/clients/media.ts';
import { type ReceivedFrame, WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

const MEDIA_CACHE = join(import.meta.dirname, '..', '..', '.returncam-cache', 'test-media');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** The node's session object of a WHEP client, by the session id at the end of its Location. */
function sessionOf(t: TestNode, caseId: string, client: WhepSubscriber): SubscriberSession {
  const id = client.location!.split('/').pop()!;
  const found = (
    t.node.rooms as unknown as {
      rooms: Map<string, { find(id: string): unknown }>;
    }
  ).rooms
    .get(caseId)
    ?.find(id);
  if (!found) throw new Error(`no session ${id} on the node`);
  return found as SubscriberSession;
}

const widths = (frames: readonly ReceivedFrame[], since: number) =>
  frames.filter((f) => f.keyframe && f.receivedAt >= since).map((f) => f.width);

describe('simulcast through a real node: a node-datachannel publisher sends three layers', () => {
  let server: TestNode;
  let layers: { q: TestMedia; h: TestMedia; f: TestMedia };

  beforeAll(async () => {
    const make = (width: number, height: number, bitrateKbps: number) =>
      ensureTestMedia(MEDIA_CACHE, { seconds: 6, fps: 30, width, height, bitrateKbps });
    const [q, h, f] = await Promise.all([
      make(160, 90, 100),
      make(320, 180, 300),
      make(640, 360, 800),
    ]);
    layers = { q: q!, h: h!, f: f! };
    server = await startTestNode();
  });

  afterAll(async () => {
    await server?.close();
    nodeDataChannel.cleanup();
  });

  it('gives each viewer the layer its link carries: top, lower, or audio plus still frames', async () => {
    const c = server.node.cases.create({ orderId: 'ORD-SIM', sku: 'SKU-1', reason: 'damaged' });
    const base = { baseUrl: server.url, caseId: c.case.id };
    const staff = bearer(c.links.staff.token);
    const clean = new WhepSubscriber({ ...base, headers: staff });
    // A viewer whose link carries ~250 kbit/s (the test-pattern layers take ~100, ~200 and
    // ~470 kbit/s): its REMB says so once the top layer overflows it.
    const narrow = new WhepSubscriber({ ...base, headers: staff, rembLimitBps: 250_000 });
    // A viewer on a link too weak even for the lowest layer plus audio.
    const weak = new WhepSubscriber({ ...base, headers: staff, rembLimitBps: 60_000 });
    // A viewer that loses 5 % of what arrives: repaired from the node's own history, once.
    const lossy = new WhepSubscriber({ ...base, headers: staff, dropRate: 0.05, seed: 3 });
    const publisher = new WhipPublisher({
      ...base,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
      simulcast: [
        { rid: 'q', videoPath: layers.q.videoPath },
        { rid: 'h', videoPath: layers.h.videoPath },
        { rid: 'f', videoPath: layers.f.videoPath },
      ],
    });
    try {
      await Promise.all([clean.start(), narrow.start(), weak.start(), lossy.start()]);
      await publisher.start();
      expect(server.node.rooms.stats()).toEqual({ rooms: 1, publishers: 1, subscribers: 4 });

      // A REMB is given 5 s to catch up with a raised rate (a receive-side estimator grows ~8 %/s);
      // then the narrow and weak viewers are moved down within a second.
      await sleep(7_000);
      const settledAt = performance.timeOrigin + performance.now();
      const sentBefore = publisher.results();
      const weakAudioBefore = weak.results().audioPackets;
      const weakFramesBefore = weak.results().completeFrames;
      await sleep(8_000);
      const sent = publisher.results();
      const framesSent = sent.framesSent - sentBefore.framesSent;
      const audioSent = sent.audioPacketsSent - sentBefore.audioPacketsSent;

      const quality = {
        clean: sessionOf(server, c.case.id, clean).quality!,
        narrow: sessionOf(server, c.case.id, narrow).quality!,
        weak: sessionOf(server, c.case.id, weak).quality!,
      };
      const counters = { ...server.node.rooms.counters };
      const weakGot = weak.results();
      console.info(
        `simulcast: layers ${JSON.stringify(sent.layers.map((l) => [l.rid, l.width, Math.round((l.bytesSent * 8) / 12)]))} bit/s; ` +
          `clean ${JSON.stringify(quality.clean)} keyframes ${widths(clean.receivedFrames, settledAt)}; ` +
          `narrow ${JSON.stringify(quality.narrow)} keyframes ${widths(narrow.receivedFrames, settledAt)} remb ${narrow.rembsSent.slice(-4)}; ` +
          `weak ${JSON.stringify(quality.weak)} frames ${weakGot.completeFrames - weakFramesBefore} audio ${weakGot.audioPackets - weakAudioBefore}/${audioSent}; ` +
          `node ${JSON.stringify(counters)}`,
      );

      // Every layer went out, each at its own size.
      expect(sent.layers.map((l) => [l.rid, l.width])).toEqual([
        ['q', 160],
        ['h', 320],
        ['f', 640],
      ]);
      // The clean viewer gets the top layer, every frame of it.
      expect(quality.clean).toMatchObject({ layer: 2, rid: 'f', weak: false, layers: 3 });
      const cleanWidths = widths(clean.receivedFrames, settledAt);
      expect(cleanWidths.length).toBeGreaterThanOrEqual(3);
      expect(new Set(cleanWidths)).toEqual(new Set([640]));
      // The narrow viewer was moved down to a layer its link carries and keeps playing.
      expect(quality.narrow.weak).toBe(false);
      expect(quality.narrow.layer).toBeLessThan(2);
      const narrowWidths = widths(narrow.receivedFrames, settledAt);
      expect(narrowWidths.length).toBeGreaterThanOrEqual(3);
      for (const w of narrowWidths) expect([160, 320]).toContain(w);
      expect(quality.narrow.switches).toBeLessThanOrEqual(3);
      const narrowFrames = narrow.receivedFrames.filter((f) => f.receivedAt >= settledAt).length;
      expect(narrowFrames / framesSent).toBeGreaterThanOrEqual(0.8);
      // The weak viewer: all the audio, and only a still keyframe of the lowest layer every ~3 s.
      expect(quality.weak).toMatchObject({ weak: true, layer: 0 });
      const stills = weak.receivedFrames.filter((f) => f.receivedAt >= settledAt);
      expect(stills.length).toBeGreaterThanOrEqual(2);
      expect(stills.length).toBeLessThanOrEqual(5);
      expect(stills.every((f) => f.keyframe && f.width === 160)).toBe(true);
      expect((weakGot.audioPackets - weakAudioBefore) / audioSent).toBeGreaterThanOrEqual(0.95);
      expect(counters.stillFrameEntries).toBeGreaterThanOrEqual(1);
      expect(counters.layerSwitches).toBeGreaterThanOrEqual(2);
      // Loss on a viewer's leg is repaired from the node's history, once per request: a copy
      // arrives twice only when the viewer asked twice (its retry can beat a slow repair).
      const repaired = lossy.results();
      expect(repaired.droppedPackets).toBeGreaterThan(0);
      expect(repaired.retransmitsReceived).toBeGreaterThan(0);
      expect(repaired.duplicatePackets).toBeLessThanOrEqual(
        repaired.nackedPackets - repaired.retransmitsReceived,
      );
      expect(repaired.lostPackets).toBe(0);

      // An uplink outage: when the layers resume, each is asked for a keyframe at once.
      const before = { ...server.node.rooms.counters };
      const requestsBefore = publisher.results().layers.map((l) => l.keyframeRequests);
      await publisher.pause(800);
      await sleep(300);
      const after = server.node.rooms.counters;
      expect(
        after.recoveryKeyframeRequests - before.recoveryKeyframeRequests,
      ).toBeGreaterThanOrEqual(3);
      const requestsAfter = publisher.results().layers.map((l) => l.keyframeRequests);
      for (const [i, n] of requestsAfter.entries()) expect(n).toBeGreaterThan(requestsBefore[i]!);
    } finally {
      await Promise.all([
        publisher.close(),
        clean.close(),
        narrow.close(),
        weak.close(),
        lossy.close(),
      ]);
    }
  });

  it("repairs loss on the publisher's layers: the node NACKs each layer and unwraps its RTX", async () => {
    const c = server.node.cases.create({ orderId: 'ORD-SIM2', sku: 'SKU-2', reason: 'damaged' });
    const base = { baseUrl: server.url, caseId: c.case.id };
    const viewer = new WhepSubscriber({ ...base, headers: bearer(c.links.staff.token) });
    const publisher = new WhipPublisher({
      ...base,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
      loop: false,
      // 3 % of every layer's packets lost on the way up, sent again in RTX when NACKed
      dropRate: 0.03,
      seed: 11,
      simulcast: [
        { rid: 'q', videoPath: layers.q.videoPath },
        { rid: 'h', videoPath: layers.h.videoPath },
        { rid: 'f', videoPath: layers.f.videoPath },
      ],
    });
    try {
      const nacksBefore = server.node.rooms.counters.nacksToPublishers;
      await viewer.start();
      await publisher.start();
      await publisher.finished;
      await sleep(500);
      const sent = publisher.results();
      const got = viewer.results();
      console.info(
        `simulcast uplink repair: sent ${sent.framesSent} frames, withheld ${sent.droppedPackets}, ` +
          `resent ${sent.retransmitsSent} in RTX; viewer ${got.completeFrames} complete, lost ${got.lostPackets}`,
      );
      expect(sent.droppedPackets).toBeGreaterThan(10);
      expect(server.node.rooms.counters.nacksToPublishers).toBeGreaterThan(nacksBefore);
      expect(sent.retransmitsSent).toBeGreaterThanOrEqual(sent.droppedPackets * 0.9);
      // The viewer (on the top layer) got the repaired packets: every frame whole.
      expect(got.completeFrames / sent.framesSent).toBeGreaterThanOrEqual(0.95);
      expect(got.lostPackets).toBe(0);
      // The recording holds the top layer, repaired.
      await publisher.close();
      let recordings = server.node.recordings.list({ caseId: c.case.id });
      const deadline = Date.now() + 10_000;
      while (recordings.length === 0 || recordings.some((r) => r.status === 'recording')) {
        if (Date.now() > deadline) throw new Error('the recording did not finish');
        await sleep(100);
        recordings = server.node.recordings.list({ caseId: c.case.id });
      }
      expect(recordings).toHaveLength(1);
      expect(recordings[0]!.tracks.find((x) => x.kind === 'video')).toMatchObject({
        width: 640,
        height: 360,
      });
    } finally {
      await Promise.all([publisher.close(), viewer.close()]);
    }
  });
});
