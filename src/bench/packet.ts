/**
 * `bench packet`: what one RTP packet costs on the node's SRTP path, in isolation. Seals (the
 * node → viewer direction: header serialised, payload encrypted, tag appended) and opens (viewer
 * ← publisher: header parsed, rollover state, decryption, an `RtpPacket`) AES-128-GCM packets of
 * a video and an audio size, once through the native addon (`nativeGcm.ts`) and once through the
 * JavaScript path (a Node cipher per packet), in alternating passes in one process. Then the
 * send of one video-sized datagram, through Node's `dgram` `send` (its lookup replaced, as the
 * node's sockets have it) and through the addon's `sendto` (`nativeUdp.ts`), to a loopback socket
 * (where the kernel delivers within the send, so the system call is most of either figure). Then
 * the receive: bursts of datagrams waiting in a loopback socket, read and handed to a `'message'`
 * listener by Node's `dgram` and by the addon (`nativeUdpRecv.ts`), from the moment the burst is
 * in the socket until the listener has the last of it (the wake-up included, which both share).
 */
import { createSocket, type Socket } from 'node:dgram';
import { ProtectionProfileAeadAes128Gcm, RtpHeader, type RtpPacket, SrtpSession } from 'werift';
import { nativeGcmStatus } from '../node/media/nativeGcm.ts';
import { type DatagramTarget, nativeUdp, sendDatagram } from '../node/media/nativeUdp.ts';
import { receiveDirectly } from '../node/media/nativeUdpRecv.ts';
// werift as the node sets it up (the SRTP rollover fix and every hot-path patch), not bare
import '../node/media/werift.ts';
import { decryptRtpPacket, replaceLookup, setNativeGcm } from '../node/media/weriftHotPath.ts';
import { percentile } from './stats.ts';

export interface PacketBenchOptions {
  /** Packets per pass (default 20 000; each is kept encrypted for the open passes). */
  packets?: number;
  /** Passes per path and size; the median pass is reported (default 7). */
  passes?: number;
}

export interface PacketPathFigures {
  /** µs per packet, median pass. */
  sealUs: number;
  openUs: number;
}

export interface PacketBenchRow {
  payloadBytes: number;
  javascript: PacketPathFigures;
  /** Undefined when the addon is not built. */
  native?: PacketPathFigures;
}

/** One datagram out, µs, median pass. */
export interface UdpSendFigures {
  payloadBytes: number;
  dgramUs: number;
  /** Undefined when the addon (or its UDP part) is not built. */
  nativeUs?: number;
}

/** One datagram in, µs, median pass. */
export interface UdpRecvFigures {
  payloadBytes: number;
  /** Datagrams waiting in the socket at each wake-up. */
  burst: number;
  dgramUs: number;
  /** Undefined when the addon (or its receive part) is not built. */
  nativeUs?: number;
}

export interface PacketBenchResult {
  version: 1;
  kind: 'packet';
  startedAt: string;
  node: string;
  packets: number;
  passes: number;
  native: { loaded: boolean; reason?: string };
  rows: PacketBenchRow[];
  /** Absent in results saved before the send was measured. */
  udp?: UdpSendFigures;
  /** Absent in results saved before the receive was measured. */
  udpRecv?: UdpRecvFigures;
}

const KEYS = {
  localMasterKey: Buffer.alloc(16, 0x5a),
  localMasterSalt: Buffer.alloc(12, 0x3c),
  remoteMasterKey: Buffer.alloc(16, 0x5a),
  remoteMasterSalt: Buffer.alloc(12, 0x3c),
};

interface Cipher {
  encryptRtp(header: RtpHeader, payload: Buffer, roc: number): Buffer;
}

type RemoteContext = Parameters<typeof decryptRtpPacket>[0];

function session(): SrtpSession {
  return new SrtpSession({
    keys: KEYS,
    profile: ProtectionProfileAeadAes128Gcm,
  } as ConstructorParameters<typeof SrtpSession>[0]);
}

/** µs per packet of one pass of `run` over `n` packets. */
function pass(n: number, run: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) run(i);
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

export async function runPacketBench(options: PacketBenchOptions = {}): Promise<PacketBenchResult> {
  const result = runSrtpBench(options);
  result.udp = await runUdpSendBench(result.packets, result.passes);
  result.udpRecv = await runUdpRecvBench(result.packets, result.passes);
  return result;
}

function bound(): Promise<Socket> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  });
}

async function runUdpSendBench(datagrams: number, passes: number): Promise<UdpSendFigures> {
  const payloadBytes = 1100;
  const data = Buffer.alloc(payloadBytes, 0xa5);
  const receiver = await bound();
  const sender = await bound().catch((err) => {
    receiver.close();
    throw err;
  });
  try {
    // nothing listens: what does not fit its small buffer the kernel drops, without slowing the
    // sender
    receiver.setRecvBufferSize(4096);
    replaceLookup(sender as never);
    const port = receiver.address().port;
    const target: DatagramTarget = {};
    const paths = nativeUdp ? (['dgram', 'native'] as const) : (['dgram'] as const);
    const times = { dgram: [] as number[], native: [] as number[] };
    for (let p = 0; p < passes; p++) {
      for (const path of paths) {
        times[path].push(
          path === 'dgram'
            ? pass(datagrams, () => sender.send(data, port, '127.0.0.1'))
            : pass(datagrams, () => sendDatagram(sender, data, port, '127.0.0.1', target)),
        );
        // let the receiver's loop drain between passes
        await new Promise((r) => setImmediate(r));
      }
    }
    return {
      payloadBytes,
      dgramUs: percentile(times.dgram, 50),
      ...(nativeUdp ? { nativeUs: percentile(times.native, 50) } : {}),
    };
  } finally {
    receiver.close();
    sender.close();
  }
}

async function runUdpRecvBench(datagrams: number, passes: number): Promise<UdpRecvFigures> {
  const payloadBytes = 1100;
  // what a socket's default receive buffer holds of this size, with room to spare
  const burst = 32;
  // first byte 0xa5: RTP's range, which the addon reads in place (nativeUdpRecv.ts)
  const data = Buffer.alloc(payloadBytes, 0xa5);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) sockets.push(await bound());
    const [sender, viaNode, direct] = sockets as [Socket, Socket, Socket];
    const paths = receiveDirectly(direct) ? (['dgram', 'native'] as const) : (['dgram'] as const);
    const receivers = { dgram: viaNode, native: direct };
    const targets: Record<string, DatagramTarget> = { dgram: {}, native: {} };
    let got = 0;
    let whenAll: (() => void) | undefined;
    const count = () => {
      if (++got === burst) whenAll?.();
    };
    viaNode.on('message', count);
    direct.on('message', count);
    const times = { dgram: [] as number[], native: [] as number[] };
    const bursts = Math.max(1, Math.round(datagrams / burst));
    for (let p = 0; p < passes; p++) {
      for (const path of paths) {
        const port = receivers[path].address().port;
        const target = targets[path]!;
        let ns = 0n;
        for (let b = 0; b < bursts; b++) {
          got = 0;
          const all = new Promise<void>((resolve) => {
            whenAll = resolve;
          });
          // on loopback each datagram is in the socket when its send returns
          for (let i = 0; i < burst; i++) sendDatagram(sender, data, port, '127.0.0.1', target);
          const t0 = process.hrtime.bigint();
          await all;
          ns += process.hrtime.bigint() - t0;
        }
        times[path].push(Number(ns) / 1000 / (bursts * burst));
      }
    }
    return {
      payloadBytes,
      burst,
      dgramUs: percentile(times.dgram, 50),
      ...(paths.length === 2 ? { nativeUs: percentile(times.native, 50) } : {}),
    };
  } finally {
    for (const s of sockets) s.close();
  }
}

function runSrtpBench(options: PacketBenchOptions): PacketBenchResult {
  const packets = options.packets ?? 20_000;
  const passes = options.passes ?? 7;
  const status = nativeGcmStatus();
  const nativeOn = setNativeGcm(true);
  const rows: PacketBenchRow[] = [];
  try {
    for (const payloadBytes of [1100, 120]) {
      const payload = Buffer.alloc(payloadBytes, 0xa5);
      const sender = session();
      const cipher = (sender as unknown as { localContext: { cipher: Cipher } }).localContext
        .cipher;
      const headers = Array.from(
        { length: 256 },
        (_, i) =>
          new RtpHeader({
            version: 2,
            payloadType: 96,
            sequenceNumber: i,
            timestamp: i * 3000,
            ssrc: 0x1234,
            marker: i % 8 === 7,
            extension: true,
            extensions: [{ id: 4, payload: Buffer.from([i & 0xff]) }],
          }),
      );
      // Opened in order, as from a publisher: one packet per sequence number (a receiver's
      // rollover state would take a repeated number for a replay).
      const wire = Array.from({ length: packets }, (_, i) => {
        const h = headers[i & 255]!;
        return sender.encrypt(payload, new RtpHeader({ ...h, sequenceNumber: i & 0xffff }));
      });
      const paths = nativeOn ? [false, true] : [false];
      const times = new Map<boolean, { seal: number[]; open: number[] }>(
        paths.map((p) => [p, { seal: [], open: [] }]),
      );
      const sink: (Buffer | RtpPacket)[] = [];
      for (let p = 0; p < passes; p++) {
        for (const native of paths) {
          setNativeGcm(native);
          const t = times.get(native)!;
          t.seal.push(
            pass(packets, (i) => {
              sink[i & 7] = cipher.encryptRtp(headers[i & 255]!, payload, 0);
            }),
          );
          // a fresh receiver per pass: its rollover state starts again at the first number;
          // fresh datagrams too, as it decrypts in place
          const context = (session() as unknown as { remoteContext: RemoteContext }).remoteContext;
          const datagrams = wire.map((w) => Buffer.from(w));
          t.open.push(
            pass(packets, (i) => {
              sink[i & 7] = decryptRtpPacket(context, datagrams[i]!);
            }),
          );
        }
      }
      const figures = (native: boolean): PacketPathFigures => {
        const t = times.get(native)!;
        return { sealUs: percentile(t.seal, 50), openUs: percentile(t.open, 50) };
      };
      rows.push({
        payloadBytes,
        javascript: figures(false),
        ...(nativeOn ? { native: figures(true) } : {}),
      });
    }
  } finally {
    setNativeGcm(true);
  }
  return {
    version: 1,
    kind: 'packet',
    startedAt: new Date().toISOString(),
    node: process.version,
    packets,
    passes,
    native: status,
    rows,
  };
}

export function renderPacketText(r: PacketBenchResult): string {
  const lines = [
    `SRTP AES-128-GCM per packet, µs (median of ${r.passes} passes of ${r.packets} packets, Node ${r.node})`,
    '',
    'payload   seal: JS   native   ratio   open: JS   native   ratio',
  ];
  const f = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(2));
  for (const row of r.rows) {
    const n = row.native;
    const ratio = (a: number, b: number | undefined) =>
      b === undefined ? '—' : `${(a / b).toFixed(1)}×`;
    lines.push(
      [
        `${row.payloadBytes} B`.padEnd(10),
        f(row.javascript.sealUs).padStart(8),
        f(n?.sealUs).padStart(8),
        ratio(row.javascript.sealUs, n?.sealUs).padStart(7),
        f(row.javascript.openUs).padStart(10),
        f(n?.openUs).padStart(8),
        ratio(row.javascript.openUs, n?.openUs).padStart(7),
      ].join(' '),
    );
  }
  const paths = (u: { dgramUs: number; nativeUs?: number }) =>
    `dgram ${f(u.dgramUs)}, native ${f(u.nativeUs)}${u.nativeUs ? ` (${(u.dgramUs / u.nativeUs).toFixed(2)}×)` : ''}`;
  if (r.udp) {
    lines.push(
      '',
      `UDP send of one ${r.udp.payloadBytes}-byte datagram to loopback, µs: ${paths(r.udp)}`,
    );
  }
  if (r.udpRecv) {
    const u = r.udpRecv;
    lines.push(
      `UDP receive of one ${u.payloadBytes}-byte datagram (bursts of ${u.burst}), µs: ${paths(u)}`,
    );
  }
  if (!r.native.loaded) lines.push('', `native addon: ${r.native.reason}`);
  return lines.join('\n');
}
