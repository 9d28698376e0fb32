/** Shared option, event and counter types of the media layer (rooms and forwarding on werift). */

export type Role = 'buyer' | 'staff';
export type SessionDirection = 'publish' | 'subscribe';
export type MediaKind = 'audio' | 'video';

export interface IceServerConfig {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface MediaOptions {
  /** Extra host candidate address to announce (e.g. the public address of a NAT port forward). */
  announcedIp?: string;
  /** UDP port range for ICE sockets, inclusive. */
  portRange?: [number, number];
  /** STUN/TURN servers for the node's own gathering. Pass `[]` when offline. */
  iceServers: IceServerConfig[];
  /** Offer a 127.0.0.1 host candidate (local tests, same-host clients). */
  loopbackCandidate: boolean;
  /**
   * Most video a publisher of each role may send, kbit/s, written into the WHIP answer.
   * Defaults: {@link DEFAULT_MAX_BITRATE_KBPS}.
   */
  maxBitrateKbps?: Partial<Record<Role, number>>;
  /** Negotiate RED + ULPFEC with publishers and rebuild lost video from it (default true). */
  publisherFec?: boolean;
  /**
   * Most minimum playout delay the node asks of viewers to hide repairs on the publisher's uplink,
   * ms; 0 asks none (default {@link DEFAULT_MAX_PLAYOUT_DELAY_MS} in `playoutDelay.ts`).
   */
  maxPlayoutDelayMs?: number;
}

/** Video ceilings per publishing role when the configuration names none, kbit/s. */
export const DEFAULT_MAX_BITRATE_KBPS: Readonly<Record<Role, number>> = {
  buyer: 1500,
  staff: 1000,
};

/**
 * Why a session ended: `closed` (DELETE / endSession), `replaced` (a newer publish for the same
 * case and role), `ice_failed`, `dtls_failed`, `disconnected` (no media path for too long),
 * `connect_timeout` (never connected), `room_closed`, `shutdown`.
 */
export type SessionEndReason =
  | 'closed'
  | 'replaced'
  | 'ice_failed'
  | 'dtls_failed'
  | 'disconnected'
  | 'connect_timeout'
  | 'room_closed'
  | 'shutdown';

export interface SessionInfo {
  caseId: string;
  role: Role;
  direction: SessionDirection;
  sessionId: string;
}

export interface SessionEndedInfo extends SessionInfo {
  reason: SessionEndReason;
}

/**
 * Packet-path counters, plain numbers incremented in place. Bytes are RTP payload bytes.
 * `nacksFromSubscribers` / `nacksToPublishers` count RTCP generic NACK messages;
 * `retransmits` counts packets resent to subscribers from the node's own history.
 */
export interface MediaCounters {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  nacksFromSubscribers: number;
  nacksToPublishers: number;
  plisFromSubscribers: number;
  /**
   * Viewer pages that said their video stood still while packets arrived, each a keyframe
   * request (`POST /whep/{caseId}/{sessionId}/keyframe`).
   */
  stallReportsFromViewers: number;
  plisToPublishers: number;
  retransmits: number;
  /** Subscribers moved from one simulcast layer to another. */
  layerSwitches: number;
  /** Subscribers whose link could not carry even the lowest layer (audio plus still frames). */
  stillFrameEntries: number;
  /** Keyframes asked of publishers because packets resumed after an outage or an unrepairable gap. */
  recoveryKeyframeRequests: number;
  /** Publisher video packets lost on the way in and rebuilt from ULPFEC, without a NACK. */
  fecRecovered: number;
  /**
   * Publisher video packets that arrived again (a second repair of one loss, as each NACK retry
   * can bring one, or an RTX copy a browser pads its bandwidth probes with): dropped, not
   * forwarded.
   */
  duplicatesDropped: number;
}

export function createMediaCounters(): MediaCounters {
  return {
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    nacksFromSubscribers: 0,
    nacksToPublishers: 0,
    plisFromSubscribers: 0,
    stallReportsFromViewers: 0,
    plisToPublishers: 0,
    retransmits: 0,
    layerSwitches: 0,
    stillFrameEntries: 0,
    recoveryKeyframeRequests: 0,
    fecRecovered: 0,
    duplicatesDropped: 0,
  };
}

/** A subscriber of role R receives what the other role publishes. */
export function otherRole(role: Role): Role {
  return role === 'buyer' ? 'staff' : 'buyer';
}

export function isRole(value: unknown): value is Role {
  return value === 'buyer' || value === 'staff';
}
