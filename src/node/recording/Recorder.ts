import { mkdirSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { NodeConfig } from '../../core/config.ts';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { newId } from '../cases/CaseService.ts';
import type { RecordingRecord, RecordingTrack } from '../store/Store.ts';
import type { RecordingFileIo } from './RecordingFile.ts';
import type { RecordingLibrary } from './RecordingLibrary.ts';
import {
  SessionRecorder,
  type SessionRecordingResult,
  type TrackSource,
} from './SessionRecorder.ts';

export type RecordingConfig = NodeConfig['recording'];

export interface RecorderOptions {
  library: RecordingLibrary;
  config: RecordingConfig;
  /** WritingApp in the files, e.g. `returncam 0.1.0`. */
  app: string;
  log: Logger;
  /** Asks a publisher session for a keyframe. */
  requestKeyframe: (session: PublishedSessionRef) => void;
  /** Prometheus registry for the recorder's metrics. */
  metrics?: Registry;
  /** Free bytes on the filesystem holding `path` (tests replace it). */
  freeBytes?: (path: string) => Promise<number>;
  io?: RecordingFileIo;
}

export interface PublishedSessionRef {
  caseId: string;
  role: string;
  sessionId: string;
}

export interface PublishedTrackInfo extends PublishedSessionRef {
  kind: 'audio' | 'video';
  source: TrackSource;
}

interface Active extends PublishedSessionRef {
  recordingId: string;
  recorder: SessionRecorder;
  /** The row exists (the first packet arrived). */
  registered: boolean;
}

async function statfsFree(path: string): Promise<number> {
  const s = await statfs(path);
  return Number(s.bavail) * Number(s.bsize);
}

const KEYFRAME_REQUEST_MS = 1000;
const DISK_CHECK_MS = 5000;

/**
 * Records every publisher session from its first packet (one {@link SessionRecorder} each),
 * guards the disk (refuses publishers below `minFreeBytes`, stops recordings cleanly below
 * `stopFreeBytes`), and hands finished files to the {@link RecordingLibrary}. `close()` finishes
 * every recording; call it before the database closes.
 */
export class Recorder {
  private readonly library: RecordingLibrary;
  private readonly config: RecordingConfig;
  private readonly log: Logger;
  private readonly active = new Map<string, Active>();
  /** Per case and role: the session whose segment comes last, for the next one's start. */
  private readonly lastSegment = new Map<string, Active>();
  private readonly finishing = new Set<Promise<unknown>>();
  private readonly lastKeyframeAsk = new Map<string, number>();
  private readonly freeBytes: (path: string) => Promise<number>;
  private readonly recordingsDir: string;
  private diskTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private lastFree = Number.NaN;
  private closing: Promise<void> | undefined;
  private refused: Counter | undefined;
  private finished: Counter | undefined;

  constructor(private readonly options: RecorderOptions) {
    this.library = options.library;
    this.config = options.config;
    this.log = options.log;
    this.freeBytes = options.freeBytes ?? statfsFree;
    this.recordingsDir = join(this.library.dataDir, 'recordings');
    mkdirSync(this.recordingsDir, { recursive: true });
    if (options.metrics) this.registerMetrics(options.metrics);
    this.diskTimer = setInterval(() => void this.checkDisk(), DISK_CHECK_MS);
    this.diskTimer.unref();
    if (this.config.pruneInterval > 0) {
      this.pruneTimer = setInterval(() => void this.pruneNow(), this.config.pruneInterval);
      this.pruneTimer.unref();
    }
  }

  private registerMetrics(registry: Registry): void {
    const self = this;
    new Gauge({
      name: 'returncam_recording_disk_free_bytes',
      help: 'Free bytes on the filesystem holding the recordings (last check)',
      registers: [registry],
      collect() {
        if (Number.isFinite(self.lastFree)) this.set(self.lastFree);
      },
    });
    new Gauge({
      name: 'returncam_recordings_active',
      help: 'Publisher sessions being recorded',
      registers: [registry],
      collect() {
        this.set([...self.active.values()].filter((a) => a.registered).length);
      },
    });
    this.refused = new Counter({
      name: 'returncam_recording_refused_total',
      help: 'WHIP sessions refused (HTTP 507) because the recordings disk is below recording.minFreeBytes',
      registers: [registry],
    });
    this.finished = new Counter({
      name: 'returncam_recordings_finished_total',
      help: 'Recordings finished, by status (finished, truncated, repaired, failed)',
      labelNames: ['status'],
      registers: [registry],
    });
  }

  /** Recordings being written now. */
  get activeCount(): number {
    return this.active.size;
  }

  /**
   * Before a WHIP session is accepted: refuses (507) when the recordings disk is below
   * `recording.minFreeBytes`, so nothing is recorded half-way onto a full disk.
   */
  async admitPublisher(): Promise<void> {
    if (!this.config.enabled) return;
    const free = await this.checkDisk();
    if (free !== undefined && free < this.config.minFreeBytes) {
      this.refused?.inc();
      throw new HttpError(
        507,
        'insufficient_storage',
        `the node cannot record: ${Math.floor(free / 1024 ** 2)} MiB free on its recordings disk, it needs ${Math.ceil(this.config.minFreeBytes / 1024 ** 2)} MiB (recording.minFreeBytes); ask the operator to free space`,
      );
    }
  }

  /** Reads free space; below `stopFreeBytes` every running recording stops cleanly. */
  async checkDisk(): Promise<number | undefined> {
    let free: number;
    try {
      free = await this.freeBytes(this.recordingsDir);
    } catch (err) {
      this.log.warn('cannot read free disk space', { error: errorMessage(err) });
      return undefined;
    }
    this.lastFree = free;
    if (free < this.config.stopFreeBytes && this.active.size > 0) {
      const why = `the recordings disk is nearly full (${free} bytes free, recording.stopFreeBytes is ${this.config.stopFreeBytes})`;
      for (const a of this.active.values()) {
        if (a.registered && !a.recorder.stopped) a.recorder.halt(why);
      }
    }
    return free;
  }

  /** A publisher track arrived: records it with the other tracks of its session. */
  trackPublished(info: PublishedTrackInfo): void {
    if (!this.config.enabled || this.closing) return;
    let a = this.active.get(info.sessionId);
    if (!a) {
      if (this.library.store.caseMedia(info.caseId).erasedAt !== null) {
        this.log.info('not recording: the case media was erased', {
          caseId: info.caseId,
          sessionId: info.sessionId,
        });
        return;
      }
      a = this.createSession(info);
      this.active.set(info.sessionId, a);
    }
    a.recorder.addTrack(info.source);
  }

  private createSession(ref: PublishedSessionRef): Active {
    const recordingId = newId('r', 9);
    const key = `${ref.caseId}/${ref.role}`;
    const log = this.log.child({ caseId: ref.caseId, recording: recordingId });
    // the callbacks below run after `a` is set (at the first packet)
    let a: Active | undefined;
    const recorder = new SessionRecorder({
      basePath: join(this.recordingsDir, ref.caseId, recordingId),
      app: this.options.app,
      jitterMs: this.config.nackWait,
      syncMs: this.config.syncInterval,
      notBefore: this.notBefore(key),
      log,
      io: this.options.io,
      requestKeyframe: () => this.askKeyframe(ref),
      onStart: (startedAt, tracks, path) => {
        mkdirSync(dirname(path), { recursive: true });
        const rel = path.slice(this.library.dataDir.length + 1);
        const recTracks: RecordingTrack[] = tracks.map((t) => ({ ...t }));
        this.library.store.txImmediate(() => {
          this.library.store.insertRecording({
            id: recordingId,
            caseId: ref.caseId,
            sessionId: ref.sessionId,
            role: ref.role,
            path: rel,
            container: path.endsWith('.mkv') ? 'matroska' : 'webm',
            tracks: recTracks,
            startedAt,
          });
          this.library.store.appendEvent({
            caseId: ref.caseId,
            type: 'recording.started',
            actor: 'node',
            data: {
              recordingId,
              sessionId: ref.sessionId,
              role: ref.role,
              startedAt,
              tracks: recTracks.map((t) => `${t.kind}/${t.codec}`),
            },
          });
        });
        if (a) {
          a.registered = true;
          this.lastSegment.set(key, a);
        }
        log.info('recording started', { path: rel });
      },
      onFailed: (err) => {
        log.error('recording stopped early', { error: err.message });
      },
    });
    a = { ...ref, recordingId, registered: false, recorder };
    return a;
  }

  /** The earliest start of a new segment of `key`: after the previous one ends. */
  private notBefore(key: string): number {
    const [caseId, role] = key.split('/') as [string, string];
    const fromDb = this.library.store.lastRecordingEnd(caseId, role) ?? 0;
    const prev = this.lastSegment.get(key);
    return Math.max(fromDb, prev ? prev.recorder.endsAt : 0);
  }

  private askKeyframe(ref: PublishedSessionRef): void {
    const now = Date.now();
    if (now - (this.lastKeyframeAsk.get(ref.sessionId) ?? 0) < KEYFRAME_REQUEST_MS) return;
    this.lastKeyframeAsk.set(ref.sessionId, now);
    try {
      this.options.requestKeyframe(ref);
    } catch (err) {
      this.log.warn('keyframe request failed', { error: errorMessage(err) });
    }
  }

  /** A publisher session ended: its recording is finished (asynchronously; `close()` waits). */
  sessionEnded(sessionId: string): Promise<RecordingRecord | undefined> {
    const a = this.active.get(sessionId);
    if (!a) return Promise.resolve(undefined);
    this.active.delete(sessionId);
    this.lastKeyframeAsk.delete(sessionId);
    const p = this.finish(a);
    this.finishing.add(p);
    void p.finally(() => {
      this.finishing.delete(p);
      // the database now holds its end for the next segment's start
      const key = `${a.caseId}/${a.role}`;
      if (this.lastSegment.get(key) === a) this.lastSegment.delete(key);
    });
    return p;
  }

  private async finish(a: Active): Promise<RecordingRecord | undefined> {
    let result: SessionRecordingResult;
    try {
      result = await a.recorder.stop();
    } catch (err) {
      this.log.error('recording could not be closed', {
        recordingId: a.recordingId,
        error: errorMessage(err),
      });
      return undefined;
    }
    if (!a.registered) return undefined;
    try {
      const rec = await this.library.finish(a.recordingId, result);
      this.finished?.inc({ status: rec.status });
      this.log.info('recording finished', {
        recordingId: rec.id,
        status: rec.status,
        durationMs: rec.durationMs,
        bytes: rec.bytes,
      });
      return rec;
    } catch (err) {
      this.log.error('recording could not be finished; it will be repaired on the next start', {
        recordingId: a.recordingId,
        error: errorMessage(err),
      });
      return undefined;
    }
  }

  /** Finishes every recording of a case (before its media is erased). */
  async stopCase(caseId: string): Promise<void> {
    const ended = [...this.active.values()]
      .filter((a) => a.caseId === caseId)
      .map((a) => this.sessionEnded(a.sessionId));
    await Promise.all(ended);
    await Promise.all([...this.finishing]);
  }

  /** Applies retention now (the node's own timer, when `recording.pruneInterval` is set). */
  async pruneNow(): Promise<void> {
    try {
      const plans = await this.library.prune({ by: 'node (retention)' });
      if (plans.length) this.log.info('retention applied', { cases: plans.length });
    } catch (err) {
      this.log.error('retention run failed', { error: errorMessage(err) });
    }
  }

  /** Finishes every recording; idempotent. Call before the database closes. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.diskTimer);
      clearInterval(this.pruneTimer);
      await Promise.all([...this.active.keys()].map((id) => this.sessionEnded(id)));
      await Promise.all([...this.finishing]);
    })();
    return this.closing;
  }
}
