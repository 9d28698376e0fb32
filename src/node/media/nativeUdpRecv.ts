/**
 * Datagrams in on the node's UDP sockets through the native addon (`native/udp_recv.c`), instead
 * of Node's `dgram` receive path, which gives every datagram an `ArrayBuffer` of its own (a
 * 64 KiB `malloc` shrunk to the datagram, freed when a young collection sweeps it) and a new
 * address string: at 25 calls × 2 viewers ~2 750 of each a second.
 *
 * The addon watches a duplicate of the socket's descriptor on the same event loop; Node's own
 * reading is stopped (the handle's `recvStop`). Each time the socket is readable, datagrams are
 * read into one shared slab (`SLAB_BYTES`; a new one when less than `RECV_ROOM` is left, so a
 * datagram of any size fits) and emitted as `'message'` with the same `rinfo` fields Node gives,
 * so the socket's listeners see no difference. RTP and RTCP get a `Buffer` view of the slab;
 * anything else (STUN, DTLS) a copy of its own (`ownsSlab`). A slab is never written twice: a
 * view kept by a listener stays as it was, and keeps its slab alive.
 *
 * Closing the socket stops the watch and closes the duplicate. A read error hands the socket back
 * to Node. Optional, with the rest of the addon (`nativeAddon.ts`): without it Node reads.
 *
 * The benchmark's relays read their sockets the same way with `arrivalTimes`, for the kernel's
 * time of each arrival (`SO_TIMESTAMPNS`): a hop timed by it leaves out how long the relay's own
 * event loop took to come to the datagram.
 */
import type { Socket } from 'node:dgram';
import { type NativePartStatus, nativePart } from './nativeAddon.ts';
import { dgramState } from './nativeUdp.ts';

/** A watch on one socket, made by `recvStart`. */
export type RecvWatch = object;

export interface UdpRecvAddon {
  /**
   * Watches a duplicate of `fd`; `onReadable(0)` runs whenever it has datagrams, and a negative
   * status (libuv's error) ends the watch. `stamped`: the kernel notes each datagram's arrival.
   */
  recvStart(fd: number, onReadable: (status: number) => void, stamped?: boolean): RecvWatch;
  /**
   * Reads datagrams into `slab` from `offset` (see `native/udp_recv.c`): 0 or -errno. `ages`, on
   * a stamped watch: how many ms before the call returned the kernel received each one (-1: not
   * known).
   */
  recvBatch(
    watch: RecvWatch,
    slab: Buffer,
    offset: number,
    out: Int32Array,
    ages?: Float64Array,
  ): number;
  /** The last datagram's sender: address, port, family ('IPv4' | 'IPv6'). */
  recvPeer(watch: RecvWatch): [string, number, string];
  /** Whether the watch keeps the event loop alive (a new one does). */
  recvRef(watch: RecvWatch, on: boolean): void;
  /** Stops the watch and closes the duplicate; again is harmless. */
  recvStop(watch: RecvWatch): void;
}

const { part, status } = nativePart<UdpRecvAddon>([
  'recvStart',
  'recvBatch',
  'recvPeer',
  'recvRef',
  'recvStop',
]);

/** The addon's receive part, or undefined when Node reads every socket. */
export const nativeUdpRecv: UdpRecvAddon | undefined = part;

export function nativeUdpRecvStatus(): NativePartStatus {
  return status;
}

/** Bytes per slab. */
export const SLAB_BYTES = 256 * 1024;
/** Room a read needs (`native/udp_recv.c`): more than the largest UDP datagram. */
export const RECV_ROOM = 65_536;
/** Most datagrams read from one socket per wake-up, so a busy socket does not hold the loop. */
export const MOST_PER_WAKE = 64;
const NEW_SENDER = 1;
const EMPTY = 2;

/**
 * Datagrams read directly, sockets read directly, and sockets handed back to Node after a read
 * error. Per thread (a media worker counts its own).
 */
export const udpRecvCounts = { datagrams: 0, sockets: 0, handedBack: 0 };

/** The slab being filled (per thread), and how much of it is taken. */
let slab = Buffer.allocUnsafeSlow(0);
let used = 0;
/** `recvBatch`'s answer: count, flags, lengths. Every call is synchronous, so one is enough. */
const out = new Int32Array(2 + MOST_PER_WAKE);
/** `recvBatch`'s arrival ages, for sockets read with {@link ReceiveOptions.arrivalTimes}. */
const ages = new Float64Array(MOST_PER_WAKE);

export interface ReceiveOptions {
  /**
   * Give each datagram's `rinfo` an `arrivedAt`: when the kernel received it, on the
   * `performance.now()` clock, however long the event loop took to read it. Where the kernel
   * gives no time, the time it was read.
   */
  arrivalTimes?: boolean;
}

/** The `rinfo` of a socket read with {@link ReceiveOptions.arrivalTimes}. */
export interface ArrivalInfo {
  address: string;
  family: string;
  port: number;
  size: number;
  /** performance.now() ms. */
  arrivedAt: number;
  /** Whether the kernel gave `arrivedAt` (else it is when the datagram was read). */
  kernelTime: boolean;
}

/**
 * RTP and RTCP (first byte 128-191, RFC 7983) are read in place: the node's packet path keeps
 * nothing of a datagram past its packet but copies. Anything else (STUN, DTLS, TURN) gets its own
 * memory, as from Node: werift may keep such a message for seconds, which would keep its whole
 * slab alive and, past two young collections, in the old generation until a full collection.
 */
function ownsSlab(bytes: Buffer, at: number, size: number): boolean {
  if (size === 0) return false;
  const first = bytes[at]!;
  return first >= 128 && first < 192;
}

function copyOf(bytes: Buffer, at: number, size: number): Buffer {
  const own = Buffer.allocUnsafeSlow(size);
  bytes.copy(own, 0, at, at + size);
  return own;
}

function rethrow(err: unknown): never {
  throw err;
}

/** Node's UDP handle, as far as this file uses it. */
interface RecvHandle {
  fd?: number;
  recvStart?: () => number;
  recvStop?: () => number;
  hasRef?: () => boolean;
}

/** Why this Node's dgram sockets cannot be read directly, or undefined when they can. */
export function dgramRecvShapeChanged(
  createSocket: (type: 'udp4') => { close(): void },
): string | undefined {
  const probe = createSocket('udp4');
  try {
    const handle = dgramState(probe)?.handle as RecvHandle | null | undefined;
    return handle &&
      typeof handle.fd === 'number' &&
      typeof handle.recvStart === 'function' &&
      typeof handle.recvStop === 'function'
      ? undefined
      : 'dgram sockets no longer keep a handle with fd, recvStart and recvStop at [kStateSymbol].handle';
  } finally {
    probe.close();
  }
}

/**
 * Reads `socket`'s datagrams through the addon from now on (see above); it must be bound. False
 * when it cannot (no addon, a socket not bound or already closed, a handle of another shape), and
 * Node goes on reading it.
 */
export function receiveDirectly(
  socket: Socket,
  udp: UdpRecvAddon | undefined = nativeUdpRecv,
  options: ReceiveOptions = {},
): boolean {
  const stamped = options.arrivalTimes === true;
  if (udp === undefined) return false;
  const state = dgramState(socket);
  const handle = state?.handle as RecvHandle | null | undefined;
  if (
    !handle ||
    typeof handle.fd !== 'number' ||
    handle.fd < 0 ||
    typeof handle.recvStart !== 'function' ||
    typeof handle.recvStop !== 'function'
  ) {
    return false;
  }
  let watch: RecvWatch | undefined;
  let address = '';
  let port = 0;
  let family = '';

  const stop = (): void => {
    const w = watch;
    watch = undefined;
    if (w !== undefined) udp.recvStop(w);
  };
  /** A read or the watch failed: Node reads the socket again, unless it was closed meanwhile. */
  const handBack = (): void => {
    stop();
    udpRecvCounts.handedBack++;
    if (state?.handle === handle) handle.recvStart!();
  };
  const onReadable = (status: number): void => {
    if (status < 0) {
      handBack();
      return;
    }
    let left = MOST_PER_WAKE;
    while (watch !== undefined && left > 0) {
      if (slab.length - used < RECV_ROOM) {
        slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        used = 0;
      }
      const from = slab;
      if (stamped) ages.fill(-1);
      if (udp.recvBatch(watch, from, used, out, stamped ? ages : undefined) < 0) {
        handBack();
        return;
      }
      const readAt = stamped ? performance.now() : 0;
      const count = out[0]!;
      const flags = out[1]!;
      for (let i = 0; i < count; i++) {
        const size = out[2 + i]!;
        const data = ownsSlab(from, used, size)
          ? from.subarray(used, used + size)
          : copyOf(from, used, size);
        used += size;
        if (i === count - 1 && (flags & NEW_SENDER) !== 0) {
          [address, port, family] = udp.recvPeer(watch);
        }
        udpRecvCounts.datagrams++;
        const age = stamped ? ages[i]! : -1;
        const rinfo = stamped
          ? {
              address,
              family,
              port,
              size,
              arrivedAt: readAt - Math.max(0, age),
              kernelTime: age >= 0,
            }
          : { address, family, port, size };
        try {
          socket.emit('message', data, rinfo);
        } catch (err) {
          // as from Node's own receive: uncaught, but the datagrams read with this one still go
          process.nextTick(rethrow, err);
        }
        if (state?.handle !== handle) {
          // a listener closed the socket ('close' comes on the next tick): nothing more for it
          stop();
          return;
        }
      }
      if ((flags & EMPTY) !== 0 || count === 0) return;
      left -= count;
    }
  };

  let started: RecvWatch;
  try {
    started = udp.recvStart(handle.fd, onReadable, stamped);
  } catch {
    return false;
  }
  watch = started;
  if (handle.recvStop() !== 0) {
    stop();
    return false;
  }
  // libuv counts a UDP handle that does not read as inactive: the watch keeps the loop alive in
  // its place, as far as the socket is ref'd
  if (handle.hasRef?.() === false) udp.recvRef(started, false);
  const { ref, unref } = socket;
  socket.ref = function refToo(this: Socket) {
    if (watch !== undefined) udp.recvRef(watch, true);
    return ref.call(this);
  };
  socket.unref = function unrefToo(this: Socket) {
    if (watch !== undefined) udp.recvRef(watch, false);
    return unref.call(this);
  };
  socket.once('close', stop);
  udpRecvCounts.sockets++;
  return true;
}
