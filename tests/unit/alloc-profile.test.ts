import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain JavaScript script, typed by what it is used for here
import { summarize } from '../../scripts/alloc-profile-summary.mjs';
import { runStartHook } from '../helpers/startHook.ts';

const ROOT = join(import.meta.dirname, '..', '..');

describe('scripts/alloc-profile.cjs and its summary', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('samples what a `start` process allocates and names the function that did (inlining off)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-alloc-'));
    // a process that keeps allocating small arrays from one named function for ~1.5 s
    const code = `
      const keep = [];
      function makeGarbage() { const a = []; for (let i = 0; i < 64; i++) a.push({ i }); return a; }
      const end = Date.now() + 1500;
      const t = setInterval(() => { for (let k = 0; k < 2000; k++) keep[k % 10] = makeGarbage(); if (Date.now() > end) clearInterval(t); }, 1);
    `;
    const written = await runStartHook(
      'alloc-profile.cjs',
      code,
      {
        RETURNCAM_ALLOC_DIR: dir,
        RETURNCAM_ALLOC_DELAY: '0.2',
        RETURNCAM_ALLOC_SECONDS: '0.8',
        // without it the allocation is put on the callback makeGarbage is inlined into
        RETURNCAM_ALLOC_NO_INLINING: '1',
      },
      dir,
    );
    const s = summarize(JSON.parse(written), 5) as {
      totalBytes: number;
      sites: { name: string; bytes: number }[];
      stacks: { stack: string; bytes: number }[];
    };
    expect(s.totalBytes).toBeGreaterThan(1024 * 1024);
    expect(s.sites[0]!.name).toMatch(/^makeGarbage /);
    expect(s.sites[0]!.bytes).toBeGreaterThan(s.totalBytes / 2);
    expect(s.stacks[0]!.stack).toMatch(/makeGarbage [^>]*$/);
  });

  it('the summary refuses a file that is not a profile, saying so', async () => {
    dir = mkdtempSync(join(tmpdir(), 'returncam-alloc-'));
    const file = join(dir, 'x.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, '{"nodes": []}');
    const r = await execa(
      process.execPath,
      [join(ROOT, 'scripts', 'alloc-profile-summary.mjs'), file],
      {
        reject: false,
      },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('not a sampling heap profile');
  });
});
