/**
 * Keeps a viewer's VP8 PictureID and TL0PICIDX (RFC 7741 §4.2) continuous when the node moves it
 * from one stream to another: a simulcast layer switch, or a publisher that reconnected. Each
 * simulcast encoder numbers its pictures from its own random start, so without this the viewer
 * sees the numbers jump by thousands at a switch. Chrome's VP8 reference finder and frame buffer
 * order frames by PictureID: after a backward jump they took later frames for old ones and the
 * picture stood still until the receiver's 3 s no-decodable-frame timeout asked for a keyframe.
 *
 * Per viewer: the first packet of a new stream (a keyframe) is numbered right after the last
 * picture the viewer got; the rest of that stream keeps the same offset. While the offsets are
 * zero (no switch yet) packets pass untouched; after one, each packet's descriptor is rewritten
 * in a copy (the payload is shared with the other viewers).
 */

const PID_MASK_15 = 0x7fff;
const PID_MASK_7 = 0x7f;

/** Where the fields sit in one payload descriptor; -1 where absent. */
interface Fields {
  /** Offset of the PictureID's first byte. */
  pid: number;
  /** 15-bit PictureID (M bit), else 7-bit. */
  long: boolean;
  /** Offset of TL0PICIDX. */
  tl0: number;
}

function fieldsOf(payload: Uint8Array): Fields | undefined {
  if (payload.length < 2 || (payload[0]! & 0x80) === 0) return undefined; // no extension byte
  const x = payload[1]!;
  let offset = 2;
  let pid = -1;
  let long = false;
  if (x & 0x80) {
    if (payload.length <= offset) return undefined;
    pid = offset;
    long = (payload[offset]! & 0x80) !== 0;
    offset += long ? 2 : 1;
  }
  let tl0 = -1;
  if (x & 0x40) tl0 = offset;
  const end = tl0 >= 0 ? tl0 + 1 : offset;
  if (payload.length < end) return undefined;
  return pid < 0 && tl0 < 0 ? undefined : { pid, long, tl0 };
}

function readPid(payload: Uint8Array, f: Fields): number {
  return f.long
    ? ((payload[f.pid]! & 0x7f) << 8) | payload[f.pid + 1]!
    : payload[f.pid]! & PID_MASK_7;
}

/**
 * What a VP8 packet says of its frame (RFC 7741 §4.2): whether it starts one (S bit, partition
 * 0) and the frame's PictureID (-1 when absent) with its mask (0x7fff or 0x7f).
 */
export function vp8FrameInfo(payload: Uint8Array): { start: boolean; pid: number; mask: number } {
  const start = payload.length > 0 && (payload[0]! & 0x1f) === 0x10;
  const f = fieldsOf(payload);
  if (!f || f.pid < 0) return { start, pid: -1, mask: 0 };
  return { start, pid: readPid(payload, f), mask: f.long ? PID_MASK_15 : PID_MASK_7 };
}

/** `a` is newer than `b` in a `mask + 1` numbering space (half the space ahead). */
function ahead(a: number, b: number, mask: number): boolean {
  const d = (a - b) & mask;
  return d !== 0 && d <= (mask + 1) / 2;
}

export class Vp8IdRewriter {
  private pidDelta = 0;
  private tl0Delta = 0;
  /** The newest numbers the viewer got (after rewriting). */
  private lastPid: number | undefined;
  private lastTl0: number | undefined;
  private resync = false;

  /** The next packet starts a new stream (call it with that stream's first forwarded packet). */
  streamChanged(): void {
    this.resync = true;
  }

  /**
   * The payload to send this viewer: `payload` itself when nothing changes, else a copy with
   * PictureID and TL0PICIDX moved by this viewer's offsets.
   */
  rewrite(payload: Buffer): Buffer {
    const f = fieldsOf(payload);
    if (!f) return payload;
    const mask = f.long ? PID_MASK_15 : PID_MASK_7;
    const pid = f.pid >= 0 ? readPid(payload, f) : -1;
    const tl0 = f.tl0 >= 0 ? payload[f.tl0]! : -1;
    if (this.resync) {
      this.resync = false;
      if (pid >= 0 && this.lastPid !== undefined) {
        this.pidDelta = (this.lastPid + 1 - pid) & PID_MASK_15;
      }
      if (tl0 >= 0 && this.lastTl0 !== undefined) this.tl0Delta = (this.lastTl0 + 1 - tl0) & 0xff;
    }
    const outPid = pid >= 0 ? (pid + this.pidDelta) & mask : -1;
    const outTl0 = tl0 >= 0 ? (tl0 + this.tl0Delta) & 0xff : -1;
    if (outPid >= 0 && (this.lastPid === undefined || ahead(outPid, this.lastPid & mask, mask))) {
      this.lastPid = outPid;
    }
    if (outTl0 >= 0 && (this.lastTl0 === undefined || ahead(outTl0, this.lastTl0, 0xff))) {
      this.lastTl0 = outTl0;
    }
    if (outPid === pid && outTl0 === tl0) return payload;
    const out = Buffer.allocUnsafe(payload.length);
    payload.copy(out);
    if (outPid >= 0) {
      if (f.long) {
        out[f.pid] = 0x80 | (outPid >> 8);
        out[f.pid + 1] = outPid & 0xff;
      } else {
        out[f.pid] = outPid;
      }
    }
    if (outTl0 >= 0) out[f.tl0] = outTl0;
    return out;
  }
}
