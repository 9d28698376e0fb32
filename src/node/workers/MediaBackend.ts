import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { LocalIce, RemoteIceFragment } from '../media/iceRestart.ts';
import type { MediaStats, RoomManager, SessionAnswer } from '../media/RoomManager.ts';
import { SafeEvent } from '../media/SafeEvent.ts';
import type { SubscriberSession } from '../media/SubscriberSession.ts';
import type {
  MediaCounters,
  Role,
  SessionDirection,
  SessionEndReason,
  SessionInfo,
} from '../media/types.ts';
import { requestKeyframe, trackSource } from '../recording/mediaBridge.ts';
import type { PublishedSessionRef, PublishedTrackInfo } from '../recording/Recorder.ts';

/**
 * What the HTTP routes, the recorder and the metrics need of the media layer, whether its rooms
 * run on the main thread ({@link InProcessMedia}, `media.workers: 0`) or spread over worker
 * threads (`MediaWorkerPool`). Every call that may cross a thread is async.
 */

/** Why a session ended: the media layer's reasons, plus the worker hosting it failing. */
export type MediaEndReason = SessionEndReason | 'worker_failed';

export interface MediaEndedInfo extends SessionInfo {
  reason: MediaEndReason;
}

/** A live session as the PATCH route sees it. */
export interface SessionView {
  direction: SessionDirection;
  role: Role;
  iceEntityTag: string;
}

/** The outcome of a WHIP/WHEP PATCH: new ICE (a restart) or nothing (trickle), and the ETag. */
export interface IcePatchResult {
  local: LocalIce | undefined;
  iceEntityTag: string;
}

/** One media worker as /healthz and /metrics report it. */
export interface WorkerStatus {
  index: number;
  state: 'starting' | 'ready' | 'restarting' | 'stopped';
  restarts: number;
  rooms: number;
  publishers: number;
  subscribers: number;
  counters: MediaCounters;
  /** Share of the last second the worker's event loop was busy (0..1). */
  eventLoopUtilization: number;
  heap: WorkerHeap;
}

/** A worker thread's own V8 heap (each thread has one). */
export interface WorkerHeap {
  /** In use, live or garbage not yet collected. */
  usedBytes: number;
  /** What the young generation's two semi-spaces take now (V8 grows them under load). */
  youngGenerationBytes: number;
  /** The young generation the worker was started with at most (its `resourceLimits`). */
  youngGenerationLimitBytes: number;
}

export interface MediaBackendStatus {
  mode: 'in-process' | 'workers';
  /** Every worker is up (always true in process). */
  ready: boolean;
  workers: WorkerStatus[];
}

export interface MediaBackend {
  readonly onSessionStarted: SafeEvent<SessionInfo>;
  readonly onSessionEnded: SafeEvent<MediaEndedInfo>;
  readonly onIceConnected: SafeEvent<SessionInfo>;
  /** A publisher's track, as the recorder reads it. */
  readonly onTrackPublished: SafeEvent<PublishedTrackInfo>;
  /** Packet-path counters summed over the media layer (a worker's may be up to ~1 s old). */
  readonly counters: MediaCounters;
  readonly closed: boolean;
  publish(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer>;
  subscribe(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer>;
  /** Ends one session; false when the case has no such live session. */
  endSession(caseId: string, sessionId: string): Promise<boolean>;
  /** A live session of a case, for WHIP/WHEP PATCH. */
  session(caseId: string, sessionId: string): Promise<SessionView | undefined>;
  /** Applies a PATCH fragment to a live session (throws 404 when it has ended). */
  patchIce(caseId: string, sessionId: string, fragment: RemoteIceFragment): Promise<IcePatchResult>;
  /**
   * A viewer's page says its video stands still while packets arrive: a keyframe request for
   * that viewer. False when the case has no such live WHEP session of `role`.
   */
  viewerStalled(caseId: string, sessionId: string, role: Role): Promise<boolean>;
  /** Asks a publisher for a keyframe if it is still its room's publisher (the recorder's call). */
  requestKeyframe(ref: PublishedSessionRef): void;
  closeRoom(caseId: string): Promise<void>;
  close(): Promise<void>;
  stats(): MediaStats;
  /** Readiness and per-worker figures; `fresh` asks the workers for new ones first. */
  status(fresh?: boolean): Promise<MediaBackendStatus>;
}

/** Today's single-thread media layer behind the {@link MediaBackend} interface. */
export class InProcessMedia implements MediaBackend {
  readonly onSessionStarted: SafeEvent<SessionInfo>;
  readonly onSessionEnded: SafeEvent<MediaEndedInfo>;
  readonly onIceConnected: SafeEvent<SessionInfo>;
  readonly onTrackPublished: SafeEvent<PublishedTrackInfo>;

  constructor(
    readonly rooms: RoomManager,
    log: Logger,
  ) {
    this.onSessionStarted = rooms.onSessionStarted;
    this.onSessionEnded = rooms.onSessionEnded as SafeEvent<MediaEndedInfo>;
    this.onIceConnected = rooms.onIceConnected;
    this.onTrackPublished = new SafeEvent('trackPublished', (event, err) =>
      log.error('media event listener threw', { event, error: errorMessage(err) }),
    );
    rooms.onTrackPublished.subscribe((t) => this.onTrackPublished.execute(trackSource(rooms, t)));
  }

  get counters(): MediaCounters {
    return this.rooms.counters;
  }

  get closed(): boolean {
    return this.rooms.closed;
  }

  publish(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    return this.rooms.publish(caseId, role, offerSdp);
  }

  subscribe(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    return this.rooms.subscribe(caseId, role, offerSdp);
  }

  async endSession(caseId: string, sessionId: string): Promise<boolean> {
    return this.rooms.endSession(caseId, sessionId);
  }

  async session(caseId: string, sessionId: string): Promise<SessionView | undefined> {
    const s = this.rooms.session(caseId, sessionId);
    return s && { direction: s.direction, role: s.role, iceEntityTag: s.iceEntityTag };
  }

  async patchIce(
    caseId: string,
    sessionId: string,
    fragment: RemoteIceFragment,
  ): Promise<IcePatchResult> {
    return patchSession(this.rooms, caseId, sessionId, fragment);
  }

  async viewerStalled(caseId: string, sessionId: string, role: Role): Promise<boolean> {
    return viewerStalled(this.rooms, caseId, sessionId, role);
  }

  requestKeyframe(ref: PublishedSessionRef): void {
    requestKeyframe(this.rooms, ref);
  }

  closeRoom(caseId: string): Promise<void> {
    return this.rooms.closeRoom(caseId);
  }

  close(): Promise<void> {
    return this.rooms.close();
  }

  stats(): MediaStats {
    return this.rooms.stats();
  }

  async status(): Promise<MediaBackendStatus> {
    return { mode: 'in-process', ready: true, workers: [] };
  }
}

/** PATCH on a RoomManager's session (shared by the in-process backend and the workers). */
export async function patchSession(
  rooms: RoomManager,
  caseId: string,
  sessionId: string,
  fragment: RemoteIceFragment,
): Promise<IcePatchResult> {
  const s = rooms.session(caseId, sessionId);
  if (!s) throw new HttpError(404, 'session_not_found', `session ${sessionId} has ended`);
  const local = await s.patchIce(fragment);
  return { local, iceEntityTag: s.iceEntityTag };
}

/** A viewer's stall report on a RoomManager's session (in process and in the workers). */
export function viewerStalled(
  rooms: RoomManager,
  caseId: string,
  sessionId: string,
  role: Role,
): boolean {
  const s = rooms.session(caseId, sessionId);
  if (s?.direction !== 'subscribe' || s.role !== role) return false;
  return (s as SubscriberSession).viewerStalled();
}
