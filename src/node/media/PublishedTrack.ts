import type { MediaStreamTrack, RTCRtpCodecParameters, RTCRtpTransceiver, RtpPacket } from 'werift';
import type { Logger } from '../../core/log.ts';
import { KeyframeThrottle } from './KeyframeThrottle.ts';
import { isKeyframeStart, type KeyframeCodec, keyframeCodecOf } from './keyframes.ts';
import { PUBLISHER_NACK_DEFAULTS, PublisherNack } from './PublisherNack.ts';
import { RateMeter } from './RateMeter.ts';
import type { ForwardSource, TrackForwarder } from './TrackForwarder.ts';
import type { MediaCounters, MediaKind } from './types.ts';
import { replaceNackHandler, sendGenericNack } from './werift.ts';
import { fastReceivePath } from './weriftHotPath.ts';

export interface PublishedTrackOptions {
  kind: MediaKind;
  transceiver: RTCRtpTransceiver;
  track: MediaStreamTrack;
  counters: MediaCounters;
  log: Logger;
  /** Simulcast: this layer's rid and its place among the publisher's layers (0 = lowest). */
  layer?: { rid: string; index: number; count: number };
  /** Minimum spacing of keyframe requests sent to the publisher. */
  keyframeIntervalMs?: number;
  /** Packets resuming after a silence this long start an outage recovery (keyframe request). */
  outageMs?: number;
}

const DEFAULT_KEYFRAME_INTERVAL_MS = 500;
const DEFAULT_OUTAGE_MS = 300;
/** A forward jump of more sequence numbers than this cannot be repaired by NACK in time. */
const UNREPAIRABLE_GAP = PUBLISHER_NACK_DEFAULTS.staleGapPackets;

/**
 * One stream a publisher sends (a track, or one simulcast layer of it): fans each packet out to
 * the subscribers' forwarders, measures its bitrate, NACKs gaps upstream (`PublisherNack`, in
 * place of werift's generator), and sends keyframe requests upstream at most once per
 * `keyframeIntervalMs` (a request inside the window is sent when the window ends). When packets
 * resume after an outage, or after a gap too long to repair, it asks for a keyframe at once.
 */
export class PublishedTrack implements ForwardSource {
  readonly kind: MediaKind;
  readonly track: MediaStreamTrack;
  /** Simulcast rid, when this is a layer. */
  readonly rid: string | undefined;
  /** Place among the publisher's layers of this kind, 0 = lowest. */
  readonly layerIndex: number;
  /** The forwarders of the subscribers receiving this track. Replaced, never mutated. */
  sinks: readonly TrackForwarder[] = [];
  private readonly codecs = new Map<number, RTCRtpCodecParameters>();
  private readonly keyframeCodecs = new Map<number, KeyframeCodec>();
  private readonly counters: MediaCounters;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly throttle: KeyframeThrottle;
  private readonly meter = new RateMeter(1_000, 10);
  private readonly outageMs: number;
  private closed = false;
  /** The node's NACK generator for this track (video with NACK negotiated). */
  private readonly nack: PublisherNack | undefined;
  private mediaSsrc: number | undefined;
  private lastArrivalAt = Number.NEGATIVE_INFINITY;
  private lastSeq = -1;
  private pliPending = false;

  constructor(private readonly options: PublishedTrackOptions) {
    this.kind = options.kind;
    this.track = options.track;
    this.rid = options.layer?.rid;
    this.layerIndex = options.layer?.index ?? 0;
    this.counters = options.counters;
    this.outageMs = options.outageMs ?? DEFAULT_OUTAGE_MS;
    this.throttle = new KeyframeThrottle({
      intervalMs: options.keyframeIntervalMs ?? DEFAULT_KEYFRAME_INTERVAL_MS,
      send: () => this.sendPli(),
    });
    for (const codec of options.transceiver.codecs) {
      this.codecs.set(codec.payloadType, codec);
      const kf = keyframeCodecOf(codec.mimeType);
      if (kf) this.keyframeCodecs.set(codec.payloadType, kf);
    }
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
        onGiveUp: () => this.requestRecoveryKeyframe(),
      });
      // One counter per receiver: simulcast layers share it.
      if (this.layerIndex === 0) {
        this.unsubscribe.push(
          receiver.onPacketLost.subscribe(() => {
            this.counters.nacksToPublishers++;
          }).unSubscribe,
        );
      }
    }
    this.unsubscribe.push(options.track.onReceiveRtp.subscribe(this.onRtp).unSubscribe);
    // No promise per werift event on this stream's receive path.
    fastReceivePath(receiver, options.track);
  }

  /** Number of layers of this kind the publisher sends (1 without simulcast). */
  get layerCount(): number {
    return this.options.layer?.count ?? 1;
  }

  /** The SSRC this stream arrives on (learnt from its packets). */
  get ssrc(): number | undefined {
    return this.mediaSsrc ?? this.track.ssrc;
  }

  codecFor(payloadType: number): RTCRtpCodecParameters | undefined {
    return this.codecs.get(payloadType);
  }

  /** Whether `packet` (of this stream) begins a keyframe. */
  isKeyframeStart(packet: RtpPacket): boolean {
    const codec = this.keyframeCodecs.get(packet.header.payloadType);
    return codec !== undefined && isKeyframeStart(packet.payload, codec);
  }

  /** Measured bitrate over the last second (RTP payload), bit/s. */
  bitrate(now: number): number {
    return this.meter.bitsPerSecond(now);
  }

  /** Ask the publisher for a keyframe on this stream (video only), throttled. */
  requestKeyframe(): void {
    if (this.closed || this.kind !== 'video') return;
    this.throttle.request();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sinks = [];
    this.throttle.close();
    this.nack?.close();
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /** Hot path: one call per received packet. */
  private readonly onRtp = (packet: RtpPacket): void => {
    const counters = this.counters;
    const now = performance.now();
    const header = packet.header;
    counters.packetsIn++;
    counters.bytesIn += packet.payload.length;
    this.meter.add(packet.payload.length, now);
    this.mediaSsrc = header.ssrc;
    if (this.pliPending) {
      this.pliPending = false;
      this.throttle.request();
    }
    const recovering = this.kind === 'video' && this.watchForOutage(header.sequenceNumber, now);
    // A gap too old to repair is not NACKed (its media would reach viewers seconds late): a
    // keyframe replaces it.
    if (this.nack?.received(header.sequenceNumber, now) === 'stale' && !recovering) {
      this.requestRecoveryKeyframe();
    }
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.forward(packet, this, now);
  };

  /**
   * Fast recovery: a long silence or an unrepairable jump asks for a keyframe right away (true
   * when it did).
   */
  private watchForOutage(seq: number, now: number): boolean {
    if (this.lastSeq < 0) {
      this.lastSeq = seq;
      this.lastArrivalAt = now;
      return false;
    }
    const silentFor = now - this.lastArrivalAt;
    const jump = (seq - this.lastSeq) & 0xffff;
    this.lastArrivalAt = now;
    if (jump >= 0x8000) return false; // late or retransmitted
    this.lastSeq = seq;
    if (silentFor > this.outageMs || jump > UNREPAIRABLE_GAP) {
      this.requestRecoveryKeyframe();
      return true;
    }
    return false;
  }

  /** A keyframe to recover from media lost for good (an outage, a hole given up on), throttled. */
  private requestRecoveryKeyframe(): void {
    this.counters.recoveryKeyframeRequests++;
    this.throttle.request();
  }

  private sendPli(): boolean {
    const receiver = this.options.transceiver.receiver;
    const ssrc = this.ssrc;
    if (this.closed || !receiver.pliEnabled) return false;
    if (!ssrc) {
      this.pliPending = true; // sent on the first packet, which tells the SSRC
      return false;
    }
    this.counters.plisToPublishers++;
    receiver.sendRtcpPLI(ssrc).catch(() => {});
    return true;
  }
}
