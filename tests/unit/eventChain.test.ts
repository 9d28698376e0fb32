import { describe, expect, it } from 'vitest';
import {
  type ChainedEvent,
  eventHash,
  GENESIS_HASH,
  verifyChain,
} from '../../src/node/store/eventChain.ts';

function chain(n: number): ChainedEvent[] {
  const out: ChainedEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const base = {
      caseId: 'c_x',
      seq,
      at: 1_700_000_000_000 + seq,
      type: 't',
      actor: 'admin',
      data: { n: seq },
      prevHash: prev,
    };
    const e = { ...base, hash: eventHash(base) };
    out.push(e);
    prev = e.hash;
  }
  return out;
}

describe('event hash chain', () => {
  it('accepts an intact chain', () => {
    expect(verifyChain(chain(5))).toEqual([]);
  });
  it.each([
    ['edited data', (c: ChainedEvent[]) => (c[2]!.data = { n: 99 }), 3],
    ['edited time', (c: ChainedEvent[]) => (c[1]!.at += 1), 2],
    ['removed event', (c: ChainedEvent[]) => c.splice(2, 1), 4],
    ['reordered events', (c: ChainedEvent[]) => c.reverse(), 5],
  ])('names the event after %s', (_name, mutate, firstBadSeq) => {
    const c = chain(5);
    mutate(c);
    const problems = verifyChain(c);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => p.seq)).toContain(firstBadSeq);
  });
  it('hash is independent of key order', () => {
    const a = {
      caseId: 'c',
      seq: 1,
      at: 1,
      type: 't',
      actor: 'a',
      data: { x: 1, y: 2 },
      prevHash: GENESIS_HASH,
    };
    const b = { ...a, data: { y: 2, x: 1 } };
    expect(eventHash(a)).toBe(eventHash(b));
  });
});
