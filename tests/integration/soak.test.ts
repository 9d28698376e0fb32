import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { SoakResult } from '../../src/bench/soak.ts';
import { BIN } from '../helpers/cli.ts';

describe('bench soak (CLI, a node process, calls coming and going)', () => {
  it('samples the node every 2 s for 20 s while calls are replaced, and gives a verdict', async () => {
    const r = await execa(
      BIN,
      [
        'bench',
        'soak',
        '--duration',
        '20s',
        '--sessions',
        '2',
        '--churn',
        '3s',
        '--sample',
        '2s',
        '--settle',
        '6s',
        '--json',
      ],
      { reject: false, env: { CI: '1' }, timeout: 90_000 },
    );
    // growth over a 20 s run says little about leaks; the verdict must still be there and
    // match the exit code
    expect([0, 3], r.stderr).toContain(r.exitCode);
    const s = JSON.parse(r.stdout) as SoakResult;
    expect(s.version).toBe(1);
    expect(s.kind).toBe('soak');
    expect(r.exitCode).toBe(s.pass ? 0 : 3);
    // calls really came and went, and carried media
    expect(s.callsEnded).toBeGreaterThanOrEqual(5);
    expect(s.callsStarted).toBe(s.callsEnded);
    expect(s.callsFailed).toBe(0);
    expect(s.callsWithoutMedia).toBe(0);
    expect(s.framesReceived).toBeGreaterThan(s.framesSent * 0.9);
    // about one sample every 2 s, each with what /proc and /metrics say
    expect(s.samples.length).toBeGreaterThanOrEqual(8);
    for (const x of s.samples) {
      expect(x.rssBytes).toBeGreaterThan(20 * 1048576);
      expect(x.heapUsedBytes).toBeGreaterThan(1048576);
      expect(x.fds).toBeGreaterThan(5);
      expect(x.activeResources).toBeGreaterThan(0);
      expect(x.fullCollections).toBeGreaterThanOrEqual(0);
      expect(x.heapAfterFullGcBytes).toBeGreaterThanOrEqual(0);
      // the parts of RSS: what /proc splits it into, and the heap and buffers the node reports
      expect(x.rssAnonBytes! + x.rssFileBytes!).toBeLessThanOrEqual(x.rssBytes);
      expect(x.rssFileBytes).toBeGreaterThan(4 * 1048576);
      expect(x.heapTotalBytes).toBeGreaterThanOrEqual(x.heapUsedBytes!);
      expect(x.heapTotalBytes).toBeLessThan(x.rssAnonBytes!);
      expect(x.externalBytes).toBeGreaterThan(0);
      // what the C allocator keeps after frees (the node's addon, on glibc)
      expect(x.mallocFreeBytes).toBeGreaterThan(0);
      expect(x.mallocFreeBytes).toBeLessThan(x.rssAnonBytes!);
      // and what it has given out, ArrayBuffers included
      expect(x.mallocInUseBytes).toBeGreaterThanOrEqual(x.externalBytes!);
      expect(x.mallocInUseBytes).toBeLessThan(x.rssAnonBytes!);
    }
    // and the result says where the RSS growth went
    expect(Object.keys(s.rssParts!).sort()).toEqual(
      [
        'allocatorFree',
        'allocatorInUse',
        'anon',
        'external',
        'file',
        'otherNative',
        'rss',
        'v8Heap',
      ].sort(),
    );
    for (const v of Object.values(s.rssParts!)) expect(Number.isFinite(v)).toBe(true);
    // before each sample's live reading the node really ran a full collection: its own count of
    // them rises by at least one from each sample to the next, and what is live is a real heap
    // below the in-use figure around it
    const counts = s.samples.map((x) => x.fullCollections!);
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThan(counts[i - 1]!);
    for (const x of s.samples) {
      expect(x.heapLiveBytes).toBeGreaterThan(4 * 1048576);
      expect(x.heapLiveBytes).toBeLessThan(2 * x.heapUsedBytes!);
    }
    expect(s.notes).toContain(
      'heap: what is live, right after a full collection asked for at each sample',
    );
    for (const x of s.samples.filter((x) => x.fullCollections! > 0)) {
      expect(x.heapAfterFullGcBytes).toBeGreaterThan(1048576);
    }
    // both calls were connected at the node while sampled (one publisher + one viewer each)
    expect(s.samples.some((x) => x.peers === 4)).toBe(true);
    expect(s.samples[s.settledIndex]!.t).toBeGreaterThanOrEqual(6);
    expect(s.growth.map((g) => g.metric).sort()).toEqual(['fds', 'handles', 'heap', 'rss']);
    for (const g of s.growth) expect(g.pass).toBe(g.growth <= s.growthLimit);
  }, 100_000);

  it('refuses a run too short to have settled samples', async () => {
    const r = await execa(BIN, ['bench', 'soak', '--duration', '5s', '--settle', '4s'], {
      reject: false,
      env: { CI: '1' },
      timeout: 30_000,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('leaves fewer than two samples after the 4000 ms warm-up');
  });
});
