import { RTCPeerConnection } from 'werift';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { SafeEvent } from './SafeEvent.ts';
import { sanitizeOffer } from './sdp.ts';
import type {
  MediaCounters,
  MediaOptions,
  Role,
  SessionDirection,
  SessionEndedInfo,
  SessionEndReason,
  SessionInfo,
} from './types.ts';
import { peerConfig } from './werift.ts';

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
  protected readonly pc: RTCPeerConnection;
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
    this.pc = new RTCPeerConnection(peerConfig(options.media));
    this.pc.iceConnectionStateChange.subscribe((state) => this.onIceState(state));
    this.pc.connectionStateChange.subscribe((state) => this.onConnectionState(state));
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
      this.beforeOffer();
      try {
        await this.pc.setRemoteDescription({ type: 'offer', sdp: sanitizeOffer(offerSdp) });
      } catch (err) {
        throw new HttpError(400, 'bad_sdp', `SDP offer was rejected: ${errorMessage(err)}`);
      }
      this.afterOffer();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.gathered();
      const sdp = this.pc.localDescription?.sdp;
      if (!sdp) throw new Error('werift produced no local description');
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
    this.pc
      .close()
      .catch((err: unknown) => {
        this.log.warn('peer connection close failed', { error: errorMessage(err) });
      })
      .finally(done);
    return this.closing;
  }

  /** Called before the offer is applied (add transceivers here). */
  protected beforeOffer(): void {}
  /** Called after the offer is applied, before the answer is created. */
  protected afterOffer(): void {}
  /** Called once when the session closes, before the peer connection is closed. */
  protected onClose(): void {}
  /** Called once when DTLS is connected. */
  protected connectedHook(): void {}

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
}
