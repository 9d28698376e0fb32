import { describe, expect, it } from 'vitest';
import {
  heapBasis,
  rssGrowthParts,
  rssPartsText,
  type SoakSample,
  soakGrowth,
} from '../../src/bench/soak.ts';

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

/** Samples with the node's full collections: `gc[i]` is [collections so far, heap after the last]. */
const withGc = (heap: number[], gc: [number, number][]): SoakSample[] =>
  series(
    heap.map(() => 160),
    heap,
    heap.map(() => 40),
  ).map((s, i) => ({ ...s, fullCollections: gc[i]![0], heapAfterFullGcBytes: gc[i]![1] * MB }));

/** What `withGc` samples give for everything but the heap: nothing grows. */
const STEADY = {
  rss: { from: 160 * MB, to: 160 * MB, pass: true },
  fds: { from: 40, to: 40, pass: true },
  handles: { from: 30, to: 30, pass: true },
};

/** One full collection per sample, with the heap after it (MB). */
const onePerSample = (after: number[]): [number, number][] => after.map((h, i) => [i + 1, h]);

/** `withGc` samples that also carry the live heap the soak read after its own collection. */
const withLive = (live: (number | undefined)[], heap: number[], gc: [number, number][]) =>
  withGc(heap, gc).map((s, i) =>
    live[i] === undefined ? s : { ...s, heapLiveBytes: live[i]! * MB },
  );

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
  {
    name: 'the heap is judged on what survives full collections, not on when samples were taken',
    // in use: lows drift from 30 to 36 (+20 %) as collections come less often; after each
    // collection it is flat
    samples: withGc(
      [30, 38, 31, 40, 33, 41, 35, 44, 36, 45],
      [
        [3, 29],
        [4, 30],
        [4, 30],
        [5, 31],
        [5, 31],
        [6, 30],
        [6, 30],
        [7, 31],
        [8, 30],
        [8, 30],
      ],
    ),
    settled: 0,
    expect: { ...STEADY, heap: { from: 30.5 * MB, to: 30.5 * MB, pass: true } },
  },
  {
    name: 'what survives full collections climbing is growth, however the samples fall',
    samples: withGc(
      [40, 31, 40, 31, 40, 31, 40, 31],
      onePerSample([20, 30, 31, 33, 35, 37, 39, 41]),
    ),
    settled: 1,
    // collections after the settled sample: 31, 33, 35, 37, 39, 41 (the one before is warm-up)
    expect: { ...STEADY, heap: { from: 33 * MB, to: 39 * MB, pass: false } },
  },
  {
    name: 'one full collection after settling is too few: the lows of the heap in use decide',
    samples: withGc(
      [30, 40, 31, 41, 30],
      [
        [2, 50],
        [2, 50],
        [2, 50],
        [3, 60],
        [3, 60],
      ],
    ),
    settled: 0,
    expect: { ...STEADY, heap: { from: 30 * MB, to: 30 * MB, pass: true } },
  },
  {
    // heap in use saw-tooths ever higher and the node's own collections keep more each time
    // (with V8 left to its pace), but what is live right after the soak's collections is flat
    name: 'the live heap read after the soak asked for a collection decides over the others',
    samples: withLive(
      [20, 28, 28.2, 28.1, 28.3, 28.2, 28.4],
      [30, 40, 45, 50, 55, 60, 65],
      onePerSample([25, 28, 30, 33, 36, 38, 40]),
    ),
    settled: 1,
    expect: { ...STEADY, heap: { from: 28.1 * MB, to: 28.3 * MB, pass: true } },
  },
  {
    name: 'a live heap that climbs is growth, whatever the heap in use does',
    samples: withLive(
      [28, 29, 30, 31, 32, 33, 34],
      [40, 40, 40, 40, 40, 40, 40],
      onePerSample([28, 29, 30, 31, 32, 33, 34]),
    ),
    settled: 0,
    expect: { ...STEADY, heap: { from: 29 * MB, to: 33 * MB, pass: false } },
  },
  {
    name: 'one live reading after settling is too few: the full collections decide',
    samples: withLive(
      [undefined, undefined, undefined, 50],
      [30, 40, 31, 41],
      onePerSample([30, 30, 30, 30]),
    ),
    settled: 0,
    expect: { ...STEADY, heap: { from: 30 * MB, to: 30 * MB, pass: true } },
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

describe("the heap figure a soak's verdict rests on", () => {
  const gc: [number, number][] = onePerSample([30, 30, 30]);
  it('the live heap when two settled samples have it', () => {
    expect(heapBasis(withLive([29, 29, 29], [30, 40, 35], gc))).toBe('live');
  });
  it("else the node's own full collections after the first settled sample", () => {
    expect(heapBasis(withLive([29], [30, 40, 35], gc))).toBe('after-gc');
  });
  it('else the heap in use, or nothing', () => {
    const rare = withGc(
      [30, 40, 35],
      [
        [1, 30],
        [1, 30],
        [2, 30],
      ],
    );
    expect(heapBasis(rare)).toBe('in-use');
    expect(heapBasis(rare.map(({ heapUsedBytes: _, ...s }) => s))).toBe('none');
  });
});

describe('where the RSS growth went', () => {
  /** Samples of [rss, file-backed, V8 heap reserved, ArrayBuffers] in MB; anonymous is the rest. */
  const parts = (rows: [number, number, number, number][]): SoakSample[] =>
    rows.map(([rss, file, heap, ext], i) => ({
      t: i * 10,
      rssBytes: rss * MB,
      rssFileBytes: file * MB,
      rssAnonBytes: (rss - file) * MB,
      heapTotalBytes: heap * MB,
      externalBytes: ext * MB,
      liveSessions: 4,
    }));

  it('splits it into file-backed, V8 heap, ArrayBuffers and the other native memory', () => {
    const samples = parts([
      [200, 10, 10, 10], // before settling: not counted
      [100, 40, 30, 10],
      [101, 40, 31, 10],
      [100, 40, 30, 10],
      [111, 41, 32, 12],
      [112, 41, 33, 12],
      [112, 41, 32, 13],
    ]);
    const p = rssGrowthParts(samples, 1)!;
    const inMb = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v / MB]));
    // medians of the first three and last three settled samples
    expect(inMb).toEqual({ rss: 12, file: 1, anon: 11, v8Heap: 2, external: 2, otherNative: 7 });
    expect(rssPartsText(p)).toBe(
      'rss growth +12.0 MB: file-backed +1.0 MB, anonymous +11.0 MB (V8 heap reserved +2.0 MB, ArrayBuffers and Buffers +2.0 MB, other native +7.0 MB)',
    );
  });

  it('says nothing when the node or /proc did not give every part', () => {
    const samples = parts([
      [100, 40, 30, 10],
      [110, 40, 30, 10],
    ]);
    expect(rssGrowthParts(samples, 0)).toBeDefined();
    expect(rssGrowthParts(samples, 1)).toBeUndefined();
    // a few KB either way is no growth, not "-0.0"
    expect(
      rssPartsText({
        rss: 1.5 * MB,
        file: -2048,
        anon: 1.5 * MB,
        v8Heap: -0.07 * MB,
        external: 0,
        otherNative: 1.55 * MB,
      }),
    ).toBe(
      'rss growth +1.5 MB: file-backed +0.0 MB, anonymous +1.5 MB (V8 heap reserved -0.1 MB, ArrayBuffers and Buffers +0.0 MB, other native +1.6 MB)',
    );
    const noExternal = samples.map(({ externalBytes: _, ...s }) => s);
    expect(rssGrowthParts(noExternal, 0)).toBeUndefined();
  });

  it('splits the other native growth into what the allocator holds in use and keeps freed', () => {
    const samples = parts([
      [100, 40, 30, 10],
      [100, 40, 30, 10],
      [106, 40, 31, 11],
      [106, 40, 31, 11],
    ]).map((s, i) => ({
      ...s,
      mallocFreeBytes: (i < 2 ? 3 : 5) * MB,
      // ArrayBuffers come from the allocator too: +1 of its +2 in use
      mallocInUseBytes: (i < 2 ? 20 : 22) * MB,
    }));
    const p = rssGrowthParts(samples, 0)!;
    expect(p.otherNative / MB).toBe(4);
    expect(p.allocatorFree! / MB).toBe(2);
    expect(p.allocatorInUse! / MB).toBe(1);
    expect(rssPartsText(p)).toBe(
      'rss growth +6.0 MB: file-backed +0.0 MB, anonymous +6.0 MB (V8 heap reserved +1.0 MB, ArrayBuffers and Buffers +1.0 MB, other native +4.0 MB: allocated and held +1.0 MB, freed and kept by the allocator +2.0 MB)',
    );
    // one sample without the figures: those parts are left out, the rest stands
    const oneMissing = samples.map((s, i) =>
      i === 3 ? { ...s, mallocFreeBytes: undefined, mallocInUseBytes: undefined } : s,
    );
    const without = rssGrowthParts(oneMissing, 0)!;
    expect(without.allocatorFree).toBeUndefined();
    expect(without.allocatorInUse).toBeUndefined();
    expect(without.otherNative / MB).toBe(4);
    expect(rssPartsText(without)).toContain('other native +4.0 MB)');
  });
});
