/**
 * A remote video that stands still while its packets keep coming: the decoder waits for a
 * frame it needs (one lost for good, or a broken chain of references) and only a keyframe
 * helps. Chrome asks for one itself only after 3 s without a decodable frame; this watch lets
 * the page ask the node after `stallMs`, so the picture comes back about two seconds sooner.
 *
 * Fed with receive-side getStats counters every few hundred ms. It says "ask" once per stall,
 * then again every `repeatMs` while the stall lasts. It never asks for a stream that has not
 * decoded its first frame yet (the node sends new viewers a keyframe anyway), nor for one that
 * brings no packets (camera off, link down, a weak link between two of its still frames).
 *
 * The bench's staff page embeds this class's source (`stallWatchSource` in
 * src/bench/browser/pages.ts), so it must stay one self-contained class.
 */
export class DecodeStallWatch {
  /**
   * @param {{ stallMs?: number, repeatMs?: number, minPackets?: number, recentMs?: number }} [options]
   *   stallMs: no frame decoded for this long; repeatMs: the least time between two asks;
   *   minPackets: video packets that must have come since the last decoded frame; recentMs:
   *   and the last of them this recently (the link still brings video).
   */
  constructor({ stallMs = 1000, repeatMs = 2000, minPackets = 5, recentMs = 400 } = {}) {
    this.stallMs = stallMs;
    this.repeatMs = repeatMs;
    this.minPackets = minPackets;
    this.recentMs = recentMs;
    this.reset();
  }

  reset() {
    /** The last sample in which `framesDecoded` moved (or the first one). */
    this.lastDecode = undefined;
    this.last = undefined;
    /** When `videoPackets` last grew. */
    this.packetsAt = -Infinity;
    this.askedAt = -Infinity;
    this.requests = 0;
  }

  /**
   * Adds one sample; true when the page should ask for a keyframe now.
   * @param {{ at: number, framesDecoded: number, videoPackets: number }} s `at` in ms
   *   (performance.now()); the others are the video inbound-rtp counters.
   */
  update(s) {
    const before = this.last;
    if (
      before &&
      (s.at <= before.at ||
        s.framesDecoded < before.framesDecoded ||
        s.videoPackets < before.videoPackets)
    ) {
      // counters went back: a new connection; start over
      this.reset();
    }
    // the previous sample of this connection (none right after a reset)
    const last = this.last;
    if (last && s.videoPackets > last.videoPackets) this.packetsAt = s.at;
    this.last = s;
    if (!this.lastDecode || s.framesDecoded > this.lastDecode.framesDecoded) {
      this.lastDecode = s;
      this.askedAt = -Infinity;
      return false;
    }
    // nothing decoded yet: the stream is only starting, and the node sends it a keyframe anyway
    if (s.framesDecoded === 0) return false;
    if (s.at - this.lastDecode.at < this.stallMs) return false;
    if (s.videoPackets - this.lastDecode.videoPackets < this.minPackets) return false;
    if (s.at - this.packetsAt > this.recentMs) return false;
    if (s.at - this.askedAt < this.repeatMs) return false;
    this.askedAt = s.at;
    this.requests += 1;
    return true;
  }
}
