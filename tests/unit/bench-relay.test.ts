import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/bench/profiles.ts';
import {
  packetKind,
  parseCandidates,
  pickCandidate,
  RelayHub,
  replaceCandidates,
  stunInfo,
  type UdpRelay,
  videoPayloadTypes,
} from '../../src/bench/relay/index.ts';
import type { RelayTap } from '../../src/bench/relay/UdpRelay.ts';
import { dgramState, nativeUdp } from '../../src/node/media/nativeUdp.ts';
import { sleep } from '../helpers/wait.ts';

const NODE_ANSWER = [
  'v=0',
  'o=- 1 0 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=candidate:a 1 udp 2116026367 192.0.2.2 51544 typ host',
  'a=candidate:b 1 udp 2116026367 fd00::2 39832 typ host',
  'a=candidate:c 1 udp 2116026367 127.0.0.1 48756 typ host',
  'a=candidate:d 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active',
  'a=candidate:e 1 udp 2116026367 3f0c9b1e.local 5000 typ host',
  'a=end-of-candidates',
  'a=mid:0',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=rtpmap:111 opus/48000/2',
  'm=application 0 UDP/DTLS/SCTP webrtc-datachannel',
  'a=mid:2',
  '',
].join('\r\n');

describe('relay SDP rewriting', () => {
  it('picks one UDP IPv4 candidate, loopback first, never TCP, IPv6 or mDNS', () => {
    expect(parseCandidates(NODE_ANSWER)).toHaveLength(5);
    expect(pickCandidate(NODE_ANSWER)).toMatchObject({ address: '127.0.0.1', port: 48756 });
    expect(pickCandidate(NODE_ANSWER, '192.0.2.2')).toMatchObject({
      address: '192.0.2.2',
      port: 51544,
    });
    expect(pickCandidate('v=0\r\na=candidate:x 1 udp 1 fd00::2 1 typ host\r\n')).toBeUndefined();
  });

  it('replaces every candidate with the relay socket in every live media section', () => {
    const out = replaceCandidates(NODE_ANSWER, '127.0.0.1', 40000);
    expect(parseCandidates(out)).toEqual([
      {
        foundation: '1',
        component: 1,
        transport: 'udp',
        priority: 2130706431,
        address: '127.0.0.1',
        port: 40000,
        type: 'host',
      },
      {
        foundation: '1',
        component: 1,
        transport: 'udp',
        priority: 2130706431,
        address: '127.0.0.1',
        port: 40000,
        type: 'host',
      },
    ]);
    expect(out).toContain('m=video 40000 UDP/TLS/RTP/SAVPF 96 97');
    expect(out).toContain('m=application 0 UDP/DTLS/SCTP'); // rejected stays rejected
    expect(out.match(/^c=IN IP4 127\.0\.0\.1$/gm)).toHaveLength(2);
    expect(out.match(/^a=end-of-candidates$/gm)).toHaveLength(2);
    expect(videoPayloadTypes(out)).toEqual({ media: 96, rtx: 97 });
  });

  it('classifies packets (RFC 7983) and reads STUN transactions', () => {
    const stun = Buffer.alloc(20);
    stun.writeUInt16BE(0x0001, 0);
    stun.writeUInt32BE(0x2112a442, 4);
    stun.fill(7, 8, 20);
    expect(packetKind(stun)).toBe('stun');
    expect(stunInfo(stun)).toEqual({ cls: 'request', txid: '07'.repeat(12) });
    stun.writeUInt16BE(0x0101, 0);
    expect(stunInfo(stun)?.cls).toBe('success');
    expect(packetKind(Buffer.from([22, 254, 253]))).toBe('dtls');
    expect(packetKind(Buffer.from([0x80, 96, 0, 1]))).toBe('rtp');
    expect(packetKind(Buffer.from([0x81, 200, 0, 1]))).toBe('rtcp');
  });
});

interface Echo {
  socket: Socket;
  port: number;
  /** One-way times client -> echo, ms (the client writes its send time into each packet). */
  oneWay: number[];
  bytes: number;
  firstAt?: number;
  lastAt?: number;
}

/**
 * The client's and the echo's sockets, with the relay's own 4 MB receive buffer: a test sends
 * ~800 datagrams in 20 ms, and the relay (up to 64 datagrams per wake-up) may hand them over
 * faster than Node reads a socket (32 per wake-up), so a default buffer can overflow here and
 * lose datagrams that the relay's model delivered.
 */
function bindUdp(): Promise<Socket> {
  return new Promise((resolve) => {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

/** A stand-in for the node: echoes every datagram, answers STUN requests with a success response. */
async function startEcho(): Promise<Echo> {
  const socket = await bindUdp();
  const echo: Echo = { socket, port: socket.address().port, oneWay: [], bytes: 0 };
  socket.on('message', (msg, rinfo) => {
    const now = performance.now();
    if (packetKind(msg) === 'stun') {
      const reply = Buffer.from(msg);
      reply.writeUInt16BE(0x0101, 0);
      socket.send(reply, rinfo.port, rinfo.address);
      return;
    }
    echo.bytes += msg.length;
    echo.firstAt ??= now;
    echo.lastAt = now;
    echo.oneWay.push(now - msg.readDoubleBE(12));
    socket.send(msg, rinfo.port, rinfo.address);
  });
  return echo;
}

/** Medians and percentiles, not maxima: the machine is shared, a busy moment may delay one packet. */
const pct = (v: number[], p: number) =>
  [...v].sort((a, b) => a - b)[Math.floor((p / 100) * (v.length - 1))]!;

describe('UDP relay on loopback', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const o of open.splice(0)) o.close();
  });

  async function setup(buyer: Record<string, unknown>, tap?: RelayTap) {
    const profile = parseProfile({ name: 't', buyer }, 'test');
    const hub = new RelayHub({ profile, seed: 3 });
    open.push(hub);
    const relay = await hub.create('buyer', 'buyer-1', tap);
    const echo = await startEcho();
    open.push(echo.socket);
    const client = await bindUdp();
    open.push(client);
    // the node's answer names the echo socket; the client is told the relay is the node
    const toClient = relay.rewriteNodeSdp(
      NODE_ANSWER.replace('127.0.0.1 48756', `127.0.0.1 ${echo.port}`),
    );
    const towardsNode = pickCandidate(toClient)!;
    expect(towardsNode).toMatchObject({ address: '127.0.0.1', port: relay.clientFacing.port });
    const rtts: number[] = [];
    let back = 0;
    client.on('message', (msg) => {
      if (packetKind(msg) === 'stun') return;
      back++;
      rtts.push(performance.now() - msg.readDoubleBE(12));
    });
    const send = (size: number) => {
      const b = Buffer.alloc(size);
      b[0] = 0x80; // looks like RTP
      b[1] = 96;
      b.writeDoubleBE(performance.now(), 12);
      client.send(b, towardsNode.port, towardsNode.address);
    };
    return { hub, relay, echo, client, send, rtts, back: () => back, towardsNode };
  }

  it("times a packet in when the kernel had it and out when it was sent, though the relay's loop was busy", async () => {
    const seen: { direction: string; phase: string; at: number }[] = [];
    const { relay, echo, client, towardsNode } = await setup({}, (direction, phase, _p, at) =>
      seen.push({ direction, phase, at }),
    );
    const wallNow = () => performance.timeOrigin + performance.now();
    const fd = (dgramState(client)!.handle as { fd: number }).fd;
    const address = nativeUdp!.sockaddr(towardsNode.address, towardsNode.port)!;
    const packet = Buffer.alloc(200);
    packet[0] = 0x80;
    packet[1] = 96;
    const sentAt = wallNow();
    packet.writeDoubleBE(performance.now(), 12);
    expect(nativeUdp!.sendTo(fd, packet, address)).toBe(200);
    const busyUntil = performance.now() + 40;
    while (performance.now() < busyUntil) {
      // the relay's process is stalled for 40 ms with the packet in its socket
    }
    const stallEnd = wallNow();
    for (let i = 0; i < 100 && echo.oneWay.length === 0; i++) await sleep(5);
    expect(echo.oneWay).toHaveLength(1);
    const stats = relay.stats();
    expect(stats.up.packets).toBe(1);
    expect(stats.kernelTimed).toBe(stats.up.packets + stats.down.packets);
    const ingress = seen.find((e) => e.direction === 'up' && e.phase === 'ingress')!;
    const egress = seen.find((e) => e.direction === 'up' && e.phase === 'egress')!;
    // In when the kernel had it, well before the relay's loop was free to read it (on a busy
    // machine this process may lose the core between reading the clock and sending); out after
    // the stall: the stall is on the relay's side of the hop.
    expect(ingress.at).toBeGreaterThanOrEqual(sentAt - 1);
    expect(stallEnd - ingress.at).toBeGreaterThan(20);
    expect(egress.at).toBeGreaterThanOrEqual(stallEnd - 1);
    // and the packet was at the far side as it went out (sent in the call, not after this turn)
    expect(performance.timeOrigin + echo.firstAt! - egress.at).toBeGreaterThanOrEqual(0);
    expect(performance.timeOrigin + echo.firstAt! - egress.at).toBeLessThan(20);
  });

  it('delays each direction by its own model: one-way up ~40 ms, round trip ~100 ms', async () => {
    const { relay, echo, send, rtts } = await setup({
      up: { delay: '40ms' },
      down: { delay: '60ms' },
    });
    for (let i = 0; i < 100; i++) {
      send(200);
      await sleep(3);
    }
    await sleep(150);
    expect(echo.oneWay.length).toBe(100);
    expect(rtts.length).toBe(100);
    expect(pct(echo.oneWay, 50)).toBeGreaterThan(39.5);
    expect(pct(echo.oneWay, 50)).toBeLessThan(42);
    expect(pct(rtts, 50)).toBeGreaterThan(99.5);
    expect(pct(rtts, 50)).toBeLessThan(103);
    const stats = relay.stats();
    expect(stats.up).toMatchObject({ packets: 100, delivered: 100 });
    expect(stats.down).toMatchObject({ packets: 100, delivered: 100 });
    expect(stats.up.kinds.rtp).toBe(100);
  });

  it('drops at the configured rate in one direction only', async () => {
    const { relay, echo, send, back } = await setup({ up: { loss: 0.2 }, down: {} });
    for (let i = 0; i < 1000; i++) {
      send(100);
      if (i % 50 === 0) await sleep(1);
    }
    await sleep(100);
    const up = relay.stats().up;
    expect(up.dropped.random).toBeGreaterThan(150);
    expect(up.dropped.random).toBeLessThan(250);
    expect(echo.oneWay.length).toBe(1000 - up.dropped.random);
    expect(back()).toBe(echo.oneWay.length);
  });

  it('limits the rate to ~2 Mbit/s and tail-drops the overflow', async () => {
    const { relay, echo, send } = await setup({
      up: { rateKbps: 2000, queuePackets: 20 },
      down: {},
    });
    // offer ~4 Mbit/s: 1200 B every 2.4 ms, for ~1 s
    const start = performance.now();
    while (performance.now() - start < 1000) {
      send(1200);
      send(1200);
      await sleep(4.8);
    }
    await sleep(200);
    const kbps = (echo.bytes * 8) / (echo.lastAt! - echo.firstAt!);
    expect(kbps).toBeGreaterThan(1800);
    expect(kbps).toBeLessThan(2200);
    expect(relay.stats().up.dropped.queue).toBeGreaterThan(100);
    // delay stays bounded by the queue: 20 packets × 4.8 ms
    expect(pct(echo.oneWay, 90)).toBeLessThan(20 * 4.8 + 5);
    expect(pct(echo.oneWay, 90)).toBeGreaterThan(20 * 4.8 - 10);
  });

  it('measures STUN round trips through it (client checks go up and their answers come down)', async () => {
    const { relay, client } = await setup({ up: { delay: '25ms' }, down: { delay: '25ms' } });
    const port = relay.clientFacing.port;
    for (let i = 0; i < 5; i++) {
      const req = Buffer.alloc(20);
      req.writeUInt16BE(0x0001, 0);
      req.writeUInt32BE(0x2112a442, 4);
      req.writeUInt32BE(i + 1, 16);
      client.send(req, port, '127.0.0.1');
      await sleep(20);
    }
    await sleep(100);
    const rtts = relay.stats().stunRttMs;
    expect(rtts).toHaveLength(5);
    expect(Math.min(...rtts)).toBeGreaterThan(49.5);
    expect(pct(rtts, 50)).toBeLessThan(54);
  });

  it('keeps the client candidate it learns and counts packets with nowhere to go', async () => {
    const profile = parseProfile({ name: 't' }, 'test');
    const hub = new RelayHub({ profile });
    open.push(hub);
    const relay: UdpRelay = await hub.create('staff', 'staff-1');
    const offer = relay.rewriteClientSdp(NODE_ANSWER);
    expect(pickCandidate(offer)).toMatchObject(relay.nodeFacing);
    expect(() => relay.rewriteNodeSdp('v=0\r\nm=video 9 RTP 96\r\n')).toThrow(
      /relay staff-1: the node's description has no usable UDP IPv4 candidate/,
    );
  });
});
