import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';

/**
 * Secrets a node keeps in its data directory, each in its own file, mode 0600, created on first
 * use. A secret given in the config wins over the file.
 */
export function readOrCreateSecret(
  dataDir: string,
  name: string,
  make: () => string,
): { value: string; created: boolean } {
  const file = join(dataDir, name);
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) chmodSync(file, 0o600);
    const value = readFileSync(file, 'utf8').trim();
    if (!value) throw new UserError(`${file} is empty; delete it to have a new secret generated`);
    return { value, created: false };
  }
  const value = make();
  writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  return { value, created: true };
}

export const randomToken =
  (bytes = 32) =>
  () =>
    randomBytes(bytes).toString('base64url');
export const randomHexKey =
  (bytes = 32) =>
  () =>
    randomBytes(bytes).toString('hex');

/** A key given as hex or base64 text; at least 32 bytes. */
export function decodeKey(text: string, what: string): Buffer {
  const buf =
    /^[0-9a-f]+$/i.test(text) && text.length % 2 === 0
      ? Buffer.from(text, 'hex')
      : Buffer.from(text, 'base64');
  if (buf.length < 32) throw new UserError(`${what} must be at least 32 bytes (64 hex characters)`);
  return buf;
}
