import { canonicalJson, sha256Hex } from '../../core/canonical.ts';

/** The hash that opens every case's chain. */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedEvent {
  caseId: string;
  seq: number;
  at: number;
  type: string;
  actor: string;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** hash = SHA-256(prevHash + canonical JSON of the event's content). */
export function eventHash(e: Omit<ChainedEvent, 'hash'>): string {
  const { caseId, seq, at, type, actor, data, prevHash } = e;
  return sha256Hex(prevHash + canonicalJson({ caseId, seq, at, type, actor, data }));
}

export interface ChainProblem {
  seq: number;
  problem: string;
}

/** Checks an ordered list of one case's events; returns every break it finds. */
export function verifyChain(events: readonly ChainedEvent[]): ChainProblem[] {
  const problems: ChainProblem[] = [];
  let prev = GENESIS_HASH;
  let expectSeq = 1;
  for (const e of events) {
    if (e.seq !== expectSeq) problems.push({ seq: e.seq, problem: `expected event #${expectSeq}` });
    if (e.prevHash !== prev)
      problems.push({ seq: e.seq, problem: 'prevHash does not match the event before it' });
    if (eventHash(e) !== e.hash)
      problems.push({ seq: e.seq, problem: 'content does not match its hash' });
    prev = e.hash;
    expectSeq = e.seq + 1;
  }
  return problems;
}
