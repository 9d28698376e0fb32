/**
 * `bench packet`: both SRTP paths measured over real packets, in one process, and the text the
 * command prints. (How fast each is, is the benchmark's to print, not this test's to judge.)
 */
import { describe, expect, it } from 'vitest';
import { renderPacketText, runPacketBench } from '../../src/bench/packet.ts';
import { setNativeGcm } from '../../src/node/media/weriftHotPath.ts';

describe('bench packet', () => {
  it('times sealing and opening video- and audio-sized packets, a send and a receive, on both paths', async () => {
    const r = await runPacketBench({ packets: 300, passes: 2 });
    expect(r.native).toEqual({ loaded: true });
    expect(r.rows.map((row) => row.payloadBytes)).toEqual([1100, 120]);
    for (const row of r.rows) {
      for (const f of [row.javascript, row.native!]) {
        expect(f.sealUs).toBeGreaterThan(0);
        expect(f.openUs).toBeGreaterThan(0);
        expect(Number.isFinite(f.sealUs + f.openUs)).toBe(true);
      }
    }
    // the node is left on the native path
    expect(setNativeGcm(true)).toBe(true);
    const text = renderPacketText(r);
    expect(text).toContain('median of 2 passes of 300 packets');
    expect(text).toMatch(/^1100 B\s+[\d.]+\s+[\d.]+\s+[\d.]+×/m);
    expect(text).toMatch(/^120 B\s+[\d.]+\s+[\d.]+\s+[\d.]+×/m);
    expect(r.udp?.payloadBytes).toBe(1100);
    expect(r.udp?.dgramUs).toBeGreaterThan(0);
    expect(r.udp?.nativeUs).toBeGreaterThan(0);
    expect(text).toMatch(
      /^UDP send of one 1100-byte datagram to loopback, µs: dgram [\d.]+, native [\d.]+ \([\d.]+×\)$/m,
    );
    expect(r.udpRecv?.burst).toBe(32);
    expect(r.udpRecv?.dgramUs).toBeGreaterThan(0);
    expect(r.udpRecv?.nativeUs).toBeGreaterThan(0);
    expect(text).toMatch(
      /^UDP receive of one 1100-byte datagram \(bursts of 32\), µs: dgram [\d.]+, native [\d.]+ \([\d.]+×\)$/m,
    );
  });

  it('says why when only the JavaScript path can be measured', () => {
    const text = renderPacketText({
      version: 1,
      kind: 'packet',
      startedAt: '2026-11-28T00:00:00.000Z',
      node: 'v20',
      packets: 10,
      passes: 1,
      native: { loaded: false, reason: 'turned off by RETURNCAM_NATIVE=off' },
      rows: [{ payloadBytes: 1100, javascript: { sealUs: 9, openUs: 9.5 } }],
    });
    expect(text).toMatch(/^1100 B\s+9\.00\s+—\s+—\s+9\.50\s+—\s+—$/m);
    expect(text).toContain('native addon: turned off by RETURNCAM_NATIVE=off');
  });
});
