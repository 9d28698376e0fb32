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
import { forwardTiming } from './forwardTiming.ts';
import {
  type LayerChange,
  LayerSelector,
  type LayerSelectorOptions,
  STILL,
} from './LayerSelector.ts';
import { LegLoss, LinkEstimate, type ReceiverReportBlock } from './LinkEstimate.ts';
import {
  DEFAULT_MAX_PLAYOUT_DELAY_MS,
  PLAYOUT_DELAY_MAX_MS,
  PLAYOUT_DELAY_URI,
  PlayoutDelayPlan,
  playoutDelayPayload,
  type RepairDelays,
} from './playoutDelay.ts';
import { RateMeter } from './RateMeter.ts';
import { RetransmitHistory } from './RetransmitHistory.ts';
import type { MediaCounters, MediaKind } from './types.ts';
import { Vp8IdRewriter } from './vp8Ids.ts';
import {
  fixSenderReportClock,
  matchCodec,
  rtxPayloadTypeFor,
  type SenderInternals,
  senderInternals,
} from './werift.ts';
import {
  copyPacketInto,
  reusablePacket,
  sendRtpKeepsNothing,
  sendRtpNow,
} from './weriftHotPath.ts';
import { interceptNacks } from './weriftPatches.ts';

/** What a forwarder needs to know about the publisher stream a packet came from. */
export interface ForwardSource {
  /** The publisher's negotiated codec for a payload type. */
  codecFor(payloadType: number): RTCRtpCodecParameters | undefined;
  /** Number of simulcast layers of this kind (1 without simulcast). */
  readonly layerCount: number;
  /** Whether `packet` of this stream begins a keyframe. */
  isKeyframeStart(packet: RtpPacket): boolean;
  /** Ask the publisher for a keyframe on this stream (throttled). */
  requestKeyframe(): void;
  /** Measured bitrate, bit/s. */
  bitrate(now: number): number;
  /** When its last packet arrived, `performance.now()` ms. */
  readonly lastPacketAt: number;
  /** Since when it has arrived without a silence of {@link LAYER_STALL_MS}. */
  readonly steadySince: number;
  /** The publisher has said it switched this layer off (its layer allocation leaves it out). */
  readonly pausedByPublisher: boolean;
  /** Its last packets, oldest first (simulcast layers; empty otherwise). */
  recentPackets(): RtpPacket[];
  readonly rid?: string;
  /** Video: the repair times of the publisher's uplink (with NACK). */
  readonly repairs?: RepairDelays;
}

export interface TrackForwarderOptions {
  kind: MediaKind;
  /** The subscriber's sendonly transceiver for this kind. */
  transceiver: RTCRtpTransceiver;
  counters: MediaCounters;
  log: Logger;
  /** The subscriber asked for a keyframe (PLI or FIR) before any source was known. */
  onKeyframeRequest: () => void;
  /** The subscriber's link estimate, shared by its forwarders (REMB may come on either). */
  estimate?: LinkEstimate;
  /** Layer switching rules (video). */
  selector?: LayerSelectorOptions;
  /** Still-frame mode: a keyframe of the lowest layer this often, ms. */
  stillIntervalMs?: number;
  /**
   * Video: most minimum playout delay to ask of the subscriber to hide repairs on the publisher's
   * uplink, ms (0: never ask). Needs the playout-delay extension negotiated.
   */
  maxPlayoutDelayMs?: number;
  /**
   * Video: the viewer's second, backup picture. It gets the publisher's lowest simulcast layer
   * and nothing else (no layer choice, nothing from a single-layer publisher), for the page to
   * show while its main picture waits for a repair or a keyframe. Its feedback does not move the
   * shared estimate: the main forwarder reads the reports against all that is sent.
   */
  backup?: boolean;
  /**
   * Where this forwarder's REMBs go instead of its own estimate. The viewer's REMB covers all it
   * receives, and werift hands it to the sender of the first SSRC it lists, which may be the
   * backup picture's: the backup passes it on to the main video's {@link TrackForwarder.receivedRemb}.
   */
  onRemb?: (bps: number, now: number) => void;
}

/** What one subscriber's video currently gets. */
export interface ForwarderQuality {
  /** Index of the layer forwarded (0 = lowest), undefined before any. */
  layer: number | undefined;
  /** Its rid, for simulcast publishers. */
  rid: string | undefined;
  /** Layers the publisher sends. */
  layers: number;
  /** The link cannot carry even the lowest layer: audio plus a still frame every few seconds. */
  weak: boolean;
  /** The subscriber's estimated bandwidth (audio included), bit/s. */
  estimateBps: number;
  /** The subscriber's latest REMB, bit/s; undefined before any. */
  rembBps: number | undefined;
  /** What the node sends it on this track, bit/s. */
  sentBps: number;
  /** Loss on its own leg in its last report (0..1): numbers the node never sent are not counted. */
  lossFraction: number;
  /** Round trip measured from its receiver reports, ms. */
  rttMs: number | undefined;
  /** Layer changes so far. */
  switches: number;
  /** Of those, steps down because of the subscriber's own link. */
  linkDowns: number;
  /**
   * The minimum playout delay the node asks of the subscriber (playout-delay extension), ms;
   * undefined while it has asked none.
   */
  playoutDelayMs: number | undefined;
}

type Extensions = RtpHeader['extensions'];
/** Shared, never-mutated empty list: werift's sendRtp builds a new extension array per packet. */
const NO_EXTENSIONS = Object.freeze([]) as unknown as Extensions;
const FIR_FORMAT = 4;
const REMB_FORMAT = 15;
const PSFB = 206;
const SR = 200;
const RR = 201;
/** Reported loss at or above this moves a subscriber down without waiting. */
const HEAVY_LOSS = 0.2;
/** A leg-loss figure this high is logged (debug) with what it was made of. */
const LOGGED_LEG_LOSS = 0.1;
const DEFAULT_STILL_INTERVAL_MS = 3_000;
/** A switch still waiting for its keyframe asks again this often. */
const SWITCH_RETRY_MS = 1_000;
/**
 * Nothing from the publisher for this long is an outage upstream: no layer is tried higher until
 * it has sent steadily again for the whole climb (its first seconds back are its weakest).
 */
const PUBLISHER_SILENCE_MS = 300;
/**
 * A simulcast layer silent this long while another of the publisher's layers still arrives has
 * been dropped by the publisher (its uplink estimate no longer carries it): it counts as gone at
 * once, rather than when its one-second bitrate reaches zero. Well over a frame interval at the
 * lowest frame rate an encoder keeps a layer at (5 fps), and over the encoder's own frame drops.
 */
export const LAYER_STALL_MS = 450;
/** How far a re-based stream moves on before its older numbers stop being refused (~1-3 s). */
const REBASE_GUARD_PACKETS = 1_000;
/** Packets of a layer being switched to kept until its keyframe starts (~3 s of a 600 kbit/s layer). */
const EARLY_MAX_PACKETS = 256;

function ignore(): void {}

const NO_BYTES = new Uint8Array(0);

/** Audio: ~50 packets of ~100 bytes a second. */
const AUDIO_HISTORY = { initialCapacity: 128, initialBytes: 32 * 1024 } as const;

/** Generic NACK (RFC 4585 `a=rtcp-fb:PT nack`, no parameter) negotiated for `codec`. */
function negotiatesNack(codec: RTCRtpCodecParameters): boolean {
  return codec.rtcpFeedback.some((f) => f.type === 'nack' && !f.parameter);
}

/**
 * Sends one publisher track to one subscriber: clones every packet (werift's sendRtp rewrites the
 * packet), strips the publisher's header extensions, maps the codec to the subscriber's payload
 * type, and keeps sequence numbers and timestamps continuous when the source changes (publisher
 * reconnect, simulcast layer switch). Answers the subscriber's NACKs from its own history, sized
 * to the leg's round trip, and asks the right publisher stream for a keyframe on PLI/FIR.
 *
 * Video from a simulcast publisher: `selectLayer` (called periodically) picks the layer the
 * subscriber's link can carry; a switch asks the target layer for a keyframe and keeps forwarding
 * the old layer until that keyframe arrives. When even the lowest layer does not fit, only one
 * keyframe of it is forwarded every few seconds (still-frame mode). Audio is never held back.
 */
export class TrackForwarder {
  readonly kind: MediaKind;
  private readonly sender: RTCRtpTransceiver['sender'];
  private readonly internals: SenderInternals;
  private readonly counters: MediaCounters;
  private readonly log: Logger;
  private readonly unsubscribe: (() => void)[] = [];
  /**
   * What NACKs are answered from, kept only while the codec sent to the subscriber has generic
   * NACK negotiated: Chrome and the bench's clients offer none for Opus, so an audio leg usually
   * keeps nothing.
   */
  private history: RetransmitHistory | undefined;
  private readonly sentMeter = new RateMeter(1_000, 10);
  private readonly estimate: LinkEstimate;
  private readonly selector: LayerSelector;
  private readonly stillIntervalMs: number;
  private source: ForwardSource | undefined;
  private sourceSsrc = -1;
  private sourcePayloadType = -1;
  private codecUsable = false;
  private clockRate = 90000;
  private lastForwardAt = 0;
  /**
   * After the subscriber's numbering was re-based onto the current stream (a switch, or a
   * resumption at a keyframe): that stream's first number sent. A later packet of the stream
   * numbered before it (a repair or reordered packet that lands after the switch) would take a
   * number the subscriber already had from the old stream, with a foreign payload: it is dropped.
   * Cleared once the stream has moved on {@link REBASE_GUARD_PACKETS}.
   */
  private rebasedAt: number | undefined;
  private closed = false;
  /** The publisher's layers of this kind, lowest first (video). */
  private layers: readonly ForwardSource[] = [];
  /** The layer being switched to, forwarded from its next keyframe. */
  private target: ForwardSource | undefined;
  private targetSince = 0;
  /** Why the selector chose `target`. */
  private targetReason: LayerChange['reason'] | undefined;
  /** Same source, but skip to its next keyframe (leaving still-frame mode). */
  private awaitKeyframe = false;
  private still = false;
  private stillWanted = false;
  private stillTimestamp = -1;
  private lastStillRequestAt = Number.NEGATIVE_INFINITY;
  private heavyLoss = false;
  private lastEstimateBps: number | undefined;
  /** VP8 picture numbering kept continuous across stream switches (VP8 video only). */
  private vp8Ids: Vp8IdRewriter | undefined;
  /** When a packet of any of the publisher's layers last arrived (ms). */
  private lastArrivalAt = Number.NEGATIVE_INFINITY;
  /** The current layer's last packet time when its stall was acted on (once per stall). */
  private stallSeenAt = Number.NaN;
  /**
   * Packets of the layer being switched to that came before its keyframe's first packet (the
   * rest of the keyframe when that first packet was reordered or repaired, and the frames after
   * it): sent right after it, or the viewer's first picture of the layer is never whole.
   */
  private early: RtpPacket[] = [];
  private earlyFrom: ForwardSource | undefined;
  /** What the subscriber's audio took at the last layer decision: a REMB covers audio too. */
  private audioBps = 0;
  /**
   * Video with a backup picture: what the backup sent at the last decision (a REMB covers it
   * too), and what it would take (the lowest layer), so the estimate may grow to carry both.
   */
  private backupSentBps = 0;
  private backupWantBps = 0;
  /** Backup forwarder: sending (the main picture's link has room for it), or paused. */
  private backupOn = true;
  /** The subscriber's loss on its own leg, from its reports against what was actually sent. */
  /** Video only: its receiver reports choose the layer. */
  private readonly legLoss: LegLoss | undefined;
  /** Video with the playout-delay extension negotiated: its id, and what to ask for. */
  private readonly playoutId: number | undefined;
  private readonly playout: PlayoutDelayPlan | undefined;
  /** What every forwarded packet carries: nothing, or the playout delay in force. */
  private extensions: Extensions = NO_EXTENSIONS;
  /** See {@link TrackForwarderOptions.backup}. */
  private readonly backup: boolean;
  /**
   * The packet object every forwarded packet is written into and sent from, when sending keeps
   * no reference to it ({@link sendRtpKeepsNothing}): one fewer header and packet per packet per
   * viewer for the young generation.
   */
  private readonly outPacket = reusablePacket();

  constructor(private readonly options: TrackForwarderOptions) {
    this.kind = options.kind;
    this.backup = options.kind === 'video' && options.backup === true;
    this.legLoss = options.kind === 'video' ? new LegLoss() : undefined;
    this.sender = options.transceiver.sender;
    this.internals = senderInternals(this.sender);
    fixSenderReportClock(this.sender);
    this.counters = options.counters;
    this.log = options.log;
    this.estimate = options.estimate ?? new LinkEstimate();
    this.selector = new LayerSelector(options.selector);
    this.stillIntervalMs = options.stillIntervalMs ?? DEFAULT_STILL_INTERVAL_MS;
    const maxPlayoutDelayMs = options.maxPlayoutDelayMs ?? DEFAULT_MAX_PLAYOUT_DELAY_MS;
    this.playoutId =
      options.kind === 'video' && maxPlayoutDelayMs > 0
        ? options.transceiver.headerExtensions.find((e) => e.uri === PLAYOUT_DELAY_URI)?.id
        : undefined;
    this.playout =
      this.playoutId === undefined ? undefined : new PlayoutDelayPlan(maxPlayoutDelayMs);
    interceptNacks(this.sender, (nack) => this.onNack(nack.lost));
    this.unsubscribe.push(
      this.sender.onPictureLossIndication.subscribe(() => {
        this.counters.plisFromSubscribers++;
        this.keyframeRequested();
      }).unSubscribe,
      this.sender.onRtcp.subscribe((packet) => this.onRtcp(packet)).unSubscribe,
    );
  }

  /**
   * Hot path: one call per publisher packet. `arrivedAt` (`performance.now()` when the packet
   * reached the node) times the forwarding for `returncam_forward_seconds`.
   */
  forward(packet: RtpPacket, source: ForwardSource, arrivedAt?: number): void {
    if (this.closed) return;
    // a backup picture is the lowest layer of a simulcast publisher, or nothing
    if (this.backup && (!this.backupOn || this.layers.length <= 1 || source !== this.layers[0]))
      return;
    if (arrivedAt !== undefined) this.lastArrivalAt = arrivedAt;
    let admitted = false;
    if (source !== this.source) {
      const current = this.source;
      if (
        current !== undefined &&
        arrivedAt !== undefined &&
        this.layers.length > 1 &&
        arrivedAt - current.lastPacketAt > LAYER_STALL_MS &&
        arrivedAt - source.steadySince >= LAYER_STALL_MS &&
        current.lastPacketAt !== this.stallSeenAt
      ) {
        // The publisher dropped the layer this subscriber gets while others go on: decide now,
        // not at the next tick, since every moment until the lower layer's keyframe is frozen.
        this.stallSeenAt = current.lastPacketAt;
        this.selectLayer(arrivedAt, this.audioBps);
      }
      if (!this.admit(packet, source)) return;
      admitted = this.earlyFrom === source;
    }
    const header = packet.header;
    if (
      source !== this.source ||
      header.ssrc !== this.sourceSsrc ||
      header.payloadType !== this.sourcePayloadType
    ) {
      this.switchSource(header, source);
    }
    if (!this.codecUsable) return;
    if ((this.still || this.awaitKeyframe) && !this.gate(packet, source)) return;
    if (this.rebasedAt !== undefined) {
      const ahead = (header.sequenceNumber - this.rebasedAt) & 0xffff;
      if (ahead >= 0x8000) {
        // from before the re-base: its number is taken (rare: a late repair after a switch)
        this.log.debug('packet from before the switch dropped', {
          kind: this.kind,
          seq: header.sequenceNumber,
          behind: 0x10000 - ahead,
        });
        return;
      }
      if (ahead > REBASE_GUARD_PACKETS) this.rebasedAt = undefined;
    }
    if (this.sender.dtlsTransport?.state !== 'connected') return;
    // sendRtp rewrites the header, so it gets a copy: the one reused packet object when nothing
    // keeps it past the send, else a new header and packet sharing the payload (the patched
    // `clone`), which werift's own sendRtp keeps.
    const out = sendRtpKeepsNothing(this.sender)
      ? copyPacketInto(this.outPacket, packet)
      : packet.clone();
    out.header.extensions = this.extensions;
    if (this.vp8Ids) out.payload = this.vp8Ids.rewrite(packet.payload);
    const now = performance.now();
    this.lastForwardAt = now;
    const timed = arrivedAt !== undefined && forwardTiming.shouldSample();
    let sent: Buffer | undefined;
    try {
      sent = sendRtpNow(this.sender, out);
    } catch {
      return; // werift's sendRtp would have rejected: the packet was not sent
    }
    if (timed) forwardTiming.record(performance.now() - arrivedAt);
    // sendRtp has rewritten the header synchronously: the number the subscriber will NACK, and
    // the header it saw (in the clear at the start of the SRTP packet).
    const history = this.history;
    if (history) {
      if (sent) {
        history.add(out.header.sequenceNumber, sent, out.header.serializeSize, out.payload, now);
      } else {
        const raw = out.serialize();
        history.add(out.header.sequenceNumber, raw, raw.length, NO_BYTES, now);
      }
    }
    this.legLoss?.sent(out.header.sequenceNumber, now);
    this.sentMeter.add(packet.payload.length, now);
    this.counters.packetsOut++;
    this.counters.bytesOut += packet.payload.length;
    if (admitted) this.sendEarly(packet.header.sequenceNumber, source);
  }

  /**
   * The packets of the new layer that came before its keyframe's first one and follow it, each
   * number once (a packet can be both among the layer's last ones and kept since, or repaired).
   */
  private sendEarly(keyframeSeq: number, source: ForwardSource): void {
    const early = this.early;
    this.early = [];
    this.earlyFrom = undefined;
    const after = (p: RtpPacket) => (p.header.sequenceNumber - keyframeSeq) & 0xffff;
    const follow = early.filter((p) => after(p) > 0 && after(p) < 0x8000);
    follow.sort((a, b) => after(a) - after(b));
    let last = -1;
    for (const p of follow) {
      if (p.header.sequenceNumber === last) continue;
      last = p.header.sequenceNumber;
      this.forward(p, source);
    }
  }

  /** Forget the current source, so the next packet is treated as a new one (publisher replaced). */
  resetSource(): void {
    this.source = undefined;
    this.target = undefined;
  }

  /**
   * The publisher's streams of this kind, lowest layer first (video; one entry without
   * simulcast). A new set (new publisher) starts at the layer the subscriber had, or the top.
   */
  setLayers(layers: readonly ForwardSource[]): void {
    if (sameLayers(layers, this.layers)) return;
    this.layers = layers;
    if (this.kind !== 'video' || layers.length <= 1) {
      this.target = undefined;
      return;
    }
    const chosen = this.backup ? 0 : this.selector.layer;
    const index =
      chosen === undefined ? layers.length - 1 : Math.min(Math.max(chosen, 0), layers.length - 1);
    this.targetReason = undefined;
    this.switchTo(layers[index]!, performance.now());
  }

  /**
   * The subscriber's path is being replaced (ICE restart): until {@link pathRestored}, what is
   * sent may be lost with the old path, which says nothing of the new one, so the leg's reports
   * choose no layer.
   */
  pathRestarting(): void {
    this.legLoss?.pause();
  }

  /** The subscriber's (new) path carries media again from `now`. */
  pathRestored(now: number): void {
    this.legLoss?.resume(now);
  }

  /** The subscriber leg's round trip, ms, as werift measures it from the subscriber's reports. */
  private legRttMs(): number | undefined {
    const rttS = (this.sender as unknown as { rtt?: number }).rtt;
    return rttS === undefined ? undefined : rttS * 1000;
  }

  /** What this subscriber's stream currently is. */
  quality(now = performance.now()): ForwarderQuality {
    const layer = this.selector.layer;
    const index = this.source ? this.layers.indexOf(this.source) : -1;
    return {
      layer: index >= 0 ? index : undefined,
      rid: this.source?.rid,
      layers: this.layers.length,
      weak: layer === STILL,
      estimateBps: Math.round(
        this.lastEstimateBps ?? this.estimate.value(now, this.sentBitrate(now) + this.audioBps),
      ),
      rembBps: this.estimate.rembBps,
      sentBps: Math.round(this.sentBitrate(now)),
      lossFraction: this.estimate.lossFraction,
      rttMs: this.legRttMs(),
      switches: this.selector.switches,
      linkDowns: this.selector.linkDowns,
      playoutDelayMs: this.playout?.current,
    };
  }

  /** What the node sends this subscriber on this track, bit/s (payload). */
  sentBitrate(now: number): number {
    return this.sentMeter.bitsPerSecond(now);
  }

  /** The publisher's lowest layer's bitrate (what a backup picture takes), bit/s; 0 without simulcast. */
  lowestLayerBitrate(now: number): number {
    return this.layers.length > 1 ? layerBitrates(this.layers, now)[0]! : 0;
  }

  /**
   * Main video: whether the viewer's link has room for its backup picture (`wantBps`) beside
   * what this track and `audioBps` take, by the estimate of the last decision; never while the
   * viewer is on still frames. On the lowest layer itself (the publisher's upper layers are off)
   * it stays on when there is room: pausing and resuming it would cost the publisher a keyframe.
   * `sending`: the backup is on now (it stays on down to 1× its rate; it comes on only at 1.3×,
   * so it does not flap at the edge).
   */
  roomForBackup(now: number, audioBps: number, wantBps: number, sending: boolean): boolean {
    if (this.closed || this.kind !== 'video' || this.layers.length <= 1) return false;
    if (this.selector.layer === STILL || this.still) return false;
    const spare = (this.lastEstimateBps ?? 0) - audioBps - this.sentBitrate(now);
    return spare >= wantBps * (sending ? 1 : 1.3);
  }

  /**
   * Backup forwarder: send, or pause. Back on, it starts at the lowest layer's next keyframe
   * (asked for now), numbered on from the last packet the viewer got.
   */
  setBackupOn(on: boolean): void {
    if (!this.backup || on === this.backupOn || this.closed) return;
    this.backupOn = on;
    this.log.debug(on ? 'backup picture on' : 'backup picture paused');
    if (!on || this.source === undefined) return;
    this.awaitKeyframe = true;
    this.source.requestKeyframe();
  }

  /** Backup forwarder: whether it sends now. */
  get backupSending(): boolean {
    return this.backup && this.backupOn;
  }

  /**
   * Video: re-decides the layer from the subscriber's feedback and the layers' measured
   * bitrates. `audioBps` is what the subscriber's audio takes: video gets the rest, audio is
   * never cut to make room. `backup`: the viewer's backup picture, which comes after the main
   * one: what it sends now is counted against the REMB but not taken from the main picture's
   * budget (it is paused when there is no room: {@link roomForBackup}).
   */
  selectLayer(now: number, audioBps: number, backup?: { sentBps: number; wantBps: number }): void {
    if (this.closed || this.kind !== 'video') return;
    const layers = this.layers;
    if (layers.length === 0) return;
    this.audioBps = audioBps;
    if (backup) {
      this.backupSentBps = backup.sentBps;
      this.backupWantBps = backup.wantBps;
    }
    if (this.earlyFrom !== undefined && this.earlyFrom !== this.target) {
      this.early = []; // that switch is over
      this.earlyFrom = undefined;
    }
    const rttMs = this.legRttMs();
    if (rttMs !== undefined) this.history?.setRtt(rttMs);
    if (this.backup) {
      // a switch to the lowest layer still waiting for its keyframe asks again
      if (this.target && now - this.targetSince >= SWITCH_RETRY_MS) {
        this.targetSince = now;
        this.target.requestKeyframe();
      }
      // held as long as the main picture, so the two show the same moment
      this.updatePlayoutDelay(now);
      return;
    }
    const layerBps = layerBitrates(layers, now);
    let topBps = 0;
    for (const bps of layerBps) topBps = Math.max(topBps, bps);
    // The estimate need not grow past what the best layer takes (and the backup picture), with
    // room to spare.
    this.estimate.setCeiling(Math.max(300_000, 1.5 * (topBps + audioBps + this.backupWantBps)));
    const publisherSilent = now - this.lastArrivalAt > PUBLISHER_SILENCE_MS;
    if (publisherSilent) {
      this.estimate.upstreamSilent();
      // A switch up still waiting for its keyframe when the publisher went quiet would land on
      // that layer's first keyframe after the outage, when the layer is at its weakest: stay.
      const target = this.target;
      const from = this.source ? layers.indexOf(this.source) : -1;
      if (target && from >= 0 && layers.indexOf(target) > from && !this.still) {
        this.target = undefined;
        this.selector.abandonUp(from);
        this.log.debug('subscriber layer switch up abandoned: publisher silent', { layer: from });
      }
    }
    const sent = this.sentBitrate(now) + audioBps + this.backupSentBps;
    const estimate = this.estimate.value(now, sent);
    this.lastEstimateBps = estimate;
    const budget = estimate - audioBps;
    const change = this.selector.update({
      now,
      budgetBps: budget,
      layerBps,
      heavyLoss: this.heavyLoss,
      linkClean: this.estimate.clean(now),
      publisherSilent,
    });
    this.heavyLoss = false;
    if (change?.reason === 'probe') {
      // Room for the layer being tried, so the estimate does not move it straight back down.
      this.estimate.probe(1.5 * layerBps[change.to]! + audioBps);
      this.lastEstimateBps = this.estimate.value(now, sent);
    }
    if (change) {
      // What the decision was made from, for the debug log: a switch down that the link did not
      // call for (a REMB or loss figure that misread it) shows here.
      this.log.debug('subscriber layer decision', {
        budgetKbps: Math.round(budget / 1000),
        rembKbps:
          this.estimate.rembBps === undefined ? 'none' : Math.round(this.estimate.rembBps / 1000),
        lossBasedKbps: Math.round(this.estimate.lossBased / 1000),
        loss: this.estimate.lossFraction.toFixed(3),
        sentKbps: Math.round(sent / 1000),
        layersKbps: layerBps.map((bps) => Math.round(bps / 1000)).join(','),
      });
      this.apply(change, now);
    }
    const lowest = layers[0]!;
    if (this.still && now - this.lastStillRequestAt >= this.stillIntervalMs) {
      this.lastStillRequestAt = now;
      this.stillWanted = true;
      lowest.requestKeyframe();
    }
    if (this.target && now - this.targetSince >= SWITCH_RETRY_MS) {
      this.targetSince = now;
      this.target.requestKeyframe();
    }
    this.updatePlayoutDelay(now);
  }

  /** Asks the subscriber to hold video long enough to hide a typical repair on the uplink. */
  private updatePlayoutDelay(now: number): void {
    const plan = this.playout;
    if (plan === undefined) return;
    const before = plan.current;
    const minMs = plan.update(this.source?.repairs?.typicalMs(now));
    if (minMs === before || minMs === undefined) return;
    // A new list each time: forwarded packets (and the retransmit history) share it, unchanged.
    this.extensions = Object.freeze([
      { id: this.playoutId!, payload: playoutDelayPayload(minMs, PLAYOUT_DELAY_MAX_MS) },
    ]) as unknown as Extensions;
    this.log.debug('subscriber playout delay', { minMs, before });
  }

  /**
   * The publisher's layer allocation switched a layer off or on. A viewer on a layer switched off
   * (or waiting to switch to one) is moved at once: every moment until the lower layer's
   * keyframe arrives, it sees nothing new.
   */
  publisherLayersChanged(now: number): void {
    if (this.closed || this.backup || this.kind !== 'video' || this.layers.length <= 1) return;
    const source = this.source;
    const target = this.target;
    if (source?.pausedByPublisher || target?.pausedByPublisher) {
      this.selectLayer(now, this.audioBps);
      return;
    }
    // Back on before the lower layer's keyframe came: the viewer never left it, so it stays (a
    // switch made for a dip of tens of milliseconds would keep it low for seconds).
    if (source && target && this.targetReason === 'layer_gone' && !this.still) {
      const from = this.layers.indexOf(source);
      if (this.layers.indexOf(target) < from) {
        this.target = undefined;
        this.selector.cancelDown(from);
        this.log.debug('subscriber layer switch down cancelled: layer back', { layer: from });
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private apply(change: LayerChange, now: number): void {
    const layers = this.layers;
    this.log.debug('subscriber layer changed', {
      from: change.from,
      to: change.to,
      reason: change.reason,
    });
    if (change.from !== undefined) this.counters.layerSwitches++;
    if (change.to === STILL) {
      if (!this.still) this.counters.stillFrameEntries++;
      this.still = true;
      this.stillWanted = true;
      this.lastStillRequestAt = now;
      this.awaitKeyframe = false;
      this.switchTo(layers[0]!, now);
      layers[0]!.requestKeyframe();
      return;
    }
    const wasStill = this.still;
    this.still = false;
    const next = layers[change.to];
    if (!next) return;
    this.targetReason = change.reason;
    if (next === this.source) {
      // Leaving still-frame mode on the same layer: resume at its next keyframe.
      this.target = undefined;
      if (wasStill) {
        this.awaitKeyframe = true;
        next.requestKeyframe();
      }
      return;
    }
    this.switchTo(next, now);
  }

  /** Asks `layer` for a keyframe and forwards it from that keyframe on. */
  private switchTo(layer: ForwardSource, now: number): void {
    if (layer === this.source) {
      this.target = undefined;
      return;
    }
    this.target = layer;
    this.targetSince = now;
    // What already came of it: the rest of a keyframe whose first packet is late goes out too.
    this.early = layer.recentPackets();
    this.earlyFrom = layer;
    layer.requestKeyframe();
  }

  /** A packet from a stream other than the current one: switch to it now? */
  private admit(packet: RtpPacket, source: ForwardSource): boolean {
    if (this.kind !== 'video' || source.layerCount <= 1) {
      // One stream per kind: a new source is a reconnected publisher; take it as it comes.
      this.target = undefined;
      return true;
    }
    if (source !== this.target) return false;
    if (!source.isKeyframeStart(packet)) {
      if (this.earlyFrom !== source) {
        this.early = [];
        this.earlyFrom = source;
      }
      if (this.early.length >= EARLY_MAX_PACKETS) this.early.shift();
      this.early.push(packet);
      return false;
    }
    this.target = undefined;
    return true;
  }

  /** Still-frame mode and resumption: which packets of the current stream go out. */
  private gate(packet: RtpPacket, source: ForwardSource): boolean {
    const header = packet.header;
    if (this.still && header.timestamp === this.stillTimestamp) return true;
    const wanted = this.awaitKeyframe || this.stillWanted;
    if (!wanted || !source.isKeyframeStart(packet)) return false;
    // Continue the subscriber's sequence numbers right after the last packet it got.
    this.alignSequence(header);
    if (this.awaitKeyframe) {
      this.awaitKeyframe = false;
      return true;
    }
    this.stillWanted = false;
    this.stillTimestamp = header.timestamp;
    return true;
  }

  /** Numbers this packet right after the last one the subscriber got (a re-base). */
  private alignSequence(header: RtpHeader): void {
    const internals = this.internals;
    if (internals.sequenceNumber === undefined) return;
    internals.seqOffset = uint16Add(internals.sequenceNumber, 1 - header.sequenceNumber);
    this.rebasedAt = header.sequenceNumber;
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
      this.alignSequence(header);
      internals.timestampOffset = uint32Add(internals.timestamp, ticks - header.timestamp);
      this.vp8Ids?.streamChanged();
      this.log.debug('forwarder source switched', {
        kind: this.kind,
        ssrc: header.ssrc,
        rid: source.rid,
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
    if (match.mimeType.toLowerCase() === 'video/vp8') this.vp8Ids ??= new Vp8IdRewriter();
    else this.vp8Ids = undefined;
    this.internals.rtxPayloadType = rtxPayloadTypeFor(match.payloadType, candidates);
    this.history = negotiatesNack(match)
      ? (this.history ?? new RetransmitHistory(this.kind === 'audio' ? AUDIO_HISTORY : {}))
      : undefined;
    this.clockRate = match.clockRate;
    this.codecUsable = true;
  }

  /**
   * The viewer's page says its picture stands still while video packets keep arriving (its
   * decoder waits for a frame that will not come): a keyframe request, made ~2 s before the
   * browser's own. The keyframe throttle of the publisher's stream spaces these as any other.
   */
  viewerStalled(): void {
    if (this.closed) return;
    this.counters.stallReportsFromViewers++;
    this.log.debug('viewer reports its video standing still', {
      kind: this.kind,
      layer: this.source ? this.layers.indexOf(this.source) : 'none',
      switching: this.target !== undefined,
      still: this.still,
    });
    this.keyframeRequested();
  }

  private keyframeRequested(): void {
    if (this.closed) return;
    if (this.still) {
      // Still-frame mode sends keyframes on its own schedule; a viewer that has none yet gets one.
      if (this.stillTimestamp < 0) {
        this.stillWanted = true;
        this.layers[0]?.requestKeyframe();
      }
      return;
    }
    const source = this.target ?? this.source;
    if (source) source.requestKeyframe();
    else this.options.onKeyframeRequest();
  }

  private onRtcp(packet: RtcpPacket): void {
    const type = packet.type;
    if (type === PSFB) {
      const feedback = (packet as { feedback?: { count?: number; bitrate?: bigint } }).feedback;
      if (feedback?.count === FIR_FORMAT) {
        // PLI arrives through onPictureLossIndication; FIR only here.
        this.counters.plisFromSubscribers++;
        this.keyframeRequested();
      } else if (feedback?.count === REMB_FORMAT && feedback.bitrate !== undefined) {
        const now = performance.now();
        const bps = Number(feedback.bitrate);
        if (this.options.onRemb) this.options.onRemb(bps, now);
        else this.receivedRemb(bps, now);
      }
    } else if ((type === RR || type === SR) && this.kind === 'video' && !this.backup) {
      const reports = (packet as { reports?: ReceiverReportBlock[] }).reports;
      if (!reports) return;
      for (const report of reports) {
        if (report.ssrc !== this.sender.ssrc) continue;
        const now = performance.now();
        const loss = this.legLoss!.report(report, now, this.legRttMs() ?? 0);
        if (loss === undefined) continue;
        if (loss >= LOGGED_LEG_LOSS) {
          this.log.debug('subscriber leg loss', {
            loss: Math.round(loss * 1000) / 1000,
            ...this.legLoss!.lastSample,
            highest: report.highestSequence,
            cumulativeLost: report.packetsLost,
          });
        }
        if (this.estimate.onReceiverReport(loss, now) && loss >= HEAVY_LOSS) this.heavyLoss = true;
      }
    }
  }

  /** A REMB from the subscriber: it covers everything the subscriber receives, audio included. */
  receivedRemb(bps: number, now: number): void {
    if (this.closed) return;
    this.estimate.onRemb(bps, now, this.sentBitrate(now) + this.audioBps + this.backupSentBps);
  }

  /** Bytes this leg keeps for answering NACKs (0 when the subscriber negotiated none). */
  get retransmitHistoryBytes(): number {
    return this.history?.bytes ?? 0;
  }

  /** Resends what the subscriber lost from this leg's own history (RTX when negotiated). */
  private onNack(lost: number[]): void {
    if (this.closed) return;
    this.counters.nacksFromSubscribers++;
    const now = performance.now();
    for (const requested of lost) {
      const packet = this.history?.get(requested & 0xffff, now);
      if (!packet) continue;
      if (this.resend(packet)) this.counters.retransmits++;
    }
  }

  private resend(packet: RtpPacket): boolean {
    const transport = this.sender.dtlsTransport;
    if (transport?.state !== 'connected') return false;
    let out = packet;
    const rtxPayloadType = this.internals.rtxPayloadType;
    if (rtxPayloadType !== undefined) {
      const internals = this.sender as unknown as { rtxSequenceNumber: number };
      out = wrapRtx(packet, rtxPayloadType, internals.rtxSequenceNumber, this.sender.rtxSsrc);
      internals.rtxSequenceNumber = uint16Add(internals.rtxSequenceNumber, 1);
    }
    transport.sendRtp(out.payload, out.header).catch(ignore);
    return true;
  }
}

function sameLayers(a: readonly ForwardSource[], b: readonly ForwardSource[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Each layer's bitrate over the last second, with 0 for a layer the publisher has said it
 * switched off, or that has stalled (silent for {@link LAYER_STALL_MS}) while another has arrived
 * steadily for as long. When none has, the publisher's whole uplink is out or just back (the
 * first layer to return must not make the others look dropped): the bitrates stand, and the
 * outage rules decide.
 */
export function layerBitrates(layers: readonly ForwardSource[], now: number): number[] {
  let anySteady = false;
  for (const layer of layers) {
    if (now - layer.lastPacketAt <= LAYER_STALL_MS && now - layer.steadySince >= LAYER_STALL_MS) {
      anySteady = true;
    }
  }
  return layers.map((layer) =>
    layer.pausedByPublisher || (anySteady && now - layer.lastPacketAt > LAYER_STALL_MS)
      ? 0
      : layer.bitrate(now),
  );
}
