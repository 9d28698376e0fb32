import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FrameMarks, SeqCompactor } from '../../src/node/media/SeqCompactor.ts';
import {
  type ProtectedPacket,
  parseUlpfec,
  redPrimary,
  splitRed,
  UlpfecReceiver,
} from '../../src/node/media/ulpfec.ts';

const FEC_PT = 120;

/** Chromium's own packets: media and FEC as it sent them (tests/fixtures, see its header). */
function chromePackets() {
  const text = readFileSync(
    join(import.meta.dirname, '../fixtures/chrome-vp8-red-ulpfec.txt'),
    'utf8',
  );
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const split = splitRed(Buffer.from(l, 'base64'), FEC_PT);
      if (!split) throw new Error('fixture packet does not parse');
      return split;
    });
}

const mediaOf = (packets: ReturnType<typeof chromePackets>) =>
  new Map(
    packets.flatMap((p) => (p.fec ? [] : [[p.media.seq, p.media] as [number, ProtectedPacket]])),
  );

describe('ULPFEC from Chromium', () => {
  const packets = chromePackets();
  const media = mediaOf(packets);
  const fecs = packets.flatMap((p) => (p.fec ? [p] : []));
  const complete = fecs.filter((f) =>
    parseUlpfec(f.seq, f.data)!.protectedSeqs.every((s) => media.has(s)),
  );

  it('has media and FEC packets, FEC covering groups of one to several frames', () => {
    expect(media.size).toBeGreaterThan(15);
    expect(complete.length).toBeGreaterThanOrEqual(3);
    expect(complete.some((f) => parseUlpfec(f.seq, f.data)!.protectedSeqs.length > 2)).toBe(true);
  });

  it('rebuilds each protected packet, byte for byte, when it alone of its group is lost', () => {
    let rebuilt = 0;
    for (const fec of complete) {
      const group = parseUlpfec(fec.seq, fec.data)!.protectedSeqs;
      for (const lost of group) {
        for (const fecFirst of [false, true]) {
          const receiver = new UlpfecReceiver();
          const out = fecFirst ? receiver.addFec(fec.seq, fec.data) : [];
          expect(out).toEqual([]);
          for (const s of group) if (s !== lost) out.push(...receiver.addMedia(media.get(s)!));
          if (!fecFirst) out.push(...receiver.addFec(fec.seq, fec.data));
          const original = media.get(lost)!;
          expect(out).toHaveLength(1);
          expect(out[0]!.seq).toBe(lost);
          expect(out[0]!.timestamp).toBe(original.timestamp);
          expect(out[0]!.payloadType).toBe(original.b1 & 0x7f);
          expect(out[0]!.marker).toBe((original.b1 & 0x80) !== 0);
          expect(Buffer.from(out[0]!.payload).equals(Buffer.from(original.tail[1]!))).toBe(true);
          rebuilt++;
        }
      }
    }
    expect(rebuilt).toBeGreaterThanOrEqual(10);
  });

  it('cannot rebuild two losses of one group, until a NACK repair brings one of them', () => {
    const fec = complete.find((f) => parseUlpfec(f.seq, f.data)!.protectedSeqs.length >= 2)!;
    const [a, b, ...rest] = parseUlpfec(fec.seq, fec.data)!.protectedSeqs;
    const receiver = new UlpfecReceiver();
    for (const s of rest) receiver.addMedia(media.get(s)!);
    expect(receiver.addFec(fec.seq, fec.data)).toEqual([]);
    const out = receiver.addMedia(media.get(a!)!);
    expect(out.map((r) => r.seq)).toEqual([b]);
    expect(Buffer.from(out[0]!.payload).equals(Buffer.from(media.get(b!)!.tail[1]!))).toBe(true);
    expect(receiver.recovered).toBe(1);
  });

  it('ignores a FEC packet cut short, and one whose protection is shorter than a packet', () => {
    const fec = complete[0]!;
    const receiver = new UlpfecReceiver();
    expect(receiver.addFec(fec.seq, fec.data.subarray(0, 13))).toEqual([]);
    const group = parseUlpfec(fec.seq, fec.data)!.protectedSeqs;
    for (const s of group.slice(1)) receiver.addMedia(media.get(s)!);
    // The protection length field says 1 byte: nothing can be rebuilt from it.
    const short = Buffer.from(fec.data);
    short.writeUInt16BE(1, 10);
    expect(receiver.addFec(fec.seq, short.subarray(0, 16))).toEqual([]);
  });
});

describe('RED (RFC 2198)', () => {
  it('finds the primary block after redundant ones', () => {
    // Two redundant blocks (3 and 2 bytes), then the primary, PT 96.
    const payload = Buffer.from([
      0x80 | 96,
      0x00,
      0x00,
      0x03,
      0x80 | 96,
      0x00,
      0x00,
      0x02,
      96,
      1,
      2,
      3,
      4,
      5,
      0xaa,
      0xbb,
    ]);
    expect(redPrimary(payload)).toEqual({ pt: 96, offset: 14 });
  });

  it('refuses a header that runs past the payload', () => {
    expect(redPrimary(Buffer.from([0x80 | 96, 0, 0]))).toBeUndefined();
    expect(redPrimary(Buffer.from([0x80 | 96, 0, 0, 9, 96]))).toBeUndefined();
    expect(redPrimary(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('SeqCompactor', () => {
  const always = () => true;
  const never = () => false;

  it('numbers media without the FEC packets between them', () => {
    const c = new SeqCompactor();
    expect(c.media(100, always)).toBe(100);
    expect(c.media(101, always)).toBe(101);
    c.skip(102);
    c.skip(103);
    expect(c.media(104, always)).toBe(102);
    c.skip(105);
    expect(c.media(106, always)).toBe(103);
  });

  it('keeps a hole that may have held media for its repair, and drops what came too late', () => {
    const c = new SeqCompactor();
    c.media(65534, always);
    c.skip(65535);
    expect(c.media(2, always)).toBe(1); // 0 and 1 missing across the wrap: kept
    expect(c.media(1, always)).toBe(0);
    expect(c.media(0, always)).toBe(65535);
    expect(c.media(1, always)).toBe(0); // a duplicate gets its number again
    for (let s = 3; s < 3 + 1100; s++) c.media(s, always);
    expect(c.media(2, always)).toBe(-1); // its place has been overwritten since
  });

  it('skips a hole that held no media, and drops a packet that claims it later', () => {
    const c = new SeqCompactor();
    c.media(10, always);
    expect(c.media(13, never)).toBe(11);
    expect(c.media(11, always)).toBe(-1);
    c.skip(12);
    expect(c.media(14, always)).toBe(12);
  });
});

describe('FrameMarks: was a number given up on FEC or media?', () => {
  const L = 0x7fff;

  it('FEC: lost between the end of one frame and the start of the next', () => {
    const m = new FrameMarks();
    m.media(10, false, true, 5, L);
    m.media(11, true, false, 5, L);
    m.fec(12);
    m.media(14, false, true, 6, L);
    expect(m.heldNoMedia(13)).toBe(true);
    // and across the PictureID and sequence number wraps
    m.media(65535, true, true, 0x7fff, L);
    m.media(1, true, true, 0, L);
    expect(m.heldNoMedia(0)).toBe(true);
  });

  it('media: the end of a frame, the start of one, a whole frame, or nothing to tell by', () => {
    const m = new FrameMarks();
    m.media(10, false, true, 5, L);
    m.media(12, true, true, 6, L); // 11 ended frame 5
    expect(m.heldNoMedia(11)).toBe(false);
    m.media(14, true, false, 7, L); // 13 started frame 7
    expect(m.heldNoMedia(13)).toBe(false);
    m.media(16, true, true, 9, L); // 15 was frame 8
    expect(m.heldNoMedia(15)).toBe(false);
    m.media(20, true, true, -1, 0); // H.264: no PictureID
    m.media(22, true, true, -1, 0);
    expect(m.heldNoMedia(21)).toBe(false);
    m.media(100, true, true, 50, L); // neighbours too far apart
    m.media(140, true, true, 51, L);
    expect(m.heldNoMedia(120)).toBe(false);
  });
});
