import type { LogLevel } from '../../core/log.ts';
import type { LocalIce, RemoteIceFragment } from '../media/iceRestart.ts';
import type { MediaStats, SessionAnswer } from '../media/RoomManager.ts';
import type {
  MediaCounters,
  MediaKind,
  MediaOptions,
  Role,
  SessionEndedInfo,
  SessionInfo,
} from '../media/types.ts';
import type { SessionView, WorkerHeap } from './MediaBackend.ts';

/** Messages between the main thread and a media worker (structured clone; batches transferred). */

export interface MediaWorkerData {
  index: number;
  media: MediaOptions;
  /** Stream published tracks' packets to the main thread for recording. */
  record: boolean;
  log: { level: LogLevel; json: boolean };
  /** How often the worker posts its figures, ms. */
  statsIntervalMs: number;
  /** How often a track's packet batch is posted even when not full, ms. */
  batchIntervalMs: number;
}

export type WorkerCall =
  | { op: 'publish'; caseId: string; role: Role; sdp: string }
  | { op: 'subscribe'; caseId: string; role: Role; sdp: string }
  | { op: 'end'; caseId: string; sessionId: string }
  | { op: 'session'; caseId: string; sessionId: string }
  | { op: 'patch'; caseId: string; sessionId: string; fragment: RemoteIceFragment }
  | { op: 'stalled'; caseId: string; sessionId: string; role: Role }
  | { op: 'closeRoom'; caseId: string }
  | { op: 'close' }
  | { op: 'stats' };

export interface CallResults {
  publish: SessionAnswer;
  subscribe: SessionAnswer;
  end: boolean;
  session: SessionView | null;
  patch: { local: LocalIce | undefined; iceEntityTag: string };
  stalled: boolean;
  closeRoom: null;
  close: null;
  stats: WorkerSnapshot;
}

export type ToWorker =
  | { t: 'call'; id: number; call: WorkerCall }
  | { t: 'keyframe'; caseId: string; role: Role; sessionId: string }
  /** Test hook: the worker throws an uncaught error, as a bug would. */
  | { t: 'crash' };

export interface WorkerSnapshot {
  counters: MediaCounters;
  stats: MediaStats;
  eventLoopUtilization: number;
  heap: WorkerHeap;
  /** Forwarding-time samples (ms) taken since the last snapshot, for `returncam_forward_seconds`. */
  forwardMs: Float64Array;
}

export interface SerializedError {
  message: string;
  status?: number;
  code?: string;
  headers?: Record<string, string>;
}

export interface PublishedTrackMessage extends SessionInfo {
  kind: MediaKind;
  trackId: number;
  mimeType: string;
  /** Payload type → codec mime type, as negotiated. */
  codecs: [number, string][];
}

/** One track's packets, and its publisher's repair round trip (ms, undefined until known). */
export interface RtpBatchMessage {
  trackId: number;
  buffer: ArrayBuffer;
  repairRoundTripMs: number | undefined;
}

export type FromWorker =
  | { t: 'ready' }
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: SerializedError }
  | { t: 'started'; info: SessionInfo }
  | { t: 'ended'; info: SessionEndedInfo }
  | { t: 'ice'; info: SessionInfo }
  | { t: 'track'; track: PublishedTrackMessage }
  /** Packet batches of any number of tracks in one message (one per tick, not one per track). */
  | { t: 'rtp'; batches: RtpBatchMessage[] }
  | { t: 'stats'; snapshot: WorkerSnapshot };
