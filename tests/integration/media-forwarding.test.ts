import nodeDataChannel from 'node-datachannel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { collectResults } from '../../src/bench/clients/index.ts';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { deleteSession } from '../../src/bench/clients/signalling.ts';
import { WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import type { SessionEndedInfo, SessionInfo } from '../../src/node/media/types.ts';
import { standardTestMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { sleep, waitFor as waitUntil } from '../helpers/wait.ts';

/** This file's waits give up after 5 s. */
const waitFor = (what: string, check: () => boolean, timeoutMs = 5000) =>
  waitUntil(what, check, timeoutMs);

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Node's own UDP sockets (werift's ICE sockets; node-datachannel's are native and not counted). */
const udpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A real case on the node, with its buyer and staff credentials as headers. */
function newCase(t: TestNode) {
  const c = t.node.cases.create({ orderId: 'ORD-MEDIA', sku: 'SKU-1', reason: 'damaged' });
  return {
    caseId: c.case.id,
    buyer: bearer(c.links.buyer.token),
    staff: bearer(c.links.staff.token),
  };
}

describe('media forwarding through a real node: node-datachannel clients over WHIP/WHEP', () => {
  let media: TestMedia;
  let server: TestNode;
  const ended: SessionEndedInfo[] = [];
  const iceConnected: SessionInfo[] = [];
  const clients: { close(options?: { skipDelete?: boolean }): Promise<void> }[] = [];
  /** Registers a client so that a failing test still closes it. */
  const track = <T extends { close(options?: { skipDelete?: boolean }): Promise<void> }>(
    client: T,
  ): T => {
    clients.push(client);
    return client;
  };

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  beforeAll(async () => {
    media = await standardTestMedia();
    server = await startTestNode();
    server.node.rooms.onSessionEnded.subscribe((info) => ended.push(info));
    server.node.rooms.onIceConnected.subscribe((info) => iceConnected.push(info));
  });

  afterAll(async () => {
    await server?.close();
    nodeDataChannel.cleanup();
  });

  it('forwards 6 s of VP8 + Opus, repairs 5 % loss by NACK from its own history, refuses bad SDP meanwhile', async () => {
    const c = newCase(server);
    const other = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    // Subscribers first: the staff viewers wait for the buyer's media.
    const clean = track(new WhepSubscriber({ ...base, headers: c.staff }));
    const lossy = track(new WhepSubscriber({ ...base, headers: c.staff, dropRate: 0.05, seed: 7 }));
    await Promise.all([clean.start(), lossy.start()]);
    const publisher = track(new WhipPublisher({ ...base, headers: c.buyer, media, loop: false }));
    await publisher.start();
    expect(server.node.rooms.stats()).toEqual({ rooms: 1, publishers: 1, subscribers: 2 });
    expect(iceConnected.map((i) => `${i.role}:${i.direction}`).sort()).toEqual([
      'buyer:publish',
      'staff:subscribe',
      'staff:subscribe',
    ]);

    // While that room streams, bad offers get a 400 that says what is wrong, and leave nothing behind.
    const badOffers: [string, ReturnType<typeof newCase>, string, RegExp][] = [
      ['whip', other, 'not an sdp', /must start with v=0/],
      [
        'whip',
        other,
        'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n',
        /SDP offer has no audio or video m-line/,
      ],
      ['whep', c, '', /must start with v=0/],
    ];
    for (const [kind, target, sdp, message] of badOffers) {
      const res = await fetch(`${server.url}/${kind}/${target.caseId}`, {
        method: 'POST',
        headers: { ...target.buyer, 'Content-Type': 'application/sdp' },
        body: sdp,
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('bad_sdp');
      expect(body.error.message).toMatch(message);
    }
    expect(server.node.rooms.stats()).toEqual({ rooms: 1, publishers: 1, subscribers: 2 });

    await publisher.finished;
    await sleep(500); // last frames and their retransmissions
    const sent = publisher.results();
    const got = collectResults(publisher, clean);
    const repaired = lossy.results(publisher.sentFrames);
    const counters = { ...server.node.rooms.counters };
    console.info(
      `forwarding: sent ${sent.framesSent} frames/${sent.videoPacketsSent} pkts; ` +
        `clean ${got.completeFrames}/${got.framesReceived} complete, audio ${got.audioPackets}/${sent.audioPacketsSent}, ` +
        `latency p50 ${percentile(got.frameLatenciesMs!, 50).toFixed(1)} ms p99 ${percentile(got.frameLatenciesMs!, 99).toFixed(1)} ms; ` +
        `lossy ${repaired.completeFrames} complete, dropped ${repaired.droppedPackets}, nacks ${repaired.nacksSent}, ` +
        `retransmits ${repaired.retransmitsReceived} (rtx ${repaired.rtxPackets}), lost ${repaired.lostPackets}; ` +
        `node ${JSON.stringify(counters)}`,
    );

    expect(sent.framesSent).toBeGreaterThanOrEqual(175);
    // Clean viewer: every frame, all the audio.
    expect(got.completeFrames / sent.framesSent).toBeGreaterThanOrEqual(0.95);
    expect(got.audioPackets / sent.audioPacketsSent).toBeGreaterThanOrEqual(0.95);
    expect(got.nacksSent).toBe(0);
    expect(percentile(got.frameLatenciesMs!, 50)).toBeLessThan(50);
    // Lossy viewer: 5 % of packets dropped on arrival, repaired from the node's history.
    expect(repaired.droppedPackets).toBeGreaterThan(0);
    expect(repaired.completeFrames / sent.framesSent).toBeGreaterThanOrEqual(0.95);
    expect(repaired.retransmitsReceived).toBeGreaterThan(0);
    // Every gap the viewer saw was filled (a drop at the very end of the stream leaves no gap).
    expect(repaired.lostPackets).toBe(0);
    expect(repaired.audioPackets).toBeGreaterThan(0);
    expect(counters.nacksFromSubscribers).toBeGreaterThan(0);
    expect(counters.retransmits).toBeGreaterThanOrEqual(repaired.retransmitsReceived);
    // One packet in from the publisher, one out per subscriber.
    expect(counters.packetsOut).toBeGreaterThanOrEqual(counters.packetsIn * 2 - 20);
    // A keyframe was asked of the publisher when it connected and when the viewers joined.
    expect(counters.plisToPublishers).toBeGreaterThan(0);
    // Each viewer negotiated NACK for VP8 and none for Opus: its video leg keeps what it was
    // sent, for the repairs above, and its audio leg keeps nothing it could never be asked for.
    const viewers = iceConnected.filter(
      (i) => i.caseId === c.caseId && i.direction === 'subscribe',
    );
    expect(viewers).toHaveLength(2);
    for (const { sessionId } of viewers) {
      const session = server.node.rooms.session(c.caseId, sessionId) as SubscriberSession;
      expect(session.forwardersOf('video')[0]!.retransmitHistoryBytes).toBeGreaterThan(0);
      expect(session.forwardersOf('audio')[0]!.retransmitHistoryBytes).toBe(0);
    }

    await Promise.all([publisher.close(), clean.close(), lossy.close()]);
    await waitFor('sessions to end', () => server.node.rooms.stats().rooms === 0);
    expect(ended.filter((e) => e.caseId === c.caseId).map((e) => e.reason)).toEqual([
      'closed',
      'closed',
      'closed',
    ]);
    // What support sees: both parties joined and left in the case's timeline, the case moved to
    // inspecting when the buyer's camera arrived, and the node's metrics show the repair work.
    const timeline = server.node.cases.events(c.caseId).map((e) => `${e.type}:${e.data.role}`);
    expect(timeline.filter((e) => e === 'participant.joined:staff')).toHaveLength(2);
    expect(timeline.filter((e) => e === 'participant.joined:buyer')).toHaveLength(1);
    expect(timeline.filter((e) => e.startsWith('participant.left'))).toHaveLength(3);
    const record = server.node.cases.getCase(c.caseId);
    expect(record.status).toBe('inspecting');
    expect(record.firstJoinedAt).toBeGreaterThan(0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(metric('returncam_nacks_received_total')).toBeGreaterThan(0);
    expect(metric('returncam_rtp_packets_out_total')).toBeGreaterThan(
      metric('returncam_rtp_packets_in_total'),
    );
  });

  it('repairs loss on the publisher leg: the node NACKs the publisher and forwards the repair', async () => {
    const c = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    const before = { ...server.node.rooms.counters };
    const viewer = track(new WhepSubscriber({ ...base, headers: c.staff }));
    await viewer.start();
    const publisher = track(
      new WhipPublisher({ ...base, headers: c.buyer, media, dropRate: 0.05, seed: 3 }),
    );
    await publisher.start();
    await sleep(3000);
    publisher.stopSending();
    await sleep(400);

    const sent = publisher.results();
    const got = viewer.results();
    const nacksToPublisher =
      server.node.rooms.counters.nacksToPublishers - before.nacksToPublishers;
    console.info(
      `uplink loss: withheld ${sent.droppedPackets} of ${sent.videoPacketsSent + sent.droppedPackets} pkts, ` +
        `node sent ${nacksToPublisher} NACKs, publisher resent ${sent.retransmitsSent}; ` +
        `viewer ${got.completeFrames}/${sent.framesSent} complete, lost ${got.lostPackets}`,
    );
    expect(sent.droppedPackets).toBeGreaterThan(0);
    expect(nacksToPublisher).toBeGreaterThan(0);
    expect(sent.retransmitsSent).toBeGreaterThan(0);
    expect(got.completeFrames / sent.framesSent).toBeGreaterThanOrEqual(0.95);
  });

  it('brings the buyer video back after an uplink loss burst across the sequence number wrap', async () => {
    // SRTP counts sequence number wraps on both ends without ever sending the count. werift
    // counted one only when the packets either side of it were within 100 of the wrap: after a
    // longer burst across it the node could decrypt nothing more the buyer sent, and the staff
    // never saw video again.
    const c = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    const before = { ...server.node.rooms.counters };
    const viewer = track(new WhepSubscriber({ ...base, headers: c.staff }));
    await viewer.start();
    const publisher = track(
      new WhipPublisher({ ...base, headers: c.buyer, media, firstSequenceNumber: 65_380 }),
    );
    await publisher.start();
    await sleep(600);
    const lastBefore = (publisher.nextVideoSequenceNumber - 1) & 0xffff;
    // every number up to the wrap, and 130 after it: ~4 s of this video
    const firstAfter = 130;
    const lost = 65_535 - lastBefore + firstAfter;
    publisher.loseVideo(lost);
    const lossAt = performance.now();
    const next = () => publisher.nextVideoSequenceNumber;
    while (next() > lastBefore || next() <= firstAfter) await sleep(10);
    const lossMs = performance.now() - lossAt;
    const lossEnd = performance.timeOrigin + performance.now();
    await sleep(3_000);
    const after = viewer.receivedFrames.filter((f) => f.receivedAt >= lossEnd);
    const firstKeyframe = after.find((f) => f.keyframe);
    const lastSecond = after.filter((f) => f.receivedAt >= lossEnd + 2_000);
    const counters = server.node.rooms.counters;
    console.info(
      `uplink lost ${lost} packets, ${lastBefore} → ${firstAfter}, over ${Math.round(lossMs)} ms; ` +
        `viewer: first keyframe after it ` +
        `${firstKeyframe ? `${Math.round(firstKeyframe.receivedAt - lossEnd)} ms` : 'never'}, ` +
        `${after.length} frames in 3 s, ${lastSecond.length} in the last second; node packets in ` +
        `${counters.packetsIn - before.packetsIn}, keyframe requests to the buyer ` +
        `${counters.plisToPublishers - before.plisToPublishers}`,
    );
    // the burst crossed the wrap, and ended more than 100 numbers after it
    expect(lastBefore).toBeGreaterThanOrEqual(65_380);
    expect(firstKeyframe).toBeDefined();
    expect(firstKeyframe!.receivedAt - lossEnd).toBeLessThan(1_000);
    expect(lastSecond.length).toBeGreaterThanOrEqual(25);
  });

  it('on a long uplink round trip, NACKs each lost packet about once per round trip', async () => {
    const c = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    const viewer = track(new WhepSubscriber({ ...base, headers: c.staff }));
    await viewer.start();
    const publisher = track(
      new WhipPublisher({
        ...base,
        headers: c.buyer,
        media,
        dropRate: 0.1,
        seed: 5,
        repairDelayMs: 300,
      }),
    );
    await publisher.start();
    await sleep(3000);
    publisher.stopSending();
    await sleep(700);

    const sent = publisher.results();
    const got = viewer.results();
    const perLoss = sent.packetsNacked / sent.droppedPackets;
    console.info(
      `300 ms uplink repair: withheld ${sent.droppedPackets}, NACKed ${sent.packetsNacked} times ` +
        `(${perLoss.toFixed(2)} per loss), resent ${sent.retransmitsSent}; ` +
        `viewer ${got.completeFrames}/${sent.framesSent} complete, lost ${got.lostPackets}`,
    );
    expect(sent.droppedPackets).toBeGreaterThanOrEqual(5);
    expect(sent.retransmitsSent).toBeGreaterThanOrEqual(sent.droppedPackets * 0.9);
    // werift's own generator asked up to 11 times per loss within 55 ms
    expect(perLoss).toBeLessThan(2);
  });

  it('sends viewers sender reports that map RTP time to the wall clock', async () => {
    const c = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    const viewer = track(new WhepSubscriber({ ...base, headers: c.staff }));
    await viewer.start();
    const publisher = track(new WhipPublisher({ ...base, headers: c.buyer, media }));
    await publisher.start();
    await sleep(4500);
    publisher.stopSending();

    const reports = viewer.senderReports;
    for (const kind of ['audio', 'video'] as const) {
      const ofKind = reports.filter((r) => r.kind === kind);
      const clockRate = kind === 'audio' ? 48000 : 90000;
      // NTP time of the last packet sent before the report vs when the report arrived
      const lag = ofKind.map((r) => Math.round(r.receivedAtMs - r.ntpMs));
      // NTP elapsed between two reports vs RTP elapsed
      const drift = ofKind.slice(1).map((r, i) => {
        const prev = ofKind[i]!;
        const rtpMs = (((r.rtpTimestamp - prev.rtpTimestamp) >>> 0) / clockRate) * 1000;
        return Math.round(r.ntpMs - prev.ntpMs - rtpMs);
      });
      console.info(
        `${kind} sender reports: lag ${lag.join(',')} ms; NTP-RTP drift ${drift.join(',')} ms`,
      );
      expect(ofKind.length).toBeGreaterThanOrEqual(2);
      for (const l of lag) {
        expect(l).toBeGreaterThanOrEqual(-5);
        expect(l).toBeLessThan(100);
      }
      for (const d of drift) expect(Math.abs(d)).toBeLessThan(60);
    }
  });

  it('keeps a viewer receiving when the publisher reconnects (same case and role)', async () => {
    const c = newCase(server);
    const base = { baseUrl: server.url, caseId: c.caseId };
    const viewer = track(new WhepSubscriber({ ...base, headers: c.buyer }));
    await viewer.start();
    const first = track(new WhipPublisher({ ...base, headers: c.staff, media }));
    await first.start();
    await sleep(1500);
    const fromFirst = viewer.results().completeFrames;
    expect(fromFirst).toBeGreaterThan(30);

    // the same link again, as a page does after its network dropped
    const second = track(new WhipPublisher({ ...base, headers: c.staff, media }));
    await second.start();
    // The first publisher's session was replaced and closed by the node.
    await waitFor('the first publisher to be replaced', () =>
      ended.some((e) => e.caseId === base.caseId && e.reason === 'replaced'),
    );
    expect(await deleteSession(first.location!, { ...base, headers: c.staff })).toBe(404);
    await first.close({ skipDelete: true });
    await sleep(2000);
    second.stopSending();
    await sleep(300);

    const switchedAt = second.sentFrames[0]!.sentAt;
    const fromSecond = viewer.receivedFrames.filter((f) => f.receivedAt >= switchedAt).length;
    const result = viewer.results();
    console.info(
      `reconnect: ${fromFirst} frames from the first publisher, ${fromSecond} complete of ` +
        `${second.results().framesSent} sent by the second; viewer nacks ${result.nacksSent}, lost ${result.lostPackets}`,
    );
    expect(fromSecond / second.results().framesSent).toBeGreaterThanOrEqual(0.9);
    // Sequence numbers stayed continuous across the switch: the viewer saw no gap to NACK.
    expect(result.nacksSent).toBe(0);
    expect(result.lostPackets).toBe(0);
    expect(server.node.rooms.stats()).toEqual({ rooms: 1, publishers: 1, subscribers: 1 });
    expect(
      ended.filter((e) => e.caseId === base.caseId).map((e) => `${e.direction}:${e.reason}`),
    ).toEqual(['publish:replaced']);

    await Promise.all([second.close(), viewer.close()]);
    await waitFor('sessions to end', () => server.node.rooms.stats().rooms === 0);
  });

  it('close() ends every session, is idempotent, and refuses new sessions', async () => {
    const socketsBefore = udpSockets();
    const own = await startTestNode();
    try {
      const endedHere: SessionEndedInfo[] = [];
      own.node.rooms.onSessionEnded.subscribe((info) => endedHere.push(info));
      const c = newCase(own);
      const base = { baseUrl: own.url, caseId: c.caseId };
      // Publisher first: the viewer joining later must get a keyframe request sent upstream.
      const publisher = track(new WhipPublisher({ ...base, headers: c.buyer, media }));
      await publisher.start();
      const viewer = track(new WhepSubscriber({ ...base, headers: c.staff }));
      await viewer.start();
      await waitFor('frames to flow', () => viewer.results().completeFrames > 5);
      // One PLI when the publisher connected, one (throttled to 500 ms) when the viewer joined.
      await waitFor(
        'a keyframe request for the new viewer',
        () => own.node.rooms.counters.plisToPublishers >= 2,
      );
      await waitFor('the publisher to see it', () => publisher.results().keyframeRequests >= 2);
      // A viewer's own PLI reaches the publisher too.
      await sleep(600);
      expect(viewer.requestKeyframe()).toBe(true);
      await waitFor(
        'the viewer PLI to be forwarded',
        () => own.node.rooms.counters.plisFromSubscribers === 1,
      );
      await waitFor('the publisher to see it', () => publisher.results().keyframeRequests >= 3);
      expect(udpSockets()).toBeGreaterThan(socketsBefore);

      await Promise.all([own.node.rooms.close(), own.node.rooms.close()]);
      expect(own.node.rooms.stats()).toEqual({ rooms: 0, publishers: 0, subscribers: 0 });
      expect(endedHere.map((e) => e.reason)).toEqual(['shutdown', 'shutdown']);
      // The node's peer connections are really gone: their UDP sockets are closed.
      await waitFor('the node to close its UDP sockets', () => udpSockets() <= socketsBefore);
      const res = await fetch(`${own.url}/whep/${c.caseId}`, {
        method: 'POST',
        headers: { ...c.staff, 'Content-Type': 'application/sdp' },
        body: 'v=0\r\n',
      });
      expect(res.status).toBe(503);

      await Promise.all([
        publisher.close({ skipDelete: true }),
        viewer.close({ skipDelete: true }),
      ]);
    } finally {
      await own.close();
    }
  });
});
