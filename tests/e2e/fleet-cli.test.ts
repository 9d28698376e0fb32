import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/fleet.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { fileDir } from '../helpers/tmp.ts';

const tmp = fileDir('returncam-fleet-cli-');
const cli = (args: string[], cwd = tmp) => runCli(args, { cwd, env: { RETURNCAM_FLEET: '' } });

describe('returncam fleet init and node provision (as a process)', () => {
  it('fleet init writes configs/fleet.yaml and will not overwrite it without --force', async () => {
    const first = await cli(['fleet', 'init']);
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toBe('wrote configs/fleet.yaml');
    expect(readFileSync(join(tmp, 'configs/fleet.yaml'), 'utf8')).toBe(
      readFileSync('configs/fleet.example.yaml', 'utf8'),
    );
    const again = await cli(['fleet', 'init']);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toBe(
      'returncam: configs/fleet.yaml already exists; pass --force to replace it',
    );
    const forced = await cli(['fleet', 'init', '--force']);
    expect(forced.exitCode).toBe(0);
    expect(forced.stdout).toBe('replaced configs/fleet.yaml');
    const other = await cli(['fleet', 'init', '--out', 'elsewhere/fleet.yaml']);
    expect(other.exitCode).toBe(0);
    expect(existsSync(join(tmp, 'elsewhere/fleet.yaml'))).toBe(true);
  });

  it('node provision renders the files, hides secrets unless asked, and keeps them', async () => {
    const r = await cli(['node', 'provision', 'fra1']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`provisioned fra1 into ${join(tmp, 'provisioned/fra1')}`);
    expect(r.stdout).toMatch(/^FILE\s+MODE\s+ACTION\s+ON THE HOST$/m);
    expect(r.stdout).toMatch(
      /^secrets\/token\.key\s+0600\s+created\s+\/var\/lib\/returncam\/token\.key$/m,
    );
    expect(r.stdout).toMatch(
      /^returncam-node\.service\s+0644\s+created\s+\/etc\/systemd\/system\/returncam-node\.service \(systemd\)$/m,
    );
    expect(r.stderr).toContain('secrets are not printed (--show-secrets prints them)');
    const token = readFileSync(join(tmp, 'provisioned/fra1/secrets/admin.token'), 'utf8').trim();
    expect(r.stdout).not.toContain(token);

    const shown = await cli(['node', 'provision', 'fra1', '--show-secrets']);
    expect(shown.stdout).toContain(`secrets/admin.token:\n${token}\n`);
    expect(shown.stdout).toContain('-----BEGIN PRIVATE KEY-----');
    expect(shown.stdout).toMatch(/^secrets\/admin\.token\s+0600\s+kept/m);

    const json = JSON.parse((await cli(['node', 'provision', 'fra1', '--json'])).stdout) as {
      version: number;
      files: { name: string; mode: string; action: string }[];
      secrets?: unknown;
    };
    expect(json.version).toBe(1);
    expect(json.secrets).toBeUndefined();
    expect(json.files.find((f) => f.name === 'turnserver.conf')).toMatchObject({
      mode: '0600',
      action: 'unchanged',
    });

    const rotated = await cli(['node', 'provision', 'fra1', '--rotate']);
    expect(rotated.stdout).toMatch(/^secrets\/admin\.token\s+0600\s+rotated/m);
    expect(readFileSync(join(tmp, 'provisioned/fra1/secrets/admin.token'), 'utf8').trim()).not.toBe(
      token,
    );
  });

  it('says what is wrong with the fleet file or the warehouse', async () => {
    const unknown = await cli(['node', 'provision', 'zz9']);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toBe(
      `returncam: no warehouse zz9 in ${join(tmp, 'configs/fleet.yaml')} (it has: fra1, lax1)`,
    );
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(
      bad,
      'warehouses:\n  - id: a1\n    region: r\n    country: DE\n    host: h\n    publicHost: h\n    ports: { htp: 80 }\n',
    );
    const badKey = await cli(['node', 'provision', 'a1', '--fleet', bad]);
    expect(badKey.exitCode).toBe(1);
    expect(badKey.stderr).toBe(
      `returncam: fleet ${bad} is not valid:\n  warehouses.0.ports.htp: unknown key`,
    );
    const none = await cli(['fleet', 'status'], mkdtempSync(join(tmp, 'empty-')));
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toBe(
      'returncam: no fleet file at configs/fleet.yaml; create one with: returncam fleet init',
    );
    const usage = await cli(['node', 'deploy']);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain("missing required argument 'warehouse'");
  });
});

describe('returncam fleet status (two nodes up, one down)', () => {
  let a: TestNode;
  let b: TestNode;
  let downPort = 0;
  const fleet = (file: string, extra = '') => {
    const entry = (id: string, country: string, port: number, more = '') =>
      `  - { id: ${id}, region: test, country: ${country}, host: 127.0.0.1, publicHost: 127.0.0.1, ports: { http: ${port} }${more} }\n`;
    writeFileSync(
      join(tmp, file),
      `defaults:\n  turn: { enabled: false }\n  recording: { floor: 1MB }\nwarehouses:\n${entry('a1', 'DE', Number(new URL(a.url).port))}${entry('b2', 'US', Number(new URL(b.url).port), extra)}${file.includes('down') ? entry('c3', 'JP', downPort) : ''}`,
    );
    return join(tmp, file);
  };

  beforeAll(async () => {
    a = await startTestNode({ node: { id: 'a1' } });
    b = await startTestNode({ node: { id: 'b2' } });
    downPort = await freePort(); // nothing listens there
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('--json: a versioned object, every node with its numbers; exit 1 when one is down', async () => {
    const r = await cli(['fleet', 'status', '--fleet', fleet('fleet-down.yaml'), '--json']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('3 nodes: 2 ok, 0 unhealthy, 1 down');
    const body = JSON.parse(r.stdout) as {
      version: number;
      ok: boolean;
      nodes: Record<string, unknown>[];
    };
    expect(body.version).toBe(1);
    expect(body.ok).toBe(false);
    expect(body.nodes.map((n) => [n.id, n.state])).toEqual([
      ['a1', 'ok'],
      ['b2', 'ok'],
      ['c3', 'down'],
    ]);
    const up = body.nodes[0]!;
    expect(up).toMatchObject({
      reachable: true,
      version: '0.1.0',
      nodeId: 'a1',
      activeCases: 0,
      peers: 0,
      turn: 'off',
      problems: [],
      probe: { result: 'ok' },
    });
    expect(up.uptimeSeconds).toBeTypeOf('number');
    expect(up.rssBytes as number).toBeGreaterThan(10 * 1024 * 1024);
    expect(up.cpu).toBeTypeOf('number');
    expect(up.diskFreeBytes as number).toBeGreaterThan(1_000_000);
    const down = body.nodes[2]!;
    expect(down).toMatchObject({ reachable: false, version: null, uptimeSeconds: null });
    expect((down.probe as { result: string }).result).toBe(
      `cannot reach http://127.0.0.1:${downPort}: econnrefused`,
    );
  });

  it('prints a table; exit 0 when every node is ok', async () => {
    const r = await cli(['fleet', 'status', '--fleet', fleet('fleet-down.yaml')]);
    expect(r.exitCode).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^NODE\s+COUNTRY\s+STATE\s+VERSION\s+UPTIME\s+CASES\s+PEERS\s+CPU\s+RSS\s+DISK FREE\s+REC ERR\s+CERT\s+TURN\s+PROBE$/,
    );
    expect(lines[1]).toMatch(
      /^a1\s+DE\s+ok\s+0\.1\.0\s+\d+s\s+0\s+0\s+\d+%\s+[\d.]+ MiB\s+[\d.]+ [GT]iB\s+/,
    );
    expect(lines[3]).toMatch(
      /^c3\s+JP\s+down\s+-\s+-\s+-\s+-\s+-\s+-\s+-\s+-\s+-\s+off\s+failed \d+ms$/,
    );
    expect(r.stdout).toContain(`c3: cannot reach http://127.0.0.1:${downPort}: econnrefused`);

    const allUp = await cli(['fleet', 'status', '--fleet', fleet('fleet-up.yaml')]);
    expect(allUp.exitCode).toBe(0);
    expect(allUp.stderr).toBe('all 2 nodes ok');
  });

  it('a node below its recording floor is unhealthy', async () => {
    const r = await cli([
      'fleet',
      'status',
      '--json',
      '--fleet',
      fleet('fleet-full.yaml', ', recording: { floor: 1000TiB }'),
    ]);
    expect(r.exitCode).toBe(1);
    const b2 = (
      JSON.parse(r.stdout) as { nodes: { id: string; state: string; problems: string[] }[] }
    ).nodes[1]!;
    expect(b2.state).toBe('unhealthy');
    expect(b2.problems[0]).toMatch(/^recordings disk below its floor: .+ free, floor 1000 TiB$/);
  });

  it('--watch without a terminal prints a table per poll until Ctrl-C, then exits by the result', async () => {
    const p = execa(
      BIN,
      ['fleet', 'status', '--fleet', fleet('fleet-down.yaml'), '--watch', '--interval', '300ms'],
      {
        reject: false,
        cwd: tmp,
        env: { CI: '1' },
      },
    );
    let out = '';
    p.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(
      'two polls',
      () => ((out.match(/^# /gm) ?? []).length >= 2 ? true : undefined),
      15_000,
    );
    p.kill('SIGINT');
    const r = await p;
    expect(r.exitCode).toBe(1);
    expect(out).toMatch(
      /^# \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}3 nodes: 2 ok, 0 unhealthy, 1 down$/m,
    );
    expect((out.match(/^NODE\s+COUNTRY/gm) ?? []).length).toBeGreaterThanOrEqual(2);
  });

  // util-linux `script` provides the terminal
  it.skipIf(!existsSync('/usr/bin/script'))(
    '--watch on a terminal draws the live table with ink, and Ctrl-C ends it',
    async () => {
      // `script` gives the command a pseudo-terminal (with a size, and no output flush on ^C)
      const cmd = `stty cols 160 rows 40 noflsh; exec ${BIN} fleet status --fleet ${fleet('fleet-down.yaml')} --watch --interval 300ms`;
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', TERM: 'xterm-256color' };
      const p = execa('script', ['-qfec', cmd, '/dev/null'], {
        reject: false,
        env,
        extendEnv: false,
        stdin: 'pipe',
        timeout: 20_000,
      });
      let out = '';
      p.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      // drawn, then redrawn in place
      await waitFor(
        'two frames',
        () => ((out.match(/Ctrl-C to stop/g) ?? []).length >= 2 ? true : undefined),
        15_000,
      );
      p.stdin?.write('\x03');
      const r = await p;
      expect(r.timedOut).toBe(false);
      expect(out).toMatch(/NODE\s+COUNTRY\s+STATE/);
      const ESC = '\u001b';
      expect(out).toMatch(new RegExp(`${ESC}\\[32ma1\\s+DE\\s+ok`)); // green
      expect(out).toMatch(new RegExp(`${ESC}\\[31mc3\\s+JP\\s+down`)); // red
      expect(out).toMatch(/updated \d{4}-\d\d-\d\dT[\d:]+Z, every 300ms; Ctrl-C to stop/);
      expect(out).toContain(`${ESC}[1A`); // cursor moved up: redrawn in place, not appended
      // the exit code after Ctrl-C is checked without a terminal above: `script` does not pass it on
    },
  );
});
