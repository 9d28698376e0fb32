import { RTCPeerConnection } from 'werift';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { shapePublisherAnswer } from './answer.ts';
import {
  addTrickledCandidates,
  applyIceRestart,
  bridgeIceRestart,
  iceCredentialsOf,
  iceEntityTag,
  keepPathUsernames,
  type LocalIce,
  type RemoteIceFragment,
  startRestartedIce,
} from './iceRestart.ts';
import { SafeEvent } from './SafeEvent.ts';
import { sanitizeOffer } from './sdp.ts';
import {
  extensionIdTable,
  TRANSPORT_CC_URI,
  TransportFeedbackGenerator,
  transportSequenceNumber,
} from './twcc.ts';
import {
  DEFAULT_MAX_BITRATE_KBPS,
  type MediaCounters,
  type MediaOptions,
  type Role,
  type SessionDirection,
  type SessionEndedInfo,
  type SessionEndReason,
  type SessionInfo,
} from './types.ts';
import {
  answerAsDtlsServer,
  connectionRtcpSsrc,
  disableWeriftTwcc,
  negotiatedExtensionIds,
  peerConfig,
  sendRawRtcp,
  tapIncomingRtp,
  verifyIceRequests,
} from './werift.ts';
import { fastRouting } from './weriftHotPath.ts';

/** How often a publisher connection gets transport-wide congestion control feedback. */
export const TRANSPORT_FEEDBACK_INTERVAL_MS = 50;
/** Feedback goes out early once this many sequence numbers wait (a burst, e.g. a bandwidth probe). */
const TRANSPORT_FEEDBACK_EARLY_PACKETS = 100;

export interface MediaSessionTimeouts {
  /** How long ICE gathering may take before the answer is refused. */
  gatheringMs: number;
  /** How long a session may stay unconnected after the answer. */
  connectMs: number;
  /** How long a connected session may stay disconnected before it is ended. */
  disconnectedMs: number;
}

export const DEFAULT_SESSION_TIMEOUTS: MediaSessionTimeouts = {
  gatheringMs: 5_000,
  connectMs: 30_000,
  disconnectedMs: 15_000,
};

export interface MediaSessionOptions {
  caseId: string;
  role: Role;
  sessionId: string;
  media: MediaOptions;
  counters: MediaCounters;
  log: Logger;
  timeouts?: Partial<MediaSessionTimeouts>;
}

/**
 * One werift peer connection answering one WHIP or WHEP offer. Owns the connection's lifecycle:
 * negotiation (ICE gathered before the answer), connect and disconnect timeouts, and an
 * idempotent `close(reason)` that emits `ended` once.
 */
export abstract class MediaSession {
  abstract readonly direction: SessionDirection;
  /** ICE found a working pair. */
  readonly onIceConnected: SafeEvent<SessionInfo>;
  /** DTLS is up: media can flow. */
  readonly onConnected: SafeEvent<SessionInfo>;
  /** Emitted once, when the session closes for any reason. */
  readonly onEnded: SafeEvent<SessionEndedInfo>;
  private peer: RTCPeerConnection | undefined;
  private transportFeedback: TransportFeedbackGenerator | undefined;
  private untapRtp: (() => void) | undefined;
  protected readonly log: Logger;
  protected readonly counters: MediaCounters;
  private readonly timeouts: MediaSessionTimeouts;
  private readonly timers = new Set<NodeJS.Timeout>();
  private disconnectTimer: NodeJS.Timeout | undefined;
  private iceChecking = false;
  private iceConnected = false;
  private dtlsConnected = false;
  private closing: Promise<void> | undefined;

  constructor(protected readonly options: MediaSessionOptions) {
    this.log = options.log;
    this.counters = options.counters;
    this.timeouts = { ...DEFAULT_SESSION_TIMEOUTS, ...options.timeouts };
    const reportError = (event: string, err: unknown) =>
      this.log.error('session event listener threw', { event, error: errorMessage(err) });
    this.onIceConnected = new SafeEvent('iceConnected', reportError);
    this.onConnected = new SafeEvent('connected', reportError);
    this.onEnded = new SafeEvent('ended', reportError);
  }

  /**
   * The session's werift peer connection, created on first use: its configuration depends on
   * `direction`, which subclasses set after this constructor has run.
   */
  protected get pc(): RTCPeerConnection {
    if (!this.peer) {
      if (this.direction !== 'publish' && this.direction !== 'subscribe') {
        throw new Error('MediaSession: the peer connection was used before `direction` was set');
      }
      const pc = new RTCPeerConnection(peerConfig(this.options.media, this.direction));
      fastRouting(pc); // before anything wraps its router's routeRtp
      pc.iceConnectionStateChange.subscribe((state) => this.onIceState(state));
      pc.connectionStateChange.subscribe((state) => this.onConnectionState(state));
      this.peer = pc;
    }
    return this.peer;
  }

  /** Most video this session's publisher may send, kbit/s (its role's configured ceiling). */
  get maxVideoBitrateKbps(): number {
    const role = this.options.role;
    return this.options.media.maxBitrateKbps?.[role] ?? DEFAULT_MAX_BITRATE_KBPS[role];
  }

  /** Transport-wide congestion control feedback sent so far (publishers that negotiated it). */
  get transportFeedbackStats(): TransportFeedbackGenerator['stats'] | undefined {
    return this.transportFeedback?.stats;
  }

  get sessionId(): string {
    return this.options.sessionId;
  }

  get role(): Role {
    return this.options.role;
  }

  get info(): SessionInfo {
    return {
      caseId: this.options.caseId,
      role: this.options.role,
      direction: this.direction,
      sessionId: this.options.sessionId,
    };
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  get connected(): boolean {
    return this.dtlsConnected && !this.closed;
  }

  /**
   * Applies the offer and returns the complete answer (every candidate gathered). On any failure
   * the peer connection is closed before the error is thrown: a bad offer leaves nothing behind.
   */
  async answer(offerSdp: string): Promise<string> {
    try {
      this.beforeOffer(offerSdp);
      try {
        await this.pc.setRemoteDescription({
          type: 'offer',
          sdp: sanitizeOffer(offerSdp, this.direction),
        });
      } catch (err) {
        throw new HttpError(400, 'bad_sdp', `SDP offer was rejected: ${errorMessage(err)}`);
      }
      // a path the peer nominated under an earlier ICE restart's ufrag stays answerable
      keepPathUsernames(this.pc.iceTransports[0]);
      if (this.direction === 'publish') this.startTransportFeedback();
      this.afterOffer();
      answerAsDtlsServer(this.pc, offerSdp);
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.gathered();
      // before the peer can know where to send: only signed checks get an answer
      verifyIceRequests(this.pc);
      let sdp = this.pc.localDescription?.sdp;
      if (!sdp) throw new Error('werift produced no local description');
      if (this.direction === 'publish') {
        sdp = shapePublisherAnswer(sdp, { maxVideoKbps: this.maxVideoBitrateKbps });
      }
      this.startTimer(this.timeouts.connectMs, () => {
        if (!this.dtlsConnected) this.close('connect_timeout');
      });
      return sdp;
    } catch (err) {
      await this.close('closed');
      throw err;
    }
  }

  /** Ends the session (idempotent); resolves when the peer connection is closed. */
  close(reason: SessionEndReason): Promise<void> {
    if (this.closing) return this.closing;
    // Mark closed first: werift reports the 'closed' state synchronously from pc.close().
    let done: () => void = () => {};
    this.closing = new Promise<void>((resolve) => {
      done = resolve;
    });
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.disconnectTimer = undefined;
    this.untapRtp?.();
    this.untapRtp = undefined;
    try {
      this.onClose();
    } catch (err) {
      this.log.error('session cleanup failed', { error: errorMessage(err) });
    }
    this.log.debug('session ended', { reason });
    this.onEnded.execute({ ...this.info, reason });
    this.onIceConnected.clear();
    this.onConnected.clear();
    this.onEnded.clear();
    (this.peer?.close() ?? Promise.resolve())
      .catch((err: unknown) => {
        this.log.warn('peer connection close failed', { error: errorMessage(err) });
      })
      .finally(done);
    return this.closing;
  }

  /** Called before the offer is applied (add transceivers here). */
  protected beforeOffer(_offerSdp: string): void {}
  /** Called after the offer is applied, before the answer is created. */
  protected afterOffer(): void {}
  /** Called once when the session closes, before the peer connection is closed. */
  protected onClose(): void {}
  /** Called once when DTLS is connected, and again when a restarted ICE path connects. */
  protected connectedHook(): void {}
  /** Called when an ICE restart has been applied: the path is being replaced. */
  protected iceRestartHook(): void {}

  /**
   * Answers the publisher's transport-wide sequence numbers with the node's own feedback
   * (`twcc.ts`) instead of werift's, when the offer negotiated them: every RTP packet of the
   * connection, any SSRC, is recorded as it arrives; feedback leaves every
   * {@link TRANSPORT_FEEDBACK_INTERVAL_MS} ms, or sooner after a burst.
   */
  private startTransportFeedback(): void {
    disableWeriftTwcc(this.pc);
    if (this.transportFeedback) return;
    const ids = negotiatedExtensionIds(this.pc, TRANSPORT_CC_URI);
    if (ids.length === 0) return;
    const extensionIds = extensionIdTable(ids);
    const generator = new TransportFeedbackGenerator({
      senderSsrc: connectionRtcpSsrc(this.pc) ?? 1,
    });
    this.transportFeedback = generator;
    const send = () => {
      const feedback = generator.flush();
      for (let i = 0; i < feedback.length; i++) sendRawRtcp(this.pc, feedback[i]!);
    };
    this.untapRtp = tapIncomingRtp(this.pc, (packet) => {
      const seq = transportSequenceNumber(packet.header.extensions, extensionIds);
      if (seq === undefined) return;
      generator.record(seq, performance.now() * 1000, packet.header.ssrc);
      if (generator.pending >= TRANSPORT_FEEDBACK_EARLY_PACKETS) send();
    });
    const timer = setInterval(send, TRANSPORT_FEEDBACK_INTERVAL_MS);
    timer.unref();
    this.timers.add(timer as NodeJS.Timeout);
  }

  private async gathered(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        sub.unSubscribe();
        reject(
          new HttpError(
            503,
            'ice_gathering_timeout',
            `ICE gathering did not complete within ${this.timeouts.gatheringMs} ms`,
          ),
        );
      }, this.timeouts.gatheringMs);
      const sub = this.pc.iceGatheringStateChange.subscribe((state) => {
        if (state !== 'complete') return;
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      });
      if (this.pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  }

  private startTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
    return timer;
  }

  private onIceState(state: string): void {
    if (this.closed) return;
    // werift reports 'completed' once gathering ends, before any check: only a state reached
    // after 'checking' means a working pair.
    if (state === 'checking') {
      this.iceChecking = true;
    } else if (
      (state === 'connected' || (state === 'completed' && this.iceChecking)) &&
      !this.iceConnected
    ) {
      this.iceConnected = true;
      this.onIceConnected.execute(this.info);
    } else if (state === 'failed') {
      this.close('ice_failed');
    }
  }

  private onConnectionState(state: string): void {
    if (this.closed) return;
    switch (state) {
      case 'connected':
        if (this.disconnectTimer) {
          clearTimeout(this.disconnectTimer);
          this.timers.delete(this.disconnectTimer);
          this.disconnectTimer = undefined;
        }
        if (!this.dtlsConnected) {
          this.dtlsConnected = true;
          try {
            this.connectedHook();
          } catch (err) {
            this.log.error('session connect handler failed', { error: errorMessage(err) });
          }
          this.onConnected.execute(this.info);
        }
        break;
      case 'disconnected':
        if (!this.disconnectTimer) {
          this.disconnectTimer = this.startTimer(this.timeouts.disconnectedMs, () => {
            this.disconnectTimer = undefined;
            this.close('disconnected');
          });
        }
        break;
      case 'failed':
        this.close(this.pc.iceConnectionState === 'failed' ? 'ice_failed' : 'dtls_failed');
        break;
      case 'closed':
        this.close('closed');
        break;
    }
  }

  // ---- ICE restart and trickle ICE (WHIP/WHEP PATCH, RFC 9725 section 4.3) ----

  private iceRestarts = 0;
  private icePatching: Promise<unknown> = Promise.resolve();

  /** The session's strong entity-tag; every ICE restart gives it a new one. */
  get iceEntityTag(): string {
    return iceEntityTag(this.options.sessionId, this.iceRestarts);
  }

  /**
   * Applies a PATCH fragment, one at a time. New credentials restart ICE on the same session
   * (media, recording and forwarding carry on) and resolve with the node's new credentials and
   * candidates; a trickle fragment (same or no credentials) adds its candidates and resolves
   * undefined. A restart that finds no working pair within the connect timeout ends the session.
   */
  patchIce(fragment: RemoteIceFragment): Promise<LocalIce | undefined> {
    const run = async (): Promise<LocalIce | undefined> => {
      if (this.closed) {
        throw new HttpError(404, 'session_not_found', `session ${this.sessionId} has ended`);
      }
      const current = iceCredentialsOf(this.pc.remoteDescription?.sdp ?? '');
      const next = fragment.credentials;
      if (!next || (current && next.ufrag === current.ufrag && next.pwd === current.pwd)) {
        await addTrickledCandidates(this.pc, fragment);
        return undefined;
      }
      // media keeps going out (new pair that answered, else old one) until one is nominated
      const endBridge = bridgeIceRestart(this.pc.iceTransports[0]);
      let local: LocalIce;
      try {
        local = await applyIceRestart(this.pc, fragment);
      } catch (err) {
        endBridge();
        throw err;
      }
      // (a socket the restart's gathering opened)
      verifyIceRequests(this.pc);
      this.iceRestarts++;
      const restartedAt = performance.now();
      try {
        this.iceRestartHook();
      } catch (err) {
        this.log.error('session restart handler failed', { error: errorMessage(err) });
      }
      // the old path is being replaced on purpose: only a failed restart may end the session now
      if (this.disconnectTimer) {
        clearTimeout(this.disconnectTimer);
        this.timers.delete(this.disconnectTimer);
        this.disconnectTimer = undefined;
      }
      const transport = this.pc.iceTransports[0];
      // checks that fail surface as ICE 'failed', which ends the session (onIceState)
      if (transport) {
        void startRestartedIce(transport, this.timeouts.connectMs, () => this.closed).then(
          (connected) => {
            endBridge();
            if (!connected || this.closed) return;
            this.log.debug('ICE restart connected', {
              afterMs: Math.round(performance.now() - restartedAt),
            });
            // packets sent on the old path may have been lost with it: start again from a keyframe
            try {
              this.connectedHook();
            } catch (err) {
              this.log.error('session reconnect handler failed', { error: errorMessage(err) });
            }
          },
        );
      }
      const generation = this.iceRestarts;
      this.startTimer(this.timeouts.connectMs, () => {
        if (generation !== this.iceRestarts) return;
        if (this.pc.iceTransports[0]?.state !== 'connected') this.close('ice_failed');
      });
      this.log.info('ICE restarted', { restarts: this.iceRestarts });
      return local;
    };
    const result = this.icePatching.then(run, run);
    this.icePatching = result.catch(() => {});
    return result;
  }
}
