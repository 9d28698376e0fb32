import type { RtpPacket } from 'werift';
import type { RoomManager, TrackPublishedInfo } from '../media/RoomManager.ts';
import type { Role } from '../media/types.ts';
import type { PublishedSessionRef, PublishedTrackInfo } from './Recorder.ts';
import type { TrackSource } from './SessionRecorder.ts';

/**
 * The recorder's view of the media layer (werift): published tracks as {@link TrackSource}s, and
 * keyframe requests to a publisher. Everything that touches werift or RoomManager lives here.
 */

function publisherOf(rooms: RoomManager, ref: { caseId: string; role: string; sessionId: string }) {
  return rooms.publisher(ref.caseId, ref.role as Role, ref.sessionId);
}

/**
 * A published track as the recorder's source: the node's stream of it (FEC taken out, rebuilt
 * packets in, `PublishedTrack.subscribeMedia`). Packets are read, never changed.
 */
export function trackSource(rooms: RoomManager, info: TrackPublishedInfo): PublishedTrackInfo {
  const { track, published } = info;
  const fallback = info.kind === 'audio' ? 'audio/opus' : 'video/VP8';
  const source: TrackSource = {
    kind: info.kind,
    mimeType: track.codec?.mimeType ?? fallback,
    codecOf: (pt) => publisherOf(rooms, info)?.tracks[info.kind]?.codecFor(pt)?.mimeType,
    repairRoundTripMs: () => published.repairRoundTripMs,
    subscribe(listener) {
      return published.subscribeMedia((p: RtpPacket) => {
        const h = p.header;
        listener({
          sequenceNumber: h.sequenceNumber,
          timestamp: h.timestamp,
          marker: h.marker,
          payloadType: h.payloadType,
          payload: p.payload,
        });
      });
    },
  };
  return {
    caseId: info.caseId,
    role: info.role,
    sessionId: info.sessionId,
    kind: info.kind,
    source,
  };
}

/** Sends a keyframe request (PLI) to a publisher session, if it is still the room's publisher. */
export function requestKeyframe(rooms: RoomManager, ref: PublishedSessionRef): void {
  publisherOf(rooms, ref)?.requestKeyframe();
}
