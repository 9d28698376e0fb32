import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BenchStore, type NewBenchRow } from '../../src/bench/BenchStore.ts';
import { UserError } from '../../src/core/errors.ts';
import { Store } from '../../src/node/store/Store.ts';

const dir = mkdtempSync(join(tmpdir(), 'returncam-benchstore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function row(id: string, startedAt: number, profile: string, pass: boolean | null): NewBenchRow {
  return {
    id,
    kind: pass === null ? 'probe' : 'run',
    startedAt,
    profile,
    mode: 'synthetic',
    sessions: 1,
    durationMs: 10_000,
    p50Ms: 100,
    p95Ms: 200,
    p99Ms: 300,
    targetMs: pass === null ? null : 600,
    pass,
    result: { version: 1, id, profile },
  };
}

describe('bench results in the data directory database', () => {
  it('keeps results beside the node tables (migration 0004), lists newest first, finds by prefix', () => {
    const store = BenchStore.open(dir);
    store.save(row('20260101T000000-aaaaaa', 1000, 'lan', true));
    store.save(row('20260101T000100-bbbbbb', 2000, '3g-cross-border', false));
    store.save(row('20260101T000200-cccccc', 3000, 'direct', null));
    expect(store.list().map((r) => [r.id, r.kind, r.pass])).toEqual([
      ['20260101T000200-cccccc', 'probe', null],
      ['20260101T000100-bbbbbb', 'run', false],
      ['20260101T000000-aaaaaa', 'run', true],
    ]);
    expect(store.list({ profile: 'lan' }).map((r) => r.id)).toEqual(['20260101T000000-aaaaaa']);
    expect(store.list({ kind: 'run', limit: 1 }).map((r) => r.id)).toEqual([
      '20260101T000100-bbbbbb',
    ]);
    expect(store.get('20260101T000100')?.result).toEqual({
      version: 1,
      id: '20260101T000100-bbbbbb',
      profile: '3g-cross-border',
    });
    expect(store.get('nothing')).toBeUndefined();
    expect(() => store.get('20260101T')).toThrow(UserError);
    expect(() => store.save(row('20260101T000000-aaaaaa', 1, 'lan', true))).toThrow(/UNIQUE/);
    store.close();
    store.close();
    expect(() => store.list()).toThrow(/used after close/);
    // the node's own store opens the same database at the same schema version
    const node = new Store(join(dir, 'returncam.db'));
    expect(node.schemaVersion).toBeGreaterThanOrEqual(4);
    node.closeDb();
  });
});
