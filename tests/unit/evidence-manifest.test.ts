import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EvidenceKey, keyIdOf } from '../../src/node/evidence/EvidenceKey.ts';
import {
  type ActualEntry,
  compareWithManifest,
  type ManifestFile,
  parseManifest,
} from '../../src/node/evidence/manifest.ts';
import { findWarehouse, loadFleet } from '../../src/node/fleet/fleetConfig.ts';
import { provisionWarehouse } from '../../src/node/fleet/provision.ts';

const file = (path: string, sha256 = 'a'.repeat(64), bytes = 10): ManifestFile => ({
  path,
  kind: 'still',
  bytes,
  sha256,
});
const entry = (name: string, sha256 = 'a'.repeat(64), bytes = 10): ActualEntry => ({
  name,
  sha256,
  bytes,
});

describe('compareWithManifest', () => {
  const listed = [file('stills/01.jpg'), file('summary.pdf', 'b'.repeat(64), 20)];
  const cases: {
    name: string;
    entries: ActualEntry[];
    expect: { kind: string; path: string; message: RegExp }[];
  }[] = [
    {
      name: 'every file as listed',
      entries: [
        entry('stills/01.jpg'),
        entry('summary.pdf', 'b'.repeat(64), 20),
        entry('manifest.json', 'x', 1),
        entry('manifest.sig', 'y', 64),
      ],
      expect: [],
    },
    {
      name: 'a changed file',
      entries: [entry('stills/01.jpg', 'c'.repeat(64)), entry('summary.pdf', 'b'.repeat(64), 20)],
      expect: [
        {
          kind: 'altered',
          path: 'stills/01.jpg',
          message:
            /stills\/01\.jpg was altered: sha256 c+ \(10 bytes\), the manifest lists a+ \(10 bytes\)/,
        },
      ],
    },
    {
      name: 'same hash, other size (a truncated entry)',
      entries: [
        entry('stills/01.jpg', 'a'.repeat(64), 9),
        entry('summary.pdf', 'b'.repeat(64), 20),
      ],
      expect: [{ kind: 'altered', path: 'stills/01.jpg', message: /was altered/ }],
    },
    {
      name: 'a missing file',
      entries: [entry('summary.pdf', 'b'.repeat(64), 20)],
      expect: [{ kind: 'missing', path: 'stills/01.jpg', message: /^stills\/01\.jpg is missing$/ }],
    },
    {
      name: 'an added file',
      entries: [
        entry('stills/01.jpg'),
        entry('summary.pdf', 'b'.repeat(64), 20),
        entry('notes.txt'),
      ],
      expect: [
        {
          kind: 'added',
          path: 'notes.txt',
          message: /notes\.txt was added: the manifest does not list it/,
        },
      ],
    },
    {
      name: 'an entry that cannot be read',
      entries: [
        { ...entry('stills/01.jpg'), error: 'invalid compressed data' },
        entry('summary.pdf', 'b'.repeat(64), 20),
      ],
      expect: [{ kind: 'unreadable', path: 'stills/01.jpg', message: /invalid compressed data/ }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = compareWithManifest(listed, c.entries);
      expect(got).toHaveLength(c.expect.length);
      c.expect.forEach((e, i) => {
        expect(got[i]).toMatchObject({ kind: e.kind, path: e.path });
        expect(got[i]!.message).toMatch(e.message);
      });
    });
  }
});

describe('parseManifest', () => {
  const good = {
    format: 'returncam-evidence',
    version: 1,
    node: { id: 'n', keyId: 'k' },
    case: { id: 'c' },
    eventLog: { file: 'timeline/events.json', events: 1, headSeq: 1, headHash: 'h' },
    files: [file('a')],
  };
  const bad: [string, unknown, RegExp][] = [
    ['not JSON', '{', /not valid JSON/],
    ['another format', { ...good, format: 'x' }, /not a returncam evidence manifest/],
    ['a newer version', { ...good, version: 2 }, /version 2; this returncam reads 1/],
    ['no files', { ...good, files: undefined }, /lacks files/],
    [
      'a file without a hash',
      { ...good, files: [{ path: 'a', bytes: 1 }] },
      /without path, bytes or sha256/,
    ],
  ];
  it('reads a well-formed manifest', () => {
    expect(parseManifest(Buffer.from(JSON.stringify(good))).files).toHaveLength(1);
  });
  for (const [name, value, message] of bad) {
    it(`refuses ${name}`, () => {
      const data = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
      expect(() => parseManifest(data)).toThrow(message);
    });
  }
});

describe('EvidenceKey', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('is made on first use as DATA/evidence.key (PKCS8, 0600) and DATA/evidence.pub, then reused', () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    const a = EvidenceKey.readOrCreate(dir);
    const keyFile = join(dir, 'evidence.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(readFileSync(join(dir, 'evidence.pub'), 'utf8')).toBe(a.publicPem);
    const b = EvidenceKey.readOrCreate(dir);
    expect(b.keyId).toBe(a.keyId);
    // key id: first 16 hex of SHA-256 of the DER public key
    const der = createPublicKey(a.publicPem).export({ type: 'spki', format: 'der' });
    expect(a.keyId).toBe(createHash('sha256').update(der).digest('hex').slice(0, 16));
    expect(keyIdOf(createPublicKey(a.publicPem))).toBe(a.keyId);
    // signs, and the public half alone checks it
    const sig = a.sign(Buffer.from('manifest'));
    const pub = EvidenceKey.fromPublicFile(join(dir, 'evidence.pub'));
    expect(pub.canSign).toBe(false);
    expect(pub.verify(Buffer.from('manifest'), sig)).toBe(true);
    expect(pub.verify(Buffer.from('manifesT'), sig)).toBe(false);
  });

  it('uses a provisioned key pair as it is, and derives a missing evidence.pub', () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    const first = EvidenceKey.readOrCreate(dir);
    rmSync(join(dir, 'evidence.pub'));
    const again = EvidenceKey.readOrCreate(dir);
    expect(again.keyId).toBe(first.keyId);
    expect(readFileSync(join(dir, 'evidence.pub'), 'utf8')).toBe(first.publicPem);
  });

  it('reads the key pair `node provision` writes (same file names, same formats)', () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    const warehouse = findWarehouse(loadFleet('configs/fleet.example.yaml'), 'fra1');
    const r = provisionWarehouse({ warehouse, outDir: dir });
    const files = r.files.filter((f) => f.name.startsWith('secrets/evidence.'));
    expect(files.map((f) => f.remote.split('/').pop()).sort()).toEqual([
      'evidence.key',
      'evidence.pub',
    ]);
    // the provisioned secrets directory laid out like the host's data directory
    const key = EvidenceKey.readOrCreate(join(r.dir, 'secrets'));
    expect(key.publicPem).toBe(readFileSync(join(r.dir, 'secrets', 'evidence.pub'), 'utf8'));
    expect(key.canSign).toBe(true);
  });

  it('refuses a public key that does not belong to the private key', () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    EvidenceKey.readOrCreate(dir);
    const other = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    try {
      writeFileSync(join(dir, 'evidence.pub'), EvidenceKey.readOrCreate(other).publicPem);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    expect(() => EvidenceKey.readOrCreate(dir!)).toThrow(/does not belong to/);
  });

  it('trusts evidence.pub and older rotated keys kept beside it', () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    const current = EvidenceKey.readOrCreate(dir);
    const other = mkdtempSync(join(tmpdir(), 'returncam-key-'));
    let old: EvidenceKey;
    try {
      old = EvidenceKey.readOrCreate(other);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    writeFileSync(join(dir, 'evidence.20260101T000000Z.pub'), old.publicPem);
    expect(EvidenceKey.trustedKeys(dir).map((k) => k.keyId)).toEqual([current.keyId, old.keyId]);
    expect(EvidenceKey.trustedKeys(join(dir, 'nope'))).toEqual([]);
  });
});
