import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingLibrary } from '../../src/node/recording/RecordingLibrary.ts';
import { verifyChain } from '../../src/node/store/eventChain.ts';
import { Store } from '../../src/node/store/Store.ts';
import { sourceClip } from '../helpers/recordingMedia.ts';

const DAY = 86_400_000;

let dir: string;
let store: Store;
let library: RecordingLibrary;
let clip: string;

beforeEach(async () => {
  clip = await sourceClip('vp8-320', 3);
  dir = mkdtempSync(join(tmpdir(), 'returncam-lib-'));
  store = new Store(join(dir, 'returncam.db'));
  library = new RecordingLibrary({ store, dataDir: dir, retentionDays: 180 });
});
afterEach(() => {
  store.closeDb();
  rmSync(dir, { recursive: true, force: true });
});

/** A case with one finished recording and one snapshot; closed `closedDaysAgo` days ago if given. */
async function caseWithMedia(id: string, closedDaysAgo?: number): Promise<string> {
  store.insertCase({
    id,
    orderId: `o-${id}`,
    sku: 's',
    marketplace: null,
    warehouseId: null,
    reason: 'damaged',
    note: null,
    createdAt: Date.now() - 400 * DAY,
  });
  mkdirSync(join(dir, 'recordings', id), { recursive: true });
  const rel = join('recordings', id, `r-${id}.webm`);
  copyFileSync(clip, join(dir, rel));
  store.insertRecording({
    id: `r-${id}`,
    caseId: id,
    sessionId: 's',
    role: 'buyer',
    path: rel,
    container: 'webm',
    tracks: [],
    startedAt: Date.now() - 300 * DAY,
  });
  await library.finish(`r-${id}`, { path: join(dir, rel), startedAt: 0, tracks: [], bytes: 0 });
  mkdirSync(join(dir, 'snapshots', id), { recursive: true });
  writeFileSync(join(dir, 'snapshots', id, 'snap.jpg'), Buffer.from([0xff, 0xd8, 0xff]));
  store.insertSnapshot({
    id: `s-${id}`,
    caseId: id,
    at: Date.now(),
    takenBy: 'staff:l',
    mime: 'image/jpeg',
    bytes: 3,
    width: 1,
    height: 1,
    sha256: 'x',
    path: join('snapshots', id, 'snap.jpg'),
  });
  if (closedDaysAgo !== undefined) {
    store.setStatus(id, 'closed');
    store.close(id, Date.now() - closedDaysAgo * DAY);
  }
  return `r-${id}`;
}

const types = (caseId: string) => store.events(caseId).map((e) => e.type);

describe('recording library: retention, legal hold, erasure, verification', () => {
  it('prune erases only closed cases past retention that are not on hold; the case and its timeline stay', async () => {
    await caseWithMedia('old', 200);
    await caseWithMedia('recent', 10);
    await caseWithMedia('held', 365);
    await caseWithMedia('open');
    library.hold('held', 'chargeback CB-7 pending', 'alice');

    const plan = await library.prune({ dryRun: true, by: 'ops' });
    expect(plan.map((p) => p.caseId)).toEqual(['old']);
    expect(plan[0]).toMatchObject({ recordings: ['r-old'], snapshots: 1 });
    expect(plan[0]!.bytes).toBeGreaterThan(90_000);
    expect(existsSync(join(dir, 'recordings', 'old'))).toBe(true); // a dry run deletes nothing
    expect(types('old')).not.toContain('media.pruned');

    await library.prune({ by: 'ops' });
    expect(existsSync(join(dir, 'recordings', 'old'))).toBe(false);
    expect(existsSync(join(dir, 'snapshots', 'old'))).toBe(false);
    for (const kept of ['recent', 'held', 'open'])
      expect(existsSync(join(dir, 'recordings', kept, `r-${kept}.webm`))).toBe(true);
    expect(store.getCase('old')?.status).toBe('closed');
    expect(store.caseMedia('old')).toMatchObject({
      erasedBy: 'ops',
      eraseReason: expect.stringContaining('180 days'),
    });
    expect(library.get('r-old').erasedAt).not.toBeNull();
    const pruned = store.events('old').find((e) => e.type === 'media.pruned');
    expect(pruned?.data).toMatchObject({ by: 'ops', recordings: [{ id: 'r-old' }], snapshots: 1 });
    expect(verifyChain(store.events('old'))).toEqual([]);
    // nothing left to prune
    expect(await library.prune({ dryRun: true, by: 'ops' })).toEqual([]);
  });

  it('retentionDays 0 keeps media forever', async () => {
    await caseWithMedia('ancient', 3000);
    const keep = new RecordingLibrary({ store, dataDir: dir, retentionDays: 0 });
    expect(await keep.prune({ by: 'ops' })).toEqual([]);
    expect(existsSync(join(dir, 'recordings', 'ancient', 'r-ancient.webm'))).toBe(true);
  });

  it('a legal hold blocks erasure until released; erasure records who and why', async () => {
    await caseWithMedia('c', 1);
    library.hold('c', 'court order 12/34', 'alice');
    await expect(library.erase('c', { reason: 'buyer request', by: 'bob' })).rejects.toMatchObject({
      status: 409,
      code: 'legal_hold',
    });
    expect(existsSync(join(dir, 'recordings', 'c', 'r-c.webm'))).toBe(true);
    library.release('c', 'alice', 'case settled');
    const r = await library.erase('c', { reason: 'GDPR request #881', by: 'bob' });
    expect(r).toMatchObject({ recordings: ['r-c'], snapshots: 1, leftovers: [] });
    expect(existsSync(join(dir, 'recordings', 'c'))).toBe(false);
    expect(types('c')).toEqual(
      expect.arrayContaining(['media.hold', 'media.released', 'media.erased']),
    );
    const erased = store.events('c').find((e) => e.type === 'media.erased')!;
    expect(erased.actor).toBe('admin:bob');
    expect(erased.data).toMatchObject({ by: 'bob', reason: 'GDPR request #881' });
    expect(store.getCase('c')).toBeDefined();
    expect(library.caseMedia('c').erasedAt).not.toBeNull();
    expect(await library.verify('r-c')).toMatchObject({ ok: true, skipped: 'erased' });
    // holding an erased case makes no sense
    expect(() => library.hold('c', 'x', 'alice')).toThrow(/already erased/);
  });

  it('refuses to erase while a recording of the case is being written', async () => {
    await caseWithMedia('live');
    store.insertRecording({
      id: 'r-live2',
      caseId: 'live',
      sessionId: 's2',
      role: 'buyer',
      path: 'recordings/live/r-live2.webm',
      container: 'webm',
      tracks: [],
      startedAt: Date.now(),
    });
    await expect(library.erase('live', { reason: 'x', by: 'y' })).rejects.toMatchObject({
      status: 409,
      code: 'recording_live',
    });
  });

  it('verify re-hashes and decodes: a flipped byte is caught', async () => {
    const id = await caseWithMedia('v');
    expect(await library.verify(id)).toMatchObject({ ok: true, problems: [] });
    const file = join(dir, library.get(id).path);
    const buf = readFileSync(file);
    buf[Math.floor(buf.length / 2)]! ^= 0x01;
    writeFileSync(file, buf);
    const r = await library.verify(id);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/changed since it was recorded: sha256/);
  });
});
