import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { errorMessage } from '../../core/errors.ts';
import type { LegName, NetworkProfile } from '../profiles.ts';
import { Scheduler } from './Scheduler.ts';
import { type RelayDelivery, type RelayTap, UdpRelay } from './UdpRelay.ts';

export interface RelayHubOptions {
  profile: Pick<NetworkProfile, 'buyer' | 'staff'>;
  /** Seed of every relay's randomness (each relay derives its own). */
  seed?: number;
  /** Host of the node, when it is not on this machine: the node-facing sockets bind every address. */
  remoteNodeHost?: string;
  /** A deliver callback threw (a bug): reported here. */
  onError?: (err: unknown) => void;
}

/** The local address this machine uses to reach `host` (no packet is sent). */
export async function localAddressTowards(host: string): Promise<string> {
  const { address } = await lookup(host, { family: 4 });
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, address, () => resolve());
    });
    return socket.address().address;
  } catch (err) {
    throw new Error(`cannot find a local address towards ${host}: ${errorMessage(err)}`);
  } finally {
    socket.close();
  }
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}

/**
 * Every relay of one benchmark: one scheduler (one timer) for all of them, relays made per client
 * with the profile's up/down model of that client's leg, one clock start for all outages.
 */
export class RelayHub {
  readonly scheduler: Scheduler<RelayDelivery>;
  private readonly relays: UdpRelay[] = [];
  private nodeAdvertise: string | undefined;
  private count = 0;
  private closed = false;

  constructor(private readonly options: RelayHubOptions) {
    this.scheduler = new Scheduler<RelayDelivery>({
      deliver: (d) => d.relay.deliver(d),
      onError: options.onError,
    });
  }

  get all(): readonly UdpRelay[] {
    return this.relays;
  }

  /** A new relay for a client on `leg`, its sockets bound. */
  async create(leg: LegName, name: string, tap?: RelayTap): Promise<UdpRelay> {
    if (this.closed) throw new Error('relay hub is closed');
    const remote = this.options.remoteNodeHost;
    const isRemote = remote !== undefined && !isLoopbackHost(remote);
    if (isRemote && !this.nodeAdvertise) this.nodeAdvertise = await localAddressTowards(remote);
    const spec = this.options.profile[leg];
    const relay = new UdpRelay({
      name,
      up: spec.up,
      down: spec.down,
      seed: (this.options.seed ?? 1) * 1000 + this.count++,
      scheduler: this.scheduler,
      nodeBindAddress: isRemote ? '0.0.0.0' : '127.0.0.1',
      nodeAdvertiseAddress: isRemote ? this.nodeAdvertise : undefined,
      preferNodeAddress: remote,
      tap,
    });
    await relay.open();
    this.relays.push(relay);
    return relay;
  }

  /** Starts every relay's outage clock (performance.now() time base). */
  start(epoch: number): void {
    for (const r of this.relays) r.start(epoch);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.close();
    for (const r of this.relays) r.close();
  }
}
