/**
 * Datagrams dropped in full socket receive buffers, as the kernel counts them: read from
 * /proc/net/snmp and /proc/net/snmp6, and seen rising when a socket really overflows.
 */
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { udp6RcvbufErrors, udpBufferDrops, udpRcvbufErrors } from '../../src/bench/udpDrops.ts';
import { dgramState, nativeUdp } from '../../src/node/media/nativeUdp.ts';
import { socketsClosedAfterEach } from '../helpers/udp.ts';

const open = socketsClosedAfterEach();

const SNMP = [
  'Ip: Forwarding DefaultTTL InReceives',
  'Ip: 1 64 12345',
  'Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors',
  'Udp: 437884471 26989 2212129 440126677 2212130 0 0 0 0',
  'UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors',
  'UdpLite: 0 0 0 0 7 0 0 0 0',
  '',
].join('\n');

const SNMP6 = [
  'Udp6InDatagrams                 \t2976711',
  'Udp6RcvbufErrors                \t42',
  'Udp6SndbufErrors                \t0',
  '',
].join('\n');

describe('datagrams dropped in full receive buffers', () => {
  it("reads the kernel's RcvbufErrors, by column name, for IPv4 and IPv6", () => {
    expect(udpRcvbufErrors(SNMP)).toBe(2_212_130);
    expect(udp6RcvbufErrors(SNMP6)).toBe(42);
    // another column order: still the one named RcvbufErrors
    expect(udpRcvbufErrors('Udp: RcvbufErrors InDatagrams\nUdp: 5 9\n')).toBe(5);
    expect(udpRcvbufErrors('Ip: 1\nIp: 2\n')).toBeUndefined();
    expect(udpRcvbufErrors('Udp: InDatagrams\nUdp: 3\n')).toBeUndefined();
    expect(udpRcvbufErrors('Udp: RcvbufErrors\nUdp: x\n')).toBeUndefined();
    expect(udp6RcvbufErrors('Udp6InDatagrams 3\n')).toBeUndefined();
  });

  it('rises by the datagrams a socket with a small buffer could not take', async () => {
    const to = createSocket('udp4');
    const from = createSocket('udp4');
    open.push(to, from);
    await new Promise<void>((resolve) => to.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => from.bind(0, '127.0.0.1', resolve));
    to.setRecvBufferSize(4096);
    let received = 0;
    to.on('message', () => received++);
    const before = udpBufferDrops();
    expect(before).toBeTypeOf('number');
    const fd = (dgramState(from)!.handle as { fd: number }).fd;
    const address = nativeUdp!.sockaddr('127.0.0.1', to.address().port)!;
    // 300 in one turn of the loop: nothing reads the small buffer meanwhile
    for (let i = 0; i < 300; i++)
      expect(nativeUdp!.sendTo(fd, Buffer.alloc(100), address)).toBe(100);
    for (let i = 0; i < 40 && received === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    const dropped = udpBufferDrops()! - before!;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(100);
    // the machine's counter: other sockets may add to it, never take away
    expect(dropped).toBeGreaterThanOrEqual(300 - received);
  });
});
