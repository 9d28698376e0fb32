import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { turnAllocate } from '../../src/node/fleet/stun.ts';
import { NODE_START_FLAGS } from '../../src/node/heapFlags.ts';
import { runCli } from '../helpers/cli.ts';
import { alive, freePort, type Sshd, startSshd, treeSnapshot } from '../helpers/fleet.ts';

/**
 * `node deploy` end to end: the CLI as a process, Debian's sshd on a loopback port, and a
 * "host" that is a temp directory on this machine (no systemd here, so the fleet's start and
 * stop commands run the node and coturn in the background with pid files).
 */

const isRoot = process.getuid?.() === 0;
const missing = [
  !isRoot && 'root (sshd needs it)',
  !existsSync('/usr/sbin/sshd') && 'openssh-server (scripts/install-test-deps.sh)',
  !existsSync('/usr/bin/turnserver') && 'coturn (scripts/install-test-deps.sh)',
].filter(Boolean);
if (missing.length) console.warn(`fleet deploy tests skipped: needs ${missing.join(', ')}`);

const tmp = mkdtempSync(join(tmpdir(), 'returncam-deploy-test-'));
const host = join(tmp, 'host'); // the target machine's file system, as far as the fleet knows
const prov = join(tmp, 'provisioned');
const fleetFile = join(tmp, 'fleet.yaml');
let sshd: Sshd | undefined;
let httpPort = 0;
let turnPort = 0;

function writeFleet(file: string, deploy: Record<string, string>): string {
  const d = Object.entries(deploy)
    .map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  writeFileSync(
    file,
    `version: 1
defaults:
  ssh:
    user: root
    port: ${sshd!.port}
    identityFile: ssh/client_ed25519
    knownHostsFile: ssh/known_hosts
  listen: 127.0.0.1
  ports: { http: ${httpPort}, turn: ${turnPort}, relay: [63000, 63199] }
  turn: { listeningIps: [127.0.0.1], relayIps: [127.0.0.1] }
  recording: { floor: 1MB }
  paths:
    installDir: ${host}/opt/returncam
    configDir: ${host}/etc/returncam
    dataDir: ${host}/var/lib/returncam
    runDir: ${host}/run/returncam
    logDir: ${host}/var/log/returncam
  service:
    manager: command
    # the release links this checkout's node_modules, whose addons are built for the Node
    # running the tests (not necessarily /usr/bin/node)
    nodeBinary: ${process.execPath}
    # keep coturn's SQLite database inside the test's host directory
    turnStartCommand: (exec setsid {turnBinary} -c {configDir}/turnserver.conf --pidfile= --db {dataDir}/turndb) >>{logDir}/turn.log 2>&1 </dev/null & echo $! >{runDir}/turn.pid
  deploy:
    release: npm-pack
    source: ./source
${d}
warehouses:
  - id: t1
    region: test
    country: DE
    host: 127.0.0.1
    publicHost: 127.0.0.1
`,
  );
  return file;
}

const NODE_MODULES = resolve('node_modules');
const install = `ln -s ${NODE_MODULES} node_modules`;
const deploy = (file: string, ...more: string[]) =>
  runCli(['node', 'deploy', 't1', '--fleet', file, '--out', prov, ...more], {
    env: { RETURNCAM_FLEET: '' },
  });
const pidOf = (name: string) =>
  Number(readFileSync(join(host, 'run/returncam', `${name}.pid`), 'utf8'));
const current = () => readlinkSync(join(host, 'opt/returncam/current'));
const healthz = async () =>
  (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as {
    status: string;
    nodeId: string;
    version: string;
    uptimeSeconds: number;
  };
/** What deploy manages; the node's own database and the logs change while it runs. */
const managed = () => treeSnapshot(host).filter((l) => !/returncam\.db|\/log\/|turndb/.test(l));

describe.skipIf(missing.length > 0)('returncam node deploy (over ssh, to a temp host)', () => {
  beforeAll(async () => {
    sshd = await startSshd(join(tmp, 'ssh'));
    httpPort = await freePort();
    turnPort = await freePort();
    // the release source: this checkout as git lists it, copied, so files other people change
    // while the tests run cannot change the release between two deploys
    const files = (await execa('git', ['ls-files', '-co', '--exclude-standard'])).stdout
      .split('\n')
      .filter((f) => f && existsSync(f) && statSync(f).isFile());
    for (const f of files) cpSync(f, join(tmp, 'source', f));
    writeFleet(fleetFile, { installCommand: install, healthTimeout: '20s' });
  });

  afterAll(async () => {
    // stop what the deploys started, by the pids they wrote
    for (const name of ['node', 'turn']) {
      try {
        const pid = pidOf(name);
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // never started
      }
    }
    await sshd?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('--dry-run on a fresh host prints the plan and changes nothing', async () => {
    const r = await deploy(fleetFile, '--dry-run');
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(
      /^plan for t1 on root@127\.0\.0\.1:\d+ \(dry run: nothing was changed\)$/m,
    );
    expect(r.stdout).toMatch(/^done {4}inspect host.*current release none$/m);
    expect(r.stdout).toMatch(/^planned install dependencies: would run `ln -s /m);
    expect(r.stdout).toMatch(
      /^planned switch release: would point current at 0\.1\.0-\d{8}T\d{6}Z/m,
    );
    expect(r.stdout).toMatch(/^planned restart: would restart coturn and the node \(command\)$/m);
    expect(existsSync(host)).toBe(false);
    expect(existsSync(prov)).toBe(false);
  });

  let firstRelease = '';
  it('deploys: release beside the old one, files, switch, restart; node and coturn answer', async () => {
    const r = await deploy(fleetFile);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const step of [
      'inspect host',
      'provision',
      'build release',
      'upload release',
      'install dependencies',
      'upload config',
      'switch release',
      'restart',
      'health check',
      'TURN allocation',
    ])
      expect(r.stderr).toMatch(new RegExp(`^done +${step}`, 'm'));
    expect(r.stderr).toMatch(/^done +TURN allocation.*relayed 127\.0\.0\.1:63\d{3}/m);
    expect(r.stdout).toMatch(/^deployed t1: release 0\.1\.0-\d{8}T\d{6}Z is running on root@/m);

    firstRelease = current();
    expect(firstRelease).toMatch(/^releases\/0\.1\.0-\d{8}T\d{6}Z$/);
    const rel = join(host, 'opt/returncam', firstRelease);
    expect(existsSync(join(rel, 'bin/returncam'))).toBe(true);
    expect(readFileSync(join(rel, '.release'), 'utf8').trim()).toMatch(/^[0-9a-f]{32}$/);
    const h = await healthz();
    expect(h).toMatchObject({ status: 'ok', nodeId: 't1', version: '0.1.0' });
    // the node runs with the young generation the benchmarks measured it with
    const argv = readFileSync(`/proc/${pidOf('node')}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(1, 1 + NODE_START_FLAGS.length)).toEqual(NODE_START_FLAGS);

    // secrets sit in the node's data directory, mode 0600, equal to the provisioned ones
    const data = join(host, 'var/lib/returncam');
    for (const s of ['admin.token', 'token.key', 'turn.secret', 'evidence.key']) {
      expect(statSync(join(data, s)).mode & 0o777, s).toBe(0o600);
      expect(readFileSync(join(data, s), 'utf8')).toBe(
        readFileSync(join(prov, 't1/secrets', s), 'utf8'),
      );
    }
    expect(statSync(join(host, 'etc/returncam/turnserver.conf')).mode & 0o777).toBe(0o600);

    // the deployed node hands out TURN credentials its coturn accepts
    const admin = readFileSync(join(prov, 't1/secrets/admin.token'), 'utf8').trim();
    const created = (await (
      await fetch(`http://127.0.0.1:${httpPort}/api/admin/cases`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ orderId: 'D-1', sku: 'S', reason: 'defective' }),
      })
    ).json()) as { case: { id: string }; links: { staff: { token: string } } };
    const ice = (await (
      await fetch(`http://127.0.0.1:${httpPort}/api/cases/${created.case.id}/ice`, {
        headers: { Authorization: `Bearer ${created.links.staff.token}` },
      })
    ).json()) as { iceServers: { urls: string[]; username: string; credential: string }[] };
    const turn = ice.iceServers[0]!;
    expect(turn.urls[0]).toBe(`turn:127.0.0.1:${turnPort}?transport=udp`);
    const a = await turnAllocate({
      host: '127.0.0.1',
      port: turnPort,
      username: turn.username,
      password: turn.credential,
    });
    expect(a.relayed.port).toBeGreaterThanOrEqual(63000);
  });

  it('deploying the same again changes nothing and restarts nothing', async () => {
    const pid = pidOf('node');
    const turnPid = pidOf('turn');
    const before = managed();
    const r = await deploy(fleetFile);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^t1 already runs release 0\.1\.0-\S+; nothing changed$/m);
    expect(r.stderr).toMatch(/^skipped upload release: 0\.1\.0-\S+ is already on the host$/m);
    expect(r.stderr).toMatch(/^skipped upload config: every file on the host is current$/m);
    expect(r.stderr).toMatch(/^skipped restart: nothing to restart$/m);
    expect(r.stderr).toMatch(/^done +health check/m);
    expect(pidOf('node')).toBe(pid);
    expect(pidOf('turn')).toBe(turnPid);
    expect(alive(pid)).toBe(true);
    expect(managed()).toEqual(before);
  });

  it('--dry-run on a deployed host changes nothing either', async () => {
    const before = managed();
    const r = await deploy(
      writeFleet(join(tmp, 'fleet-next.yaml'), {
        installCommand: `${install} # next`,
        healthTimeout: '20s',
      }),
      '--dry-run',
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^planned upload release: would upload/m);
    expect(r.stdout).toMatch(/^planned restart: would restart the node \(command\)$/m);
    expect(managed()).toEqual(before);
  });

  it('a failing step is named, and the running node is left alone', async () => {
    const pid = pidOf('node');
    const r = await deploy(
      writeFleet(join(tmp, 'fleet-broken-install.yaml'), {
        installCommand: 'echo "npm ERR! network unreachable" >&2; exit 7',
        healthTimeout: '20s',
      }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^failed +install dependencies: exit 7 on root@127\.0\.0\.1:\d+/m);
    expect(r.stderr).toContain('npm ERR! network unreachable');
    expect(r.stderr).toMatch(
      /^returncam: deploy t1: step "install dependencies" failed: exit 7 on root@/m,
    );
    expect(r.stderr).toContain('nothing was switched; the host runs what it ran before');
    expect(r.stderr).not.toMatch(/switch release|restart/);
    expect(r.stdout).toBe('');
    expect(current()).toBe(firstRelease);
    expect(readdirSync(join(host, 'opt/returncam/releases'))).toEqual([
      firstRelease.replace('releases/', ''),
    ]);
    expect(pidOf('node')).toBe(pid);
    expect((await healthz()).status).toBe('ok');
  });

  it('a release that fails its health check is rolled back to the previous one', async () => {
    const r = await deploy(
      writeFleet(join(tmp, 'fleet-broken-release.yaml'), {
        // installs, but the release cannot start
        installCommand: `${install} && echo 'throw new Error("broken release")' > src/cli/main.ts`,
        healthTimeout: '4s',
      }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^done +switch release.*: current → 0\.1\.0-\S+ \(was 0\.1\.0-/m);
    expect(r.stderr).toMatch(/^failed +health check: .*did not answer ok within 4 s$/m);
    expect(r.stderr).toMatch(
      new RegExp(
        `^done +roll back.*current → ${firstRelease.replace('releases/', '')} again, previous config restored; it answers /healthz$`,
        'm',
      ),
    );
    expect(r.stderr).toMatch(/^returncam: deploy t1: step "health check" failed/m);
    expect(current()).toBe(firstRelease);
    const h = await healthz();
    expect(h).toMatchObject({ status: 'ok', nodeId: 't1' });
    expect(h.uptimeSeconds).toBeLessThan(30);
  });
});
