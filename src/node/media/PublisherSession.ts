import { HttpError } from '../../core/errors.ts';
import { MediaSession } from './MediaSession.ts';
import { PublishedTrack } from './PublishedTrack.ts';
import type { MediaKind } from './types.ts';

/**
 * A WHIP session: receives the publisher's audio and video (answers recvonly) and exposes one
 * {@link PublishedTrack} per kind for the room to fan out.
 */
export class PublisherSession extends MediaSession {
  readonly direction = 'publish' as const;
  readonly tracks: Partial<Record<MediaKind, PublishedTrack>> = {};

  /** Ask the publisher for a keyframe (throttled per track). */
  requestKeyframe(): void {
    this.tracks.video?.requestKeyframe();
  }

  protected override afterOffer(): void {
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.kind;
      if (kind !== 'audio' && kind !== 'video') continue;
      if (this.tracks[kind]) continue;
      const track = transceiver.receiver.tracks[0];
      if (!track) continue;
      this.tracks[kind] = new PublishedTrack({
        kind,
        transceiver,
        track,
        counters: this.counters,
        log: this.log,
      });
    }
    if (!this.tracks.audio && !this.tracks.video) {
      throw new HttpError(
        400,
        'bad_sdp',
        'SDP offer sends no audio or video track the node can receive',
      );
    }
  }

  protected override connectedHook(): void {
    // A (re)connected publisher: subscribers need a keyframe from this new source.
    this.requestKeyframe();
  }

  protected override onClose(): void {
    this.tracks.audio?.close();
    this.tracks.video?.close();
  }
}
