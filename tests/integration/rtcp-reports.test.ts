import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpReceiver,
  type RTCRtpSender,
  RtcpRrPacket,
  RtcpSrPacket,
  RtpHeader,
  RtpPacket,
} from 'werift';
// the node's werift: its hot-path patches, the RTCP loops among them, are applied at import
import '../../src/node/media/werift.ts';
import { hotPathStatus } from '../../src/node/media/weriftHotPath.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

async function gathered(pc: RTCPeerConnection) {
  await waitFor('ICE gathering', () => pc.iceGatheringState === 'complete');
  return pc.localDescription!;
}

/**
 * Two werift peers on loopback, one sending video to the other: the sender's RTP sender reports
 * (SR + SDES) and the receiver's RTP receiver answers with receiver reports, as a node's legs do.
 */
describe('RTCP reports from the RTP senders and receivers (patched loop)', () => {
  const track = new MediaStreamTrack({ kind: 'video' });
  let publisher: RTCPeerConnection;
  let viewer: RTCPeerConnection;
  let sender: RTCRtpSender;
  let receiver: RTCRtpReceiver;
  const srs: { at: number; packet: RtcpSrPacket }[] = [];
  const rrs: { at: number; packet: RtcpRrPacket }[] = [];
  let sent = 0;
  let sending: ReturnType<typeof setInterval> | undefined;

  beforeAll(async () => {
    publisher = new RTCPeerConnection({ iceAdditionalHostAddresses: ['127.0.0.1'] });
    viewer = new RTCPeerConnection({ iceAdditionalHostAddresses: ['127.0.0.1'] });
    sender = publisher.addTransceiver(track, { direction: 'sendonly' }).sender;
    const gotReceiver = new Promise<RTCRtpReceiver>((resolve) =>
      viewer.onTransceiverAdded.subscribe((t) => resolve(t.receiver)),
    );
    await publisher.setLocalDescription(await publisher.createOffer());
    await viewer.setRemoteDescription(await gathered(publisher));
    await viewer.setLocalDescription(await viewer.createAnswer());
    await publisher.setRemoteDescription(await gathered(viewer));
    receiver = await gotReceiver;
    receiver.onRtcp.subscribe((p) => {
      if (p instanceof RtcpSrPacket) srs.push({ at: performance.now(), packet: p });
    });
    sender.onRtcp.subscribe((p) => {
      if (p instanceof RtcpRrPacket) rrs.push({ at: performance.now(), packet: p });
    });
    await waitFor('the peers to connect', () => publisher.connectionState === 'connected');
    const payloadType = sender.codec!.payloadType;
    let seq = 1000;
    // 50 packets a second
    sending = setInterval(() => {
      const header = new RtpHeader({
        payloadType,
        sequenceNumber: seq++ & 0xffff,
        timestamp: seq * 1800,
        marker: true,
      });
      track.writeRtp(new RtpPacket(header, Buffer.alloc(200, 0x10)));
      sent++;
    }, 20);
  }, 20_000);

  afterAll(async () => {
    clearInterval(sending);
    await Promise.allSettled([publisher?.close(), viewer?.close()]);
  });

  it('runs as patched (werift has the shape it was written against)', () => {
    const loops = hotPathStatus().filter((p) => p.name.endsWith('.runRtcp'));
    expect(loops.map((p) => [p.name, p.applied])).toEqual([
      ['RTCRtpSender.runRtcp', true],
      ['RTCRtpReceiver.runRtcp', true],
    ]);
  });

  it('sends sender reports every 0.5-1.5 s that count what was sent', async () => {
    await waitFor('four sender reports', () => srs.length >= 4, 10_000);
    for (let i = 1; i < srs.length; i++) {
      const gap = srs[i]!.at - srs[i - 1]!.at;
      expect(gap).toBeGreaterThan(450);
      expect(gap).toBeLessThan(1_700);
    }
    let before = 0;
    for (const { packet } of srs) {
      expect(packet.ssrc).toBe(sender.ssrc);
      expect(packet.senderInfo.packetCount).toBeGreaterThanOrEqual(before);
      expect(packet.senderInfo.packetCount).toBeLessThanOrEqual(sent);
      expect(packet.senderInfo.octetCount).toBe(packet.senderInfo.packetCount * 200);
      before = packet.senderInfo.packetCount;
    }
    expect(before).toBeGreaterThan(0);
    // the sender keeps the middle 32 bits of the last report's NTP time for round trips
    const last = srs.at(-1)!.packet.senderInfo.ntpTimestamp;
    expect((sender as unknown as { lastSRtimestamp: number }).lastSRtimestamp).toBe(
      Number((last >> 16n) & 0xffffffffn),
    );
  }, 15_000);

  it('answers with receiver reports on what arrived, with the delay since the last sender report', async () => {
    await waitFor(
      'three receiver reports after a sender report',
      () => {
        const firstSr = srs[0]?.at ?? Number.POSITIVE_INFINITY;
        return rrs.filter((r) => r.at > firstSr + 100).length >= 3;
      },
      10_000,
    );
    for (let i = 1; i < rrs.length; i++) {
      const gap = rrs[i]!.at - rrs[i - 1]!.at;
      expect(gap).toBeGreaterThan(450);
      expect(gap).toBeLessThan(1_700);
    }
    const last = rrs.at(-1)!.packet;
    expect(last.reports).toHaveLength(1);
    const block = last.reports[0]!;
    expect(block.ssrc).toBe(sender.ssrc);
    expect(block.fractionLost).toBe(0);
    expect(block.packetsLost).toBe(0);
    expect(block.highestSequence % 65536).toBeGreaterThan(1000);
    // it echoes a sender report the viewer got, and how long ago (1/65536 s, under 1.5 s)
    expect(block.lsr).not.toBe(0);
    expect(block.dlsr).toBeGreaterThan(0);
    expect(block.dlsr).toBeLessThan(1.6 * 65536);
  }, 15_000);

  it('stops when its sender stops while the connection stays up, and leaves no timer behind', async () => {
    clearInterval(sending);
    sender.stop();
    expect((sender as unknown as { __rtcpTimer?: unknown }).__rtcpTimer).toBeUndefined();
    const srCount = srs.length;
    const rrCount = rrs.length;
    await sleep(2_000);
    expect(srs.length).toBe(srCount);
    // the viewer's receiver still reports over the same connection
    expect(rrs.length).toBeGreaterThan(rrCount);
    await viewer.close();
    expect((receiver as unknown as { __rtcpTimer?: unknown }).__rtcpTimer).toBeUndefined();
  }, 10_000);
});
