import type { ChainedEvent } from '../store/eventChain.ts';
import type { CaseRecord, MessageRecord } from '../store/Store.ts';
import type { CaseData } from './EvidenceStore.ts';

/**
 * What the printable summary says, as plain data: the HTML and the PDF are two renderings of it.
 * Pure functions.
 */

export interface SummaryStill {
  /** Path inside the bundle. */
  file: string;
  kind: 'snapshot' | 'moment';
  label: string;
  /** Wall-clock time of the picture, UTC ms. */
  takenAt: number;
  /** Where it comes from, in words. */
  source: string;
  width: number;
  height: number;
}

export interface SummaryRecording {
  id: string;
  role: string;
  status: string;
  startedAt: number;
  durationMs: number | null;
  bytes: number | null;
  sha256: string | null;
  container: string;
  codecs: string;
  /** Paths inside the bundle, or null when not included (erased, still recording, failed). */
  file: string | null;
  mp4: string | null;
  note: string | null;
}

export interface SummaryParticipant {
  role: string;
  direction: string;
  sessionId: string;
  startedAt: number;
  endedAt: number | null;
  endReason: string | null;
}

export interface SummaryEvent {
  seq: number;
  at: number;
  type: string;
  actor: string;
  detail: string;
  hash: string;
}

export interface SummaryModel {
  case: CaseRecord;
  nodeId: string;
  keyId: string;
  generatedAt: number;
  exportedBy: string;
  facts: [string, string][];
  participants: SummaryParticipant[];
  recordings: SummaryRecording[];
  stills: SummaryStill[];
  timeline: SummaryEvent[];
  messages: MessageRecord[];
  headHash: string;
  eventCount: number;
  notes: string[];
  howToVerify: string[];
}

export function utc(ms: number | null | undefined, withMs = false): string {
  if (ms === null || ms === undefined) return '-';
  const s = new Date(ms).toISOString().replace('T', ' ');
  return `${withMs ? s.slice(0, 23) : s.slice(0, 19)} UTC`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const words = (s: string | null | undefined) => (s ? s.replace(/_/g, ' ') : '-');

function who(actor: string): string {
  const role = actor.split(':')[0] ?? actor;
  return role;
}

/** One line per event type, in words (what a reviewer at a dispute desk can read). */
export function describeEvent(e: ChainedEvent): string {
  const d = e.data;
  const s = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  switch (e.type) {
    case 'case.created':
      return `case opened: order ${s(d.orderId)}, SKU ${s(d.sku)}, reason ${words(s(d.reason))}`;
    case 'link.issued':
      return `${s(d.role)} link issued (expires ${utc(Number(d.expiresAt))})`;
    case 'link.revoked':
      return `${s(d.role)} links revoked (${s(d.count)})`;
    case 'participant.joined':
      return `${s(d.role)} joined (${d.direction === 'publish' ? 'sending video' : 'watching'})`;
    case 'participant.left':
      return `${s(d.role)} left (${d.direction === 'publish' ? 'video' : 'watching'}${d.reason ? `: ${s(d.reason)}` : ''})`;
    case 'consent.given':
      return `${s(d.role)} agreed to the recording`;
    case 'message.posted':
      return `${s(d.role)} ${d.kind === 'prompt' ? 'prompt' : 'message'}: ${s(d.text)}`;
    case 'snapshot.taken':
      return `snapshot ${s(d.id)} (${s(d.width)}x${s(d.height)}, sha256 ${s(d.sha256).slice(0, 16)}…)`;
    case 'case.status':
      return `status ${s(d.status)}`;
    case 'case.decided':
      return `decided: ${words(s(d.outcome))}${d.disposition ? `, ${words(s(d.disposition))}` : ''}${d.note ? ` (${s(d.note)})` : ''}`;
    case 'case.closed':
      return 'case closed';
    case 'recording.started':
      return `${s(d.role)} recording started`;
    case 'recording.finished':
      return `${s(d.role)} recording ${s(d.status)}: ${duration(Number(d.durationMs))}, sha256 ${s(d.sha256).slice(0, 16)}…`;
    case 'recording.repaired':
      return `recording ${s(d.recordingId)} repaired after the node stopped`;
    case 'media.hold':
      return `legal hold: ${s(d.reason)}`;
    case 'media.released':
      return 'legal hold released';
    case 'media.erased':
    case 'media.pruned':
      return `media erased: ${s(d.reason)}`;
    case 'evidence.exported':
      return `evidence exported${d.channel ? ` for ${s(d.channel)}` : ''} by ${s(d.by)} (manifest ${s(d.manifestSha256).slice(0, 16)}…)`;
    default: {
      const text = Object.entries(d)
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      return text.length > 160 ? `${text.slice(0, 159)}…` : text;
    }
  }
}

export function buildSummary(o: {
  data: CaseData;
  nodeId: string;
  keyId: string;
  generatedAt: number;
  exportedBy: string;
  recordings: SummaryRecording[];
  stills: SummaryStill[];
  notes: string[];
}): SummaryModel {
  const c = o.data.case;
  const events = o.data.events;
  const head = events.at(-1);
  const facts: [string, string][] = [
    ['Case', c.id],
    ['Order', c.orderId],
    ['SKU', c.sku],
    ['Marketplace', c.marketplace ?? '-'],
    ['Warehouse', c.warehouseId ?? '-'],
    ['Return reason', words(c.reason)],
    ...(c.note ? ([['Case note', c.note]] as [string, string][]) : []),
    ['Status', c.status],
    ['Outcome', words(c.outcome)],
    ['Item disposition', words(c.disposition)],
    ...(c.decisionNote ? ([['Decision note', c.decisionNote]] as [string, string][]) : []),
    ['Created', utc(c.createdAt)],
    ['Buyer first joined', utc(c.firstJoinedAt)],
    ['Decided', utc(c.decidedAt)],
    ['Closed', utc(c.closedAt)],
    ...(o.data.media.holdAt
      ? ([['Legal hold', `${o.data.media.holdReason} (since ${utc(o.data.media.holdAt)})`]] as [
          string,
          string,
        ][])
      : []),
  ];
  return {
    case: c,
    nodeId: o.nodeId,
    keyId: o.keyId,
    generatedAt: o.generatedAt,
    exportedBy: o.exportedBy,
    facts,
    participants: o.data.sessions.map((s) => ({
      role: s.role,
      direction: s.direction,
      sessionId: s.id,
      startedAt: s.startedAt,
      endedAt: s.endedAt,
      endReason: s.endReason,
    })),
    recordings: o.recordings,
    stills: o.stills,
    timeline: events.map((e) => ({
      seq: e.seq,
      at: e.at,
      type: e.type,
      actor: who(e.actor),
      detail: describeEvent(e),
      hash: e.hash,
    })),
    messages: o.data.messages,
    headHash: head?.hash ?? '',
    eventCount: events.length,
    notes: o.notes,
    howToVerify: [
      `manifest.json lists every file of this bundle with its size and SHA-256; manifest.sig is an Ed25519 signature of manifest.json by node "${o.nodeId}", key id ${o.keyId} (the first 16 hex digits of the SHA-256 of the DER public key, evidence.pub). Confirm the key id with the merchant, not from the bundle alone.`,
      'With returncam: returncam export verify BUNDLE.zip --key evidence.pub — checks every hash, the signature and the event chain, and names what was altered, missing or added.',
      'Without it: openssl pkeyutl -verify -pubin -inkey evidence.pub -rawin -in manifest.json -sigfile manifest.sig; then sha256sum each file and compare with manifest.json.',
      `The timeline (timeline/events.json) is a hash chain: each event's hash is SHA-256 of the previous hash followed by the event's canonical JSON {caseId, seq, at, type, actor, data} (keys sorted, no spaces); the first previous hash is 64 zeros. Head of this export: event #${head?.seq ?? 0}, ${head?.hash ?? '-'}.`,
      "Each recording's SHA-256 is also in its recording.finished event, stored when the recording ended; each snapshot's in its snapshot.taken event.",
    ],
  };
}
