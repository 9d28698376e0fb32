import { describe, expect, it } from 'vitest';
import { parseVp8Descriptor } from '../../src/bench/clients/rtp.ts';
import { Vp8IdRewriter } from '../../src/node/media/vp8Ids.ts';

/** A VP8 payload: descriptor with 15-bit (or 7-bit) PictureID, TL0PICIDX and TID, then data. */
function vp8(pictureId: number, tl0: number, opts: { short?: boolean; start?: boolean } = {}) {
  const pid = opts.short
    ? [pictureId & 0x7f]
    : [0x80 | ((pictureId >> 8) & 0x7f), pictureId & 0xff];
  return Buffer.from([
    0x80 | (opts.start === false ? 0 : 0x10),
    0x80 | 0x40 | 0x20, // I, L, T
    ...pid,
    tl0,
    0x40, // TID 1, Y
    0x9d,
    0x01,
    0x2a,
  ]);
}

const ids = (payload: Buffer) => {
  const d = parseVp8Descriptor(payload)!;
  const tl0 = payload[d.headerSize - 2]!;
  return { pictureId: d.pictureId, tl0 };
};

describe('VP8 picture numbering across a stream switch', () => {
  it('passes packets untouched until a switch, then numbers the new stream right after the old', () => {
    const r = new Vp8IdRewriter();
    // Stream A (the top layer) runs 32760 .. 32767, 0, 1 (a wrap) with TL0PICIDX 250 .. 255, 0.
    let last: Buffer | undefined;
    for (let i = 0; i < 10; i++) {
      const p = vp8((32_760 + i) & 0x7fff, (250 + Math.floor(i / 2)) & 0xff);
      const out = r.rewrite(p);
      expect(out).toBe(p); // no copy while nothing changes
      last = out;
    }
    expect(ids(last!)).toEqual({ pictureId: 1, tl0: 254 });
    // Switch to stream B (another layer, its own numbering), at its keyframe.
    r.streamChanged();
    const b = [vp8(12_000, 7), vp8(12_000, 7, { start: false }), vp8(12_001, 8), vp8(12_002, 8)];
    const before = b.map((p) => Buffer.from(p));
    const out = b.map((p) => r.rewrite(p));
    expect(out.map(ids)).toEqual([
      { pictureId: 2, tl0: 255 },
      { pictureId: 2, tl0: 255 },
      { pictureId: 3, tl0: 0 },
      { pictureId: 4, tl0: 0 },
    ]);
    // The payloads other viewers share are not touched; only the descriptor differs.
    expect(b).toEqual(before);
    for (const [i, p] of out.entries()) expect(p.subarray(6)).toEqual(b[i]!.subarray(6));
    // And back to stream A, which moved on meanwhile.
    r.streamChanged();
    expect(ids(r.rewrite(vp8(500, 90)))).toEqual({ pictureId: 5, tl0: 1 });
    expect(ids(r.rewrite(vp8(501, 90)))).toEqual({ pictureId: 6, tl0: 1 });
  });

  it('keeps the newest number when a late repair of an older picture passes', () => {
    const r = new Vp8IdRewriter();
    r.rewrite(vp8(100, 10));
    r.rewrite(vp8(101, 10));
    r.rewrite(vp8(99, 9)); // a retransmission of an older picture
    r.streamChanged();
    expect(ids(r.rewrite(vp8(7_000, 50)))).toEqual({ pictureId: 102, tl0: 11 });
  });

  it('handles 7-bit PictureIDs and leaves descriptors without them alone', () => {
    const r = new Vp8IdRewriter();
    r.rewrite(vp8(126, 3, { short: true }));
    r.rewrite(vp8(127, 3, { short: true }));
    r.streamChanged();
    const out = r.rewrite(vp8(40, 200, { short: true }));
    expect(out[2]! & 0x80).toBe(0); // still a 7-bit field
    expect(ids(out)).toEqual({ pictureId: 0, tl0: 4 });
    const bare = Buffer.from([0x10, 0x9d, 0x01, 0x2a]); // no extension byte
    expect(r.rewrite(bare)).toBe(bare);
  });
});
