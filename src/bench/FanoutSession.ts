/**
 * One inspection call with several staff viewers: the buyer publishes VP8 + Opus once, each viewer
 * watches through its own relay impaired as the profile's staff leg. Against the node the clients
 * use WHIP/WHEP; against a server with its own signalling (Janus's VideoRoom, see
 * `BenchNode.signalling`) the publisher still offers, and each viewer answers the server's offer.
 * Every viewer's frames are measured apart: a session with 2 viewers yields two frame records
 * per sent frame.
 */
import type { Logger } from '../core/log.ts';
import type { BenchCase, BenchNode } from './BenchNode.ts';
import {
  type BenchSession,
  type FrameTimes,
  recentFrames,
  type SessionCounters,
} from './BenchSession.ts';
import type { IvfFile, OggOpusFile } from './clients/media.ts';
import { type ReceivedFrame, WhepSubscriber } from './clients/WhepSubscriber.ts';
import { type SentFrame, WhipPublisher } from './clients/WhipPublisher.ts';
import { FrameTap } from './FrameTap.ts';
import type { NetworkProfile } from './profiles.ts';
import type { RelayHub } from './relay/RelayHub.ts';
import type { UdpRelay } from './relay/UdpRelay.ts';
import { sumDirections } from './result.ts';
import { warningLogger } from './SyntheticSession.ts';

export interface FanoutSessionOptions {
  index: number;
  node: BenchNode;
  hub: RelayHub;
  profile: Pick<NetworkProfile, 'buyer' | 'staff'>;
  media: { video: IvfFile; audio: OggOpusFile };
  seed: number;
  /** Staff viewers of this call (default 1). */
  viewers?: number;
}

interface Viewer {
  subscriber: WhepSubscriber;
  relay: UdpRelay;
  tap: FrameTap;
  /** Server timestamp minus publisher timestamp (mod 2^32), once known. */
  offset?: number;
}

function legRttMs(leg: NetworkProfile['buyer']): number {
  return leg.up.delay + leg.down.delay + 2 * (leg.up.jitter + leg.down.jitter);
}

/**
 * The constant a server added to a viewer's RTP timestamps: the shift that lines up the most
 * received keyframes with sent keyframes (then frames) and never has a frame arrive before it was
 * sent; among equals, the latest sent frame (the smallest transit). Needs transit below a GOP.
 */
export function estimateTimestampOffset(
  sent: readonly SentFrame[],
  received: readonly ReceivedFrame[],
  sample = 120,
): number | undefined {
  const first = received[0];
  if (!first || sent.length === 0) return undefined;
  const bySentTs = new Map<number, SentFrame>();
  for (const f of sent) bySentTs.set(f.rtpTimestamp, f);
  const head = received.slice(0, sample);
  let best: { offset: number; score: number; sentAt: number } | undefined;
  for (const s of sent) {
    if (s.sentAt > first.receivedAt) break;
    if (s.sentAt < first.receivedAt - 5000) continue;
    const offset = (first.rtpTimestamp - s.rtpTimestamp) >>> 0;
    let score = 0;
    let early = false;
    for (const r of head) {
      const m = bySentTs.get((r.rtpTimestamp - offset) >>> 0);
      if (!m) continue;
      if (m.sentAt > r.receivedAt) {
        early = true;
        break;
      }
      score += m.keyframe === r.keyframe ? (r.keyframe ? 1000 : 1) : 0;
    }
    if (early) continue;
    if (!best || score > best.score || (score === best.score && s.sentAt > best.sentAt))
      best = { offset, score, sentAt: s.sentAt };
  }
  return best?.offset;
}

export class FanoutSession implements BenchSession {
  readonly index: number;
  readonly warnings: string[] = [];
  publisher: WhipPublisher | undefined;
  buyerRelay: UdpRelay | undefined;
  /** The first viewer's relay (the runner's live bitrate); every viewer is in `frames()`. */
  staffRelay: UdpRelay | undefined;
  private readonly viewers: Viewer[] = [];
  private readonly log: Logger;
  private upTap: FrameTap | undefined;
  private bench: BenchCase | undefined;
  private closed = false;

  constructor(private readonly options: FanoutSessionOptions) {
    this.index = options.index;
    const viewers = options.viewers ?? 1;
    if (!Number.isInteger(viewers) || viewers < 1)
      throw new Error(
        `session ${options.index}: viewers must be a whole number >= 1 (got ${viewers})`,
      );
    this.log = warningLogger(options.index, this.warnings);
  }

  async start(): Promise<void> {
    const { hub, node, profile, media, seed } = this.options;
    const n = this.index;
    const count = this.options.viewers ?? 1;
    const buyerRelay = await hub.create('buyer', `buyer-${n}`, (direction, phase, packet, at) => {
      if (direction === 'up' && phase === 'egress') this.upTap?.record(packet, at);
    });
    this.buyerRelay = buyerRelay;
    this.upTap = new FrameTap(() => buyerRelay.videoPts);
    const bench = await node.createCase(`bench-${n}`);
    this.bench = bench;
    for (let v = 0; v < count; v++) {
      let tap: FrameTap | undefined;
      const relay = await hub.create(
        'staff',
        `staff-${n}-${v + 1}`,
        (direction, phase, packet, at) => {
          if (direction === 'down' && phase === 'ingress') tap?.record(packet, at);
        },
      );
      tap = new FrameTap(() => relay.videoPts);
      const staffRtt = legRttMs(profile.staff);
      const nackRetryMs = Math.max(30, Math.round(staffRtt * 1.1 + 20));
      this.viewers.push({
        relay,
        tap,
        subscriber: new WhepSubscriber({
          baseUrl: node.url,
          caseId: bench.caseId,
          token: bench.staffToken,
          nackRetryMs,
          nackMaxAgeMs: Math.max(1000, 4 * nackRetryMs),
          connectTimeoutMs: 20_000,
          seed: seed + n * 100 + v,
          log: this.log,
          transformOffer: (sdp) => relay.rewriteClientSdp(sdp),
          transformAnswer: (sdp) => relay.rewriteNodeSdp(sdp),
        }),
      });
    }
    this.staffRelay = this.viewers[0]!.relay;
    const signalling = node.signalling;
    const publisher = new WhipPublisher({
      baseUrl: node.url,
      caseId: bench.caseId,
      token: bench.buyerToken,
      media,
      connectTimeoutMs: 20_000,
      log: this.log,
      transformOffer: (sdp) => buyerRelay.rewriteClientSdp(sdp),
      transformAnswer: (sdp) => buyerRelay.rewriteNodeSdp(sdp),
      exchange: signalling
        ? async (_endpoint, offerSdp) => ({
            answerSdp: await signalling.publish(bench, offerSdp),
            sessionUrl: '',
          })
        : undefined,
    });
    this.publisher = publisher;

    if (!signalling) {
      // WHIP/WHEP: viewers first, so the first frames are seen
      for (const viewer of this.viewers) await viewer.subscriber.start();
      await publisher.start();
      return;
    }
    // the server offers each viewer the publisher's feed: the publisher goes first
    await publisher.start();
    for (const viewer of this.viewers) {
      let connected: Promise<void> = Promise.resolve();
      await signalling.subscribe(bench, async (offerSdp) => {
        const accepted = await viewer.subscriber.acceptOffer(viewer.relay.rewriteNodeSdp(offerSdp));
        connected = accepted.connected;
        return viewer.relay.rewriteClientSdp(accepted.answerSdp);
      });
      await connected;
    }
  }

  /** Every viewer's relay (the runner closes them with the hub; a soak closes them per call). */
  get viewerRelays(): UdpRelay[] {
    return this.viewers.map((v) => v.relay);
  }

  stopSending(): void {
    this.publisher?.stopSending();
  }

  counters(): SessionCounters | undefined {
    if (!this.publisher || !this.buyerRelay || this.viewers.length === 0) return undefined;
    const p = this.publisher.results();
    const repair = {
      nacksFromViewers: 0,
      packetsNacked: 0,
      retransmitsReceived: 0,
      unrepairedPackets: 0,
      plisFromViewers: 0,
      nacksAtPublishers: p.nacksReceived,
      keyframeRequestsAtPublishers: p.keyframeRequests,
    };
    for (const v of this.viewers) {
      const s = v.subscriber.results();
      repair.nacksFromViewers += s.nacksSent;
      repair.packetsNacked += s.nackedPackets;
      repair.retransmitsReceived += s.retransmitsReceived;
      repair.unrepairedPackets += s.lostPackets;
      repair.plisFromViewers += s.keyframeRequestsSent;
    }
    const staff = this.viewers.map((v) => v.relay.stats());
    return {
      repair,
      buyer: this.buyerRelay.stats(),
      staff: {
        up: sumDirections(staff.map((s) => s.up)),
        down: sumDirections(staff.map((s) => s.down)),
        stunRttMs: staff.flatMap((s) => s.stunRttMs),
        kernelTimed: staff.reduce((sum, s) => sum + s.kernelTimed, 0),
      },
    };
  }

  /** The session number a viewer's frames carry: the session's own for one viewer. */
  private viewerSession(v: number): number {
    return this.viewers.length === 1 ? this.index : this.index * 1000 + v + 1;
  }

  private offsetOf(viewer: Viewer): number {
    if (!this.options.node.signalling?.rewritesTimestamps) return 0;
    if (viewer.offset === undefined && viewer.subscriber.receivedFrames.length >= 10) {
      viewer.offset = estimateTimestampOffset(
        this.publisher?.sentFrames ?? [],
        viewer.subscriber.receivedFrames,
      );
    }
    return viewer.offset ?? 0;
  }

  frames(withPath = true): FrameTimes[] {
    if (!this.publisher) return [];
    const atNode = (withPath && this.upTap?.framesPassed()) || new Map<number, number>();
    const out: FrameTimes[] = [];
    this.viewers.forEach((viewer, v) => {
      const offset = this.offsetOf(viewer);
      const received = new Map<number, number>();
      for (const f of viewer.subscriber.receivedFrames)
        received.set((f.rtpTimestamp - offset) >>> 0, f.receivedAt);
      const fromNode = new Map<number, number>();
      if (withPath)
        for (const [ts, at] of viewer.tap.framesPassed()) fromNode.set((ts - offset) >>> 0, at);
      for (const f of this.publisher!.sentFrames) {
        out.push({
          session: this.viewerSession(v),
          rtpTimestamp: f.rtpTimestamp,
          keyframe: f.keyframe,
          sentAt: f.sentAt,
          atNode: atNode.get(f.rtpTimestamp),
          fromNode: fromNode.get(f.rtpTimestamp),
          receivedAt: received.get(f.rtpTimestamp),
        });
      }
    });
    return out;
  }

  recentFrames(since: number): FrameTimes[] {
    if (!this.publisher) return [];
    const sent = this.publisher.sentFrames;
    return this.viewers.flatMap((viewer, v) =>
      recentFrames(
        this.viewerSession(v),
        sent,
        viewer.subscriber.receivedFrames,
        since,
        this.offsetOf(viewer),
      ),
    );
  }

  latenciesSince(since: number): number[] {
    if (!this.publisher) return [];
    const sent = new Map<number, number>();
    for (let i = this.publisher.sentFrames.length - 1; i >= 0; i--) {
      const f = this.publisher.sentFrames[i]!;
      if (f.sentAt < since) break;
      sent.set(f.rtpTimestamp, f.sentAt);
    }
    const out: number[] = [];
    for (const viewer of this.viewers) {
      const offset = this.offsetOf(viewer);
      const frames = viewer.subscriber.receivedFrames;
      for (let i = frames.length - 1; i >= 0; i--) {
        const f = frames[i]!;
        const at = sent.get((f.rtpTimestamp - offset) >>> 0);
        if (at !== undefined) out.push(f.receivedAt - at);
        else if (f.receivedAt < since) break;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.publisher?.close(), ...this.viewers.map((v) => v.subscriber.close())]);
    if (this.bench) await this.options.node.closeCase(this.bench.caseId);
  }
}
