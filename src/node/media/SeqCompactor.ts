/**
 * Renumbers a publisher stream's media packets without the sequence numbers that were not media
 * (ULPFEC packets, which share the media SSRC's numbering, and holes known to have held none):
 * viewers get plain media and would otherwise take each such number for a loss (NACK it, report
 * it in their receiver reports, and move to a lower layer for it).
 *
 * The newest packet decides: numbers it skips over are kept as holes (possible media, which a
 * repair may still fill) unless the caller says they held no media. A late packet (a repair, a
 * reordered one) gets the number its place was given; one whose place is too old is dropped.
 */
const RING = 1024;
const SKIPPED = -1;
const UNSET = -2;

export class SeqCompactor {
  private head = -1;
  /** Non-media sequence numbers up to `head`. */
  private skipped = 0;
  private readonly slots = new Int32Array(RING).fill(UNSET);
  private readonly tags = new Int32Array(RING).fill(-1);

  /** The newest sequence number seen (media or not), or -1. */
  get newest(): number {
    return this.head;
  }

  /**
   * A media packet: its number for viewers, or -1 when it is to be dropped (too late, or in a
   * place taken for non-media). `holesHeldMedia(from, count)` is asked only when this packet is
   * the newest and skips over numbers: false skips them too.
   */
  media(seq: number, holesHeldMedia: () => boolean): number {
    const ahead = this.advanceTo(seq, holesHeldMedia);
    if (ahead) {
      const out = (seq - this.skipped) & 0xffff;
      this.set(seq, out);
      return out;
    }
    return this.lookup(seq);
  }

  /**
   * A sequence number that carried no media (a FEC packet); numbers it skips over are kept as
   * holes unless `holesHeldMedia` says otherwise. A late one's place stays a hole.
   */
  skip(seq: number, holesHeldMedia: () => boolean = () => true): void {
    if (this.advanceTo(seq, holesHeldMedia)) {
      this.skipped++;
      this.set(seq, SKIPPED);
    }
  }

  /** True when `seq` is the new head (holes before it are settled); false for a late one. */
  private advanceTo(seq: number, holesHeldMedia: () => boolean): boolean {
    if (this.head < 0) {
      this.head = seq;
      return true;
    }
    const d = (seq - this.head) & 0xffff;
    if (d === 0 || d >= 0x8000) return false;
    if (d > RING) {
      // A jump past the ring: nothing behind it can still be placed; keep the numbering.
      this.slots.fill(UNSET);
      this.tags.fill(-1);
    } else if (d > 1) {
      const media = holesHeldMedia();
      for (let s = (this.head + 1) & 0xffff; s !== seq; s = (s + 1) & 0xffff) {
        if (media) this.set(s, (s - this.skipped) & 0xffff);
        else {
          this.skipped++;
          this.set(s, SKIPPED);
        }
      }
    }
    this.head = seq;
    return true;
  }

  private lookup(seq: number): number {
    const i = seq & (RING - 1);
    if (this.tags[i] !== seq) return -1;
    const slot = this.slots[i]!;
    return slot >= 0 ? slot : -1;
  }

  private set(seq: number, value: number): void {
    const i = seq & (RING - 1);
    this.tags[i] = seq;
    this.slots[i] = value;
  }
}

const MARKS = 1024;
const MEDIA = 1 << 20;
const FEC = 1 << 21;
const LONG_PID = 1 << 18;
const MARKER = 1 << 17;
const START = 1 << 16;

/**
 * What each recent sequence number of a stream with FEC carried: FEC, or media with its VP8
 * frame marks (ends a frame, starts one, PictureID). Tells a number given up on that held no
 * media (FEC, which Chrome never resends) from lost media, which needs a keyframe.
 */
export class FrameMarks {
  private readonly marks = new Int32Array(MARKS);
  private readonly tags = new Int32Array(MARKS).fill(-1);

  fec(seq: number): void {
    this.set(seq, FEC);
  }

  /** A media packet; `pid` -1 when it has no PictureID, `mask` 0x7fff or 0x7f. */
  media(seq: number, marker: boolean, start: boolean, pid: number, mask: number): void {
    this.set(
      seq,
      MEDIA |
        (marker ? MARKER : 0) |
        (start ? START : 0) |
        (mask === 0x7fff ? LONG_PID : 0) |
        ((pid + 1) & 0xffff),
    );
  }

  /**
   * Whether `seq` held no media: the nearest media packets that arrived on either side of it
   * (within 16 numbers) end one VP8 frame and start the next, with consecutive PictureIDs, so
   * whatever lay between was not media. Undecidable (too far, no PictureID) counts as media.
   */
  heldNoMedia(seq: number): boolean {
    const before = this.nearestMedia(seq, -1);
    const after = this.nearestMedia(seq, 1);
    if (!(before & MARKER) || !(after & START)) return false;
    const pidBefore = (before & 0xffff) - 1;
    const pidAfter = (after & 0xffff) - 1;
    const mask = after & LONG_PID ? 0x7fff : 0x7f;
    return pidBefore >= 0 && pidAfter >= 0 && ((pidBefore + 1) & mask) === pidAfter;
  }

  private nearestMedia(seq: number, step: number): number {
    for (let k = 1; k <= 16; k++) {
      const s = (seq + step * k) & 0xffff;
      const i = s & (MARKS - 1);
      if (this.tags[i] !== s) continue;
      const mark = this.marks[i]!;
      if (mark & MEDIA) return mark;
    }
    return 0;
  }

  private set(seq: number, mark: number): void {
    const i = seq & (MARKS - 1);
    this.marks[i] = mark;
    this.tags[i] = seq;
  }
}
