import { describe, expect, it } from 'vitest';
import { type SoakSample, soakGrowth } from '../../src/bench/soak.ts';

const MB = 1048576;
const series = (rss: number[], heap: number[], fds: number[]): SoakSample[] =>
  rss.map((r, i) => ({
    t: i * 10,
    rssBytes: r * MB,
    heapUsedBytes: heap[i]! * MB,
    fds: fds[i],
    activeResources: 30,
    liveSessions: 4,
  }));

const cases: {
  name: string;
  samples: SoakSample[];
  settled: number;
  expect: Record<string, { from: number; to: number; pass: boolean }>;
}[] = [
  {
    name: 'a steady climb after warm-up is growth (warm-up sample ignored)',
    samples: series(
      [100, 150, 160, 165, 170, 175, 180, 185, 190],
      [10, 30, 31, 32, 33, 34, 35, 36, 37],
      [20, 40, 41, 44, 47, 50, 53, 56, 59],
    ),
    settled: 1,
    expect: {
      rss: { from: 160 * MB, to: 185 * MB, pass: false },
      heap: { from: 30 * MB, to: 35 * MB, pass: false },
      fds: { from: 41, to: 56, pass: false },
      handles: { from: 30, to: 30, pass: true },
    },
  },
  {
    name: 'a GC saw-tooth and RSS noise are not growth',
    samples: series(
      [160, 162, 161, 163, 160, 162, 161, 162],
      [30, 40, 31, 39, 30, 41, 30, 38],
      [44, 43, 44, 44, 43, 44, 44, 43],
    ),
    settled: 0,
    expect: {
      rss: { from: 161 * MB, to: 162 * MB, pass: true },
      heap: { from: 30 * MB, to: 30 * MB, pass: true },
      fds: { from: 44, to: 44, pass: true },
      handles: { from: 30, to: 30, pass: true },
    },
  },
  {
    name: 'two settled samples: first against last',
    samples: series([150, 170, 200], [30, 31, 40], [40, 40, 40]),
    settled: 1,
    expect: {
      rss: { from: 170 * MB, to: 200 * MB, pass: false },
      heap: { from: 31 * MB, to: 40 * MB, pass: false },
      fds: { from: 40, to: 40, pass: true },
      handles: { from: 30, to: 30, pass: true },
    },
  },
];

describe('soak growth from the settled samples to the end (limit 10 %)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const got = Object.fromEntries(
        soakGrowth(c.samples, c.settled, 0.1).map((g) => [
          g.metric,
          { from: g.from, to: g.to, pass: g.pass },
        ]),
      );
      expect(got).toEqual(c.expect);
    });
  }
});
