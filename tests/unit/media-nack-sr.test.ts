import { afterEach, describe, expect, it, vi } from 'vitest';
import { ntpTime } from 'werift';
import { NackTracker } from '../../src/core/NackTracker.ts';
import {
  PUBLISHER_NACK_DEFAULTS,
  PublisherNack,
  retryIntervalMs,
  smoothRtt,
} from '../../src/node/media/PublisherNack.ts';
import { fixSenderReportClock, ntpFromPerformance } from '../../src/node/media/werift.ts';

const NTP_EPOCH_OFFSET_MS = 2_208_988_800_000;
const ntpToEpochMs = (ntp: bigint) =>
  Number(ntp >> 32n) * 1000 + (Number(ntp & 0xffffffffn) / 2 ** 32) * 1000 - NTP_EPOCH_OFFSET_MS;

describe('sender report clock', () => {
  it.each([
    ['a whole second', 1_700_000_000_000],
    ['half a second', 1_700_000_000_500],
    ['just before a second', 1_700_000_000_999.9],
    ['a sub-millisecond time', 1_700_000_000_123.456],
  ])('ntpFromPerformance: %s round-trips to the epoch time', (_name, epochMs) => {
    const ntp = ntpFromPerformance(epochMs - 1000, 1000);
    expect(Math.abs(ntpToEpochMs(ntp) - epochMs)).toBeLessThan(0.001);
  });

  it('encodes half a second as the fraction 2^31', () => {
    const ntp = ntpFromPerformance(500, 3000 - NTP_EPOCH_OFFSET_MS);
    expect(ntp >> 32n).toBe(3n);
    expect(ntp & 0xffffffffn).toBe(2n ** 31n);
  });

  it("werift's own ntpTime loses the fraction of the second (why the fix exists)", () => {
    // The digits after the decimal point end up as a tiny binary fraction: at most a few ms.
    const fractions: number[] = [];
    for (let i = 0; i < 50; i++) fractions.push(Number(ntpTime() & 0xffffffffn) / 2 ** 32);
    expect(Math.max(...fractions)).toBeLessThan(0.01);
  });

  it('fixSenderReportClock reports the instant sendRtp stored its timestamp, in NTP', () => {
    const sender = { ntpTimestamp: 0n } as unknown as Parameters<typeof fixSenderReportClock>[0];
    fixSenderReportClock(sender);
    fixSenderReportClock(sender);
    const view = sender as unknown as { ntpTimestamp: bigint };
    expect(view.ntpTimestamp).toBe(0n);
    const before = performance.timeOrigin + performance.now();
    view.ntpTimestamp = 123n; // what werift's sendRtp does, with its broken clock
    const after = performance.timeOrigin + performance.now();
    const reported = ntpToEpochMs(view.ntpTimestamp);
    expect(reported).toBeGreaterThanOrEqual(before - 0.01);
    expect(reported).toBeLessThanOrEqual(after + 0.01);
  });
});

describe('publisher NACK schedule', () => {
  const options = { retryMs: 100, reorderMs: 15, maxTries: 3, maxAgeMs: 1000 };

  // Packet 2 goes missing at t=0 (1 and 3 arrive); each row: when due() runs and what it says.
  it.each([
    [
      'waits out the reorder allowance',
      [
        [0, []],
        [10, []],
        [15, [2]],
      ],
    ],
    [
      'repairs inside the allowance send nothing',
      [
        [10, []],
        ['recv', 2],
        [20, []],
      ],
    ],
    [
      'repeats no sooner than retryMs',
      [
        [15, [2]],
        [40, []],
        [114, []],
        [115, [2]],
      ],
    ],
    [
      'stops after maxTries',
      [
        [15, [2]],
        [115, [2]],
        [215, [2]],
        [315, 'gaveUp'],
      ],
    ],
    [
      'gives up once older than maxAgeMs',
      [
        [15, [2]],
        [1001, 'gaveUp'],
      ],
    ],
  ] as const)('%s', (_name, steps) => {
    const tracker = new NackTracker(options);
    tracker.received(1, 0);
    tracker.received(3, 0);
    for (const step of steps) {
      if (step[0] === 'recv') {
        tracker.received(step[1] as number, 12);
        continue;
      }
      const [at, expected] = step as readonly [number, readonly number[] | 'gaveUp'];
      const result = tracker.due(at);
      if (expected === 'gaveUp') {
        expect(result).toEqual({ nack: [], gaveUp: 1 });
      } else {
        expect(result.nack, `at ${at} ms`).toEqual([...expected]);
      }
    }
  });

  it('nextDueAt follows the schedule', () => {
    const tracker = new NackTracker(options);
    expect(tracker.nextDueAt()).toBeUndefined();
    tracker.received(1, 0);
    tracker.received(3, 5);
    expect(tracker.nextDueAt()).toBe(20);
    tracker.due(20);
    expect(tracker.nextDueAt()).toBe(120);
    tracker.setRetryMs(300);
    expect(tracker.nextDueAt()).toBe(320);
  });

  it('a repair is a round-trip sample from the first NACK; a packet never NACKed gives none', () => {
    const tracker = new NackTracker(options);
    tracker.received(1, 0);
    tracker.received(4, 0);
    tracker.due(15);
    tracker.received(2, 75);
    expect(tracker.repairSampleMs).toBe(60);
    tracker.repairSampleMs = undefined;
    tracker.due(115);
    tracker.received(3, 130);
    expect(tracker.repairSampleMs).toBe(115);
    tracker.repairSampleMs = undefined;
    tracker.received(6, 140);
    tracker.received(5, 141);
    expect(tracker.repairSampleMs).toBeUndefined();
  });

  it.each([
    [undefined, 300, 300],
    [100, 300, 125],
    [100, 100, 100],
  ])('smoothRtt(%s, %s) = %s', (current, sample, expected) => {
    expect(smoothRtt(current, sample)).toBe(expected);
  });

  it.each([
    [1, PUBLISHER_NACK_DEFAULTS.minRetryMs],
    [100, 120],
    [300, 360],
    [2000, PUBLISHER_NACK_DEFAULTS.maxRetryMs],
  ])('retry interval for a %s ms round trip is %s ms', (rtt, expected) => {
    expect(retryIntervalMs(rtt)).toBe(expected);
  });
});

describe('PublisherNack on a 300 ms round trip', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('NACKs a lost packet once per round trip, not every 5 ms', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const sent: { at: number; lost: number[] }[] = [];
    const nack = new PublisherNack({ send: (lost) => sent.push({ at: performance.now(), lost }) });
    const t0 = performance.now();
    nack.received(1, t0);
    nack.received(3, t0); // 2 is lost; nobody repairs it
    vi.advanceTimersByTime(2000);
    const times = sent.map((s) => Math.round(s.at - t0));
    expect(sent.every((s) => s.lost.join() === '2')).toBe(true);
    // first after the reorder allowance, then one default round trip (100 ms x 1.2) apart
    expect(times).toEqual([15, 135, 255, 375]);

    // a repair 300 ms after the only NACK measures the round trip; repeats follow it
    const t1 = performance.now();
    nack.received(4, t1);
    nack.received(6, t1); // 5 missing
    vi.advanceTimersByTime(315);
    nack.received(5, performance.now());
    expect(nack.roundTripMs).toBe(300);
    sent.length = 0;
    const t2 = performance.now();
    nack.received(8, t2); // 7 missing, never repaired
    vi.advanceTimersByTime(2000);
    nack.close();
    expect(sent.map((s) => Math.round(s.at - t2))).toEqual([15, 375, 735]);
    expect(nack.lost).toBe(2);
  });
});
