/**
 * What each dispute channel accepts as evidence files, in one table. docs/evidence.md says where
 * each figure comes from and which ones were checked against the channel's own page. Sizes are
 * decimal (5 MB = 5,000,000 bytes): the smaller reading of "MB", so a file fits either way.
 */

export const CHANNEL_IDS = ['stripe', 'paypal', 'ebay', 'amex', 'generic'] as const;
export type ChannelId = (typeof CHANNEL_IDS)[number];

export type EvidenceMime = 'application/pdf' | 'image/jpeg' | 'image/png' | 'image/gif';

export interface ChannelProfile {
  id: ChannelId;
  name: string;
  /** File types the channel takes. */
  accepts: readonly EvidenceMime[];
  /** Largest single file, bytes (a strict "less than" limit is stored as limit − 1). */
  maxFileBytes: number;
  /** All files of one submission together, bytes; null when the channel states none. */
  maxTotalBytes: number | null;
  /** Most files per case; null when the channel states none. */
  maxFiles: number | null;
  /** Most pages a document may have; null when the channel states none. */
  maxPages: number | null;
  /** Whether a PDF summary is what to upload; eBay takes photos only. */
  summaryPdf: boolean;
  /** Longest response text the channel's box takes; null when not known (ours stays short anyway). */
  responseMaxChars: number | null;
  /** Where the limits come from (see docs/evidence.md). */
  source: string;
}

const MB = 1_000_000;

export const CHANNELS: Record<ChannelId, ChannelProfile> = {
  stripe: {
    id: 'stripe',
    name: 'Stripe',
    accepts: ['application/pdf', 'image/jpeg', 'image/png'],
    maxFileBytes: 5 * MB,
    maxTotalBytes: 4.5 * MB,
    maxFiles: null,
    maxPages: null,
    summaryPdf: true,
    responseMaxChars: 20_000,
    source:
      'Stripe docs, Disputes: evidence upload requirements; API reference, dispute evidence text fields',
  },
  paypal: {
    id: 'paypal',
    name: 'PayPal',
    accepts: ['image/jpeg', 'image/gif', 'image/png', 'application/pdf'],
    maxFileBytes: 10 * MB - 1,
    maxTotalBytes: 50 * MB,
    maxFiles: null,
    maxPages: null,
    summaryPdf: true,
    responseMaxChars: null,
    source:
      'PayPal developer docs, Disputes API: supported file types and sizes (Resolution Center uploads)',
  },
  ebay: {
    id: 'ebay',
    name: 'eBay',
    accepts: ['image/jpeg', 'image/png'],
    maxFileBytes: 5 * MB,
    maxTotalBytes: null,
    maxFiles: null,
    maxPages: null,
    summaryPdf: false,
    responseMaxChars: null,
    source: 'eBay Money Back Guarantee: photo requirements for a return case',
  },
  amex: {
    id: 'amex',
    name: 'American Express',
    accepts: ['application/pdf', 'image/jpeg'],
    maxFileBytes: 5 * MB,
    maxTotalBytes: 25 * MB,
    maxFiles: 5,
    maxPages: 20,
    summaryPdf: true,
    responseMaxChars: null,
    source: 'American Express merchant dispute documentation requirements',
  },
  generic: {
    id: 'generic',
    name: 'Generic (any desk)',
    accepts: ['application/pdf', 'image/jpeg', 'image/png'],
    maxFileBytes: 10 * MB,
    maxTotalBytes: null,
    maxFiles: null,
    maxPages: null,
    summaryPdf: true,
    responseMaxChars: null,
    source: 'no channel rule: a PDF of at most 10 MB, which common email and upload forms take',
  },
};

/** Our response texts stay under this, whatever a channel would take. */
export const RESPONSE_TARGET_CHARS = 1500;

export interface ChannelFile {
  name: string;
  mime: EvidenceMime | 'text/plain';
  bytes: number;
  pages?: number;
}

/** Every way the files break the channel's rules (empty when they fit). Text is not a file. */
export function channelViolations(ch: ChannelProfile, files: readonly ChannelFile[]): string[] {
  const uploads = files.filter((f) => f.mime !== 'text/plain');
  const out: string[] = [];
  for (const f of uploads) {
    if (!ch.accepts.includes(f.mime as EvidenceMime))
      out.push(`${f.name}: ${ch.name} does not take ${f.mime}`);
    if (f.bytes > ch.maxFileBytes)
      out.push(`${f.name}: ${f.bytes} bytes, more than ${ch.name}'s ${ch.maxFileBytes}`);
    if (ch.maxPages !== null && f.pages !== undefined && f.pages > ch.maxPages)
      out.push(`${f.name}: ${f.pages} pages, more than ${ch.name}'s ${ch.maxPages}`);
  }
  const total = uploads.reduce((n, f) => n + f.bytes, 0);
  if (ch.maxTotalBytes !== null && total > ch.maxTotalBytes)
    out.push(`${total} bytes in all, more than ${ch.name}'s ${ch.maxTotalBytes}`);
  if (ch.maxFiles !== null && uploads.length > ch.maxFiles)
    out.push(`${uploads.length} files, more than ${ch.name}'s ${ch.maxFiles}`);
  return out;
}

/** The largest a single upload may be so that `count` of them also fit the channel's total. */
export function perFileBudget(ch: ChannelProfile, count: number): number {
  const share = ch.maxTotalBytes === null ? ch.maxFileBytes : Math.floor(ch.maxTotalBytes / count);
  return Math.min(ch.maxFileBytes, share);
}

export interface ResponseFacts {
  caseId: string;
  orderId: string;
  sku: string;
  reason: string;
  outcome: string | null;
  disposition: string | null;
  inspectedAt: number | null;
  decidedAt: number | null;
  recordings: { role: string; durationMs: number | null; sha256: string }[];
  stills: number;
  manifestNote: string;
  attachments: string[];
}

function utc(ms: number | null): string {
  return ms === null
    ? 'not recorded'
    : `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * A short text for the channel's response box: what was inspected, when, what was decided, and
 * the SHA-256 of each recording so the desk can ask for the video and check it is the same one.
 */
export function responseText(ch: ChannelProfile, f: ResponseFacts): string {
  const lines = [
    `Order ${f.orderId} (SKU ${f.sku}): the returned item was inspected on a recorded live video call with the buyer on ${utc(f.inspectedAt)} (case ${f.caseId}). Return reason given: ${f.reason.replace(/_/g, ' ')}.`,
    f.outcome
      ? `Outcome: ${f.outcome.replace(/_/g, ' ')}${f.disposition ? `, item ${f.disposition.replace(/_/g, ' ')}` : ''}, decided ${utc(f.decidedAt)}.`
      : 'No decision was recorded yet.',
  ];
  if (f.recordings.length) {
    const shown = f.recordings.slice(0, 3);
    lines.push(
      `Recording SHA-256: ${shown
        .map(
          (r) =>
            `${r.sha256} (${r.role}, ${r.durationMs === null ? '?' : (r.durationMs / 1000).toFixed(0)} s)`,
        )
        .join(
          '; ',
        )}${f.recordings.length > shown.length ? `; and ${f.recordings.length - shown.length} more` : ''}.`,
    );
  } else {
    lines.push('No video recording was kept for this case.');
  }
  lines.push(
    `Attached: ${f.attachments.join(', ')}${f.stills ? ` (${f.stills} timestamped still${f.stills === 1 ? '' : 's'} from the call)` : ''}.`,
    `The full recording and a signed evidence bundle (${f.manifestNote}) are available on request.`,
  );
  let text = `${lines.join('\n')}\n`;
  const max = Math.min(RESPONSE_TARGET_CHARS, ch.responseMaxChars ?? RESPONSE_TARGET_CHARS);
  if (text.length > max) text = `${text.slice(0, max - 2)}…\n`;
  return text;
}
