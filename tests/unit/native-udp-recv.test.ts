/**
 * Datagrams read through the native addon (native/udp_recv.c, src/node/media/nativeUdpRecv.ts)
 * instead of Node's dgram receive path: listeners see the same bytes and `rinfo` as from Node,
 * over IPv4 and IPv6, in order, from several senders; what they keep stays as it was while later
 * datagrams arrive; closing the socket frees its port; a read error hands the socket back to
 * Node; a worker thread that ends while a socket is watched ends cleanly.
 */
import { spawn } from 'node:child_process';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { NATIVE_ADDON_PATH, nativePart } from '../../src/node/media/nativeAddon.ts';
import { dgramState, nativeUdp } from '../../src/node/media/nativeUdp.ts';
import {
  type ArrivalInfo,
  nativeUdpRecv,
  nativeUdpRecvStatus,
  RECV_ROOM,
  receiveDirectly,
  SLAB_BYTES,
  type UdpRecvAddon,
  udpRecvCounts,
} from '../../src/node/media/nativeUdpRecv.ts';

import { socketsClosedAfterEach } from '../helpers/udp.ts';

const open = socketsClosedAfterEach();

interface Arrival {
  data: Buffer;
  rinfo: RemoteInfo;
}

async function bound(type: 'udp4' | 'udp6', address: string, port = 0) {
  const socket = createSocket(type);
  open.push(socket);
  const received: Arrival[] = [];
  socket.on('message', (data, rinfo) => received.push({ data, rinfo }));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return { socket, received, port: socket.address().port };
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/**
 * Bytes that say which datagram they are: RTP's first byte (0x80), `index` in the next four, then
 * a pattern.
 */
function datagram(index: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (index * 31 + i * 7) & 0xff;
  if (size >= 1) b[0] = 0x80;
  if (size >= 5) b.writeUInt32BE(index, 1);
  return b;
}

describe('native UDP receive', () => {
  it('is built and loaded (npm install builds it)', () => {
    expect(nativeUdpRecvStatus()).toEqual({ loaded: true });
    expect(nativeUdpRecv).toBeDefined();
  });

  it('refuses bad arguments with what it takes, and a second stop is harmless', async () => {
    const udp = nativeUdpRecv!;
    const call = (f: () => unknown) => {
      try {
        f();
        return 'no error';
      } catch (err) {
        return `${(err as { code?: string }).code}: ${(err as Error).message}`;
      }
    };
    expect(call(() => udp.recvStart(-1, () => {}))).toBe(
      'ERR_RETURNCAM_NATIVE: recvStart(fd, onReadable[, stamped]): fd must be a descriptor, onReadable a function, stamped a boolean',
    );
    expect(call(() => udp.recvPeer({}))).toBe(
      'ERR_RETURNCAM_NATIVE: recvPeer(watch): watch from recvStart',
    );
    expect(call(() => udp.recvStop({}))).toBe(
      'ERR_RETURNCAM_NATIVE: recvStop(watch): watch from recvStart',
    );
    const { socket } = await bound('udp4', '127.0.0.1');
    const fd = (dgramState(socket)!.handle as { fd: number }).fd;
    expect(call(() => udp.recvStart(fd, () => {}, 1 as unknown as boolean))).toContain(
      'stamped a boolean',
    );
    const watch = udp.recvStart(fd, () => {});
    expect(call(() => udp.recvBatch(watch, Buffer.alloc(8), 9, new Int32Array(3)))).toContain(
      'recvBatch(watch, slab, offset, out[, ages])',
    );
    expect(call(() => udp.recvBatch(watch, Buffer.alloc(8), 0, new Int32Array(2)))).toContain(
      'an Int32Array of at least 3',
    );
    for (const ages of [new Float64Array(1), new Float32Array(8), [0, 0]]) {
      expect(
        call(() =>
          udp.recvBatch(watch, Buffer.alloc(8), 0, new Int32Array(4), ages as Float64Array),
        ),
      ).toBe(
        'ERR_RETURNCAM_NATIVE: recvBatch: ages must be a Float64Array with room for as many datagrams as out',
      );
    }
    expect(call(() => udp.recvRef(watch, 1 as unknown as boolean))).toContain('recvRef(watch, on)');
    expect(call(() => udp.recvStop(watch))).toBe('no error');
    expect(call(() => udp.recvStop(watch))).toBe('no error');
    // a stopped watch reads nothing
    const out = new Int32Array(3);
    expect(udp.recvBatch(watch, Buffer.alloc(RECV_ROOM), 0, out)).toBe(0);
    expect(out[0]).toBe(0);
  });

  it('is left out, saying why, by an addon built by a version without it', () => {
    const older = nativePart<UdpRecvAddon>(
      ['recvStart', 'recvBatch', 'recvPeer', 'recvRef', 'recvStop'],
      { module: { sockaddr: () => undefined, sendTo: () => 0 } },
    );
    expect(older.part).toBeUndefined();
    expect(older.status.reason).toContain(
      `${NATIVE_ADDON_PATH} has no recvStart, recvBatch, recvPeer, recvRef, recvStop`,
    );
    expect(receiveDirectly(createSocket('udp4'), undefined)).toBe(false);
  });

  for (const [type, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    it(`gives listeners the bytes and rinfo Node gives, over ${type}`, async () => {
      const viaNode = await bound(type, address);
      const direct = await bound(type, address);
      expect(receiveDirectly(direct.socket)).toBe(true);
      const from = await bound(type, address);
      const sizes = [0, 1, 12, 1200, 1500, 9000];
      for (const [i, size] of sizes.entries()) {
        from.socket.send(datagram(i, size), viaNode.port, address);
        from.socket.send(datagram(i, size), direct.port, address);
      }
      await until(() => direct.received.length === sizes.length);
      await until(() => viaNode.received.length === sizes.length);
      expect(direct.received.map((r) => r.data)).toEqual(viaNode.received.map((r) => r.data));
      expect(direct.received.map((r) => r.rinfo)).toEqual(viaNode.received.map((r) => r.rinfo));
      expect(direct.received[0]!.rinfo).toEqual({
        address,
        family: type === 'udp4' ? 'IPv4' : 'IPv6',
        port: from.port,
        size: 0,
      });
    });
  }

  it('delivers thousands in order across slabs, and what a listener kept stays as it was', async () => {
    const to = await bound('udp4', '127.0.0.1');
    const before = udpRecvCounts.datagrams;
    expect(receiveDirectly(to.socket)).toBe(true);
    const from = await bound('udp4', '127.0.0.1');
    const sizes: number[] = [];
    let seed = 7;
    for (let i = 0; i < 1500; i++) {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fff_ffff;
      sizes.push(12 + (seed % 1400));
    }
    sizes[700] = 65_507; // the largest UDP datagram: it still fits whole
    // in rounds the socket's receive buffer holds, each read before the next is sent
    for (let start = 0; start < sizes.length; start += 50) {
      for (let i = start; i < Math.min(start + 50, sizes.length); i++) {
        from.socket.send(datagram(i, sizes[i]!), to.port, '127.0.0.1');
      }
      await until(() => to.received.length >= Math.min(start + 50, sizes.length));
    }
    expect(to.received.length).toBe(sizes.length);
    expect(udpRecvCounts.datagrams - before).toBe(sizes.length);
    // every datagram checked once all have arrived: none was overwritten by a later one
    for (const [i, { data }] of to.received.entries()) {
      expect(data.equals(datagram(i, sizes[i]!)), `datagram ${i}`).toBe(true);
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    const slabs = new Set(to.received.map((r) => r.data.buffer));
    expect(slabs.size).toBeGreaterThanOrEqual(Math.ceil(total / SLAB_BYTES));
    // a slab holds many datagrams: far fewer ArrayBuffers than datagrams
    expect(slabs.size).toBeLessThan(Math.ceil(total / (SLAB_BYTES - RECV_ROOM)) + 2);
  });

  it('reads RTP and RTCP into the slab, and gives anything else memory of its own', async () => {
    const to = await bound('udp4', '127.0.0.1');
    expect(receiveDirectly(to.socket)).toBe(true);
    const from = await bound('udp4', '127.0.0.1');
    // STUN (0-3), DTLS (20-63), TURN channel data (64-79), RTP and RTCP (128-191): RFC 7983
    const firsts = [0x00, 0x01, 0x16, 0x40, 0x7f, 0x80, 0x90, 0xc8, 0xbf, 0xc0, 0xff];
    for (const first of firsts)
      from.socket.send(Buffer.from([first, 1, 2, 3]), to.port, '127.0.0.1');
    await until(() => to.received.length === firsts.length);
    const inSlab = to.received.map(({ data }) => data.buffer.byteLength === SLAB_BYTES);
    expect(to.received.map(({ data }) => data[0])).toEqual(firsts);
    expect(inSlab).toEqual(firsts.map((f) => f >= 128 && f < 192));
    for (const { data } of to.received) {
      if (data.buffer.byteLength !== SLAB_BYTES) expect(data.buffer.byteLength).toBe(4);
    }
  });

  it('names each datagram’s own sender when several send to one socket', async () => {
    const to = await bound('udp4', '127.0.0.1');
    expect(receiveDirectly(to.socket)).toBe(true);
    const senders = [
      await bound('udp4', '127.0.0.1'),
      await bound('udp4', '127.0.0.1'),
      await bound('udp4', '127.0.0.1'),
    ];
    const count = 300;
    for (let i = 0; i < count; i++) {
      // runs from one sender, then another, so reads see both repeats and changes
      const sender = senders[Math.floor(i / 3 + i / 7) % senders.length]!;
      const b = Buffer.alloc(9, 0x80);
      b.writeUInt32BE(i, 1);
      b.writeUInt32BE(sender.port, 5);
      sender.socket.send(b, to.port, '127.0.0.1');
      // in rounds the socket's receive buffer holds (~256 small datagrams)
      if (i % 50 === 49) await until(() => to.received.length === i + 1);
    }
    await until(() => to.received.length === count);
    expect(to.received.length).toBe(count);
    for (const { data, rinfo } of to.received) {
      expect(rinfo.port).toBe(data.readUInt32BE(5));
      expect(rinfo.address).toBe('127.0.0.1');
    }
  });

  it('times each arrival by the kernel when asked, however late the event loop reads it', async () => {
    const to = await bound('udp4', '127.0.0.1');
    expect(receiveDirectly(to.socket, undefined, { arrivalTimes: true })).toBe(true);
    const readAt: number[] = [];
    to.socket.on('message', () => readAt.push(performance.now()));
    const from = await bound('udp4', '127.0.0.1');
    const fd = (dgramState(from.socket)!.handle as { fd: number }).fd;
    const address = nativeUdp!.sockaddr('127.0.0.1', to.port)!;
    // Linux turns arrival stamping on for the first socket that asks a moment later (from a work
    // queue); until then a datagram is stamped when it is read. Wait for a stamp from before a
    // busy loop ended.
    for (let tries = 0; ; tries++) {
      const sent = performance.now();
      nativeUdp!.sendTo(fd, datagram(99, 100), address);
      while (performance.now() < sent + 5) {
        // busy
      }
      await until(() => to.received.length > 0);
      const { arrivedAt } = to.received[0]!.rinfo as ArrivalInfo;
      to.received.length = 0;
      readAt.length = 0;
      if (arrivedAt - sent < 2) break;
      expect(tries).toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 10));
    }
    // ten datagrams 6 ms apart, each in the kernel when sendTo returns, while this loop is busy
    const sentAt: number[] = [];
    for (let i = 0; i < 10; i++) {
      sentAt.push(performance.now());
      expect(nativeUdp!.sendTo(fd, datagram(i, 100), address)).toBe(100);
      const until6 = performance.now() + 6;
      while (performance.now() < until6) {
        // the event loop cannot read meanwhile
      }
    }
    await until(() => to.received.length === 10);
    expect(to.received.map(({ data }) => data.readUInt32BE(1))).toEqual([...sentAt.keys()]);
    for (const [i, { rinfo }] of to.received.entries()) {
      const arrival = rinfo as ArrivalInfo;
      expect(arrival.kernelTime).toBe(true);
      // stamped as it was sent, not as it was read (all were read after the last was sent)
      expect(arrival.arrivedAt - sentAt[i]!).toBeGreaterThan(-0.1);
      expect(arrival.arrivedAt - sentAt[i]!).toBeLessThan(5);
      expect(readAt[i]! - sentAt[i]!).toBeGreaterThan(6 * (9 - i));
    }
    expect(readAt[0]! - sentAt[0]!).toBeGreaterThan(54);
  });

  it('frees the port when the socket closes, and delivers nothing after', async () => {
    const to = await bound('udp4', '127.0.0.1');
    expect(receiveDirectly(to.socket)).toBe(true);
    const from = await bound('udp4', '127.0.0.1');
    from.socket.send('before', to.port, '127.0.0.1');
    await until(() => to.received.length === 1);
    const closed = new Promise<void>((resolve) => to.socket.close(resolve));
    from.socket.send('after', to.port, '127.0.0.1');
    await closed;
    // the duplicate descriptor is closed once libuv has closed the watch: the port binds again
    let again: Awaited<ReturnType<typeof bound>> | undefined;
    const deadline = performance.now() + 2000;
    while (!again && performance.now() < deadline) {
      again = await bound('udp4', '127.0.0.1', to.port).catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 10));
    }
    expect(again?.port).toBe(to.port);
    expect(to.received.map((r) => r.data.toString())).toEqual(['before']);
  });

  it('delivers nothing more once a listener has closed the socket', async () => {
    const to = await bound('udp4', '127.0.0.1');
    expect(receiveDirectly(to.socket)).toBe(true);
    to.socket.on('message', () => to.socket.close());
    const from = await bound('udp4', '127.0.0.1');
    // all five wait in the socket, so one wake-up reads them together
    for (let i = 0; i < 5; i++) from.socket.send(datagram(i, 20), to.port, '127.0.0.1');
    await until(() => to.received.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(to.received.length).toBe(1);
  });

  it('hands the socket back to Node when the watch fails, and loses nothing', async () => {
    const udp = nativeUdpRecv!;
    const failing: UdpRecvAddon = {
      recvBatch: udp.recvBatch,
      recvPeer: udp.recvPeer,
      recvRef: udp.recvRef,
      recvStop: udp.recvStop,
      // the first wake-up reports libuv's error, as after POLLERR (the watch then stops)
      recvStart: (fd, onReadable) => {
        let first = true;
        return udp.recvStart(fd, (status) => {
          onReadable(first ? -9 : status);
          first = false;
        });
      },
    };
    const to = await bound('udp4', '127.0.0.1');
    const handedBack = udpRecvCounts.handedBack;
    expect(receiveDirectly(to.socket, failing)).toBe(true);
    const from = await bound('udp4', '127.0.0.1');
    for (let i = 0; i < 3; i++) from.socket.send(`w${i}`, to.port, '127.0.0.1');
    await until(() => to.received.length === 3);
    expect(to.received.map((r) => r.data.toString())).toEqual(['w0', 'w1', 'w2']);
    expect(udpRecvCounts.handedBack - handedBack).toBe(1);
  });

  it('hands the socket back to Node when a read fails, and loses nothing', async () => {
    const udp = nativeUdpRecv!;
    let failures = 1;
    const failing: UdpRecvAddon = {
      recvStart: udp.recvStart,
      recvPeer: udp.recvPeer,
      recvRef: udp.recvRef,
      recvStop: udp.recvStop,
      recvBatch: (watch, slab, offset, out) =>
        failures-- > 0 ? -9 : udp.recvBatch(watch, slab, offset, out),
    };
    const to = await bound('udp4', '127.0.0.1');
    const handedBack = udpRecvCounts.handedBack;
    const read = udpRecvCounts.datagrams;
    expect(receiveDirectly(to.socket, failing)).toBe(true);
    const from = await bound('udp4', '127.0.0.1');
    for (let i = 0; i < 5; i++) from.socket.send(`d${i}`, to.port, '127.0.0.1');
    await until(() => to.received.length === 5);
    expect(to.received.map((r) => r.data.toString())).toEqual(['d0', 'd1', 'd2', 'd3', 'd4']);
    expect(udpRecvCounts.handedBack - handedBack).toBe(1);
    expect(udpRecvCounts.datagrams - read).toBe(0); // all of them through Node
  });

  it('leaves a socket that is not bound, or closed, to Node', async () => {
    const unbound = createSocket('udp4');
    open.push(unbound);
    expect(receiveDirectly(unbound)).toBe(false);
    const { socket } = await bound('udp4', '127.0.0.1');
    socket.close();
    expect(dgramState(socket)?.handle).toBeNull();
    expect(receiveDirectly(socket)).toBe(false);
  });

  it("keeps the process alive while the socket is ref'd, as Node's reading did", async () => {
    const module = fileURLToPath(new URL('../../src/node/media/nativeUdpRecv.ts', import.meta.url));
    /** A process that reads one socket directly and closes it at its first datagram. */
    function child(mode: 'ref' | 'unref' | 'unref-ref') {
      const program = `
        const { createSocket } = await import('node:dgram');
        const { receiveDirectly } = await import(${JSON.stringify(module)});
        const socket = createSocket('udp4');
        socket.bind(0, '127.0.0.1', () => {
          if (!receiveDirectly(socket)) process.exit(3);
          if (${JSON.stringify(mode)} !== 'ref') socket.unref();
          if (${JSON.stringify(mode)} === 'unref-ref') socket.ref();
          socket.on('message', (d) => { console.log('got ' + d); socket.close(); });
          console.log('port ' + socket.address().port);
        });
      `;
      const proc = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', program],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let stdout = '';
      proc.stdout.on('data', (d) => {
        stdout += d;
      });
      const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
      return { proc, exited, stdout: () => stdout };
    }
    const alone = child('unref');
    expect(await alone.exited).toBe(0); // nothing else keeps it: it ends without a datagram
    expect(alone.stdout()).not.toContain('got');
    for (const mode of ['ref', 'unref-ref'] as const) {
      const c = child(mode);
      await until(() => /port \d+/.test(c.stdout()), 10_000);
      const port = Number(/port (\d+)/.exec(c.stdout())![1]);
      await new Promise((r) => setTimeout(r, 300));
      expect(c.proc.exitCode, mode).toBeNull(); // still waiting for its datagram
      const from = await bound('udp4', '127.0.0.1');
      from.socket.send('hi', port, '127.0.0.1');
      expect(await c.exited).toBe(0);
      expect(c.stdout()).toContain('got hi');
    }
  });

  it('lets a worker thread end, or be terminated, while it watches a socket', async () => {
    // plain JavaScript in the worker: the addon itself, as nativeUdpRecv.ts drives it
    const source = `
      const { createSocket } = require('node:dgram');
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addon);
      const socket = createSocket('udp4');
      socket.bind(0, '127.0.0.1', () => {
        const state = socket[Object.getOwnPropertySymbols(socket).find((k) => k.description === 'state symbol')];
        const slab = Buffer.alloc(256 * 1024);
        const out = new Int32Array(66);
        const watch = addon.recvStart(state.handle.fd, () => {
          addon.recvBatch(watch, slab, 0, out);
          parentPort.postMessage({ got: slab.subarray(0, out[2]).toString() });
          if (workerData.end === 'exit') process.exit(0);
        });
        state.handle.recvStop();
        parentPort.postMessage({ port: socket.address().port });
      });
    `;
    for (const end of ['exit', 'terminate'] as const) {
      const worker = new Worker(source, {
        eval: true,
        workerData: { addon: NATIVE_ADDON_PATH, end },
      });
      const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
      const messages: { port?: number; got?: string }[] = [];
      worker.on('message', (m) => messages.push(m));
      await until(() => messages.some((m) => m.port !== undefined));
      const port = messages.find((m) => m.port !== undefined)!.port!;
      const from = await bound('udp4', '127.0.0.1');
      from.socket.send(`hello ${end}`, port, '127.0.0.1');
      await until(() => messages.some((m) => m.got !== undefined));
      expect(messages.find((m) => m.got !== undefined)?.got).toBe(`hello ${end}`);
      if (end === 'terminate') await worker.terminate();
      expect(await exited).toBe(end === 'exit' ? 0 : 1);
      // both descriptors are closed with the worker: the port binds again here
      const again = await bound('udp4', '127.0.0.1', port);
      expect(again.port).toBe(port);
    }
  });
});
