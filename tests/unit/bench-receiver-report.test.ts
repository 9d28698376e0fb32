import { describe, expect, it } from 'vitest';
import { RtcpPacketConverter, type RtcpRrPacket } from 'werift';
import { buildReceiverReport, ReceptionStats } from '../../src/bench/clients/rtp.ts';

/** The report block as werift (the node's RTCP stack) reads it. */
function readBack(buf: Buffer) {
  const [packet] = RtcpPacketConverter.deSerialize(buf);
  expect(packet?.type).toBe(201);
  const rr = packet as RtcpRrPacket;
  expect(rr.reports).toHaveLength(1);
  return { sender: rr.ssrc, ...rr.reports[0]! };
}

describe('receiver reports of the synthetic subscriber', () => {
  it('counts what arrived of each interval, with repairs as received and duplicates once', () => {
    const stats = new ReceptionStats();
    expect(stats.report()).toBeUndefined();
    // 100 packets; 10 lost on the way (every tenth).
    for (let seq = 65_500; seq < 65_600; seq++) if (seq % 10 !== 3) stats.received(seq);
    const first = stats.report()!;
    // 100 expected across the 16-bit wrap: extended highest is one lap plus 63.
    expect(first.extendedHighest).toBe(65_536 + 63);
    expect(first.cumulativeLost).toBe(10);
    expect(first.fractionLost).toBe(Math.floor((10 * 256) / 100));
    // Next interval: 50 new packets all arrive, four of the earlier ten are repaired, and two
    // packets arrive twice.
    for (let seq = 65_600; seq < 65_650; seq++) stats.received(seq);
    for (const seq of [65_503, 65_513, 65_523, 65_533]) stats.received(seq);
    stats.received(65_600);
    stats.received(65_601);
    const second = stats.report()!;
    expect(second.cumulativeLost).toBe(6);
    // More arrived this interval than was expected in it: no loss, not a negative one.
    expect(second.fractionLost).toBe(0);
    expect(second.extendedHighest).toBe(65_536 + 113);
  });

  it('forgets a number from the previous lap of the sequence space', () => {
    const stats = new ReceptionStats();
    // Two full laps of in-order packets: each number is new again on the second lap.
    for (let i = 0; i < 2 * 65_536; i++) stats.received(i & 0xffff);
    const report = stats.report()!;
    expect(report.cumulativeLost).toBe(0);
    expect(report.extendedHighest).toBe(2 * 65_536 - 1);
  });

  it('writes a report werift reads back field for field', () => {
    const buf = buildReceiverReport(0x1234_5678, {
      ssrc: 0xdead_beef,
      fractionLost: 25,
      cumulativeLost: 1_234,
      extendedHighest: 0x0001_00ff,
      jitter: 42,
      lastSr: 0xabcd_ef01,
      delaySinceLastSr: 65_536 / 2,
    });
    expect(readBack(buf)).toMatchObject({
      sender: 0x1234_5678,
      ssrc: 0xdead_beef,
      fractionLost: 25,
      packetsLost: 1_234,
      highestSequence: 0x0001_00ff,
      jitter: 42,
      lsr: 0xabcd_ef01,
      dlsr: 32_768,
    });
  });
});
