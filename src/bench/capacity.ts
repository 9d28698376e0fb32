/**
 * `bench capacity`: more and more sessions until the node's own forwarding time (p99) or its CPU
 * passes a limit; reports sessions per core. Each step is a short `bench run` against a fresh
 * node process (its CPU and memory are its own), preceded by the same step with no node at all
 * (clients connected to each other through the relays) so the harness's own floor is visible.
 */
import { randomBytes } from 'node:crypto';
import type { NetworkProfile } from './profiles.ts';
import type { BenchResult } from './result.ts';
import { type BenchProgress, type NodeChoice, runBench } from './runBench.ts';
import type { Summary } from './stats.ts';

export interface CapacityOptions {
  profile: NetworkProfile;
  /** Session counts to try, ascending. */
  steps: number[];
  stepDurationMs: number;
  bitrateKbps?: number;
  /** Stop when the node's p99 forwarding time passes this (ms). */
  p99LimitMs: number;
  /** Stop when the node uses more than this much of one core (%). */
  cpuLimitPercent: number;
  /** Stop when more than this share of frames is lost. */
  maxFrameLoss?: number;
  /** Default: a node process per step. */
  node?: NodeChoice;
  /** Run each step without a node first (default true). */
  baseline?: boolean;
  seed?: number;
  cacheDir?: string;
  signal?: AbortSignal;
  onStep?: (step: CapacityStep) => void;
  onProgress?: (p: BenchProgress & { step: string }) => void;
}

export interface CapacityStep {
  sessions: number;
  mode: 'baseline' | 'node';
  transit?: Summary;
  /** Node forwarding time (or, with no node, the harness's own hop). */
  nodeAdded?: Summary;
  frameLoss: number;
  freezes: number;
  /** The node process's CPU, % of one core; undefined with no node. */
  nodeCpuPercent?: number;
  nodeCpuPerSessionPercent?: number;
  nodeRssBytes?: number;
  /** This process (clients and relays), % of one core. */
  harnessCpuPercent: number;
  harnessRssBytes: number;
  /** Relay deliveries late by more than 2 ms: the harness itself falling behind. */
  lateDeliveries: number;
  withinLimits: boolean;
  limitHit?: string;
  runId: string;
}

export interface CapacityResult {
  version: 1;
  kind: 'capacity';
  id: string;
  startedAt: string;
  profile: string;
  bitrateKbps: number;
  stepDurationMs: number;
  limits: { p99LimitMs: number; cpuLimitPercent: number; maxFrameLoss: number };
  baseline: CapacityStep[];
  steps: CapacityStep[];
  /** The most sessions that stayed within the limits. */
  maxSessions: number;
  /** Extrapolated from the node's CPU at that step: sessions one core would carry. */
  sessionsPerCore?: number;
  /** Why the ramp stopped. */
  stoppedBecause: string;
}

function stepOf(r: BenchResult, mode: CapacityStep['mode']): Omit<CapacityStep, 'withinLimits'> {
  const nodePart = r.budget.find((b) => b.part === 'node')?.summary;
  const cpu = r.nodeResources && !r.nodeResources.shared ? r.nodeResources.cpuPercent : undefined;
  return {
    sessions: r.settings.sessions,
    mode,
    transit: r.transit,
    nodeAdded: nodePart,
    frameLoss: r.frames.lossRatio,
    freezes: r.frames.freezeCount,
    nodeCpuPercent: cpu,
    nodeCpuPerSessionPercent: cpu !== undefined ? cpu / r.settings.sessions : undefined,
    nodeRssBytes: r.nodeResources?.rssBytes,
    harnessCpuPercent: r.harness.cpuPercent,
    harnessRssBytes: r.harness.rssBytes,
    lateDeliveries: r.harness.lateDeliveries,
    runId: r.id,
  };
}

export async function runCapacity(options: CapacityOptions): Promise<CapacityResult> {
  const startedAt = new Date();
  const maxFrameLoss = options.maxFrameLoss ?? 0.05;
  const baseline: CapacityStep[] = [];
  const steps: CapacityStep[] = [];
  let stoppedBecause = `reached the last step (${options.steps.at(-1)} sessions)`;
  const common = {
    profile: options.profile,
    durationMs: options.stepDurationMs,
    bitrateKbps: options.bitrateKbps,
    seed: options.seed,
    cacheDir: options.cacheDir,
    signal: options.signal,
    targetMs: Number.POSITIVE_INFINITY,
    allowanceMs: 0,
  };
  for (const sessions of options.steps) {
    if (options.signal?.aborted) {
      stoppedBecause = 'interrupted';
      break;
    }
    if (options.baseline !== false) {
      const r = await runBench({
        ...common,
        sessions,
        node: { kind: 'none' },
        onProgress: (p) => options.onProgress?.({ ...p, step: `${sessions} sessions, no node` }),
      });
      const step: CapacityStep = { ...stepOf(r, 'baseline'), withinLimits: true };
      baseline.push(step);
      options.onStep?.(step);
    }
    const r = await runBench({
      ...common,
      sessions,
      node: options.node ?? { kind: 'process' },
      onProgress: (p) => options.onProgress?.({ ...p, step: `${sessions} sessions via the node` }),
    });
    const s = stepOf(r, 'node');
    let limitHit: string | undefined;
    if (s.nodeAdded && s.nodeAdded.p99 > options.p99LimitMs) {
      limitHit = `node p99 ${s.nodeAdded.p99.toFixed(1)} ms > ${options.p99LimitMs} ms`;
    } else if (s.nodeCpuPercent !== undefined && s.nodeCpuPercent > options.cpuLimitPercent) {
      limitHit = `node CPU ${s.nodeCpuPercent.toFixed(0)} % > ${options.cpuLimitPercent} %`;
    } else if (s.frameLoss > maxFrameLoss) {
      limitHit = `${(s.frameLoss * 100).toFixed(1)} % of frames lost > ${(maxFrameLoss * 100).toFixed(0)} %`;
    }
    const step: CapacityStep = { ...s, withinLimits: !limitHit, limitHit };
    steps.push(step);
    options.onStep?.(step);
    if (limitHit) {
      stoppedBecause = `${sessions} sessions: ${limitHit}`;
      break;
    }
  }
  const good = steps.filter((s) => s.withinLimits);
  const best = good.at(-1);
  return {
    version: 1,
    kind: 'capacity',
    id: `${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
    startedAt: startedAt.toISOString(),
    profile: options.profile.name,
    bitrateKbps: options.bitrateKbps ?? options.profile.bitrateKbps,
    stepDurationMs: options.stepDurationMs,
    limits: {
      p99LimitMs: options.p99LimitMs,
      cpuLimitPercent: options.cpuLimitPercent,
      maxFrameLoss,
    },
    baseline,
    steps,
    maxSessions: best?.sessions ?? 0,
    sessionsPerCore:
      best?.nodeCpuPercent && best.nodeCpuPercent > 0
        ? best.sessions / (best.nodeCpuPercent / 100)
        : undefined,
    stoppedBecause,
  };
}

/** The capacity table: one line per step, baseline and node side by side. */
export function renderCapacityText(c: CapacityResult): string {
  const f = (v: number | undefined, digits = 1) =>
    v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
  const rows: string[][] = [
    [
      'sessions',
      'mode',
      'transit p50/p95/p99 ms',
      'node-added p50/p99 ms',
      'node CPU %',
      'CPU/session %',
      'node RSS MB',
      'harness CPU %',
      'late relay',
      'lost',
      '',
    ],
  ];
  const all = [...c.baseline, ...c.steps].sort(
    (a, b) => a.sessions - b.sessions || (a.mode === 'baseline' ? -1 : 1),
  );
  for (const s of all) {
    rows.push([
      String(s.sessions),
      s.mode === 'baseline' ? 'no node' : 'node',
      `${f(s.transit?.p50)} / ${f(s.transit?.p95)} / ${f(s.transit?.p99)}`,
      `${f(s.nodeAdded?.p50, 2)} / ${f(s.nodeAdded?.p99, 2)}`,
      f(s.nodeCpuPercent),
      f(s.nodeCpuPerSessionPercent, 2),
      s.nodeRssBytes ? (s.nodeRssBytes / 1048576).toFixed(0) : '-',
      f(s.harnessCpuPercent),
      String(s.lateDeliveries),
      `${(s.frameLoss * 100).toFixed(1)} %`,
      s.mode === 'node' ? (s.withinLimits ? 'ok' : `STOP: ${s.limitHit}`) : '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
  return [
    `returncam bench capacity ${c.id}: profile ${c.profile}, ${c.bitrateKbps} kbit/s per session, ${(c.stepDurationMs / 1000).toFixed(0)} s per step`,
    `limits: node p99 forwarding ${c.limits.p99LimitMs} ms, node CPU ${c.limits.cpuLimitPercent} % of a core, ${(c.limits.maxFrameLoss * 100).toFixed(0)} % frames lost`,
    '',
    table,
    '',
    `stopped: ${c.stoppedBecause}`,
    `capacity: ${c.maxSessions} sessions within the limits${c.sessionsPerCore ? `; about ${c.sessionsPerCore.toFixed(0)} sessions per core (extrapolated from the node's CPU at ${c.maxSessions})` : ''}`,
    'The "no node" rows are the harness floor: the same clients and relays with nothing in between.',
  ].join('\n');
}
