import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Runs `code` as a process whose arguments end in `start` (as `returncam node start`'s do) with
 * one of the `scripts/*-profile.cjs` hooks `--require`d, and returns what the hook wrote: it must
 * exit cleanly, write exactly one file into `dir` and name that file on stderr.
 */
export async function runStartHook(
  script: string,
  code: string,
  env: Record<string, string>,
  dir: string,
  nodeFlags: string[] = [],
): Promise<string> {
  const r = await execa(
    process.execPath,
    [...nodeFlags, '--require', join(ROOT, 'scripts', script), '-e', code, 'start'],
    { env, reject: false, timeout: 20_000 },
  );
  expect(r.exitCode, r.stderr).toBe(0);
  const files = readdirSync(dir);
  expect(files).toHaveLength(1);
  expect(r.stderr).toContain(`wrote ${join(dir, files[0]!)}`);
  return readFileSync(join(dir, files[0]!), 'utf8');
}
