/**
 * Which of two pictures of the same camera a viewer sees: the main one (the best layer the
 * viewer's link carries) or the backup (the publisher's lowest layer, sent alongside). When the
 * main picture stops (a lost packet waiting for its repair across the buyer's uplink, or a layer
 * the buyer's browser switched off until the next keyframe) the backup usually goes on: its
 * packets are others, and it never needs a keyframe to follow a switch. So the page shows it
 * until the main picture moves again, and the viewer sees a softer picture instead of a frozen
 * one.
 *
 * A main picture that runs slow by itself (a dim camera, a busy encoder: 10 fps) is not standing
 * still: the time that counts as stopped is `holdMs`, or twice its mean frame interval if
 * longer. It goes back to the main picture once that has played for `returnMs` with no gap over
 * that time. The first frames after a repair are the ones held back for it, older than the
 * backup's, and come in a burst; they, and a main picture at a fraction of its frame rate (an
 * upper temporal layer lost), stay behind the backup rather than make the picture jump back in
 * time or flicker between the two. When the backup stops too, the main picture shows at once.
 *
 * Fed with every frame each picture presents (requestVideoFrameCallback); `frame` says which
 * picture to show from then on. Before the main picture's first frames, the backup shows.
 *
 * The bench's staff page embeds this class's source (`fallbackSource` in
 * src/bench/browser/pages.ts), so it must stay one self-contained class.
 */
export class PictureFallback {
  /**
   * @param {{ holdMs?: number, returnMs?: number }} [options] holdMs: the main picture counts as
   *   stopped after this long without a new frame (under Chrome's freeze threshold at 30 fps,
   *   about 180 ms); returnMs: how long it must play again before it is shown again.
   */
  constructor({ holdMs = 100, returnMs = 200 } = {}) {
    this.holdMs = holdMs;
    this.returnMs = returnMs;
    this.reset();
  }

  reset() {
    this.lastMainAt = -Infinity;
    /** The main picture's last 30 frame intervals (each at most 250 ms), for its mean. */
    this.gaps = [];
    this.gapSum = 0;
    this.lastBackupAt = -Infinity;
    /** Since when the main picture has played with no gap over `stoppedAfterMs`. */
    this.mainSince = -Infinity;
    /** 'main' or 'backup'. */
    this.showing = 'backup';
    /** Times the page went over to the backup picture after the main one had shown. */
    this.fallbacks = 0;
  }

  /** How long the main picture may present nothing before it counts as stopped, ms. */
  get stoppedAfterMs() {
    const n = this.gaps.length;
    return n < 5 ? this.holdMs : Math.max(this.holdMs, (2 * this.gapSum) / n);
  }

  /**
   * One frame presented by one of the pictures, at `at` ms (the frame callback's `now`);
   * returns the picture to show now.
   * @param {'main' | 'backup'} which
   * @param {number} at
   * @returns {'main' | 'backup'}
   */
  frame(which, at) {
    if (which === 'main') {
      const gap = at - this.lastMainAt;
      if (gap > this.stoppedAfterMs) this.mainSince = at;
      if (Number.isFinite(gap)) {
        // a stall counts as one long interval, not as the picture's pace
        const g = Math.min(gap, 250);
        this.gaps.push(g);
        this.gapSum += g;
        if (this.gaps.length > 30) this.gapSum -= this.gaps.shift();
      }
      this.lastMainAt = at;
      if (
        this.showing === 'backup' &&
        (at - this.mainSince >= this.returnMs || at - this.lastBackupAt > this.stoppedAfterMs)
      ) {
        this.showing = 'main';
      }
    } else {
      this.lastBackupAt = at;
      if (this.showing === 'main' && at - this.lastMainAt > this.stoppedAfterMs) {
        this.showing = 'backup';
        this.fallbacks++;
      }
    }
    return this.showing;
  }
}
