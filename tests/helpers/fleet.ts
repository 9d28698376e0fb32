import { createSocket } from 'node:dgram';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

/** A port free on 127.0.0.1 for both TCP and UDP (coturn and the node use both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    // the kernel hands out ephemeral ports inside the fleet's default media range (40000-40999)
    // too; a TURN or HTTP port there is a fleet-file error, so never offer one
    if (udpFree && (port < 40000 || port > 40999)) return port;
  }
}

/** Waits until `check` returns a value, or fails with what `what` says after `ms`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RunningProcess {
  proc: ResultPromise;
  output: () => string;
  stop: () => Promise<void>;
}

function track(proc: ResultPromise): RunningProcess {
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  return {
    proc,
    output: () => output,
    stop: async () => {
      proc.kill('SIGTERM');
      await proc;
    },
  };
}

/**
 * coturn as Debian ships it, with a config file and command-line overrides (later wins for
 * single values; listening and relay addresses add up, so a config for production is run on
 * loopback only by leaving those out of it). Resolves once it answers STUN.
 */
export async function startTurnserver(
  conf: string,
  args: string[],
  ready: () => Promise<unknown>,
): Promise<RunningProcess> {
  const p = track(execa('turnserver', ['-c', conf, ...args], { reject: false, buffer: false }));
  try {
    await waitFor(
      'turnserver to answer',
      async () =>
        (await ready().then(
          () => true,
          () => false,
        ))
          ? true
          : undefined,
      8000,
    );
  } catch (err) {
    await p.stop();
    throw new Error(`${(err as Error).message}\n${p.output()}`);
  }
  return p;
}

export interface Sshd extends RunningProcess {
  port: number;
  identityFile: string;
  knownHostsFile: string;
}

/**
 * Debian's sshd on a loopback port, for this test only: its own host key, one authorized key,
 * no PAM, root by key, StrictModes off (the files live in a temp dir). Needs root.
 */
export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const identityFile = join(dir, 'client_ed25519');
  for (const key of [hostKey, identityFile])
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'returncam-test', '-f', key]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${identityFile}.pub`));
  const port = await freePort();
  const knownHostsFile = join(dir, 'known_hosts');
  writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, 'utf8')}`);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // privilege separation directory Debian's sshd insists on
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const p = track(
    execa('/usr/sbin/sshd', ['-D', '-e', '-f', config], { reject: false, buffer: false }),
  );
  await waitFor(
    'sshd to accept a connection',
    async () => {
      const r = await execa(
        'ssh',
        [
          '-o',
          'BatchMode=yes',
          '-o',
          `UserKnownHostsFile=${knownHostsFile}`,
          '-i',
          identityFile,
          '-p',
          String(port),
          'root@127.0.0.1',
          'true',
        ],
        { reject: false },
      );
      return r.exitCode === 0 ? true : undefined;
    },
    8000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${p.output()}`);
  });
  return { ...p, port, identityFile, knownHostsFile };
}

/** Every path under `dir` with its type, mode, size, mtime and link target: a change detector. */
export function treeSnapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = p.slice(dir.length);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/ ${(st.mode & 0o777).toString(8)}`);
        if (name !== 'node_modules') walk(p);
      } else out.push(`${rel} ${(st.mode & 0o777).toString(8)} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out;
}

/** True while the process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
