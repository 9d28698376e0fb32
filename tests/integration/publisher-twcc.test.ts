import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  useAbsSendTime as absSendTimeExtension,
  MediaStreamTrack,
  useSdesMid as midExtension,
  useNACK as nackFeedback,
  useOPUS as opusCodec,
  usePLI as pliFeedback,
  RTCPeerConnection,
  RtpHeader,
  RtpPacket,
  useREMB as rembFeedback,
  useTransportWideCC as transportCcExtension,
  useTWCC as transportCcFeedback,
  useVP8 as vp8Codec,
} from 'werift';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { decodeFeedback, isTransportFeedback, splitCompound } from '../helpers/twcc.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/** A werift peer that offers what Chrome offers for congestion control: transport-cc everywhere. */
function chromeLikePeer(): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    codecs: {
      audio: [opusCodec()],
      video: [
        vp8Codec({
          rtcpFeedback: [nackFeedback(), pliFeedback(), rembFeedback(), transportCcFeedback()],
        }),
      ],
    },
    headerExtensions: {
      audio: [midExtension(), transportCcExtension()],
      video: [midExtension(), absSendTimeExtension(), transportCcExtension()],
    },
  });
}

/** The m-section of `kind` in an SDP. */
function section(sdp: string, kind: 'audio' | 'video'): string {
  const parts = sdp.split(/\r?\n(?=m=)/);
  const found = parts.find((p) => p.startsWith(`m=${kind}`));
  if (!found) throw new Error(`SDP has no ${kind} section`);
  return found;
}

describe('congestion feedback on the publisher leg, through a real node', () => {
  let tn: TestNode;
  const peers: RTCPeerConnection[] = [];

  beforeAll(async () => {
    tn = await startTestNode({
      media: { maxBitrateKbps: { buyer: 900, staff: 700 } },
      recording: { enabled: false },
    });
  });

  afterEach(async () => {
    await Promise.all(peers.splice(0).map((pc) => pc.close()));
  });

  afterAll(async () => {
    await tn?.close();
  });

  async function post(kind: 'whip' | 'whep', token: string, caseId: string, sdp: string) {
    const res = await fetch(`${tn.url}/${kind}/${caseId}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: sdp,
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return res.text();
  }

  it('a WHIP answer negotiates transport-cc, caps video at the role ceiling and asks Opus for FEC and DTX; every packet is reported once', async () => {
    const c = tn.node.cases.create({ orderId: 'ORD-TWCC', sku: 'SKU-1', reason: 'damaged' });
    const pc = chromeLikePeer();
    peers.push(pc);
    const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), {
      direction: 'sendonly',
    });
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), {
      direction: 'sendonly',
    });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await post('whip', c.links.buyer.token, c.case.id, pc.localDescription!.sdp);

    const v = section(answer, 'video');
    const a = section(answer, 'audio');
    expect(v).toMatch(/\r\nb=AS:900\r\nb=TIAS:900000\r\n/);
    expect(a).not.toMatch(/\r\nb=/);
    expect(v).toMatch(/a=rtcp-fb:\d+ transport-cc/);
    expect(v).toMatch(
      /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/,
    );
    expect(a).toMatch(
      /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/,
    );
    const opusPt = /a=rtpmap:(\d+) opus\/48000/i.exec(a)?.[1];
    const fmtp = new RegExp(`a=fmtp:${opusPt} (.*)`).exec(a)?.[1] ?? '';
    expect(fmtp.split(';')).toEqual(expect.arrayContaining(['useinbandfec=1', 'usedtx=1']));

    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await waitFor('the publisher to connect', () => pc.connectionState === 'connected');
    // Every RTCP transport feedback packet the publisher receives, as bytes off the wire (after
    // SRTCP), well-formed or not.
    const raw: Uint8Array[] = [];
    const srtcp = (pc.dtlsTransports[0] as unknown as { srtcp: { decrypt: (d: Buffer) => Buffer } })
      .srtcp;
    const decrypt = srtcp.decrypt.bind(srtcp);
    srtcp.decrypt = (data) => {
      const plain = decrypt(data);
      for (const packet of splitCompound(plain)) {
        if (isTransportFeedback(packet)) raw.push(Uint8Array.from(packet));
      }
      return plain;
    };

    // 150 video and 30 audio packets, interleaved, about 4 ms apart: one transport-wide sequence.
    const firstSeq = (pc.dtlsTransports[0]!.transportSequenceNumber + 1) & 0xffff;
    let sent = 0;
    for (let i = 0; i < 150; i++) {
      const header = new RtpHeader({ payloadType: 96, sequenceNumber: i, timestamp: i * 3000 });
      await video.sender.sendRtp(new RtpPacket(header, Buffer.alloc(900, i)));
      sent++;
      if (i % 5 === 0) {
        const h = new RtpHeader({ payloadType: 111, sequenceNumber: i, timestamp: i * 960 });
        await audio.sender.sendRtp(new RtpPacket(h, Buffer.alloc(80, i)));
        sent++;
      }
      await sleep(4);
    }
    await sleep(300);

    // Feedback comes from one generator only (consecutive packet counts), decodes strictly, and
    // names every packet as received exactly once: loopback loses nothing.
    const feedback = raw.map((bytes) => decodeFeedback(bytes));
    expect(feedback.length).toBeGreaterThan(5);
    feedback.forEach((fb, i) => {
      expect(fb.fbCount).toBe((feedback[0]!.fbCount + i) & 0xff);
    });
    const reported = new Map<number, number | null>();
    for (const fb of feedback) {
      for (const [seq, at] of fb.arrivals) {
        expect(reported.has(seq), `seq ${seq} reported twice`).toBe(false);
        reported.set(seq, at);
      }
    }
    for (let k = 0; k < sent; k++) {
      const seq = (firstSeq + k) & 0xffff;
      expect(reported.get(seq), `seq ${seq}`).toEqual(expect.any(Number));
    }
    const ssrcs = [video.sender.ssrc, audio.sender.ssrc];
    for (const fb of feedback) expect(ssrcs).toContain(fb.mediaSsrc);
  });

  it("the staff role's ceiling applies to staff publishers", async () => {
    const c = tn.node.cases.create({ orderId: 'ORD-TWCC-2', sku: 'SKU-2', reason: 'damaged' });
    const pc = chromeLikePeer();
    peers.push(pc);
    pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await post('whip', c.links.staff.token, c.case.id, pc.localDescription!.sdp);
    expect(section(answer, 'video')).toMatch(/\r\nb=AS:700\r\nb=TIAS:700000\r\n/);
  });

  it('a WHEP answer keeps transport-cc and the ceiling off', async () => {
    const c = tn.node.cases.create({ orderId: 'ORD-TWCC-3', sku: 'SKU-3', reason: 'damaged' });
    const pc = chromeLikePeer();
    peers.push(pc);
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    expect(pc.localDescription!.sdp).toMatch(/transport-cc/);
    const answer = await post('whep', c.links.staff.token, c.case.id, pc.localDescription!.sdp);
    expect(answer).not.toMatch(/transport-cc|transport-wide-cc/);
    expect(answer).not.toMatch(/\r\nb=(AS|TIAS):/);
  });
});
