import { HttpError } from '../../core/errors.ts';
import { redPayloadTypes, startFecReceivePath } from './fecReceivePath.ts';
import { SimulcastAllocation } from './layersAllocation.ts';
import { MediaSession } from './MediaSession.ts';
import { PublishedTrack } from './PublishedTrack.ts';
import { RepairDelays } from './playoutDelay.ts';
import type { MediaKind } from './types.ts';
import { routeSimulcastRtx } from './weriftPatches.ts';

/**
 * A WHIP session: receives the publisher's audio and video (answers recvonly). Each stream is a
 * {@link PublishedTrack} for the room to fan out: one per kind, or, for a simulcast video, one per
 * layer (`videoLayers`, lowest first, in the order of the offer's `a=rid` lines).
 */
export class PublisherSession extends MediaSession {
  readonly direction = 'publish' as const;
  /** One track per kind; for simulcast video, the highest layer (what is recorded). */
  readonly tracks: Partial<Record<MediaKind, PublishedTrack>> = {};
  /** Every video stream the publisher sends, lowest layer first (one without simulcast). */
  readonly videoLayers: PublishedTrack[] = [];
  private stopFec: (() => void) | undefined;

  /** The publisher's streams of `kind`, lowest first. */
  layers(kind: MediaKind): readonly PublishedTrack[] {
    if (kind === 'video') return this.videoLayers;
    return this.tracks.audio ? [this.tracks.audio] : [];
  }

  /** Ask the publisher for a keyframe on its main (highest) video stream, throttled. */
  requestKeyframe(): void {
    this.tracks.video?.requestKeyframe();
  }

  protected override afterOffer(): void {
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.kind;
      if (kind !== 'audio' && kind !== 'video') continue;
      if (this.tracks[kind]) continue;
      const layered = transceiver.receiver.tracks.filter((t) => t.rid);
      if (kind === 'video' && layered.length > 1) {
        routeSimulcastRtx(this.pc);
        // werift gives each layer the first negotiated codec, which may be RTX: name the media one.
        const media = transceiver.codecs.find((c) => c.name.toLowerCase() !== 'rtx');
        for (const track of layered) {
          if (media && track.codec?.name.toLowerCase() === 'rtx') track.codec = media;
        }
        const allocation = new SimulcastAllocation();
        const repairs = new RepairDelays();
        layered.forEach((track, index) => {
          this.videoLayers.push(
            new PublishedTrack({
              kind,
              transceiver,
              track,
              counters: this.counters,
              log: this.log,
              layer: { rid: track.rid!, index, count: layered.length },
              allocation,
              repairs,
            }),
          );
        });
        this.tracks.video = this.videoLayers[this.videoLayers.length - 1];
        this.log.debug('simulcast publisher', { rids: layered.map((t) => t.rid).join(',') });
        continue;
      }
      const track = transceiver.receiver.tracks[0];
      if (!track) continue;
      const published = new PublishedTrack({
        kind,
        transceiver,
        track,
        counters: this.counters,
        log: this.log,
        repairs: kind === 'video' ? new RepairDelays() : undefined,
      });
      this.tracks[kind] = published;
      if (kind === 'video') this.videoLayers.push(published);
    }
    const fec = this.stopFec === undefined ? redPayloadTypes(this.pc) : undefined;
    if (fec) {
      this.stopFec = startFecReceivePath(this.pc, fec, (count) => {
        this.counters.fecRecovered += count;
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
    // A (re)connected publisher: subscribers need a keyframe from this new source, on every layer.
    for (const layer of this.videoLayers) layer.requestKeyframe();
  }

  protected override onClose(): void {
    this.stopFec?.();
    this.stopFec = undefined;
    this.tracks.audio?.close();
    for (const layer of this.videoLayers) layer.close();
  }
}
