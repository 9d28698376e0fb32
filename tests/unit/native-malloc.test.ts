/**
 * The C allocator through the native addon (native/malloc_tune.c, src/node/media/nativeMalloc.ts):
 * its figures follow what is allocated, and a fixed mmap threshold keeps large blocks in mappings
 * of their own even after a larger block was freed, where glibc's own threshold would have risen
 * and carved them from its arenas. The threshold is process-wide, so that part runs in a child.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { NATIVE_ADDON_PATH } from '../../src/node/media/nativeAddon.ts';
import {
  mallocStats,
  nativeMallocStatus,
  setMallocMmapThreshold,
} from '../../src/node/media/nativeMalloc.ts';

const MiB = 1048576;

/**
 * In a fresh process: optionally fix the threshold at 128 KiB, free a 4 MiB block (glibc's own
 * threshold then rises to 4 MiB), then hold eight 256 KiB blocks; prints how much more of what is
 * in use sits in mappings of its own.
 */
async function mmappedByEightBlocks(fixThreshold: boolean): Promise<number> {
  const script = `
    const addon = require(${JSON.stringify(NATIVE_ADDON_PATH)});
    const settle = () => new Promise((r) => setTimeout(r, 50));
    (async () => {
      if (${fixThreshold} && !addon.setMmapThreshold(131072)) throw new Error('not set');
      let big = new Uint8Array(4 * 1048576).fill(1);
      big = undefined;
      for (let i = 0; i < 3; i++) { gc(); await settle(); }
      const before = addon.mallocStats().mmappedBytes;
      const held = Array.from({ length: 8 }, () => new Uint8Array(256 * 1024).fill(2));
      const after = addon.mallocStats().mmappedBytes;
      process.stdout.write(String(after - before) + ' ' + held.length);
    })();
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '-e', script]);
  const [grown, held] = stdout.split(' ').map(Number);
  expect(held).toBe(8);
  return grown!;
}

describe("the C allocator's threshold and figures", () => {
  it('is built and loaded (npm install builds it)', () => {
    expect(nativeMallocStatus()).toEqual({ loaded: true });
  });

  it('counts a block held from JavaScript as in use', () => {
    const before = mallocStats()!;
    const held = new Uint8Array(3 * MiB).fill(1);
    const after = mallocStats()!;
    expect(after.inUseBytes - before.inUseBytes).toBeGreaterThanOrEqual(3 * MiB);
    expect(after.mmappedBytes).toBeLessThanOrEqual(after.inUseBytes);
    expect(after.freeBytes).toBeGreaterThanOrEqual(0);
    expect(held[held.length - 1]).toBe(1);
  });

  it('keeps 256 KiB blocks in their own mappings once fixed at 128 KiB, where glibc would not', async () => {
    // eight blocks of 256 KiB: 2 MiB of mappings (each a page more for its header)
    expect(await mmappedByEightBlocks(true)).toBeGreaterThanOrEqual(2 * MiB);
    // glibc's own threshold rose past them when the 4 MiB block was freed
    expect(await mmappedByEightBlocks(false)).toBeLessThan(MiB);
  });

  it('refuses a threshold out of range, saying what it takes', () => {
    expect(() => setMallocMmapThreshold(100)).toThrow('bytes must be 4096 to 33554432');
  });
});
