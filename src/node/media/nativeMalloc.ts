/**
 * What the C allocator holds, through the native addon (`native/malloc_stats.c`), for `/metrics`
 * and the soak: memory allocated and not freed, and memory freed and kept in the allocator's
 * arenas. Outside V8's heap and ArrayBuffers, the node's anonymous RSS is mostly one or the
 * other; only the second grows when memory fragments.
 *
 * Optional, with the rest of the addon (`nativeAddon.ts`), and glibc 2.33 or later only:
 * elsewhere there are no figures.
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
  mallocStats(): MallocStats | undefined;
}

const { part, status } = nativePart<MallocAddon>(['mallocStats']);

export function nativeMallocStatus(): NativePartStatus {
  return status;
}

/** What the allocator holds now; undefined without the addon or glibc 2.33. */
export function mallocStats(): MallocStats | undefined {
  return part?.mallocStats();
}
