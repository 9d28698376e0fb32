import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { verifyChain } from '../../src/node/store/eventChain.ts';
import { loadMigrations, PAGE_CACHE_KIB, Store } from '../../src/node/store/Store.ts';
import { testDir } from '../helpers/tmp.ts';

const dbFile = () => join(testDir('returncam-store-'), 'returncam.db');

function withCase(store: Store, id = 'c_1'): void {
  store.insertCase({
    id,
    orderId: 'O-1',
    sku: 'S-1',
    marketplace: null,
    warehouseId: null,
    reason: 'damaged',
    note: null,
    createdAt: 1,
  });
}

describe('store', () => {
  it('applies every numbered migration once and records the version', () => {
    const file = dbFile();
    const store = new Store(file);
    expect(store.schemaVersion).toBe(loadMigrations().length);
    store.closeDb();
    // opening again applies nothing twice (a second CREATE TABLE would throw)
    const again = new Store(file);
    expect(again.schemaVersion).toBe(loadMigrations().length);
    again.closeDb();
  });

  it("bounds SQLite's page cache below SQLite's own default", () => {
    const store = new Store(dbFile());
    // negative: KiB rather than pages; SQLite's default is -2000
    expect(store.db.pragma('cache_size', { simple: true })).toBe(-PAGE_CACHE_KIB);
    expect(PAGE_CACHE_KIB).toBeLessThan(2000);
    store.closeDb();
  });

  it('uses WAL and enforces foreign keys', () => {
    const store = new Store(dbFile());
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(() =>
      store.insertLink({
        id: 'l_1',
        caseId: 'c_missing',
        role: 'buyer',
        createdAt: 1,
        expiresAt: 2,
      }),
    ).toThrow(/FOREIGN KEY/);
    store.closeDb();
  });

  it('refuses a database newer than the code, leaving it untouched', () => {
    const file = dbFile();
    new Store(file).closeDb();
    const raw = new Database(file);
    raw.pragma('user_version = 999');
    raw.close();
    expect(() => new Store(file)).toThrow(UserError);
    expect(() => new Store(file)).toThrow('schema version 999 is newer');
    const check = new Database(file);
    expect(check.pragma('user_version', { simple: true })).toBe(999);
    check.close();
  });

  it('keeps the event log append-only and chained', () => {
    const store = new Store(dbFile());
    withCase(store);
    for (let i = 0; i < 3; i++)
      store.appendEvent({ caseId: 'c_1', type: 'x', actor: 'admin', data: { i } });
    const events = store.events('c_1');
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(verifyChain(events)).toEqual([]);
    expect(() => store.db.prepare("UPDATE events SET data = '{}' WHERE seq = 2").run()).toThrow(
      'events are append-only',
    );
    expect(() => store.db.prepare('DELETE FROM events').run()).toThrow('events are append-only');
    expect(store.events('c_1', 1).map((e) => e.seq)).toEqual([2, 3]);
    store.closeDb();
  });

  it('rolls back a whole transaction when any part fails', () => {
    const store = new Store(dbFile());
    withCase(store);
    expect(() =>
      store.tx(() => {
        store.appendEvent({ caseId: 'c_1', type: 'first', actor: 'admin' });
        store.setStatus('c_1', 'bogus' as never);
      }),
    ).toThrow(/CHECK constraint/);
    expect(store.events('c_1')).toEqual([]);
    expect(store.getCase('c_1')?.status).toBe('open');
    store.closeDb();
  });

  it('closeDb is idempotent', () => {
    const store = new Store(dbFile());
    store.closeDb();
    expect(() => store.closeDb()).not.toThrow();
  });
});
