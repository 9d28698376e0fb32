/**
 * The evidence bundle's manifest: what it lists, how it is written, and how a bundle's files are
 * compared with it. Pure functions; reading zips and signing live elsewhere.
 */

export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.sig';
export const MANIFEST_FORMAT = 'returncam-evidence';

export type BundleFileKind =
  | 'recording'
  | 'recording-original'
  | 'video'
  | 'snapshot'
  | 'still'
  | 'transcript'
  | 'timeline'
  | 'case'
  | 'summary'
  | 'key'
  | 'channel';

export interface ManifestFile {
  path: string;
  kind: BundleFileKind;
  bytes: number;
  sha256: string;
}

export interface BundleManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  /** ISO 8601, UTC. */
  createdAt: string;
  generator: string;
  node: { id: string; keyId: string };
  case: {
    id: string;
    orderId: string;
    sku: string;
    marketplace: string | null;
    warehouseId: string | null;
    reason: string;
    status: string;
    outcome: string | null;
    disposition: string | null;
  };
  /** The case's hash-chained event log as exported (the export's own event comes after it). */
  eventLog: { file: string; events: number; headSeq: number; headHash: string };
  /** Recordings in the bundle with the SHA-256 the node stored when each was finished. */
  recordings: { id: string; role: string; file: string; sha256: string }[];
  /** Staff snapshots in the bundle with the SHA-256 stored when each was taken. */
  snapshots: { id: string; file: string; sha256: string }[];
  exportedBy: string;
  channel: string | null;
  files: ManifestFile[];
}

/** The exact bytes that are signed: pretty JSON with a final newline. */
export function serializeManifest(m: BundleManifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`, 'utf8');
}

/** Parses a manifest and checks its shape; throws with what is wrong. */
export function parseManifest(data: Buffer): BundleManifest {
  let m: unknown;
  try {
    m = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new Error(`${MANIFEST_FILE} is not valid JSON: ${(err as Error).message}`);
  }
  const o = m as Partial<BundleManifest> | null;
  if (!o || typeof o !== 'object' || o.format !== MANIFEST_FORMAT)
    throw new Error(`${MANIFEST_FILE} is not a returncam evidence manifest`);
  if (o.version !== 1)
    throw new Error(`${MANIFEST_FILE} has version ${String(o.version)}; this returncam reads 1`);
  if (!Array.isArray(o.files) || !o.eventLog || !o.case || !o.node)
    throw new Error(`${MANIFEST_FILE} lacks files, eventLog, case or node`);
  for (const f of o.files) {
    if (
      !f ||
      typeof f.path !== 'string' ||
      typeof f.sha256 !== 'string' ||
      typeof f.bytes !== 'number'
    )
      throw new Error(`${MANIFEST_FILE} has a file entry without path, bytes or sha256`);
  }
  return o as BundleManifest;
}

export type FindingKind =
  | 'altered'
  | 'missing'
  | 'added'
  | 'unreadable'
  | 'signature'
  | 'manifest'
  | 'chain'
  | 'mismatch';

/** One thing that does not hold, named so a person can act on it. */
export interface Finding {
  kind: FindingKind;
  /** The bundle file it is about. */
  path?: string;
  /** The event it is about. */
  seq?: number;
  message: string;
}

export interface ActualEntry {
  name: string;
  bytes: number;
  sha256: string;
  error?: string;
}

/**
 * Compares the bundle's files with the manifest: each listed file must be there with its size and
 * SHA-256; anything else (but the manifest and its signature) was added.
 */
export function compareWithManifest(
  files: readonly ManifestFile[],
  entries: readonly ActualEntry[],
): Finding[] {
  const findings: Finding[] = [];
  const actual = new Map<string, ActualEntry>();
  for (const e of entries) {
    if (actual.has(e.name))
      findings.push({
        kind: 'added',
        path: e.name,
        message: `${e.name} appears twice in the zip`,
      });
    actual.set(e.name, e);
  }
  const listed = new Set<string>();
  for (const f of files) {
    listed.add(f.path);
    const a = actual.get(f.path);
    if (!a) {
      findings.push({ kind: 'missing', path: f.path, message: `${f.path} is missing` });
      continue;
    }
    if (a.error) {
      findings.push({
        kind: 'unreadable',
        path: f.path,
        message: `${f.path} cannot be read from the zip (${a.error})`,
      });
      continue;
    }
    if (a.sha256 !== f.sha256 || a.bytes !== f.bytes) {
      findings.push({
        kind: 'altered',
        path: f.path,
        message: `${f.path} was altered: sha256 ${a.sha256} (${a.bytes} bytes), the manifest lists ${f.sha256} (${f.bytes} bytes)`,
      });
    }
  }
  for (const e of entries) {
    if (listed.has(e.name) || e.name === MANIFEST_FILE || e.name === SIGNATURE_FILE) continue;
    findings.push({
      kind: 'added',
      path: e.name,
      message: `${e.name} was added: the manifest does not list it`,
    });
  }
  return findings;
}
