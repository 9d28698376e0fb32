import {
  type RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtcpPacket,
  type RtpHeader,
  type RtpPacket,
  uint16Add,
  uint32Add,
  wrapRtx,
} from 'werift';
import type { Logger } from '../../core/log.ts';
import type { MediaCounters, MediaKind } from './types.ts';
import {
  fixSenderReportClock,
  matchCodec,
  rtxPayloadTypeFor,
  SENDER_HISTORY_SIZE,
  type SenderInternals,
  senderInternals,
} from './werift.ts';

/** What a forwarder needs to know about the publisher track a packet came from. */
export interface ForwardSource {
  /** The publisher's negotiated codec for a payload type. */
  codecFor(payloadType: number): RTCRtpCodecParameters | undefined;
}

export interface TrackForwarderOptions {
  kind: MediaKind;
  /** The subscriber's sendonly transceiver for this kind. */
  transceiver: RTCRtpTransceiver;
  counters: MediaCounters;
  log: Logger;
  /** The subscriber asked for a keyframe (PLI or FIR). */
  onKeyframeRequest: () => void;
}

type Extensions = RtpHeader['extensions'];
/** Shared, never-mutated empty list: werift's sendRtp builds a new extension array per packet. */
const NO_EXTENSIONS = Object.freeze([]) as unknown as Extensions;
const FIR_FORMAT = 4;
const PSFB = 206;

function ignore(): void {}

/**
 * Sends one publisher track to one subscriber: clones every packet (werift's sendRtp rewrites the
 * packet and keeps it in its NACK history), strips the publisher's header extensions, maps the
 * codec to the subscriber's payload type, and keeps sequence numbers and timestamps continuous
 * when the source changes (publisher reconnect). Answers the subscriber's NACKs from werift's
 * sender history and reports its PLI/FIR upstream.
 */
export class TrackForwarder {
  readonly kind: MediaKind;
  private readonly sender: RTCRtpTransceiver['sender'];
  private readonly internals: SenderInternals;
  private readonly counters: MediaCounters;
  private readonly log: Logger;
  private readonly unsubscribe: (() => void)[] = [];
  private source: ForwardSource | undefined;
  private sourceSsrc = -1;
  private sourcePayloadType = -1;
  private codecUsable = false;
  private clockRate = 90000;
  private lastForwardAt = 0;
  private closed = false;

  constructor(private readonly options: TrackForwarderOptions) {
    this.kind = options.kind;
    this.sender = options.transceiver.sender;
    this.internals = senderInternals(this.sender);
    fixSenderReportClock(this.sender);
    this.counters = options.counters;
    this.log = options.log;
    this.unsubscribe.push(
      this.sender.onPictureLossIndication.subscribe(() => this.keyframeRequested()).unSubscribe,
      this.sender.onRtcp.subscribe((packet) => this.onRtcp(packet)).unSubscribe,
      this.sender.onGenericNack.subscribe((nack) => this.onNack(nack.lost)).unSubscribe,
    );
  }

  /** Hot path: one call per publisher packet. */
  forward(packet: RtpPacket, source: ForwardSource): void {
    if (this.closed) return;
    const header = packet.header;
    if (
      source !== this.source ||
      header.ssrc !== this.sourceSsrc ||
      header.payloadType !== this.sourcePayloadType
    ) {
      this.switchSource(header, source);
    }
    if (!this.codecUsable) return;
    if (this.sender.dtlsTransport?.state !== 'connected') return;
    const out = packet.clone();
    out.header.extensions = NO_EXTENSIONS;
    this.lastForwardAt = performance.now();
    this.sender.sendRtp(out).catch(ignore);
    this.counters.packetsOut++;
    this.counters.bytesOut += packet.payload.length;
  }

  /** Forget the current source, so the next packet is treated as a new one (publisher replaced). */
  resetSource(): void {
    this.source = undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private switchSource(header: RtpHeader, source: ForwardSource): void {
    const newStream = source !== this.source || header.ssrc !== this.sourceSsrc;
    if (header.payloadType !== this.sourcePayloadType || source !== this.source) {
      this.mapCodec(header.payloadType, source);
    }
    this.source = source;
    this.sourceSsrc = header.ssrc;
    this.sourcePayloadType = header.payloadType;
    const internals = this.internals;
    if (newStream && internals.sequenceNumber !== undefined && internals.timestamp !== undefined) {
      // Continue right after the last packet this subscriber got: next sequence number, and a
      // timestamp advanced by the wall-clock time since then.
      const elapsedMs = Math.max(0, performance.now() - this.lastForwardAt);
      const ticks = Math.max(1, Math.round((elapsedMs * this.clockRate) / 1000));
      internals.seqOffset = uint16Add(internals.sequenceNumber, 1 - header.sequenceNumber);
      internals.timestampOffset = uint32Add(internals.timestamp, ticks - header.timestamp);
      this.log.debug('forwarder source switched', {
        kind: this.kind,
        ssrc: header.ssrc,
        nextSeq: uint16Add(internals.sequenceNumber, 1),
      });
    }
  }

  private mapCodec(payloadType: number, source: ForwardSource): void {
    const codec = source.codecFor(payloadType);
    const candidates = this.options.transceiver.codecs;
    const match = codec ? matchCodec(codec, candidates) : undefined;
    if (!codec || !match) {
      if (this.codecUsable || this.sourcePayloadType === -1 || source !== this.source) {
        this.log.warn('subscriber cannot receive the publisher codec; not forwarding', {
          kind: this.kind,
          publisherCodec: codec
            ? `${codec.mimeType} ${codec.parameters ?? ''}`.trim()
            : `pt ${payloadType}`,
          subscriberCodecs: candidates.map((c) => c.mimeType).join(','),
        });
      }
      this.codecUsable = false;
      return;
    }
    this.sender.codec = match;
    this.internals.rtxPayloadType = rtxPayloadTypeFor(match.payloadType, candidates);
    this.clockRate = match.clockRate;
    this.codecUsable = true;
  }

  private keyframeRequested(): void {
    if (this.closed) return;
    this.counters.plisFromSubscribers++;
    this.options.onKeyframeRequest();
  }

  private onRtcp(packet: RtcpPacket): void {
    // PLI arrives through onPictureLossIndication; FIR only here.
    if (
      packet.type === PSFB &&
      (packet as { feedback?: { count?: number } }).feedback?.count === FIR_FORMAT
    ) {
      this.keyframeRequested();
    }
  }

  /**
   * werift has already resent what it found in its history; count those, and resend the entries
   * werift misses: its NACK parser does not wrap sequence numbers past 65535.
   */
  private onNack(lost: number[]): void {
    if (this.closed) return;
    this.counters.nacksFromSubscribers++;
    const cache = this.internals.rtpCache;
    for (const requested of lost) {
      const seq = requested & 0xffff;
      const cached = cache[seq % SENDER_HISTORY_SIZE];
      if (!cached || cached.header.sequenceNumber !== seq) continue;
      this.counters.retransmits++;
      if (requested !== seq) this.resend(cached);
    }
  }

  private resend(packet: RtpPacket): void {
    const transport = this.sender.dtlsTransport;
    if (transport?.state !== 'connected') return;
    let out = packet;
    const rtxPayloadType = this.internals.rtxPayloadType;
    if (rtxPayloadType !== undefined) {
      const internals = this.sender as unknown as { rtxSequenceNumber: number };
      out = wrapRtx(packet, rtxPayloadType, internals.rtxSequenceNumber, this.sender.rtxSsrc);
      internals.rtxSequenceNumber = uint16Add(internals.rtxSequenceNumber, 1);
    }
    transport.sendRtp(out.payload, out.header).catch(ignore);
  }
}
