import { readFile } from 'node:fs/promises';
import nodeDataChannel, {
  type PeerConnection,
  type RtpPacketizationConfig,
  type Track,
} from 'node-datachannel';
import { errorMessage } from '../../core/errors.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import {
  type IvfFile,
  type OggOpusFile,
  opusPacketDurationMs,
  parseIvf,
  parseOggOpus,
  type TestMedia,
} from './media.ts';
import {
  buildRtp,
  DEFAULT_MAX_PAYLOAD,
  parseRtcpFeedback,
  seededRandom,
  Vp8Packetizer,
} from './rtp.ts';
import {
  deleteSession,
  gathered,
  mediaOpened,
  postOffer,
  randomSsrc,
  type SignallingOptions,
} from './signalling.ts';

export const VP8_PAYLOAD_TYPE = 96;
export const OPUS_PAYLOAD_TYPE = 111;

export interface WhipPublisherOptions extends SignallingOptions {
  /** Files from `ensureTestMedia`, or already parsed media. */
  media: TestMedia | { video: IvfFile; audio: OggOpusFile };
  /** Start over at the end of the files (default true); false stops after one pass. */
  loop?: boolean;
  /** RTP payload bytes per packet. */
  maxPayload?: number;
  /** How long ICE + DTLS may take after the answer. */
  connectTimeoutMs?: number;
  /** On PLI/FIR, resend from the last keyframe (default true); false only counts the request. */
  rewindOnKeyframeRequest?: boolean;
  /**
   * Withhold this share (0..1) of video packets on the first send, as if the uplink lost them;
   * a withheld packet is sent when the node NACKs it. Exercises the node's NACKs to publishers.
   */
  dropRate?: number;
  /** Seed of the drop PRNG (reproducible runs). */
  seed?: number;
  /**
   * Send a withheld packet this long after the first NACK for it instead of at once, as if the
   * uplink round trip were that long (default 0).
   */
  repairDelayMs?: number;
  log?: Logger;
}

/** One sent video frame: its RTP timestamp and when its first packet left (epoch ms, sub-ms). */
export interface SentFrame {
  rtpTimestamp: number;
  sentAt: number;
  keyframe: boolean;
}

export interface WhipPublisherResults {
  framesSent: number;
  videoPacketsSent: number;
  audioPacketsSent: number;
  videoBytesSent: number;
  keyframeRequests: number;
  nacksReceived: number;
  /** Sequence numbers listed in those NACKs, counting repeats. */
  packetsNacked: number;
  /** Video packets withheld on purpose (`dropRate`). */
  droppedPackets: number;
  /** Withheld packets sent after the node asked for them. */
  retransmitsSent: number;
}

function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A synthetic WHIP publisher on node-datachannel: sends VP8 frames from an IVF file at its frame
 * rate and Opus packets every 20 ms from an Ogg file, as RTP (RFC 7741 packetization), answering
 * NACKs from libdatachannel's `RtcpNackResponder` and keyframe requests by resending from the
 * last keyframe. Records every frame's RTP timestamp and send time.
 */
export class WhipPublisher {
  readonly sentFrames: SentFrame[] = [];
  readonly videoSsrc = randomSsrc();
  readonly audioSsrc = randomSsrc();
  private readonly log: Logger;
  private readonly stats: WhipPublisherResults = {
    framesSent: 0,
    videoPacketsSent: 0,
    audioPacketsSent: 0,
    videoBytesSent: 0,
    keyframeRequests: 0,
    nacksReceived: 0,
    packetsNacked: 0,
    droppedPackets: 0,
    retransmitsSent: 0,
  };
  private readonly withheld = new Map<number, Buffer>();
  private readonly dropRate: number;
  private readonly random: () => number;
  private pc: PeerConnection | undefined;
  // Every native object is kept referenced from JS: a collected Track silently stops delivery.
  private readonly keep: unknown[] = [];
  private videoTrack: Track | undefined;
  private audioTrack: Track | undefined;
  private configs: { video: RtpPacketizationConfig; audio: RtpPacketizationConfig } | undefined;
  private video: IvfFile | undefined;
  private audio: OggOpusFile | undefined;
  private packetizer: Vp8Packetizer;
  private videoSeq = Math.floor(Math.random() * 0x10000);
  private audioSeq = Math.floor(Math.random() * 0x10000);
  private videoTimestamp = Math.floor(Math.random() * 0xffffffff);
  private audioTimestamp = Math.floor(Math.random() * 0xffffffff);
  private videoCursor = 0;
  private audioCursor = 0;
  private lastKeyframeIndex = 0;
  private lastRewindAt = Number.NEGATIVE_INFINITY;
  private lastRtcp: Buffer | undefined;
  private lastRtcpAt = Number.NEGATIVE_INFINITY;
  private videoTimer: NodeJS.Timeout | undefined;
  private audioTimer: NodeJS.Timeout | undefined;
  private sessionUrl: string | undefined;
  private sending = false;
  private closing: Promise<void> | undefined;
  private markFinished: () => void = () => {};
  /** Resolves when sending stops: end of the files with `loop: false`, `stopSending()` or `close()`. */
  readonly finished = new Promise<void>((resolve) => {
    this.markFinished = resolve;
  });

  constructor(private readonly options: WhipPublisherOptions) {
    this.log = options.log ?? silentLogger;
    this.packetizer = new Vp8Packetizer(options.maxPayload ?? DEFAULT_MAX_PAYLOAD);
    this.dropRate = Math.min(1, Math.max(0, options.dropRate ?? 0));
    this.random = seededRandom(options.seed ?? 1);
  }

  /** Publishes and starts sending; resolves once the media path is up. */
  async start(): Promise<void> {
    if (this.pc || this.closing) throw new Error('WHIP publisher: start() may be called once');
    await this.loadMedia();
    const pc = new nodeDataChannel.PeerConnection('whip-publisher', { iceServers: [] });
    this.pc = pc;
    const cname = `returncam-bench-${this.videoSsrc.toString(16)}`;

    const video = new nodeDataChannel.Video('video', 'SendOnly');
    video.addVP8Codec(VP8_PAYLOAD_TYPE);
    video.addSSRC(this.videoSsrc, cname, 'bench-stream', 'bench-video');
    const videoTrack = pc.addTrack(video);
    const videoConfig = new nodeDataChannel.RtpPacketizationConfig(
      this.videoSsrc,
      cname,
      VP8_PAYLOAD_TYPE,
      90000,
    );
    const videoSr = new nodeDataChannel.RtcpSrReporter(videoConfig);
    const videoNack = new nodeDataChannel.RtcpNackResponder(1024);
    videoSr.addToChain(videoNack);
    videoTrack.setMediaHandler(videoSr);
    videoTrack.onMessage((msg) => this.onVideoRtcp(msg));

    const audio = new nodeDataChannel.Audio('audio', 'SendOnly');
    audio.addOpusCodec(OPUS_PAYLOAD_TYPE);
    audio.addSSRC(this.audioSsrc, cname, 'bench-stream', 'bench-audio');
    const audioTrack = pc.addTrack(audio);
    const audioConfig = new nodeDataChannel.RtpPacketizationConfig(
      this.audioSsrc,
      cname,
      OPUS_PAYLOAD_TYPE,
      48000,
    );
    const audioSr = new nodeDataChannel.RtcpSrReporter(audioConfig);
    audioTrack.setMediaHandler(audioSr);
    audioTrack.onMessage(() => {});

    this.videoTrack = videoTrack;
    this.audioTrack = audioTrack;
    this.keep.push(video, videoTrack, videoConfig, videoSr, videoNack);
    this.keep.push(audio, audioTrack, audioConfig, audioSr);
    this.configs = { video: videoConfig, audio: audioConfig };

    const opened = mediaOpened(
      pc,
      videoTrack,
      'WHIP publisher',
      this.options.connectTimeoutMs ?? 10_000,
    );

    pc.setLocalDescription();
    await gathered(pc, 5_000);
    const offer = pc.localDescription();
    if (!offer) throw new Error('WHIP publisher: no local offer');
    const { answerSdp, sessionUrl } = await postOffer('whip', this.options, offer.sdp);
    this.sessionUrl = sessionUrl;
    pc.setRemoteDescription(answerSdp, 'answer');
    await opened;
    this.startSending();
  }

  /** Counters so far. */
  results(): WhipPublisherResults {
    return { ...this.stats };
  }

  /** libdatachannel's connection state (`new` before start). */
  get connectionState(): string {
    return this.pc?.state() ?? 'new';
  }

  /** The session URL the node returned (for DELETE). */
  get location(): string | undefined {
    return this.sessionUrl;
  }

  /** Stops sending, leaves the session open (simulates a publisher that went silent). */
  stopSending(): void {
    this.sending = false;
    this.markFinished();
    if (this.videoTimer) clearTimeout(this.videoTimer);
    if (this.audioTimer) clearTimeout(this.audioTimer);
    this.videoTimer = undefined;
    this.audioTimer = undefined;
  }

  /** Stops sending, DELETEs the session (unless `skipDelete`), closes the connection. Idempotent. */
  close(options: { skipDelete?: boolean } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.stopSending();
      if (this.sessionUrl && !options.skipDelete) {
        await deleteSession(this.sessionUrl, this.options);
      }
      try {
        this.pc?.close();
      } catch (err) {
        this.log.warn('publisher close failed', { error: errorMessage(err) });
      }
    })();
    return this.closing;
  }

  private async loadMedia(): Promise<void> {
    const media = this.options.media;
    if ('videoPath' in media) {
      this.video = parseIvf(await readFile(media.videoPath));
      this.audio = parseOggOpus(await readFile(media.audioPath));
    } else {
      this.video = media.video;
      this.audio = media.audio;
    }
    if (this.video.frames.length === 0)
      throw new Error('WHIP publisher: the IVF file has no frames');
  }

  private startSending(): void {
    const video = this.video!;
    const { timebaseDenominator: den, timebaseNumerator: num } = video.header;
    const fps = den > 0 && num > 0 ? den / num : 30;
    const frameMs = 1000 / fps;
    const frameTicks = Math.round(90000 / fps);
    this.sending = true;
    let nextVideo = performance.now();
    const videoTick = () => {
      if (!this.sending) return;
      this.sendVideoFrame(frameTicks);
      nextVideo += frameMs;
      const now = performance.now();
      if (nextVideo < now - 3 * frameMs) nextVideo = now; // fell far behind: do not burst
      this.videoTimer = setTimeout(videoTick, Math.max(0, nextVideo - now));
    };
    const audioMs = opusPacketDurationMs(this.audio!.packets[0] ?? Buffer.alloc(0)) || 20;
    let nextAudio = performance.now();
    const audioTick = () => {
      if (!this.sending) return;
      this.sendAudioPacket(audioMs);
      nextAudio += audioMs;
      const now = performance.now();
      if (nextAudio < now - 3 * audioMs) nextAudio = now;
      this.audioTimer = setTimeout(audioTick, Math.max(0, nextAudio - now));
    };
    videoTick();
    if (this.audio!.packets.length > 0) audioTick();
  }

  private sendVideoFrame(frameTicks: number): void {
    const video = this.video!;
    if (this.videoCursor >= video.frames.length) {
      if (this.options.loop === false) {
        this.stopSending();
        return;
      }
      this.videoCursor = 0;
    }
    const index = this.videoCursor++;
    const frame = video.frames[index]!;
    if (frame.keyframe) this.lastKeyframeIndex = index;
    const timestamp = this.videoTimestamp >>> 0;
    this.videoTimestamp = (this.videoTimestamp + frameTicks) >>> 0;
    const payloads = this.packetizer.packetize(frame.data);
    this.configs!.video.timestamp = timestamp;
    this.sentFrames.push({
      rtpTimestamp: timestamp,
      sentAt: wallClock(),
      keyframe: frame.keyframe,
    });
    this.stats.framesSent++;
    for (let i = 0; i < payloads.length; i++) {
      const packet = buildRtp(
        {
          payloadType: VP8_PAYLOAD_TYPE,
          sequenceNumber: this.videoSeq,
          timestamp,
          ssrc: this.videoSsrc,
          marker: i === payloads.length - 1,
        },
        payloads[i]!,
      );
      const seq = this.videoSeq;
      this.videoSeq = (this.videoSeq + 1) & 0xffff;
      // Never the first packet: the node needs one to learn where the stream starts.
      if (this.dropRate > 0 && this.stats.videoPacketsSent > 0 && this.random() < this.dropRate) {
        this.withhold(seq, packet);
        continue;
      }
      if (!this.send(this.videoTrack, packet)) return;
      this.stats.videoPacketsSent++;
      this.stats.videoBytesSent += packet.length;
    }
  }

  private sendAudioPacket(durationMs: number): void {
    const audio = this.audio!;
    if (this.audioCursor >= audio.packets.length) {
      if (this.options.loop === false) return;
      this.audioCursor = 0;
    }
    const payload = audio.packets[this.audioCursor++]!;
    const timestamp = this.audioTimestamp >>> 0;
    this.audioTimestamp = (this.audioTimestamp + Math.round(durationMs * 48)) >>> 0;
    this.configs!.audio.timestamp = timestamp;
    const packet = buildRtp(
      {
        payloadType: OPUS_PAYLOAD_TYPE,
        sequenceNumber: this.audioSeq,
        timestamp,
        ssrc: this.audioSsrc,
        marker: false,
      },
      payload,
    );
    this.audioSeq = (this.audioSeq + 1) & 0xffff;
    if (this.send(this.audioTrack, packet)) this.stats.audioPacketsSent++;
  }

  private send(track: Track | undefined, packet: Buffer): boolean {
    if (!track) return false;
    try {
      track.sendMessageBinary(packet);
      return true;
    } catch (err) {
      this.log.warn('publisher send failed; stopping', { error: errorMessage(err) });
      this.stopSending();
      return false;
    }
  }

  private onVideoRtcp(message: Buffer): void {
    // libdatachannel hands a feedback packet to a track once per SSRC in it that maps to the
    // track (sender and media SSRC both do here): drop the immediate copy.
    const now = performance.now();
    if (this.lastRtcp && now - this.lastRtcpAt < 2 && this.lastRtcp.equals(message)) return;
    this.lastRtcp = Buffer.from(message);
    this.lastRtcpAt = now;
    for (const feedback of parseRtcpFeedback(message)) {
      if (feedback.kind === 'nack') {
        this.stats.nacksReceived++;
        this.stats.packetsNacked += feedback.lost.length;
        // RtcpNackResponder has already resent what it holds; send what was withheld.
        for (const seq of feedback.lost) {
          const packet = this.withheld.get(seq);
          if (!packet) continue;
          this.withheld.delete(seq);
          const delay = this.options.repairDelayMs ?? 0;
          if (delay > 0) {
            setTimeout(() => {
              if (this.send(this.videoTrack, packet)) this.stats.retransmitsSent++;
            }, delay).unref();
          } else if (this.send(this.videoTrack, packet)) {
            this.stats.retransmitsSent++;
          }
        }
      } else if (feedback.kind === 'pli' || feedback.kind === 'fir') {
        this.stats.keyframeRequests++;
        this.rewindToKeyframe();
      }
    }
  }

  private withhold(seq: number, packet: Buffer): void {
    this.stats.droppedPackets++;
    this.withheld.set(seq, packet);
    if (this.withheld.size > 512) {
      const oldest = this.withheld.keys().next().value;
      if (oldest !== undefined) this.withheld.delete(oldest);
    }
  }

  private rewindToKeyframe(): void {
    if (this.options.rewindOnKeyframeRequest === false) return;
    const now = performance.now();
    // A burst of requests (several subscribers joining) needs one keyframe, not several.
    if (now - this.lastRewindAt < 1000) return;
    this.lastRewindAt = now;
    if (this.video?.frames[this.videoCursor]?.keyframe) return;
    this.videoCursor = this.lastKeyframeIndex;
  }
}
