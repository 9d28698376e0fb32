import { describe, expect, it } from 'vitest';
import { newSecret, signToken, verifyToken } from '../../src/node/tokens.ts';

const secret = newSecret();
const claims = {
  caseId: 'c_1',
  role: 'buyer' as const,
  linkId: 'l_1',
  expiresAt: Date.now() + 60_000,
};

describe('case tokens', () => {
  it('round-trips claims', () => {
    const check = verifyToken(secret, signToken(secret, claims));
    expect(check).toEqual({ ok: true, claims });
  });

  const token = signToken(secret, claims);
  const [v, payload, sig] = token.split('.') as [string, string, string];
  const forged = Buffer.from(
    JSON.stringify({ c: 'c_2', r: 'buyer', l: 'l_1', e: claims.expiresAt }),
  ).toString('base64url');
  it.each([
    ['empty', '', 'token_malformed'],
    ['two parts', `${v}.${payload}`, 'token_malformed'],
    ['wrong version', `v2.${payload}.${sig}`, 'token_malformed'],
    ['payload swapped for another case', `${v}.${forged}.${sig}`, 'token_bad_signature'],
    [
      'signature flipped',
      `${v}.${payload}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`,
      'token_bad_signature',
    ],
    ['signed by another node', signToken(newSecret(), claims), 'token_bad_signature'],
    ['expired', signToken(secret, { ...claims, expiresAt: Date.now() - 1 }), 'token_expired'],
  ])('rejects %s', (_name, t, code) => {
    const check = verifyToken(secret, t);
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.code).toBe(code);
      expect(check.message.length).toBeGreaterThan(10);
    }
  });
});
