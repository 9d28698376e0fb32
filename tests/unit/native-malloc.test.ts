/**
 * What the C allocator holds, through the native addon (native/malloc_stats.c,
 * src/node/media/nativeMalloc.ts): a block held from JavaScript counts as in use, a large one in
 * a mapping of its own, and a freed small one as room the allocator keeps.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { mallocStats, nativeMallocStatus } from '../../src/node/media/nativeMalloc.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 1048576;

describe('what the C allocator holds', () => {
  it('is built and loaded (npm install builds it)', () => {
    expect(nativeMallocStatus()).toEqual({ loaded: true });
  });

  it('counts a large block held from JavaScript as in use, in a mapping of its own', () => {
    const before = mallocStats()!;
    const held = new Uint8Array(8 * MiB).fill(1);
    const after = mallocStats()!;
    expect(after.inUseBytes - before.inUseBytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(after.mmappedBytes - before.mmappedBytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(after.mmappedBytes).toBeLessThanOrEqual(after.inUseBytes);
    expect(held[held.length - 1]).toBe(1);
  });

  it('counts small blocks freed as room the allocator keeps, no longer in use', async () => {
    // 2 000 blocks of 1 KiB, well under the mmap threshold: carved from the arenas
    let held: Uint8Array[] | undefined = Array.from({ length: 2000 }, () =>
      new Uint8Array(1024).fill(3),
    );
    const holding = mallocStats()!;
    expect(held.length).toBe(2000);
    held = undefined;
    // V8 frees ArrayBuffer memory after a full collection, on a helper thread
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    const freed = mallocStats()!;
    expect(holding.inUseBytes - freed.inUseBytes).toBeGreaterThanOrEqual(1.5 * MiB);
    expect(freed.freeBytes).toBeGreaterThan(holding.freeBytes);
  });
});
