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
