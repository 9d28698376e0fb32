/**
 * `bench probe`: round trip, jitter and loss to a node, measured with data-channel pings that
 * take the path media would (ICE + DTLS + SCTP over UDP to the node's media candidates). The
 * channel is unordered with no retransmissions, so a lost ping stays lost. Optionally through a
 * relay impaired as a profile's leg, which is how the relay itself is checked.
 */
import { randomBytes } from 'node:crypto';
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { errorMessage, UserError } from '../core/errors.ts';
import { gathered } from './clients/signalling.ts';
import type { LegName, NetworkProfile } from './profiles.ts';
import { RelayHub } from './relay/RelayHub.ts';
import type { UdpRelayStats } from './relay/UdpRelay.ts';
import { type Summary, summarize } from './stats.ts';

export interface ProbeOptions {
  nodeUrl: string;
  /** Admin token, or a case link token with `caseId`. */
  token?: string;
  caseId?: string;
  count?: number;
  intervalMs?: number;
  /** Impair the probe's path as this profile's leg (default: no relay, the real path). */
  through?: { profile: NetworkProfile; leg: LegName; seed?: number };
  signal?: AbortSignal;
  onProgress?: (p: { sent: number; received: number; lastRttMs?: number }) => void;
}

export interface ProbeResult {
  version: 1;
  kind: 'probe';
  id: string;
  startedAt: string;
  node: string;
  /** `direct`, or `profile/leg` when impaired through the relay. */
  path: string;
  connectMs: number;
  sent: number;
  received: number;
  lossRatio: number;
  rttMs?: Summary;
  /** RFC 3550-style smoothed variation of successive round trips, ms. */
  jitterMs: number;
  /** Echoes that came back after a later one. */
  reordered: number;
  /** Relay counters when impaired (packets in both directions). */
  relay?: Pick<UdpRelayStats, 'up' | 'down'> & { stunRttMs?: Summary };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Native objects of finished probes, kept from the garbage collector (see runProbe's finally). */
const retired: unknown[] = [];

/** RFC 3550 interarrival jitter estimator applied to successive round-trip times. */
export function smoothedJitter(rtts: readonly number[]): number {
  let j = 0;
  for (let i = 1; i < rtts.length; i++) j += (Math.abs(rtts[i]! - rtts[i - 1]!) - j) / 16;
  return j;
}

export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  const startedAt = new Date();
  const base = options.nodeUrl.replace(/\/$/, '');
  const count = options.count ?? 200;
  const intervalMs = options.intervalMs ?? 20;
  let host: string;
  try {
    host = new URL(base).hostname;
  } catch {
    throw new UserError(`--node ${options.nodeUrl} is not a URL (e.g. http://10.0.0.5:8080)`);
  }
  const hub = options.through
    ? new RelayHub({
        profile: options.through.profile,
        seed: options.through.seed,
        remoteNodeHost: host,
      })
    : undefined;
  const relay = options.through ? await hub!.create(options.through.leg, 'probe') : undefined;
  const pc: PeerConnection = new nodeDataChannel.PeerConnection('probe', { iceServers: [] });
  let channel: DataChannel | undefined;
  let sessionUrl: string | undefined;
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const query = options.caseId ? `?case=${encodeURIComponent(options.caseId)}` : '';
  try {
    const t0 = performance.now();
    channel = pc.createDataChannel('probe', { unordered: true, maxRetransmits: 0 });
    const dc = channel;
    const open = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the probe channel did not open within 15 s')),
        15_000,
      );
      dc.onOpen(() => {
        clearTimeout(timer);
        resolve();
      });
      pc.onStateChange((s) => {
        if (s === 'failed' || s === 'closed') {
          clearTimeout(timer);
          reject(new Error(`the probe connection ${s}`));
        }
      });
    });
    open.catch(() => {});
    await gathered(pc, 5000);
    let offer = pc.localDescription()?.sdp;
    if (!offer) throw new Error('no local offer');
    if (relay) offer = relay.rewriteClientSdp(offer);
    let res: Response;
    try {
      res = await fetch(`${base}/probe${query}`, {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/sdp' },
        body: offer,
      });
    } catch (err) {
      throw new UserError(`cannot reach the node at ${base} (${errorMessage(err)})`);
    }
    const body = await res.text();
    if (res.status !== 201) {
      let message = body;
      try {
        message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? body;
      } catch {
        // not JSON
      }
      throw new UserError(`the node refused the probe (${res.status}): ${message}`);
    }
    const location = res.headers.get('location');
    if (location) sessionUrl = new URL(location, base).toString();
    pc.setRemoteDescription(relay ? relay.rewriteNodeSdp(body) : body, 'answer');
    await open;
    const connectMs = performance.now() - t0;
    if (relay) hub!.start(performance.now());

    const sentAt = new Map<number, number>();
    const rtts: number[] = [];
    let highest = -1;
    let reordered = 0;
    dc.onMessage((msg) => {
      const text = typeof msg === 'string' ? msg : Buffer.from(msg as ArrayBuffer).toString();
      const seq = Number(text.split(':')[0]);
      const at = sentAt.get(seq);
      if (at === undefined) return;
      sentAt.delete(seq);
      rtts.push(performance.now() - at);
      if (seq < highest) reordered++;
      highest = Math.max(highest, seq);
    });
    let next = performance.now();
    for (let seq = 0; seq < count && !options.signal?.aborted; seq++) {
      sentAt.set(seq, performance.now());
      dc.sendMessage(`${seq}:${randomBytes(8).toString('hex')}`);
      options.onProgress?.({ sent: seq + 1, received: rtts.length, lastRttMs: rtts.at(-1) });
      next += intervalMs;
      await sleep(Math.max(0, next - performance.now()));
    }
    const sent = Math.min(count, rtts.length + sentAt.size);
    const maxRtt = rtts.length ? Math.max(...rtts) : 1000;
    const deadline = performance.now() + Math.max(1000, 3 * maxRtt);
    while (sentAt.size > 0 && performance.now() < deadline) await sleep(20);
    const relayStats = relay?.stats();
    return {
      version: 1,
      kind: 'probe',
      id: `${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
      startedAt: startedAt.toISOString(),
      node: base,
      path: options.through ? `${options.through.profile.name}/${options.through.leg}` : 'direct',
      connectMs,
      sent,
      received: rtts.length,
      lossRatio: sent ? 1 - rtts.length / sent : 0,
      rttMs: summarize(rtts),
      jitterMs: smoothedJitter(rtts),
      reordered,
      relay: relayStats
        ? { up: relayStats.up, down: relayStats.down, stunRttMs: summarize(relayStats.stunRttMs) }
        : undefined,
    };
  } finally {
    if (sessionUrl) {
      await fetch(sessionUrl, { method: 'DELETE', headers }).catch(() => {});
    }
    // Closing the connection closes its channel. Closing the channel first, then letting it be
    // collected, crashed node-datachannel 0.33 in cleanup(): keep both referenced.
    retired.push(pc, channel);
    if (retired.length > 64) retired.splice(0, 2);
    try {
      pc.close();
    } catch {
      // already closed
    }
    hub?.close();
  }
}
