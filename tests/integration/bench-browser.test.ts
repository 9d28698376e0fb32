import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHROMIUM_PATH } from '../../src/bench/browser/BrowserSession.ts';
import {
  CODE_LAYOUT,
  decodeTimestamp,
  encodeTimestamp,
  readCodeBits,
} from '../../src/bench/browser/timestampCode.ts';
import { parseProfile } from '../../src/bench/profiles.ts';
import { runBench } from '../../src/bench/runBench.ts';

const hasChromium = existsSync(CHROMIUM_PATH);
if (!hasChromium) {
  console.warn(
    `bench browser test skipped: ${CHROMIUM_PATH} not found (Debian: apt-get install chromium)`,
  );
}

describe('timestamp code drawn into frames', () => {
  it('round-trips through pixels, refuses a corrupted code', () => {
    const ts = 1_764_156_000_123;
    const bits = encodeTimestamp(ts);
    expect(bits).toHaveLength(64);
    expect(decodeTimestamp(bits)).toBe(ts);
    const flipped = [...bits];
    flipped[20] = 1 - flipped[20]!;
    expect(decodeTimestamp(flipped)).toBeUndefined();
    // paint the grid as the buyer page does (white = 1), slightly blurred grey levels, and read it back
    const { cell, cols, rows } = CODE_LAYOUT;
    const w = cols * cell;
    const pixels = new Uint8ClampedArray(w * rows * cell * 4);
    for (let y = 0; y < rows * cell; y++) {
      for (let x = 0; x < w; x++) {
        const bit = bits[Math.floor(y / cell) * cols + Math.floor(x / cell)]!;
        const v = bit ? 200 : 50;
        pixels.set([v, v, v, 255], (y * w + x) * 4);
      }
    }
    expect(decodeTimestamp(readCodeBits(pixels, w, cell, cols, rows))).toBe(ts);
  });
});

describe.skipIf(!hasChromium)('bench run --browser: headless Chromium as buyer and staff', () => {
  it('rebuilds packets the buyer lost from its FEC, and the staff page sees none of the FEC numbers', {
    timeout: 60_000,
  }, async () => {
    // Chrome adds ULPFEC (inside RED) once the node's receiver reports show loss and the round
    // trip is over 20 ms; FEC packets share the media's sequence numbers.
    const profile = parseProfile(
      {
        name: 'browser-fec-test',
        buyer: { up: { delay: '40ms', loss: 0.04 }, down: { delay: '40ms' } },
        staff: { up: { delay: '10ms' }, down: { delay: '10ms' } },
      },
      'test',
    );
    const r = await runBench({
      profile,
      sessions: 1,
      durationMs: 12_000,
      warmupMs: 2000,
      node: { kind: 'in-process', media: { publisherFec: true } },
      browser: true,
      bitrateKbps: 500,
    });
    const node = r.repair.node!;
    console.info(`browser FEC: ${JSON.stringify(r.repair)}`);
    expect(node.fecRecovered).toBeGreaterThan(0);
    // Every number the viewer got was media: a FEC number passed on would stay missing for good.
    const viewer = (r.browser as { sessions: Record<string, Record<string, number>>[] })
      .sessions[0]!.receiver!;
    expect(viewer.framesDecoded).toBeGreaterThan(200);
    expect(r.repair.unrepairedPackets).toBeLessThanOrEqual(3);
  });

  it('measures camera to screen through the relays, and where the time goes', {
    timeout: 60_000,
  }, async () => {
    const profile = parseProfile(
      {
        name: 'browser-test',
        buyer: { up: { delay: '40ms' }, down: { delay: '40ms' } },
        staff: { up: { delay: '30ms' }, down: { delay: '30ms' } },
      },
      'test',
    );
    const r = await runBench({
      profile,
      sessions: 1,
      durationMs: 7000,
      warmupMs: 2000,
      node: { kind: 'in-process' },
      browser: true,
      bitrateKbps: 500,
    });
    const details = (r.browser as { sessions: Record<string, Record<string, unknown>>[] })
      .sessions[0]!;
    console.info(
      `browser: camera to screen p50 ${r.endToEnd?.p50.toFixed(0)} p95 ${r.endToEnd?.p95.toFixed(0)} ms over ${r.endToEnd?.count} frames; ` +
        `budget ${r.budget.map((b) => `${b.part} ${b.summary?.p50.toFixed(1)}`).join(', ')}; ${JSON.stringify(details.receiver)}`,
    );
    expect(r.settings.mode).toBe('browser');
    expect(r.endToEnd!.count).toBeGreaterThan(50);
    // 40 ms up + 30 ms down at least; encode, jitter buffer and render on top, well under the target
    expect(r.endToEnd!.min).toBeGreaterThanOrEqual(70);
    expect(r.endToEnd!.p50).toBeLessThan(400);
    const part = (name: string) => r.budget.find((b) => b.part === name)?.summary;
    expect(part('uplink')!.p50).toBeGreaterThanOrEqual(40);
    expect(part('node')!.p50).toBeLessThan(30);
    // node → staff page crosses two processes' clocks (Node's and Chromium's, each read to well
    // under a millisecond): allow 1 ms for that, not for the relay, whose delay is a floor
    expect(part('downlink')!.p50).toBeGreaterThanOrEqual(29);
    expect(part('decodeRender')!.p50).toBeGreaterThan(0);
    expect(r.verdict.allowanceMs).toBe(0);
    expect(r.network['buyer.up'].kinds.rtp!).toBeGreaterThan(100);
    expect(r.network['staff.down'].kinds.rtp!).toBeGreaterThan(100);
    expect((details.receiver as Record<string, number>).framesDecoded).toBeGreaterThan(50);
    expect(typeof (details.sender as Record<string, unknown>).qualityLimitationReason).toBe(
      'string',
    );
  });
});
