import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';

export const BIN = resolve('bin/returncam');

/** Runs the CLI as a user would, never throwing on a non-zero exit. */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  return execa(BIN, args, {
    reject: false,
    cwd: opts.cwd,
    env: { CI: '1', ...opts.env },
    extendEnv: true,
    timeout: 30_000,
  });
}

export interface RunningNode {
  url: string;
  dataDir: string;
  proc: ResultPromise;
  output: () => { stdout: string; stderr: string };
  stop: (
    signal?: NodeJS.Signals,
  ) => Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
}

/** Starts `returncam node start` as a process on a free port and waits for its `listening URL` line. */
export async function startNodeProcess(
  args: string[] = [],
  opts: { cwd?: string; env?: Record<string, string>; dataDir?: string; bin?: string } = {},
): Promise<RunningNode> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'returncam-cli-'));
  const proc = execa(
    opts.bin ?? BIN,
    ['node', 'start', '--port', '0', '--data', dataDir, ...args],
    {
      reject: false,
      cwd: opts.cwd,
      env: { CI: '1', ...opts.env },
      buffer: true,
    },
  );
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`node did not start in 20 s:\n${stdout}\n${stderr}`)),
      20_000,
    );
    const check = () => {
      const m = /^listening (http:\/\/\S+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    proc.stdout?.on('data', check);
    proc.then((r) => {
      clearTimeout(timer);
      rej(new Error(`node exited early (${r.exitCode}):\n${stdout}\n${stderr}`));
    });
  });
  return {
    url,
    dataDir,
    proc,
    output: () => ({ stdout, stderr }),
    stop: async (signal = 'SIGINT') => {
      proc.kill(signal);
      const r = await proc;
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      return { exitCode: r.exitCode, stdout, stderr };
    },
  };
}

/**
 * A copy of this checkout as git has it (tracked files, and new ones git does not ignore), with
 * this checkout's node_modules and native addon (`build/`) linked in: what a fresh clone holds
 * after `npm install`, without `dist/` or anything else built or written here.
 */
export async function copyCheckout(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const files = (await execa('git', ['ls-files', '-co', '--exclude-standard'])).stdout
    .split('\n')
    .filter(Boolean);
  for (const f of files) cpSync(f, join(dir, f));
  symlinkSync(resolve('node_modules'), join(dir, 'node_modules'));
  if (existsSync('build')) symlinkSync(resolve('build'), join(dir, 'build'));
  return dir;
}
