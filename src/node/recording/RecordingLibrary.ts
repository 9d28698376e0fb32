import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, HttpError } from '../../core/errors.ts';
import { ffmpegPath } from '../../core/ffmpeg.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import type { ChainedEvent } from '../store/eventChain.ts';
import type {
  CaseMediaRecord,
  RecordingRecord,
  RecordingStatus,
  RecordingTrack,
  Store,
} from '../store/Store.ts';
import { finalizeMatroska, type MatroskaScan } from './matroskaFile.ts';
import type { SessionRecordingResult, TrackResult } from './SessionRecorder.ts';

export interface RecordingLibraryOptions {
  store: Store;
  dataDir: string;
  /** Days after a case closes before its media may be pruned; 0 keeps it forever. */
  retentionDays: number;
  log?: Logger;
}

export interface VerifyResult {
  id: string;
  caseId: string;
  ok: boolean;
  /** Nothing to check (erased, or the recording is still being written). */
  skipped?: string;
  problems: string[];
  sha256: string | null;
  bytes: number | null;
}

export interface PrunePlan {
  caseId: string;
  closedAt: number;
  recordings: string[];
  snapshots: number;
  bytes: number;
}

export interface EraseResult {
  caseId: string;
  recordings: string[];
  snapshots: number;
  bytes: number;
  /** Files that could not be removed (the erase can be run again). */
  leftovers: string[];
  eventSeq: number;
}

export interface TranscodeResult {
  id: string;
  output: string;
  bytes: number;
  durationMs: number;
}

const DAY_MS = 86_400_000;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function mergeTracks(scan: MatroskaScan, live?: TrackResult[]): RecordingTrack[] {
  return scan.tracks
    .filter((t) => t.kind !== 'other')
    .map((t) => {
      const l = live?.find((x) => x.number === t.number);
      const codec =
        t.codecId === 'V_VP8'
          ? 'VP8'
          : t.codecId === 'A_OPUS'
            ? 'OPUS'
            : t.codecId.startsWith('V_MPEG4/ISO/AVC')
              ? 'H264'
              : t.codecId;
      return {
        number: t.number,
        kind: t.kind as 'audio' | 'video',
        codec,
        frames: t.frames,
        keyframes: t.keyframes,
        ...(t.kind === 'video'
          ? { width: l?.width ?? t.width, height: l?.height ?? t.height }
          : {}),
        ...(l
          ? {
              framesLost: l.framesLost,
              framesSkipped: l.framesSkipped,
              latePackets: l.late,
              keyframeRequests: l.keyframeRequests,
              resolutionChanges: l.resolutionChanges,
              clockRebases: l.clockRebases,
            }
          : {}),
      };
    });
}

/**
 * Recordings at rest: finishing and repairing files, hashes, the database rows and the case
 * timeline events that go with them, verification, MP4 copies, retention, legal hold and erasure.
 * Used by the node and, on the node host, directly by the CLI.
 */
export class RecordingLibrary {
  readonly store: Store;
  readonly dataDir: string;
  private readonly log: Logger;

  constructor(private readonly options: RecordingLibraryOptions) {
    this.store = options.store;
    this.dataDir = options.dataDir;
    this.log = options.log ?? silentLogger;
  }

  abs(rel: string): string {
    return join(this.dataDir, rel);
  }

  list(filter: { caseId?: string } = {}): RecordingRecord[] {
    if (filter.caseId) this.caseOrThrow(filter.caseId);
    return this.store.listRecordings(filter);
  }

  get(id: string): RecordingRecord {
    const r = this.store.getRecording(id);
    if (!r) throw new HttpError(404, 'recording_not_found', `recording ${id} does not exist`);
    return r;
  }

  caseMedia(caseId: string): CaseMediaRecord {
    this.caseOrThrow(caseId);
    return this.store.caseMedia(caseId);
  }

  private caseOrThrow(caseId: string): void {
    if (!this.store.getCase(caseId))
      throw new HttpError(404, 'case_not_found', `case ${caseId} does not exist`);
  }

  /** Appends to a case's hash-chained timeline (its own transaction). */
  appendEvent(
    caseId: string,
    type: string,
    actor: string,
    data: Record<string, unknown>,
  ): ChainedEvent {
    return this.store.txImmediate(() => this.store.appendEvent({ caseId, type, actor, data }));
  }

  /**
   * A session's file is closed: finalise it in place (sizes, duration, cues), hash it, store the
   * result and add `recording.finished` to the case timeline.
   */
  async finish(id: string, result: SessionRecordingResult): Promise<RecordingRecord> {
    const rec = this.get(id);
    const file = this.abs(rec.path);
    let status: Exclude<RecordingStatus, 'recording'> = result.failure ? 'truncated' : 'finished';
    let note = result.failure ?? null;
    let tracks: RecordingTrack[] = rec.tracks;
    let durationMs = 0;
    let bytes = 0;
    let sha256 = '';
    try {
      const fin = await finalizeMatroska(file);
      tracks = mergeTracks(fin.scan, result.tracks);
      durationMs = fin.durationMs;
      bytes = fin.size;
      sha256 = await sha256File(file);
      if (!tracks.some((t) => (t.frames ?? 0) > 0)) {
        status = 'failed';
        note = note ?? 'no frame was recorded (the publisher sent no decodable media)';
      }
    } catch (err) {
      status = 'failed';
      note = `${note ? `${note}; ` : ''}the file could not be finalised: ${errorMessage(err)}`;
      if (existsSync(file)) {
        bytes = (await stat(file)).size;
        sha256 = await sha256File(file);
      }
    }
    return this.record(rec, {
      path: rec.path,
      originalPath: null,
      tracks,
      durationMs,
      bytes,
      sha256,
      originalSha256: null,
      status,
      note,
    });
  }

  private record(
    rec: RecordingRecord,
    f: {
      path: string;
      originalPath: string | null;
      tracks: RecordingTrack[];
      durationMs: number;
      bytes: number;
      sha256: string;
      originalSha256: string | null;
      status: Exclude<RecordingStatus, 'recording'>;
      note: string | null;
      cutBytes?: number;
    },
  ): RecordingRecord {
    const endedAt = rec.startedAt + f.durationMs;
    this.store.txImmediate(() => {
      this.store.finishRecording({ id: rec.id, endedAt, ...f });
      if (f.status === 'repaired') {
        this.store.appendEvent({
          caseId: rec.caseId,
          type: 'recording.repaired',
          actor: 'node',
          data: {
            recordingId: rec.id,
            original: f.originalPath,
            originalSha256: f.originalSha256,
            repaired: f.path,
            cutBytes: f.cutBytes ?? 0,
            durationMs: f.durationMs,
          },
        });
      }
      this.store.appendEvent({
        caseId: rec.caseId,
        type: 'recording.finished',
        actor: 'node',
        data: {
          recordingId: rec.id,
          sessionId: rec.sessionId,
          role: rec.role,
          status: f.status,
          startedAt: rec.startedAt,
          endedAt,
          durationMs: f.durationMs,
          bytes: f.bytes,
          sha256: f.sha256,
          codecs: f.tracks.map((t) => t.codec),
          tracks: f.tracks.map((t) => ({
            kind: t.kind,
            codec: t.codec,
            frames: t.frames ?? 0,
            width: t.width,
            height: t.height,
          })),
          ...(f.note ? { note: f.note } : {}),
        },
      });
    });
    return this.get(rec.id);
  }

  /**
   * A recording a crash left unfinished: the original stays untouched; a copy is cut at the last
   * complete element and finalised, hashed and stored as the recording to play.
   */
  async repair(id: string): Promise<RecordingRecord> {
    const rec = this.get(id);
    if (rec.status !== 'recording') return rec;
    const original = this.abs(rec.path);
    if (!existsSync(original)) {
      return this.record(rec, {
        path: rec.path,
        originalPath: null,
        tracks: rec.tracks,
        durationMs: 0,
        bytes: 0,
        sha256: '',
        originalSha256: null,
        status: 'failed',
        note: 'the node stopped before any media reached the disk',
      });
    }
    const originalSha256 = await sha256File(original);
    const repairedRel = rec.path.replace(/\.(webm|mkv)$/, '.repaired.$1');
    const repaired = this.abs(repairedRel);
    try {
      await copyFile(original, repaired);
      const fin = await finalizeMatroska(repaired);
      const tracks = mergeTracks(fin.scan);
      const frames = tracks.reduce((n, t) => n + (t.frames ?? 0), 0);
      return this.record(rec, {
        path: repairedRel,
        originalPath: rec.path,
        tracks,
        durationMs: fin.durationMs,
        bytes: fin.size,
        sha256: await sha256File(repaired),
        originalSha256,
        status: frames > 0 ? 'repaired' : 'failed',
        note: `the node stopped while recording; repaired on the next start${fin.cutBytes ? ` (cut ${fin.cutBytes} bytes of a partly written frame)` : ''}${frames ? '' : '; no complete frame was on disk'}`,
        cutBytes: fin.cutBytes,
      });
    } catch (err) {
      await rm(repaired, { force: true });
      const size = (await stat(original)).size;
      return this.record(rec, {
        path: rec.path,
        originalPath: null,
        tracks: rec.tracks,
        durationMs: 0,
        bytes: size,
        sha256: originalSha256,
        originalSha256: null,
        status: 'failed',
        note: `the node stopped while recording and the file could not be repaired: ${errorMessage(err)}`,
      });
    }
  }

  /** Repairs every recording left unfinished (call on start, before new sessions). */
  async repairUnfinished(onStep?: (r: RecordingRecord) => void): Promise<RecordingRecord[]> {
    const out: RecordingRecord[] = [];
    for (const rec of this.store.unfinishedRecordings()) {
      const done = await this.repair(rec.id);
      this.log.info('recording repaired', {
        recordingId: done.id,
        status: done.status,
        durationMs: done.durationMs,
      });
      onStep?.(done);
      out.push(done);
    }
    return out;
  }

  /**
   * Checks a recording: the file is there, its SHA-256 is the one stored, and ffmpeg decodes it
   * without an error. After a repair the kept original is checked against its hash too.
   */
  async verify(id: string, opts: { decode?: boolean } = {}): Promise<VerifyResult> {
    const rec = this.get(id);
    const base = { id, caseId: rec.caseId, sha256: rec.sha256, bytes: rec.bytes };
    if (rec.erasedAt !== null) return { ...base, ok: true, skipped: 'erased', problems: [] };
    if (rec.status === 'recording')
      return { ...base, ok: true, skipped: 'still recording', problems: [] };
    const problems: string[] = [];
    const file = this.abs(rec.path);
    if (!existsSync(file)) {
      problems.push(`the file ${rec.path} is missing`);
    } else {
      const actual = await sha256File(file);
      if (rec.sha256 && actual !== rec.sha256) {
        problems.push(
          `${rec.path} changed since it was recorded: sha256 ${actual} ≠ stored ${rec.sha256}`,
        );
      }
      const size = (await stat(file)).size;
      if (rec.bytes !== null && size !== rec.bytes)
        problems.push(`${rec.path} is ${size} bytes; ${rec.bytes} were stored`);
      if (opts.decode !== false && rec.status !== 'failed') {
        const { execa } = await import('execa');
        const r = await execa(
          ffmpegPath(),
          ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'],
          { reject: false },
        );
        const errors = r.stderr.trim();
        if (r.exitCode !== 0 || errors) {
          problems.push(
            `ffmpeg cannot decode ${rec.path} cleanly: ${errors.split('\n').slice(0, 3).join(' | ') || `exit ${r.exitCode}`}`,
          );
        }
      }
    }
    if (rec.originalPath) {
      const orig = this.abs(rec.originalPath);
      if (!existsSync(orig)) problems.push(`the original ${rec.originalPath} is missing`);
      else if (rec.originalSha256 && (await sha256File(orig)) !== rec.originalSha256) {
        problems.push(`the original ${rec.originalPath} changed since it was kept`);
      }
    }
    return { ...base, ok: problems.length === 0, problems };
  }

  /** An MP4 (H.264/AAC) copy for any player; `onProgress` gets 0..1. */
  async transcode(
    id: string,
    output: string,
    onProgress?: (fraction: number) => void,
  ): Promise<TranscodeResult> {
    const rec = this.get(id);
    if (rec.erasedAt !== null)
      throw new HttpError(410, 'recording_erased', `recording ${id} was erased`);
    if (rec.status === 'recording')
      throw new HttpError(409, 'recording_live', `recording ${id} is still being written`);
    const file = this.abs(rec.path);
    if (!existsSync(file))
      throw new HttpError(
        404,
        'recording_missing',
        `the file of recording ${id} is missing (${rec.path})`,
      );
    const video = rec.tracks.find((t) => t.kind === 'video' && (t.frames ?? 0) > 0);
    const audio = rec.tracks.find((t) => t.kind === 'audio' && (t.frames ?? 0) > 0);
    const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);
    const args = ['-nostdin', '-v', 'error', '-y', '-i', file, '-map_metadata', '0'];
    if (video) {
      args.push(
        '-map',
        '0:v:0',
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-crf',
        '23',
        '-pix_fmt',
        'yuv420p',
      );
      // one picture size for the whole file, even if the camera changed it mid-session
      if (video.width && video.height)
        args.push('-vf', `scale=${even(video.width)}:${even(video.height)}`);
    }
    if (audio) args.push('-map', '0:a:0', '-c:a', 'aac', '-b:a', '96k');
    args.push('-movflags', '+faststart', '-progress', 'pipe:1', '-nostats', '-f', 'mp4', output);
    const total = rec.durationMs ?? 0;
    // imported here: a running node loads execa (and its dependencies) only when it transcodes
    const { execa } = await import('execa');
    const proc = execa(ffmpegPath(), args, { reject: false, buffer: { stdout: false } });
    proc.stdout?.on('data', (chunk: Buffer) => {
      const m = /out_time_(?:us|ms)=(\d+)/.exec(chunk.toString());
      if (m && total > 0) onProgress?.(Math.min(1, Number(m[1]) / 1000 / total));
    });
    const r = await proc;
    if (r.exitCode !== 0) {
      await rm(output, { force: true });
      throw new Error(
        `ffmpeg could not transcode ${rec.path}: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    onProgress?.(1);
    return { id, output, bytes: (await stat(output)).size, durationMs: total };
  }

  // ---- retention, legal hold, erasure ----

  private snapshotFiles(caseId: string): string[] {
    return this.store.snapshots(caseId).map((s) => this.abs(s.path));
  }

  private async mediaFiles(
    caseId: string,
  ): Promise<{ recordings: RecordingRecord[]; files: string[]; snapshots: number; bytes: number }> {
    const recordings = this.store.listRecordings({ caseId }).filter((r) => r.erasedAt === null);
    const files = new Set<string>();
    for (const r of recordings) {
      files.add(this.abs(r.path));
      if (r.originalPath) files.add(this.abs(r.originalPath));
    }
    const snaps = this.snapshotFiles(caseId);
    for (const f of snaps) files.add(f);
    // anything else left in the case's folders (e.g. a half-written file)
    for (const dir of [
      join(this.dataDir, 'recordings', caseId),
      join(this.dataDir, 'snapshots', caseId),
    ]) {
      try {
        for (const f of await readdir(dir)) files.add(join(dir, f));
      } catch {
        // no folder: nothing there
      }
    }
    let bytes = 0;
    const present: string[] = [];
    for (const f of files) {
      try {
        bytes += (await stat(f)).size;
        present.push(f);
      } catch {
        // already gone
      }
    }
    return { recordings, files: present, snapshots: snaps.length, bytes };
  }

  /** Cases whose media retention has run out (closed more than `retentionDays` ago, no hold). */
  async pruneCandidates(now = Date.now()): Promise<PrunePlan[]> {
    if (this.options.retentionDays <= 0) return [];
    const cutoff = now - this.options.retentionDays * DAY_MS;
    const plans: PrunePlan[] = [];
    for (const c of this.store.casesPastRetention(cutoff)) {
      const m = await this.mediaFiles(c.caseId);
      plans.push({
        caseId: c.caseId,
        closedAt: c.closedAt,
        recordings: m.recordings.map((r) => r.id),
        snapshots: m.snapshots,
        bytes: m.bytes,
      });
    }
    return plans;
  }

  /** Applies retention: erases the media of every case past it (or only lists them with `dryRun`). */
  async prune(opts: {
    dryRun?: boolean;
    by: string;
    now?: number;
    onStep?: (p: PrunePlan) => void;
  }): Promise<PrunePlan[]> {
    const plans = await this.pruneCandidates(opts.now);
    if (opts.dryRun) return plans;
    for (const p of plans) {
      await this.erase(p.caseId, {
        by: opts.by,
        reason: `retention: ${this.options.retentionDays} days after the case closed`,
        type: 'media.pruned',
      });
      opts.onStep?.(p);
    }
    return plans;
  }

  hold(caseId: string, reason: string, by: string): CaseMediaRecord {
    this.caseOrThrow(caseId);
    const media = this.store.caseMedia(caseId);
    if (media.erasedAt !== null) {
      throw new HttpError(
        409,
        'media_erased',
        `case ${caseId}: its media was already erased; there is nothing to hold`,
      );
    }
    this.store.txImmediate(() => {
      this.store.setHold(caseId, reason, by, Date.now());
      this.store.appendEvent({
        caseId,
        type: 'media.hold',
        actor: `admin:${by}`,
        data: { reason, by },
      });
    });
    return this.store.caseMedia(caseId);
  }

  release(caseId: string, by: string, reason?: string): CaseMediaRecord {
    this.caseOrThrow(caseId);
    const media = this.store.caseMedia(caseId);
    if (media.holdAt === null)
      throw new HttpError(409, 'no_hold', `case ${caseId} is not on legal hold`);
    this.store.txImmediate(() => {
      this.store.clearHold(caseId);
      this.store.appendEvent({
        caseId,
        type: 'media.released',
        actor: `admin:${by}`,
        data: {
          by,
          heldSince: media.holdAt,
          heldFor: media.holdReason,
          ...(reason ? { reason } : {}),
        },
      });
    });
    return this.store.caseMedia(caseId);
  }

  /**
   * Deletes a case's media (recordings, kept originals, snapshots). The case, its rows and its
   * timeline stay; the case is marked erased and the event says who and why. Refused under legal
   * hold and while a recording of the case is being written. Running it again removes leftovers.
   */
  async erase(
    caseId: string,
    opts: { reason: string; by: string; type?: 'media.erased' | 'media.pruned' },
  ): Promise<EraseResult> {
    this.caseOrThrow(caseId);
    const media = this.store.caseMedia(caseId);
    if (media.holdAt !== null) {
      throw new HttpError(
        409,
        'legal_hold',
        `case ${caseId} is on legal hold (${media.holdReason}); release the hold first`,
      );
    }
    const live = this.store.listRecordings({ caseId }).filter((r) => r.status === 'recording');
    if (live.length) {
      throw new HttpError(
        409,
        'recording_live',
        `case ${caseId} has ${live.length} recording(s) still being written (${live.map((r) => r.id).join(', ')}); end the session or let the node repair them first`,
      );
    }
    const m = await this.mediaFiles(caseId);
    const now = Date.now();
    let eventSeq = 0;
    this.store.txImmediate(() => {
      for (const r of m.recordings) this.store.markRecordingErased(r.id, now);
      this.store.markCaseErased(caseId, opts.reason, opts.by, now);
      eventSeq = this.store.appendEvent({
        caseId,
        type: opts.type ?? 'media.erased',
        actor: opts.type === 'media.pruned' ? 'node' : `admin:${opts.by}`,
        data: {
          by: opts.by,
          reason: opts.reason,
          recordings: m.recordings.map((r) => ({ id: r.id, sha256: r.sha256 })),
          snapshots: m.snapshots,
          files: m.files.length,
          bytes: m.bytes,
        },
      }).seq;
    });
    const leftovers: string[] = [];
    for (const f of m.files) {
      try {
        await rm(f, { force: true });
      } catch (err) {
        leftovers.push(`${f}: ${errorMessage(err)}`);
      }
    }
    for (const dir of [
      join(this.dataDir, 'recordings', caseId),
      join(this.dataDir, 'snapshots', caseId),
    ]) {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
    return {
      caseId,
      recordings: m.recordings.map((r) => r.id),
      snapshots: m.snapshots,
      bytes: m.bytes,
      leftovers,
      eventSeq,
    };
  }
}
