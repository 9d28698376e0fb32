import nodeDataChannel, { type PeerConnection, type Track } from 'node-datachannel';
import { errorMessage } from '../../core/errors.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { NackTracker } from '../../core/NackTracker.ts';
import {
  buildNack,
  buildPli,
  buildReceiverReport,
  buildRemb,
  isRtcp,
  isVp8Keyframe,
  parseRtp,
  parseSenderReports,
  parseVp8Descriptor,
  ReceptionStats,
  type SenderReport,
  seededRandom,
  vp8KeyframeSize,
} from './rtp.ts';
import {
  deleteSession,
  gathered,
  mediaOpened,
  postOffer,
  randomSsrc,
  type SignallingOptions,
} from './signalling.ts';
import type { SentFrame } from './WhipPublisher.ts';

export const SUBSCRIBER_VP8_PT = 96;
export const SUBSCRIBER_RTX_PT = 97;
export const SUBSCRIBER_OPUS_PT = 111;

export interface WhepSubscriberOptions extends SignallingOptions {
  /** Drop this share (0..1) of incoming video RTP before reassembly, to exercise NACK. */
  dropRate?: number;
  /** Seed of the drop PRNG (reproducible runs). */
  seed?: number;
  /** Offer RTX for video retransmissions (default true). */
  rtx?: boolean;
  /** Time between NACKs for the same packet (default 30 ms: loopback round trip + margin). */
  nackRetryMs?: number;
  /** NACKs per missing packet before giving up (default 10). */
  nackMaxTries?: number;
  /** How long a missing packet is waited for before it is given up (default 1000 ms). */
  nackMaxAgeMs?: number;
  /** How long ICE + DTLS may take after the answer. */
  connectTimeoutMs?: number;
  /**
   * Send REMB twice a second as a receive-side estimator on a link of this many bit/s would:
   * while it receives more than the link carries, 0.85 × the link (overuse); otherwise the
   * smaller of the link and 1.5 × what it receives + 10 kbit/s (it grows no faster).
   */
  rembLimitBps?: number;
  log?: Logger;
}

/** One complete video frame: when its last missing packet arrived (epoch ms, sub-ms). */
export interface ReceivedFrame {
  rtpTimestamp: number;
  receivedAt: number;
  keyframe: boolean;
  /** Picture width, for keyframes (which carry it). */
  width?: number;
  /** The VP8 PictureID of its first packet, when it carries one. */
  pictureId?: number;
}

export interface WhepSubscriberResults {
  /** Distinct video frames of which at least one packet arrived. */
  framesReceived: number;
  /** Frames with every packet from the first (S bit) to the marker. */
  completeFrames: number;
  /** Video RTP packets accepted (retransmissions included, duplicates and drops excluded). */
  packetsReceived: number;
  audioPackets: number;
  /** RTCP generic NACK messages sent. */
  nacksSent: number;
  /** Sequence numbers asked for, counting repeats. */
  nackedPackets: number;
  /** Packets that filled a gap (via RTX or a resend on the media SSRC). */
  retransmitsReceived: number;
  /** Packets that arrived in RTX. */
  rtxPackets: number;
  duplicatePackets: number;
  /** Packets dropped on purpose (`dropRate`). */
  droppedPackets: number;
  /** Missing packets given up on. */
  lostPackets: number;
  keyframeRequestsSent: number;
  /** Receive time of each complete frame minus its send time, when the sender's record is given. */
  frameLatenciesMs?: number[];
}

interface FrameState {
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  packets: number;
  keyframe: boolean;
  width: number | undefined;
  pictureId: number | undefined;
  complete: boolean;
}

const MAX_TRACKED_FRAMES = 512;
const MAX_SENDER_REPORTS = 256;

/** An RTCP sender report as this subscriber received it. */
export interface ReceivedSenderReport extends SenderReport {
  kind: 'audio' | 'video';
  /** Local wall-clock time of arrival, Unix epoch milliseconds. */
  receivedAtMs: number;
}

function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A synthetic WHEP subscriber on node-datachannel: receives RTP, reassembles VP8 frames (complete
 * = every sequence number from the frame's first packet to its marker), counts per track, and
 * repairs loss itself: libdatachannel generates no NACKs on the receive side, so this client
 * sends RFC 4585 generic NACKs (as SRTCP through the track) and unwraps RTX. Optional seeded
 * artificial loss (`dropRate`) makes the node's retransmission path observable.
 */
export class WhepSubscriber {
  readonly receivedFrames: ReceivedFrame[] = [];
  private readonly log: Logger;
  private readonly rtcpSsrc = randomSsrc();
  private readonly random: () => number;
  private readonly dropRate: number;
  private readonly nack: NackTracker;
  private readonly frames = new Map<number, FrameState>();
  /** The most recent sender reports received, oldest first. */
  readonly senderReports: ReceivedSenderReport[] = [];
  private readonly stats: Omit<WhepSubscriberResults, 'frameLatenciesMs' | 'lostPackets'> = {
    framesReceived: 0,
    completeFrames: 0,
    packetsReceived: 0,
    audioPackets: 0,
    nacksSent: 0,
    nackedPackets: 0,
    retransmitsReceived: 0,
    rtxPackets: 0,
    duplicatePackets: 0,
    droppedPackets: 0,
    keyframeRequestsSent: 0,
  };
  private pc: PeerConnection | undefined;
  // Every native object is kept referenced from JS: a collected Track silently stops delivery.
  private readonly keep: unknown[] = [];
  private videoTrack: Track | undefined;
  private mediaSsrc: number | undefined;
  private nackTimer: NodeJS.Timeout | undefined;
  /** Receiver reports, once a second, as every RTP receiver sends them. */
  private reportTimer: NodeJS.Timeout | undefined;
  private readonly reception = new ReceptionStats();
  private rembTimer: NodeJS.Timeout | undefined;
  /** Bytes received in the current and the previous half second (for REMB). */
  private bytesNow = 0;
  private bytesBefore = 0;
  /** REMB values sent, newest last. */
  readonly rembsSent: number[] = [];
  private lastPliAt = Number.NEGATIVE_INFINITY;
  private sessionUrl: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: WhepSubscriberOptions) {
    this.log = options.log ?? silentLogger;
    this.dropRate = Math.min(1, Math.max(0, options.dropRate ?? 0));
    this.random = seededRandom(options.seed ?? 1);
    this.nack = new NackTracker({
      retryMs: options.nackRetryMs ?? 30,
      maxTries: options.nackMaxTries ?? 10,
      maxAgeMs: options.nackMaxAgeMs ?? 1000,
    });
  }

  /** Subscribes; resolves once the media path is up (media may not flow yet). */
  async start(): Promise<void> {
    const { pc, opened } = this.setup();
    pc.setLocalDescription();
    await gathered(pc, 5_000);
    const offer = pc.localDescription();
    if (!offer) throw new Error('WHEP subscriber: no local offer');
    const { answerSdp, sessionUrl } = await postOffer('whep', this.options, offer.sdp);
    this.sessionUrl = sessionUrl;
    pc.setRemoteDescription(answerSdp, 'answer');
    await opened;
    this.startTimers();
    if (this.options.rembLimitBps !== undefined) {
      this.rembTimer = setInterval(() => this.sendRemb(), 500);
    }
  }

  /** Bit/s received over the last second (video and audio RTP, headers included). */
  get receivedBps(): number {
    return (this.bytesNow + this.bytesBefore) * 8;
  }

  /**
   * Answers a sender's offer directly, with no node in between (the benchmark's no-server
   * baseline). Resolves with the answer once gathered; `connected` resolves when media can flow.
   */
  async acceptOffer(offerSdp: string): Promise<{ answerSdp: string; connected: Promise<void> }> {
    const { pc, opened } = this.setup();
    pc.setRemoteDescription(offerSdp, 'offer');
    if (!pc.localDescription()) pc.setLocalDescription();
    await gathered(pc, 5_000);
    const answer = pc.localDescription();
    if (!answer) throw new Error('WHEP subscriber: no local answer');
    const connected = opened.then(() => this.startTimers());
    connected.catch(() => {});
    return { answerSdp: answer.sdp, connected };
  }

  private setup(): { pc: PeerConnection; opened: Promise<void> } {
    if (this.pc || this.closing) throw new Error('WHEP subscriber: start() may be called once');
    const pc = new nodeDataChannel.PeerConnection('whep-subscriber', { iceServers: [] });
    this.pc = pc;
    pc.onTrack((track) => this.keep.push(track));

    const video = new nodeDataChannel.Video('video', 'RecvOnly');
    video.addVP8Codec(SUBSCRIBER_VP8_PT);
    if (this.options.rtx !== false) video.addRTXCodec(SUBSCRIBER_RTX_PT, SUBSCRIBER_VP8_PT, 90000);
    const videoTrack = pc.addTrack(video);
    videoTrack.onMessage((msg) => {
      if (isRtcp(msg)) this.recordSenderReports('video', msg);
      else this.onVideo(msg);
    });

    const audio = new nodeDataChannel.Audio('audio', 'RecvOnly');
    audio.addOpusCodec(SUBSCRIBER_OPUS_PT);
    const audioTrack = pc.addTrack(audio);
    audioTrack.onMessage((msg) => {
      if (isRtcp(msg)) {
        this.recordSenderReports('audio', msg);
      } else {
        this.stats.audioPackets++;
        this.bytesNow += msg.length;
      }
    });

    this.videoTrack = videoTrack;
    this.keep.push(video, videoTrack, audio, audioTrack);

    const opened = mediaOpened(
      pc,
      videoTrack,
      'WHEP subscriber',
      this.options.connectTimeoutMs ?? 10_000,
    );
    return { pc, opened };
  }

  /** Counters so far; with the publisher's `sentFrames`, also per-frame latency. */
  results(sent?: readonly SentFrame[]): WhepSubscriberResults {
    const out: WhepSubscriberResults = { ...this.stats, lostPackets: this.nack.lost };
    if (sent) {
      const sentAt = new Map<number, number>();
      for (const frame of sent) sentAt.set(frame.rtpTimestamp, frame.sentAt);
      out.frameLatenciesMs = [];
      for (const frame of this.receivedFrames) {
        const at = sentAt.get(frame.rtpTimestamp);
        if (at !== undefined) out.frameLatenciesMs.push(frame.receivedAt - at);
      }
    }
    return out;
  }

  /** libdatachannel's connection state (`new` before start). */
  get connectionState(): string {
    return this.pc?.state() ?? 'new';
  }

  get location(): string | undefined {
    return this.sessionUrl;
  }

  /** Ask the sender for a keyframe (PLI). */
  requestKeyframe(): boolean {
    if (!this.videoTrack || this.mediaSsrc === undefined) return false;
    const ok = this.sendRtcp(buildPli(this.rtcpSsrc, this.mediaSsrc));
    if (ok) this.stats.keyframeRequestsSent++;
    return ok;
  }

  /** DELETEs the session (unless `skipDelete`) and closes the connection. Idempotent. */
  close(options: { skipDelete?: boolean } = {}): Promise<void> {
    this.closing ??= (async () => {
      if (this.nackTimer) clearInterval(this.nackTimer);
      if (this.reportTimer) clearInterval(this.reportTimer);
      this.reportTimer = undefined;
      if (this.rembTimer) clearInterval(this.rembTimer);
      this.nackTimer = undefined;
      this.rembTimer = undefined;
      if (this.sessionUrl && !options.skipDelete) {
        await deleteSession(this.sessionUrl, this.options);
      }
      try {
        this.pc?.close();
      } catch (err) {
        this.log.warn('subscriber close failed', { error: errorMessage(err) });
      }
    })();
    return this.closing;
  }

  private recordSenderReports(kind: 'audio' | 'video', msg: Buffer): void {
    const receivedAtMs = performance.timeOrigin + performance.now();
    for (const report of parseSenderReports(msg)) {
      if (this.senderReports.length >= MAX_SENDER_REPORTS) this.senderReports.shift();
      this.senderReports.push({ ...report, kind, receivedAtMs });
    }
  }

  private onVideo(msg: Buffer): void {
    if (this.closing || isRtcp(msg)) return;
    const rtp = parseRtp(msg);
    if (!rtp) return;
    this.bytesNow += msg.length;
    let seq = rtp.sequenceNumber;
    let payloadStart = rtp.payloadOffset;
    let viaRtx = false;
    if (rtp.payloadType === SUBSCRIBER_RTX_PT && this.options.rtx !== false) {
      if (rtp.payloadEnd - rtp.payloadOffset < 2) return; // RTX padding probe
      seq = msg.readUInt16BE(rtp.payloadOffset);
      payloadStart += 2;
      viaRtx = true;
    } else if (rtp.payloadType !== SUBSCRIBER_VP8_PT) {
      return;
    } else {
      this.mediaSsrc = rtp.ssrc;
    }
    if (this.dropRate > 0 && this.random() < this.dropRate) {
      this.stats.droppedPackets++;
      return;
    }
    this.reception.received(seq);
    const now = performance.now();
    const arrival = this.nack.received(seq, now);
    if (arrival === 'duplicate') {
      this.stats.duplicatePackets++;
      return;
    }
    if (viaRtx) this.stats.rtxPackets++;
    if (arrival === 'recovered') this.stats.retransmitsReceived++;
    this.stats.packetsReceived++;
    this.assemble(seq, rtp.timestamp, rtp.marker, msg.subarray(payloadStart, rtp.payloadEnd));
  }

  private assemble(seq: number, timestamp: number, marker: boolean, payload: Buffer): void {
    let frame = this.frames.get(timestamp);
    if (!frame) {
      frame = {
        firstSeq: undefined,
        lastSeq: undefined,
        packets: 0,
        keyframe: false,
        width: undefined,
        pictureId: undefined,
        complete: false,
      };
      this.frames.set(timestamp, frame);
      this.stats.framesReceived++;
      if (this.frames.size > MAX_TRACKED_FRAMES) {
        for (const key of this.frames.keys()) {
          this.frames.delete(key);
          if (this.frames.size <= MAX_TRACKED_FRAMES * 0.75) break;
        }
      }
    }
    if (frame.complete) return;
    frame.packets++;
    const descriptor = parseVp8Descriptor(payload);
    if (descriptor?.start && descriptor.partitionIndex === 0) {
      frame.firstSeq = seq;
      frame.pictureId = descriptor.pictureId;
      frame.keyframe = isVp8Keyframe(payload.subarray(descriptor.headerSize));
      if (frame.keyframe)
        frame.width = vp8KeyframeSize(payload.subarray(descriptor.headerSize))?.width;
    }
    if (marker) frame.lastSeq = seq;
    if (frame.firstSeq === undefined || frame.lastSeq === undefined) return;
    const expected = ((frame.lastSeq - frame.firstSeq) & 0xffff) + 1;
    if (frame.packets !== expected) return;
    frame.complete = true;
    this.stats.completeFrames++;
    this.receivedFrames.push({
      rtpTimestamp: timestamp,
      receivedAt: wallClock(),
      keyframe: frame.keyframe,
      ...(frame.width !== undefined ? { width: frame.width } : {}),
      ...(frame.pictureId !== undefined ? { pictureId: frame.pictureId } : {}),
    });
  }

  private sendDueNacks(): void {
    if (this.closing || this.mediaSsrc === undefined || this.nack.missingCount === 0) return;
    const { nack, gaveUp } = this.nack.due(performance.now());
    if (nack.length > 0 && this.sendRtcp(buildNack(this.rtcpSsrc, this.mediaSsrc, nack))) {
      this.stats.nacksSent++;
      this.stats.nackedPackets += nack.length;
    }
    if (gaveUp > 0) {
      const now = performance.now();
      if (now - this.lastPliAt > 500) {
        this.lastPliAt = now;
        this.requestKeyframe();
      }
    }
  }

  private startTimers(): void {
    this.nackTimer = setInterval(() => this.sendDueNacks(), 10);
    this.reportTimer = setInterval(() => this.sendReceiverReport(), 1_000);
  }

  private sendReceiverReport(): void {
    const ssrc = this.mediaSsrc;
    if (this.closing || ssrc === undefined) return;
    const loss = this.reception.report();
    if (!loss) return;
    let lastSr: ReceivedSenderReport | undefined;
    for (let i = this.senderReports.length - 1; i >= 0 && !lastSr; i--) {
      if (this.senderReports[i]!.ssrc === ssrc) lastSr = this.senderReports[i];
    }
    const sinceMs = lastSr ? performance.timeOrigin + performance.now() - lastSr.receivedAtMs : 0;
    this.sendRtcp(
      buildReceiverReport(this.rtcpSsrc, {
        ssrc,
        ...loss,
        lastSr: lastSr?.ntpMiddle ?? 0,
        delaySinceLastSr: lastSr ? (sinceMs * 65_536) / 1000 : 0,
      }),
    );
  }

  private sendRemb(): void {
    const limit = this.options.rembLimitBps;
    const received = this.receivedBps;
    this.bytesBefore = this.bytesNow;
    this.bytesNow = 0;
    if (limit === undefined || this.closing || this.mediaSsrc === undefined) return;
    const bps = Math.round(
      received > limit ? 0.85 * limit : Math.min(limit, 1.5 * received + 10_000),
    );
    if (this.sendRtcp(buildRemb(this.rtcpSsrc, bps, [this.mediaSsrc]))) this.rembsSent.push(bps);
  }

  private sendRtcp(packet: Buffer): boolean {
    try {
      return this.videoTrack?.sendMessageBinary(packet) ?? false;
    } catch (err) {
      this.log.warn('subscriber RTCP send failed', { error: errorMessage(err) });
      return false;
    }
  }
}
