import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { execa } from 'execa';
import { compiledEntry } from '../../../bin/compiled.mjs';
import { errorMessage, UserError } from '../../core/errors.ts';
import { PACKAGE_ROOT } from '../../core/paths.ts';
import { VERSION } from '../../core/version.ts';

/**
 * A release is a tarball of the package: the files `git ls-files` lists (tracked, plus new files
 * git does not ignore) or what `npm pack` packs. Its key is a hash of the content and of the
 * install command, so deploying the same thing twice reuses the release already on the host.
 */

/** The package root (where package.json is). */

const SECRET_FILE = /(^|\/)secrets\/(admin\.token|token\.key|turn\.secret|evidence\.key)$/;

export interface Release {
  /** `<version>-<UTC time>`, the directory name on the host. */
  id: string;
  version: string;
  /** Content key: same files and install command, same key. */
  key: string;
  tarball: string;
  /** Components to strip when unpacking (npm pack puts everything under package/). */
  strip: number;
  files: number;
  bytes: number;
}

export interface BuildReleaseOptions {
  method: 'git' | 'npm-pack';
  installCommand: string;
  /** Where the tarball is written. */
  workDir: string;
  /** Directories never packed, such as the provisioned files (they hold secrets). */
  exclude?: string[];
  root?: string;
  now?: () => Date;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]|\.\d+/g, '');
}

function packageVersion(root: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      name?: string;
      version?: string;
    };
    if (pkg.name !== 'returncam' || !pkg.version) throw new Error('not the returncam package');
    return pkg.version;
  } catch (err) {
    throw new UserError(`deploy.source ${root} is not a returncam checkout (${errorMessage(err)})`);
  }
}

/** Every file under `root/dir`, as paths relative to root, sorted. */
function filesUnder(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

export async function buildRelease(opts: BuildReleaseOptions): Promise<Release> {
  const root = opts.root ?? PACKAGE_ROOT;
  const version = opts.root ? packageVersion(root) : VERSION;
  const id = `${version}-${stamp(opts.now?.() ?? new Date())}`;
  const hash = createHash('sha256').update(`install:${opts.installCommand}\0`);
  const tarball = join(opts.workDir, `returncam-${id}.tgz`);
  try {
    if (opts.method === 'git') {
      if (!existsSync(join(root, '.git')))
        throw new UserError(
          `${root} is not a git checkout; set deploy.release: npm-pack in the fleet file`,
        );
      const listed = await execa('git', ['ls-files', '-z', '-co', '--exclude-standard'], {
        cwd: root,
      });
      const excluded = (opts.exclude ?? [])
        .map((d) => relative(root, resolve(d)))
        .filter((d) => d && !d.startsWith('..'));
      const files = [...new Set(listed.stdout.split('\0').filter(Boolean))]
        .filter((f) => !excluded.some((d) => f === d || f.startsWith(`${d}/`)))
        // provisioned secrets, wherever they were written, never go into a release
        .filter((f) => !SECRET_FILE.test(f))
        .filter((f) => {
          try {
            return statSync(join(root, f)).isFile();
          } catch {
            return false; // deleted but still tracked
          }
        })
        .sort();
      // The compiled copy goes along while it is current, so the node there starts without the
      // TypeScript loader too (a production install has no TypeScript to build it).
      if ('entry' in compiledEntry(root)) files.push(...filesUnder(root, 'dist'));
      for (const f of files)
        hash
          .update(`${f}\0`)
          .update(readFileSync(join(root, f)))
          .update('\0');
      const list = join(opts.workDir, `returncam-${id}.files`);
      writeFileSync(list, `${files.join('\0')}\0`);
      await execa('tar', ['-czf', tarball, '-C', root, '--null', '-T', list]);
      return {
        id,
        version,
        key: hash.digest('hex').slice(0, 32),
        tarball,
        strip: 0,
        files: files.length,
        bytes: statSync(tarball).size,
      };
    }
    const packed = await execa(
      'npm',
      ['pack', '--json', '--pack-destination', opts.workDir, '--ignore-scripts'],
      { cwd: root },
    );
    const info = (JSON.parse(packed.stdout) as { filename: string; entryCount: number }[])[0]!;
    const file = join(opts.workDir, info.filename);
    hash.update(readFileSync(file));
    return {
      id,
      version,
      key: hash.digest('hex').slice(0, 32),
      tarball: file,
      strip: 1,
      files: info.entryCount,
      bytes: statSync(file).size,
    };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot build the release (${opts.method}): ${errorMessage(err)}`);
  }
}
