export type { MediaSessionTimeouts } from './MediaSession.ts';
export {
  type MediaStats,
  RoomManager,
  type RoomManagerOptions,
  type SessionAnswer,
  type TrackPublishedInfo,
} from './RoomManager.ts';
export { SafeEvent, type Subscription } from './SafeEvent.ts';
export { checkOffer, parseOffer, SdpError, sanitizeOffer } from './sdp.ts';
export * from './types.ts';
