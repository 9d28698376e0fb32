import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningNode, runCli, startNodeProcess } from '../helpers/cli.ts';
import { testDir } from '../helpers/tmp.ts';

let node: RunningNode;
const cli = (args: string[]) => runCli([...args, '--node', node.url, '--data', node.dataDir]);

beforeAll(async () => {
  node = await startNodeProcess();
});
afterAll(async () => {
  await node?.stop('SIGKILL');
});

describe('returncam case (CLI as a process)', () => {
  it('creates a case and prints links, as text and as versioned JSON', async () => {
    const text = await cli([
      'case',
      'create',
      '--order',
      'A-1',
      '--sku',
      'SKU-9',
      '--reason',
      'damaged',
    ]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/^case c_\S+ created \(order A-1, damaged\)$/m);
    expect(text.stdout).toContain(`buyer link: ${node.url}/b/`);
    expect(text.stdout).toContain(`staff link: ${node.url}/s/`);

    const json = await cli([
      'case',
      'create',
      '--order',
      'A-2',
      '--sku',
      'SKU-9',
      '--reason',
      'wrong_item',
      '--marketplace',
      'amazon',
      '--json',
    ]);
    expect(json.exitCode).toBe(0);
    const body = JSON.parse(json.stdout) as Record<string, string>;
    expect(body).toMatchObject({ version: 1, id: expect.stringMatching(/^c_/) });
    for (const k of ['buyerUrl', 'staffUrl', 'buyerToken', 'staffToken', 'expiresAt'])
      expect(body[k]).toBeTruthy();
    expect(new Date(body.expiresAt!).getTime()).toBeGreaterThan(Date.now());
    // the buyer token opens its case through the page API
    const res = await fetch(`${node.url}/api/cases/${body.id}`, {
      headers: { Authorization: `Bearer ${body.buyerToken}` },
    });
    expect(res.status).toBe(200);
  });

  it('walks a case through its life: list, show, decide, close, link, revoke', async () => {
    const created = JSON.parse(
      (
        await cli([
          'case',
          'create',
          '--order',
          'L-1',
          '--sku',
          'S',
          '--reason',
          'defective',
          '--json',
        ])
      ).stdout,
    ) as { id: string; buyerToken: string };
    const id = created.id;

    const list = await cli(['case', 'list', '--status', 'open']);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^CASE\s+ORDER/m);
    expect(list.stdout).toContain(id);

    const decided = await cli([
      'case',
      'decide',
      id,
      '--outcome',
      'partial_refund',
      '--disposition',
      'refurbish',
      '--note',
      'scratch',
    ]);
    expect(decided.exitCode).toBe(0);
    expect(decided.stdout).toContain('partial_refund, refurbish');

    const link = await cli(['case', 'link', id, '--role', 'buyer', '--ttl', '30m', '--json']);
    const fresh = JSON.parse(link.stdout) as { token: string; expiresAt: string };
    expect(new Date(fresh.expiresAt).getTime() - Date.now()).toBeLessThanOrEqual(30 * 60_000);

    const revoked = await cli(['case', 'revoke', id, '--role', 'buyer']);
    expect(revoked.stdout).toContain('revoked 2 buyer links');
    const denied = await fetch(`${node.url}/api/cases/${id}`, {
      headers: { Authorization: `Bearer ${fresh.token}` },
    });
    expect(denied.status).toBe(401);

    const closed = await cli(['case', 'close', id]);
    expect(closed.stdout).toContain(`case ${id} closed`);

    const show = await cli(['case', 'show', id]);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/^status\s+closed$/m);
    const types = ['case.created', 'case.decided', 'link.revoked', 'case.closed'];
    for (const t of types) expect(show.stdout).toContain(t);
    expect(show.stdout).toMatch(/event log head [0-9a-f]{64}/);

    const json = JSON.parse((await cli(['case', 'show', id, '--json'])).stdout) as {
      version: number;
      case: { status: string };
    };
    expect(json).toMatchObject({ version: 1, case: { status: 'closed' } });
  });

  it('says what to fix: usage errors exit 2, user errors exit 1, no stack traces', async () => {
    const badReason = await cli([
      'case',
      'create',
      '--order',
      'X',
      '--sku',
      'Y',
      '--reason',
      'broken',
    ]);
    expect(badReason.exitCode).toBe(2);
    expect(badReason.stderr).toContain('Allowed choices are damaged, defective');

    const missing = await cli(['case', 'create', '--sku', 'Y', '--reason', 'damaged']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("required option '--order <id>'");

    const unknownCase = await cli(['case', 'show', 'c_nope']);
    expect(unknownCase.exitCode).toBe(1);
    expect(unknownCase.stderr).toBe('returncam: node: case c_nope does not exist');

    const wrongToken = await runCli(['case', 'list', '--node', node.url, '--token', 'wrong']);
    expect(wrongToken.exitCode).toBe(1);
    expect(wrongToken.stderr).toContain('admin token is wrong');

    const down = await runCli(['case', 'list', '--node', 'http://127.0.0.1:1', '--token', 'x']);
    expect(down.exitCode).toBe(1);
    expect(down.stderr).toContain('cannot reach the node at http://127.0.0.1:1');
    expect(down.stderr).not.toContain('    at ');

    const noToken = await runCli(['case', 'list', '--node', node.url, '--data', '/nonexistent']);
    expect(noToken.exitCode).toBe(1);
    expect(noToken.stderr).toContain('no admin token');

    const unknownCmd = await runCli(['frobnicate']);
    expect(unknownCmd.exitCode).toBe(2);

    const help = await runCli(['case', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('create');
  });
});

describe('returncam node start (as a process)', () => {
  it('refuses a bad config with the key path, and a busy port clearly', async () => {
    const dir = testDir('returncam-badcfg-');
    const cfg = join(dir, 'node.yaml');
    writeFileSync(cfg, 'http:\n  prot: 80\n');
    const bad = await runCli(['node', 'start', '--config', cfg]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('http.prot: unknown key');

    const port = new URL(node.url).port;
    const busy = await runCli(['node', 'start', '--port', port, '--data', dir]);
    expect(busy.exitCode).toBe(1);
    expect(busy.stderr).toContain(`port ${port} on 127.0.0.1 is in use`);

    const badPort = await runCli(['node', 'start', '--port', 'eighty']);
    expect(badPort.exitCode).toBe(1);
    expect(badPort.stderr).toContain('--port must be a whole number');
  });

  it('shuts down cleanly on SIGINT: exit 0, sessions closed, data kept', async () => {
    const dir = testDir('returncam-stop-');
    const n = await startNodeProcess(['--demo'], { dataDir: dir });
    expect(n.output().stdout).toMatch(
      /buyer \(phone\):\s+http:\/\/127\.0\.0\.1:\d+\/b\/c_\S+#t=v1\./,
    );
    const stopped = await n.stop('SIGINT');
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stderr).toContain('node stopped');
    // the demo case is reused on the next start
    const again = await startNodeProcess(['--demo'], { dataDir: dir });
    const first = /Demo case (c_\S+)/.exec(stopped.stdout)?.[1];
    expect(again.output().stdout).toContain(`Demo case ${first}`);
    expect((await again.stop('SIGTERM')).exitCode).toBe(0);
  });
});
