import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { standardTestMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { waitFor } from '../helpers/wait.ts';

const setupsOf = (sdp: string) => [...sdp.matchAll(/^a=setup:(\w+)/gm)].map((m) => m[1]);

/** Which side of the DTLS handshake the node takes (see `answerAsDtlsServer`). */
describe('DTLS role in the node answers', () => {
  let tn: TestNode;
  let caseId: string;
  let token: string;
  const peers: RTCPeerConnection[] = [];

  beforeAll(async () => {
    tn = await startTestNode();
    const c = tn.node.cases.create({ orderId: 'ORD-ROLE', sku: 'SKU-ROLE', reason: 'damaged' });
    caseId = c.case.id;
    token = c.links.staff.token;
  });

  afterAll(async () => {
    await Promise.all(peers.map((pc) => pc.close()));
    await tn?.close();
  });

  async function offer() {
    const pc = new RTCPeerConnection({ iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'] });
    peers.push(pc);
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    return pc;
  }

  const post = (sdp: string) =>
    fetch(`${tn.url}/whep/${caseId}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: sdp,
    });

  it('is the server when the offer lets it choose, and the handshake completes', async () => {
    const pc = await offer();
    expect(setupsOf(pc.localDescription!.sdp)).toEqual(['actpass']);
    const res = await post(pc.localDescription!.sdp);
    const answer = await res.text();
    expect(res.status, answer).toBe(201);
    expect(setupsOf(answer)).toEqual(['passive']);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await waitFor('the viewer to connect', () => pc.connectionState === 'connected');
    expect(pc.dtlsTransports[0]!.role).toBe('client');
  });

  it('takes a ClientHello that comes before its own side of ICE is connected', async () => {
    // libdatachannel (OpenSSL) as the client sends its ClientHello as soon as its ICE has
    // nominated, often before werift's side counts as connected; a lost ClientHello waits for
    // OpenSSL's resend timer, a second
    const media = await standardTestMedia();
    const c = tn.node.cases.create({ orderId: 'ORD-HELLO', sku: 'SKU-ROLE', reason: 'damaged' });
    const handshakes: number[] = [];
    for (let i = 0; i < 3; i++) {
      let iceAt = 0;
      const sub = tn.node.rooms.onIceConnected.subscribe((info) => {
        if (info.caseId === c.case.id) iceAt = performance.now();
      });
      const publisher = new WhipPublisher({
        baseUrl: tn.url,
        caseId: c.case.id,
        headers: { Authorization: `Bearer ${c.links.buyer.token}` },
        media,
      });
      try {
        await publisher.start(); // resolves once connected (ICE and DTLS)
        handshakes.push(Math.round(performance.now() - iceAt));
      } finally {
        sub.unSubscribe();
        await publisher.close();
      }
    }
    console.info(`DTLS handshake after ICE, ms: ${handshakes.join(', ')}`);
    for (const ms of handshakes) expect(ms).toBeLessThan(600);
  });

  it('is the client when the offer insists on being the server', async () => {
    const pc = await offer();
    const res = await post(pc.localDescription!.sdp.replace('a=setup:actpass', 'a=setup:passive'));
    const answer = await res.text();
    expect(res.status, answer).toBe(201);
    expect(setupsOf(answer)).toEqual(['active']);
  });
});
