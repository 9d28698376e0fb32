import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { type ReceivedFrame, WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { directionSchema } from '../../src/bench/profiles.ts';
import { RelayHub, type UdpRelay } from '../../src/bench/relay/index.ts';
import type { PublisherSession } from '../../src/node/media/PublisherSession.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import { LAYER_STALL_MS } from '../../src/node/media/TrackForwarder.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { sleep } from '../helpers/wait.ts';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** The node's session object of a WHEP client, by the session id at the end of its Location. */
function sessionOf(
  t: TestNode,
  caseId: string,
  client: { location: string | undefined },
): SubscriberSession {
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

/**
 * A werift viewer (WHEP, audio + video recvonly), optionally through an impairment relay: unlike
 * the node-datachannel client it sends RTCP receiver reports (fraction and cumulative lost,
 * highest sequence number) as a browser does, so the node's per-viewer estimate runs on real
 * reports. Records the arrival of each video frame (marker packet) and every video sequence number.
 */
async function weriftViewer(
  t: TestNode,
  caseId: string,
  headers: Record<string, string>,
  relay?: UdpRelay,
): Promise<{
  location: string;
  frames: number[];
  seqs: { seq: number; at: number; ts: number }[];
  close: () => Promise<void>;
}> {
  const pc = new RTCPeerConnection({ iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'] });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const video = pc.addTransceiver('video', { direction: 'recvonly' });
  const frames: number[] = [];
  const seqs: { seq: number; at: number; ts: number }[] = [];
  video.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      const at = performance.now();
      seqs.push({ seq: rtp.header.sequenceNumber, at, ts: rtp.header.timestamp });
      if (rtp.header.marker) frames.push(at);
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  const offer = pc.localDescription!.sdp;
  const res = await fetch(`${t.url}/whep/${caseId}`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/sdp' },
    body: relay ? relay.rewriteClientSdp(offer) : offer,
  });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${answer}`);
  await pc.setRemoteDescription({
    type: 'answer',
    sdp: relay ? relay.rewriteNodeSdp(answer) : answer,
  });
  const deadline = Date.now() + 10_000;
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) throw new Error('the werift viewer did not connect');
    await sleep(50);
  }
  return { location: res.headers.get('Location')!, frames, seqs, close: () => pc.close() };
}

/** The longest time between two frames arriving in [from, to), ms. */
function longestGap(frames: readonly number[], from: number, to: number): number {
  const around = frames.filter((at) => at >= from && at < to);
  let longest = 0;
  for (let i = 1; i < around.length; i++) longest = Math.max(longest, around[i]! - around[i - 1]!);
  return longest;
}

/** Sequence numbers (16-bit, in arrival order) missing from the span first..last they cover. */
function missingSeqs(seqs: readonly number[]): number {
  if (seqs.length === 0) return 0;
  const first = seqs[0]!;
  const got = new Set<number>();
  let span = 0;
  for (const s of seqs) {
    const d = (s - first) & 0xffff;
    if (d < 0x8000) {
      got.add(d);
      span = Math.max(span, d + 1);
    }
  }
  return span - got.size;
}

/**
 * A weak viewer's frames after it left its first layer: stills (keyframes with no frame after them
 * for a while) and probes (a keyframe, then delta frames, of the lowest layer).
 */
function stillsAndProbes(frames: readonly ReceivedFrame[]) {
  // Its first frames are the top layer it had before its link was found too weak.
  const start = frames.findIndex((f) => f.keyframe && f.width === 160);
  const after = start < 0 ? [] : frames.slice(start);
  const runs: ReceivedFrame[][] = [];
  for (const frame of after) {
    const run = runs.at(-1);
    // A still follows a still ~3 s later; a probe's frames come ~33 ms apart.
    if (run && frame.receivedAt - run.at(-1)!.receivedAt < 300) run.push(frame);
    else runs.push([frame]);
  }
  return {
    stills: runs.filter((run) => run.length === 1).map((run) => run[0]!),
    probes: runs
      .filter((run) => run.length > 1)
      .map((run) => ({ frames: run, firstAt: run[0]!.receivedAt, lastAt: run.at(-1)!.receivedAt })),
  };
}

const widths = (frames: readonly ReceivedFrame[], since: number) =>
  frames.filter((f) => f.keyframe && f.receivedAt >= since).map((f) => f.width);

describe('simulcast through a real node: a node-datachannel publisher sends three layers', () => {
  let server: TestNode;
  let layers: { q: TestMedia; h: TestMedia; f: TestMedia };

  beforeAll(async () => {
    const make = (width: number, height: number, bitrateKbps: number) =>
      testMedia({ width, height, bitrateKbps });
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

  /** The publisher's three layers, lowest first, each from its own file. */
  const threeLayers = () => [
    { rid: 'q', videoPath: layers.q.videoPath },
    { rid: 'h', videoPath: layers.h.videoPath },
    { rid: 'f', videoPath: layers.f.videoPath },
  ];

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
      simulcast: threeLayers(),
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
      // Each layer's encoder numbers its pictures from its own start; across the narrow viewer's
      // switches the numbers it sees run on without a jump (a jump stalls Chrome's decoder).
      const pictureIds = narrow.receivedFrames.map((f) => f.pictureId!);
      expect(pictureIds.every((id) => id !== undefined)).toBe(true);
      const steps = pictureIds.slice(1).map((id, i) => (id - pictureIds[i]!) & 0x7fff);
      expect(Math.max(...steps)).toBeLessThanOrEqual(3);
      expect(Math.min(...steps)).toBeGreaterThanOrEqual(1);
      // The weak viewer: all the audio, and a still keyframe of the lowest layer every ~3 s. Now
      // and then the node tries the lowest layer again (a probe): the link's REMB moves it back
      // within about a second, and each failed probe doubles the wait before the next.
      expect(quality.weak.layer).toBe(0);
      const { stills, probes } = stillsAndProbes(weak.receivedFrames);
      // Pictures keep coming: at least two keyframes of the lowest layer in 8 s (a still, or the
      // start of a probe when one follows a still at once).
      const keyframesInWindow = weak.receivedFrames.filter(
        (f) => f.keyframe && f.receivedAt >= settledAt,
      );
      expect(keyframesInWindow.length).toBeGreaterThanOrEqual(2);
      expect(keyframesInWindow.every((f) => f.width === 160)).toBe(true);
      expect(stills.every((f) => f.keyframe && f.width === 160)).toBe(true);
      for (const probe of probes) {
        expect(probe.frames[0]!.width).toBe(160);
        expect(probe.lastAt - probe.firstAt).toBeLessThanOrEqual(2_500);
      }
      for (let i = 1; i < probes.length; i++) {
        expect(probes[i]!.firstAt - probes[i - 1]!.lastAt).toBeGreaterThanOrEqual(6_000);
      }
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
      simulcast: threeLayers(),
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

  it('a clean viewer of a publisher with a lossy uplink keeps the top layer and every repaired frame', async () => {
    const c = server.node.cases.create({ orderId: 'ORD-SIM3', sku: 'SKU-3', reason: 'damaged' });
    const clear = directionSchema.parse({});
    // About 2 % of the publisher's packets (its repairs too) lost before they reach the node,
    // 1 % at random and the rest in bursts of ~25, over a mobile round trip (150 ms each way):
    // a hole stays open across the viewer's reports until the repair lands.
    const lossy = directionSchema.parse({
      loss: 0.01,
      burst: { p: 0.0005, r: 0.04 },
      delay: '150ms',
    });
    const hub = new RelayHub({
      profile: {
        buyer: { up: lossy, down: directionSchema.parse({ delay: '150ms' }) },
        staff: { up: clear, down: clear },
      },
      seed: 7,
    });
    const relay = await hub.create('buyer', 'buyer-1');
    hub.start(performance.now());
    const publisher = new WhipPublisher({
      baseUrl: server.url,
      caseId: c.case.id,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
      transformOffer: (sdp) => relay.rewriteClientSdp(sdp),
      transformAnswer: (sdp) => relay.rewriteNodeSdp(sdp),
      simulcast: threeLayers(),
    });
    const viewer = await weriftViewer(server, c.case.id, bearer(c.links.staff.token));
    const stillBefore = server.node.rooms.counters.stillFrameEntries;
    try {
      await publisher.start();
      await sleep(3_000);
      const from = performance.now();
      const perSecond: number[] = [];
      const layersSeen: (number | undefined)[] = [];
      for (let i = 0; i < 12; i++) {
        const start = performance.now();
        await sleep(1_000);
        perSecond.push(viewer.frames.filter((at) => at >= start).length);
        const q = sessionOf(server, c.case.id, viewer).quality!;
        layersSeen.push(q.weak ? -1 : q.layer);
      }
      // Let the last repairs land before counting what is missing (a repair of a burst can take a
      // few round trips of the 300 ms uplink).
      // The numbers sent in the 12 s, and every packet that arrived since (repairs land late).
      const window = viewer.seqs.filter((p) => p.at >= from && p.at < from + 12_000);
      const last = window[window.length - 1]?.seq ?? 0;
      const windowSeqs = () =>
        viewer.seqs
          .filter((p) => p.at >= from && ((last - p.seq) & 0xffff) < 0x8000)
          .map((p) => p.seq);
      await expect.poll(() => missingSeqs(windowSeqs()), { timeout: 4_000, interval: 250 }).toBe(0);
      const missing = missingSeqs(windowSeqs());
      const quality = sessionOf(server, c.case.id, viewer).quality!;
      const up = relay.stats().up;
      const sent = publisher.results();
      console.info(
        `lossy uplink, clean viewer: relay dropped ${up.dropped.random}+${up.dropped.burst}/${up.packets} uplink packets, ` +
          `publisher resent ${sent.retransmitsSent}; viewer frames per second ${perSecond}, layers ${layersSeen}, ` +
          `${window.length} video packets, ${missing} missing; quality ${JSON.stringify(quality)}; ` +
          `node ${JSON.stringify(server.node.rooms.counters)}`,
      );
      expect(up.dropped.random + up.dropped.burst).toBeGreaterThan(30);
      // The uplink's holes are not the viewer's loss: it stays on the top layer the whole time,
      // never in still frames, with (nearly) the whole frame rate (30 fps) every second.
      expect(layersSeen).toEqual(new Array(12).fill(2));
      expect(server.node.rooms.counters.stillFrameEntries).toBe(stillBefore);
      // (A frame repaired over the 300 ms uplink can land in the next second: 24 then 37.)
      for (const n of perSecond) expect(n).toBeGreaterThanOrEqual(20);
      expect(perSecond.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(0.95 * 12 * 30);
      // Every hole was filled by the publisher's repair, forwarded under its own number.
      expect(missing).toBe(0);
      expect(quality.lossFraction).toBeLessThan(0.02);
    } finally {
      await Promise.all([publisher.close(), viewer.close()]);
      hub.close();
    }
  });

  /**
   * A three-layer publisher (options as given) and a werift staff viewer, started, with the
   * viewer on the top layer.
   */
  const viewerOnTop = async (
    orderId: string,
    options: Partial<ConstructorParameters<typeof WhipPublisher>[0]>,
  ) => {
    const c = server.node.cases.create({ orderId, sku: 'SKU-L', reason: 'damaged' });
    const publisher = new WhipPublisher({
      baseUrl: server.url,
      caseId: c.case.id,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
      simulcast: threeLayers(),
      ...options,
    });
    const viewer = await weriftViewer(server, c.case.id, bearer(c.links.staff.token));
    const layer = () => sessionOf(server, c.case.id, viewer).quality?.layer;
    try {
      await publisher.start();
      await expect.poll(layer, { timeout: 5_000 }).toBe(2);
    } catch (err) {
      await Promise.all([publisher.close(), viewer.close()]);
      throw err;
    }
    const close = () => Promise.all([publisher.close(), viewer.close()]);
    return { caseId: c.case.id, publisher, viewer, layer, close };
  };

  it('moves a viewer off a layer the publisher drops within a second, and back once it has held', async () => {
    const t = await viewerOnTop('ORD-SIM5', {});
    const { publisher, viewer } = t;
    try {
      await sleep(1_000);
      // The publisher's encoder drops its top layer for 2.5 s, as Chrome's does when its uplink
      // estimate falls under what the layer needs; the other layers go on.
      const dropAt = performance.now();
      publisher.pauseLayer('f', 2_500);
      // The top layer's keyframes from now on reach the node first-packet-last (reordered, or
      // that packet lost and repaired): the rest of the keyframe and the frames after it come in
      // before the packet the viewer's switch back waits for.
      publisher.delayKeyframeStarts('f', 150);
      // The middle layer's last packets before each keyframe arrive only after it (lost, and
      // repaired late): after the switch down, they belong to frames before the one the viewer
      // starts from, and their numbers there are taken by the top layer's packets it already had.
      publisher.lateBeforeKeyframes('h', 2, 60);
      const layersSeen: { at: number; layer: number | undefined }[] = [];
      while (performance.now() - dropAt < 9_000) {
        await sleep(250);
        const layer = t.layer();
        layersSeen.push({ at: Math.round(performance.now() - dropAt), layer });
      }
      const longest = longestGap(viewer.frames, dropAt - 500, dropAt + 2_500);
      const backAt = layersSeen.find((l) => l.at > 2_500 && l.layer === 2)?.at;
      // A number the viewer got twice with different media: a frame built from two layers.
      const tsOf = new Map<number, number>();
      let reused = 0;
      for (const p of viewer.seqs.filter((p) => p.at >= dropAt - 500)) {
        const ts = tsOf.get(p.seq);
        if (ts !== undefined && ts !== p.ts) reused++;
        tsOf.set(p.seq, p.ts);
      }
      console.info(
        `top layer dropped for 2.5 s: viewer's longest gap between frames ${Math.round(longest)} ms; ` +
          `layers ${layersSeen.map((l) => `${l.at}:${l.layer}`).join(' ')}; back on the top layer ${backAt ?? 'never'} ms after the drop; ` +
          `${reused} numbers reused with other media`,
      );
      expect(reused).toBe(0);
      // Before, the node noticed a dropped layer only once its bitrate over the last second read
      // zero: the viewer went more than a second without a frame.
      expect(longest).toBeLessThan(1_000);
      expect(layersSeen.filter((l) => l.at < 2_500).map((l) => l.layer)).toContain(1);
      // Back on the top layer only after it has been sending again for the return hold (4 s).
      expect(backAt).toBeDefined();
      expect(backAt!).toBeGreaterThanOrEqual(2_500 + 3_750);
      // Whole from its first keyframe on: no number the viewer never gets after the switch back
      // (before, the packets that came before the keyframe's first one were dropped, and
      // Chrome showed nothing until its own keyframe request 3 s later).
      const backSeqs = viewer.seqs.filter((p) => p.at >= dropAt + backAt! - 500).map((p) => p.seq);
      console.info(
        `after the switch back: ${backSeqs.length} packets, ${missingSeqs(backSeqs)} missing`,
      );
      expect(backSeqs.length).toBeGreaterThan(100);
      expect(missingSeqs(backSeqs)).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('moves a viewer off a layer at once when the publisher announces it switched it off', async () => {
    // As Chrome does, the publisher sends its layer allocation (video-layers-allocation header
    // extension) with the next frame of the layers that go on: the node need not wait for the
    // dropped layer's silence to be long enough to mean something.
    const gapAfterDrop = async (announce: boolean, orderId: string) => {
      const t = await viewerOnTop(orderId, { layersAllocation: announce });
      try {
        await sleep(1_000);
        const dropAt = performance.now();
        t.publisher.pauseLayer('f', 2_000);
        await sleep(1_500);
        return {
          longest: longestGap(t.viewer.frames, dropAt - 200, dropAt + 1_500),
          layer: t.layer(),
        };
      } finally {
        await t.close();
      }
    };
    const announced = await gapAfterDrop(true, 'ORD-SIM7');
    const silent = await gapAfterDrop(false, 'ORD-SIM8');
    console.info(
      `top layer switched off: viewer's longest gap ${Math.round(announced.longest)} ms when announced, ` +
        `${Math.round(silent.longest)} ms when only its silence tells`,
    );
    expect(announced.layer).toBe(1);
    expect(silent.layer).toBe(1);
    // Silence must last LAYER_STALL_MS (450 ms) before it counts; the announcement comes with the
    // next frame (33 ms), and the middle layer's keyframe one more frame later.
    expect(silent.longest).toBeGreaterThan(LAYER_STALL_MS);
    expect(announced.longest).toBeLessThan(250);
  });

  it('keeps a viewer on a layer the publisher switches off for a moment only', async () => {
    // Chrome's allocation sometimes drops its top layer for tens of milliseconds. If it is back
    // before the lower layer's keyframe has come, the switch never took effect: the viewer
    // stays where it was instead of spending seconds on the lower layer. Repairs take an uplink
    // round trip here, as does a keyframe asked for (below).
    const t = await viewerOnTop('ORD-SIM9', { layersAllocation: true, repairDelayMs: 200 });
    const { publisher } = t;
    try {
      await sleep(1_000);
      // The middle layer's keyframes take 200 ms to arrive, longer than the top layer is off.
      publisher.delayKeyframeStarts('h', 200);
      const dropAt = performance.now();
      publisher.pauseLayer('f', 60);
      const layersSeen: number[] = [];
      while (performance.now() - dropAt < 2_000) {
        await sleep(50);
        layersSeen.push(t.layer() ?? -1);
      }
      const longest = longestGap(t.viewer.frames, dropAt - 200, dropAt + 2_000);
      console.info(
        `top layer off for 60 ms: viewer's layers ${layersSeen.join('')}, longest gap ${Math.round(longest)} ms`,
      );
      expect(layersSeen.every((l) => l === 2)).toBe(true);
      expect(longest).toBeLessThan(250);
    } finally {
      await t.close();
    }
  });

  it('sends a viewer that switches layers the rest of a keyframe that came just before', async () => {
    // The lower layer's keyframe is on its way, its first packet late (lost, its repair a round
    // trip away), when the viewer's layer stops: the switch waits for that first packet, and the
    // rest of the keyframe, which came before the switch was decided, must follow it.
    const t = await viewerOnTop('ORD-SIM10', { layersAllocation: true, repairDelayMs: 700 });
    const { publisher, viewer } = t;
    try {
      await sleep(1_500);
      const session = server.node.rooms.publisher(
        t.caseId,
        'buyer',
        publisher.location!.split('/').pop()!,
      ) as PublisherSession;
      publisher.delayKeyframeStarts('h', 600);
      session.videoLayers[1]!.requestKeyframe();
      await sleep(150);
      const dropAt = performance.now();
      publisher.pauseLayer('f', 3_000);
      await sleep(700);
      // That keyframe is in (its first packet came at 600 ms); the next ones come on time.
      publisher.delayKeyframeStarts('h', 0);
      await sleep(1_300);
      expect(t.layer()).toBe(1);
      const after = viewer.seqs.filter((p) => p.at >= dropAt).map((p) => p.seq);
      const frames = viewer.frames.filter((at) => at >= dropAt + 1_000).length;
      console.info(
        `switch onto a keyframe whose first packet came last: ${after.length} packets after the drop, ` +
          `${missingSeqs(after)} numbers missing, ${frames} frames in the last second`,
      );
      expect(after.length).toBeGreaterThan(50);
      expect(missingSeqs(after)).toBe(0);
      expect(frames).toBeGreaterThan(20);
    } finally {
      await t.close();
    }
  });

  it('forwards each repaired packet once, however many NACK retries a slow repair took', async () => {
    // Repairs take 500 ms (a long uplink round trip) and the publisher answers every NACK (Chrome
    // repeats repairs too): until the node has measured that round trip it asks again, and each
    // ask brings one more copy. Viewers need the first.
    const t = await viewerOnTop('ORD-SIM11', { dropRate: 0.03, seed: 13, repairDelayMs: 500 });
    const { publisher, viewer } = t;
    const before = { ...server.node.rooms.counters };
    try {
      const from = performance.now();
      await sleep(3_000);
      publisher.stopSending();
      await sleep(1_500);
      const got = viewer.seqs.filter((p) => p.at >= from).map((p) => p.seq);
      const copies = new Map<number, number>();
      for (const seq of got) copies.set(seq, (copies.get(seq) ?? 0) + 1);
      const twice = [...copies.values()].filter((n) => n > 1).length;
      const counters = server.node.rooms.counters;
      const dropped = counters.duplicatesDropped - before.duplicatesDropped;
      const sent = publisher.results();
      console.info(
        `500 ms repairs: withheld ${sent.droppedPackets}, NACKed ${sent.packetsNacked} times, resent ` +
          `${sent.retransmitsSent}; node dropped ${dropped} second copies; viewer got ${got.length} ` +
          `packets, ${twice} numbers more than once, ${missingSeqs(got)} missing`,
      );
      // The slow repairs did bring second copies to the node...
      expect(sent.retransmitsSent).toBeGreaterThan(sent.droppedPackets);
      expect(dropped).toBeGreaterThan(0);
      // ...and the viewer got every number, each once.
      expect(got.length).toBeGreaterThan(100);
      expect(twice).toBe(0);
      expect(missingSeqs(got)).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('a single-layer viewer gets frames again within a second of a 3 s outage of its link', async () => {
    const c = server.node.cases.create({ orderId: 'ORD-SIM4', sku: 'SKU-4', reason: 'damaged' });
    const clear = directionSchema.parse({});
    // The viewer's link goes down both ways (no media in, no reports out) 4 s after the start.
    const down = directionSchema.parse({ outages: [{ at: '4s', duration: '3s' }] });
    const hub = new RelayHub({
      profile: { buyer: { up: clear, down: clear }, staff: { up: down, down } },
      seed: 9,
    });
    const relay = await hub.create('staff', 'staff-1');
    const publisher = new WhipPublisher({
      baseUrl: server.url,
      caseId: c.case.id,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
    });
    const viewer = await weriftViewer(server, c.case.id, bearer(c.links.staff.token), relay);
    try {
      await publisher.start();
      await sleep(1_000);
      const start = performance.now();
      hub.start(start);
      const outageEnd = start + 7_000;
      await sleep(7_000 + 10_000);
      const end = performance.now();
      const quality = sessionOf(server, c.case.id, viewer).quality!;
      // Frames per half second from the end of the outage to the end of the call.
      const halves: number[] = [];
      for (let t = outageEnd; t + 500 <= end; t += 500) {
        halves.push(viewer.frames.filter((at) => at >= t && at < t + 500).length);
      }
      const firstAfter = viewer.frames.find((at) => at >= outageEnd);
      const dropped = relay.stats().down.dropped.outage;
      const seqsAround = viewer.seqs
        .filter((p) => p.at >= start + 3_500)
        .slice(0, 3)
        .concat(viewer.seqs.filter((p) => p.at >= outageEnd).slice(0, 3))
        .map((p) => `${p.seq}@${Math.round(p.at - start)}`);
      const summary =
        `single-layer viewer through a 3 s outage: relay dropped ${dropped} packets towards it; ` +
        `first frame ${firstAfter === undefined ? 'never' : `${Math.round(firstAfter - outageEnd)} ms`} after it, ` +
        `frames per 0.5 s ${halves}; sequence numbers around it ${seqsAround.join(' ')}; ` +
        `quality ${JSON.stringify(quality)}; node ${JSON.stringify(server.node.rooms.counters)}`;
      console.info(summary);
      expect(dropped).toBeGreaterThan(50);
      expect(quality.layers).toBe(1);
      expect(firstAfter, summary).toBeDefined();
      expect(firstAfter! - outageEnd, summary).toBeLessThan(1_000);
      // From a second after the outage to the end of the call, video never stops again.
      for (const n of halves.slice(2)) expect(n, summary).toBeGreaterThanOrEqual(5);
      expect(quality.weak).toBe(false);
    } finally {
      await Promise.all([publisher.close(), viewer.close()]);
      hub.close();
    }
  });
});
