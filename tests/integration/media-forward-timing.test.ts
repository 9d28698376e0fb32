/**
 * Through a real node with werift's hot path patched (weriftHotPath.ts): real peers still get
 * every frame, and `/metrics` shows how long the node took to forward their packets.
 */
import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhepSubscriber } from '../../src/bench/clients/WhepSubscriber.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { SAMPLE_EVERY } from '../../src/node/media/forwardTiming.ts';
import { hotPathStatus } from '../../src/node/media/weriftHotPath.ts';
import { standardTestMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { sleep } from '../helpers/wait.ts';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('forwarding time through a real node (returncam_forward_seconds)', () => {
  let media: TestMedia;
  let server: TestNode;

  beforeAll(async () => {
    media = await standardTestMedia();
    server = await startTestNode();
  });

  afterAll(async () => {
    await server?.close();
    nodeDataChannel.cleanup();
  });

  it('forwards every frame to two viewers and reports the sampled forwarding time on /metrics', async () => {
    expect(hotPathStatus().filter((p) => !p.applied)).toEqual([]);
    const c = server.node.cases.create({ orderId: 'ORD-TIMING', sku: 'SKU-1', reason: 'damaged' });
    const base = { baseUrl: server.url, caseId: c.case.id };
    const staff = bearer(c.links.staff.token);
    const viewers = [
      new WhepSubscriber({ ...base, headers: staff }),
      new WhepSubscriber({ ...base, headers: staff }),
    ];
    const publisher = new WhipPublisher({ ...base, headers: bearer(c.links.buyer.token), media });
    try {
      await Promise.all(viewers.map((v) => v.start()));
      await publisher.start();
      await sleep(3000);
      publisher.stopSending();
      await sleep(400);

      const sent = publisher.results();
      for (const viewer of viewers) {
        const got = viewer.results(publisher.sentFrames);
        expect(got.completeFrames).toBeGreaterThanOrEqual(sent.framesSent - 2);
        expect(got.lostPackets).toBe(0);
        expect(got.audioPackets).toBeGreaterThan(0);
      }

      const text = await (await fetch(`${server.url}/metrics`)).text();
      const value = (line: string) => Number(new RegExp(`^${line} (\\S+)$`, 'm').exec(text)?.[1]);
      const count = value('returncam_forward_seconds_count');
      const sum = value('returncam_forward_seconds_sum');
      const within50ms = value('returncam_forward_seconds_bucket\\{le="0.05"\\}');
      const out = server.node.rooms.counters.packetsOut;
      console.info(
        `forward timing: ${count} samples of ${out} packets out, mean ${((sum / count) * 1000).toFixed(3)} ms, ` +
          `${within50ms} within 50 ms`,
      );
      expect(text).toMatch(/^# TYPE returncam_forward_seconds histogram$/m);
      // One in 16 forwarded packets (retransmissions are not timed), from this node's packets.
      expect(count).toBeGreaterThan(out / SAMPLE_EVERY / 2);
      expect(count).toBeLessThanOrEqual(out / SAMPLE_EVERY + 1);
      // Handing a packet to the socket takes more than nothing and far less than a frame.
      expect(sum).toBeGreaterThan(0);
      expect(sum / count).toBeGreaterThan(0.000001);
      expect(sum / count).toBeLessThan(0.02);
      expect(within50ms).toBeGreaterThan(count * 0.9);
    } finally {
      await Promise.all([publisher.close(), ...viewers.map((v) => v.close())]);
    }
  });
});
