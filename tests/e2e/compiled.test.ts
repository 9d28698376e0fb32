import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compiledEntry } from '../../bin/compiled.mjs';
import { buildRelease } from '../../src/node/fleet/release.ts';
import { copyCheckout, startNodeProcess } from '../helpers/cli.ts';

interface Health {
  runtime: { compiled: boolean };
  media: { mode: string; ready: boolean; workers: { state: string }[] };
}

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/healthz`)).json()) as Health;
}

/**
 * `npm install` compiles the sources (`prepare`), and bin/returncam runs the compiled copy while
 * it is current, from a copy of the checkout so nothing here is rebuilt under other tests.
 */
describe('the compiled CLI', () => {
  let dir: string;
  let config: string;

  beforeAll(async () => {
    dir = await copyCheckout('returncam-compiled-');
    config = join(dir, 'node.yaml');
    writeFileSync(config, 'media:\n  workers: 1\n');
    const built = await execa('node', ['scripts/build.mjs'], { cwd: dir, reject: false });
    expect(built.exitCode, built.stderr).toBe(0);
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the pages and runs media workers from dist/, and the sources again once one changes', async () => {
    expect(compiledEntry(dir)).toEqual({ entry: new URL(`file://${dir}/dist/cli/main.js`) });
    const bin = join(dir, 'bin', 'returncam');
    const node = await startNodeProcess(['--config', config, '--demo'], { bin, cwd: dir });
    try {
      // The pages and the database's migrations are read from src/ (they are not compiled), and
      // a worker thread loads the compiled worker.
      await expect
        .poll(() => health(node.url), { timeout: 15_000 })
        .toMatchObject({
          runtime: { compiled: true },
          media: { mode: 'workers', ready: true, workers: [{ state: 'ready' }] },
        });
      const buyer = /buyer \(phone\):\s+(\S+)/.exec(node.output().stdout)![1]!;
      const page = await fetch(new URL(buyer).href.replace(/#.*/, ''));
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script');
      const script = await fetch(new URL('/static/js/buyer.js', node.url));
      expect(script.status).toBe(200);
    } finally {
      await node.stop();
    }

    // A source file edited after the build: the sources run, not the stale copy.
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(dir, 'src', 'cli', 'main.ts'), later, later);
    expect(compiledEntry(dir)).toEqual({
      reason: `${join('src', 'cli', 'main.ts')} changed after the build`,
    });
    const again = await startNodeProcess([], { bin, cwd: dir });
    try {
      expect((await health(again.url)).runtime.compiled).toBe(false);
    } finally {
      await again.stop();
    }
  }, 60_000);

  it('a release built from a git checkout carries the current build', async () => {
    // Rebuilt so dist/ is current again after the previous test's edit.
    await execa('node', ['scripts/build.mjs'], { cwd: dir });
    await execa('git', ['init', '-q'], { cwd: dir });
    const work = mkdtempSync(join(tmpdir(), 'returncam-release-'));
    try {
      const release = await buildRelease({
        method: 'git',
        installCommand: 'true',
        workDir: work,
        root: dir,
      });
      const listed = (await execa('tar', ['-tzf', release.tarball])).stdout.split('\n');
      expect(listed).toContain('dist/BUILD');
      expect(listed).toContain('dist/cli/main.js');
      expect(listed).toContain('src/cli/main.ts');
      // Unpacked on the host (tar keeps the times), the build is still current there.
      const host = join(work, 'host');
      mkdirSync(host);
      await execa('tar', ['-xzf', release.tarball, '-C', host]);
      expect(compiledEntry(host)).toHaveProperty('entry');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('says why a build directory cannot be used', () => {
    const root = mkdtempSync(join(tmpdir(), 'returncam-stale-'));
    try {
      mkdirSync(join(root, 'src'));
      writeFileSync(join(root, 'src', 'a.ts'), 'export {};\n');
      expect(compiledEntry(root)).toEqual({
        reason: 'not built (no dist/BUILD; npm run build writes it)',
      });
      mkdirSync(join(root, 'dist'));
      writeFileSync(join(root, 'dist', 'BUILD'), '{}\n');
      const built = new Date(Date.now() - 10_000);
      utimesSync(join(root, 'dist', 'BUILD'), built, built);
      expect(compiledEntry(root)).toEqual({ reason: 'src/a.ts changed after the build' });
      // Declaration files are not compiled: editing one leaves the build current.
      const before = new Date(Date.now() - 20_000);
      utimesSync(join(root, 'src', 'a.ts'), before, before);
      writeFileSync(join(root, 'src', 'page.d.ts'), 'export {};\n');
      expect(compiledEntry(root)).toHaveProperty('entry');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
