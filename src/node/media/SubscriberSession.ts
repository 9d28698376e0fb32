import { MediaStream, type RTCRtpTransceiver } from 'werift';
import type { LayerSelectorOptions } from './LayerSelector.ts';
import { LinkEstimate, type LinkEstimateOptions } from './LinkEstimate.ts';
import { MediaSession, type MediaSessionOptions } from './MediaSession.ts';
import { parseOffer, receives } from './sdp.ts';
import { type ForwarderQuality, TrackForwarder } from './TrackForwarder.ts';
import type { MediaKind } from './types.ts';

export interface SubscriberSessionOptions extends MediaSessionOptions {
  /** The subscriber asked for a keyframe, or has just connected and needs one. */
  onKeyframeRequest: () => void;
  /** How often the video layer is re-decided, ms. */
  layerIntervalMs?: number;
  /** Layer switching rules. */
  selector?: LayerSelectorOptions;
  /** Bandwidth estimate tuning. */
  estimate?: LinkEstimateOptions;
}

/** What a subscriber currently receives (for pages, the admin API and the bench). */
export type SubscriberQuality = ForwarderQuality;

const DEFAULT_LAYER_INTERVAL_MS = 250;

/**
 * A WHEP session: answers sendonly audio and video slots right away (the publisher may come
 * later) and owns one {@link TrackForwarder} per kind. While connected it re-decides, a few times
 * a second, which video layer its link can carry (from its REMB and receiver reports), leaving
 * the audio alone.
 */
export class SubscriberSession extends MediaSession {
  readonly direction = 'subscribe' as const;
  readonly forwarders: Partial<Record<MediaKind, TrackForwarder>> = {};
  /**
   * A second video the viewer asked for (a second receiving video m-line): the publisher's lowest
   * simulcast layer, for the page to show while the main picture waits.
   */
  backup: TrackForwarder | undefined;
  private readonly slots: { kind: MediaKind; transceiver: RTCRtpTransceiver; backup: boolean }[] =
    [];
  private readonly estimate: LinkEstimate;
  private layerTimer: NodeJS.Timeout | undefined;

  constructor(private readonly subscriberOptions: SubscriberSessionOptions) {
    super(subscriberOptions);
    this.estimate = new LinkEstimate(subscriberOptions.estimate);
  }

  /** The video this subscriber gets: layer, weak connection, estimate. Undefined without video. */
  get quality(): SubscriberQuality | undefined {
    return this.forwarders.video?.quality();
  }

  /**
   * The viewer's page says its video stands still while packets arrive (`stall.js`): ask for a
   * keyframe for it. False when this session forwards no video.
   */
  viewerStalled(): boolean {
    const video = this.forwarders.video;
    if (this.closed || !video) return false;
    video.viewerStalled();
    return true;
  }

  /** Every forwarder of `kind`: the main one, and for video the backup. */
  forwardersOf(kind: MediaKind): TrackForwarder[] {
    const out: TrackForwarder[] = [];
    const main = this.forwarders[kind];
    if (main) out.push(main);
    if (kind === 'video' && this.backup) out.push(this.backup);
    return out;
  }

  protected override beforeOffer(offerSdp: string): void {
    // One stream id for both tracks, so a browser puts them in one MediaStream.
    const stream = new MediaStream({ id: `returncam-${this.role}-view` });
    for (const kind of ['audio', 'video'] as const) {
      const transceiver = this.pc.addTransceiver(kind, {
        direction: 'sendonly',
        streams: [stream],
      });
      this.slots.push({ kind, transceiver, backup: false });
    }
    let videos = 0;
    try {
      for (const m of parseOffer(offerSdp)) {
        if (m.kind === 'video' && m.port !== 0 && receives(m.direction)) videos++;
      }
    } catch {
      return; // the offer is refused when applied, with the reason
    }
    if (videos >= 2) {
      // its own stream: the page shows it apart from the main picture
      const transceiver = this.pc.addTransceiver('video', {
        direction: 'sendonly',
        streams: [new MediaStream({ id: `returncam-${this.role}-view-backup` })],
      });
      this.slots.push({ kind: 'video', transceiver, backup: true });
    }
  }

  protected override afterOffer(): void {
    for (const { kind, transceiver, backup } of this.slots) {
      // A slot the offer did not match (e.g. a video-only offer) has no mid: nothing to forward.
      if (transceiver.mid == null) continue;
      const forwarder = new TrackForwarder({
        kind,
        transceiver,
        counters: this.counters,
        log: this.log,
        onKeyframeRequest: this.subscriberOptions.onKeyframeRequest,
        estimate: this.estimate,
        selector: this.subscriberOptions.selector,
        maxPlayoutDelayMs: this.options.media.maxPlayoutDelayMs,
        backup,
        // a REMB that werift hands to the backup's sender is the main video's to read
        onRemb: backup ? (bps, now) => this.forwarders.video?.receivedRemb(bps, now) : undefined,
      });
      if (backup) this.backup = forwarder;
      else this.forwarders[kind] = forwarder;
    }
  }

  protected override iceRestartHook(): void {
    this.forwarders.video?.pathRestarting();
    this.backup?.pathRestarting();
  }

  protected override connectedHook(): void {
    this.forwarders.video?.pathRestored(performance.now());
    this.backup?.pathRestored(performance.now());
    this.subscriberOptions.onKeyframeRequest();
    if (this.forwarders.video && !this.layerTimer) {
      this.layerTimer = setInterval(
        this.selectLayer,
        this.subscriberOptions.layerIntervalMs ?? DEFAULT_LAYER_INTERVAL_MS,
      );
      this.layerTimer.unref();
    }
  }

  protected override onClose(): void {
    if (this.layerTimer) clearInterval(this.layerTimer);
    this.layerTimer = undefined;
    this.forwarders.audio?.close();
    this.forwarders.video?.close();
    this.backup?.close();
  }

  private readonly selectLayer = (): void => {
    if (this.closed) return;
    const now = performance.now();
    const audioBps = this.forwarders.audio?.sentBitrate(now) ?? 0;
    const main = this.forwarders.video;
    const backup = this.backup;
    if (!backup || !main) {
      main?.selectLayer(now, audioBps);
      return;
    }
    const wantBps = main.lowestLayerBitrate(now);
    main.selectLayer(now, audioBps, { sentBps: backup.sentBitrate(now), wantBps });
    // the backup picture only where the main one leaves room for it
    backup.setBackupOn(main.roomForBackup(now, audioBps, wantBps, backup.backupSending));
    backup.selectLayer(now, audioBps);
  };
}
