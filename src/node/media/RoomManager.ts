import { randomBytes } from 'node:crypto';
import type { MediaStreamTrack } from 'werift';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { MediaSession, MediaSessionTimeouts } from './MediaSession.ts';
import type { PublishedTrack } from './PublishedTrack.ts';
import { PublisherSession } from './PublisherSession.ts';
import { Room } from './Room.ts';
import { SafeEvent } from './SafeEvent.ts';
import { SubscriberSession } from './SubscriberSession.ts';
import { checkOffer, SdpError } from './sdp.ts';
import {
  createMediaCounters,
  isRole,
  type MediaCounters,
  type MediaKind,
  type MediaOptions,
  type Role,
  type SessionDirection,
  type SessionEndedInfo,
  type SessionInfo,
} from './types.ts';

export interface RoomManagerOptions {
  media: MediaOptions;
  log: Logger;
  /** Negotiation and connection timeouts (defaults suit real clients). */
  timeouts?: Partial<MediaSessionTimeouts>;
}

export interface TrackPublishedInfo extends SessionInfo {
  kind: MediaKind;
  /** werift's remote track (its codec). */
  track: MediaStreamTrack;
  /** The node's stream of it: `subscribeMedia` to record (FEC taken out, rebuilt packets in). */
  published: PublishedTrack;
}

export interface SessionAnswer {
  sessionId: string;
  answerSdp: string;
}

export interface MediaStats {
  rooms: number;
  publishers: number;
  subscribers: number;
}

/**
 * The node's media layer: one {@link Room} per case, WHIP publishers and WHEP subscribers on
 * werift, packets forwarded from each role's publisher to the other role's subscribers.
 */
export class RoomManager {
  /** A WHIP or WHEP session was answered and joined its room. */
  readonly onSessionStarted: SafeEvent<SessionInfo>;
  /** A session ended: closed, replaced, ICE/DTLS failure, timeout, room closed or shutdown. */
  readonly onSessionEnded: SafeEvent<SessionEndedInfo>;
  /** A session's ICE connected (media path found). */
  readonly onIceConnected: SafeEvent<SessionInfo>;
  /** A publisher's track is available (for recording). */
  readonly onTrackPublished: SafeEvent<TrackPublishedInfo>;
  /** Packet-path counters, updated in place. */
  readonly counters: MediaCounters = createMediaCounters();
  private readonly rooms = new Map<string, Room>();
  private readonly negotiating = new Set<MediaSession>();
  private readonly log: Logger;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RoomManagerOptions) {
    this.log = options.log;
    const reportError = (event: string, err: unknown) =>
      this.log.error('media event listener threw', { event, error: errorMessage(err) });
    this.onSessionStarted = new SafeEvent('sessionStarted', reportError);
    this.onSessionEnded = new SafeEvent('sessionEnded', reportError);
    this.onIceConnected = new SafeEvent('iceConnected', reportError);
    this.onTrackPublished = new SafeEvent('trackPublished', reportError);
  }

  /** WHIP: receive `role`'s media for `caseId`. Replaces that role's previous publisher. */
  async publish(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    this.assertOpen();
    this.validate(caseId, role, offerSdp, 'publish');
    const session = new PublisherSession(this.sessionOptions(caseId, role, 'publish'));
    const answerSdp = await this.negotiate(session, offerSdp);
    const room = this.room(caseId);
    const previous = room.setPublisher(session);
    this.track(room, session);
    if (previous && previous !== session) void previous.close('replaced');
    for (const kind of ['audio', 'video'] as const) {
      const published = session.tracks[kind];
      if (published) {
        this.onTrackPublished.execute({ ...session.info, kind, track: published.track, published });
      }
    }
    return { sessionId: session.sessionId, answerSdp };
  }

  /** WHEP: send the other role's media to a `role` viewer of `caseId`, now or when it arrives. */
  async subscribe(caseId: string, role: Role, offerSdp: string): Promise<SessionAnswer> {
    this.assertOpen();
    this.validate(caseId, role, offerSdp, 'subscribe');
    const session: SubscriberSession = new SubscriberSession({
      ...this.sessionOptions(caseId, role, 'subscribe'),
      onKeyframeRequest: () => this.rooms.get(caseId)?.requestKeyframeFor(role),
    });
    const answerSdp = await this.negotiate(session, offerSdp);
    const room = this.room(caseId);
    room.addSubscriber(session);
    this.track(room, session);
    return { sessionId: session.sessionId, answerSdp };
  }

  /** The current publisher of a case's role, if it is still the session given. */
  publisher(caseId: string, role: Role, sessionId: string): PublisherSession | undefined {
    const publisher = this.rooms.get(caseId)?.publisher(role);
    return publisher?.sessionId === sessionId ? publisher : undefined;
  }

  /** A live session of a case (WHIP/WHEP PATCH), or undefined. */
  session(caseId: string, sessionId: string): MediaSession | undefined {
    return this.rooms.get(caseId)?.find(sessionId);
  }

  /** Ends one session (WHIP/WHEP DELETE). False when the case has no such session. */
  endSession(caseId: string, sessionId: string): boolean {
    const session = this.rooms.get(caseId)?.find(sessionId);
    if (!session) return false;
    void session.close('closed');
    return true;
  }

  /** Ends every session of a case. */
  async closeRoom(caseId: string): Promise<void> {
    const room = this.rooms.get(caseId);
    if (!room) return;
    this.rooms.delete(caseId);
    await room.close('room_closed');
  }

  /** Ends everything; idempotent. Later publish/subscribe calls are refused. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const rooms = [...this.rooms.values()];
    this.rooms.clear();
    const pending = [...this.negotiating].map((session) => session.close('shutdown'));
    this.closing = Promise.all([...rooms.map((room) => room.close('shutdown')), ...pending]).then(
      () => undefined,
    );
    return this.closing;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  stats(): MediaStats {
    let publishers = 0;
    let subscribers = 0;
    for (const room of this.rooms.values()) {
      publishers += room.publisherCount;
      subscribers += room.subscriberCount;
    }
    return { rooms: this.rooms.size, publishers, subscribers };
  }

  private assertOpen(): void {
    if (this.closing) {
      throw new HttpError(503, 'node_closing', 'the media node is shutting down');
    }
  }

  private validate(caseId: string, role: Role, offerSdp: string, purpose: SessionDirection): void {
    if (!caseId) throw new HttpError(400, 'bad_request', 'case id is empty');
    if (!isRole(role)) throw new HttpError(400, 'bad_request', `unknown role "${String(role)}"`);
    try {
      checkOffer(offerSdp, purpose);
    } catch (err) {
      if (err instanceof SdpError) throw new HttpError(400, 'bad_sdp', err.message);
      throw err;
    }
  }

  private sessionOptions(caseId: string, role: Role, direction: SessionDirection) {
    const sessionId = randomBytes(9).toString('base64url');
    return {
      caseId,
      role,
      sessionId,
      media: this.options.media,
      counters: this.counters,
      log: this.log.child({ room: caseId, role, [direction]: sessionId }),
      timeouts: this.options.timeouts,
    };
  }

  private async negotiate(session: MediaSession, offerSdp: string): Promise<string> {
    this.negotiating.add(session);
    try {
      const answer = await session.answer(offerSdp);
      if (this.closing) {
        await session.close('shutdown');
        throw new HttpError(503, 'node_closing', 'the media node is shutting down');
      }
      if (session.closed) {
        throw new HttpError(
          500,
          'session_failed',
          'the media session ended while it was being set up',
        );
      }
      return answer;
    } finally {
      this.negotiating.delete(session);
    }
  }

  private room(caseId: string): Room {
    let room = this.rooms.get(caseId);
    if (!room) {
      room = new Room({ caseId, log: this.log.child({ room: caseId }) });
      this.rooms.set(caseId, room);
    }
    return room;
  }

  /** Follows a session installed in `room` until it ends. */
  private track(room: Room, session: MediaSession): void {
    session.onIceConnected.subscribe((info) => this.onIceConnected.execute(info));
    session.onEnded.subscribe((info) => {
      room.remove(session);
      if (room.empty && this.rooms.get(room.caseId) === room) this.rooms.delete(room.caseId);
      this.onSessionEnded.execute(info);
    });
    this.log.info('session started', { ...session.info });
    this.onSessionStarted.execute(session.info);
  }
}
