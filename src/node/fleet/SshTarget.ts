import { execa } from 'execa';
import { UserError } from '../../core/errors.ts';

export interface SshTargetOptions {
  host: string;
  user: string;
  port: number;
  identityFile?: string;
  knownHostsFile?: string;
  /** Extra `-o Name=value` options. */
  options?: string[];
  connectTimeoutSeconds?: number;
}

export interface RemoteResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * A host reached with the system's `ssh`, never interactively (BatchMode): a missing
 * key or an unknown host key fails at once instead of waiting for a prompt. Files travel through
 * the same connection as the script that unpacks them (no scp round trips).
 */
export class SshTarget {
  constructor(private readonly opts: SshTargetOptions) {}

  private get destination(): string {
    return `${this.opts.user}@${this.opts.host}`;
  }

  /** `user@host` as ssh and messages show it. */
  get name(): string {
    return `${this.opts.user}@${this.opts.host}${this.opts.port === 22 ? '' : `:${this.opts.port}`}`;
  }

  private commonOptions(): string[] {
    const o = this.opts;
    return [
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${o.connectTimeoutSeconds ?? 10}`,
      '-o',
      'ServerAliveInterval=15',
      ...(o.identityFile ? ['-i', o.identityFile, '-o', 'IdentitiesOnly=yes'] : []),
      ...(o.knownHostsFile ? ['-o', `UserKnownHostsFile=${o.knownHostsFile}`] : []),
      ...(o.options ?? []).flatMap((x) => ['-o', x]),
    ];
  }

  /**
   * Runs a bash script on the host; resolves with its exit code (never throws for a non-zero
   * one). The script goes to `bash -s` on stdin, or, with `inputFile`, as `bash -c SCRIPT` while
   * the file streams to its stdin (an upload and what to do with it in one connection).
   */
  async run(
    script: string,
    opts: { timeoutMs?: number; inputFile?: string } = {},
  ): Promise<RemoteResult> {
    const timeoutMs = opts.timeoutMs ?? 600_000;
    const remoteCommand = opts.inputFile ? `bash -c ${shq(script)}` : 'bash -s';
    const r = await execa(
      'ssh',
      [...this.commonOptions(), '-p', String(this.opts.port), this.destination, remoteCommand],
      {
        ...(opts.inputFile ? { inputFile: opts.inputFile } : { input: script }),
        reject: false,
        timeout: timeoutMs,
        stripFinalNewline: false,
      },
    );
    if (r.timedOut) {
      throw new UserError(
        `ssh ${this.name}: the remote script did not finish within ${Math.round(timeoutMs / 1000)} s`,
      );
    }
    if (r.exitCode === undefined) throw new UserError(`ssh ${this.name}: ${r.shortMessage}`);
    // 255 is ssh's own failure (cannot connect, key refused, host key unknown)
    if (r.exitCode === 255) {
      throw new UserError(
        `ssh ${this.name} failed: ${String(r.stderr).trim().split('\n').at(-1) || 'exit 255'}`,
      );
    }
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }
}

/** Single-quotes a value for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
