/**
 * `bench capacity`: more and more sessions until the node's own forwarding time (p99) or its CPU
 * passes a limit; reports sessions per core. Each step is a short `bench run` against a fresh
 * node process (its CPU and memory are its own), preceded by the same step with no node at all
 * (clients connected to each other through the relays) so the harness's own floor is visible.
 * Each session has one publisher and `viewers` viewers; the same load can also be run against
 * Janus's VideoRoom (`servers: ['node', 'janus']`), step by step in the same sitting.
 */
import { randomBytes } from 'node:crypto';
import { UserError } from '../core/errors.ts';
import { FanoutSession } from './FanoutSession.ts';
import { findJanus, JANUS_INSTALL_HINT, startJanus } from './janus/JanusServer.ts';
import type { NetworkProfile } from './profiles.ts';
import type { BenchResult } from './result.ts';
import { type BenchProgress, type NodeChoice, openBenchNode, runBench } from './runBench.ts';
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
  /** Staff viewers per session (default 1). */
  viewers?: number;
  /**
   * What carries the load, each step in this order (default `['node']`). The ramp stops when the
   * first one passes a limit.
   */
  servers?: CapacityServer[];
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

/** `node`: returncam's node; `janus`: Janus's VideoRoom, started per step (Debian's package). */
export type CapacityServer = 'node' | 'janus';

export interface CapacityStep {
  sessions: number;
  viewers: number;
  /** `baseline`: no server, `sessions × viewers` publisher-viewer pairs through the relays. */
  mode: 'baseline' | CapacityServer;
  /** The server measured (e.g. `Janus 1.1.2 VideoRoom`). */
  server?: string;
  transit?: Summary;
  /** Node forwarding time (or, with no node, the harness's own hop). */
  nodeAdded?: Summary;
  frameLoss: number;
  /** Frames sent in the measured window that some viewer never received complete. */
  framesLost: number;
  framesSent: number;
  freezes: number;
  /** The node process's CPU, % of one core; undefined with no node. */
  nodeCpuPercent?: number;
  /** Per session (a publisher and its viewers). */
  nodeCpuPerSessionPercent?: number;
  nodeRssBytes?: number;
  /**
   * Its anonymous part (heaps, buffers, stacks) and file-backed part (pages of the executable and
   * its libraries, shared with every process running them), on Linux.
   */
  nodeRssAnonBytes?: number;
  nodeRssFileBytes?: number;
  /** This process (clients and relays), % of one core. */
  harnessCpuPercent: number;
  harnessRssBytes: number;
  /** Relay deliveries late by more than 2 ms: the harness itself falling behind. */
  lateDeliveries: number;
  /** Datagrams this machine dropped in full socket buffers during the step (every socket's). */
  udpBufferDrops?: number;
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
  viewers: number;
  servers: CapacityServer[];
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

/** RSS in MB, with its anonymous and file-backed parts when /proc gave them. */
function rssCell(s: CapacityStep): string {
  if (!s.nodeRssBytes) return '-';
  const mb = (v: number) => (v / 1048576).toFixed(0);
  const parts =
    s.nodeRssAnonBytes !== undefined && s.nodeRssFileBytes !== undefined
      ? ` (${mb(s.nodeRssAnonBytes)}/${mb(s.nodeRssFileBytes)})`
      : '';
  return `${mb(s.nodeRssBytes)}${parts}`;
}

function stepOf(
  r: BenchResult,
  mode: CapacityStep['mode'],
  sessions: number,
  viewers: number,
): Omit<CapacityStep, 'withinLimits'> {
  const nodePart = r.budget.find((b) => b.part === 'node')?.summary;
  const cpu = r.nodeResources && !r.nodeResources.shared ? r.nodeResources.cpuPercent : undefined;
  return {
    sessions,
    viewers,
    mode,
    transit: r.transit,
    nodeAdded: nodePart,
    frameLoss: r.frames.lossRatio,
    framesLost: r.frames.lost,
    framesSent: r.frames.sent,
    freezes: r.frames.freezeCount,
    nodeCpuPercent: cpu,
    nodeCpuPerSessionPercent: cpu !== undefined ? cpu / sessions : undefined,
    nodeRssBytes: r.nodeResources?.rssBytes,
    nodeRssAnonBytes: r.nodeResources?.rssAnonBytes,
    nodeRssFileBytes: r.nodeResources?.rssFileBytes,
    harnessCpuPercent: r.harness.cpuPercent,
    harnessRssBytes: r.harness.rssBytes,
    lateDeliveries: r.harness.lateDeliveries,
    udpBufferDrops: r.harness.udpBufferDrops,
    runId: r.id,
  };
}

export async function runCapacity(options: CapacityOptions): Promise<CapacityResult> {
  const startedAt = new Date();
  const maxFrameLoss = options.maxFrameLoss ?? 0.05;
  const viewers = options.viewers ?? 1;
  if (!Number.isInteger(viewers) || viewers < 1 || viewers > 50)
    throw new UserError(`viewers per session must be a whole number from 1 to 50 (got ${viewers})`);
  const servers = options.servers ?? ['node'];
  if (servers.length === 0) throw new UserError('capacity needs at least one server to measure');
  if (servers.includes('janus') && !findJanus()) throw new UserError(JANUS_INSTALL_HINT);
  const choiceFor = (server: CapacityServer): NodeChoice =>
    server === 'janus'
      ? { kind: 'custom', open: () => startJanus() }
      : (options.node ?? { kind: 'process' });
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
    const shape = viewers > 1 ? `${sessions}×${viewers}` : `${sessions} sessions`;
    if (options.baseline !== false) {
      // the floor: as many publisher-viewer pairs as the servers carry viewers, no server
      const r = await runBench({
        ...common,
        sessions: sessions * viewers,
        node: { kind: 'none' },
        onProgress: (p) => options.onProgress?.({ ...p, step: `${shape}, no server` }),
      });
      const step: CapacityStep = {
        ...stepOf(r, 'baseline', sessions, viewers),
        withinLimits: true,
      };
      baseline.push(step);
      options.onStep?.(step);
    }
    let stop: string | undefined;
    for (const [i, server] of servers.entries()) {
      if (options.signal?.aborted) break;
      let label: string | undefined;
      const choice = choiceFor(server);
      const r = await runBench({
        ...common,
        sessions,
        node:
          choice.kind === 'none'
            ? choice
            : {
                kind: 'custom',
                open: async () => {
                  const opened = await openBenchNode(choice);
                  if (!opened) throw new Error(`capacity: ${server} did not start`);
                  label = opened.label;
                  return opened;
                },
              },
        createSession: (o) => new FanoutSession({ ...o, node: o.node!, viewers }),
        onProgress: (p) => options.onProgress?.({ ...p, step: `${shape} via ${server}` }),
      });
      const s = { ...stepOf(r, server, sessions, viewers), server: label ?? server };
      let limitHit: string | undefined;
      if (s.nodeAdded && s.nodeAdded.p99 > options.p99LimitMs) {
        limitHit = `${server} p99 ${s.nodeAdded.p99.toFixed(1)} ms > ${options.p99LimitMs} ms`;
      } else if (s.nodeCpuPercent !== undefined && s.nodeCpuPercent > options.cpuLimitPercent) {
        limitHit = `${server} CPU ${s.nodeCpuPercent.toFixed(0)} % > ${options.cpuLimitPercent} %`;
      } else if (s.frameLoss > maxFrameLoss) {
        limitHit = `${(s.frameLoss * 100).toFixed(1)} % of frames lost > ${(maxFrameLoss * 100).toFixed(0)} %`;
      }
      const step: CapacityStep = { ...s, withinLimits: !limitHit, limitHit };
      steps.push(step);
      options.onStep?.(step);
      if (limitHit && i === 0) stop = `${shape}: ${limitHit}`;
    }
    if (stop) {
      stoppedBecause = stop;
      break;
    }
  }
  const good = steps.filter((s) => s.withinLimits && s.mode === servers[0]);
  const best = good.at(-1);
  return {
    version: 1,
    kind: 'capacity',
    id: `${startedAt.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
    startedAt: startedAt.toISOString(),
    profile: options.profile.name,
    viewers,
    servers,
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

/** The capacity table: one line per step and server, the no-server floor first. */
export function renderCapacityText(c: CapacityResult): string {
  const f = (v: number | undefined, digits = 1) =>
    v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
  const rows: string[][] = [
    [
      'sessions×viewers',
      'through',
      'transit p50/p95/p99 ms',
      'server-added p50/p99 ms',
      'CPU %',
      'CPU/session %',
      'RSS (anon/file) MB',
      'harness CPU %',
      'late relay',
      'buffer drops',
      'frames lost',
      '',
    ],
  ];
  const order = (m: CapacityStep['mode']) => (m === 'baseline' ? -1 : c.servers.indexOf(m));
  const all = [...c.baseline, ...c.steps].sort(
    (a, b) => a.sessions - b.sessions || order(a.mode) - order(b.mode),
  );
  for (const s of all) {
    rows.push([
      `${s.sessions}×${s.viewers ?? 1}`,
      s.mode === 'baseline' ? 'no server' : s.mode,
      `${f(s.transit?.p50)} / ${f(s.transit?.p95)} / ${f(s.transit?.p99)}`,
      `${f(s.nodeAdded?.p50, 2)} / ${f(s.nodeAdded?.p99, 2)}`,
      f(s.nodeCpuPercent),
      f(s.nodeCpuPerSessionPercent, 2),
      rssCell(s),
      f(s.harnessCpuPercent),
      String(s.lateDeliveries),
      s.udpBufferDrops === undefined ? '-' : String(s.udpBufferDrops),
      `${s.framesLost ?? '-'} (${(s.frameLoss * 100).toFixed(1)} %)`,
      s.mode === 'baseline' ? '' : s.withinLimits ? 'ok' : `LIMIT: ${s.limitHit}`,
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
  const servers = [...new Set(c.steps.map((s) => `${s.mode}: ${s.server ?? s.mode}`))].join('; ');
  const first = c.servers[0] ?? 'node';
  return [
    `returncam bench capacity ${c.id}: profile ${c.profile}, ${c.bitrateKbps} kbit/s per session, ${c.viewers ?? 1} viewer${(c.viewers ?? 1) > 1 ? 's' : ''} per session, ${(c.stepDurationMs / 1000).toFixed(0)} s per step`,
    `limits: server p99 forwarding ${c.limits.p99LimitMs} ms, server CPU ${c.limits.cpuLimitPercent} % of a core, ${(c.limits.maxFrameLoss * 100).toFixed(0)} % frames lost`,
    servers ? `servers: ${servers}` : '',
    '',
    table,
    '',
    `stopped: ${c.stoppedBecause}`,
    `capacity (${first}): ${c.maxSessions} sessions within the limits${c.sessionsPerCore ? `; about ${c.sessionsPerCore.toFixed(0)} sessions per core (extrapolated from its CPU at ${c.maxSessions})` : ''}`,
    'The "no server" rows are the harness floor: sessions×viewers publisher-viewer pairs through the same relays with nothing in between.',
    "CPU is % of one core, measured from the server's PID over the measured window; RSS at the end of the step.",
  ]
    .filter((line, i) => line !== '' || i !== 2)
    .join('\n');
}
