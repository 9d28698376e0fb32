import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, RTCRtpHeaderExtensionParameters } from 'werift';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { PLAYOUT_DELAY_URI, parsePlayoutDelay } from '../../src/node/media/playoutDelay.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import { standardTestMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { sleep, waitFor as waitUntil } from '../helpers/wait.ts';

/** This file's waits give up after 5 s. */
const waitFor = (what: string, check: () => boolean, timeoutMs = 5000) =>
  waitUntil(what, check, timeoutMs);

/** One video packet as the viewer got it: when, and the playout delay it carried, if any. */
interface Seen {
  at: number;
  seq: number;
  delay: { minMs: number; maxMs: number } | undefined;
}

describe('playout delay: the node asks viewers to hide repairs on the publisher uplink', () => {
  let media: TestMedia;
  let nodes: TestNode[] = [];
  const peers: RTCPeerConnection[] = [];
  const publishers: WhipPublisher[] = [];

  beforeAll(async () => {
    media = await standardTestMedia();
  });

  afterEach(async () => {
    await Promise.all(publishers.splice(0).map((p) => p.close()));
    await Promise.all(peers.splice(0).map((pc) => pc.close()));
    await Promise.all(nodes.map((n) => n.close()));
    nodes = [];
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
  });

  async function node(media?: { maxPlayoutDelayMs: number }) {
    const n = await startTestNode(media ? { media } : {});
    nodes.push(n);
    const c = n.node.cases.create({ orderId: 'ORD-PD', sku: 'SKU-PD', reason: 'damaged' });
    return { n, caseId: c.case.id, buyer: c.links.buyer.token, staff: c.links.staff.token };
  }

  /** A werift viewer that offers the playout-delay extension and records it per video packet. */
  async function view(n: TestNode, caseId: string, token: string) {
    const pc = new RTCPeerConnection({
      iceServers: [],
      iceAdditionalHostAddresses: ['127.0.0.1'],
      headerExtensions: {
        audio: [],
        video: [new RTCRtpHeaderExtensionParameters({ uri: PLAYOUT_DELAY_URI })],
      },
    });
    peers.push(pc);
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    expect(pc.localDescription!.sdp).toContain(PLAYOUT_DELAY_URI);
    const res = await fetch(`${n.url}/whep/${caseId}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: pc.localDescription!.sdp,
    });
    const answer = await res.text();
    expect(res.status, answer).toBe(201);
    const id = Number(
      new RegExp(`a=extmap:(\\d+) ${PLAYOUT_DELAY_URI.replaceAll('.', '\\.')}`).exec(answer)?.[1],
    );
    const seen: Seen[] = [];
    pc.onTrack.subscribe((track) => {
      if (track.kind !== 'video') return;
      track.onReceiveRtp.subscribe((rtp) => {
        const ext = rtp.header.extensions.find((e) => e.id === id);
        seen.push({
          at: performance.now(),
          seq: rtp.header.sequenceNumber,
          delay: ext ? parsePlayoutDelay(ext.payload) : undefined,
        });
      });
    });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await waitFor('the viewer to connect', () => pc.connectionState === 'connected');
    const sessionId = res.headers.get('Location')!.split('/').pop()!;
    return { answer, id, seen, sessionId };
  }

  async function publish(
    n: TestNode,
    caseId: string,
    token: string,
    lossy: { dropRate: number; repairDelayMs: number } | undefined,
  ) {
    const publisher = new WhipPublisher({
      baseUrl: n.url,
      caseId,
      headers: { Authorization: `Bearer ${token}` },
      media,
      seed: 7,
      ...lossy,
    });
    publishers.push(publisher);
    await publisher.start();
    return publisher;
  }

  it('asks a viewer for what a typical repair takes beyond a freeze, once repairs are needed', async () => {
    const { n, caseId, buyer, staff } = await node({ maxPlayoutDelayMs: 250 });
    const viewer = await view(n, caseId, staff);
    expect(viewer.answer).toContain(PLAYOUT_DELAY_URI);
    // a 3G uplink: 6 % of video lost, each repair back 300 ms after the node's NACK
    const publisher = await publish(n, caseId, buyer, { dropRate: 0.06, repairDelayMs: 300 });
    await waitFor('video at the viewer', () => viewer.seen.length > 0);
    const start = viewer.seen[0]!.at;
    await sleep(3000);
    publisher.stopSending();
    const sent = publisher.results();
    expect(sent.retransmitsSent).toBeGreaterThanOrEqual(5);

    const firstAsked = viewer.seen.find((s) => s.delay !== undefined);
    expect(firstAsked, 'no packet carried a playout delay').toBeDefined();
    // nothing before the third repair: the viewer's first frames came without it
    expect(viewer.seen[0]!.delay).toBeUndefined();
    // Once asked, every packet carries it, so a frame's first packet always does. Packets sent
    // after the ask are those newer than it; an older one arriving later is a retransmission of
    // a packet sent before (the node resends it as it went out), which a busy machine's viewer
    // socket may have dropped.
    const newer = (s: Seen) =>
      s.seq !== firstAsked!.seq && ((s.seq - firstAsked!.seq) & 0xffff) < 0x8000;
    const asked = viewer.seen.filter(
      (s) => s.at >= firstAsked!.at && (s === firstAsked || newer(s)),
    );
    expect(asked.length).toBeGreaterThan(50);
    expect(asked.every((s) => s.delay !== undefined)).toBe(true);
    const last = asked.at(-1)!.delay!;
    // a repair comes ~300 ms (+ the node's 15 ms reordering wait) after its gap: minus the
    // 130 ms a frame may be late without a freeze, ~190 ms; the maximum is libwebrtc's default
    expect(last.minMs).toBeGreaterThanOrEqual(170);
    expect(last.minMs).toBeLessThanOrEqual(250);
    expect(last.maxMs).toBe(10_000);
    const session = n.node.rooms.session(caseId, viewer.sessionId) as SubscriberSession;
    expect(session.quality?.playoutDelayMs).toBe(last.minMs);
    console.info(
      `playout delay: first asked ${Math.round(firstAsked!.at - start)} ms into the video, ` +
        `min ${last.minMs} ms after ${sent.retransmitsSent} repairs of 300 ms`,
    );
  });

  it('asks nothing of a viewer while the uplink needs no repair, nor by default', async () => {
    const clean = await node({ maxPlayoutDelayMs: 250 });
    const viewer = await view(clean.n, clean.caseId, clean.staff);
    const publisher = await publish(clean.n, clean.caseId, clean.buyer, undefined);
    await waitFor('video at the viewer', () => viewer.seen.length > 0);
    await sleep(2000);
    publisher.stopSending();
    expect(viewer.seen.length).toBeGreaterThan(100);
    expect(viewer.seen.filter((s) => s.delay !== undefined)).toEqual([]);

    const off = await node();
    const offViewer = await view(off.n, off.caseId, off.staff);
    const lossy = await publish(off.n, off.caseId, off.buyer, {
      dropRate: 0.06,
      repairDelayMs: 300,
    });
    await waitFor('video at the viewer', () => offViewer.seen.length > 0);
    await sleep(2000);
    lossy.stopSending();
    expect(lossy.results().retransmitsSent).toBeGreaterThanOrEqual(5);
    expect(offViewer.seen.filter((s) => s.delay !== undefined)).toEqual([]);
  });
});
