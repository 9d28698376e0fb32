/**
 * Datagrams out on the node's UDP sockets through the native addon (`native/udp_send.c`): one
 * `sendto(2)` on the dgram socket's own descriptor. Node's `dgram` `send` makes, per datagram, an
 * argument list, a request object through a C++ constructor, and parses the address string again
 * before its `sendto`; at 25 calls × 2 viewers that is ~5 500 times a second.
 *
 * A datagram the kernel cannot take now (EAGAIN, ENOBUFS) goes to Node's `send`, which queues it
 * in libuv as before, and the socket's datagrams keep going through Node until every one handed to
 * it has gone (else a later one would overtake them). Other errors drop the datagram, as Node's
 * `send` without a callback does.
 *
 * Optional, with the rest of the addon (`nativeAddon.ts`): without it every datagram takes Node's
 * path.
 */
import { constants } from 'node:os';
import { type NativePartStatus, nativePart } from './nativeAddon.ts';

interface UdpAddon {
  /** A sockaddr for an IPv4 or IPv6 literal (no zone index); undefined for anything else. */
  sockaddr(ip: string, port: number): Buffer | undefined;
  /** Bytes sent, or minus the errno. */
  sendTo(fd: number, data: Buffer, address: Buffer): number;
}

const { part, status } = nativePart<UdpAddon>(['sockaddr', 'sendTo']);

/** The addon's UDP part, or undefined when Node's `send` carries every datagram. */
export const nativeUdp: UdpAddon | undefined = part;

export function nativeUdpStatus(): NativePartStatus {
  return status;
}

/** The kernel cannot take the datagram now: Node's `send` queues it instead. */
const TRY_LATER = new Set(
  [constants.errno.EAGAIN, constants.errno.EWOULDBLOCK, constants.errno.ENOBUFS].map((e) => -e),
);

/** Node's UDP handle, as far as this file reads it. */
interface UdpHandle {
  fd?: number;
  lookup?: (address: string, callback: (err: Error | null, ip?: string) => void) => void;
}

/** Node's per-socket state (`kStateSymbol` in lib/internal/dgram.js), if it still looks the same. */
export function dgramState(socket: object): { handle?: UdpHandle | null } | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === 'state symbol');
  return key ? (socket as Record<symbol, { handle?: UdpHandle | null }>)[key] : undefined;
}

/** Why this Node's dgram sockets cannot be sent on directly, or undefined when they can. */
export function dgramFdShapeChanged(
  createSocket: (type: 'udp4') => { close(): void },
): string | undefined {
  const probe = createSocket('udp4');
  try {
    const handle = dgramState(probe)?.handle;
    return handle && typeof handle.fd === 'number'
      ? undefined
      : 'dgram sockets no longer keep a handle with an fd at [kStateSymbol].handle';
  } finally {
    probe.close();
  }
}

export interface DatagramSocket {
  send(data: Buffer, port: number, host: string, callback?: () => void): void;
  /** Per socket: its state, the handle its fd was read from, and Node's sends not yet done. */
  __direct?: DirectState;
}

interface DirectState {
  state: { handle?: UdpHandle | null } | undefined;
  handle: UdpHandle | null | undefined;
  fd: number;
  /**
   * Datagrams handed to Node's `send` whose callback has not run: a lookup or libuv's queue may
   * still hold them, so direct sends wait until none is left.
   */
  pending: number;
  /** Node's `send` callback, made once per socket. */
  done: () => void;
}

/** One remote address (an ICE pair's): its sockaddr, made at the first send (null: not a literal). */
export interface DatagramTarget {
  __sockaddr?: Buffer | null;
}

/**
 * Datagrams the kernel took from a direct send, those it refused (dropped, as Node drops them),
 * and those handed to Node's `send` instead. Per thread (a media worker counts its own).
 */
export const udpSendCounts = { direct: 0, failed: 0, viaNode: 0 };

/**
 * The socket's descriptor, or -1 when it is closed, not bound yet (no descriptor), unknown, or
 * Node still holds datagrams it was handed.
 */
function directFd(socket: DatagramSocket): number {
  const d = directState(socket);
  const handle = d.state?.handle;
  if (!handle || d.pending > 0) return -1; // closed (Node sets the handle to null), or waiting
  if (handle !== d.handle || d.fd < 0) {
    d.handle = handle;
    d.fd = typeof handle.fd === 'number' ? handle.fd : -1;
  }
  return d.fd;
}

function directState(socket: DatagramSocket): DirectState {
  let d = socket.__direct;
  if (d === undefined) {
    const state: DirectState = {
      state: dgramState(socket),
      handle: undefined,
      fd: -1,
      pending: 0,
      done: () => {
        state.pending--;
      },
    };
    d = socket.__direct = state;
  }
  return d;
}

/**
 * Hot path: `data` to `host`:`port` (an IP literal) on `socket`, directly when it can, else
 * through Node's `send` (which throws on a closed socket, as before). A `borrowed` `data` is
 * the caller's scratch memory, reused once this returns: a direct send is done with it by then,
 * and Node's (which sends later) gets a copy.
 */
export function sendDatagram(
  socket: DatagramSocket,
  data: Buffer,
  port: number,
  host: string,
  target: DatagramTarget,
  udp: UdpAddon | undefined = nativeUdp,
  borrowed = false,
): void {
  if (udp !== undefined) {
    let address = target.__sockaddr;
    if (address === undefined) address = target.__sockaddr = udp.sockaddr(host, port) ?? null;
    const fd = address === null ? -1 : directFd(socket);
    if (fd >= 0) {
      const sent = udp.sendTo(fd, data, address!);
      if (sent >= 0) {
        udpSendCounts.direct++;
        return;
      }
      if (!TRY_LATER.has(sent)) {
        udpSendCounts.failed++;
        return;
      }
    }
    const d = directState(socket);
    udpSendCounts.viaNode++;
    d.pending++;
    try {
      socket.send(borrowed ? Buffer.from(data) : data, port, host, d.done);
    } catch (err) {
      d.pending--;
      throw err;
    }
    return;
  }
  udpSendCounts.viaNode++;
  socket.send(borrowed ? Buffer.from(data) : data, port, host);
}
