/**
 * `bench startup`: how long `returncam node start` takes from spawn to the first 200 on `/healthz`,
 * over several fresh processes (each with its own empty data directory, so every start creates its
 * database, keys and secrets as a first start on a new host would).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../core/errors.ts';
import { NODE_START_FLAGS } from '../node/heapFlags.ts';
import { percentile } from './stats.ts';

const BIN = fileURLToPath(new URL('../../bin/returncam', import.meta.url));

/**
 * `[node flags] [extra] BIN node start --port 0 --data DIR`: a node on a free port with its data
 * in `dataDir`, as the benchmarks start one (after `process.execPath`), with the Node.js flags a
 * deployed node runs with.
 */
export function nodeStartArgs(
  bin: string,
  dataDir: string,
  extraFlags: readonly string[] = [],
): string[] {
  return [
    ...NODE_START_FLAGS,
    ...extraFlags,
    bin,
    'node',
    'start',
    '--port',
    '0',
    '--data',
    dataDir,
  ];
}

export interface StartupOptions {
  /** Fresh node processes to time (default 10). */
  repetitions?: number;
  /** Give up on one start after this long (default 30 s). */
  timeoutMs?: number;
  /** Reuse one data directory for every start after the first (a restart, not a first start). */
  warmData?: boolean;
  /** Extra Node.js flags for the node process (e.g. `--cpu-prof`). */
  nodeFlags?: string[];
  /** The CLI script to start (default this checkout's bin/returncam), to compare two builds. */
  bin?: string;
  signal?: AbortSignal;
  onSample?: (sample: StartupSample, index: number) => void;
}

export interface StartupSample {
  /** Spawn to the `listening` line on stdout, ms. */
  listeningMs: number;
  /** Spawn to the first 200 from `/healthz`, ms. */
  healthzMs: number;
}

export interface StartupResult {
  version: 1;
  kind: 'startup';
  startedAt: string;
  repetitions: number;
  warmData: boolean;
  samples: StartupSample[];
  healthzMs: { p50: number; max: number; min: number };
  listeningMs: { p50: number; max: number };
  node: string;
}

/** One `node start` on port 0: resolves with its times, then stops it. */
export async function timeNodeStart(
  dataDir: string,
  options: Pick<StartupOptions, 'timeoutMs' | 'nodeFlags' | 'bin'> = {},
): Promise<StartupSample> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    nodeStartArgs(options.bin ?? BIN, dataDir, options.nodeFlags),
    {
      env: { ...process.env, CI: '1', RETURNCAM_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  try {
    const { url, listeningMs } = await new Promise<{ url: string; listeningMs: number }>(
      (resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`node did not print "listening" within ${timeoutMs} ms`)),
          timeoutMs,
        );
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          const m = /^listening (http:\/\/\S+)$/m.exec(stdout);
          if (m) {
            clearTimeout(timer);
            resolve({ url: m[1]!, listeningMs: performance.now() - t0 });
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`node exited (${code}) before listening: ${stderr.trim()}`));
        });
      },
    );
    // the node listens before it prints; poll /healthz as a load balancer would
    for (;;) {
      try {
        const res = await fetch(`${url}/healthz`);
        await res.arrayBuffer();
        if (res.status === 200) return { listeningMs, healthzMs: performance.now() - t0 };
      } catch {
        // not accepting yet
      }
      if (performance.now() - t0 > timeoutMs)
        throw new Error(`/healthz at ${url} gave no 200 within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    child.kill('SIGINT');
    const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(forced);
  }
}

/** Times `repetitions` node starts, one after the other. */
export async function runStartup(options: StartupOptions = {}): Promise<StartupResult> {
  const repetitions = options.repetitions ?? 10;
  if (!Number.isInteger(repetitions) || repetitions < 1)
    throw new Error(`startup: repetitions must be a whole number >= 1 (got ${repetitions})`);
  const startedAt = new Date().toISOString();
  const samples: StartupSample[] = [];
  const shared = options.warmData ? mkdtempSync(join(tmpdir(), 'returncam-startup-')) : undefined;
  try {
    for (let i = 0; i < repetitions && !options.signal?.aborted; i++) {
      const dir = shared ?? mkdtempSync(join(tmpdir(), 'returncam-startup-'));
      try {
        const sample = await timeNodeStart(dir, options);
        samples.push(sample);
        options.onSample?.(sample, i);
      } catch (err) {
        throw new Error(`startup ${i + 1}/${repetitions}: ${errorMessage(err)}`);
      } finally {
        if (!shared) rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    if (shared) rmSync(shared, { recursive: true, force: true });
  }
  if (samples.length === 0) throw new Error('startup: interrupted before the first start');
  const h = samples.map((s) => s.healthzMs).sort((a, b) => a - b);
  const l = samples.map((s) => s.listeningMs).sort((a, b) => a - b);
  return {
    version: 1,
    kind: 'startup',
    startedAt,
    repetitions: samples.length,
    warmData: options.warmData ?? false,
    samples,
    healthzMs: { p50: percentile(h, 50), max: h.at(-1)!, min: h[0]! },
    listeningMs: { p50: percentile(l, 50), max: l.at(-1)! },
    node: process.version,
  };
}

export function renderStartupText(r: StartupResult): string {
  return [
    `returncam bench startup: ${r.repetitions} starts of \`returncam node start\` (${r.warmData ? 'reused' : 'fresh'} data directory each), Node ${r.node}`,
    `  spawn -> first 200 on /healthz  p50 ${r.healthzMs.p50.toFixed(0)} ms  max ${r.healthzMs.max.toFixed(0)} ms  min ${r.healthzMs.min.toFixed(0)} ms`,
    `  spawn -> "listening" line       p50 ${r.listeningMs.p50.toFixed(0)} ms  max ${r.listeningMs.max.toFixed(0)} ms`,
  ].join('\n');
}
