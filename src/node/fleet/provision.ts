import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../../core/errors.ts';
import type { Warehouse } from './fleetConfig.ts';
import {
  type HostFile,
  hostFiles,
  NODE_UNIT,
  renderNodeConfig,
  renderNodeUnit,
  renderTurnConfig,
  renderTurnUnit,
  TURN_UNIT,
} from './render.ts';

/**
 * Renders a warehouse's host files into OUT/WAREHOUSE/: node config, systemd units, coturn
 * config, and secrets (mode 0600) that survive re-runs unless rotated. Nothing is printed here;
 * the result says what happened to each file.
 */

export interface ProvisionOptions {
  warehouse: Warehouse;
  /** OUT; files go to OUT/<warehouse id>/. */
  outDir: string;
  /** Replace every secret (the old evidence public key is kept beside the new one). */
  rotate?: boolean;
  /** Work out the result without writing anything. */
  dryRun?: boolean;
  now?: () => Date;
}

export type FileAction = 'created' | 'updated' | 'unchanged' | 'kept' | 'rotated';

export interface ProvisionedFile extends HostFile {
  /** Absolute local path. */
  path: string;
  action: FileAction;
  content: string;
}

export interface ProvisionResult {
  warehouse: Warehouse;
  dir: string;
  files: ProvisionedFile[];
  /** Secret values by file name (for --show-secrets; never printed otherwise). */
  secrets: Record<string, string>;
}

const SECRET_MAKERS: Record<string, () => string> = {
  'secrets/admin.token': () => randomBytes(32).toString('base64url'),
  'secrets/token.key': () => randomBytes(32).toString('hex'),
  'secrets/turn.secret': () => randomBytes(32).toString('hex'),
};

function evidenceKeyPair(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Writes through a temp file and a rename, so a reader never sees half a file; mode enforced. */
function writeAtomic(file: string, content: string, mode: number): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

export function provisionWarehouse(opts: ProvisionOptions): ProvisionResult {
  const w = opts.warehouse;
  const dir = resolve(opts.outDir, w.id);
  const rotate = opts.rotate ?? false;
  const secrets: Record<string, string> = {};
  const actions = new Map<string, FileAction>();

  // secrets first: the coturn config embeds the TURN one
  for (const [name, make] of Object.entries(SECRET_MAKERS)) {
    const old = readIfExists(join(dir, name))?.trim();
    if (old && !rotate) {
      secrets[name] = old;
      actions.set(name, 'kept');
    } else {
      secrets[name] = make();
      actions.set(name, old ? 'rotated' : 'created');
    }
  }
  const oldPrivate = readIfExists(join(dir, 'secrets/evidence.key'));
  const oldPublic = readIfExists(join(dir, 'secrets/evidence.pub'));
  if (oldPrivate && oldPublic && !rotate) {
    secrets['secrets/evidence.key'] = oldPrivate;
    secrets['secrets/evidence.pub'] = oldPublic;
    actions.set('secrets/evidence.key', 'kept');
    actions.set('secrets/evidence.pub', 'kept');
  } else {
    const pair = evidenceKeyPair();
    secrets['secrets/evidence.key'] = pair.privateKey;
    secrets['secrets/evidence.pub'] = pair.publicKey;
    const action: FileAction = oldPrivate ? 'rotated' : 'created';
    actions.set('secrets/evidence.key', action);
    actions.set('secrets/evidence.pub', action);
  }

  const turnSecret = secrets['secrets/turn.secret']!;
  const rendered: Record<string, string> = {
    'node.yaml': renderNodeConfig(w),
    [NODE_UNIT]: renderNodeUnit(w),
    'turnserver.conf': renderTurnConfig(w, turnSecret),
    [TURN_UNIT]: renderTurnUnit(w),
  };

  const files: ProvisionedFile[] = hostFiles(w).map((f) => {
    const path = join(dir, f.name);
    const secretValue = secrets[f.name];
    const content =
      secretValue !== undefined
        ? `${secretValue.trimEnd()}\n`
        : (rendered[f.name] ??
          (() => {
            throw new Error(`provision ${w.id}: nothing renders ${f.name}`);
          })());
    let action = actions.get(f.name);
    if (!action) {
      const old = readIfExists(path);
      action = old === undefined ? 'created' : old === content ? 'unchanged' : 'updated';
    }
    return { ...f, path, action, content };
  });

  if (!opts.dryRun) {
    try {
      mkdirSync(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
      chmodSync(join(dir, 'secrets'), 0o700);
      if (rotate && oldPublic) {
        // manifests signed with the old key must stay verifiable
        const stamp = (opts.now?.() ?? new Date()).toISOString().replace(/[-:]|\.\d+/g, '');
        writeAtomic(join(dir, `secrets/evidence.${stamp}.pub`), oldPublic, 0o644);
      }
      for (const f of files) {
        const mode = statSafeMode(f.path);
        if (f.action === 'unchanged' || f.action === 'kept') {
          if (mode !== f.mode) chmodSync(f.path, f.mode);
          continue;
        }
        writeAtomic(f.path, f.content, f.mode);
      }
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError(
        `cannot write the provisioned files for ${w.id} into ${dir}: ${(err as Error).message}`,
      );
    }
  }
  return { warehouse: w, dir, files, secrets };
}

function statSafeMode(file: string): number | undefined {
  try {
    return statSync(file).mode & 0o777;
  } catch {
    return undefined;
  }
}

/** True when OUT/WAREHOUSE has been provisioned before (its secrets exist). */
export function isProvisioned(outDir: string, id: string): boolean {
  return existsSync(join(resolve(outDir, id), 'secrets/token.key'));
}
