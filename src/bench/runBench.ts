/**
 * `bench run`: N synthetic inspection calls (buyer publishes, staff watch) through the
 * impairment relays, against a node started here or a deployed one, for a set duration; returns
 * a {@link BenchResult}. Progress is reported once a second through `onProgress`.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadNodeConfig } from '../core/config.ts';
import { errorMessage, UserError } from '../core/errors.ts';
import {
  type BenchNode,
  connectRemoteNode,
  type NodeCounters,
  type NodeResources,
  startInProcessNode,
  startNodeProcess,
} from './BenchNode.ts';
import type { BenchSession, RepairCounters } from './BenchSession.ts';
import { BrowserHarness, BrowserSession } from './browser/BrowserSession.ts';
import { benchLayers } from './browser/pages.ts';
import { ensureTestMedia, parseIvf, parseOggOpus } from './clients/media.ts';
import type { NetworkProfile } from './profiles.ts';
import { RelayHub } from './relay/RelayHub.ts';
import type { UdpRelay } from './relay/UdpRelay.ts';
import { type BenchResult, buildResult, type RelayTotals, sumDirections } from './result.ts';
import { SyntheticSession, type SyntheticSessionOptions } from './SyntheticSession.ts';
import { detectFreezes, percentile, renderTimeline } from './stats.ts';
import { udpBufferDrops } from './udpDrops.ts';

export type NodeChoice =
  /** `media`: settings for the node's media section (e.g. `{ publisherFec: true }`). */
  | { kind: 'in-process'; media?: Record<string, unknown> }
  | { kind: 'process' }
  | { kind: 'remote'; url: string; token?: string; dataDir?: string }
  /** No node: clients connect to each other through the relays (the harness floor). */
  | { kind: 'none' }
  /** Another server, opened by the caller's function (e.g. Janus for `bench capacity --server janus`). */
  | { kind: 'custom'; open: () => Promise<BenchNode> };

export interface RunOptions {
  profile: NetworkProfile;
  sessions: number;
  durationMs: number;
  /** Frames sent in the first `warmupMs` are not measured (default: a fifth of the run, at most 2 s). */
  warmupMs?: number;
  /**
   * Video bitrate; default the profile's. Browser mode: the most the buyer page lets Chrome send
   * (default: the node's buyer video ceiling, so the ramp is Chrome's own; the profile's bitrate
   * when the node has none).
   */
  bitrateKbps?: number;
  node: NodeChoice;
  /** Headless Chromium as buyer and staff instead of synthetic clients. */
  browser?: boolean;
  /** Browser mode: the buyer sends audio as well as video (default true). */
  browserAudio?: boolean;
  /** Browser mode: the buyer sends the product page's simulcast layers (default true); false: one layer. */
  browserSimulcast?: boolean;
  /**
   * Browser mode: the staff page also receives the backup picture and shows it while the main
   * one stands still, as the product's staff page does (default true).
   */
  browserBackup?: boolean;
  seed?: number;
  /** The latency target (p95), ms. */
  targetMs?: number;
  /** Added to synthetic transit before the verdict: what synthetic clients do not measure. */
  allowanceMs?: number;
  /** Where generated media is cached (default ./.returncam-cache). */
  cacheDir?: string;
  signal?: AbortSignal;
  onProgress?: (p: BenchProgress) => void;
  /** Makes each synthetic session (default: one publisher and one viewer, {@link SyntheticSession}). */
  createSession?: (o: SyntheticSessionOptions) => BenchSession;
}

export interface SessionProgress {
  index: number;
  frames: number;
  p50?: number;
  p95?: number;
  p99?: number;
  kbps: number;
  /** Packets the relays dropped on this session's path, % of those offered. */
  lossPct: number;
  freezes: number;
}

export interface BenchProgress {
  phase: 'preparing' | 'connecting' | 'running' | 'draining' | 'done';
  message: string;
  elapsedMs: number;
  durationMs: number;
  overall?: { frames: number; p50: number; p95: number; p99: number };
  sessions: SessionProgress[];
}

export const DEFAULT_TARGET_MS = 600;
/**
 * What synthetic clients skip, from DESIGN.md's budget: capture+encode ~50 ms, a jitter buffer
 * of at least 50 ms, decode+render ~20 ms.
 */
export const DEFAULT_ALLOWANCE_MS = 120;

/**
 * The node's buyer video ceiling (kbit/s) from its configuration (`media.maxBitrateKbps.buyer`);
 * undefined when the node has none. A node this harness starts uses the defaults; a remote node is
 * assumed to use them too (what its WHIP answer signals takes precedence when it sets one).
 */
export function nodeBuyerCeilingKbps(): number | undefined {
  try {
    const media = loadNodeConfig({ env: {} }).media as Record<string, unknown>;
    const max = media.maxBitrateKbps;
    if (typeof max === 'number') return max;
    const buyer = (max as Record<string, unknown> | undefined)?.buyer;
    return typeof buyer === 'number' ? buyer : undefined;
  } catch {
    return undefined;
  }
}

/** Video size and frame rate for a bitrate: small pictures for thin links. */
export function mediaShape(bitrateKbps: number): { width: number; height: number; fps: number } {
  if (bitrateKbps >= 500) return { width: 640, height: 360, fps: 30 };
  if (bitrateKbps >= 250) return { width: 480, height: 270, fps: 30 };
  return { width: 320, height: 180, fps: 15 };
}

/** Loads (making and caching it first if needed) the buyer's camera stand-in at `bitrateKbps`. */
export async function benchMedia(bitrateKbps: number, cacheDir?: string) {
  const shape = mediaShape(bitrateKbps);
  const files = await ensureTestMedia(
    join(resolve(cacheDir ?? '.returncam-cache'), 'bench-media'),
    {
      seconds: 10,
      bitrateKbps,
      ...shape,
    },
  );
  const [video, audio] = await Promise.all([readFile(files.videoPath), readFile(files.audioPath)]);
  return { video: parseIvf(video), audio: parseOggOpus(audio) };
}

export async function openBenchNode(choice: NodeChoice): Promise<BenchNode | undefined> {
  switch (choice.kind) {
    case 'in-process':
      return startInProcessNode(choice.media);
    case 'process':
      return startNodeProcess();
    case 'remote':
      return connectRemoteNode(choice);
    case 'none':
      return undefined;
    case 'custom':
      return choice.open();
  }
}

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolveSleep) => {
    if (signal?.aborted) return resolveSleep();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Starts sessions a few at a time, so set-up does not swamp the node or the relays. */
async function startAll(sessions: BenchSession[], parallel = 4): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < sessions.length) {
      const s = sessions[next++]!;
      try {
        await s.start();
      } catch (err) {
        throw new Error(`session ${s.index}: ${errorMessage(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, sessions.length) }, worker));
}

/** Share of the packets that reached the relays whose arrival the kernel timed. */
function kernelTimedShare(relays: readonly UdpRelay[]): number | undefined {
  let timed = 0;
  let packets = 0;
  for (const r of relays) {
    const s = r.stats();
    timed += s.kernelTimed;
    packets += s.up.packets + s.down.packets;
  }
  return packets > 0 ? timed / packets : undefined;
}

function relayTotals(sessions: readonly BenchSession[]): RelayTotals {
  const buyer = sessions.map((s) => s.buyerRelay!.stats());
  const staff = sessions.map((s) => s.staffRelay!.stats());
  return {
    buyer: {
      up: sumDirections(buyer.map((b) => b.up)),
      down: sumDirections(buyer.map((b) => b.down)),
      stunRttMs: buyer.flatMap((b) => b.stunRttMs),
    },
    staff: {
      up: sumDirections(staff.map((b) => b.up)),
      down: sumDirections(staff.map((b) => b.down)),
      stunRttMs: staff.flatMap((b) => b.stunRttMs),
    },
  };
}

function subtractCounters(a: NodeCounters, b: NodeCounters): NodeCounters {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof NodeCounters)[]) out[k] = a[k] - b[k];
  return out;
}

/**
 * A live view of every session (the last few seconds of frames), one session per turn of the
 * event loop: at 25 sessions × 2 viewers the whole view takes ~25 ms, and the relays, which run
 * on this loop and stamp every packet, must not wait that long (their packets would show as
 * transit).
 */
async function progressOf(
  sessions: readonly BenchSession[],
  since: number,
  lastBytes: Map<number, number>,
  intervalMs: number,
): Promise<Pick<BenchProgress, 'overall' | 'sessions'>> {
  const all: number[] = [];
  const rows: SessionProgress[] = [];
  for (const s of sessions) {
    if (rows.length > 0) await new Promise((resolve) => setImmediate(resolve));
    const lat = s.latenciesSince(since).sort((a, b) => a - b);
    for (const v of lat) all.push(v);
    const c = s.counters();
    const delivered = c?.staff.down.deliveredBytes ?? 0;
    const kbps = ((delivered - (lastBytes.get(s.index) ?? delivered)) * 8) / intervalMs;
    lastBytes.set(s.index, delivered);
    const offered = (c?.buyer.up.packets ?? 0) + (c?.staff.down.packets ?? 0);
    const dropped = offered - (c?.buyer.up.delivered ?? 0) - (c?.staff.down.delivered ?? 0);
    const frames = s.recentFrames(since);
    const freezes = detectFreezes(renderTimeline(frames).map((r) => r.renderedAt)).count;
    rows.push({
      index: s.index,
      frames: lat.length,
      p50: lat.length ? percentile(lat, 50) : undefined,
      p95: lat.length ? percentile(lat, 95) : undefined,
      p99: lat.length ? percentile(lat, 99) : undefined,
      kbps,
      lossPct: offered ? (100 * dropped) / offered : 0,
      freezes,
    });
  }
  all.sort((a, b) => a - b);
  return {
    overall: all.length
      ? {
          frames: all.length,
          p50: percentile(all, 50),
          p95: percentile(all, 95),
          p99: percentile(all, 99),
        }
      : undefined,
    sessions: rows,
  };
}

/** Runs one benchmark and returns its result. Closes everything it opened, also on error. */
export async function runBench(options: RunOptions): Promise<BenchResult> {
  const startedAt = Date.now();
  const id = `${new Date(startedAt).toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
  const { profile } = options;
  const nodeCeilingKbps = options.browser ? nodeBuyerCeilingKbps() : undefined;
  const bitrateKbps = options.browser
    ? (options.bitrateKbps ?? nodeCeilingKbps ?? profile.bitrateKbps)
    : (options.bitrateKbps ?? profile.bitrateKbps);
  const warmupMs = options.warmupMs ?? Math.min(2000, Math.round(options.durationMs / 5));
  const seed = options.seed ?? 1;
  const report = (p: Omit<BenchProgress, 'durationMs' | 'sessions'> & Partial<BenchProgress>) =>
    options.onProgress?.({ sessions: [], durationMs: options.durationMs, ...p });

  if (options.browser && options.node.kind === 'none') {
    throw new UserError('--browser needs a node: the pages publish and play over WHIP/WHEP');
  }
  report({
    phase: 'preparing',
    message: options.browser ? 'starting Chromium' : `making ${bitrateKbps} kbit/s test video`,
    elapsedMs: 0,
  });
  const media = options.browser ? undefined : await benchMedia(bitrateKbps, options.cacheDir);
  const harness = options.browser ? await BrowserHarness.launch() : undefined;
  report({ phase: 'preparing', message: 'starting the node', elapsedMs: 0 });
  let node: BenchNode | undefined;
  try {
    node = await openBenchNode(options.node);
  } catch (err) {
    await harness?.close();
    throw err;
  }
  const hub = new RelayHub({
    profile,
    seed,
    remoteNodeHost: node?.kind === 'remote' || node?.kind === 'janus' ? node.host : undefined,
  });
  const sessions: BenchSession[] = Array.from({ length: options.sessions }, (_, i) =>
    harness && node
      ? new BrowserSession({
          index: i + 1,
          node,
          hub,
          harness,
          bitrateKbps,
          audio: options.browserAudio,
          simulcast: options.browserSimulcast,
          backup: options.browserBackup,
        })
      : (options.createSession ?? ((o) => new SyntheticSession(o)))({
          index: i + 1,
          node,
          hub,
          profile,
          media: media!,
          seed: seed * 7919 + i,
        }),
  );
  try {
    report({
      phase: 'connecting',
      message: `connecting ${options.sessions} session${options.sessions > 1 ? 's' : ''}`,
      elapsedMs: 0,
    });
    await startAll(sessions);

    const epochPerf = performance.now();
    hub.start(epochPerf);
    const epoch = performance.timeOrigin + epochPerf;
    const windowStart = epoch + warmupMs;
    const countersBefore = await node?.counters();
    let resourcesAtWindow: NodeResources | undefined;
    let harnessCpuAtWindow = process.cpuUsage();
    let windowStartedAt: number | undefined;
    let dropsAtWindow: number | undefined;
    let bytesAtWindow = { sent: 0, received: 0 };
    const perSessionBytesAtWindow = new Map<number, number>();
    const bitrateSeries: { t: number; kbps: number }[] = [];
    const lastBytes = new Map<number, number>();
    let lastReceived = sessions.reduce(
      (sum, s) => sum + s.staffRelay!.stats().down.deliveredBytes,
      0,
    );
    let lastTick = wallNow();

    let end = epoch + options.durationMs;
    while (wallNow() < end) {
      await sleep(Math.min(1000, Math.max(0, end - wallNow())), options.signal);
      const now = wallNow();
      if (options.signal?.aborted) end = now;
      // the last, partial tick says nothing new (and would show a bitrate over a few ms)
      if (now - lastTick < 300) continue;
      await Promise.all(sessions.map((s) => s.refresh?.()));
      if (windowStartedAt === undefined && now >= windowStart) {
        windowStartedAt = now;
        dropsAtWindow = udpBufferDrops();
        resourcesAtWindow = node?.resources();
        harnessCpuAtWindow = process.cpuUsage();
        const totals = relayTotals(sessions);
        bytesAtWindow = { sent: totals.buyer.up.bytes, received: totals.staff.down.deliveredBytes };
        for (const s of sessions)
          perSessionBytesAtWindow.set(s.index, s.staffRelay!.stats().down.deliveredBytes);
      }
      const received = sessions.reduce(
        (sum, s) => sum + s.staffRelay!.stats().down.deliveredBytes,
        0,
      );
      bitrateSeries.push({
        t: Math.round((now - epoch) / 100) / 10,
        kbps: ((received - lastReceived) * 8) / Math.max(1, now - lastTick),
      });
      lastReceived = received;
      const live = await progressOf(
        sessions,
        Math.max(epoch, now - 10_000),
        lastBytes,
        now - lastTick,
      );
      lastTick = now;
      report({
        phase: 'running',
        message: options.signal?.aborted ? 'stopping early' : 'measuring',
        elapsedMs: now - epoch,
        ...live,
      });
    }
    const windowEnd = wallNow();
    const dropsAtEnd = udpBufferDrops();
    const resourcesAtEnd = node?.resources();
    const harnessCpu = process.cpuUsage(harnessCpuAtWindow);
    const totalsAtEnd = relayTotals(sessions);
    const perSessionKbps = new Map<number, number>();
    for (const s of sessions) {
      const bytes =
        s.staffRelay!.stats().down.deliveredBytes - (perSessionBytesAtWindow.get(s.index) ?? 0);
      perSessionKbps.set(
        s.index,
        (bytes * 8) / Math.max(1, windowEnd - (windowStartedAt ?? epoch)),
      );
    }
    for (const s of sessions) s.stopSending();

    // let the last frames, and their repairs, arrive
    const oneWay = profile.buyer.up.delay + profile.staff.down.delay;
    const drainMs = Math.min(
      8000,
      1000 + 3 * (oneWay + profile.buyer.down.delay + profile.staff.up.delay),
    );
    report({
      phase: 'draining',
      message: 'waiting for the last frames',
      elapsedMs: windowEnd - epoch,
    });
    await sleep(drainMs);
    await Promise.all(sessions.map((s) => s.refresh?.()));
    const browserDetails: Record<string, unknown>[] | undefined = harness
      ? await Promise.all(sessions.map((s) => s.details?.() ?? Promise.resolve({})))
      : undefined;

    const countersAfter = await node?.counters();
    const clients: RepairCounters = {
      nacksFromViewers: 0,
      packetsNacked: 0,
      retransmitsReceived: 0,
      unrepairedPackets: 0,
      plisFromViewers: 0,
      nacksAtPublishers: 0,
      keyframeRequestsAtPublishers: 0,
    };
    for (const s of sessions) {
      const c = s.counters();
      if (!c) continue;
      for (const k of Object.keys(clients) as (keyof RepairCounters)[]) clients[k] += c.repair[k];
    }
    const measuredFrom = windowStartedAt ?? epoch;
    const result = buildResult({
      id,
      startedAt,
      profile,
      settings: {
        mode: harness ? 'browser' : node ? 'synthetic' : 'baseline',
        sessions: options.sessions,
        durationMs: options.durationMs,
        warmupMs,
        bitrateKbps,
        seed,
        simulcast: harness ? (options.browserSimulcast ?? true) : undefined,
        backupPicture: harness ? (options.browserBackup ?? true) : undefined,
        node: node
          ? { kind: node.kind, url: node.kind === 'remote' ? node.url : undefined }
          : { kind: 'none' },
      },
      frames: sessions.flatMap((s) => s.frames()),
      epoch,
      windowStart,
      windowEnd,
      relays: relayTotals(sessions),
      receivedBytesPerSecond: bitrateSeries,
      bytesWindowMs: windowEnd - measuredFrom,
      sentBytes: totalsAtEnd.buyer.up.bytes - bytesAtWindow.sent,
      receivedBytes: totalsAtEnd.staff.down.deliveredBytes - bytesAtWindow.received,
      clients,
      nodeCounters:
        countersBefore && countersAfter
          ? subtractCounters(countersAfter, countersBefore)
          : undefined,
      nodeResources:
        resourcesAtWindow && resourcesAtEnd
          ? {
              cpuPercent:
                (100 * (resourcesAtEnd.cpuSeconds - resourcesAtWindow.cpuSeconds)) /
                Math.max(0.001, (windowEnd - measuredFrom) / 1000),
              rssBytes: resourcesAtEnd.rssBytes,
              rssAnonBytes: resourcesAtEnd.rssAnonBytes,
              rssFileBytes: resourcesAtEnd.rssFileBytes,
              shared: resourcesAtEnd.shared,
            }
          : undefined,
      harness: {
        lateDeliveries: hub.scheduler.lateDeliveries,
        deliveries: hub.scheduler.delivered,
        meanLatenessMs: hub.scheduler.delivered
          ? hub.scheduler.latenessSumMs / hub.scheduler.delivered
          : 0,
        cpuPercent:
          (harnessCpu.user + harnessCpu.system) /
          1e4 /
          Math.max(0.001, (windowEnd - measuredFrom) / 1000),
        rssBytes: process.memoryUsage.rss(),
        kernelTimedArrivals: kernelTimedShare(hub.all),
        udpBufferDrops:
          dropsAtWindow !== undefined && dropsAtEnd !== undefined
            ? dropsAtEnd - dropsAtWindow
            : undefined,
      },
      targetMs: options.targetMs ?? DEFAULT_TARGET_MS,
      sessionKbps: perSessionKbps,
      notes: sessions.flatMap((s) => s.warnings),
      browser: browserDetails ? { sessions: browserDetails } : undefined,
      browserSeries: harness
        ? sessions.flatMap((s) =>
            s.browserSeries ? [{ session: s.index, ...s.browserSeries() }] : [],
          )
        : undefined,
      ceiling: harness
        ? {
            pageKbps:
              (options.browserSimulcast ?? true) ? benchLayers(bitrateKbps).totalKbps : bitrateKbps,
            nodeKbps: nodeCeilingKbps,
          }
        : undefined,
      allowanceMs: harness ? 0 : (options.allowanceMs ?? DEFAULT_ALLOWANCE_MS),
    });
    if (browserDetails) {
      // a browser's frames are counted by the browser: encoded by the buyer, decoded by staff
      // (drawn-but-not-captured canvas frames and frames the compositor skipped are not loss)
      const count = (side: 'sender' | 'receiver', key: string) =>
        browserDetails.reduce<number>((sum, d) => {
          const v = (d[side] as Record<string, unknown> | undefined)?.[key];
          return sum + (typeof v === 'number' ? v : 0);
        }, 0);
      const encoded = count('sender', 'framesEncoded');
      const decoded = count('receiver', 'framesDecoded');
      result.frames.sent = encoded;
      result.frames.received = decoded;
      result.frames.lost = Math.max(0, encoded - decoded);
      result.frames.lossRatio = encoded ? Math.max(0, encoded - decoded) / encoded : 0;
      result.notes.push(
        'browser frame counts cover the whole call (encoded by the buyer, decoded by staff); latency covers frames shown with a readable stamp',
      );
    }
    report({ phase: 'done', message: 'done', elapsedMs: windowEnd - epoch });
    return result;
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
    hub.close();
    await node?.close();
    await harness?.close();
  }
}

/** Runs the same settings on several profiles, one after the other. */
export async function runProfiles(
  profiles: readonly NetworkProfile[],
  options: Omit<RunOptions, 'profile'>,
  each?: (result: BenchResult) => void,
): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const profile of profiles) {
    if (options.signal?.aborted) break;
    const result = await runBench({ ...options, profile });
    each?.(result);
    out.push(result);
  }
  return out;
}
