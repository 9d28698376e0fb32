import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { errorMessage } from '../../core/errors.ts';
import { type DatagramTarget, sendDatagram } from '../../node/media/nativeUdp.ts';
import { type ArrivalInfo, receiveDirectly } from '../../node/media/nativeUdpRecv.ts';
import { type DirectionStats, LinkModel } from '../impairment.ts';
import type { DirectionSpec } from '../profiles.ts';
import { PACKET_KINDS, type PacketKind, packetKind, stunInfo } from './packets.ts';
import type { Scheduler } from './Scheduler.ts';
import {
  pickCandidate,
  replaceCandidates,
  type SdpCandidate,
  type VideoPayloadTypes,
  videoPayloadTypes,
} from './sdp.ts';

/** `up`: client -> node; `down`: node -> client. */
export type RelayDirection = 'up' | 'down';

/** A packet waiting in the shared scheduler. */
export interface RelayDelivery {
  relay: UdpRelay;
  direction: RelayDirection;
  packet: Buffer;
  target: Endpoint;
  /** Transaction id of a STUN response whose request passed through here. */
  stunTxid?: string;
}

/**
 * Called for every packet as it enters (`ingress`) and leaves (`egress`) the relay. An ingress is
 * timed when the kernel received the datagram (with the native addon; else when the relay read
 * it), an egress when it was handed to the kernel: the harness's own event loop stalls fall
 * between the two, on the relay's side of the hop, not on whatever is across it.
 */
export type RelayTap = (
  direction: RelayDirection,
  phase: 'ingress' | 'egress',
  packet: Buffer,
  /** Wall clock, ms since the epoch (sub-ms). */
  at: number,
) => void;

export interface UdpRelayOptions {
  /** For messages: `buyer-1`, `staff-3`. */
  name: string;
  up: DirectionSpec;
  down: DirectionSpec;
  seed?: number;
  scheduler: Scheduler<RelayDelivery>;
  /** Address the client-facing socket binds to and is advertised as (default 127.0.0.1). */
  clientAddress?: string;
  /** Address the node-facing socket binds to (default 127.0.0.1; 0.0.0.0 for a remote node). */
  nodeBindAddress?: string;
  /** Address advertised to the node for the node-facing socket (default `nodeBindAddress`). */
  nodeAdvertiseAddress?: string;
  /** Prefer the node candidate with this address (the node URL's host). */
  preferNodeAddress?: string;
  tap?: RelayTap;
}

/** Where a packet goes; keeps its socket address once made (`sendDatagram`). */
interface Endpoint extends DatagramTarget {
  address: string;
  port: number;
}

export interface RelayDirectionStats extends DirectionStats {
  kinds: Record<PacketKind, number>;
  /** Packets with nowhere to go yet (no address known for the far side). */
  noRoute: number;
}

export interface UdpRelayStats {
  up: RelayDirectionStats;
  down: RelayDirectionStats;
  /** STUN round trips through the relay, ms: client-initiated and node-initiated checks. */
  stunRttMs: number[];
  /** Packets whose arrival the kernel timed (the rest: when the relay read them). */
  kernelTimed: number;
}

const MAX_PENDING_TX = 512;
const MAX_RTT_SAMPLES = 2000;

function wall(t: number): number {
  return performance.timeOrigin + t;
}

function kindCounters(): Record<PacketKind, number> {
  return Object.fromEntries(PACKET_KINDS.map((k) => [k, 0])) as Record<PacketKind, number>;
}

/**
 * A userspace UDP relay for one client (one peer connection), impairing both directions of its
 * leg. It owns two sockets: the client-facing one (advertised to the client as the node's only
 * candidate) and the node-facing one (advertised to the node as the client's only candidate), so
 * every packet either side sends crosses the relay and meets that direction's {@link LinkModel}.
 * Each side is learned like a NAT would: STUN responses go back to whoever sent the request,
 * everything else to the address that last sent DTLS or media (or, before that, anything).
 */
export class UdpRelay {
  readonly name: string;
  readonly up: LinkModel;
  readonly down: LinkModel;
  /** Video payload types of the stream this relay carries, from the descriptions it rewrote. */
  videoPts: VideoPayloadTypes = {};
  private clientSocket: Socket | undefined;
  private nodeSocket: Socket | undefined;
  private clientCandidate: SdpCandidate | undefined;
  private nodeCandidate: SdpCandidate | undefined;
  private clientLast: Endpoint | undefined;
  private clientMedia: Endpoint | undefined;
  private nodeLast: Endpoint | undefined;
  private nodeMedia: Endpoint | undefined;
  /**
   * STUN requests seen, by transaction id: who sent them, from which side, when; a request sent
   * again with the same id gives an ambiguous round trip (Karn's rule) and is not measured.
   */
  private readonly pendingTx = new Map<
    string,
    { from: Endpoint; side: RelayDirection; at: number; resent: boolean }
  >();
  private readonly kinds = { up: kindCounters(), down: kindCounters() };
  private readonly noRoute = { up: 0, down: 0 };
  private readonly rttSamples: number[] = [];
  private kernelTimed = 0;
  private closed = false;

  constructor(private readonly options: UdpRelayOptions) {
    this.name = options.name;
    const seed = options.seed ?? 1;
    this.up = new LinkModel(options.up, seed * 2 + 1);
    this.down = new LinkModel(options.down, seed * 2 + 2);
  }

  /** Binds both sockets. */
  async open(): Promise<void> {
    if (this.clientSocket) throw new Error(`relay ${this.name}: open() may be called once`);
    this.clientSocket = await this.bind(this.options.clientAddress ?? '127.0.0.1', 'up');
    this.nodeSocket = await this.bind(this.options.nodeBindAddress ?? '127.0.0.1', 'down');
  }

  /** The client-facing socket: where the client is told the node is. */
  get clientFacing(): Endpoint {
    const a = this.clientSocket?.address();
    if (!a) throw new Error(`relay ${this.name}: not open`);
    return { address: this.options.clientAddress ?? '127.0.0.1', port: a.port };
  }

  /** The node-facing socket: where the node is told the client is. */
  get nodeFacing(): Endpoint {
    const a = this.nodeSocket?.address();
    if (!a) throw new Error(`relay ${this.name}: not open`);
    const address =
      this.options.nodeAdvertiseAddress ?? this.options.nodeBindAddress ?? '127.0.0.1';
    return { address: address === '0.0.0.0' ? '127.0.0.1' : address, port: a.port };
  }

  /**
   * A description written by the client (its offer, or its answer): remembers the client's
   * candidate and returns the description with the node-facing socket as the only candidate.
   */
  rewriteClientSdp(sdp: string): string {
    this.clientCandidate = pickCandidate(sdp);
    this.learnPayloadTypes(sdp, false);
    const { address, port } = this.nodeFacing;
    return replaceCandidates(sdp, address, port);
  }

  /**
   * A description written by the node (its answer): picks the node candidate to send to and
   * returns the description with the client-facing socket as the only candidate.
   */
  rewriteNodeSdp(sdp: string): string {
    const chosen = pickCandidate(sdp, this.options.preferNodeAddress);
    if (!chosen) {
      throw new Error(
        `relay ${this.name}: the node's description has no usable UDP IPv4 candidate to relay to`,
      );
    }
    this.nodeCandidate = chosen;
    this.learnPayloadTypes(sdp, true);
    const { address, port } = this.clientFacing;
    return replaceCandidates(sdp, address, port);
  }

  /** Starts the outage clocks of both directions (ms, performance.now() time base). */
  start(epoch: number): void {
    this.up.start(epoch);
    this.down.start(epoch);
  }

  stats(): UdpRelayStats {
    return {
      up: { ...this.up.stats, kinds: { ...this.kinds.up }, noRoute: this.noRoute.up },
      down: { ...this.down.stats, kinds: { ...this.kinds.down }, noRoute: this.noRoute.down },
      stunRttMs: [...this.rttSamples],
      kernelTimed: this.kernelTimed,
    };
  }

  /** Sends a packet that left the model (called by the scheduler, on time or late). */
  deliver(d: RelayDelivery): void {
    if (this.closed) return;
    const socket = d.direction === 'up' ? this.nodeSocket : this.clientSocket;
    if (!socket) return;
    const at = performance.now();
    if (d.stunTxid) {
      const pending = this.pendingTx.get(d.stunTxid);
      if (pending) {
        this.pendingTx.delete(d.stunTxid);
        if (!pending.resent && this.rttSamples.length < MAX_RTT_SAMPLES) {
          this.rttSamples.push(at - pending.at);
        }
      }
    }
    // one sendto(2) with the addon, so the packet is in the far side's socket when it returns;
    // Node's send would only send it after this turn of the loop
    sendDatagram(socket, d.packet, d.target.port, d.target.address, d.target);
    this.options.tap?.(d.direction, 'egress', d.packet, wall(at));
  }

  /** Closes both sockets; packets still in flight are dropped. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [this.clientSocket, this.nodeSocket]) {
      try {
        s?.close();
      } catch {
        // already closed
      }
    }
  }

  private learnPayloadTypes(sdp: string, fromNode: boolean): void {
    const pts = videoPayloadTypes(sdp);
    if (pts.media === undefined) return;
    // the node's description is the final word on what it sends; the client's on what it sends
    if (fromNode || this.videoPts.media === undefined) this.videoPts = pts;
  }

  private bind(address: string, direction: RelayDirection): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({
        type: 'udp4',
        recvBufferSize: 4 * 1024 * 1024,
        sendBufferSize: 4 * 1024 * 1024,
      });
      socket.once('error', (err) =>
        reject(new Error(`relay ${this.name}: cannot bind ${address}: ${errorMessage(err)}`)),
      );
      socket.on('message', (msg, rinfo) => this.onPacket(direction, msg, rinfo));
      socket.bind(0, address, () => {
        socket.removeAllListeners('error');
        socket.on('error', () => {
          // ICMP errors from a peer that went away: nothing to do, the model already counted
        });
        // the kernel times each arrival, so a stall of this process is not counted in the hop
        // across the relay (without the addon Node reads the socket and the relay times it)
        receiveDirectly(socket, undefined, { arrivalTimes: true });
        resolve(socket);
      });
    });
  }

  private onPacket(
    direction: RelayDirection,
    packet: Buffer,
    rinfo: RemoteInfo | ArrivalInfo,
  ): void {
    if (this.closed) return;
    let now: number;
    if ('arrivedAt' in rinfo) {
      now = rinfo.arrivedAt;
      if (rinfo.kernelTime) this.kernelTimed++;
    } else {
      now = performance.now();
    }
    const from = this.endpoint(direction, rinfo);
    const kind = packetKind(packet);
    this.kinds[direction][kind]++;
    this.options.tap?.(direction, 'ingress', packet, wall(now));
    let stunTxid: string | undefined;
    let target: Endpoint | undefined;
    if (kind === 'stun') {
      const info = stunInfo(packet);
      if (info?.cls === 'request') {
        if (this.pendingTx.size >= MAX_PENDING_TX) {
          const oldest = this.pendingTx.keys().next().value;
          if (oldest !== undefined) this.pendingTx.delete(oldest);
        }
        const earlier = this.pendingTx.get(info.txid);
        if (earlier) earlier.resent = true;
        else this.pendingTx.set(info.txid, { from, side: direction, at: now, resent: false });
      } else if (info && (info.cls === 'success' || info.cls === 'error')) {
        const pending = this.pendingTx.get(info.txid);
        if (pending && pending.side !== direction) {
          target = pending.from;
          stunTxid = info.txid;
        }
      }
    }
    if (direction === 'up') {
      this.clientLast = from;
      if (kind === 'dtls' || kind === 'rtp' || kind === 'rtcp') this.clientMedia = from;
      target ??= this.nodeMedia ?? this.nodeCandidate ?? this.nodeLast;
    } else {
      this.nodeLast = from;
      if (kind === 'dtls' || kind === 'rtp' || kind === 'rtcp') this.nodeMedia = from;
      target ??= this.clientMedia ?? this.clientLast ?? this.clientCandidate;
    }
    if (!target) {
      this.noRoute[direction]++;
      return;
    }
    const model = direction === 'up' ? this.up : this.down;
    const verdict = model.admit(now, packet.length);
    if (verdict.deliverAt === undefined) return;
    this.options.scheduler.schedule(verdict.deliverAt, {
      relay: this,
      direction,
      packet,
      target,
      stunTxid,
    });
  }

  /** The sender, as the same object while it stays the same (its socket address is kept). */
  private endpoint(direction: RelayDirection, rinfo: { address: string; port: number }): Endpoint {
    const last = direction === 'up' ? this.clientLast : this.nodeLast;
    return last !== undefined && last.port === rinfo.port && last.address === rinfo.address
      ? last
      : { address: rinfo.address, port: rinfo.port };
  }
}
