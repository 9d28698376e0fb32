import type { MediaStreamTrack, RTCRtpCodecParameters, RTCRtpTransceiver, RtpPacket } from 'werift';
import type { Logger } from '../../core/log.ts';
import { fecRecoveredPackets } from './fecReceivePath.ts';
import { KeyframeThrottle } from './KeyframeThrottle.ts';
import { isKeyframeStart, type KeyframeCodec, keyframeCodecOf } from './keyframes.ts';
import {
  type LayersAllocation,
  parseLayersAllocation,
  type SimulcastAllocation,
  VIDEO_LAYERS_ALLOCATION_URI,
} from './layersAllocation.ts';
import { PUBLISHER_NACK_DEFAULTS, PublisherNack } from './PublisherNack.ts';
import type { RepairDelays } from './playoutDelay.ts';
import { RateMeter } from './RateMeter.ts';
import { FrameMarks, SeqCompactor } from './SeqCompactor.ts';
import { type ForwardSource, LAYER_STALL_MS, type TrackForwarder } from './TrackForwarder.ts';
import type { MediaCounters, MediaKind } from './types.ts';
import { vp8FrameInfo } from './vp8Ids.ts';
import { iceRoundTripMs, replaceNackHandler, sendGenericNack } from './werift.ts';
import { fastReceivePath } from './weriftHotPath.ts';

export interface PublishedTrackOptions {
  kind: MediaKind;
  transceiver: RTCRtpTransceiver;
  track: MediaStreamTrack;
  counters: MediaCounters;
  log: Logger;
  /** Simulcast: this layer's rid and its place among the publisher's layers (0 = lowest). */
  layer?: { rid: string; index: number; count: number };
  /**
   * Simulcast: the publisher's layer allocation, shared by its layers, updated from the
   * video-layers-allocation header extension when the offer negotiated it.
   */
  allocation?: SimulcastAllocation;
  /**
   * Video: where the repair times of the publisher's uplink go (shared by its simulcast layers),
   * for the viewers' playout delay. Only video NACKs, so nothing goes in for audio.
   */
  repairs?: RepairDelays;
  /** Minimum spacing of keyframe requests sent to the publisher. */
  keyframeIntervalMs?: number;
  /** Packets resuming after a silence this long start an outage recovery (keyframe request). */
  outageMs?: number;
}

const DEFAULT_KEYFRAME_INTERVAL_MS = 500;
/** Packets of a simulcast layer kept for a viewer about to switch to it (a power of two). */
const RECENT_PACKETS = 64;
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
  /** The repair times of the publisher's uplink (video with NACK). */
  readonly repairs: RepairDelays | undefined;
  /** The forwarders of the subscribers receiving this track. Replaced, never mutated. */
  sinks: readonly TrackForwarder[] = [];
  /** The recorder's listeners (`subscribeMedia`). Replaced, never mutated. */
  private mediaListeners: readonly ((packet: RtpPacket) => void)[] = [];
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
  /** When the last packet of this stream arrived (video), `performance.now()` ms. */
  private lastArrivalAt = Number.NEGATIVE_INFINITY;
  /** Since when it has arrived without a silence of {@link LAYER_STALL_MS} (video). */
  private arrivingSince = Number.POSITIVE_INFINITY;
  /** ULPFEC payload type, when the publisher sends FEC (RED taken apart by fecReceivePath). */
  private readonly fecPt: number | undefined;
  /** With FEC: renumbers media without the FEC packets' sequence numbers. */
  private readonly compactor: SeqCompactor | undefined;
  private readonly vp8Pts = new Set<number>();
  /** The newest media packet: whether it ended a frame, and its timestamp. */
  private lastMediaMarker = false;
  private lastMediaTs = -1;
  /** With FEC: what each recent sequence number carried, to judge numbers given up on. */
  private readonly marks: FrameMarks | undefined;
  private lastSeq = -1;
  private pliPending = false;
  /** The last {@link RECENT_PACKETS} packets of a simulcast layer, a ring (see `recentPackets`). */
  private readonly recent: (RtpPacket | undefined)[] | undefined;
  private recentAt = 0;
  /** The negotiated id of the video-layers-allocation extension (simulcast only). */
  private readonly allocationId: number | undefined;
  /** The sequence number of the last packet of this stream that carried an allocation. */
  private allocationSeq = -1;

  constructor(private readonly options: PublishedTrackOptions) {
    this.kind = options.kind;
    this.track = options.track;
    this.rid = options.layer?.rid;
    this.layerIndex = options.layer?.index ?? 0;
    this.repairs = options.repairs;
    this.counters = options.counters;
    this.outageMs = options.outageMs ?? DEFAULT_OUTAGE_MS;
    this.throttle = new KeyframeThrottle({
      intervalMs: options.keyframeIntervalMs ?? DEFAULT_KEYFRAME_INTERVAL_MS,
      send: () => this.sendPli(),
    });
    let fecPt: number | undefined;
    for (const codec of options.transceiver.codecs) {
      this.codecs.set(codec.payloadType, codec);
      const mime = codec.mimeType.toLowerCase();
      if (mime === 'video/ulpfec') fecPt = codec.payloadType;
      if (mime === 'video/vp8') this.vp8Pts.add(codec.payloadType);
      const kf = keyframeCodecOf(codec.mimeType);
      if (kf) this.keyframeCodecs.set(codec.payloadType, kf);
    }
    this.fecPt = this.kind === 'video' ? fecPt : undefined;
    this.allocationId = options.allocation
      ? options.transceiver.headerExtensions.find((e) => e.uri === VIDEO_LAYERS_ALLOCATION_URI)?.id
      : undefined;
    this.recent =
      this.kind === 'video' && options.layer
        ? new Array(RECENT_PACKETS).fill(undefined)
        : undefined;
    this.compactor = this.fecPt === undefined ? undefined : new SeqCompactor();
    this.marks = this.compactor ? new FrameMarks() : undefined;
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
        onGiveUp: (_count, seqs) => {
          // With FEC some numbers were FEC packets, which Chrome never resends: no keyframe for
          // those when the frames around them turn out whole.
          const marks = this.marks;
          if (marks && seqs.every((s) => marks.heldNoMedia(s))) return;
          this.requestRecoveryKeyframe();
        },
        onRepaired: (delayMs, now) => this.repairs?.add(delayMs, now),
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

  /**
   * The round trip of a repair from the publisher (first NACK to retransmission), ms. Before the
   * first repair, the round trip of the node's ICE checks on the publisher's path; undefined
   * without NACK.
   */
  get repairRoundTripMs(): number | undefined {
    if (!this.nack) return undefined;
    return this.nack.roundTripMs ?? iceRoundTripMs(this.options.transceiver.receiver);
  }

  /** When the last packet of this stream arrived, `performance.now()` ms (video). */
  get lastPacketAt(): number {
    return this.lastArrivalAt;
  }

  /** Since when this stream has arrived without a silence of {@link LAYER_STALL_MS} (video). */
  get steadySince(): number {
    return this.arrivingSince;
  }

  /**
   * The last packets of this layer, oldest first, as viewers get them (simulcast video): a viewer
   * switching to the layer may need those that came just before it decided, such as the rest of
   * a keyframe whose first packet is still on its way.
   */
  recentPackets(): RtpPacket[] {
    const ring = this.recent;
    if (!ring) return [];
    const out: RtpPacket[] = [];
    for (let i = 0; i < RECENT_PACKETS; i++) {
      const p = ring[(this.recentAt + i) & (RECENT_PACKETS - 1)];
      if (p) out.push(p);
    }
    return out;
  }

  /** The publisher's latest layer allocation (simulcast, when it sends one). */
  get layerAllocation(): LayersAllocation | undefined {
    return this.options.allocation?.current;
  }

  /** The publisher's latest layer allocation leaves this layer out (it has switched it off). */
  get pausedByPublisher(): boolean {
    return this.options.allocation?.isPaused(this.layerIndex) ?? false;
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

  /**
   * Every media packet as viewers get it: FEC packets taken out, the rest renumbered without
   * their sequence numbers, packets rebuilt from FEC included. The packets are shared: read
   * them, do not change them. Returns a function that unsubscribes.
   */
  subscribeMedia(listener: (packet: RtpPacket) => void): () => void {
    this.mediaListeners = [...this.mediaListeners, listener];
    return () => {
      this.mediaListeners = this.mediaListeners.filter((l) => l !== listener);
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sinks = [];
    this.mediaListeners = [];
    this.throttle.close();
    this.nack?.close();
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /** Hot path: one call per received packet. */
  private readonly onRtp = (packet: RtpPacket): void => {
    const counters = this.counters;
    const now = performance.now();
    const header = packet.header;
    const seq = header.sequenceNumber;
    counters.packetsIn++;
    counters.bytesIn += packet.payload.length;
    this.mediaSsrc = header.ssrc;
    if (this.pliPending) {
      this.pliPending = false;
      this.throttle.request();
    }
    if (this.allocationId !== undefined && header.extensions.length > 0) {
      this.readAllocation(header, now);
    }
    const compactor = this.compactor;
    if (compactor !== undefined && header.payloadType === this.fecPt) {
      // A FEC packet (the node rebuilt what it could from it): proof the publisher sends, and
      // a sequence number that is not media.
      const recovering = this.watchForOutage(seq, now);
      if (this.nack?.received(seq, now) === 'stale' && !recovering) this.requestRecoveryKeyframe();
      this.marks!.fec(seq);
      const newest = compactor.newest;
      // FEC follows the frame it protects and carries its timestamp: numbers missing between
      // that frame's last packet and its FEC were FEC too.
      compactor.skip(seq, () => {
        const heldMedia = !this.lastMediaMarker || header.timestamp !== this.lastMediaTs;
        if (!heldMedia) this.forgetBetween(newest, seq);
        return heldMedia;
      });
      return;
    }
    const recovering = this.kind === 'video' && this.watchForOutage(seq, now);
    if (compactor !== undefined && fecRecoveredPackets.has(packet)) {
      this.nack?.forget(seq);
    } else {
      const arrival = this.nack?.received(seq, now);
      if (arrival === 'duplicate') {
        // Viewers and the recorder have it already: a second repair (one per NACK retry), or
        // an RTX copy Chrome pads its bandwidth probes with.
        counters.duplicatesDropped++;
        return;
      }
      // A gap too old to repair is not NACKed (its media would reach viewers seconds late): a
      // keyframe replaces it.
      if (arrival === 'stale' && !recovering) this.requestRecoveryKeyframe();
    }
    this.meter.add(packet.payload.length, now);
    if (compactor !== undefined) {
      const out = this.compact(compactor, packet);
      if (out < 0) return;
      // werift clones each packet for its track's subscribers, of which this is the only one
      // (the recorder reads through subscribeMedia): the copy is ours to renumber.
      header.sequenceNumber = out;
    }
    const recent = this.recent;
    if (recent !== undefined) {
      recent[this.recentAt] = packet;
      this.recentAt = (this.recentAt + 1) & (RECENT_PACKETS - 1);
    }
    const listeners = this.mediaListeners;
    for (let i = 0; i < listeners.length; i++) listeners[i]!(packet);
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.forward(packet, this, now);
  };

  /**
   * The viewers' number for a media packet of a stream with FEC, or -1 to drop it. A gap in
   * front of the newest packet held no media when it lies between two whole VP8 frames with
   * consecutive PictureIDs (the previous packet ended a frame, this one starts the next): it was
   * FEC that did not arrive, which Chrome never resends, so it is not NACKed either.
   */
  private compact(compactor: SeqCompactor, packet: RtpPacket): number {
    const seq = packet.header.sequenceNumber;
    const newest = compactor.newest;
    const isNewest =
      newest < 0 || (((seq - newest) & 0xffff) > 0 && ((seq - newest) & 0xffff) < 0x8000);
    let start = false;
    let pid = -1;
    let mask = 0;
    if (this.vp8Pts.has(packet.header.payloadType)) {
      ({ start, pid, mask } = vp8FrameInfo(packet.payload));
    }
    this.marks!.media(seq, packet.header.marker, start, pid, mask);
    const out = compactor.media(seq, () => {
      // the gap's first number stands for all of it: the same packets lie on either side
      const heldMedia = !this.marks!.heldNoMedia((newest + 1) & 0xffff);
      if (!heldMedia) this.forgetBetween(newest, seq);
      return heldMedia;
    });
    if (isNewest) {
      this.lastMediaMarker = packet.header.marker;
      this.lastMediaTs = packet.header.timestamp;
    }
    return out;
  }

  /**
   * A layer allocation newer than the last one this stream carried: when it switches a layer off
   * or on, the viewers' forwarders decide again now. A repair counts (Chrome stops repeating an
   * allocation once a frame it would resend carried it); a packet from before the last one read
   * carries an older one.
   */
  private readAllocation(header: RtpPacket['header'], now: number): void {
    const extensions = header.extensions;
    let payload: Buffer | undefined;
    for (let i = 0; i < extensions.length; i++) {
      if (extensions[i]!.id === this.allocationId) payload = extensions[i]!.payload;
    }
    if (payload === undefined) return;
    const seq = header.sequenceNumber;
    if (this.allocationSeq >= 0) {
      const ahead = (seq - this.allocationSeq) & 0xffff;
      if (ahead === 0 || ahead >= 0x8000) return;
    }
    this.allocationSeq = seq;
    const allocation = parseLayersAllocation(payload);
    const shared = this.options.allocation!;
    if (!allocation || !shared.update(allocation, this.layerCount)) return;
    this.options.log.debug('publisher layer allocation changed', {
      layers: allocation.layers
        .map((l) => `${l.stream}:${l.targetKbps[l.targetKbps.length - 1]}kbps`)
        .join(','),
    });
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.publisherLayersChanged(now);
  }

  /** No NACK for the numbers strictly between `from` and `to`: they held no media. */
  private forgetBetween(from: number, to: number): void {
    for (let s = (from + 1) & 0xffff; s !== to; s = (s + 1) & 0xffff) this.nack?.forget(s);
  }

  /**
   * Fast recovery: a long silence or an unrepairable jump asks for a keyframe right away (true
   * when it did).
   */
  private watchForOutage(seq: number, now: number): boolean {
    if (this.lastSeq < 0) {
      this.lastSeq = seq;
      this.lastArrivalAt = now;
      this.arrivingSince = now;
      return false;
    }
    const silentFor = now - this.lastArrivalAt;
    const jump = (seq - this.lastSeq) & 0xffff;
    this.lastArrivalAt = now;
    if (silentFor > LAYER_STALL_MS) this.arrivingSince = now;
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
