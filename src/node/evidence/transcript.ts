import type { ChainedEvent } from '../store/eventChain.ts';
import type { CaseRecord, MessageRecord } from '../store/Store.ts';
import { utc } from './summary.ts';

/** The chat transcript and the event timeline as bundle files. Pure functions. */

export function transcriptText(c: CaseRecord, messages: readonly MessageRecord[]): string {
  const lines = [
    `Chat transcript — case ${c.id}, order ${c.orderId}, SKU ${c.sku}`,
    'Times are UTC. Each message is also an event in timeline/events.json (event number in #).',
    '',
  ];
  if (!messages.length) lines.push('(no messages)');
  for (const m of messages) {
    const head = `[${utc(m.at)}] #${m.eventSeq} ${m.role}${m.kind === 'prompt' ? ' (prompt)' : ''}:`;
    const body = m.body.split(/\r?\n/);
    lines.push(`${head} ${body[0] ?? ''}`, ...body.slice(1).map((l) => `    ${l}`));
  }
  return `${lines.join('\n')}\n`;
}

export function transcriptJson(c: CaseRecord, messages: readonly MessageRecord[]): string {
  return `${JSON.stringify(
    {
      version: 1,
      caseId: c.id,
      orderId: c.orderId,
      messages: messages.map((m) => ({
        id: m.id,
        at: m.at,
        atUtc: new Date(m.at).toISOString(),
        role: m.role,
        kind: m.kind,
        text: m.body,
        clientId: m.clientId,
        eventSeq: m.eventSeq,
      })),
    },
    null,
    2,
  )}\n`;
}

export interface TimelineFile {
  version: 1;
  caseId: string;
  count: number;
  headSeq: number;
  headHash: string;
  /** Hash rule, for a reader without returncam. */
  hashRule: string;
  events: ChainedEvent[];
}

export const HASH_RULE =
  'hash = SHA-256(prevHash + canonical JSON of {caseId, seq, at, type, actor, data} with keys sorted); the first prevHash is 64 zeros';

export function timelineJson(caseId: string, events: readonly ChainedEvent[]): string {
  const head = events.at(-1);
  const file: TimelineFile = {
    version: 1,
    caseId,
    count: events.length,
    headSeq: head?.seq ?? 0,
    headHash: head?.hash ?? '',
    hashRule: HASH_RULE,
    events: [...events],
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}
