import { describe, expect, it } from 'vitest';
import {
  minPlayoutDelayMs,
  PLAYOUT_DELAY_LIMIT_MS,
  PlayoutDelayPlan,
  parsePlayoutDelay,
  playoutDelayPayload,
  RepairDelays,
} from '../../src/node/media/playoutDelay.ts';

describe('playout-delay header extension', () => {
  it('writes minimum and maximum as 12-bit counts of 10 ms, as libwebrtc reads them', () => {
    // libwebrtc's PlayoutDelayLimits: one 24-bit big-endian word, (min / 10) << 12 | (max / 10)
    const word = (bytes: Buffer) => (bytes[0]! << 16) | (bytes[1]! << 8) | bytes[2]!;
    const p = playoutDelayPayload(250, 10_000);
    expect([...p]).toEqual([0x01, 0x93, 0xe8]);
    expect(word(p) >> 12).toBe(25);
    expect(word(p) & 0xfff).toBe(1000);
    expect([...playoutDelayPayload(0, 0)]).toEqual([0, 0, 0]);
    expect([...playoutDelayPayload(PLAYOUT_DELAY_LIMIT_MS, PLAYOUT_DELAY_LIMIT_MS)]).toEqual([
      0xff, 0xff, 0xff,
    ]);
  });

  it('rounds up to 10 ms, clamps to what 12 bits carry, and never sends a maximum under the minimum', () => {
    expect(parsePlayoutDelay(playoutDelayPayload(241, 10_000))).toEqual({
      minMs: 250,
      maxMs: 10_000,
    });
    expect(parsePlayoutDelay(playoutDelayPayload(99_999, 99_999))).toEqual({
      minMs: PLAYOUT_DELAY_LIMIT_MS,
      maxMs: PLAYOUT_DELAY_LIMIT_MS,
    });
    expect(parsePlayoutDelay(playoutDelayPayload(300, 100))).toEqual({ minMs: 300, maxMs: 300 });
    expect(parsePlayoutDelay(playoutDelayPayload(-5, 10_000))).toEqual({
      minMs: 0,
      maxMs: 10_000,
    });
  });

  it('reads every minimum/maximum pair back as written', () => {
    for (let min = 0; min <= 0xfff; min += 7) {
      for (const max of [min, 0xfff]) {
        expect(parsePlayoutDelay(playoutDelayPayload(min * 10, max * 10))).toEqual({
          minMs: min * 10,
          maxMs: max * 10,
        });
      }
    }
    expect(parsePlayoutDelay(Buffer.from([1, 2]))).toBeUndefined();
  });
});

describe('repair times of a publisher uplink', () => {
  it('has no typical repair time until three repairs came within 20 s', () => {
    const r = new RepairDelays();
    r.add(400, 0);
    r.add(380, 100);
    expect(r.typicalMs(200)).toBeUndefined();
    r.add(390, 200);
    expect(r.typicalMs(300)).toBe(400); // 380, 390, 400: the third of three
    // 20 s after the first, it no longer counts
    expect(r.typicalMs(20_050)).toBeUndefined();
  });

  it('takes the time three quarters of the recent repairs meet, leaving the slowest out', () => {
    const r = new RepairDelays();
    // 12 repairs: 300..410 ms, plus one that needed a second NACK (a round trip more)
    for (let i = 0; i < 12; i++) r.add(300 + i * 10, i * 100);
    r.add(800, 1300);
    expect(r.typicalMs(1400)).toBe(390); // ceil(0.75 * 13) = 10th of 13
  });

  it('keeps the newest 64 repairs', () => {
    const r = new RepairDelays();
    for (let i = 0; i < 64; i++) r.add(1000, i);
    for (let i = 0; i < 64; i++) r.add(300, 100 + i);
    expect(r.typicalMs(200)).toBe(300);
  });
});

describe('minimum playout delay asked of a viewer', () => {
  it('hides a repair beyond the 150 ms a frame may be late without a freeze, up to the cap', () => {
    expect(minPlayoutDelayMs(undefined, 250)).toBe(0);
    expect(minPlayoutDelayMs(120, 250)).toBe(0); // a viewer's own buffer covers it
    expect(minPlayoutDelayMs(300, 250)).toBe(170);
    expect(minPlayoutDelayMs(301, 250)).toBe(180); // in steps of 10 ms, rounded up
    expect(minPlayoutDelayMs(450, 250)).toBe(250);
    expect(minPlayoutDelayMs(450, 0)).toBe(0); // switched off
  });

  it('asks nothing until needed, moves in steps of 20 ms, and says 0 once no longer needed', () => {
    const plan = new PlayoutDelayPlan(250);
    expect(plan.update(undefined)).toBeUndefined(); // no extension at all
    expect(plan.update(100)).toBeUndefined();
    expect(plan.update(330)).toBe(200);
    expect(plan.update(340)).toBe(200); // 210: under a step from 200
    expect(plan.update(350)).toBe(220);
    expect(plan.update(600)).toBe(250);
    // the viewer keeps a minimum until told otherwise: 0 is sent, not nothing
    expect(plan.update(undefined)).toBe(0);
    expect(plan.update(undefined)).toBe(0);
    expect(plan.update(140)).toBe(0); // 10: under a step from 0, and not worth latency
  });
});
