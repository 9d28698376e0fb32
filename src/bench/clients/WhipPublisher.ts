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
  parseRtp,
  type RtpExtensionElement,
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
/** Header extension ids the publisher gives rtp-stream-id and repaired-rtp-stream-id (simulcast). */
export const RID_EXTENSION_ID = 4;
export const REPAIRED_RID_EXTENSION_ID = 5;
/** Header extension id of the video layers allocation (simulcast with `layersAllocation`). */
export const LAYERS_ALLOCATION_EXTENSION_ID = 6;
/** RTX payload type of a simulcast offer (RFC 4588, apt = VP8). */
export const RTX_PAYLOAD_TYPE = 97;
const RID_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
const REPAIRED_RID_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id';
const LAYERS_ALLOCATION_URI =
  'http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00';
/** Packets per simulcast layer kept to answer NACKs. */
const LAYER_HISTORY = 1024;

/** One simulcast layer: its rid and its VP8 (IVF) file, or the parsed file. */
export type SimulcastLayerMedia =
  | { rid: string; videoPath: string }
  | { rid: string; video: IvfFile };

/** What one video stream (the track, or one simulcast layer) has sent. */
export interface LayerResults {
  rid: string | undefined;
  ssrc: number;
  width: number;
  packetsSent: number;
  bytesSent: number;
  keyframeRequests: number;
}

interface VideoLayer {
  rid: string | undefined;
  ssrc: number;
  /** Simulcast: the layer's RTX stream, announced by no a=ssrc (as Chrome's). */
  rtxSsrc: number;
  rtxSeq: number;
  rtxExtensions: RtpExtensionElement[];
  video: IvfFile;
  packetizer: Vp8Packetizer;
  seq: number;
  cursor: number;
  lastKeyframeIndex: number;
  lastRewindAt: number;
  extensions: RtpExtensionElement[];
  /** Simulcast: sent packets by sequence number, for NACKs (libdatachannel's responder is per track). */
  history: Map<number, Buffer> | undefined;
  /** Sends nothing of this layer until then (`performance.now()` ms): see `pauseLayer`. */
  pausedUntil: number;
  /** Sends the first packet of this layer's keyframes this much later (ms): see `delayKeyframeStarts`. */
  keyframeStartDelayMs: number;
  /** The next this many packets of this layer are lost on the way: see `loseVideo`. */
  loseNext: number;
  /** The next frame of this layer is left out, its PictureID used: see `skipPicture`. */
  skipNext: boolean;
  /** The file's mean bitrate, kbit/s: the target its layer allocation announces. */
  kbps: number;
  /** Its next frame carries the layer allocation (`layersAllocation`). */
  announce: boolean;
  /** Each frame's last packets go out late: see `lateBeforeKeyframes`. */
  lateBeforeKeyframe: { packets: number; ms: number } | undefined;
  /** The last frame's packets held back for `lateBeforeKeyframe`. */
  heldTail: Buffer[];
  stats: Omit<LayerResults, 'rid' | 'ssrc' | 'width'>;
}

/**
 * Turns libdatachannel's video m-section into a simulcast one as Chrome writes it: no a=ssrc
 * lines, the rid and repaired-rid header extensions, RTX, an `a=rid:<id> send` per layer and
 * `a=simulcast:send`.
 */
export function simulcastOffer(
  sdp: string,
  rids: readonly string[],
  options: { layersAllocation?: boolean } = {},
): string {
  const lines = sdp.split(/\r?\n/).filter((line) => line !== '');
  const out: string[] = [];
  let section = '';
  for (const line of lines) {
    if (line.startsWith('m=')) section = line.slice(2, line.indexOf(' '));
    if (section === 'video' && /^a=(ssrc|ssrc-group|msid):/.test(line)) continue;
    out.push(section === 'video' && line.startsWith('m=') ? `${line} ${RTX_PAYLOAD_TYPE}` : line);
    if (section === 'video' && line.startsWith(`a=rtpmap:${VP8_PAYLOAD_TYPE} `)) {
      // RTX after the codec it repairs, as browsers write it
      out.push(`a=rtpmap:${RTX_PAYLOAD_TYPE} rtx/90000`);
      out.push(`a=fmtp:${RTX_PAYLOAD_TYPE} apt=${VP8_PAYLOAD_TYPE}`);
    }
    if (section === 'video' && line.startsWith('a=mid:')) {
      out.push(`a=extmap:${RID_EXTENSION_ID} ${RID_EXTENSION_URI}`);
      out.push(`a=extmap:${REPAIRED_RID_EXTENSION_ID} ${REPAIRED_RID_EXTENSION_URI}`);
      if (options.layersAllocation) {
        out.push(`a=extmap:${LAYERS_ALLOCATION_EXTENSION_ID} ${LAYERS_ALLOCATION_URI}`);
      }
      for (const rid of rids) out.push(`a=rid:${rid} send`);
      out.push(`a=simulcast:send ${rids.join(';')}`);
    }
  }
  return `${out.join('\r\n')}\r\n`;
}

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
   * With `simulcast`, on every layer, and the repair goes in the layer's RTX stream.
   */
  dropRate?: number;
  /** Seed of the drop PRNG (reproducible runs). */
  seed?: number;
  /**
   * Simulcast: send these video layers (lowest first, each its own SSRC and rid, from its own
   * file, all at the frame rate of the first) in place of `media`'s video, as a browser with
   * several `sendEncodings` does. `media` still gives the audio.
   */
  simulcast?: SimulcastLayerMedia[];
  /**
   * Simulcast: announce which layers are sent, as Chrome does (video-layers-allocation header
   * extension): on the first packet of each layer's next frame after a layer is paused or back
   * (`pauseLayer`), and of every keyframe.
   */
  layersAllocation?: boolean;
  /**
   * Send a withheld packet this long after the first NACK for it instead of at once, as if the
   * uplink round trip were that long (default 0).
   */
  repairDelayMs?: number;
  /**
   * The first video sequence number of every layer (default: random, as a browser's), to put
   * the 16-bit wrap where a test wants it.
   */
  firstSequenceNumber?: number;
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
  /** Per video stream (one entry without simulcast). */
  layers: LayerResults[];
}

function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A synthetic WHIP publisher on node-datachannel: sends VP8 frames from an IVF file at its frame
 * rate and Opus packets every 20 ms from an Ogg file, as RTP (RFC 7741 packetization), answering
 * NACKs from libdatachannel's `RtcpNackResponder` and keyframe requests by resending from the
 * last keyframe. Records every frame's RTP timestamp and send time. With `simulcast`, sends
 * several layers (own SSRC, rid extension, own file) and answers NACKs and keyframe requests per
 * layer.
 */
export class WhipPublisher {
  readonly sentFrames: SentFrame[] = [];
  readonly videoSsrc = randomSsrc();
  readonly audioSsrc = randomSsrc();
  private readonly log: Logger;
  private readonly stats: Omit<WhipPublisherResults, 'layers'> = {
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
  /** Packets withheld on purpose, by {@link withheldKey}. */
  private readonly withheld = new Map<number, Buffer>();
  private readonly dropRate: number;
  private readonly random: () => number;
  private pc: PeerConnection | undefined;
  // Every native object is kept referenced from JS: a collected Track silently stops delivery.
  private readonly keep: unknown[] = [];
  private videoTrack: Track | undefined;
  private audioTrack: Track | undefined;
  private configs: { video: RtpPacketizationConfig; audio: RtpPacketizationConfig } | undefined;
  private layers: VideoLayer[] = [];
  private audio: OggOpusFile | undefined;
  private audioSeq = Math.floor(Math.random() * 0x10000);
  private videoTimestamp = Math.floor(Math.random() * 0xffffffff);
  private audioTimestamp = Math.floor(Math.random() * 0xffffffff);
  private audioCursor = 0;
  /** Bit i set: layer i was sent at the last frame (`layersAllocation`). */
  private sentLayers = -1;
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
    this.dropRate = Math.min(1, Math.max(0, options.dropRate ?? 0));
    this.random = seededRandom(options.seed ?? 1);
    const rids = options.simulcast?.map((l) => l.rid) ?? [];
    if (options.simulcast && (rids.length < 2 || new Set(rids).size !== rids.length)) {
      throw new Error('WHIP publisher: simulcast needs at least two layers with distinct rids');
    }
    for (const rid of rids) {
      if (!/^[A-Za-z0-9]{1,16}$/.test(rid)) {
        throw new Error(`WHIP publisher: rid "${rid}" must be 1-16 letters or digits`);
      }
    }
  }

  /** Whether this publisher sends simulcast layers. */
  get simulcast(): boolean {
    return this.layers.length > 1;
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
    // Every layer's SSRC is declared locally, so libdatachannel hands this track the feedback
    // for each; a simulcast offer then drops the a=ssrc lines, as Chrome's has none.
    for (const layer of this.layers)
      video.addSSRC(layer.ssrc, cname, 'bench-stream', 'bench-video');
    const videoTrack = pc.addTrack(video);
    const videoConfig = new nodeDataChannel.RtpPacketizationConfig(
      this.videoSsrc,
      cname,
      VP8_PAYLOAD_TYPE,
      90000,
    );
    const videoSr = new nodeDataChannel.RtcpSrReporter(videoConfig);
    if (!this.simulcast) {
      const videoNack = new nodeDataChannel.RtcpNackResponder(1024);
      videoSr.addToChain(videoNack);
      this.keep.push(videoNack);
    }
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
    this.keep.push(video, videoTrack, videoConfig, videoSr);
    this.keep.push(audio, audioTrack, audioConfig, audioSr);
    this.configs = { video: videoConfig, audio: audioConfig };

    // libdatachannel opens the tracks one after the other on its own thread: wait for both, or
    // the first audio packet may find its track not open yet, and sending stops for good
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    const opened = Promise.all([
      mediaOpened(pc, videoTrack, 'WHIP publisher', connectTimeoutMs),
      mediaOpened(pc, audioTrack, 'WHIP publisher', connectTimeoutMs),
    ]);
    opened.catch(() => {});

    pc.setLocalDescription();
    await gathered(pc, 5_000);
    const offer = pc.localDescription();
    if (!offer) throw new Error('WHIP publisher: no local offer');
    const rids = this.layers.map((l) => l.rid!);
    const signalling: SignallingOptions = this.simulcast
      ? {
          ...this.options,
          transformOffer: async (sdp) => {
            const layered = simulcastOffer(sdp, rids, {
              layersAllocation: this.options.layersAllocation,
            });
            return this.options.transformOffer ? this.options.transformOffer(layered) : layered;
          },
        }
      : this.options;
    const { answerSdp, sessionUrl } = await postOffer('whip', signalling, offer.sdp);
    this.sessionUrl = sessionUrl;
    pc.setRemoteDescription(answerSdp, 'answer');
    await opened;
    this.startSending();
  }

  /** Counters so far. */
  results(): WhipPublisherResults {
    return {
      ...this.stats,
      layers: this.layers.map((l) => ({
        rid: l.rid,
        ssrc: l.ssrc,
        width: l.video.header.width,
        ...l.stats,
      })),
    };
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

  /**
   * Sends nothing for `ms` (an uplink outage: the session stays up), then carries on where it
   * stopped. Resolves when sending has resumed.
   */
  async pause(ms: number): Promise<void> {
    if (!this.sending) throw new Error('WHIP publisher: pause() needs a publisher that is sending');
    this.sending = false;
    if (this.videoTimer) clearTimeout(this.videoTimer);
    if (this.audioTimer) clearTimeout(this.audioTimer);
    this.videoTimer = undefined;
    this.audioTimer = undefined;
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (!this.closing) this.startSending();
  }

  /**
   * Simulcast: sends nothing of layer `rid` for `ms` while the others go on, as a browser's
   * encoder drops a layer its uplink estimate no longer carries; the layer comes back with a
   * keyframe, as a re-enabled encoder's does.
   */
  pauseLayer(rid: string, ms: number): void {
    this.simulcastLayer(rid).pausedUntil = performance.now() + ms;
  }

  /**
   * Simulcast: from now on, the first packet of each keyframe of layer `rid` goes out `ms` after
   * the rest of it (reordered on the way, or lost and repaired), so it reaches the node last.
   */
  delayKeyframeStarts(rid: string, ms: number): void {
    this.simulcastLayer(rid).keyframeStartDelayMs = Math.max(0, ms);
  }

  /**
   * Simulcast: from now on, the last `packets` packets of each frame of layer `rid` go out with
   * the layer's next frame, just before it; when that frame is a keyframe, `ms` after its first
   * packet instead: the packets before each keyframe arrive for the first time behind it, as
   * packets lost on the way and repaired late do.
   */
  lateBeforeKeyframes(rid: string, packets: number, ms: number): void {
    this.simulcastLayer(rid).lateBeforeKeyframe = { packets, ms: Math.max(0, ms) };
  }

  /**
   * The uplink loses the next `packets` video packets of every layer: their sequence numbers are
   * used, nothing reaches the node, and NACKs for them go unanswered (a burst no repair reaches).
   */
  loseVideo(packets: number): void {
    for (const layer of this.layers) layer.loseNext = Math.max(0, Math.floor(packets));
  }

  /**
   * Leaves the next video frame of every layer out altogether (no packet, no sequence number
   * used) while its PictureID is used up: the frames after it refer to a picture that never
   * comes, and no NACK can show it. A viewer's decoder then waits for a keyframe, as it does
   * after any break in the reference chain.
   */
  skipPicture(): void {
    for (const layer of this.layers) layer.skipNext = true;
  }

  /** The sequence number the next video packet of the top layer (or the only one) gets. */
  get nextVideoSequenceNumber(): number {
    const top = this.layers.at(-1);
    if (!top) throw new Error('WHIP publisher: no video before start()');
    return top.seq;
  }

  private simulcastLayer(rid: string): VideoLayer {
    const layer = this.layers.find((l) => l.rid === rid);
    if (!layer || !this.simulcast) {
      throw new Error(
        `WHIP publisher: no simulcast layer "${rid}" (layers: ${this.layers.map((l) => l.rid ?? '-').join(', ')})`,
      );
    }
    return layer;
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
    let video: IvfFile;
    if ('videoPath' in media) {
      video = parseIvf(await readFile(media.videoPath));
      this.audio = parseOggOpus(await readFile(media.audioPath));
    } else {
      video = media.video;
      this.audio = media.audio;
    }
    const maxPayload = this.options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    const layer = (rid: string | undefined, ssrc: number, file: IvfFile): VideoLayer => {
      if (file.frames.length === 0) {
        throw new Error(
          `WHIP publisher: the IVF file${rid ? ` of layer ${rid}` : ''} has no frames`,
        );
      }
      return {
        rid,
        ssrc,
        rtxSsrc: randomSsrc(),
        rtxSeq: Math.floor(Math.random() * 0x10000),
        rtxExtensions: rid
          ? [{ id: REPAIRED_RID_EXTENSION_ID, data: Buffer.from(rid, 'ascii') }]
          : [],
        video: file,
        // Each encoder numbers its pictures from its own random start, as a browser's do.
        packetizer: new Vp8Packetizer(maxPayload, Math.floor(Math.random() * 0x8000)),
        seq: (this.options.firstSequenceNumber ?? Math.floor(Math.random() * 0x10000)) & 0xffff,
        cursor: 0,
        lastKeyframeIndex: 0,
        lastRewindAt: Number.NEGATIVE_INFINITY,
        extensions: rid ? [{ id: RID_EXTENSION_ID, data: Buffer.from(rid, 'ascii') }] : [],
        history: rid ? new Map() : undefined,
        pausedUntil: Number.NEGATIVE_INFINITY,
        keyframeStartDelayMs: 0,
        loseNext: 0,
        skipNext: false,
        kbps: ivfKbps(file),
        announce: false,
        lateBeforeKeyframe: undefined,
        heldTail: [],
        stats: { packetsSent: 0, bytesSent: 0, keyframeRequests: 0 },
      };
    };
    if (!this.options.simulcast) {
      this.layers = [layer(undefined, this.videoSsrc, video)];
      return;
    }
    const layers: VideoLayer[] = [];
    for (const [i, l] of this.options.simulcast.entries()) {
      const file = 'video' in l ? l.video : parseIvf(await readFile(l.videoPath));
      // The top layer's SSRC is `videoSsrc` (its sender reports name it).
      const ssrc = i === this.options.simulcast.length - 1 ? this.videoSsrc : randomSsrc();
      layers.push(layer(l.rid, ssrc, file));
    }
    this.layers = layers;
  }

  private startSending(): void {
    const video = this.layers[0]!.video;
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

  /** One frame on every video stream, all with the same capture timestamp. */
  private sendVideoFrame(frameTicks: number): void {
    const first = this.layers[0]!;
    if (first.cursor >= first.video.frames.length && this.options.loop === false) {
      this.stopSending();
      return;
    }
    const timestamp = this.videoTimestamp >>> 0;
    this.videoTimestamp = (this.videoTimestamp + frameTicks) >>> 0;
    this.configs!.video.timestamp = timestamp;
    const top = this.layers[this.layers.length - 1]!;
    const sentAt = wallClock();
    let topKeyframe = false;
    const now = performance.now();
    // Which layers go out this frame: a change is announced on each layer's next frame.
    const sent = this.layers.map((l) => !(l.pausedUntil > now));
    if (this.options.layersAllocation) {
      const mask = sent.reduce((m, on, i) => (on ? m | (1 << i) : m), 0);
      if (mask !== this.sentLayers) {
        this.sentLayers = mask;
        for (const layer of this.layers) layer.announce = true;
      }
    }
    for (const [i, layer] of this.layers.entries()) {
      if (!sent[i]) {
        layer.lastRewindAt = Number.NEGATIVE_INFINITY;
        continue;
      }
      if (layer.pausedUntil !== Number.NEGATIVE_INFINITY) {
        layer.pausedUntil = Number.NEGATIVE_INFINITY;
        this.rewindToKeyframe(layer);
      }
      if (layer.cursor >= layer.video.frames.length) layer.cursor = 0;
      const index = layer.cursor++;
      const frame = layer.video.frames[index]!;
      if (frame.keyframe) layer.lastKeyframeIndex = index;
      if (layer === top) topKeyframe = frame.keyframe;
      if (layer.skipNext && !frame.keyframe) {
        layer.skipNext = false;
        layer.packetizer.skipPicture();
        continue;
      }
      let allocation: Buffer | undefined;
      if (this.options.layersAllocation && (layer.announce || frame.keyframe)) {
        layer.announce = false;
        const kbps = this.layers.map((l) => l.kbps);
        allocation = layersAllocationPayload(i, sent, kbps);
      }
      if (!this.sendLayerFrame(layer, timestamp, frame.data, frame.keyframe, allocation)) return;
    }
    this.sentFrames.push({ rtpTimestamp: timestamp, sentAt, keyframe: topKeyframe });
    this.stats.framesSent++;
  }

  private sendLayerFrame(
    layer: VideoLayer,
    timestamp: number,
    data: Buffer,
    keyframe: boolean,
    allocation?: Buffer,
  ): boolean {
    const payloads = layer.packetizer.packetize(data);
    if (layer.heldTail.length > 0) {
      const held = layer.heldTail;
      layer.heldTail = [];
      const send = () => {
        for (const p of held) this.send(this.videoTrack, p);
      };
      if (keyframe) setTimeout(send, layer.lateBeforeKeyframe?.ms ?? 0).unref();
      else send();
    }
    for (let i = 0; i < payloads.length; i++) {
      const seq = layer.seq;
      const extensions =
        i === 0 && allocation
          ? [...layer.extensions, { id: LAYERS_ALLOCATION_EXTENSION_ID, data: allocation }]
          : layer.extensions;
      const packet = buildRtp(
        {
          payloadType: VP8_PAYLOAD_TYPE,
          sequenceNumber: seq,
          timestamp,
          ssrc: layer.ssrc,
          marker: i === payloads.length - 1,
        },
        payloads[i]!,
        extensions,
      );
      layer.seq = (layer.seq + 1) & 0xffff;
      if (layer.loseNext > 0) {
        layer.loseNext--;
        continue;
      }
      if (layer.history) {
        layer.history.set(seq, packet);
        if (layer.history.size > LAYER_HISTORY) {
          const oldest = layer.history.keys().next().value;
          if (oldest !== undefined) layer.history.delete(oldest);
        }
      }
      // Never the first packet: the node needs one to learn where the stream starts.
      if (this.dropRate > 0 && layer.stats.packetsSent > 0 && this.random() < this.dropRate) {
        this.withhold(layer, seq, packet);
        continue;
      }
      const late = layer.lateBeforeKeyframe;
      if (late && i >= payloads.length - late.packets) {
        layer.heldTail.push(packet);
      } else if (keyframe && i === 0 && layer.keyframeStartDelayMs > 0) {
        setTimeout(() => this.send(this.videoTrack, packet), layer.keyframeStartDelayMs).unref();
      } else if (!this.send(this.videoTrack, packet)) {
        return false;
      }
      this.stats.videoPacketsSent++;
      this.stats.videoBytesSent += packet.length;
      layer.stats.packetsSent++;
      layer.stats.bytesSent += packet.length;
    }
    return true;
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
        const layer = this.layers.find((l) => l.ssrc === feedback.mediaSsrc);
        if (!layer) continue;
        // RtcpNackResponder has already resent what it holds; send what was withheld, or, for a
        // simulcast layer, resend from its history in its RTX stream.
        for (const seq of feedback.lost) {
          const key = withheldKey(layer, seq);
          const original = this.withheld.get(key) ?? layer.history?.get(seq);
          if (!original) continue;
          this.withheld.delete(key);
          const packet = this.simulcast ? this.rtxOf(layer, original) : original;
          if (!packet) continue;
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
        const target =
          feedback.kind === 'pli'
            ? this.layers.filter((l) => l.ssrc === feedback.mediaSsrc)
            : this.layers;
        for (const layer of target.length > 0 ? target : this.layers) {
          layer.stats.keyframeRequests++;
          this.rewindToKeyframe(layer);
        }
      }
    }
  }

  /** RFC 4588: the original sequence number, then the payload, on the layer's RTX SSRC. */
  private rtxOf(layer: VideoLayer, original: Buffer): Buffer | undefined {
    const rtp = parseRtp(original);
    if (!rtp) return undefined;
    const payload = Buffer.allocUnsafe(2 + rtp.payloadEnd - rtp.payloadOffset);
    payload.writeUInt16BE(rtp.sequenceNumber, 0);
    original.copy(payload, 2, rtp.payloadOffset, rtp.payloadEnd);
    const seq = layer.rtxSeq;
    layer.rtxSeq = (layer.rtxSeq + 1) & 0xffff;
    return buildRtp(
      {
        payloadType: RTX_PAYLOAD_TYPE,
        sequenceNumber: seq,
        timestamp: rtp.timestamp,
        ssrc: layer.rtxSsrc,
        marker: rtp.marker,
      },
      payload,
      layer.rtxExtensions,
    );
  }

  private withhold(layer: VideoLayer, seq: number, packet: Buffer): void {
    this.stats.droppedPackets++;
    this.withheld.set(withheldKey(layer, seq), packet);
    if (this.withheld.size > 512) {
      const oldest = this.withheld.keys().next().value;
      if (oldest !== undefined) this.withheld.delete(oldest);
    }
  }

  private rewindToKeyframe(layer: VideoLayer): void {
    if (this.options.rewindOnKeyframeRequest === false) return;
    const now = performance.now();
    // A burst of requests (several subscribers joining) needs one keyframe, not several.
    if (now - layer.lastRewindAt < 1000) return;
    layer.lastRewindAt = now;
    if (layer.video.frames[layer.cursor]?.keyframe) return;
    layer.cursor = layer.lastKeyframeIndex;
  }
}

/** Mean bitrate of an IVF file at its frame rate, kbit/s (at least 1). */
function ivfKbps(file: IvfFile): number {
  const { timebaseDenominator: den, timebaseNumerator: num } = file.header;
  const fps = den > 0 && num > 0 ? den / num : 30;
  let bytes = 0;
  for (const frame of file.frames) bytes += frame.data.length;
  return Math.max(1, Math.round((bytes * 8 * fps) / file.frames.length / 1000));
}

/**
 * A video-layers-allocation payload for simulcast streams of one spatial and one temporal layer
 * each, sent on stream `streamIndex`: `sent[i]` whether stream i is sent, `kbps[i]` its target.
 * (Format: http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00.)
 */
export function layersAllocationPayload(
  streamIndex: number,
  sent: readonly boolean[],
  kbps: readonly number[],
): Buffer {
  const on: number[] = [];
  sent.forEach((s, i) => {
    if (s) on.push(i);
  });
  if (on.length === 0) return Buffer.from([0]);
  const highest = on[on.length - 1]!;
  // Every stream up to the highest sent: one bitmask for all; otherwise one per stream.
  const same = on.length === highest + 1;
  const out = [(streamIndex << 6) | (highest << 4) | (same ? 1 : 0)];
  if (!same) {
    const bit = (i: number) => (sent[i] ? 1 : 0);
    out.push((bit(0) << 4) | bit(1));
    if (highest >= 2) out.push((bit(2) << 4) | bit(3));
  }
  // One temporal layer each: two zero bits per layer.
  for (let i = 0; i < Math.ceil(on.length / 4); i++) out.push(0);
  for (const i of on) {
    let value = Math.max(0, Math.round(kbps[i] ?? 0));
    do {
      const byte = value & 0x7f;
      value = Math.floor(value / 128);
      out.push(value > 0 ? byte | 0x80 : byte);
    } while (value > 0);
  }
  return Buffer.from(out);
}

/** One key per layer and sequence number (layers have their own sequence spaces). */
function withheldKey(layer: VideoLayer, seq: number): number {
  return layer.ssrc * 0x10000 + seq;
}
