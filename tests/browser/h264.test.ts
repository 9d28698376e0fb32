import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hasChromium,
  launchBrowser,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { decode } from '../helpers/recordingMedia.ts';

warnIfNoChromium();

/**
 * Phones often encode H.264 in hardware, so the node must forward it as well as VP8: a Chromium
 * publisher restricted to H.264 over WHIP, a Chromium viewer restricted to H.264 over WHEP.
 */
describe.skipIf(!hasChromium)(
  'H.264 through the node and into its recording (real Chromium on both sides)',
  () => {
    let t: TestNode;
    let browser: TestBrowser;

    beforeAll(async () => {
      t = await startTestNode();
      browser = await launchBrowser();
    });
    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    it('publishes H.264 over WHIP, a viewer decodes it over WHEP, and the recording decodes', async () => {
      const c = t.node.cases.create({ orderId: 'ORD-H264', sku: 'SKU-1', reason: 'damaged' });
      // 127.0.0.1 is a secure context, so getUserMedia works on any page of the node
      const publisher = browser.page;
      const viewer = await browser.context.newPage();
      await publisher.goto(`${t.url}/healthz`);
      await viewer.goto(`${t.url}/healthz`);

      const negotiate = `
      async function negotiate(pc, url, token) {
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((r) => {
          if (pc.iceGatheringState === 'complete') return r();
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
        });
        const res = await fetch(url, {
          method: 'POST',
          headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/sdp' },
          body: pc.localDescription.sdp,
        });
        if (res.status !== 201) throw new Error(url + ': ' + res.status + ' ' + (await res.text()));
        await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
        window.sessionUrl = res.headers.get('Location');
      }
      const h264 = RTCRtpReceiver.getCapabilities('video').codecs.filter(
        (c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''),
      );`;

      await publisher.evaluate(
        `(async () => { ${negotiate}
        const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } });
        const pc = new RTCPeerConnection();
        const tr = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' });
        tr.setCodecPreferences(h264);
        window.pc = pc;
        await negotiate(pc, '/whip/${c.case.id}', '${c.links.buyer.token}');
      })()`,
      );
      await viewer.evaluate(
        `(async () => { ${negotiate}
        const pc = new RTCPeerConnection();
        const tr = pc.addTransceiver('video', { direction: 'recvonly' });
        tr.setCodecPreferences(h264);
        window.pc = pc;
        await negotiate(pc, '/whep/${c.case.id}', '${c.links.staff.token}');
      })()`,
      );

      const inbound = () =>
        viewer.evaluate(async () => {
          const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
          const stats: Record<string, unknown>[] = [];
          (await pc.getStats()).forEach((s) => {
            stats.push(s);
          });
          const rtp = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
          const codec = stats.find((s) => s.type === 'codec' && s.id === rtp?.codecId);
          return {
            frames: (rtp?.framesDecoded as number) ?? 0,
            width: rtp?.frameWidth as number,
            codec: codec?.mimeType as string,
          };
        });
      const deadline = Date.now() + 15_000;
      let seen = await inbound();
      while (seen.frames < 60 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        seen = await inbound();
      }
      expect(seen.codec).toBe('video/H264');
      expect(seen.frames).toBeGreaterThanOrEqual(60);
      expect(seen.width).toBeGreaterThan(0);
      await viewer.close();

      // The node recorded Chromium's H.264 as it arrived: end the publisher and decode the file.
      await publisher.evaluate(`fetch(window.sessionUrl, {
      method: 'DELETE',
      headers: { Authorization: 'Bearer ${c.links.buyer.token}' },
    }).then(() => window.pc.close())`);
      let recs = t.node.recordings.list({ caseId: c.case.id });
      const until = Date.now() + 15_000;
      while ((!recs.length || recs.some((r) => r.status === 'recording')) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 250));
        recs = t.node.recordings.list({ caseId: c.case.id });
      }
      expect(recs).toHaveLength(1);
      const d = await decode(join(t.dataDir, recs[0]!.path));
      expect(d.errors).toBe('');
      expect(d.videoFrames).toBeGreaterThanOrEqual(60);
    });
  },
);
