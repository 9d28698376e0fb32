import type { MediaStreamTrack, RTCRtpCodecParameters, RTCRtpTransceiver, RtpPacket } from 'werift';
import type { Logger } from '../../core/log.ts';
import { PublisherNack } from './PublisherNack.ts';
import type { ForwardSource, TrackForwarder } from './TrackForwarder.ts';
import type { MediaCounters, MediaKind } from './types.ts';
import { replaceNackHandler, sendGenericNack } from './werift.ts';

export interface PublishedTrackOptions {
  kind: MediaKind;
  transceiver: RTCRtpTransceiver;
  track: MediaStreamTrack;
  counters: MediaCounters;
  log: Logger;
  /** Minimum spacing of keyframe requests sent to the publisher. */
  keyframeIntervalMs?: number;
}

const DEFAULT_KEYFRAME_INTERVAL_MS = 500;

/**
 * One track a publisher sends: fans each packet out to the subscribers' forwarders, NACKs gaps
 * upstream (`PublisherNack`, in place of werift's generator) and counts those NACKs, and sends
 * keyframe requests upstream at most once per `keyframeIntervalMs` (a request inside the window
 * is sent when the window ends).
 */
export class PublishedTrack implements ForwardSource {
  readonly kind: MediaKind;
  readonly track: MediaStreamTrack;
  /** The forwarders of the subscribers receiving this track. Replaced, never mutated. */
  sinks: readonly TrackForwarder[] = [];
  private readonly codecs = new Map<number, RTCRtpCodecParameters>();
  private readonly counters: MediaCounters;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly keyframeIntervalMs: number;
  private lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
  private keyframeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The node's NACK generator for this track (video with NACK negotiated). */
  private readonly nack: PublisherNack | undefined;
  private mediaSsrc: number | undefined;

  constructor(private readonly options: PublishedTrackOptions) {
    this.kind = options.kind;
    this.track = options.track;
    this.counters = options.counters;
    this.keyframeIntervalMs = options.keyframeIntervalMs ?? DEFAULT_KEYFRAME_INTERVAL_MS;
    for (const codec of options.transceiver.codecs) this.codecs.set(codec.payloadType, codec);
    const receiver = options.transceiver.receiver;
    if (this.kind === 'video' && receiver.nackEnabled) {
      const reportSent = replaceNackHandler(receiver);
      this.nack = new PublisherNack({
        send: (lost) => {
          const ssrc = this.mediaSsrc;
          if (ssrc === undefined) return;
          const sent = sendGenericNack(receiver, ssrc, lost);
          if (sent) reportSent(sent);
        },
      });
      this.unsubscribe.push(
        receiver.onPacketLost.subscribe(() => {
          this.counters.nacksToPublishers++;
        }).unSubscribe,
      );
    }
    this.unsubscribe.push(options.track.onReceiveRtp.subscribe(this.onRtp).unSubscribe);
  }

  codecFor(payloadType: number): RTCRtpCodecParameters | undefined {
    return this.codecs.get(payloadType);
  }

  /** Ask the publisher for a keyframe (video only), throttled. */
  requestKeyframe(): void {
    if (this.closed || this.kind !== 'video') return;
    const now = performance.now();
    const wait = this.lastKeyframeRequestAt + this.keyframeIntervalMs - now;
    if (wait <= 0) {
      this.sendPli(now);
      return;
    }
    if (this.keyframeTimer) return;
    this.keyframeTimer = setTimeout(() => {
      this.keyframeTimer = undefined;
      if (!this.closed) this.sendPli(performance.now());
    }, wait);
    this.keyframeTimer.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sinks = [];
    if (this.keyframeTimer) clearTimeout(this.keyframeTimer);
    this.keyframeTimer = undefined;
    this.nack?.close();
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /** Hot path: one call per received packet. */
  private readonly onRtp = (packet: RtpPacket): void => {
    const counters = this.counters;
    counters.packetsIn++;
    counters.bytesIn += packet.payload.length;
    const nack = this.nack;
    if (nack) {
      this.mediaSsrc = packet.header.ssrc;
      nack.received(packet.header.sequenceNumber, performance.now());
    }
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.forward(packet, this);
  };

  private sendPli(now: number): void {
    const receiver = this.options.transceiver.receiver;
    const ssrc = this.track.ssrc;
    if (!ssrc || !receiver.pliEnabled) return;
    this.lastKeyframeRequestAt = now;
    this.counters.plisToPublishers++;
    receiver.sendRtcpPLI(ssrc).catch(() => {});
  }
}
