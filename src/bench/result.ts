/**
 * The result of a benchmark run, versioned (`version: 1`), and the pure function that builds it
 * from what the run recorded: per-frame times, relay counters, client and node counters.
 */
import type { NodeCounters } from './BenchNode.ts';
import type { BrowserSeries, FrameTimes, RepairCounters, ViewerSample } from './BenchSession.ts';
import { DROP_CAUSES, type DropCause, droppedTotal, histogramPercentile } from './impairment.ts';
import type { DirectionSpec, NetworkProfile } from './profiles.ts';
import { pathPropagationMs } from './profiles.ts';
import { evaluateProofs, missed, type Proof } from './proofs.ts';
import type { RelayDirectionStats } from './relay/UdpRelay.ts';
import {
  counterRates,
  freezeThresholdMs,
  frozenTime,
  mergeWindows,
  pictureFrozenTime,
  rampSeconds,
  type SettleStats,
  settleStats,
} from './resilience.ts';
import {
  cdf,
  detectFreezes,
  type OutageRecovery,
  outageRecovery,
  percentile,
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

/** One browser session's send rate: ramp, settle and the series (t: s since the measurement epoch). */
export interface SendRateSession {
  session: number;
  /** When the buyer's connection came up, s since the epoch (usually just before it). */
  connectedAtSeconds: number;
  /** From connecting to the first second at `rampTo` × the ceiling; null: never. */
  rampSeconds: number | null;
  /** From the end of the ramp (or its deadline, when it came later or never) until the end. */
  settle?: SettleStats;
  series: {
    t: number;
    kbps: number;
    targetKbps?: number;
    availableKbps?: number;
    layers: number;
  }[];
}

/** Browser runs: how Chrome's send rate for the buyer's video ramped and where it settled. */
export interface SendRateResult {
  /** The ceiling the figures are measured against: the lowest of the three below that is set. */
  ceilingKbps: number;
  ceilingFrom: {
    /** What the bench page allows the buyer (maxBitrate). */
    pageKbps: number;
    /** The node's buyer video ceiling (its config, or what its WHIP answer signalled). */
    nodeKbps?: number;
    /** The profile's buyer uplink rate. */
    uplinkKbps?: number;
  };
  rampTo: number;
  /** Worst over sessions (null when any never reached it). */
  rampSeconds: number | null;
  /** Band the settle figures count, as shares of the ceiling. */
  band: { low: number; high: number };
  /** Worst over sessions: lowest median and in-band share, longest collapse. */
  settle?: Omit<SettleStats, 'fromSeconds'>;
  sessions: SendRateSession[];
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
    /** Browser: the buyer sent simulcast layers. */
    simulcast?: boolean;
    /** Browser: the staff page showed the backup picture while the main one stood still. */
    backupPicture?: boolean;
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
    /** Frozen time / measured time. */
    freezeRatio: number;
    /** Time the freeze figures cover, ms (summed over sessions). */
    measuredMs: number;
    /** Browser: Chrome's own freeze counters; synthetic: gaps between decodable frames. */
    freezeSource: 'chrome' | 'frame gaps';
    /**
     * Browser: freezes of the picture the staff page showed, from the gaps between the frames it
     * presented (with a backup picture, the only figure of what the viewer saw; the freeze
     * figures above are then these).
     */
    picture?: {
      freezeCount: number;
      freezeMs: number;
      freezeRatio: number;
      measuredMs: number;
      /** Each freeze: when it ended (s since the run's start) and how long it lasted (ms). */
      freezes: { session: number; t: number; ms: number }[];
    };
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
  nodeResources?: {
    cpuPercent: number;
    rssBytes: number;
    /** Its anonymous (heaps, buffers) and file-backed (executable, libraries) parts, on Linux. */
    rssAnonBytes?: number;
    rssFileBytes?: number;
    shared: boolean;
  };
  outages: OutageRecovery[];
  series: {
    /** Per second: p50 and max transit of frames sent in it. */
    latency: { t: number; p50: number; max: number; count: number }[];
    /** Per second: kbit/s delivered to the viewers. */
    bitrate: { t: number; kbps: number }[];
    /**
     * Browser: per second and session, frames the staff page presented, its freezes, the mean time
     * its frames spent in the jitter buffer, the keyframes it decoded and the width it showed.
     */
    viewer?: {
      session: number;
      t: number;
      fps: number;
      freezes: number;
      frozenMs: number;
      jitterBufferMs?: number;
      keyframes?: number;
      width?: number;
      /** Times the page went over to the backup picture in this interval. */
      fallbacks?: number;
      /** How long the backup picture was on screen in this interval, ms. */
      backupMs?: number;
    }[];
  };
  /** Browser runs: the buyer's send rate (the ramp and settle proofs). */
  sendRate?: SendRateResult;
  /** Every goal the run was checked against, with its measured figure. */
  proofs: Proof[];
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
    /**
     * Share of the packets reaching the relays whose arrival the kernel timed (0-1); the rest
     * were timed when this process read them, stalls included. Absent in results from before.
     */
    kernelTimedArrivals?: number;
    /**
     * Datagrams this machine dropped in full socket receive buffers during the measured window
     * (the kernel's `RcvbufErrors`, every socket's: `src/bench/udpDrops.ts`). Absent where the
     * kernel does not say, and in results from before.
     */
    udpBufferDrops?: number;
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
  /** Browser: what each session sampled about once a second. */
  browserSeries?: (BrowserSeries & { session: number })[];
  /** Browser: the buyer page's bitrate cap and the node's buyer ceiling, kbit/s. */
  ceiling?: { pageKbps: number; nodeKbps?: number };
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

/**
 * Outage windows of the profile on the wall clock, overlapping ones merged (the link is back when
 * every direction that was down is back).
 */
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
  return mergeWindows(out);
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

/**
 * Warnings about the harness: arrivals the kernel did not time (the node's part then includes the
 * harness's stalls), datagrams dropped in full socket buffers (losses that are not the profile's),
 * and deliveries late enough that the tails say more about this machine.
 */
export function harnessNotes(h: BenchResult['harness']): string[] {
  const notes: string[] = [];
  const loopTimed = h.kernelTimedArrivals !== undefined && h.kernelTimedArrivals < 0.99;
  if (loopTimed) {
    notes.push(
      `${(100 * (1 - h.kernelTimedArrivals!)).toFixed(1)} % of the packets reaching the relays were timed when the harness read them, not by the kernel (the native addon is off or not built: npm run build:native), so the node's part includes the harness's own stalls`,
    );
  }
  if (h.udpBufferDrops !== undefined && h.udpBufferDrops > 0) {
    notes.push(
      `${h.udpBufferDrops} datagrams were dropped on this machine during the measured window because a socket's receive buffer was full (the kernel's RcvbufErrors, every socket's): losses and repairs in this run may come from a socket that could not keep up, the harness's, the node's or another program's, not from the profile`,
    );
  }
  if (h.deliveries > 0 && h.lateDeliveries / h.deliveries > 0.02) {
    notes.push(
      `this machine was busy: ${((100 * h.lateDeliveries) / h.deliveries).toFixed(1)} % of relay deliveries were more than 2 ms late, so the transit tails partly measure the harness${loopTimed || h.kernelTimedArrivals === undefined ? '' : " (not the node's part: the kernel timed the packets it sent)"}; run again on a quieter machine or compare with bench run --direct`,
    );
  }
  return notes;
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
  let measuredMs = 0;
  let picture: BenchResult['frames']['picture'];
  const seriesBySession = new Map((input.browserSeries ?? []).map((b) => [b.session, b]));
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
    // the viewer sees the window a little later than the buyer sent it: by the median delay
    const lag = rendered.length
      ? percentile(
          rendered.map((r) => r.renderedAt - r.sentAt).sort((a, b) => a - b),
          50,
        )
      : 0;
    const viewer = seriesBySession.get(index)?.viewer;
    const presented = seriesBySession.get(index)?.presented;
    const seen = presented?.length
      ? pictureFrozenTime(presented, windowStart + lag, windowEnd + lag)
      : undefined;
    if (seen) {
      picture ??= { freezeCount: 0, freezeMs: 0, freezeRatio: 0, measuredMs: 0, freezes: [] };
      picture.freezeCount += seen.count;
      picture.freezeMs += seen.frozenMs;
      picture.measuredMs += seen.measuredMs;
      for (const f of seen.freezes) {
        picture.freezes.push({
          session: index,
          t: Math.round((f.at - input.epoch) / 100) / 10,
          ms: Math.round(f.durationMs),
        });
      }
    }
    const frozen =
      seen && input.settings.backupPicture
        ? seen
        : viewer
          ? chromeFrozenTime(viewer, times, windowStart, windowEnd + lag)
          : frozenTime(
              timeline.map((r) => r.renderedAt),
              windowStart + lag,
              windowEnd + lag,
            );
    freezeCount += frozen.count;
    freezeMs += frozen.frozenMs;
    measuredMs += frozen.measuredMs;
    const recoveries = outageRecovery(windows, timeline, windowEnd + lag);
    for (const r of recoveries) outages.push({ ...r, where: `${r.where} (session ${index})` });
    const own = list.filter((f) => f.sentAt >= windowStart && f.sentAt < windowEnd);
    const ownReceived = own.filter((f) => f.receivedAt !== undefined);
    sessions.push({
      index,
      transit: summarize(ownReceived.map((f) => f.receivedAt! - f.sentAt)),
      framesSent: own.length,
      framesReceived: ownReceived.length,
      freezes: viewer ? frozen.count : freezes.count,
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
  const freezeRatio = measuredMs > 0 ? freezeMs / measuredMs : 0;
  const sendRate = input.browserSeries?.length ? sendRateOf(input, input.browserSeries) : undefined;
  const proofs = evaluateProofs({
    mode: input.settings.mode,
    goals: profile.goals,
    hasOutages: windows.length > 0 || unreachedOutages(profile, input.epoch, windowEnd).length > 0,
    latency: {
      label: endToEnd ? 'camera to screen' : 'transit + allowance',
      p95Ms: p95,
      allowanceMs: allowance,
      targetMs: input.targetMs,
    },
    sendRate,
    freezeRatio,
    measuredMs,
    outages,
    unreachedOutages: unreachedOutages(profile, input.epoch, windowEnd).length,
  });
  if (p95 === undefined) {
    reason = 'no frame reached the viewer: nothing to measure';
  } else if (p95 <= input.targetMs) {
    pass = true;
    reason = `p95 ${p95.toFixed(0)} ms${allowance ? ` (transit ${verdictBase!.p95.toFixed(0)} + ${allowance} allowance)` : ''} is within ${input.targetMs} ms`;
  } else {
    reason = `p95 ${p95.toFixed(0)} ms${allowance ? ` (transit ${verdictBase!.p95.toFixed(0)} + ${allowance} allowance)` : ''} exceeds ${input.targetMs} ms`;
  }
  const misses = missed(proofs);
  if (misses.length) {
    pass = false;
    reason = [reason, ...misses].join('; ');
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
      freezeRatio,
      measuredMs,
      freezeSource: seriesBySession.size && !input.settings.backupPicture ? 'chrome' : 'frame gaps',
      ...(picture
        ? {
            picture: {
              ...picture,
              freezeRatio: picture.measuredMs > 0 ? picture.freezeMs / picture.measuredMs : 0,
            },
          }
        : {}),
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
      viewer: input.browserSeries?.length
        ? viewerSeries(input.browserSeries, input.epoch)
        : undefined,
    },
    sendRate,
    proofs,
    cdf: cdf(endToEndMs ?? transitValues),
    sessions,
    harness: input.harness,
    browser: input.browser,
    notes: [
      ...(input.notes ?? []),
      ...unreachedOutages(profile, input.epoch, windowEnd),
      ...harnessNotes(input.harness),
    ],
    verdict: { targetMs: input.targetMs, p95Ms: p95, allowanceMs: allowance, pass, reason },
  };
}

/**
 * Browser: frozen time from Chrome's own counters (freezeCount, totalFreezesDuration) between the
 * readings that bracket the window, plus video that stopped and had not come back by the last
 * reading (Chrome counts a freeze only when the next frame comes).
 */
function chromeFrozenTime(
  viewer: BrowserSeries['viewer'],
  shownTimes: readonly number[],
  from: number,
  to: number,
): { count: number; frozenMs: number; measuredMs: number } {
  const inside = viewer.filter((v) => v.at >= from && v.at <= to);
  const first = inside[0];
  const last = inside.at(-1);
  if (!first || !last || last === first) return { count: 0, frozenMs: 0, measuredMs: 0 };
  let count = Math.max(0, last.freezeCount - first.freezeCount);
  let frozenMs = Math.max(0, 1000 * (last.totalFreezesDuration - first.totalFreezesDuration));
  const before = shownTimes.filter((t) => t <= last.at);
  const lastShown = before.at(-1) ?? first.at;
  const tail = last.at - Math.max(lastShown, first.at);
  if (tail > 0 && tail >= freezeThresholdMs(before)) {
    count++;
    frozenMs += tail;
  }
  return { count, frozenMs, measuredMs: last.at - first.at };
}

function viewerSeries(
  list: readonly (BrowserSeries & { session: number })[],
  epoch: number,
): NonNullable<BenchResult['series']['viewer']> {
  const out: NonNullable<BenchResult['series']['viewer']> = [];
  for (const b of list) {
    for (let i = 1; i < b.viewer.length; i++) {
      const a = b.viewer[i - 1]!;
      const v = b.viewer[i]!;
      const dt = (v.at - a.at) / 1000;
      if (!(dt > 0)) continue;
      const frames =
        v.framesPresented !== undefined && a.framesPresented !== undefined
          ? v.framesPresented - a.framesPresented
          : v.framesDecoded - a.framesDecoded;
      out.push({
        session: b.session,
        t: Math.round((v.at - epoch) / 100) / 10,
        fps: Math.max(0, frames) / dt,
        freezes: Math.max(0, v.freezeCount - a.freezeCount),
        frozenMs: Math.max(0, 1000 * (v.totalFreezesDuration - a.totalFreezesDuration)),
        ...viewerBuffering(a, v),
        ...(v.fallbacks !== undefined && a.fallbacks !== undefined
          ? { fallbacks: Math.max(0, v.fallbacks - a.fallbacks) }
          : {}),
        ...(v.backupMs !== undefined && a.backupMs !== undefined
          ? { backupMs: Math.round(Math.max(0, v.backupMs - a.backupMs)) }
          : {}),
      });
    }
  }
  return out;
}

/** Between two staff-page readings: jitter buffer time per frame, keyframes decoded, width shown. */
function viewerBuffering(
  a: ViewerSample,
  v: ViewerSample,
): { jitterBufferMs?: number; keyframes?: number; width?: number } {
  const emitted = (v.jitterBufferEmittedCount ?? 0) - (a.jitterBufferEmittedCount ?? 0);
  const delay = (v.jitterBufferDelay ?? 0) - (a.jitterBufferDelay ?? 0);
  return {
    jitterBufferMs: emitted > 0 ? (1000 * delay) / emitted : undefined,
    keyframes:
      v.keyFramesDecoded !== undefined && a.keyFramesDecoded !== undefined
        ? Math.max(0, v.keyFramesDecoded - a.keyFramesDecoded)
        : undefined,
    width: v.frameWidth || undefined,
  };
}

/** Browser: ramp and settle of the buyer's send rate, per session and worst of all. */
function sendRateOf(
  input: BuildResultInput,
  list: readonly (BrowserSeries & { session: number })[],
): SendRateResult {
  const { profile } = input;
  const pageKbps = input.ceiling?.pageKbps ?? input.settings.bitrateKbps;
  const signalled = list
    .map((b) => b.signalledKbps)
    .filter((v): v is number => v !== undefined && v > 0);
  const nodeKbps = signalled.length ? Math.min(...signalled) : input.ceiling?.nodeKbps;
  const uplinkKbps = profile.buyer.up.rateKbps;
  const ceilingKbps = Math.min(
    pageKbps,
    nodeKbps ?? Number.POSITIVE_INFINITY,
    uplinkKbps ?? Number.POSITIVE_INFINITY,
  );
  const rampTo = profile.goals.ramp?.to ?? 0.9;
  const rampDue = (profile.goals.ramp?.within ?? 10_000) / 1000;
  const band = {
    low: profile.goals.settle?.low ?? 0.5,
    high: profile.goals.settle?.high ?? 1,
  };
  const sessions: SendRateSession[] = list.map((b) => {
    const origin = b.connectedAt ?? b.sender[0]?.at ?? input.epoch;
    const points = counterRates(
      b.sender.map((x) => ({ at: x.at, value: x.bytesSent })),
      origin,
    );
    const ramp = rampSeconds(points, ceilingKbps, rampTo);
    // after the ramp, or after the ramp's deadline when it came late or never
    const settle = settleStats(
      points,
      ceilingKbps,
      Math.min(ramp ?? rampDue, rampDue),
      (input.windowEnd - origin) / 1000,
      band,
    );
    const series = b.sender.slice(1).map((x, i) => {
      const prev = b.sender[i]!;
      const ms = x.at - prev.at;
      return {
        t: Math.round((x.at - input.epoch) / 100) / 10,
        kbps: ms > 0 ? Math.max(0, ((x.bytesSent - prev.bytesSent) * 8) / ms) : 0,
        targetKbps: x.targetBitrate !== undefined ? x.targetBitrate / 1000 : undefined,
        availableKbps:
          x.availableOutgoingBitrate !== undefined ? x.availableOutgoingBitrate / 1000 : undefined,
        layers: x.layers,
      };
    });
    return {
      session: b.session,
      connectedAtSeconds: (origin - input.epoch) / 1000,
      rampSeconds: ramp,
      settle,
      series,
    };
  });
  const ramps = sessions.map((s) => s.rampSeconds);
  const settles = sessions.map((s) => s.settle).filter((s): s is SettleStats => !!s);
  return {
    ceilingKbps,
    ceilingFrom: { pageKbps, nodeKbps, uplinkKbps },
    rampTo,
    rampSeconds: ramps.some((r) => r === null) ? null : Math.max(...(ramps as number[])),
    band,
    settle:
      settles.length === sessions.length && settles.length > 0
        ? {
            seconds: Math.min(...settles.map((s) => s.seconds)),
            medianKbps: Math.min(...settles.map((s) => s.medianKbps)),
            inBandFraction: Math.min(...settles.map((s) => s.inBandFraction)),
            longestCollapseSeconds: Math.max(...settles.map((s) => s.longestCollapseSeconds)),
          }
        : undefined,
    sessions,
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
