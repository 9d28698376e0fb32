/**
 * Datagrams sent through the native addon's `sendTo` on a Node dgram socket's own descriptor
 * (native/udp_send.c, src/node/media/nativeUdp.ts): they arrive from that socket, byte for byte,
 * over IPv4 and IPv6; a datagram the kernel refuses for now goes through Node's `send` (queued in
 * libuv), and direct sends wait until Node has sent it; a closed socket is never written to.
 */
import { createSocket } from 'node:dgram';
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  loadNativeAddon,
  NATIVE_ADDON_PATH,
  nativePart,
} from '../../src/node/media/nativeAddon.ts';
import {
  type DatagramTarget,
  dgramState,
  nativeUdp,
  nativeUdpStatus,
  sendDatagram,
  udpSendCounts,
} from '../../src/node/media/nativeUdp.ts';

import { socketsClosedAfterEach } from '../helpers/udp.ts';

const open = socketsClosedAfterEach();

async function bound(type: 'udp4' | 'udp6', address: string) {
  const socket = createSocket(type);
  open.push(socket);
  const received: { data: Buffer; port: number }[] = [];
  socket.on('message', (data, rinfo) => received.push({ data, port: rinfo.port }));
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return { socket, received, port: socket.address().port };
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/** The addon's UDP part, with `sendTo` answers replaced while `refuse` says so. */
function refusing(refuse: () => number | undefined) {
  const udp = nativeUdp!;
  const calls: number[] = [];
  return {
    calls,
    sockaddr: udp.sockaddr,
    sendTo(fd: number, data: Buffer, address: Buffer) {
      calls.push(fd);
      return refuse() ?? udp.sendTo(fd, data, address);
    },
  };
}

describe('native UDP send', () => {
  it('is built and loaded (npm install builds it)', () => {
    expect(nativeUdpStatus()).toEqual({ loaded: true });
  });

  it('is left out, saying why, when turned off or built by a version without it', () => {
    const off = loadNativeAddon({ RETURNCAM_NATIVE: 'off' });
    expect(nativePart(['sendTo'], off)).toEqual({
      part: undefined,
      status: { loaded: false, reason: 'turned off by RETURNCAM_NATIVE=off', turnedOff: true },
    });
    const missing = loadNativeAddon({}, `${NATIVE_ADDON_PATH}.missing`);
    expect(nativePart(['sendTo'], missing).status.reason).toMatch(
      /not built .* `npm run build:native`/,
    );
    // an addon from before the UDP part: its AES-GCM functions still serve, sends go to Node
    const older = { module: { context() {}, seal() {}, open() {}, liveContexts() {} } };
    expect(nativePart(['context', 'seal', 'open', 'liveContexts'], older).status).toEqual({
      loaded: true,
    });
    const udp = nativePart(['sockaddr', 'sendTo'], older);
    expect(udp.part).toBeUndefined();
    expect(udp.status.reason).toMatch(/has no sockaddr, sendTo \(built by an older version\)/);
  });

  it('makes a sockaddr for IPv4 and IPv6 literals only, and refuses a bad port', () => {
    const udp = nativeUdp!;
    const v4 = udp.sockaddr('192.0.2.7', 5004)!;
    expect(v4).toHaveLength(16);
    expect(v4.readUInt16BE(2)).toBe(5004);
    expect([...v4.subarray(4, 8)]).toEqual([192, 0, 2, 7]);
    const v6 = udp.sockaddr('2001:db8::1', 65535)!;
    expect(v6).toHaveLength(28);
    expect(v6.readUInt16BE(2)).toBe(65535);
    expect(v6.subarray(8, 24).toString('hex')).toBe('20010db8000000000000000000000001');
    for (const notLiteral of ['localhost', 'fe80::1%eth0', '1.2.3', '', 'x'.repeat(200)]) {
      expect(udp.sockaddr(notLiteral, 1), notLiteral).toBeUndefined();
    }
    expect(() => udp.sockaddr('127.0.0.1', 65536)).toThrow(/port 0-65535/);
    expect(() => udp.sendTo(-1, Buffer.alloc(1), v4)).toThrow(/fd must be a descriptor/);
    expect(() => udp.sendTo(3, Buffer.alloc(1), Buffer.alloc(5))).toThrow(/from sockaddr/);
  });

  for (const [type, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    it(`sends on the dgram socket's own descriptor (${type}), byte for byte`, async () => {
      const to = await bound(type, address);
      const from = await bound(type, address);
      const target: DatagramTarget = {};
      const before = { ...udpSendCounts };
      const datagrams = [0, 1, 100, 1200, 1472].map((n, i) => Buffer.alloc(n, i + 1));
      // a view into a larger Buffer, as SRTP output is (a slice of Node's pool)
      const slab = Buffer.alloc(64, 0xee);
      slab.fill(9, 10, 30);
      datagrams.push(slab.subarray(10, 30));
      for (const d of datagrams) sendDatagram(from.socket, d, to.port, address, target);
      await until(() => to.received.length === datagrams.length);
      expect(to.received.map((r) => r.data.toString('hex'))).toEqual(
        datagrams.map((d) => d.toString('hex')),
      );
      expect(new Set(to.received.map((r) => r.port))).toEqual(new Set([from.port]));
      expect(udpSendCounts.direct - before.direct).toBe(datagrams.length);
      expect(udpSendCounts.viaNode - before.viaNode).toBe(0);
      expect(target.__sockaddr).toHaveLength(type === 'udp4' ? 16 : 28);
    });
  }

  it('answers with -errno, not an exception, when the kernel refuses', async () => {
    const from = await bound('udp4', '127.0.0.1');
    const fd = dgramState(from.socket)!.handle!.fd!;
    const v6 = nativeUdp!.sockaddr('::1', 9)!;
    expect(nativeUdp!.sendTo(fd, Buffer.alloc(4), v6)).toBeLessThan(0);
  });

  it('hands a datagram the kernel cannot take now to Node, and lets none overtake it', async () => {
    const to = await bound('udp4', '127.0.0.1');
    const from = await bound('udp4', '127.0.0.1');
    let answer: number | undefined = -constants.errno.EAGAIN;
    const udp = refusing(() => answer);
    const target: DatagramTarget = {};
    const before = { ...udpSendCounts };
    sendDatagram(from.socket, Buffer.from('a'), to.port, '127.0.0.1', target, udp);
    answer = undefined;
    // Node has not sent 'a' yet (its lookup answers on the next tick): these go behind it
    sendDatagram(from.socket, Buffer.from('b'), to.port, '127.0.0.1', target, udp);
    sendDatagram(from.socket, Buffer.from('c'), to.port, '127.0.0.1', target, udp);
    expect(udp.calls).toHaveLength(1);
    await until(() => to.received.length === 3);
    await new Promise((r) => setImmediate(r));
    sendDatagram(from.socket, Buffer.from('d'), to.port, '127.0.0.1', target, udp);
    expect(udp.calls).toHaveLength(2);
    await until(() => to.received.length === 4);
    expect(to.received.map((r) => r.data.toString())).toEqual(['a', 'b', 'c', 'd']);
    expect(udpSendCounts.viaNode - before.viaNode).toBe(3);
    expect(udpSendCounts.direct - before.direct).toBe(1);
  });

  it('gives Node a copy of borrowed memory, which the sender reuses before Node sends', async () => {
    const to = await bound('udp4', '127.0.0.1');
    const from = await bound('udp4', '127.0.0.1');
    let answer: number | undefined = -constants.errno.EAGAIN;
    const udp = refusing(() => answer);
    const target: DatagramTarget = {};
    const scratch = Buffer.from('first');
    sendDatagram(from.socket, scratch, to.port, '127.0.0.1', target, udp, true);
    scratch.write('again'); // Node has not sent it yet
    answer = undefined;
    await until(() => to.received.length === 1);
    await new Promise((r) => setImmediate(r));
    // directly: done with the memory before it returns
    sendDatagram(from.socket, scratch, to.port, '127.0.0.1', target, udp, true);
    scratch.write('third');
    await until(() => to.received.length === 2);
    expect(to.received.map((r) => r.data.toString())).toEqual(['first', 'again']);
  });

  it('leaves a socket to Node until it is bound, and then sends on it directly', async () => {
    const to = await bound('udp4', '127.0.0.1');
    const socket = createSocket('udp4'); // Node binds it at its first send
    open.push(socket);
    const udp = refusing(() => undefined);
    const target: DatagramTarget = {};
    sendDatagram(socket, Buffer.from('first'), to.port, '127.0.0.1', target, udp);
    expect(udp.calls).toHaveLength(0);
    await until(() => to.received.length === 1);
    await new Promise((r) => setImmediate(r));
    sendDatagram(socket, Buffer.from('second'), to.port, '127.0.0.1', target, udp);
    expect(udp.calls).toEqual([dgramState(socket)!.handle!.fd]);
    await until(() => to.received.length === 2);
    expect(to.received.map((r) => [r.data.toString(), r.port])).toEqual([
      ['first', socket.address().port],
      ['second', socket.address().port],
    ]);
  });

  it('drops a datagram the kernel refuses for good, as Node does without a callback', async () => {
    const from = await bound('udp4', '127.0.0.1');
    const udp = refusing(() => -constants.errno.EPERM);
    const before = { ...udpSendCounts };
    sendDatagram(from.socket, Buffer.from('x'), 9, '127.0.0.1', {}, udp);
    expect(udpSendCounts.failed - before.failed).toBe(1);
    expect(udpSendCounts.viaNode - before.viaNode).toBe(0);
  });

  it('sends to a host name through Node, and never writes to a closed socket', async () => {
    const to = await bound('udp4', '127.0.0.1');
    const from = await bound('udp4', '127.0.0.1');
    const udp = refusing(() => undefined);
    sendDatagram(from.socket, Buffer.from('by-name'), to.port, 'localhost', {}, udp);
    expect(udp.calls).toHaveLength(0);
    await until(() => to.received.length === 1);
    expect(to.received[0]?.data.toString()).toBe('by-name');
    const target: DatagramTarget = {};
    sendDatagram(from.socket, Buffer.from('open'), to.port, '127.0.0.1', target, udp);
    expect(udp.calls).toHaveLength(1);
    from.socket.close();
    // Node's send refuses a closed socket; the descriptor (maybe reused by now) is not touched
    expect(() =>
      sendDatagram(from.socket, Buffer.from('closed'), to.port, '127.0.0.1', target, udp),
    ).toThrow(/not running/i);
    expect(udp.calls).toHaveLength(1);
  });
});
