import type { ReceivedFrame } from './clients/WhepSubscriber.ts';
import type { SentFrame } from './clients/WhipPublisher.ts';
import type { UdpRelay, UdpRelayStats } from './relay/UdpRelay.ts';

/** One frame of one session, every time on the wall clock (ms). */
export interface FrameTimes {
  session: number;
  rtpTimestamp: number;
  keyframe: boolean;
  /** Synthetic: first packet handed to the network by the buyer. Browser: the camera (canvas) time drawn into the frame. */
  sentAt: number;
  /** Every packet of it had reached the node (left the buyer's relay towards it). */
  atNode?: number;
  /** Every packet of it had left the node (reached the staff relay from it). */
  fromNode?: number;
  /** Complete at the staff client, after repair. */
  receivedAt?: number;
  /** Browser mode: when the staff page expected it on screen. */
  shownAt?: number;
}

/** Loss repair as the clients saw it, summed over a session's buyer and staff side. */
export interface RepairCounters {
  nacksFromViewers: number;
  packetsNacked: number;
  retransmitsReceived: number;
  unrepairedPackets: number;
  plisFromViewers: number;
  nacksAtPublishers: number;
  keyframeRequestsAtPublishers: number;
}

export interface SessionCounters {
  repair: RepairCounters;
  buyer: UdpRelayStats;
  staff: UdpRelayStats;
}

/** Browser sessions: one getStats reading of the buyer's outbound video, simulcast layers summed. */
export interface SenderSample {
  /** Wall clock, ms. */
  at: number;
  /** Payload bytes sent so far (retransmissions included), all video layers. */
  bytesSent: number;
  /** The encoders' target, bit/s, summed over layers. */
  targetBitrate?: number;
  /** The sender's bandwidth estimate (the selected candidate pair's), bit/s. */
  availableOutgoingBitrate?: number;
  /** Video `outbound-rtp` entries (simulcast layers). */
  layers: number;
}

/** Browser sessions: one getStats reading of the staff page's inbound video. */
export interface ViewerSample {
  at: number;
  /** Frames the page presented so far (requestVideoFrameCallback's `presentedFrames`). */
  framesPresented?: number;
  framesDecoded: number;
  freezeCount: number;
  /** Seconds. */
  totalFreezesDuration: number;
  /** Seconds, summed over the frames the jitter buffer let go (`jitterBufferEmittedCount`). */
  jitterBufferDelay?: number;
  jitterBufferEmittedCount?: number;
  keyFramesDecoded?: number;
  /** Width of the last decoded frame (the simulcast layer it came from), pixels. */
  frameWidth?: number;
  /** Times the page showed its backup picture instead of the main one, so far. */
  fallbacks?: number;
  /** How long the backup picture was on screen so far (after the main one's first frame), ms. */
  backupMs?: number;
}

/** What a browser session sampled about once a second. */
export interface BrowserSeries {
  /** When the buyer's connection came up (wall clock, ms). */
  connectedAt?: number;
  /** The bitrate the WHIP answer allows the buyer (b=TIAS or b=AS of its video), kbit/s. */
  signalledKbps?: number;
  sender: SenderSample[];
  viewer: ViewerSample[];
  /** Every picture the staff page presented (main or backup, as shown), wall clock ms. */
  presented?: number[];
}

/** One call in a benchmark (synthetic clients or two browser pages), as the runner drives it. */
export interface BenchSession {
  readonly index: number;
  readonly warnings: string[];
  buyerRelay: UdpRelay | undefined;
  staffRelay: UdpRelay | undefined;
  start(): Promise<void>;
  /** Stops the buyer's media; the session stays up so the last frames and repairs can land. */
  stopSending(): void;
  counters(): SessionCounters | undefined;
  /**
   * Every frame known so far (browser sessions: as of the last `refresh`). `withPath: false`
   * skips when frames reached and left the node (cheaper, for live views).
   */
  frames(withPath?: boolean): FrameTimes[];
  /**
   * The frames sent at or after `since`, without their path, in the order `frames` gives them:
   * for live views, at a cost that does not grow with the run (`frames` rebuilds every frame).
   */
  recentFrames(since: number): FrameTimes[];
  /** Latency of frames received (shown) at or after `since`, for live views. */
  latenciesSince(since: number): number[];
  /** Browser sessions pull new measurements from their pages. */
  refresh?(): Promise<void>;
  /** Browser sessions: send rate and viewer samples, about one a second. */
  browserSeries?(): BrowserSeries;
  /** Extra details for the result (browser getStats). */
  details?(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * `frames(false)` of one publisher and one viewer, for the frames sent at or after `since` only:
 * both lists are walked back from their newest entry (frames are sent, and received, in time
 * order, and none is received before it is sent), so the cost is that of the recent frames.
 * `offset` is what the viewer's RTP timestamps are ahead of the publisher's (a server that
 * rewrites them).
 */
export function recentFrames(
  session: number,
  sent: readonly SentFrame[],
  received: readonly ReceivedFrame[],
  since: number,
  offset = 0,
): FrameTimes[] {
  const receivedAt = new Map<number, number>();
  for (let i = received.length - 1; i >= 0 && received[i]!.receivedAt >= since; i--) {
    const f = received[i]!;
    const ts = (f.rtpTimestamp - offset) >>> 0;
    // the last arrival of a timestamp counts, as in `frames`
    if (!receivedAt.has(ts)) receivedAt.set(ts, f.receivedAt);
  }
  let first = sent.length;
  while (first > 0 && sent[first - 1]!.sentAt >= since) first--;
  const out: FrameTimes[] = [];
  for (let i = first; i < sent.length; i++) {
    const f = sent[i]!;
    out.push({
      session,
      rtpTimestamp: f.rtpTimestamp,
      keyframe: f.keyframe,
      sentAt: f.sentAt,
      atNode: undefined,
      fromNode: undefined,
      receivedAt: receivedAt.get(f.rtpTimestamp),
    });
  }
  return out;
}
