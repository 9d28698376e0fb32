/**
 * "Weak connection": the remote video has stalled or runs under ~2 fps for ~3 s while its audio
 * still arrives. That is what a viewer gets when even the lowest video layer does not fit its
 * link (audio plus a still frame every few seconds), so the page says so instead of looking
 * broken. Fed with receive-side getStats counters; shows after the whole window, clears as soon
 * as video is back (or the audio stops too: then it is not a weak link but a gone one).
 */

/** Under this many frames per second, over {@link WEAK_WINDOW_MS}, video counts as stalled. */
export const WEAK_FPS = 2;
export const WEAK_WINDOW_MS = 3000;
/** Video is back once it runs at this rate over {@link RECOVER_WINDOW_MS}. */
export const RECOVER_FPS = 3;
export const RECOVER_WINDOW_MS = 1500;
/** Audio "still arrives" with at least this many packets a second (Opus sends 50). */
const AUDIO_PACKETS_PER_SECOND = 3;
/** With `requireVideoPackets`: some video arrived this recently, so the sender still sends. */
const RECENT_VIDEO_MS = 1500;
/** With `requireVideoPackets`: no video at all for this long means the camera is off. */
const VIDEO_GONE_MS = 6000;

export class WeakVideoDetector {
  /**
   * @param {{ requireVideoPackets?: boolean }} [options] requireVideoPackets: only a stream that
   *   still delivers some video counts: a sender that turned its camera off sends no packets at
   *   all, while a starved link still brings a frame now and then.
   */
  constructor({ requireVideoPackets = false } = {}) {
    this.requireVideoPackets = requireVideoPackets;
    this.samples = [];
    this.weak = false;
    this.lastVideoAt = -Infinity;
  }

  reset() {
    this.samples = [];
    this.weak = false;
    this.lastVideoAt = -Infinity;
  }

  /**
   * Adds one sample and returns whether the connection is weak now.
   * @param {{ at: number, framesDecoded: number, videoPackets: number, audioPackets: number }} s
   *   `at` in ms (performance.now()); the rest are the inbound-rtp counters.
   */
  update(s) {
    const last = this.samples.at(-1);
    if (
      last &&
      (s.at <= last.at ||
        s.framesDecoded < last.framesDecoded ||
        s.audioPackets < last.audioPackets ||
        s.videoPackets < last.videoPackets)
    ) {
      // counters went back: a new connection; start over
      this.reset();
    }
    const previous = this.samples.at(-1);
    if (previous && s.videoPackets > previous.videoPackets) this.lastVideoAt = s.at;
    this.samples.push(s);
    const videoGone = this.requireVideoPackets && s.at - this.lastVideoAt > VIDEO_GONE_MS;
    // keep one sample at or before the longest window, drop older ones
    while (this.samples.length > 2 && this.samples[1].at <= s.at - WEAK_WINDOW_MS) {
      this.samples.shift();
    }
    if (this.weak) {
      const base = this.baseFor(s.at - RECOVER_WINDOW_MS);
      if (!base) return this.weak;
      const r = this.rates(base, s);
      if (r.fps >= RECOVER_FPS || r.audioPps < AUDIO_PACKETS_PER_SECOND || videoGone) {
        this.weak = false;
      }
      return this.weak;
    }
    const base = this.baseFor(s.at - WEAK_WINDOW_MS);
    // video must have been playing before the window: a stream that is only starting is slow too
    if (!base || base.framesDecoded === 0) return false;
    const r = this.rates(base, s);
    this.weak =
      r.fps < WEAK_FPS &&
      r.audioPps >= AUDIO_PACKETS_PER_SECOND &&
      (!this.requireVideoPackets || s.at - this.lastVideoAt <= RECENT_VIDEO_MS);
    return this.weak;
  }

  /** The newest sample taken at or before `at`. */
  baseFor(at) {
    let base;
    for (const sample of this.samples) {
      if (sample.at <= at) base = sample;
      else break;
    }
    return base;
  }

  rates(from, to) {
    const seconds = (to.at - from.at) / 1000;
    return {
      fps: (to.framesDecoded - from.framesDecoded) / seconds,
      audioPps: (to.audioPackets - from.audioPackets) / seconds,
      videoPackets: to.videoPackets - from.videoPackets,
    };
  }
}
