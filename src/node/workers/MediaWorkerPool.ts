import { Worker } from 'node:worker_threads';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger, LogLevel } from '../../core/log.ts';
import { COMPILED } from '../../core/paths.ts';
import { WORKER_YOUNG_GENERATION_MB } from '../heapFlags.ts';
import { forwardTiming } from '../media/forwardTiming.ts';
import type { RemoteIceFragment } from '../media/iceRestart.ts';
import type { MediaStats, SessionAnswer } from '../media/RoomManager.ts';
import { SafeEvent } from '../media/SafeEvent.ts';
import {
  createMediaCounters,
  type MediaCounters,
  type MediaOptions,
  type Role,
  type SessionInfo,
} from '../media/types.ts';
import type { PublishedSessionRef, PublishedTrackInfo } from '../recording/Recorder.ts';
import type { TrackSource } from '../recording/SessionRecorder.ts';
import { CaseAssignment, type Placement } from './CaseAssignment.ts';
import type {
  IcePatchResult,
  MediaBackend,
  MediaBackendStatus,
  MediaEndedInfo,
  SessionView,
  WorkerStatus,
} from './MediaBackend.ts';
import { readPacketBatch } from './packetBatch.ts';
import type {
  CallResults,
  FromWorker,
  MediaWorkerData,
  PublishedTrackMessage,
  RtpBatchMessage,
  ToWorker,
  WorkerCall,
  WorkerSnapshot,
} from './protocol.ts';

export interface MediaWorkerPoolOptions {
  /** How many worker threads (≥ 1). */
  workers: number;
  media: MediaOptions;
  /** Stream published tracks' packets to this thread for the recorder. */
  record: boolean;
  log: Logger;
  logLevel: LogLevel;
  logJson: boolean;
  /** How often workers post their figures, ms (default 1000). */
  statsIntervalMs?: number;
  /** How often a track's packets are posted when fewer than a batch wait, ms (default 20). */
  batchIntervalMs?: number;
  /** First restart delay after a worker fails, doubled per failure in the last minute (default 250). */
  restartDelayMs?: number;
  /** How long shutdown waits for a worker to close its rooms, ms (default 10000). */
  closeTimeoutMs?: number;
}

type PacketListener = Parameters<TrackSource['subscribe']>[0];

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface LiveSession {
  info: SessionInfo;
  worker: number;
  placement?: Placement;
  trackIds: number[];
}

/** A published track of a worker, as the recorder reads it here. */
interface StreamedTrack {
  listeners: Set<PacketListener>;
  /** The publisher's repair round trip, as the worker last reported it. */
  repairRoundTripMs: number | undefined;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  state: WorkerStatus['state'];
  restarts: number;
  failures: number[];
  snapshot: WorkerSnapshot;
  pending: Map<number, Pending>;
  tracks: Map<number, StreamedTrack>;
  restartTimer: NodeJS.Timeout | undefined;
}

const FAILURE_WINDOW_MS = 60_000;
const MAX_RESTART_DELAY_MS = 30_000;
const FRESH_STATS_TIMEOUT_MS = 1_000;
/**
 * Compiled (`dist/`), a worker loads its JavaScript directly; from source it goes through
 * `entry.mjs`, which registers the TypeScript loader first.
 */
const WORKER_ENTRY = COMPILED
  ? new URL('./mediaWorker.js', import.meta.url)
  : new URL('./entry.mjs', import.meta.url);

function emptySnapshot(): WorkerSnapshot {
  return {
    counters: createMediaCounters(),
    stats: { rooms: 0, publishers: 0, subscribers: 0 },
    eventLoopUtilization: 0,
    heap: { usedBytes: 0, youngGenerationBytes: 0, youngGenerationLimitBytes: 0 },
    forwardMs: new Float64Array(0),
  };
}

function addCounters(into: MediaCounters, from: MediaCounters): void {
  for (const key of Object.keys(into) as (keyof MediaCounters)[]) into[key] += from[key];
}

/**
 * The UDP ports worker `index` of `workers` may use: an equal slice of the configured range, so
 * workers never race each other for a port. Undefined range: any free port.
 */
export function portSlice(
  range: [number, number] | undefined,
  workers: number,
  index: number,
): [number, number] | undefined {
  if (!range) return undefined;
  const size = Math.floor((range[1] - range[0] + 1) / workers);
  if (size < 1) {
    throw new RangeError(
      `media.portRange [${range[0]}, ${range[1]}] has fewer ports than media.workers (${workers}); widen the range or use fewer workers`,
    );
  }
  const first = range[0] + index * size;
  return [first, first + size - 1];
}

/**
 * Media rooms spread over `worker_threads`, one {@link RoomManager} (one werift event loop) per
 * worker. A case is placed on the worker with the fewest sessions when its first session arrives
 * and stays there while it has sessions ({@link CaseAssignment}). Session events and published
 * tracks' packets (in batches) come back as messages; keyframe requests go out as messages. A
 * worker that fails has its sessions reported ended (`worker_failed`) and is restarted with
 * back-off; new sessions of its cases go to a live worker.
 */
export class MediaWorkerPool implements MediaBackend {
  readonly onSessionStarted: SafeEvent<SessionInfo>;
  readonly onSessionEnded: SafeEvent<MediaEndedInfo>;
  readonly onIceConnected: SafeEvent<SessionInfo>;
  readonly onTrackPublished: SafeEvent<PublishedTrackInfo>;
  /** A worker came up (first start or restart); for tests and logs. */
  readonly onWorkerReady: SafeEvent<{ index: number; restarts: number }>;
  private readonly slots: Slot[] = [];
  private readonly assignment: CaseAssignment;
  private readonly sessions = new Map<string, LiveSession>();
  /** Counters of worker lives that have ended, so totals never go down. */
  private readonly retired = createMediaCounters();
  private readonly log: Logger;
  private nextCallId = 1;
  private closing: Promise<void> | undefined;
  private markClosed: () => void = () => {};
  private readonly closedSignal = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });

  constructor(private readonly options: MediaWorkerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError(`MediaWorkerPool: workers must be 1 or more (got ${options.workers})`);
    }
    this.log = options.log;
    const reportError = (event: string, err: unknown) =>
      this.log.error('media event listener threw', { event, error: errorMessage(err) });
    this.onSessionStarted = new SafeEvent('sessionStarted', reportError);
    this.onSessionEnded = new SafeEvent('sessionEnded', reportError);
    this.onIceConnected = new SafeEvent('iceConnected', reportError);
    this.onTrackPublished = new SafeEvent('trackPublished', reportError);
    this.onWorkerReady = new SafeEvent('workerReady', reportError);
    this.assignment = new CaseAssignment(options.workers);
    for (let index = 0; index < options.workers; index++) {
      // checked for every worker before any starts
      portSlice(options.media.portRange, options.workers, index);
    }
    for (let index = 0; index < options.workers; index++) {
      const slot: Slot = {
        index,
        worker: undefined,
        state: 'starting',
        restarts: 0,
        failures: [],
        snapshot: emptySnapshot(),
        pending: new Map(),
        tracks: new Map(),
        restartTimer: undefined,
      };
      this.slots.push(slot);
      this.spawn(slot);
    }
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Counters summed over every worker (each up to one stats interval old). */
  get counters(): MediaCounters {
    const sum = { ...this.retired };
    for (const slot of this.slots) addCounters(sum, slot.snapshot.counters);
    return sum;
  }

  /** Resolves once every worker is ready (or the pool closes). */
  async ready(): Promise<void> {
    while (!this.closed && this.slots.some((s) => s.state !== 'ready')) {
      await Promise.race([this.onWorkerReady.asPromise(), this.closedSignal]);
    }
  }

  /** The worker hosting a case (while it has sessions). */
  workerOf(caseId: string): number | undefined {
    return this.assignment.workerOf(caseId);
  }

  async publish(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    return this.open(caseId, { op: 'publish', caseId, role, sdp: offerSdp });
  }

  async subscribe(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    return this.open(caseId, { op: 'subscribe', caseId, role, sdp: offerSdp });
  }

  async endSession(caseId: string, sessionId: string): Promise<boolean> {
    const worker = this.assignment.workerOf(caseId);
    if (worker === undefined) return false;
    return this.call(this.slots[worker]!, { op: 'end', caseId, sessionId });
  }

  async session(caseId: string, sessionId: string): Promise<SessionView | undefined> {
    const worker = this.assignment.workerOf(caseId);
    if (worker === undefined) return undefined;
    return (
      (await this.call(this.slots[worker]!, { op: 'session', caseId, sessionId })) ?? undefined
    );
  }

  async patchIce(
    caseId: string,
    sessionId: string,
    fragment: RemoteIceFragment,
  ): Promise<IcePatchResult> {
    const worker = this.assignment.workerOf(caseId);
    if (worker === undefined) {
      throw new HttpError(404, 'session_not_found', `session ${sessionId} has ended`);
    }
    return this.call(this.slots[worker]!, { op: 'patch', caseId, sessionId, fragment });
  }

  async viewerStalled(caseId: string, sessionId: string, role: Role): Promise<boolean> {
    const worker = this.assignment.workerOf(caseId);
    if (worker === undefined) return false;
    return this.call(this.slots[worker]!, { op: 'stalled', caseId, sessionId, role });
  }

  requestKeyframe(ref: PublishedSessionRef): void {
    const live = this.sessions.get(ref.sessionId);
    const worker = live && this.slots[live.worker]?.worker;
    if (!worker || live.info.caseId !== ref.caseId) return;
    this.post(live.worker, {
      t: 'keyframe',
      caseId: ref.caseId,
      role: ref.role as Role,
      sessionId: ref.sessionId,
    });
  }

  async closeRoom(caseId: string): Promise<void> {
    const worker = this.assignment.workerOf(caseId);
    if (worker === undefined) return;
    await this.call(this.slots[worker]!, { op: 'closeRoom', caseId });
  }

  stats(): MediaStats {
    return this.countSessions(() => true);
  }

  async status(fresh = false): Promise<MediaBackendStatus> {
    if (fresh) {
      await Promise.all(
        this.slots
          .filter((slot) => slot.state === 'ready')
          .map(async (slot) => {
            let timer: NodeJS.Timeout | undefined;
            const timeout = new Promise<undefined>((resolve) => {
              timer = setTimeout(() => resolve(undefined), FRESH_STATS_TIMEOUT_MS);
            });
            const snapshot = await Promise.race([
              this.call(slot, { op: 'stats' }).catch(() => undefined),
              timeout,
            ]);
            clearTimeout(timer);
            if (snapshot && slot.state === 'ready') this.applySnapshot(slot, snapshot);
          }),
      );
    }
    const workers = this.slots.map((slot) => ({
      index: slot.index,
      state: slot.state,
      restarts: slot.restarts,
      ...this.countSessions((s) => s.worker === slot.index),
      counters: { ...slot.snapshot.counters },
      eventLoopUtilization: slot.snapshot.eventLoopUtilization,
      heap: { ...slot.snapshot.heap },
    }));
    return { mode: 'workers', ready: workers.every((w) => w.state === 'ready'), workers };
  }

  /** Test hook: makes worker `index` throw an uncaught error, as a bug in it would. */
  crashWorker(index: number): void {
    this.post(index, { t: 'crash' });
  }

  /** Closes every room in every worker, then stops the workers; idempotent. */
  close(): Promise<void> {
    this.markClosed();
    this.closing ??= Promise.all(this.slots.map((slot) => this.stop(slot))).then(() => undefined);
    return this.closing;
  }

  // ---- internals ----

  private countSessions(which: (s: LiveSession) => boolean): MediaStats {
    const cases = new Set<string>();
    let publishers = 0;
    let subscribers = 0;
    for (const s of this.sessions.values()) {
      if (!which(s)) continue;
      cases.add(s.info.caseId);
      if (s.info.direction === 'publish') publishers++;
      else subscribers++;
    }
    return { rooms: cases.size, publishers, subscribers };
  }

  private async open(
    caseId: string,
    call: WorkerCall & { op: 'publish' | 'subscribe' },
  ): Promise<SessionAnswer> {
    this.assertOpen();
    if (!caseId) throw new HttpError(400, 'bad_request', 'case id is empty');
    const placement = this.assignment.place(caseId, (i) => this.live(i));
    if (!placement) {
      throw new HttpError(
        503,
        'media_unavailable',
        'no media worker is running (they are restarting); try again in a few seconds',
        { 'Retry-After': '2' },
      );
    }
    let answer: SessionAnswer;
    try {
      answer = await this.call(this.slots[placement.worker]!, call);
    } catch (err) {
      this.assignment.release(placement);
      throw err;
    }
    const live = this.sessions.get(answer.sessionId);
    if (live) live.placement = placement;
    else this.assignment.release(placement); // it ended before its answer got here
    return answer;
  }

  private live(index: number): boolean {
    const state = this.slots[index]?.state;
    return state === 'ready' || state === 'starting';
  }

  private assertOpen(): void {
    if (this.closing) throw new HttpError(503, 'node_closing', 'the media node is shutting down');
  }

  private post(index: number, message: ToWorker): void {
    this.slots[index]?.worker?.postMessage(message);
  }

  private call<K extends WorkerCall['op']>(
    slot: Slot,
    call: WorkerCall & { op: K },
  ): Promise<CallResults[K]> {
    const worker = slot.worker;
    if (!worker || (slot.state !== 'ready' && slot.state !== 'starting')) {
      return Promise.reject(
        new HttpError(
          503,
          'media_worker_failed',
          `media worker ${slot.index} is restarting; try again in a few seconds`,
          { 'Retry-After': '2' },
        ),
      );
    }
    const id = this.nextCallId++;
    return new Promise<CallResults[K]>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ t: 'call', id, call } satisfies ToWorker);
    });
  }

  private spawn(slot: Slot): void {
    const data: MediaWorkerData = {
      index: slot.index,
      media: {
        ...this.options.media,
        portRange: portSlice(this.options.media.portRange, this.options.workers, slot.index),
      },
      record: this.options.record,
      log: { level: this.options.logLevel, json: this.options.logJson },
      statsIntervalMs: this.options.statsIntervalMs ?? 1000,
      batchIntervalMs: this.options.batchIntervalMs ?? 20,
    };
    const worker = new Worker(WORKER_ENTRY, {
      workerData: data,
      name: `returncam-media-${slot.index}`,
      // the main thread's young generation is set by the flags the process starts with; a
      // worker's own heap takes it from here
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    slot.worker = worker;
    slot.state = 'starting';
    worker.on('message', (message: FromWorker) => this.onMessage(slot, worker, message));
    worker.on('error', (err) => {
      this.log.error('media worker failed', {
        worker: slot.index,
        error: errorMessage(err),
        stack: err?.stack,
      });
    });
    worker.on('exit', (code) => this.onExit(slot, worker, code));
  }

  private onMessage(slot: Slot, worker: Worker, message: FromWorker): void {
    if (slot.worker !== worker) return;
    switch (message.t) {
      case 'ready':
        if (slot.state === 'starting') slot.state = 'ready';
        this.log.debug('media worker ready', { worker: slot.index, restarts: slot.restarts });
        this.onWorkerReady.execute({ index: slot.index, restarts: slot.restarts });
        break;
      case 'reply': {
        const pending = slot.pending.get(message.id);
        if (!pending) return;
        slot.pending.delete(message.id);
        if (message.ok) {
          pending.resolve(message.value);
        } else {
          const e = message.error;
          pending.reject(
            e.status !== undefined && e.code !== undefined
              ? new HttpError(e.status, e.code, e.message, e.headers)
              : new Error(`media worker ${slot.index}: ${e.message}`),
          );
        }
        break;
      }
      case 'started':
        this.sessions.set(message.info.sessionId, {
          info: message.info,
          worker: slot.index,
          trackIds: [],
        });
        this.onSessionStarted.execute(message.info);
        break;
      case 'ice':
        this.onIceConnected.execute(message.info);
        break;
      case 'track':
        this.trackPublished(slot, message.track);
        break;
      case 'rtp':
        for (const batch of message.batches) this.replay(slot, batch);
        break;
      case 'ended':
        this.sessionEnded(slot, message.info);
        break;
      case 'stats':
        this.applySnapshot(slot, message.snapshot);
        break;
    }
  }

  /** Hands a batch of a published track's packets to the track's listeners (the recorder). */
  private replay(slot: Slot, batch: RtpBatchMessage): void {
    const track = slot.tracks.get(batch.trackId);
    if (!track) return;
    if (batch.repairRoundTripMs !== undefined) track.repairRoundTripMs = batch.repairRoundTripMs;
    const listeners = track.listeners;
    if (listeners.size === 0) return;
    try {
      readPacketBatch(batch.buffer, (packet) => {
        for (const listener of listeners) {
          try {
            listener(packet);
          } catch (err) {
            this.log.error('recording: a packet listener threw', { error: errorMessage(err) });
          }
        }
      });
    } catch (err) {
      this.log.error('recording: a packet batch from a media worker was unreadable', {
        worker: slot.index,
        error: errorMessage(err),
      });
    }
  }

  /** A worker's figures: kept for the totals; its forwarding-time samples join this thread's. */
  private applySnapshot(slot: Slot, snapshot: WorkerSnapshot): void {
    slot.snapshot = snapshot;
    const samples = snapshot.forwardMs;
    for (let i = 0; i < samples.length; i++) forwardTiming.record(samples[i]!);
  }

  private trackPublished(slot: Slot, t: PublishedTrackMessage): void {
    const listeners = new Set<PacketListener>();
    const streamedTrack: StreamedTrack = { listeners, repairRoundTripMs: undefined };
    slot.tracks.set(t.trackId, streamedTrack);
    this.sessions.get(t.sessionId)?.trackIds.push(t.trackId);
    const codecs = new Map(t.codecs);
    const source: TrackSource = {
      kind: t.kind,
      mimeType: t.mimeType,
      codecOf: (pt) => codecs.get(pt),
      repairRoundTripMs: () => streamedTrack.repairRoundTripMs,
      subscribe(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    this.onTrackPublished.execute({
      caseId: t.caseId,
      role: t.role,
      sessionId: t.sessionId,
      kind: t.kind,
      source,
    });
  }

  private sessionEnded(slot: Slot, info: MediaEndedInfo): void {
    const live = this.sessions.get(info.sessionId);
    if (live) {
      this.sessions.delete(info.sessionId);
      for (const id of live.trackIds) slot.tracks.delete(id);
      if (live.placement) this.assignment.release(live.placement);
    }
    this.onSessionEnded.execute(info);
  }

  private onExit(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const failed = !this.closing;
    slot.state = failed ? 'restarting' : 'stopped';
    const reason = failed
      ? new HttpError(
          503,
          'media_worker_failed',
          `media worker ${slot.index} stopped; reconnect to continue`,
          { 'Retry-After': '2' },
        )
      : new HttpError(503, 'node_closing', 'the media node is shutting down');
    for (const pending of slot.pending.values()) pending.reject(reason);
    slot.pending.clear();
    addCounters(this.retired, slot.snapshot.counters);
    slot.snapshot = emptySnapshot();
    const cases = this.assignment.casesOn(slot.index);
    // every session it hosted has ended: say so, so the case log and recordings are finished
    for (const live of [...this.sessions.values()]) {
      if (live.worker !== slot.index) continue;
      this.sessionEnded(slot, { ...live.info, reason: failed ? 'worker_failed' : 'shutdown' });
    }
    slot.tracks.clear();
    this.assignment.drop(slot.index);
    if (!failed) return;
    const now = Date.now();
    slot.failures = [...slot.failures.filter((at) => now - at < FAILURE_WINDOW_MS), now];
    const delay = Math.min(
      MAX_RESTART_DELAY_MS,
      (this.options.restartDelayMs ?? 250) * 2 ** (slot.failures.length - 1),
    );
    this.log.error('media worker stopped; its sessions ended, restarting it', {
      worker: slot.index,
      exitCode: code,
      cases: cases.length,
      restartInMs: delay,
    });
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.closing) return;
      slot.restarts++;
      this.spawn(slot);
    }, delay);
    slot.restartTimer.unref();
  }

  private async stop(slot: Slot): Promise<void> {
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const worker = slot.worker;
    if (!worker) {
      slot.state = 'stopped';
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const closed = this.callUnchecked(slot, worker, { op: 'close' }).catch((err: unknown) => {
      this.log.warn('media worker did not close its rooms cleanly', {
        worker: slot.index,
        error: errorMessage(err),
      });
    });
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeTimeoutMs ?? 10_000);
      }),
    ]);
    clearTimeout(timer);
    await worker.terminate();
  }

  /** A call that is allowed while the pool closes (the shutdown `close` itself). */
  private callUnchecked(slot: Slot, worker: Worker, call: WorkerCall): Promise<unknown> {
    const id = this.nextCallId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      worker.postMessage({ t: 'call', id, call } satisfies ToWorker);
    });
  }
}
