/**
 * The C allocator through the native addon (`native/malloc_tune.c`): its large-allocation
 * threshold, set once at start, and what it holds, for `/metrics`.
 *
 * glibc raises its mmap threshold to the size of every large block freed, so after the recorder
 * freed its 1 MiB read windows the node's 256 KiB receive slabs and 128 KiB retransmit rings were
 * carved from the allocator's arenas, which keep freed room resident. A fixed threshold keeps them
 * in mappings of their own, returned to the kernel when freed (docs/performance.md, "Thirteenth
 * round").
 *
 * Optional, with the rest of the addon (`nativeAddon.ts`), and glibc only: elsewhere nothing is set
 * and no figures are read.
 */
import { type NativePartStatus, nativePart } from './nativeAddon.ts';

/** What the allocator holds (glibc's `mallinfo2`). */
export interface MallocStats {
  /** Allocated and not freed: from the arenas and in mappings of their own. */
  inUseBytes: number;
  /** Freed and kept by the arenas for later requests (resident once touched). */
  freeBytes: number;
  /** The part of `inUseBytes` in mappings of their own. */
  mmappedBytes: number;
}

interface MallocAddon {
  setMmapThreshold(bytes: number): boolean;
  mallocStats(): MallocStats | undefined;
}

const { part, status } = nativePart<MallocAddon>(['setMmapThreshold', 'mallocStats']);

export function nativeMallocStatus(): NativePartStatus {
  return status;
}

/**
 * Fixes the allocator's mmap threshold at `bytes` (4 KiB to 32 MiB), process-wide. False when it
 * could not be set: no addon, or a C library other than glibc.
 */
export function setMallocMmapThreshold(bytes: number): boolean {
  return part?.setMmapThreshold(bytes) ?? false;
}

/** What the allocator holds now; undefined without the addon or glibc 2.33. */
export function mallocStats(): MallocStats | undefined {
  return part?.mallocStats();
}
