import type { Logger } from '../../core/log.ts';
import type { MediaSession } from './MediaSession.ts';
import type { PublisherSession } from './PublisherSession.ts';
import type { SubscriberSession } from './SubscriberSession.ts';
import type { TrackForwarder } from './TrackForwarder.ts';
import { type MediaKind, otherRole, type Role, type SessionEndReason } from './types.ts';

export interface RoomOptions {
  caseId: string;
  log: Logger;
}

const KINDS: readonly MediaKind[] = ['audio', 'video'];

/**
 * One case: at most one publisher per role, any number of subscribers per role. A subscriber of
 * role R is fed by the publisher of the other role. The room only wires sessions together; the
 * sessions own their peer connections.
 */
export class Room {
  readonly caseId: string;
  private readonly log: Logger;
  private readonly publishers = new Map<Role, PublisherSession>();
  private readonly subscribers = new Map<string, SubscriberSession>();

  constructor(options: RoomOptions) {
    this.caseId = options.caseId;
    this.log = options.log;
  }

  get publisherCount(): number {
    return this.publishers.size;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  get empty(): boolean {
    return this.publishers.size === 0 && this.subscribers.size === 0;
  }

  publisher(role: Role): PublisherSession | undefined {
    return this.publishers.get(role);
  }

  /** Installs `session` as the publisher of its role; returns the session it replaces, if any. */
  setPublisher(session: PublisherSession): PublisherSession | undefined {
    const previous = this.publishers.get(session.role);
    this.publishers.set(session.role, session);
    // Subscribers of the other role now take their packets from the new session.
    for (const kind of KINDS) {
      for (const forwarder of this.forwarders(otherRole(session.role), kind))
        forwarder.resetSource();
    }
    this.wire(otherRole(session.role));
    return previous;
  }

  addSubscriber(session: SubscriberSession): void {
    this.subscribers.set(session.sessionId, session);
    this.wire(session.role);
  }

  /** Removes an ended session; a replaced publisher leaves its successor in place. */
  remove(session: MediaSession): void {
    if (session.direction === 'publish') {
      if (this.publishers.get(session.role) === session) this.publishers.delete(session.role);
    } else if (this.subscribers.get(session.sessionId) === session) {
      this.subscribers.delete(session.sessionId);
      this.wire(session.role);
    }
  }

  find(sessionId: string): MediaSession | undefined {
    const subscriber = this.subscribers.get(sessionId);
    if (subscriber) return subscriber;
    for (const publisher of this.publishers.values()) {
      if (publisher.sessionId === sessionId) return publisher;
    }
    return undefined;
  }

  /** Keyframe for subscribers of `subscriberRole`: asks the other role's publisher. */
  requestKeyframeFor(subscriberRole: Role): void {
    this.publishers.get(otherRole(subscriberRole))?.requestKeyframe();
  }

  sessions(): MediaSession[] {
    return [...this.publishers.values(), ...this.subscribers.values()];
  }

  /** Closes every session; resolves when their peer connections are closed. */
  async close(reason: SessionEndReason): Promise<void> {
    const sessions = this.sessions();
    this.log.debug('closing room', { sessions: sessions.length, reason });
    await Promise.all(sessions.map((session) => session.close(reason)));
  }

  private forwarders(subscriberRole: Role, kind: MediaKind): TrackForwarder[] {
    const out: TrackForwarder[] = [];
    for (const subscriber of this.subscribers.values()) {
      if (subscriber.role !== subscriberRole || subscriber.closed) continue;
      out.push(...subscriber.forwardersOf(kind));
    }
    return out;
  }

  /**
   * Points the publisher feeding `subscriberRole` at the current forwarder lists (copy-on-write):
   * every stream of a kind (each simulcast layer) feeds every forwarder of that kind, and each
   * forwarder learns the streams it may choose from.
   */
  private wire(subscriberRole: Role): void {
    const publisher = this.publishers.get(otherRole(subscriberRole));
    if (!publisher) return;
    for (const kind of KINDS) {
      const layers = publisher.layers(kind);
      if (layers.length === 0) continue;
      const sinks = this.forwarders(subscriberRole, kind);
      for (const forwarder of sinks) forwarder.setLayers(layers);
      for (const layer of layers) layer.sinks = sinks;
    }
  }
}
