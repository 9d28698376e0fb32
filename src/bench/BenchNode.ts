/**
 * The node a benchmark talks to: started in this process, started as a child process (so its
 * CPU and memory can be measured apart from the harness), or an existing node given by URL.
 * All three create cases the same way and report the node's packet counters from `/metrics`.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNodeConfig } from '../core/config.ts';
import { errorMessage, UserError } from '../core/errors.ts';
import { Logger, type LogLevel } from '../core/log.ts';
import { AdminClient } from '../node/client/AdminClient.ts';
import { MediaNode } from '../node/MediaNode.ts';
import type { MediaCounters } from '../node/media/types.ts';
import { InspectorClient, inspectorUrl } from './inspector.ts';
import { nodeStartArgs } from './startup.ts';

export type BenchNodeKind = 'in-process' | 'process' | 'remote' | 'janus';

/**
 * How clients connect to a server that does not speak WHIP/WHEP (Janus's VideoRoom): the
 * publisher still makes the offer, but a viewer is offered media by the server and answers.
 */
export interface ServerSignalling {
  /** The publisher's offer in, the server's answer out. */
  publish(bench: BenchCase, offerSdp: string): Promise<string>;
  /**
   * Joins a viewer to the case's publisher: the server's offer goes to `answer`, whose answer
   * goes back to the server. Resolves once the server has the answer.
   */
  subscribe(bench: BenchCase, answer: (offerSdp: string) => Promise<string>): Promise<void>;
  /**
   * The server rewrites RTP timestamps for its viewers (a constant offset per viewer), so frames
   * are matched to the publisher's by their spacing instead of their timestamp.
   */
  rewritesTimestamps: boolean;
}

export interface BenchCase {
  caseId: string;
  buyerToken: string;
  staffToken: string;
}

/** The node's own counters (from its /metrics), cumulative. */
export type NodeCounters = MediaCounters;

/** CPU time (user + system, seconds) and resident memory of the node, when it can be measured. */
export interface NodeResources {
  cpuSeconds: number;
  rssBytes: number;
  /** The anonymous part of `rssBytes` (heaps, buffers, stacks), from /proc; undefined elsewhere. */
  rssAnonBytes?: number;
  /** The file-backed part of `rssBytes` (the executable and libraries), from /proc. */
  rssFileBytes?: number;
  /** True when the figure includes the benchmark harness too (node in the same process). */
  shared: boolean;
}

export interface BenchNode {
  readonly kind: BenchNodeKind;
  readonly url: string;
  /** The node's host, for picking its candidate. */
  readonly host: string;
  /** What it is, for reports (e.g. `returncam node`, `Janus 1.1.2 VideoRoom`). */
  readonly label?: string;
  /** Its process id, when it runs on this machine as its own process. */
  readonly pid?: number;
  /** Set when clients cannot use WHIP/WHEP on `url` with the case tokens. */
  readonly signalling?: ServerSignalling;
  createCase(label: string): Promise<BenchCase>;
  closeCase(caseId: string): Promise<void>;
  counters(): Promise<NodeCounters | undefined>;
  resources(): NodeResources | undefined;
  /**
   * Has the node's process run a full garbage collection and says how much V8 heap is left in
   * use: what it keeps, not the garbage waiting for a collection. Only for a node process started
   * with `inspect` (through its inspector); undefined elsewhere.
   */
  liveHeapBytes?(): Promise<number>;
  close(): Promise<void>;
}

const METRIC_NAMES: Record<keyof NodeCounters, string> = {
  packetsIn: 'returncam_rtp_packets_in_total',
  packetsOut: 'returncam_rtp_packets_out_total',
  bytesIn: 'returncam_rtp_bytes_in_total',
  bytesOut: 'returncam_rtp_bytes_out_total',
  nacksFromSubscribers: 'returncam_nacks_received_total',
  nacksToPublishers: 'returncam_nacks_sent_total',
  plisFromSubscribers: 'returncam_plis_received_total',
  stallReportsFromViewers: 'returncam_viewer_stall_reports_total',
  plisToPublishers: 'returncam_plis_sent_total',
  retransmits: 'returncam_rtp_retransmits_total',
  layerSwitches: 'returncam_layer_switches_total',
  stillFrameEntries: 'returncam_still_frame_entries_total',
  recoveryKeyframeRequests: 'returncam_recovery_keyframe_requests_total',
  fecRecovered: 'returncam_fec_recovered_packets_total',
  duplicatesDropped: 'returncam_duplicate_packets_dropped_total',
};

/** Counters a node of an earlier version does not report: read as 0 there. */
const LATER_COUNTERS: ReadonlySet<keyof NodeCounters> = new Set([
  'duplicatesDropped',
  'stallReportsFromViewers',
]);

/**
 * Reads the node counters out of Prometheus text; undefined when they are not there (not a
 * returncam node). A counter newer than the node being measured reads 0.
 */
export function parseNodeCounters(text: string): NodeCounters | undefined {
  const out: Partial<NodeCounters> = {};
  for (const [key, name] of Object.entries(METRIC_NAMES) as [keyof NodeCounters, string][]) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    if (!m && !LATER_COUNTERS.has(key)) return undefined;
    out[key] = m ? Number(m[1]) : 0;
  }
  return out as NodeCounters;
}

async function scrapeCounters(url: string): Promise<NodeCounters | undefined> {
  try {
    const res = await fetch(`${url}/metrics`);
    if (!res.ok) return undefined;
    return parseNodeCounters(await res.text());
  } catch {
    return undefined;
  }
}

/** CPU seconds and RSS of another process, from /proc (Linux). */
export function procResources(pid: number): NodeResources | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces) start at ") "
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    return {
      cpuSeconds: ticks / 100,
      rssBytes: kb('VmRSS') ?? 0,
      rssAnonBytes: kb('RssAnon'),
      rssFileBytes: kb('RssFile'),
      shared: false,
    };
  } catch {
    return undefined;
  }
}

const BENCH_CASE = { sku: 'BENCH', reason: 'other' as const, marketplace: 'bench' };

/** The in-process node logs errors only, unless RETURNCAM_BENCH_LOG_LEVEL says otherwise. */
const BENCH_NODE_LOG_LEVEL: LogLevel =
  (['debug', 'info', 'warn', 'error'] as const).find(
    (l) => l === process.env.RETURNCAM_BENCH_LOG_LEVEL,
  ) ?? 'error';

/** A node started in this process, in a temporary data directory removed on close. */
export async function startInProcessNode(media?: Record<string, unknown>): Promise<BenchNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'returncam-bench-'));
  const config = loadNodeConfig({
    env: {},
    overrides: {
      node: { dataDir, id: 'bench' },
      http: { port: 0, host: '127.0.0.1' },
      log: { level: BENCH_NODE_LOG_LEVEL },
      ...(media ? { media } : {}),
    },
  });
  let node: MediaNode;
  try {
    node = await MediaNode.start({ config, log: new Logger(BENCH_NODE_LOG_LEVEL) });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    kind: 'in-process',
    url: node.url,
    host: '127.0.0.1',
    label: 'returncam node (in-process)',
    async createCase(label) {
      const created = node.cases.create({ ...BENCH_CASE, orderId: label });
      return {
        caseId: created.case.id,
        buyerToken: created.links.buyer.token,
        staffToken: created.links.staff.token,
      };
    },
    async closeCase() {
      // the whole data directory goes away with the node
    },
    counters: () => scrapeCounters(node.url),
    resources() {
      const u = process.cpuUsage();
      return {
        cpuSeconds: (u.user + u.system) / 1e6,
        rssBytes: process.memoryUsage.rss(),
        shared: true,
      };
    },
    close() {
      closing ??= node.close().finally(() => rmSync(dataDir, { recursive: true, force: true }));
      return closing;
    },
  };
}

const BIN = fileURLToPath(new URL('../../bin/returncam', import.meta.url));

/**
 * `returncam node start` as a child process (port 0, temporary data directory): its CPU and memory
 * are its own, and it does not share an event loop with the clients and relays.
 */
export interface NodeProcessOptions {
  /** Node.js flags for the node process, e.g. `--cpu-prof --cpu-prof-dir=DIR`. */
  nodeFlags?: string[];
  /**
   * Open the process's inspector on a free loopback port, for `liveHeapBytes` (nothing else is
   * asked of it, so the node runs as it would without).
   */
  inspect?: boolean;
}

export async function startNodeProcess(options: NodeProcessOptions = {}): Promise<BenchNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'returncam-bench-'));
  const child: ChildProcess = spawn(
    process.execPath,
    nodeStartArgs(BIN, dataDir, [
      ...(options.nodeFlags ?? []),
      ...(options.inspect ? ['--inspect=127.0.0.1:0', '--expose-gc'] : []),
    ]),
    {
      env: { ...process.env, CI: '1', RETURNCAM_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  let debuggerUrl: string | undefined;
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    debuggerUrl ??= inspectorUrl(stderr);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bench node did not start within 30 s: ${stderr.trim()}`));
    }, 30_000);
    const check = () => {
      const m = /^listening (http:\/\/\S+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bench node exited early (${code}): ${stderr.trim()}`));
    });
  });
  const admin = new AdminClient({ node: url, dataDir });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // a harness that dies (an uncaught error, process.exit) takes its node with it
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let closing: Promise<void> | undefined;
  let inspector: Promise<InspectorClient> | undefined;
  const liveHeapBytes = async () => {
    if (debuggerUrl === undefined)
      throw new Error('bench node: its inspector did not say where it listens');
    if (!inspector) {
      const connecting = InspectorClient.connect(debuggerUrl);
      inspector = connecting;
      connecting.catch(() => {
        if (inspector === connecting) inspector = undefined; // the next call tries again
      });
    }
    return (await inspector).liveHeapBytes();
  };
  return {
    kind: 'process',
    url,
    host: '127.0.0.1',
    label: 'returncam node',
    pid: child.pid,
    async createCase(label) {
      const created = await admin.createCase({ ...BENCH_CASE, orderId: label });
      return {
        caseId: created.case.id,
        buyerToken: created.links.buyer.token,
        staffToken: created.links.staff.token,
      };
    },
    async closeCase() {},
    counters: () => scrapeCounters(url),
    resources: () => (child.pid ? procResources(child.pid) : undefined),
    ...(options.inspect ? { liveHeapBytes } : {}),
    close() {
      closing ??= (async () => {
        process.off('exit', killOnExit);
        if (inspector) (await inspector.catch(() => undefined))?.close();
        child.kill('SIGINT');
        const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(forced);
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

export interface RemoteNodeOptions {
  url: string;
  /** Admin token; else RETURNCAM_ADMIN_TOKEN, else DATA/admin.token. */
  token?: string;
  dataDir?: string;
}

/** A node that is already running (`--node URL`): cases made through its admin API, closed afterwards. */
export async function connectRemoteNode(opts: RemoteNodeOptions): Promise<BenchNode> {
  const url = opts.url.replace(/\/$/, '');
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new UserError(`--node ${opts.url} is not a URL (e.g. http://10.0.0.5:8080)`);
  }
  const admin = new AdminClient({
    node: url,
    token: opts.token ?? process.env.RETURNCAM_ADMIN_TOKEN,
    dataDir: opts.dataDir,
  });
  try {
    const res = await fetch(`${url}/healthz`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new UserError(`cannot reach the node at ${url} (${errorMessage(err)}); is it running?`);
  }
  return {
    kind: 'remote',
    url,
    host,
    async createCase(label) {
      const created = await admin.createCase({ ...BENCH_CASE, orderId: label });
      return {
        caseId: created.case.id,
        buyerToken: created.links.buyer.token,
        staffToken: created.links.staff.token,
      };
    },
    async closeCase(caseId) {
      await admin.close(caseId).catch(() => {});
    },
    counters: () => scrapeCounters(url),
    resources: () => undefined,
    close: async () => {},
  };
}
