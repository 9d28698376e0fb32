import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { copyCheckout } from '../helpers/cli.ts';

/**
 * The README's quick start, from a copy of the repository as git has it: the first command's
 * `npm start` part must bring up a node with a demo case whose links work. (`npm install` itself
 * is what CI runs on a fresh clone.)
 */
describe('README quick start', () => {
  it('starts a node with a demo case whose buyer and staff links open', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const block = /## Quick start[\s\S]*?```sh\n([^\n]+)\n```[\s\S]*?```sh\n([^\n]+)\n```/.exec(
      readme,
    );
    expect(block?.[1]).toBe('npm install && npm start');
    expect(block?.[2]).toBe('npm test');

    const dir = await copyCheckout('returncam-quickstart-');

    // the same command, but on a free port so it cannot clash with a node already running here
    // its own process group, so Ctrl-C reaches npm and the node as it would in a terminal
    const proc = execa('npm', ['start'], {
      cwd: dir,
      env: { RETURNCAM_HTTP_PORT: '0', CI: '1' },
      reject: false,
      detached: true,
    });
    let stdout = '';
    try {
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`no demo links in 30 s:\n${stdout}`)), 30_000);
        proc.stdout?.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('staff (desktop):')) {
            clearTimeout(timer);
            res();
          }
        });
      });
      const buyer = /buyer \(phone\):\s+(\S+)/.exec(stdout)![1]!;
      const staff = /staff \(desktop\):\s+(\S+)/.exec(stdout)![1]!;
      for (const [link, role] of [
        [buyer, 'buyer'],
        [staff, 'staff'],
      ] as const) {
        const u = new URL(link);
        const token = u.hash.replace('#t=', '');
        const caseId = u.pathname.split('/')[2];
        const page = await fetch(new URL(u.pathname, u));
        expect(page.status).toBe(200);
        expect(page.headers.get('content-type')).toContain('text/html');
        const api = await fetch(new URL(`/api/cases/${caseId}`, u), {
          headers: { Authorization: `Bearer ${token}` },
        });
        expect(((await api.json()) as { role: string }).role).toBe(role);
      }
      // the data directory is ./data inside the clone
      expect(readFileSync(join(dir, 'data', 'admin.token'), 'utf8').length).toBeGreaterThan(20);
    } finally {
      if (proc.pid) process.kill(-proc.pid, 'SIGINT');
      const r = await proc;
      expect(r.stderr).toContain('node stopped');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
