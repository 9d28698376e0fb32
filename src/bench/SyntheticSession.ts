import { Logger } from '../core/log.ts';
import type { BenchNode } from './BenchNode.ts';
import {
  type BenchSession,
  type FrameTimes,
  recentFrames,
  type SessionCounters,
} from './BenchSession.ts';
import type { IvfFile, OggOpusFile } from './clients/media.ts';
import { WhepSubscriber } from './clients/WhepSubscriber.ts';
import { WhipPublisher } from './clients/WhipPublisher.ts';
import { FrameTap } from './FrameTap.ts';
import type { NetworkProfile } from './profiles.ts';
import type { RelayHub } from './relay/RelayHub.ts';
import type { UdpRelay } from './relay/UdpRelay.ts';

export interface SyntheticSessionOptions {
  index: number;
  /** The node to go through; undefined: the no-server baseline (publisher and viewer connect to each other through both relays). */
  node: BenchNode | undefined;
  hub: RelayHub;
  profile: Pick<NetworkProfile, 'buyer' | 'staff'>;
  media: { video: IvfFile; audio: OggOpusFile };
  seed: number;
}

/** Round-trip estimate of a leg from its profile: both delays, serialisation and jitter margin. */
function legRttMs(leg: NetworkProfile['buyer']): number {
  return leg.up.delay + leg.down.delay + 2 * (leg.up.jitter + leg.down.jitter);
}

/**
 * One inspection call, synthetic: the buyer publishes (WHIP) VP8 + Opus through a relay impaired
 * as the profile's buyer leg, staff watch (WHEP) through a relay impaired as the staff leg. The
 * relays also tell when each frame reached and left the node, from the RTP headers in the clear.
 */
export class SyntheticSession implements BenchSession {
  readonly index: number;
  publisher: WhipPublisher | undefined;
  subscriber: WhepSubscriber | undefined;
  buyerRelay: UdpRelay | undefined;
  staffRelay: UdpRelay | undefined;
  caseId: string | undefined;
  /** Warnings the clients logged (a send that failed, a connection that dropped). */
  readonly warnings: string[] = [];
  private readonly log: Logger;
  private upTap: FrameTap | undefined;
  private downTap: FrameTap | undefined;
  private closed = false;

  constructor(private readonly options: SyntheticSessionOptions) {
    this.index = options.index;
    this.log = warningLogger(options.index, this.warnings);
  }

  /** Connects the viewer, then the publisher (which starts sending at once). */
  async start(): Promise<void> {
    const { hub, node, profile, media, seed } = this.options;
    const n = this.index;
    const buyerRelay = await hub.create('buyer', `buyer-${n}`, (direction, phase, packet, at) => {
      if (direction === 'up' && phase === 'egress') this.upTap?.record(packet, at);
    });
    const staffRelay = await hub.create('staff', `staff-${n}`, (direction, phase, packet, at) => {
      if (direction === 'down' && phase === 'ingress') this.downTap?.record(packet, at);
    });
    this.buyerRelay = buyerRelay;
    this.staffRelay = staffRelay;
    this.upTap = new FrameTap(() => buyerRelay.videoPts);
    this.downTap = new FrameTap(() => staffRelay.videoPts);

    // the viewer repairs its own leg: NACK about once per round trip, for long enough
    const staffRtt = legRttMs(profile.staff);
    const nackRetryMs = Math.max(30, Math.round(staffRtt * 1.1 + 20));
    const subscriberOptions = {
      nackRetryMs,
      nackMaxAgeMs: Math.max(1000, 4 * nackRetryMs),
      connectTimeoutMs: 20_000,
      seed: seed + n,
      log: this.log,
    };

    if (node) {
      const bench = await node.createCase(`bench-${n}`);
      this.caseId = bench.caseId;
      const subscriber = new WhepSubscriber({
        ...subscriberOptions,
        baseUrl: node.url,
        caseId: bench.caseId,
        token: bench.staffToken,
        transformOffer: (sdp) => staffRelay.rewriteClientSdp(sdp),
        transformAnswer: (sdp) => staffRelay.rewriteNodeSdp(sdp),
      });
      this.subscriber = subscriber;
      await subscriber.start();
      const publisher = new WhipPublisher({
        baseUrl: node.url,
        caseId: bench.caseId,
        token: bench.buyerToken,
        media,
        connectTimeoutMs: 20_000,
        log: this.log,
        transformOffer: (sdp) => buyerRelay.rewriteClientSdp(sdp),
        transformAnswer: (sdp) => buyerRelay.rewriteNodeSdp(sdp),
      });
      this.publisher = publisher;
      await publisher.start();
      return;
    }

    // no node: the viewer answers the publisher's offer itself, through both relays
    const subscriber = new WhepSubscriber({ ...subscriberOptions, baseUrl: '', caseId: '' });
    this.subscriber = subscriber;
    let viewerConnected: Promise<void> = Promise.resolve();
    const publisher = new WhipPublisher({
      baseUrl: '',
      caseId: '',
      media,
      connectTimeoutMs: 20_000,
      log: this.log,
      transformOffer: (sdp) => buyerRelay.rewriteClientSdp(sdp),
      exchange: async (_endpoint, offerSdp) => {
        const { answerSdp, connected } = await subscriber.acceptOffer(
          staffRelay.rewriteNodeSdp(offerSdp),
        );
        viewerConnected = connected;
        return { answerSdp: staffRelay.rewriteClientSdp(answerSdp), sessionUrl: '' };
      },
      transformAnswer: (sdp) => buyerRelay.rewriteNodeSdp(sdp),
    });
    this.publisher = publisher;
    await publisher.start();
    await viewerConnected;
  }

  /** Stops the buyer's media; the session stays up so the last frames and repairs can land. */
  stopSending(): void {
    this.publisher?.stopSending();
  }

  counters(): SessionCounters | undefined {
    if (!this.publisher || !this.subscriber || !this.buyerRelay || !this.staffRelay)
      return undefined;
    const p = this.publisher.results();
    const s = this.subscriber.results();
    return {
      repair: {
        nacksFromViewers: s.nacksSent,
        packetsNacked: s.nackedPackets,
        retransmitsReceived: s.retransmitsReceived,
        unrepairedPackets: s.lostPackets,
        plisFromViewers: s.keyframeRequestsSent,
        nacksAtPublishers: p.nacksReceived,
        keyframeRequestsAtPublishers: p.keyframeRequests,
      },
      buyer: this.buyerRelay.stats(),
      staff: this.staffRelay.stats(),
    };
  }

  /** Every frame the buyer sent, with what is known of its path. */
  frames(withPath = true): FrameTimes[] {
    if (!this.publisher || !this.subscriber) return [];
    const received = new Map<number, number>();
    for (const f of this.subscriber.receivedFrames) received.set(f.rtpTimestamp, f.receivedAt);
    const none = new Map<number, number>();
    const atNode = (withPath && this.upTap?.framesPassed()) || none;
    const fromNode = (withPath && this.downTap?.framesPassed()) || none;
    return this.publisher.sentFrames.map((f) => ({
      session: this.index,
      rtpTimestamp: f.rtpTimestamp,
      keyframe: f.keyframe,
      sentAt: f.sentAt,
      atNode: atNode.get(f.rtpTimestamp),
      fromNode: fromNode.get(f.rtpTimestamp),
      receivedAt: received.get(f.rtpTimestamp),
    }));
  }

  recentFrames(since: number): FrameTimes[] {
    if (!this.publisher || !this.subscriber) return [];
    return recentFrames(
      this.index,
      this.publisher.sentFrames,
      this.subscriber.receivedFrames,
      since,
    );
  }

  /** Transit of the frames received so far whose send time is at or after `since` (cheap, for live views). */
  latenciesSince(since: number): number[] {
    if (!this.publisher || !this.subscriber) return [];
    const sent = new Map<number, number>();
    for (let i = this.publisher.sentFrames.length - 1; i >= 0; i--) {
      const f = this.publisher.sentFrames[i]!;
      if (f.sentAt < since) break;
      sent.set(f.rtpTimestamp, f.sentAt);
    }
    const out: number[] = [];
    for (let i = this.subscriber.receivedFrames.length - 1; i >= 0; i--) {
      const f = this.subscriber.receivedFrames[i]!;
      const at = sent.get(f.rtpTimestamp);
      if (at !== undefined) out.push(f.receivedAt - at);
      else if (f.receivedAt < since) break;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.publisher?.close(), this.subscriber?.close()]);
    if (this.caseId) await this.options.node?.closeCase(this.caseId);
  }
}

/** A session's logger: warnings only, the first 20 kept in `warnings` for the result. */
export function warningLogger(session: number, warnings: string[]): Logger {
  return new Logger(
    'warn',
    { session },
    {
      write: (line) => {
        if (warnings.length < 20) warnings.push(line.trim());
      },
    },
  );
}
