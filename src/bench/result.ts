/**
 * The result of a benchmark run, versioned (`version: 1`), and the pure function that builds it
 * from what the run recorded: per-frame times, relay counters, client and node counters.
 */
import type { NodeCounters } from './BenchNode.ts';
import type { FrameTimes, RepairCounters } from './BenchSession.ts';
import { DROP_CAUSES, type DropCause, droppedTotal, histogramPercentile } from './impairment.ts';
import type { DirectionSpec, NetworkProfile } from './profiles.ts';
import { pathPropagationMs } from './profiles.ts';
import type { RelayDirectionStats } from './relay/UdpRelay.ts';
import {
  cdf,
  detectFreezes,
  type OutageRecovery,
  outageRecovery,
  renderTimeline,
  type Summary,
  summarize,
  timeSeries,
} from './stats.ts';

export const RESULT_VERSION = 1;

export interface LegDirectionResult {
  /** Configured one-way delay and expected behaviour, for reference. */
  configured: DirectionSpec;
  packets: number;
  delivered: number;
  dropped: Record<DropCause, number>;
  lossRatio: number;
  maxQueue: number;
  /** Delay the relay applied to delivered packets, ms. */
  delayP50Ms?: number;
  delayP95Ms?: number;
  /** Packets by kind entering the relay in this direction. */
  kinds: Record<string, number>;
}

export interface BudgetEntry {
  /** Where the time goes. */
  part: 'uplink' | 'node' | 'downlink' | 'network' | 'jitterBuffer' | 'decodeRender' | 'allowance';
  label: string;
  summary?: Summary;
  /** A fixed figure instead of a measurement (the allowance for what synthetic clients skip). */
  fixedMs?: number;
  measured: boolean;
}

export interface SessionResult {
  index: number;
  transit?: Summary;
  framesSent: number;
  framesReceived: number;
  freezes: number;
  receivedKbps: number;
}

export interface BenchVerdict {
  targetMs: number;
  /** p95 of the latency the verdict is about (transit + allowance, or camera-to-screen). */
  p95Ms?: number;
  allowanceMs: number;
  pass: boolean;
  reason: string;
}

export interface BenchResult {
  version: typeof RESULT_VERSION;
  id: string;
  kind: 'run';
  startedAt: string;
  /** Wall clock (ms) the measurement clock starts at: series times and outages count from it. */
  epochMs: number;
  profile: {
    name: string;
    description: string;
    source: string;
    /** Sum of configured one-way delays on the buyer -> staff path. */
    propagationMs: number;
  };
  settings: {
    mode: 'synthetic' | 'browser' | 'baseline';
    sessions: number;
    durationMs: number;
    warmupMs: number;
    bitrateKbps: number;
    seed: number;
    node: { kind: string; url?: string };
  };
  /** Per-frame transit: buyer sends the frame's first packet -> staff has all of it (after repair). */
  transit?: Summary;
  /** Camera to screen (browser mode: timestamp drawn in the frame -> frame shown). */
  endToEnd?: Summary;
  budget: BudgetEntry[];
  frames: {
    sent: number;
    received: number;
    lost: number;
    lossRatio: number;
    shown: number;
    freezeCount: number;
    freezeMs: number;
    /** Frozen time / shown time. */
    freezeRatio: number;
  };
  network: Record<'buyer.up' | 'buyer.down' | 'staff.up' | 'staff.down', LegDirectionResult>;
  /** Round trips of ICE checks through each leg's relay, ms. */
  rttMs: { buyer?: Summary; staff?: Summary };
  repair: {
    nacksFromViewers: number;
    packetsNacked: number;
    retransmitsReceived: number;
    unrepairedPackets: number;
    plisFromViewers: number;
    nacksAtPublishers: number;
    keyframeRequestsAtPublishers: number;
    node?: NodeCounters;
  };
  bitrate: { sentKbps: number; receivedKbps: number };
  nodeResources?: { cpuPercent: number; rssBytes: number; shared: boolean };
  outages: OutageRecovery[];
  series: {
    /** Per second: p50 and max transit of frames sent in it. */
    latency: { t: number; p50: number; max: number; count: number }[];
    /** Per second: kbit/s delivered to the viewers. */
    bitrate: { t: number; kbps: number }[];
  };
  cdf: { x: number; p: number }[];
  sessions: SessionResult[];
  /** How faithful the relay was: deliveries late by more than 2 ms (busy event loop). */
  harness: {
    lateDeliveries: number;
    deliveries: number;
    meanLatenessMs: number;
    /** CPU of this process (clients, relays; and the node when in-process), % of one core. */
    cpuPercent: number;
    rssBytes: number;
  };
  browser?: Record<string, unknown>;
  /** Things worth knowing about this run (client warnings, outages the run did not reach). */
  notes: string[];
  verdict: BenchVerdict;
}

export interface RelayTotals {
  buyer: { up: RelayDirectionStats; down: RelayDirectionStats; stunRttMs: number[] };
  staff: { up: RelayDirectionStats; down: RelayDirectionStats; stunRttMs: number[] };
}

export interface BuildResultInput {
  id: string;
  startedAt: number;
  profile: NetworkProfile;
  settings: BenchResult['settings'];
  frames: FrameTimes[];
  /** Wall clock of the measurement start (outages count from it) and the measured window. */
  epoch: number;
  windowStart: number;
  windowEnd: number;
  relays: RelayTotals;
  /** Viewer-side delivered bytes per second (wall clock -> bytes), from the staff relays. */
  receivedBytesPerSecond: { t: number; kbps: number }[];
  /** Bytes below were counted over this long (from the first tick inside the window). */
  bytesWindowMs: number;
  sentBytes: number;
  receivedBytes: number;
  clients: RepairCounters;
  nodeCounters?: NodeCounters;
  nodeResources?: BenchResult['nodeResources'];
  harness: BenchResult['harness'];
  targetMs: number;
  allowanceMs: number;
  sessionKbps: Map<number, number>;
  browser?: Record<string, unknown>;
  notes?: string[];
}

function direction(configured: DirectionSpec, s: RelayDirectionStats): LegDirectionResult {
  const dropped = droppedTotal(s);
  return {
    configured,
    packets: s.packets,
    delivered: s.delivered,
    dropped: { ...s.dropped },
    lossRatio: s.packets ? dropped / s.packets : 0,
    maxQueue: s.maxQueue,
    delayP50Ms: histogramPercentile(s.delayHistogram, 50),
    delayP95Ms: histogramPercentile(s.delayHistogram, 95),
    kinds: { ...s.kinds },
  };
}

/** Outage windows of the profile on the legs a buyer's frame depends on, on the wall clock. */
function outageWindows(profile: NetworkProfile, epoch: number, windowEnd: number) {
  const out: { where: string; startAt: number; endAt: number }[] = [];
  for (const leg of ['buyer', 'staff'] as const) {
    for (const dir of ['up', 'down'] as const) {
      for (const o of profile[leg][dir].outages) {
        const startAt = epoch + o.at;
        if (startAt >= windowEnd) continue;
        out.push({ where: `${leg}.${dir}`, startAt, endAt: startAt + o.duration });
      }
    }
  }
  return out;
}

function unreachedOutages(profile: NetworkProfile, epoch: number, windowEnd: number): string[] {
  const out: string[] = [];
  for (const leg of ['buyer', 'staff'] as const) {
    for (const dir of ['up', 'down'] as const) {
      for (const o of profile[leg][dir].outages) {
        if (epoch + o.at >= windowEnd) {
          out.push(
            `the ${leg}.${dir} outage at ${(o.at / 1000).toFixed(0)} s is past the end of the run: run longer to see it`,
          );
        }
      }
    }
  }
  return out;
}

/** A warning when the relays could not keep time: the tails then say more about this machine. */
function busyHarness(h: BenchResult['harness']): string[] {
  if (h.deliveries === 0 || h.lateDeliveries / h.deliveries <= 0.02) return [];
  return [
    `this machine was busy: ${((100 * h.lateDeliveries) / h.deliveries).toFixed(1)} % of relay deliveries were more than 2 ms late, so the latency tails partly measure the harness; run again on a quieter machine or compare with bench run --direct`,
  ];
}

export function buildResult(input: BuildResultInput): BenchResult {
  const { frames, windowStart, windowEnd, profile } = input;
  const inWindow = frames.filter((f) => f.sentAt >= windowStart && f.sentAt < windowEnd);
  const received = inWindow.filter((f) => f.receivedAt !== undefined);
  const transitValues = received.map((f) => f.receivedAt! - f.sentAt);
  const transit = summarize(transitValues);

  // where the time goes, per frame, only for frames seen at every point
  const browserMode = frames.some((f) => f.shownAt !== undefined);
  const traced = received.filter((f) => f.atNode !== undefined && f.fromNode !== undefined);
  const viaNode = input.settings.mode !== 'baseline';
  const budget: BudgetEntry[] = [
    {
      part: 'uplink',
      label: browserMode
        ? 'camera -> node (capture, encode, pacing, uplink, repair)'
        : viaNode
          ? 'buyer -> node (incl. repair)'
          : 'buyer -> relay hand-over',
      summary: summarize(traced.map((f) => f.atNode! - f.sentAt)),
      measured: true,
    },
    {
      part: 'node',
      label: viaNode ? 'node forwarding' : 'harness hop (no node)',
      summary: summarize(traced.map((f) => f.fromNode! - f.atNode!)),
      measured: true,
    },
    {
      part: 'downlink',
      label: browserMode ? 'node -> staff browser (incl. repair)' : 'node -> staff (incl. repair)',
      summary: summarize(traced.map((f) => f.receivedAt! - f.fromNode!)),
      measured: true,
    },
  ];
  if (browserMode) {
    budget.push({
      part: 'decodeRender',
      label: 'jitter buffer + decode + render (received -> on screen)',
      summary: summarize(
        received.filter((f) => f.shownAt !== undefined).map((f) => f.shownAt! - f.receivedAt!),
      ),
      measured: true,
    });
  } else if (input.allowanceMs > 0) {
    budget.push({
      part: 'allowance',
      label: 'capture+encode, jitter buffer, decode+render (not measured by synthetic clients)',
      fixedMs: input.allowanceMs,
      measured: false,
    });
  }

  // what a viewer would have shown, per session, for freezes and outage recovery
  const bySession = new Map<number, FrameTimes[]>();
  for (const f of frames) {
    let list = bySession.get(f.session);
    if (!list) {
      list = [];
      bySession.set(f.session, list);
    }
    list.push(f);
  }
  let shown = 0;
  let freezeCount = 0;
  let freezeMs = 0;
  let shownSpanMs = 0;
  const outages: OutageRecovery[] = [];
  const windows = outageWindows(profile, input.epoch, windowEnd);
  const sessions: SessionResult[] = [];
  for (const [index, list] of [...bySession.entries()].sort((a, b) => a[0] - b[0])) {
    const timeline = browserMode
      ? list
          .filter((f) => f.shownAt !== undefined)
          .sort((a, b) => a.shownAt! - b.shownAt!)
          .map((f, i) => ({ index: i, sentAt: f.sentAt, renderedAt: f.shownAt! }))
      : renderTimeline(list);
    const rendered = timeline.filter((r) => r.sentAt >= windowStart && r.sentAt < windowEnd);
    const times = rendered.map((r) => r.renderedAt);
    const freezes = detectFreezes(times);
    shown += rendered.length;
    freezeCount += freezes.count;
    freezeMs += freezes.totalMs;
    if (times.length > 1) shownSpanMs += times[times.length - 1]! - times[0]!;
    const recoveries = outageRecovery(windows, timeline);
    for (const r of recoveries) outages.push({ ...r, where: `${r.where} (session ${index})` });
    const own = list.filter((f) => f.sentAt >= windowStart && f.sentAt < windowEnd);
    const ownReceived = own.filter((f) => f.receivedAt !== undefined);
    sessions.push({
      index,
      transit: summarize(ownReceived.map((f) => f.receivedAt! - f.sentAt)),
      framesSent: own.length,
      framesReceived: ownReceived.length,
      freezes: freezes.count,
      receivedKbps: input.sessionKbps.get(index) ?? 0,
    });
  }

  const endToEndMs = browserMode
    ? received.filter((f) => f.shownAt !== undefined).map((f) => f.shownAt! - f.sentAt)
    : undefined;
  const endToEnd = endToEndMs ? summarize(endToEndMs) : undefined;
  const verdictBase = endToEnd ?? transit;
  const allowance = endToEnd ? 0 : input.allowanceMs;
  const p95 = verdictBase ? verdictBase.p95 + allowance : undefined;
  let pass = false;
  let reason: string;
  if (p95 === undefined) {
    reason = 'no frame reached the viewer: nothing to measure';
  } else if (p95 <= input.targetMs) {
    pass = true;
    reason = `p95 ${p95.toFixed(0)} ms${allowance ? ` (transit ${verdictBase!.p95.toFixed(0)} + ${allowance} allowance)` : ''} is within ${input.targetMs} ms`;
  } else {
    reason = `p95 ${p95.toFixed(0)} ms${allowance ? ` (transit ${verdictBase!.p95.toFixed(0)} + ${allowance} allowance)` : ''} exceeds ${input.targetMs} ms`;
  }

  const seconds = Math.max(0.001, input.bytesWindowMs / 1000);
  const r = input.relays;
  return {
    version: RESULT_VERSION,
    id: input.id,
    kind: 'run',
    startedAt: new Date(input.startedAt).toISOString(),
    epochMs: input.epoch,
    profile: {
      name: profile.name,
      description: profile.description,
      source: profile.source,
      propagationMs: pathPropagationMs(profile),
    },
    settings: input.settings,
    transit,
    endToEnd,
    budget,
    frames: {
      sent: inWindow.length,
      received: received.length,
      lost: inWindow.length - received.length,
      lossRatio: inWindow.length ? (inWindow.length - received.length) / inWindow.length : 0,
      shown,
      freezeCount,
      freezeMs,
      freezeRatio: shownSpanMs > 0 ? freezeMs / shownSpanMs : 0,
    },
    network: {
      'buyer.up': direction(profile.buyer.up, r.buyer.up),
      'buyer.down': direction(profile.buyer.down, r.buyer.down),
      'staff.up': direction(profile.staff.up, r.staff.up),
      'staff.down': direction(profile.staff.down, r.staff.down),
    },
    rttMs: { buyer: summarize(r.buyer.stunRttMs), staff: summarize(r.staff.stunRttMs) },
    repair: { ...input.clients, node: input.nodeCounters },
    bitrate: {
      sentKbps: (input.sentBytes * 8) / 1000 / seconds,
      receivedKbps: (input.receivedBytes * 8) / 1000 / seconds,
    },
    nodeResources: input.nodeResources,
    outages,
    series: {
      latency: timeSeries(
        received.map((f) => ({ at: f.sentAt, value: f.receivedAt! - f.sentAt })),
        input.epoch,
        1000,
      ),
      bitrate: input.receivedBytesPerSecond,
    },
    cdf: cdf(endToEndMs ?? transitValues),
    sessions,
    harness: input.harness,
    browser: input.browser,
    notes: [
      ...(input.notes ?? []),
      ...unreachedOutages(profile, input.epoch, windowEnd),
      ...busyHarness(input.harness),
    ],
    verdict: { targetMs: input.targetMs, p95Ms: p95, allowanceMs: allowance, pass, reason },
  };
}

/** Sums relay direction counters of many relays (histograms and kinds included). */
export function sumDirections(list: readonly RelayDirectionStats[]): RelayDirectionStats {
  const first = list[0];
  const out: RelayDirectionStats = {
    packets: 0,
    bytes: 0,
    delivered: 0,
    deliveredBytes: 0,
    dropped: Object.fromEntries(DROP_CAUSES.map((c) => [c, 0])) as Record<DropCause, number>,
    reordered: 0,
    maxQueue: 0,
    delaySumMs: 0,
    delayHistogram: new Uint32Array(first?.delayHistogram.length ?? 5000),
    kinds: { stun: 0, dtls: 0, rtp: 0, rtcp: 0, other: 0 },
    noRoute: 0,
  };
  for (const s of list) {
    out.packets += s.packets;
    out.bytes += s.bytes;
    out.delivered += s.delivered;
    out.deliveredBytes += s.deliveredBytes;
    for (const c of DROP_CAUSES) out.dropped[c] += s.dropped[c];
    out.reordered += s.reordered;
    out.maxQueue = Math.max(out.maxQueue, s.maxQueue);
    out.delaySumMs += s.delaySumMs;
    for (let i = 0; i < s.delayHistogram.length; i++)
      out.delayHistogram[i]! += s.delayHistogram[i]!;
    for (const k of Object.keys(out.kinds) as (keyof typeof out.kinds)[])
      out.kinds[k] += s.kinds[k];
    out.noRoute += s.noRoute;
  }
  return out;
}
