import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, UserError } from '../../core/errors.ts';

/**
 * File names of the node's evidence key in its data directory. `node provision` writes the same
 * two files (src/node/fleet/render.ts), so a provisioned host and a first start agree.
 */
export const EVIDENCE_KEY_FILE = 'evidence.key';
export const EVIDENCE_PUB_FILE = 'evidence.pub';

/** Key id: the first 16 hex digits of the SHA-256 of the DER (SPKI) public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

function publicPem(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * An Ed25519 public key that checks evidence signatures, and (on the node host) the private key
 * that makes them.
 */
export class EvidenceKey {
  readonly keyId: string;
  readonly publicPem: string;

  private constructor(
    readonly publicKey: KeyObject,
    private readonly privateKey: KeyObject | undefined,
    /** Where it was read from. */
    readonly source: string,
  ) {
    if (publicKey.asymmetricKeyType !== 'ed25519')
      throw new UserError(`${source}: not an Ed25519 key (${publicKey.asymmetricKeyType})`);
    this.keyId = keyIdOf(publicKey);
    this.publicPem = publicPem(publicKey);
  }

  get canSign(): boolean {
    return this.privateKey !== undefined;
  }

  sign(data: Buffer): Buffer {
    if (!this.privateKey)
      throw new Error(`evidence key ${this.keyId} (${this.source}): no private key to sign with`);
    return sign(null, data, this.privateKey);
  }

  verify(data: Buffer, signature: Buffer): boolean {
    try {
      return verify(null, data, this.publicKey, signature);
    } catch {
      return false;
    }
  }

  /**
   * The node's key from DATA/evidence.key (PKCS8 PEM, mode 0600) and DATA/evidence.pub; both are
   * created when absent, and a missing evidence.pub is derived from the private key.
   */
  static readOrCreate(dataDir: string): EvidenceKey {
    const keyFile = join(dataDir, EVIDENCE_KEY_FILE);
    const pubFile = join(dataDir, EVIDENCE_PUB_FILE);
    if (!existsSync(keyFile)) {
      if (existsSync(pubFile)) {
        throw new UserError(
          `${pubFile} exists but ${keyFile} does not; restore the private key, or remove ${pubFile} to have a new key pair made (bundles signed with the old key then need that public key to verify)`,
        );
      }
      const pair = generateKeyPairSync('ed25519', {
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      });
      try {
        writeFileSync(keyFile, pair.privateKey, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        // another process (a CLI on the node host, the node) made it first: use theirs
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        return EvidenceKey.readOrCreate(dataDir);
      }
      writeFileSync(pubFile, pair.publicKey, { mode: 0o644 });
    }
    if (statSync(keyFile).mode & 0o077) chmodSync(keyFile, 0o600);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(readFileSync(keyFile));
    } catch (err) {
      throw new UserError(`${keyFile} is not a PEM private key: ${errorMessage(err)}`);
    }
    const derived = createPublicKey(privateKey);
    if (existsSync(pubFile)) {
      const stored = EvidenceKey.fromPublicFile(pubFile);
      if (stored.keyId !== keyIdOf(derived)) {
        throw new UserError(
          `${pubFile} (key ${stored.keyId}) does not belong to ${keyFile} (key ${keyIdOf(derived)}); restore the matching pair`,
        );
      }
    } else {
      writeFileSync(pubFile, publicPem(derived), { mode: 0o644 });
    }
    return new EvidenceKey(derived, privateKey, keyFile);
  }

  /** A public key from a PEM file (a private key file works too: its public half is used). */
  static fromPublicFile(file: string): EvidenceKey {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UserError(
        `cannot read the key ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    try {
      return new EvidenceKey(createPublicKey(text), undefined, file);
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError(`${file} is not a PEM public key: ${errorMessage(err)}`);
    }
  }

  /**
   * The public keys a data directory trusts: DATA/evidence.pub and any older ones kept beside it
   * as DATA/evidence.*.pub (a key rotation keeps them so old bundles still verify).
   */
  static trustedKeys(dataDir: string): EvidenceKey[] {
    let names: string[];
    try {
      names = readdirSync(dataDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n === EVIDENCE_PUB_FILE || /^evidence\..+\.pub$/.test(n))
      .sort((a, b) =>
        a === EVIDENCE_PUB_FILE ? -1 : b === EVIDENCE_PUB_FILE ? 1 : a.localeCompare(b),
      )
      .map((n) => EvidenceKey.fromPublicFile(join(dataDir, n)));
  }

  /** The node's public key, without creating one. */
  static readPublic(dataDir: string): EvidenceKey {
    const pubFile = join(dataDir, EVIDENCE_PUB_FILE);
    if (existsSync(pubFile)) return EvidenceKey.fromPublicFile(pubFile);
    const keyFile = join(dataDir, EVIDENCE_KEY_FILE);
    if (existsSync(keyFile)) return EvidenceKey.fromPublicFile(keyFile);
    throw new UserError(
      `no evidence key in ${dataDir} (looked for ${EVIDENCE_PUB_FILE}); the node creates it at its first start`,
    );
  }
}
