import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { errorMessage, UserError } from '../../core/errors.ts';
import { NODE_START_FLAGS } from '../heapFlags.ts';
import { turnRestCredential } from '../http/turnRoutes.ts';
import { type Warehouse, warehouseUrls } from './fleetConfig.ts';
import { type ProvisionedFile, provisionWarehouse } from './provision.ts';
import { buildRelease, type Release } from './release.ts';
import { NODE_UNIT, TURN_UNIT } from './render.ts';
import { SshTarget, shq } from './SshTarget.ts';
import { formatBytes } from './status.ts';
import { turnAllocate } from './stun.ts';

/**
 * `node deploy`: puts a release and the provisioned files on a warehouse host over ssh and
 * switches to them, in an order that keeps the running node safe:
 *
 *   inspect host → provision (local) → build release (local) → upload release → install
 *   dependencies → upload config → switch release → restart → health check → TURN allocation
 *   → clean up
 *
 * The new release is unpacked and installed beside the running one; `current` (a symlink) is
 * switched with a rename only once that worked, and put back, with the previous config, when the
 * restarted node fails its health or TURN check. Every step is reported; running it again with
 * nothing changed changes nothing. `dryRun` inspects the host read-only and reports the plan.
 */

export type StepStatus = 'done' | 'skipped' | 'planned' | 'failed';

export interface DeployStep {
  name: string;
  status: StepStatus;
  detail: string;
  ms: number;
}

export interface DeployOptions {
  warehouse: Warehouse;
  /** The provisioned files' directory (OUT; files are in OUT/<warehouse>/). */
  outDir: string;
  dryRun?: boolean;
  onStep?: (step: DeployStep) => void;
  now?: () => Date;
}

export interface DeployResult {
  warehouse: string;
  target: string;
  dryRun: boolean;
  manager: 'systemd' | 'command';
  release: { id: string; key: string; reused: boolean };
  previous: string | null;
  /** False when the host already ran exactly this. */
  changed: boolean;
  steps: DeployStep[];
}

export class DeployError extends UserError {
  override name = 'DeployError';
  constructor(
    message: string,
    readonly step: string,
    readonly steps: DeployStep[],
  ) {
    super(message);
  }
}

/** A step's own failure: its name goes into the message. */
class StepFailed extends Error {}

const DEFAULT_COMMANDS = {
  // the subshell execs into the process, so $! is its pid; its output never holds the ssh session
  start: `(cd "$(readlink -f {installDir}/current)" && exec setsid {nodeBinary} ${NODE_START_FLAGS.join(' ')} bin/returncam node start --config {configDir}/node.yaml) >>{logDir}/node.log 2>&1 </dev/null & echo $! >{runDir}/node.pid`,
  stop: 'stop_pid {runDir}/node.pid',
  turnStart:
    '(exec setsid {turnBinary} -c {configDir}/turnserver.conf --pidfile=) >>{logDir}/turn.log 2>&1 </dev/null & echo $! >{runDir}/turn.pid',
  turnStop: 'stop_pid {runDir}/turn.pid',
};

/** Replaces {installDir}, {configDir}, … with the warehouse's (quoted) values. */
export function expandCommand(cmd: string, w: Warehouse): string {
  const vars: Record<string, string> = {
    ...w.paths,
    nodeBinary: w.service.nodeBinary,
    turnBinary: w.service.turnBinary,
    user: w.service.user,
  };
  return cmd.replace(/\{(\w+)\}/g, (all, k: string) => (k in vars ? shq(vars[k]!) : all));
}

function preamble(w: Warehouse): string {
  return `set -euo pipefail
umask 022
INSTALL=${shq(w.paths.installDir)}
CONFIG=${shq(w.paths.configDir)}
DATA=${shq(w.paths.dataDir)}
# stop_pid FILE: SIGINT the process named in FILE, wait up to 15 s, then SIGKILL
stop_pid() {
  local f=$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill -INT "$p" || true
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" || true; fi
  fi
  rm -f "$f"
}
`;
}

interface HostFacts {
  nodeVersion: string | null;
  systemd: boolean;
  turnserver: boolean;
  current: string | null;
  releases: Map<string, string>;
  sums: Map<string, string>;
  turnRunning: boolean;
}

function parseFacts(stdout: string): HostFacts {
  const facts: HostFacts = {
    nodeVersion: null,
    systemd: false,
    turnserver: false,
    current: null,
    releases: new Map(),
    sums: new Map(),
    turnRunning: false,
  };
  for (const line of stdout.split('\n')) {
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (kv) {
      const [, k, v] = kv;
      if (k === 'node') facts.nodeVersion = v && v !== 'none' ? v : null;
      if (k === 'systemd') facts.systemd = v === 'yes';
      if (k === 'turnserver') facts.turnserver = v === 'yes';
      if (k === 'current') facts.current = v ? basename(v) : null;
      if (k === 'turnrunning') facts.turnRunning = v === 'yes';
      continue;
    }
    const rel = /^release (\S+) (\S+)$/.exec(line);
    if (rel) facts.releases.set(rel[2]!, rel[1]!);
    const sum = /^sum ([0-9a-f]{64})\s+(.+)$/.exec(line);
    if (sum) facts.sums.set(sum[2]!, sum[1]!);
  }
  return facts;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function tail(text: string, lines = 15): string {
  const t = text.trim().split('\n').slice(-lines).join('\n');
  return t ? `\n${t}` : '';
}

async function healthyNode(
  url: string,
  id: string,
  timeoutMs: number,
): Promise<{ version: string; uptimeSeconds: number } | undefined> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    const b = (await res.json()) as {
      status?: string;
      nodeId?: string;
      version?: string;
      uptimeSeconds?: number;
    };
    if (res.status === 200 && b.status === 'ok' && b.nodeId === id)
      return { version: b.version ?? '', uptimeSeconds: b.uptimeSeconds ?? 0 };
  } catch {
    // not answering (yet)
  }
  return undefined;
}

export async function deployWarehouse(opts: DeployOptions): Promise<DeployResult> {
  const w = opts.warehouse;
  const dryRun = opts.dryRun ?? false;
  const urls = warehouseUrls(w);
  const workDir = mkdtempSync(join(tmpdir(), 'returncam-deploy-'));
  const ssh = new SshTarget({
    host: w.host,
    user: w.ssh.user,
    port: w.ssh.port,
    identityFile: w.ssh.identityFile,
    knownHostsFile: w.ssh.knownHostsFile,
    options: w.ssh.options,
  });
  const steps: DeployStep[] = [];
  let current = '';

  const report = (name: string, status: StepStatus, detail: string, ms = 0) => {
    const s = { name, status, detail, ms };
    steps.push(s);
    opts.onStep?.(s);
  };
  const step = async <T>(
    name: string,
    run: () => Promise<{ value: T; status?: StepStatus; detail: string }>,
  ): Promise<T> => {
    current = name;
    const t0 = Date.now();
    const r = await run();
    report(name, r.status ?? 'done', r.detail, Date.now() - t0);
    return r.value;
  };
  const remote = async (script: string, o: { timeoutMs?: number; inputFile?: string } = {}) => {
    const r = await ssh.run(`${preamble(w)}\n${script}`, o);
    if (r.exitCode !== 0)
      throw new StepFailed(`exit ${r.exitCode} on ${ssh.name}${tail(`${r.stdout}\n${r.stderr}`)}`);
    return r.stdout;
  };

  try {
    const files: ProvisionedFile[] = [];
    let manager: 'systemd' | 'command' = w.service.manager === 'systemd' ? 'systemd' : 'command';

    // 1. what is on the host now (read-only)
    const facts = await step('inspect host', async () => {
      const provisioned = provisionWarehouse({
        warehouse: w,
        outDir: opts.outDir,
        dryRun: true,
      });
      files.push(...provisioned.files);
      const all = provisioned.files.map((f) => f.remote);
      const out = await remote(`
echo "node=$(${shq(w.service.nodeBinary)} --version 2>/dev/null || echo none)"
echo "systemd=$([ -d /run/systemd/system ] && command -v systemctl >/dev/null && echo yes || echo no)"
echo "turnserver=$([ -x ${shq(w.service.turnBinary)} ] && echo yes || echo no)"
command -v tar >/dev/null || { echo "tar is not installed" >&2; exit 3; }
echo "current=$(readlink "$INSTALL/current" 2>/dev/null || true)"
for d in "$INSTALL"/releases/*/; do
  [ -f "$d.release" ] && echo "release $(basename "$d") $(cat "$d.release")"
done
for f in ${all.map(shq).join(' ')}; do
  [ -f "$f" ] && echo "sum $(sha256sum "$f" | cut -d' ' -f1) $f"
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  echo "turnrunning=$(systemctl is-active --quiet ${TURN_UNIT} && echo yes || echo no)"
else
  p=$(cat ${shq(`${w.paths.runDir}/turn.pid`)} 2>/dev/null || true)
  echo "turnrunning=$([ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo yes || echo no)"
fi
true`);
      const f = parseFacts(out);
      const major = Number(/^v(\d+)/.exec(f.nodeVersion ?? '')?.[1] ?? 0);
      if (!f.nodeVersion)
        throw new StepFailed(
          `${w.service.nodeBinary} is not on the host; install Node.js 20 or newer (or set service.nodeBinary)`,
        );
      if (major < 20)
        throw new StepFailed(
          `Node.js ${f.nodeVersion} on the host is too old; returncam needs 20+`,
        );
      if (w.turn.enabled && !f.turnserver)
        throw new StepFailed(
          `coturn is not installed on the host (${w.service.turnBinary}); apt-get install coturn, or set turn.enabled: false`,
        );
      if (w.service.manager === 'systemd' && !f.systemd)
        throw new StepFailed('service.manager is systemd but the host does not run systemd');
      manager = w.service.manager === 'auto' ? (f.systemd ? 'systemd' : 'command') : manager;
      return {
        value: f,
        detail: `${ssh.name}: node ${f.nodeVersion}, ${manager === 'systemd' ? 'systemd' : 'no systemd (start/stop commands)'}, current release ${f.current ?? 'none'}`,
      };
    });
    const healthyBefore = await healthyNode(urls.statusUrl, w.id, 2000);

    // 2. the files the host needs, rendered locally (secrets kept)
    const provisioned = await step('provision', async () => {
      const r = provisionWarehouse({ warehouse: w, outDir: opts.outDir, dryRun });
      files.splice(0, files.length, ...r.files);
      const fresh = r.files.filter((f) => f.action === 'created' || f.action === 'rotated');
      return {
        value: r,
        status: dryRun ? 'planned' : 'done',
        detail: `${r.dir}${fresh.length ? `: ${dryRun ? 'would create' : 'created'} ${fresh.map((f) => f.name).join(', ')}` : ''}`,
      };
    });
    const changed = files.filter(
      (f) =>
        (!f.systemdOnly || manager === 'systemd') && facts.sums.get(f.remote) !== sha256(f.content),
    );
    const changedNames = new Set(changed.map((f) => f.name));

    // 3. the release, as a tarball with a content key
    const release: Release = await step('build release', async () => {
      const r = await buildRelease({
        method: w.deploy.release,
        installCommand: w.deploy.installCommand,
        workDir,
        root: w.deploy.source,
        exclude: [opts.outDir],
        now: opts.now,
      });
      return {
        value: r,
        detail: `returncam ${r.version} (${w.deploy.release}), ${r.files} files, ${formatBytes(r.bytes)}, key ${r.key.slice(0, 12)}`,
      };
    });
    const existing = facts.releases.get(release.key);
    const releaseId = existing ?? release.id;
    const releaseDir = `${w.paths.installDir}/releases/${releaseId}`;
    const switching = facts.current !== releaseId;
    const previous = facts.current;

    // 4-5. unpack and install beside the running release
    await step('upload release', async () => {
      if (existing)
        return {
          value: undefined,
          status: 'skipped',
          detail: `${existing} is already on the host`,
        };
      if (dryRun)
        return {
          value: undefined,
          status: 'planned',
          detail: `would upload ${formatBytes(release.bytes)} and unpack it into ${releaseDir}`,
        };
      // the tarball streams through the same ssh connection that unpacks it
      await remote(
        `part=${shq(`${releaseDir}.partial`)}
mkdir -p "$INSTALL/releases"
rm -rf "$part" && mkdir -p "$part"
tar -xzf - -C "$part" --no-same-owner${release.strip ? ` --strip-components=${release.strip}` : ''}`,
        { inputFile: release.tarball },
      );
      return {
        value: undefined,
        detail: `${formatBytes(release.bytes)} into ${releaseDir}.partial`,
      };
    });
    await step('install dependencies', async () => {
      if (existing)
        return { value: undefined, status: 'skipped', detail: `${existing} is already installed` };
      if (dryRun)
        return {
          value: undefined,
          status: 'planned',
          detail: `would run \`${w.deploy.installCommand}\` in ${releaseDir}`,
        };
      try {
        await remote(
          `cd ${shq(`${releaseDir}.partial`)}\n( ${w.deploy.installCommand} ) </dev/null\necho ${shq(release.key)} > .release\ncd /\nmv -T ${shq(`${releaseDir}.partial`)} ${shq(releaseDir)}`,
          { timeoutMs: 30 * 60_000 },
        );
      } catch (err) {
        await remote(`rm -rf ${shq(`${releaseDir}.partial`)}`).catch(() => undefined);
        throw err;
      }
      return { value: undefined, detail: `\`${w.deploy.installCommand}\` in ${releaseDir}` };
    });

    // 6. config and secrets, each file backed up before it is replaced
    const owner = (f: ProvisionedFile) =>
      manager !== 'systemd' || f.owner === 'root'
        ? ''
        : f.owner === 'node'
          ? w.service.user
          : w.service.turnUser;
    await step('upload config', async () => {
      if (!changed.length)
        return { value: undefined, status: 'skipped', detail: 'every file on the host is current' };
      const names = changed.map((f) => f.name).join(', ');
      if (dryRun) return { value: undefined, status: 'planned', detail: `would replace ${names}` };
      const staging = `${w.paths.installDir}/.staging`;
      const bundle = join(workDir, 'config.tar');
      await execa('tar', ['-cf', bundle, '-C', provisioned.dir, ...changed.map((f) => f.name)]);
      const install = changed
        .map((f) => {
          const o = owner(f);
          const chown = o
            ? ` && { id -u ${shq(o)} >/dev/null 2>&1 && chown ${shq(o)}: ${shq(f.remote)} || true; }`
            : '';
          return `put ${shq(f.name)} ${shq(f.remote)} ${f.mode.toString(8)}${chown}`;
        })
        .join('\n');
      const systemdSetup =
        manager === 'systemd'
          ? `id -u ${shq(w.service.user)} >/dev/null 2>&1 || useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin ${shq(w.service.user)}
install -d -m 0750 -o ${shq(w.service.user)} -g ${shq(w.service.user)} "$DATA" "$DATA/recordings"`
          : `mkdir -p "$DATA/recordings" ${shq(w.paths.runDir)} ${shq(w.paths.logDir)}`;
      // files and the script that installs them in one connection; staging is private (0700)
      await remote(
        `staging=${shq(staging)}
mkdir -p "$INSTALL" && rm -rf "$staging" && mkdir -m 700 "$staging"
trap 'rm -rf "$staging"' EXIT
tar -xf - -C "$staging" --no-same-owner
${systemdSetup}
mkdir -p "$CONFIG"
rm -rf "$CONFIG/.previous"; mkdir -m 700 "$CONFIG/.previous"
put() {
  mkdir -p "$(dirname "$2")"
  if [ -f "$2" ]; then cp -p "$2" "$CONFIG/.previous/$(basename "$1")"; fi
  install -m "$3" "$staging/$1" "$2.new" && mv -f "$2.new" "$2"
}
${install}`,
        { inputFile: bundle },
      );
      return { value: undefined, detail: `replaced ${names}` };
    });

    // 7-10. switch, restart, check; put everything back if the new node is not healthy
    // the node reads its config and every secret at start (the TURN secret too: it mints
    // credentials); coturn reads only its own config
    const turnOnly = new Set(['turnserver.conf', TURN_UNIT]);
    const turnFiles = ['turnserver.conf', TURN_UNIT, 'secrets/turn.secret'];
    const restartNode = switching || changed.some((f) => !turnOnly.has(f.name)) || !healthyBefore;
    const restartTurn =
      w.turn.enabled && (turnFiles.some((n) => changedNames.has(n)) || !facts.turnRunning);
    const restartScript = (node: boolean, turn: boolean) => {
      if (manager === 'systemd') {
        return [
          'systemctl daemon-reload',
          ...(turn
            ? [
                'systemctl disable --now coturn.service >/dev/null 2>&1 || true',
                `systemctl enable --quiet ${TURN_UNIT}`,
                `systemctl restart ${TURN_UNIT}`,
              ]
            : []),
          ...(node
            ? [`systemctl enable --quiet ${NODE_UNIT}`, `systemctl restart ${NODE_UNIT}`]
            : []),
        ].join('\n');
      }
      const c = w.service;
      return [
        ...(turn
          ? [
              expandCommand(c.turnStopCommand ?? DEFAULT_COMMANDS.turnStop, w),
              expandCommand(c.turnStartCommand ?? DEFAULT_COMMANDS.turnStart, w),
            ]
          : []),
        ...(node
          ? [
              expandCommand(c.stopCommand ?? DEFAULT_COMMANDS.stop, w),
              expandCommand(c.startCommand ?? DEFAULT_COMMANDS.start, w),
            ]
          : []),
      ].join('\n');
    };
    const switchTo = (id: string) =>
      remote(
        `ln -sfn ${shq(`releases/${id}`)} "$INSTALL/.current.new" && mv -T "$INSTALL/.current.new" "$INSTALL/current"`,
      );

    // what a dry run reports and a real deploy returns, read when it is returned
    const outcome = (): DeployResult => ({
      warehouse: w.id,
      target: ssh.name,
      dryRun,
      manager,
      release: { id: releaseId, key: release.key, reused: Boolean(existing) },
      previous,
      changed: switching || changed.length > 0 || restartNode || restartTurn,
      steps,
    });
    if (dryRun) {
      report(
        'switch release',
        switching ? 'planned' : 'skipped',
        switching
          ? `would point current at ${releaseId} (now ${previous ?? 'none'})`
          : `current is ${releaseId}`,
      );
      const what = [restartTurn && 'coturn', restartNode && 'the node'].filter(Boolean);
      report(
        'restart',
        what.length ? 'planned' : 'skipped',
        what.length ? `would restart ${what.join(' and ')} (${manager})` : 'nothing to restart',
      );
      report('health check', 'planned', `would wait for ${urls.statusUrl}/healthz`);
      if (w.turn.enabled)
        report('TURN allocation', 'planned', `would allocate a relay on ${w.host}:${w.ports.turn}`);
      return outcome();
    }

    let switched = false;
    let restarted = false;
    try {
      await step('switch release', async () => {
        if (!switching)
          return { value: undefined, status: 'skipped', detail: `current is ${releaseId}` };
        await switchTo(releaseId);
        switched = true;
        return { value: undefined, detail: `current → ${releaseId} (was ${previous ?? 'none'})` };
      });
      const restartAt = Date.now();
      await step('restart', async () => {
        const what = [restartTurn && 'coturn', restartNode && 'node'].filter(Boolean);
        if (!what.length)
          return { value: undefined, status: 'skipped', detail: 'nothing to restart' };
        restarted = true;
        await remote(restartScript(restartNode, restartTurn), { timeoutMs: 120_000 });
        return { value: undefined, detail: `${what.join(' and ')} (${manager})` };
      });
      await step('health check', async () => {
        const deadline = Date.now() + w.deploy.healthTimeout;
        let last: { version: string; uptimeSeconds: number } | undefined;
        for (;;) {
          last = await healthyNode(urls.statusUrl, w.id, 2000);
          const fresh =
            !restartNode || (last && last.uptimeSeconds <= (Date.now() - restartAt) / 1000 + 2);
          if (last && fresh && last.version === release.version) break;
          if (Date.now() > deadline) {
            throw new StepFailed(
              last
                ? `${urls.statusUrl}/healthz answers, but from ${fresh ? `version ${last.version}` : 'a process older than the restart'}`
                : `${urls.statusUrl}/healthz did not answer ok within ${w.deploy.healthTimeout / 1000} s`,
            );
          }
          await new Promise((r) => setTimeout(r, 300));
        }
        return {
          value: undefined,
          detail: `${urls.statusUrl}/healthz ok, version ${last.version}, up ${last.uptimeSeconds} s`,
        };
      });
      if (w.turn.enabled) {
        await step('TURN allocation', async () => {
          const secret = provisioned.secrets['secrets/turn.secret']!;
          const cred = turnRestCredential(secret, `deploy-${w.id}`, Date.now() + 5 * 60_000);
          const deadline = Date.now() + Math.min(w.deploy.healthTimeout, 20_000);
          for (;;) {
            try {
              const a = await turnAllocate({
                host: w.host,
                port: w.ports.turn,
                username: cred.username,
                password: cred.credential,
                timeoutMs: 2000,
              });
              return {
                value: undefined,
                detail: `${w.host}:${w.ports.turn} relayed ${a.relayed.address}:${a.relayed.port} (realm ${a.realm})`,
              };
            } catch (err) {
              if (Date.now() > deadline) throw new StepFailed(errorMessage(err));
              await new Promise((r) => setTimeout(r, 300));
            }
          }
        });
      }
    } catch (err) {
      if (!(switched || restarted)) throw err;
      const failedStep = current;
      const reason =
        err instanceof StepFailed || err instanceof UserError ? err.message : String(err);
      report(failedStep, 'failed', reason);
      current = 'roll back';
      const t0 = Date.now();
      let detail: string;
      try {
        if (switched && previous) await switchTo(previous);
        await remote(`
if [ -d "$CONFIG/.previous" ]; then
${changed
  .map(
    (f) =>
      `  if [ -f "$CONFIG/.previous/${basename(f.path)}" ]; then cp -p "$CONFIG/.previous/${basename(f.path)}" ${shq(f.remote)}; fi`,
  )
  .join('\n')}
  true
fi`);
        await remote(restartScript(true, restartTurn), { timeoutMs: 120_000 });
        const back = await (async () => {
          const deadline = Date.now() + w.deploy.healthTimeout;
          for (;;) {
            const h = await healthyNode(urls.statusUrl, w.id, 2000);
            if (h || Date.now() > deadline) return h;
            await new Promise((r) => setTimeout(r, 300));
          }
        })();
        detail =
          switched && previous
            ? `current → ${previous} again, previous config restored; ${back ? 'it answers /healthz' : 'it does not answer /healthz either'}`
            : `previous config restored; ${back ? 'the node answers /healthz' : 'the node does not answer /healthz'}`;
        report('roll back', back ? 'done' : 'failed', detail, Date.now() - t0);
      } catch (rollbackErr) {
        detail = `rolling back failed too: ${errorMessage(rollbackErr)}`;
        report('roll back', 'failed', detail, Date.now() - t0);
      }
      throw new DeployError(
        `deploy ${w.id}: step "${failedStep}" failed: ${reason}\n${detail}`,
        failedStep,
        steps,
      );
    }

    // 11. old releases
    await step('clean up', async () => {
      const out = await remote(`
keep=${w.deploy.keepReleases}
cd "$INSTALL/releases"
cur=$(basename "$(readlink "$INSTALL/current")")
prev=${shq(previous ?? '')}
n=0
for d in $(ls -1d */ 2>/dev/null | sed 's#/$##' | sort -r); do
  case "$d" in *.partial) continue ;; esac
  n=$((n + 1))
  if [ "$n" -gt "$keep" ] && [ "$d" != "$cur" ] && [ "$d" != "$prev" ]; then rm -rf "$d"; echo "removed $d"; fi
done
rm -rf -- *.partial .incoming`);
      const removed = out.split('\n').filter((l) => l.startsWith('removed ')).length;
      return {
        value: undefined,
        status: removed ? 'done' : 'skipped',
        detail: removed
          ? `removed ${removed} old release${removed === 1 ? '' : 's'}`
          : `at most ${w.deploy.keepReleases} releases kept`,
      };
    });

    return outcome();
  } catch (err) {
    if (err instanceof DeployError) throw err;
    if (!(err instanceof StepFailed) && !(err instanceof UserError)) throw err;
    const reason = err.message;
    report(current, 'failed', reason);
    throw new DeployError(
      `deploy ${w.id}: step "${current}" failed: ${reason}${dryRun ? '' : '\nnothing was switched; the host runs what it ran before'}`,
      current,
      steps,
    );
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}
