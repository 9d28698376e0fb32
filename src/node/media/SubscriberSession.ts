import { MediaStream, type RTCRtpTransceiver } from 'werift';
import { MediaSession, type MediaSessionOptions } from './MediaSession.ts';
import { TrackForwarder } from './TrackForwarder.ts';
import type { MediaKind } from './types.ts';

export interface SubscriberSessionOptions extends MediaSessionOptions {
  /** The subscriber asked for a keyframe, or has just connected and needs one. */
  onKeyframeRequest: () => void;
}

/**
 * A WHEP session: answers sendonly audio and video slots right away (the publisher may come
 * later) and owns one {@link TrackForwarder} per kind.
 */
export class SubscriberSession extends MediaSession {
  readonly direction = 'subscribe' as const;
  readonly forwarders: Partial<Record<MediaKind, TrackForwarder>> = {};
  private readonly slots: { kind: MediaKind; transceiver: RTCRtpTransceiver }[] = [];

  constructor(private readonly subscriberOptions: SubscriberSessionOptions) {
    super(subscriberOptions);
  }

  protected override beforeOffer(): void {
    // One stream id for both tracks, so a browser puts them in one MediaStream.
    const stream = new MediaStream({ id: `returncam-${this.role}-view` });
    for (const kind of ['audio', 'video'] as const) {
      const transceiver = this.pc.addTransceiver(kind, {
        direction: 'sendonly',
        streams: [stream],
      });
      this.slots.push({ kind, transceiver });
    }
  }

  protected override afterOffer(): void {
    for (const { kind, transceiver } of this.slots) {
      // A slot the offer did not match (e.g. a video-only offer) has no mid: nothing to forward.
      if (transceiver.mid == null) continue;
      this.forwarders[kind] = new TrackForwarder({
        kind,
        transceiver,
        counters: this.counters,
        log: this.log,
        onKeyframeRequest: this.subscriberOptions.onKeyframeRequest,
      });
    }
  }

  protected override connectedHook(): void {
    this.subscriberOptions.onKeyframeRequest();
  }

  protected override onClose(): void {
    this.forwarders.audio?.close();
    this.forwarders.video?.close();
  }
}
