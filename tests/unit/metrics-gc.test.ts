import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createMediaCounters } from '../../src/node/media/types.ts';
import { createMetrics } from '../../src/node/metrics.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function value(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not in /metrics`);
  return Number(m[1]);
}

/** The node's /metrics registry with no rooms or clients. */
const idleMetrics = () =>
  createMetrics({
    counters: createMediaCounters,
    rooms: () => ({ rooms: 0, publishers: 0, subscribers: 0 }),
    sseClients: () => 0,
  });

describe('/metrics: the heap after full collections', () => {
  it('counts full collections and reports what survived the last one', async () => {
    const registry = idleMetrics();
    const before = value(await registry.metrics(), 'nodejs_gc_full_collections_total');
    // ~40 MB kept across the collection, then dropped before the next
    let kept: number[][] | undefined = Array.from({ length: 40 }, () =>
      new Array(131_072).fill(1.5),
    );
    gc();
    await new Promise((r) => setTimeout(r, 50)); // the observer's entries come after it
    let text = await registry.metrics();
    expect(value(text, 'nodejs_gc_full_collections_total')).toBeGreaterThan(before);
    const holding = value(text, 'nodejs_heap_after_full_gc_bytes');
    expect(kept.length).toBe(40);
    kept = undefined;
    // garbage made after a collection does not count until the next one
    let garbage: number[][] | undefined = Array.from({ length: 40 }, () =>
      new Array(131_072).fill(2.5),
    );
    text = await registry.metrics();
    expect(value(text, 'nodejs_heap_after_full_gc_bytes')).toBe(holding);
    garbage = undefined;
    expect(garbage).toBeUndefined();
    gc();
    await new Promise((r) => setTimeout(r, 50));
    text = await registry.metrics();
    const released = value(text, 'nodejs_heap_after_full_gc_bytes');
    // 40 × 1 MB (doubles) fewer
    expect(holding - released).toBeGreaterThan(30 * 1048576);
    expect(released).toBeGreaterThan(1048576);
  });
});

describe('/metrics: where memory is held', () => {
  it('counts ArrayBuffers outside the heap, what the C allocator holds, and the heap reserved beyond what it uses', async () => {
    const registry = idleMetrics();
    const first = await registry.metrics();
    const before = value(first, 'nodejs_external_memory_bytes');
    const mallocBefore = value(first, 'returncam_malloc_in_use_bytes');
    const held = new ArrayBuffer(32 * 1048576);
    new Uint8Array(held).fill(7);
    const text = await registry.metrics();
    // Other buffers of this process may be freed between the two scrapes (a collection can run
    // in between): the 32 MiB must show, less what little else went.
    const shown = 31 * 1048576;
    expect(value(text, 'nodejs_external_memory_bytes') - before).toBeGreaterThanOrEqual(shown);
    // the C allocator gave it (the addon's figures), and says what it keeps after frees
    expect(value(text, 'returncam_malloc_in_use_bytes') - mallocBefore).toBeGreaterThanOrEqual(
      shown,
    );
    expect(value(text, 'returncam_malloc_free_bytes')).toBeGreaterThanOrEqual(0);
    expect(held.byteLength).toBe(32 * 1048576);
    expect(value(text, 'nodejs_heap_size_total_bytes')).toBeGreaterThanOrEqual(
      value(text, 'nodejs_heap_size_used_bytes'),
    );
  });
});
