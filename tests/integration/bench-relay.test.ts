import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProbe } from '../../src/bench/probe.ts';
import { parseProfile } from '../../src/bench/profiles.ts';
import { runBench } from '../../src/bench/runBench.ts';
import { UserError } from '../../src/core/errors.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

/**
 * The relay sits between the peers in both directions: with a different delay up and down, the
 * round trip is their sum (a proxy that only rewrote the node's candidate would add one of them:
 * the node would reach the client's own candidates directly), every packet the node sees came
 * through the relay, and each direction carries what it should.
 */
describe('impairment relay between real WebRTC peers (node-datachannel <-> werift node)', () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startTestNode();
  });
  afterAll(async () => {
    await node?.close();
    nodeDataChannel.cleanup();
  });

  it('data-channel pings: round trip = up + down delay, loss only where configured', {
    timeout: 30_000,
  }, async () => {
    const direct = await runProbe({
      nodeUrl: node.url,
      token: node.node.adminToken,
      count: 40,
      intervalMs: 10,
    });
    expect(direct.path).toBe('direct');
    expect(direct.rttMs!.p50).toBeLessThan(20);
    expect(direct.lossRatio).toBe(0);

    const profile = parseProfile(
      { name: 'asym', buyer: { up: { delay: '40ms', loss: 0.1 }, down: { delay: '60ms' } } },
      'test',
    );
    const via = await runProbe({
      nodeUrl: node.url,
      token: node.node.adminToken,
      count: 200,
      intervalMs: 10,
      through: { profile, leg: 'buyer', seed: 5 },
    });
    console.info(
      `probe through the relay: rtt p50 ${via.rttMs!.p50.toFixed(1)} min ${via.rttMs!.min.toFixed(1)} max ${via.rttMs!.max.toFixed(1)} ms, loss ${(via.lossRatio * 100).toFixed(1)} %, ` +
        `up ${JSON.stringify(via.relay!.up.kinds)} dropped ${via.relay!.up.dropped.random}, down ${JSON.stringify(via.relay!.down.kinds)}, ICE check rtt ${via.relay!.stunRttMs?.p50.toFixed(1)} ms`,
    );
    // 40 ms up + 60 ms down; never less (the delay is a floor), a little more for the hops and
    // for event-loop lag when the rest of the suite loads both cores (~101.6 ms p50 when idle)
    expect(via.rttMs!.min).toBeGreaterThanOrEqual(100);
    expect(via.rttMs!.p50).toBeLessThan(120);
    expect(via.relay!.stunRttMs!.p50).toBeGreaterThanOrEqual(100);
    expect(via.relay!.stunRttMs!.p50).toBeLessThan(120);
    // 10 % of pings lost going up, none coming down
    expect(via.lossRatio).toBeGreaterThan(0.04);
    expect(via.lossRatio).toBeLessThan(0.17);
    expect(via.relay!.down.dropped.random).toBe(0);
    // DTLS (SCTP inside) and ICE crossed the relay both ways
    for (const dir of [via.relay!.up, via.relay!.down]) {
      expect(dir.kinds.stun!).toBeGreaterThan(0);
      expect(dir.kinds.dtls!).toBeGreaterThan(150);
      expect(dir.noRoute).toBe(0);
    }
  });

  it('refuses a probe without the admin token', async () => {
    await expect(runProbe({ nodeUrl: node.url, token: 'wrong', count: 1 })).rejects.toThrow(
      UserError,
    );
    await expect(runProbe({ nodeUrl: node.url, token: 'wrong', count: 1 })).rejects.toThrow(
      /refused the probe \(401\): the admin token is wrong/,
    );
  });

  it('media: every packet the node receives and sends crossed the relays, in both directions', {
    timeout: 40_000,
  }, async () => {
    const before = { ...node.node.rooms.counters };
    const profile = parseProfile(
      {
        name: 'both-ways',
        buyer: { up: { delay: '30ms' }, down: { delay: '20ms' } },
        staff: { up: { delay: '15ms' }, down: { delay: '25ms', loss: 0.05 } },
      },
      'test',
    );
    const result = await runBench({
      profile,
      sessions: 1,
      durationMs: 5000,
      warmupMs: 1000,
      node: { kind: 'remote', url: node.url, token: node.node.adminToken },
      seed: 11,
    });
    const after = node.node.rooms.counters;
    const n = result.network;
    console.info(
      `media through the relays: buyer up ${JSON.stringify(n['buyer.up'].kinds)}, buyer down ${JSON.stringify(n['buyer.down'].kinds)}, ` +
        `staff up ${JSON.stringify(n['staff.up'].kinds)}, staff down ${JSON.stringify(n['staff.down'].kinds)}; ` +
        `node in ${after.packetsIn - before.packetsIn}, out ${after.packetsOut - before.packetsOut}, resent ${after.retransmits - before.retransmits}; transit p50 ${result.transit!.p50.toFixed(1)} ms`,
    );
    // the buyer's media went up through its relay, and the node's feedback came down through it
    expect(n['buyer.up'].kinds.rtp!).toBeGreaterThan(300);
    expect(n['buyer.down'].kinds.rtcp!).toBeGreaterThan(0);
    // every RTP packet the node received is one the buyer relay delivered (the buyer's candidates
    // were never reachable directly)
    const nodeIn = after.packetsIn - before.packetsIn;
    expect(nodeIn).toBeGreaterThan(300);
    expect(nodeIn).toBeLessThanOrEqual(n['buyer.up'].kinds.rtp!);
    expect(nodeIn).toBeGreaterThanOrEqual(n['buyer.up'].kinds.rtp! - 5);
    // staff: media came down (with 5 % lost), NACKs went up and the repairs came down again
    expect(n['staff.down'].kinds.rtp!).toBeGreaterThanOrEqual(after.packetsOut - before.packetsOut);
    expect(n['staff.down'].dropped.random).toBeGreaterThan(0);
    expect(n['staff.up'].kinds.rtcp!).toBeGreaterThan(0);
    expect(result.repair.retransmitsReceived).toBeGreaterThan(0);
    expect(result.frames.received / result.frames.sent).toBeGreaterThan(0.95);
    // a frame crosses 30 ms up and 25 ms down at least
    expect(result.transit!.min).toBeGreaterThanOrEqual(55);
    // ICE checks measured each leg's round trip through its relay
    expect(result.rttMs.buyer!.p50).toBeGreaterThanOrEqual(50);
    expect(result.rttMs.staff!.p50).toBeGreaterThanOrEqual(40);
  });
});
