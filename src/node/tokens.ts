import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Case links carry `v1.<payload>.<signature>`: base64url JSON naming one case, one role, the link
 * row it belongs to (so it can be revoked) and an expiry; HMAC-SHA256 over `v1.<payload>`.
 */

export type TokenRole = 'buyer' | 'staff';

export interface TokenClaims {
  caseId: string;
  role: TokenRole;
  linkId: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

export type TokenCheck =
  | { ok: true; claims: TokenClaims }
  | {
      ok: false;
      code: 'token_malformed' | 'token_bad_signature' | 'token_expired';
      message: string;
    };

const PREFIX = 'v1';

export function newSecret(): Buffer {
  return randomBytes(32);
}

function sign(secret: Buffer, body: string): string {
  return createHmac('sha256', secret).update(body).digest('base64url');
}

export function signToken(secret: Buffer, claims: TokenClaims): string {
  const payload = Buffer.from(
    JSON.stringify({ c: claims.caseId, r: claims.role, l: claims.linkId, e: claims.expiresAt }),
  ).toString('base64url');
  const body = `${PREFIX}.${payload}`;
  return `${body}.${sign(secret, body)}`;
}

/** Checks form, signature and expiry. Revocation and case scope are the caller's (they need the store). */
export function verifyToken(secret: Buffer, token: string, now = Date.now()): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX || !parts[1] || !parts[2]) {
    return {
      ok: false,
      code: 'token_malformed',
      message: 'the link token is malformed; open the full link again',
    };
  }
  const expected = Buffer.from(sign(secret, `${parts[0]}.${parts[1]}`));
  const given = Buffer.from(parts[2]);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return {
      ok: false,
      code: 'token_bad_signature',
      message: 'the link token was altered or is not from this node',
    };
  }
  let raw: { c?: unknown; r?: unknown; l?: unknown; e?: unknown };
  try {
    raw = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return {
      ok: false,
      code: 'token_malformed',
      message: 'the link token is malformed; open the full link again',
    };
  }
  if (
    typeof raw.c !== 'string' ||
    (raw.r !== 'buyer' && raw.r !== 'staff') ||
    typeof raw.l !== 'string' ||
    typeof raw.e !== 'number'
  ) {
    return {
      ok: false,
      code: 'token_malformed',
      message: 'the link token is malformed; open the full link again',
    };
  }
  if (raw.e <= now) {
    return {
      ok: false,
      code: 'token_expired',
      message: `the link expired at ${new Date(raw.e).toISOString()}; ask for a new link`,
    };
  }
  return { ok: true, claims: { caseId: raw.c, role: raw.r, linkId: raw.l, expiresAt: raw.e } };
}
