import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { PUBLISHER_NACK_DEFAULTS } from '../media/PublisherNack.ts';
import { type CodecRules, rulesFor } from './codecs.ts';
import { FrameQueue, type FrontFrame } from './FrameQueue.ts';
import {
  type BufferedFrame,
  JitterBuffer,
  type JitterBufferStats,
  type RtpIn,
} from './JitterBuffer.ts';
import { MatroskaWriter, type WriterTrack } from './MatroskaWriter.ts';
import { MediaClock } from './MediaClock.ts';
import { RecordingFile, type RecordingFileIo } from './RecordingFile.ts';

/** One published track as the recorder sees it (adapted from werift's MediaStreamTrack). */
export interface TrackSource {
  kind: 'audio' | 'video';
  /** Negotiated codec, e.g. `video/VP8`. */
  mimeType: string;
  /** The codec of a payload type, when known (packets of another codec are not recorded). */
  codecOf?: (payloadType: number) => string | undefined;
  /** Delivers packets; returns the function that stops delivery. Packets must not be changed. */
  subscribe(listener: (packet: RtpIn & { payloadType?: number }) => void): () => void;
  /**
   * The publisher's repair round trip (NACK to retransmission) as the node measures it, ms:
   * video gaps wait long enough for a retransmission to arrive over it.
   */
  repairRoundTripMs?: () => number | undefined;
}

export interface SessionRecorderOptions {
  /** The file's path without extension: `.webm` (VP8/Opus) or `.mkv` (H.264) is added. */
  basePath: string;
  /** WritingApp in the file, e.g. `returncam 0.1.0`. */
  app: string;
  /** How long a gap waits for a retransmission before its frame is given up (ms). */
  jitterMs: number;
  /** Time frames are held to put the tracks in time order; must exceed `jitterMs`. */
  holdMs?: number;
  flushMs?: number;
  syncMs?: number;
  flushBytes?: number;
  /** The earliest allowed start (UTC ms): the end of this role's previous segment. */
  notBefore?: number;
  requestKeyframe: () => void;
  /** The first packet arrived: called before the file is created (throw to not record). */
  onStart: (startedAt: number, tracks: RecordedTrackInfo[], path: string) => void;
  /** Writing failed (disk full, I/O error); the recorder has stopped writing. */
  onFailed: (err: Error) => void;
  log: Logger;
  io?: RecordingFileIo;
  /** Wall clock, ms. */
  now?: () => number;
}

export interface RecordedTrackInfo {
  number: number;
  kind: 'audio' | 'video';
  codec: string;
}

export interface TrackResult extends RecordedTrackInfo, JitterBufferStats {
  width?: number;
  height?: number;
  /** Frames actually written to the file. */
  written: number;
  resolutionChanges: number;
  clockRebases: number;
  /** Packets of a codec other than the track's (not recorded). */
  foreignPackets: number;
}

export interface SessionRecordingResult {
  path: string;
  startedAt: number | undefined;
  tracks: TrackResult[];
  bytes: number;
  /** Why writing stopped early, if it did. */
  failure?: string;
}

interface RecTrack {
  info: RecordedTrackInfo;
  writer: WriterTrack;
  rules: CodecRules;
  source: TrackSource;
  jitter: JitterBuffer;
  clock: MediaClock;
  unsubscribe?: () => void;
  written: number;
  width?: number;
  height?: number;
  resolutionChanges: number;
  foreignPackets: number;
  /** Payload types seen: whether each carries the track's codec. */
  payloadTypes: Map<number, boolean>;
}

const TICK_MS = 50;

/**
 * A repair that needed one retry reaches the node about 2.2 round trips after its packet was due
 * (first NACK after 15 ms, the retry 1.2 round trips later): a gap waits a little longer than
 * that, but never past the node's own NACKing of it.
 */
const GAP_WAIT_ROUND_TRIPS = 2.5;
const GAP_WAIT_MAX_MS = PUBLISHER_NACK_DEFAULTS.maxAgeMs;

/**
 * How long a video gap waits for its retransmission: `configuredMs` (`recording.nackWait`), or
 * longer on a long round trip to the publisher. Given up sooner, the recorder asked the publisher
 * for a keyframe for a packet that was still on its way: on a 3G uplink each such keyframe held
 * up the frames behind it long enough to freeze the live viewers too.
 */
export function gapWaitMs(configuredMs: number, roundTripMs: number | undefined): number {
  if (roundTripMs === undefined || !Number.isFinite(roundTripMs)) return configuredMs;
  const wait = Math.round(GAP_WAIT_ROUND_TRIPS * roundTripMs + 50);
  return Math.max(configuredMs, Math.min(wait, GAP_WAIT_MAX_MS));
}

/**
 * Records one publisher session (its audio and video) into one Matroska file, from its first
 * packet: per track a jitter buffer (reorder, wait for retransmissions, keyframe gating) and a
 * media clock (RTP time + arrival, no sender reports), then a short hold that puts both tracks
 * in time order before the writer. The file is created at the first packet.
 */
export class SessionRecorder {
  private readonly tracks: RecTrack[] = [];
  /** Frames waiting for their time (both tracks in one time order), their bytes in one ring. */
  private readonly queue = new FrameQueue();
  private readonly now: () => number;
  private holdMs: number;
  /** How much longer than video gaps wait frames are held to put the tracks in time order. */
  private readonly holdExtraMs: number;
  private file: RecordingFile | undefined;
  private writer: MatroskaWriter | undefined;
  private startedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping: Promise<SessionRecordingResult> | undefined;
  private failure: Error | undefined;
  private formatKnown = false;
  private lastT = Number.NEGATIVE_INFINITY;
  private filePath = '';

  constructor(private readonly options: SessionRecorderOptions) {
    this.now = options.now ?? Date.now;
    this.holdExtraMs = Math.max((options.holdMs ?? options.jitterMs + 150) - options.jitterMs, 50);
    this.holdMs = options.jitterMs + this.holdExtraMs;
  }

  /** The file, once the first packet has arrived. */
  get path(): string {
    return this.filePath;
  }

  /**
   * Upper bound of where this recording ends (UTC ms): the latest frame recorded or buffered, plus
   * the longest frame duration the finished file may be given. 0 before the first packet.
   */
  get endsAt(): number {
    if (this.startedAt === undefined || this.lastT === Number.NEGATIVE_INFINITY)
      return this.startedAt ?? 0;
    return this.startedAt + this.lastT + 100;
  }

  get started(): boolean {
    return this.startedAt !== undefined;
  }

  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Adds a track; only before the first packet (the file's track list is fixed then). */
  addTrack(source: TrackSource): boolean {
    if (this.stopping || this.startedAt !== undefined) return false;
    if (this.tracks.some((t) => t.info.kind === source.kind)) return false;
    const rules = rulesFor(source.mimeType);
    if (!rules || rules.kind !== source.kind) {
      this.options.log.warn('track not recorded: codec not supported', {
        kind: source.kind,
        codec: source.mimeType,
      });
      return false;
    }
    const number = this.tracks.length + 1;
    const info: RecordedTrackInfo = { number, kind: source.kind, codec: rules.codec };
    const track: RecTrack = {
      info,
      writer: { number, kind: source.kind, codec: rules.codec },
      rules,
      source,
      jitter: new JitterBuffer({
        rules,
        deadlineMs:
          source.kind === 'video' ? this.options.jitterMs : Math.min(60, this.options.jitterMs),
        onKeyframeNeeded: () => {
          if (!this.stopping) this.options.requestKeyframe();
        },
      }),
      clock: new MediaClock({ clockRate: rules.clockRate }),
      written: 0,
      resolutionChanges: 0,
      foreignPackets: 0,
      payloadTypes: new Map(),
    };
    this.tracks.push(track);
    track.unsubscribe = source.subscribe((p) => this.onPacket(track, p));
    return true;
  }

  private onPacket(track: RecTrack, p: RtpIn & { payloadType?: number }): void {
    if (this.stopping || this.failure) return;
    if (p.payloadType !== undefined && track.source.codecOf) {
      let ours = track.payloadTypes.get(p.payloadType);
      if (ours === undefined) {
        // resolved once per payload type, not per packet
        const codec = track.source.codecOf(p.payloadType);
        ours = !codec || rulesFor(codec) === track.rules;
        track.payloadTypes.set(p.payloadType, ours);
      }
      if (!ours) {
        track.foreignPackets++;
        return;
      }
    }
    const now = this.now();
    if (this.startedAt === undefined && !this.start(now)) return;
    try {
      this.enqueue(track, track.jitter.processInput(p, now - this.startedAt!));
    } catch (err) {
      this.options.log.error('recording: packet handling failed', { error: errorMessage(err) });
    }
  }

  private start(now: number): boolean {
    this.startedAt = Math.max(now, this.options.notBefore ?? 0);
    const video = this.tracks.find((t) => t.info.kind === 'video');
    this.filePath = `${this.options.basePath}.${video?.rules.codec === 'H264' ? 'mkv' : 'webm'}`;
    try {
      this.options.onStart(
        this.startedAt,
        this.tracks.map((t) => t.info),
        this.filePath,
      );
    } catch (err) {
      this.failure = new Error(`recording could not be registered: ${errorMessage(err)}`);
      this.options.onFailed(this.failure);
      return false;
    }
    this.writer = new MatroskaWriter({
      tracks: this.tracks.map((t) => t.writer),
      startedAt: this.startedAt,
      app: this.options.app,
    });
    this.file = new RecordingFile({
      path: this.filePath,
      flushMs: this.options.flushMs,
      syncMs: this.options.syncMs,
      flushBytes: this.options.flushBytes,
      io: this.options.io,
      onFailed: (err) => this.onFileFailed(err),
    });
    this.file.append(this.writer.header());
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    return true;
  }

  private onFileFailed(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.queue.clear();
    for (const t of this.tracks) t.unsubscribe?.();
    this.options.log.error('recording stopped: the file cannot be written', { error: err.message });
    this.options.onFailed(err);
  }

  /** Stops writing at once (the disk is nearly full); what is written stays readable. */
  halt(reason: string): void {
    this.onFileFailed(new Error(reason));
  }

  private enqueue(track: RecTrack, frames: BufferedFrame[]): void {
    for (let f = 0; f < frames.length; f++) {
      const frame = frames[f]!;
      const t = track.clock.toMs(frame.rtpTimestamp, frame.arrival);
      if (t > this.lastT) this.lastT = t;
      this.queue.push(t, this.tracks.indexOf(track), frame);
    }
  }

  /** Gives up late gaps and writes what is due; runs every 50 ms on its own (tests call it). */
  tick(): void {
    if (this.startedAt === undefined || this.failure) return;
    const media = this.now() - this.startedAt;
    try {
      for (const t of this.tracks) {
        if (t.info.kind === 'video' && t.source.repairRoundTripMs) {
          const wait = gapWaitMs(this.options.jitterMs, t.source.repairRoundTripMs());
          if (wait !== t.jitter.deadline) {
            t.jitter.setDeadline(wait);
            this.holdMs = wait + this.holdExtraMs;
          }
        }
        this.enqueue(t, t.jitter.tick(media));
      }
      this.release(media - this.holdMs);
    } catch (err) {
      this.options.log.error('recording: tick failed', { error: errorMessage(err) });
    }
  }

  private release(upTo: number): void {
    const queue = this.queue;
    while (queue.length > 0 && queue.firstTime <= upTo) {
      const frame = queue.front();
      this.write(this.tracks[frame.track]!, frame);
      queue.shift();
    }
  }

  private write(track: RecTrack, frame: FrontFrame): void {
    if (!this.file || !this.writer || this.failure) return;
    if (track.info.kind === 'video') {
      if (!this.formatKnown) {
        if (
          !frame.width ||
          !frame.height ||
          (track.rules.codec === 'H264' && !frame.codecPrivate)
        ) {
          track.jitter.stats.framesSkipped++;
          this.options.requestKeyframe();
          return;
        }
        this.formatKnown = true;
        for (const p of this.writer.videoFormat({
          width: frame.width,
          height: frame.height,
          codecPrivate: frame.codecPrivate,
        })) {
          this.file.patch(p.offset, p.bytes);
        }
      } else if (
        frame.width &&
        frame.height &&
        (frame.width !== track.width || frame.height !== track.height)
      ) {
        track.resolutionChanges++;
        this.options.log.info('recording: picture size changed', {
          from: `${track.width}x${track.height}`,
          to: `${frame.width}x${frame.height}`,
        });
      }
      if (frame.width && frame.height) {
        track.width = frame.width;
        track.height = frame.height;
      }
    }
    this.writer.writeFrame(this.file, track.writer, frame.t, frame.keyframe, frame.data);
    track.written++;
  }

  /** Writes what is buffered, closes the file and reports. Idempotent. */
  stop(): Promise<SessionRecordingResult> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      for (const t of this.tracks) t.unsubscribe?.();
      if (this.startedAt !== undefined && !this.failure) {
        for (const t of this.tracks) this.enqueue(t, t.jitter.flush());
        this.release(Number.POSITIVE_INFINITY);
      }
      this.queue.clear();
      if (this.file) await this.file.close();
      return {
        path: this.filePath,
        startedAt: this.startedAt,
        bytes: this.file?.written ?? 0,
        tracks: this.tracks.map((t) => ({
          ...t.info,
          ...t.jitter.stats,
          width: t.width,
          height: t.height,
          written: t.written,
          resolutionChanges: t.resolutionChanges,
          clockRebases: t.clock.rebases,
          foreignPackets: t.foreignPackets,
        })),
        ...(this.failure ? { failure: this.failure.message } : {}),
      };
    })();
    return this.stopping;
  }
}
