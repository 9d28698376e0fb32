import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCRtpTransceiver } from 'werift';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { isVp8Keyframe, parseVp8Descriptor, vp8KeyframeSize } from '../../src/bench/clients/rtp.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { sleep } from '../helpers/wait.ts';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** What one of the viewer's video tracks received. */
interface Received {
  /** Arrival of each frame's last packet (marker), ms. */
  frames: number[];
  /** Width of each keyframe. */
  keyframeWidths: number[];
  packets: number;
}

function watch(transceiver: RTCRtpTransceiver): Received {
  const got: Received = { frames: [], keyframeWidths: [], packets: 0 };
  transceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      got.packets++;
      const descriptor = parseVp8Descriptor(rtp.payload);
      if (descriptor?.start && descriptor.partitionIndex === 0) {
        const frame = rtp.payload.subarray(descriptor.headerSize);
        if (isVp8Keyframe(frame)) {
          const width = vp8KeyframeSize(frame)?.width;
          if (width !== undefined) got.keyframeWidths.push(width);
        }
      }
      if (rtp.header.marker) got.frames.push(performance.now());
    });
  });
  return got;
}

/**
 * A werift viewer that asks for the backup picture as the staff page does: a second receiving
 * video m-line, after the main video and the audio.
 */
async function viewerWithBackup(t: TestNode, caseId: string, token: string) {
  const pc = new RTCPeerConnection({ iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'] });
  const main = watch(pc.addTransceiver('video', { direction: 'recvonly' }));
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const backup = watch(pc.addTransceiver('video', { direction: 'recvonly' }));
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(`${t.url}/whep/${caseId}`, {
    method: 'POST',
    headers: { ...bearer(token), 'Content-Type': 'application/sdp' },
    body: pc.localDescription!.sdp,
  });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${answer}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const deadline = Date.now() + 10_000;
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) throw new Error('the werift viewer did not connect');
    await sleep(50);
  }
  const sessionId = res.headers.get('Location')!.split('/').pop()!;
  const session = (
    t.node.rooms as unknown as { rooms: Map<string, { find(id: string): unknown }> }
  ).rooms
    .get(caseId)
    ?.find(sessionId) as SubscriberSession | undefined;
  return { answer, main, backup, session, close: () => pc.close() };
}

/** The longest time between two frames in [from, to), ms. */
function longestGap(frames: readonly number[], from: number, to: number): number {
  const inside = frames.filter((at) => at >= from && at < to);
  let longest = 0;
  for (let i = 1; i < inside.length; i++) longest = Math.max(longest, inside[i]! - inside[i - 1]!);
  return longest;
}

describe('the backup picture: a viewer that offers a second video gets the lowest layer on it', () => {
  let server: TestNode;
  let layers: { q: TestMedia; h: TestMedia; f: TestMedia };

  beforeAll(async () => {
    const [q, h, f] = await Promise.all([
      testMedia({ width: 160, height: 90, bitrateKbps: 100 }),
      testMedia({ width: 320, height: 180, bitrateKbps: 300 }),
      testMedia({ width: 640, height: 360, bitrateKbps: 800 }),
    ]);
    layers = { q, h, f };
    server = await startTestNode();
  });

  afterAll(async () => {
    await server?.close();
    nodeDataChannel.cleanup();
  });

  it('sends the top layer on the main video and the lowest on the backup, which goes on while the top layer is gone', async () => {
    const c = server.node.cases.create({ orderId: 'ORD-BAK1', sku: 'SKU-1', reason: 'damaged' });
    const publisher = new WhipPublisher({
      baseUrl: server.url,
      caseId: c.case.id,
      headers: bearer(c.links.buyer.token),
      media: layers.f,
      simulcast: [
        { rid: 'q', videoPath: layers.q.videoPath },
        { rid: 'h', videoPath: layers.h.videoPath },
        { rid: 'f', videoPath: layers.f.videoPath },
      ],
    });
    const viewer = await viewerWithBackup(server, c.case.id, c.links.staff.token);
    try {
      // the node answers both videos as sending
      expect(viewer.answer.match(/^m=video/gm)).toHaveLength(2);
      expect(viewer.answer.match(/^a=sendonly/gm)).toHaveLength(3);
      expect(viewer.session?.backup).toBeDefined();
      await publisher.start();
      await expect.poll(() => viewer.session?.quality?.layer, { timeout: 5_000 }).toBe(2);
      await sleep(1_500);
      // The publisher's encoder drops its top layer for 2 s, as Chrome's does when its uplink
      // estimate no longer carries it.
      const dropAt = performance.now();
      publisher.pauseLayer('f', 2_000);
      await sleep(3_000);
      const mainGap = longestGap(viewer.main.frames, dropAt - 500, dropAt + 2_000);
      const backupGap = longestGap(viewer.backup.frames, dropAt - 500, dropAt + 2_000);
      console.info(
        `backup picture: main keyframes ${viewer.main.keyframeWidths.join(',')}, backup keyframes ` +
          `${viewer.backup.keyframeWidths.join(',')}; around the top layer's drop the longest gap ` +
          `between frames was ${Math.round(mainGap)} ms on the main video, ${Math.round(backupGap)} ms on the backup`,
      );
      expect(new Set(viewer.backup.keyframeWidths)).toEqual(new Set([160]));
      expect(viewer.main.keyframeWidths).toContain(640);
      // The backup never stops: 30 fps of the lowest layer the whole time.
      expect(backupGap).toBeLessThan(150);
      // The main video waits for the lower layer's keyframe after the drop.
      expect(mainGap).toBeGreaterThan(backupGap);
      const backupFrames = viewer.backup.frames.filter((at) => at >= dropAt - 1_000);
      expect(backupFrames.length).toBeGreaterThanOrEqual(0.8 * 30 * 4);
    } finally {
      await Promise.all([publisher.close(), viewer.close()]);
    }
  });

  it('sends nothing on the backup from a publisher with one layer (it would be the same picture)', async () => {
    const c = server.node.cases.create({ orderId: 'ORD-BAK2', sku: 'SKU-2', reason: 'damaged' });
    const publisher = new WhipPublisher({
      baseUrl: server.url,
      caseId: c.case.id,
      headers: bearer(c.links.buyer.token),
      media: layers.h,
    });
    const viewer = await viewerWithBackup(server, c.case.id, c.links.staff.token);
    try {
      await publisher.start();
      await sleep(2_500);
      expect(viewer.main.frames.length).toBeGreaterThan(30);
      expect(viewer.backup.packets).toBe(0);
    } finally {
      await Promise.all([publisher.close(), viewer.close()]);
    }
  });
});
