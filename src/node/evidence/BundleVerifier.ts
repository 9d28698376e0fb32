import { existsSync } from 'node:fs';
import { errorMessage, UserError } from '../../core/errors.ts';
import { type ChainedEvent, verifyChain } from '../store/eventChain.ts';
import type { EvidenceKey } from './EvidenceKey.ts';
import {
  type BundleManifest,
  compareWithManifest,
  type Finding,
  MANIFEST_FILE,
  parseManifest,
  SIGNATURE_FILE,
} from './manifest.ts';
import { readZip, type ZipEntryInfo } from './zip.ts';

export interface VerifyBundleOptions {
  file: string;
  /** Public keys to trust (the node's, or one given); empty: the signature cannot be checked. */
  keys: EvidenceKey[];
  /** Where the keys came from, for messages. */
  keySource: string;
}

export type SignatureStatus = 'valid' | 'invalid' | 'missing' | 'no-trusted-key' | 'unchecked';

export interface BundleVerification {
  ok: boolean;
  file: string;
  caseId: string | null;
  orderId: string | null;
  nodeId: string | null;
  keyId: string | null;
  signature: SignatureStatus;
  /** The key that checked the signature. */
  signedBy: string | null;
  files: { listed: number; inZip: number };
  events: { count: number; headSeq: number; headHash: string; chainIntact: boolean } | null;
  findings: Finding[];
}

function parseEvents(data: Buffer): ChainedEvent[] {
  const doc = JSON.parse(data.toString('utf8')) as { events?: unknown };
  if (!doc || !Array.isArray(doc.events)) throw new Error('it has no "events" list');
  return doc.events as ChainedEvent[];
}

/**
 * Checks an evidence bundle: every file against the manifest (size and SHA-256), the manifest's
 * Ed25519 signature, the timeline's hash chain and head, and the recordings' and snapshots'
 * hashes against the events that stored them. Each finding names the file or event.
 */
export async function verifyBundle(o: VerifyBundleOptions): Promise<BundleVerification> {
  if (!existsSync(o.file)) throw new UserError(`${o.file} does not exist`);
  let entries: ZipEntryInfo[];
  try {
    entries = await readZip(
      o.file,
      (n) => n === MANIFEST_FILE || n === SIGNATURE_FILE || n.startsWith('timeline/'),
    );
  } catch (err) {
    throw new UserError(`${o.file} is not a readable zip: ${errorMessage(err)}`);
  }
  const findings: Finding[] = [];
  const byName = new Map(entries.map((e) => [e.name, e]));
  const result: BundleVerification = {
    ok: false,
    file: o.file,
    caseId: null,
    orderId: null,
    nodeId: null,
    keyId: null,
    signature: 'unchecked',
    signedBy: null,
    files: {
      listed: 0,
      inZip: entries.filter((e) => e.name !== MANIFEST_FILE && e.name !== SIGNATURE_FILE).length,
    },
    events: null,
    findings,
  };

  const manifestEntry = byName.get(MANIFEST_FILE);
  if (!manifestEntry?.data) {
    findings.push({
      kind: manifestEntry ? 'unreadable' : 'missing',
      path: MANIFEST_FILE,
      message: manifestEntry
        ? `${MANIFEST_FILE} cannot be read from the zip (${manifestEntry.error})`
        : `${MANIFEST_FILE} is missing: nothing in the bundle can be checked`,
    });
    return result;
  }

  // ---- signature ----
  const sig = byName.get(SIGNATURE_FILE);
  let manifest: BundleManifest | undefined;
  try {
    manifest = parseManifest(manifestEntry.data);
  } catch (err) {
    findings.push({ kind: 'manifest', path: MANIFEST_FILE, message: errorMessage(err) });
  }
  const claimedKey = manifest?.node.keyId ?? null;
  if (!sig?.data) {
    result.signature = 'missing';
    findings.push({
      kind: sig ? 'unreadable' : 'missing',
      path: SIGNATURE_FILE,
      message: sig
        ? `${SIGNATURE_FILE} cannot be read from the zip (${sig.error})`
        : `${SIGNATURE_FILE} is missing: the manifest is not signed`,
    });
  } else if (!o.keys.length) {
    result.signature = 'no-trusted-key';
    findings.push({
      kind: 'signature',
      path: SIGNATURE_FILE,
      message: `no trusted public key (${o.keySource}): pass --key with the node's evidence.pub, or --data with the node's data directory`,
    });
  } else {
    const good = o.keys.find((k) => k.verify(manifestEntry.data!, sig.data!));
    if (good) {
      result.signature = 'valid';
      result.signedBy = good.keyId;
      if (claimedKey && claimedKey !== good.keyId)
        findings.push({
          kind: 'manifest',
          path: MANIFEST_FILE,
          message: `the manifest names key ${claimedKey} but was signed by ${good.keyId}`,
        });
    } else {
      result.signature = 'invalid';
      const known = o.keys.some((k) => k.keyId === claimedKey);
      findings.push({
        kind: 'signature',
        path: SIGNATURE_FILE,
        message: known
          ? `the signature does not match ${MANIFEST_FILE}: ${MANIFEST_FILE} or ${SIGNATURE_FILE} was altered`
          : `the signature does not verify with the trusted key(s) ${o.keys.map((k) => k.keyId).join(', ')} (${o.keySource}); the manifest names key ${claimedKey ?? '(none)'}: another node's bundle, or ${MANIFEST_FILE} or ${SIGNATURE_FILE} was altered`,
      });
    }
  }
  if (!manifest) return result;
  result.caseId = manifest.case.id;
  result.orderId = manifest.case.orderId;
  result.nodeId = manifest.node.id;
  result.keyId = manifest.node.keyId;
  result.files.listed = manifest.files.length;

  // ---- files ----
  findings.push(...compareWithManifest(manifest.files, entries));

  // ---- event chain ----
  const timeline = byName.get(manifest.eventLog.file);
  if (timeline?.data) {
    let events: ChainedEvent[] | undefined;
    try {
      events = parseEvents(timeline.data);
    } catch (err) {
      findings.push({
        kind: 'chain',
        path: manifest.eventLog.file,
        message: `${manifest.eventLog.file} cannot be read as a timeline: ${errorMessage(err)}`,
      });
    }
    if (events) {
      const problems = verifyChain(events);
      for (const p of problems) {
        findings.push({
          kind: 'chain',
          path: manifest.eventLog.file,
          seq: p.seq,
          message: `${manifest.eventLog.file}: event #${p.seq}: ${p.problem}`,
        });
      }
      for (const e of events) {
        if (e.caseId !== manifest.case.id)
          findings.push({
            kind: 'chain',
            path: manifest.eventLog.file,
            seq: e.seq,
            message: `${manifest.eventLog.file}: event #${e.seq} belongs to case ${e.caseId}, not ${manifest.case.id}`,
          });
      }
      const head = events.at(-1);
      result.events = {
        count: events.length,
        headSeq: head?.seq ?? 0,
        headHash: head?.hash ?? '',
        chainIntact: problems.length === 0,
      };
      if (
        events.length !== manifest.eventLog.events ||
        (head?.hash ?? '') !== manifest.eventLog.headHash
      ) {
        findings.push({
          kind: 'mismatch',
          path: manifest.eventLog.file,
          message: `${manifest.eventLog.file} ends at event #${head?.seq ?? 0} ${head?.hash ?? '-'} (${events.length} events); the manifest says #${manifest.eventLog.headSeq} ${manifest.eventLog.headHash} (${manifest.eventLog.events} events)`,
        });
      }
      // recordings and snapshots: the bundle's files against the hashes the timeline stored
      for (const r of manifest.recordings ?? []) {
        const finished = events.filter(
          (e) => e.type === 'recording.finished' && e.data.recordingId === r.id,
        );
        const stored = finished.at(-1)?.data.sha256;
        const actual = byName.get(r.file)?.sha256;
        if (stored === undefined) {
          findings.push({
            kind: 'mismatch',
            path: r.file,
            message: `${r.file}: the timeline has no recording.finished event for recording ${r.id}`,
          });
        } else if (actual && actual !== stored) {
          findings.push({
            kind: 'mismatch',
            path: r.file,
            message: `${r.file}: sha256 ${actual} is not the ${String(stored)} the timeline stored when recording ${r.id} ended`,
          });
        }
      }
      for (const s of manifest.snapshots ?? []) {
        const taken = events.find((e) => e.type === 'snapshot.taken' && e.data.id === s.id);
        const actual = byName.get(s.file)?.sha256;
        if (!taken) {
          findings.push({
            kind: 'mismatch',
            path: s.file,
            message: `${s.file}: the timeline has no snapshot.taken event for snapshot ${s.id}`,
          });
        } else if (actual && actual !== taken.data.sha256) {
          findings.push({
            kind: 'mismatch',
            path: s.file,
            message: `${s.file}: sha256 ${actual} is not the ${String(taken.data.sha256)} the timeline stored when snapshot ${s.id} was taken`,
          });
        }
      }
    }
  } else if (!findings.some((f) => f.path === manifest.eventLog.file)) {
    findings.push({
      kind: 'missing',
      path: manifest.eventLog.file,
      message: `${manifest.eventLog.file} is missing`,
    });
  }
  result.ok = findings.length === 0 && result.signature === 'valid';
  return result;
}
