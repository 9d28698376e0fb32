/**
 * `bench soak`: a node child process carries `sessions` inspection calls for a long time while
 * calls end and new ones start every `churnMs` (publish + view through the synthetic clients).
 * Every `sampleMs` it records the node's RSS, V8 heap and open file descriptors; the verdict is the
 * growth from the first settled sample to the end, against a limit (10 % by default). A node that
 * keeps something per ended session (a map entry, a socket, a timer) shows here as steady growth.
 * At each sample of a node it started, once RSS and /metrics are read, it has that node run a full
 * collection (through the process's inspector), so the heap it judges is what the node keeps,
 * whatever V8's pace.
 */
import { readdirSync } from 'node:fs';
import { errorMessage } from '../core/errors.ts';
import { type BenchNode, procResources, startNodeProcess } from './BenchNode.ts';
import { FanoutSession } from './FanoutSession.ts';
import { resolveProfile } from './profiles.ts';
import { RelayHub } from './relay/RelayHub.ts';
import { benchMedia } from './runBench.ts';

export interface SoakOptions {
  durationMs: number;
  /** Calls kept running at once (default 4). */
  sessions?: number;
  /** Staff viewers per call (default 1). */
  viewers?: number;
  /** One call ends and a new one starts this often (default 5 s). */
  churnMs?: number;
  /** Time between samples (default 10 s). */
  sampleMs?: number;
  /** Samples before this are warm-up (default: a fifth of the run, at most 2 minutes). */
  settleMs?: number;
  /** Largest acceptable growth, as a fraction (default 0.10). */
  growthLimit?: number;
  bitrateKbps?: number;
  cacheDir?: string;
  /** An already running node to soak (default: a fresh `node start` child process). */
  node?: BenchNode;
  signal?: AbortSignal;
  onSample?: (s: SoakSample, state: { live: number; started: number; ended: number }) => void;
}

export interface SoakSample {
  /** Seconds since the first call started. */
  t: number;
  rssBytes: number;
  /** The anonymous and file-backed parts of `rssBytes` (/proc/PID/status); undefined off Linux. */
  rssAnonBytes?: number;
  rssFileBytes?: number;
  /** The main thread's V8 heap reserved from the system (`nodejs_heap_size_total_bytes`). */
  heapTotalBytes?: number;
  /** Memory held outside the V8 heap by ArrayBuffers and Buffers (`nodejs_external_memory_bytes`). */
  externalBytes?: number;
  /**
   * Memory freed to the C allocator and kept in its arenas (`returncam_malloc_free_bytes`);
   * undefined without the node's native addon on glibc.
   */
  mallocFreeBytes?: number;
  /**
   * Memory allocated from the C allocator and not freed, ArrayBuffers included
   * (`returncam_malloc_in_use_bytes`); undefined as `mallocFreeBytes` is.
   */
  mallocInUseBytes?: number;
  /** From the node's /metrics (`nodejs_heap_size_used_bytes`); undefined if it does not say. */
  heapUsedBytes?: number;
  /**
   * The V8 heap in use right after a full collection the soak had the node run at this sample,
   * once the figures above were read (through its inspector): what the node keeps. Undefined for
   * a node the soak did not start, or when the inspector did not answer.
   */
  heapLiveBytes?: number;
  /** The heap in use right after the node's last full collection (`nodejs_heap_after_full_gc_bytes`). */
  heapAfterFullGcBytes?: number;
  /** The node's full collections so far (`nodejs_gc_full_collections_total`). */
  fullCollections?: number;
  /** Entries in /proc/PID/fd. */
  fds?: number;
  /** From /metrics (`nodejs_active_resources`). */
  activeResources?: number;
  liveSessions: number;
  /** The node's count of connected peers (`returncam_peers`). */
  peers?: number;
}

export interface SoakGrowth {
  metric: 'rss' | 'heap' | 'fds' | 'handles';
  from: number;
  to: number;
  /** (to - from) / from */
  growth: number;
  pass: boolean;
}

export interface SoakResult {
  version: 1;
  kind: 'soak';
  startedAt: string;
  durationMs: number;
  sessions: number;
  viewers: number;
  churnMs: number;
  sampleMs: number;
  settleMs: number;
  growthLimit: number;
  samples: SoakSample[];
  /** Index in `samples` of the first settled sample. */
  settledIndex: number;
  growth: SoakGrowth[];
  /** Where the RSS growth went, when the samples say (see `rssGrowthParts`). */
  rssParts?: RssGrowthParts;
  callsStarted: number;
  callsEnded: number;
  /** Calls that failed to connect. */
  callsFailed: number;
  /** Ended calls in which a viewer received no complete frame. */
  callsWithoutMedia: number;
  framesSent: number;
  framesReceived: number;
  pass: boolean;
  /** Why it failed, or notes on what was measured. */
  notes: string[];
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

function fdCount(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The first few and the last few of at least two values: three each, fewer on a short run. */
function settledEnds<T>(values: readonly T[]): [T[], T[]] {
  const k = Math.min(3, Math.floor(values.length / 2));
  return [values.slice(0, k), values.slice(-k)];
}

/**
 * Growth of each metric from the settled start to the end: the first few settled samples against
 * the last few (three each, fewer on a short run), so one sample caught before or after a GC is
 * not read as growth. RSS, descriptors and handles compare medians.
 *
 * The heap compares what is live: the heap in use right after a full collection. The heap in use
 * at any other moment saw-tooths with garbage, and how far depends on V8's pace (at a few calls,
 * or with `media.heapGrowthPercent` set, a full collection may come only every minute or two), so
 * it says more about when a sample was taken than about what the node keeps. First choice: the
 * collections the soak asked for at each sample (medians, as above). Else the node's own full
 * collections made after settling (the heap right after each one). A node that reports neither,
 * or made fewer than two after settling, is judged on the lows of its heap in use (the run's
 * notes say so).
 */
export function soakGrowth(
  samples: readonly SoakSample[],
  settledIndex: number,
  limit: number,
): SoakGrowth[] {
  const settled = samples.slice(settledIndex);
  const out: SoakGrowth[] = [];
  const pick: [SoakGrowth['metric'], (s: SoakSample) => number | undefined][] = [
    ['rss', (s) => s.rssBytes],
    ['fds', (s) => s.fds],
    ['handles', (s) => s.activeResources],
  ];
  const compare = (name: SoakGrowth['metric'], values: number[], of: (v: number[]) => number) => {
    if (values.length < 2) return;
    const [first, last] = settledEnds(values);
    const from = of(first);
    const to = of(last);
    const growth = (to - from) / from;
    out.push({ metric: name, from, to, growth, pass: growth <= limit });
  };
  for (const [name, get] of pick) {
    compare(
      name,
      settled.map(get).filter((v): v is number => v !== undefined && v > 0),
      median,
    );
  }
  const basis = heapBasis(settled);
  if (basis === 'live') {
    const live = settled.map((s) => s.heapLiveBytes).filter((v): v is number => v !== undefined);
    compare('heap', live, median);
  } else if (basis === 'after-gc') {
    compare('heap', heapAfterFullCollections(settled), median);
  } else {
    const used = settled.map((s) => s.heapUsedBytes);
    compare(
      'heap',
      used.filter((v): v is number => v !== undefined && v > 0),
      (v) => Math.min(...v),
    );
  }
  // the table's order: rss, heap, fds, handles
  const order: SoakGrowth['metric'][] = ['rss', 'heap', 'fds', 'handles'];
  return out.sort((a, b) => order.indexOf(a.metric) - order.indexOf(b.metric));
}

/**
 * The RSS growth from the settled start to the end, split by where it went, in bytes (medians of
 * the first and last few settled samples, as `soakGrowth` compares them): file-backed pages (the
 * executable and libraries, as more of their code runs) and anonymous memory, itself split into
 * the main thread's V8 heap as reserved, memory held by ArrayBuffers and Buffers, and the rest
 * (the allocator's own memory, native libraries, worker threads' heaps, stacks). Undefined unless
 * every part was read in at least two settled samples.
 */
export interface RssGrowthParts {
  rss: number;
  file: number;
  anon: number;
  v8Heap: number;
  external: number;
  otherNative: number;
  /**
   * Of `otherNative`, when every settled sample gives the allocator's figures: memory freed and
   * kept by the C allocator, and memory allocated from it and held, ArrayBuffers aside.
   */
  allocatorFree?: number;
  allocatorInUse?: number;
}

export function rssGrowthParts(
  samples: readonly SoakSample[],
  settledIndex: number,
): RssGrowthParts | undefined {
  const settled = samples
    .slice(settledIndex)
    .filter(
      (s) =>
        s.rssAnonBytes !== undefined &&
        s.rssFileBytes !== undefined &&
        s.heapTotalBytes !== undefined &&
        s.externalBytes !== undefined,
    );
  if (settled.length < 2) return undefined;
  const [first, last] = settledEnds(settled);
  const delta = (get: (s: SoakSample) => number) => median(last.map(get)) - median(first.map(get));
  const anon = delta((s) => s.rssAnonBytes!);
  const v8Heap = delta((s) => s.heapTotalBytes!);
  const external = delta((s) => s.externalBytes!);
  const parts: RssGrowthParts = {
    rss: delta((s) => s.rssBytes),
    file: delta((s) => s.rssFileBytes!),
    anon,
    v8Heap,
    external,
    otherNative: anon - v8Heap - external,
  };
  if (settled.every((s) => s.mallocFreeBytes !== undefined && s.mallocInUseBytes !== undefined)) {
    parts.allocatorFree = delta((s) => s.mallocFreeBytes!);
    parts.allocatorInUse = delta((s) => s.mallocInUseBytes!) - external;
  }
  return parts;
}

/** The heap after each full collection made after the first of `settled`, one value each. */
export function heapAfterFullCollections(settled: readonly SoakSample[]): number[] {
  const first = settled[0]?.fullCollections;
  if (first === undefined) return [];
  const values: number[] = [];
  let seen = first;
  for (const s of settled) {
    if (s.fullCollections === undefined || s.heapAfterFullGcBytes === undefined) continue;
    if (s.fullCollections > seen && s.heapAfterFullGcBytes > 0) {
      values.push(s.heapAfterFullGcBytes);
      seen = s.fullCollections;
    }
  }
  return values;
}

/** Which heap figure a run's verdict used, for its notes. */
export function heapBasis(settled: readonly SoakSample[]): 'live' | 'after-gc' | 'in-use' | 'none' {
  if (settled.filter((s) => s.heapLiveBytes !== undefined).length >= 2) return 'live';
  if (heapAfterFullCollections(settled).length >= 2) return 'after-gc';
  return settled.some((s) => s.heapUsedBytes !== undefined) ? 'in-use' : 'none';
}

async function sampleNode(
  node: BenchNode,
  live: number,
  t: number,
  onError: (err: unknown) => void,
): Promise<SoakSample> {
  const res = node.pid !== undefined ? procResources(node.pid) : node.resources();
  const fds = fdCount(node.pid);
  let text = '';
  try {
    const r = await fetch(`${node.url}/metrics`);
    text = await r.text();
  } catch {
    // the sample keeps what /proc says
  }
  // the collection last, so what /proc and /metrics say is the node as it runs
  let heapLiveBytes: number | undefined;
  if (node.liveHeapBytes) {
    try {
      heapLiveBytes = await node.liveHeapBytes();
    } catch (err) {
      onError(err);
    }
  }
  return {
    t,
    rssBytes: res?.rssBytes ?? metric(text, 'process_resident_memory_bytes') ?? 0,
    rssAnonBytes: res?.rssAnonBytes,
    rssFileBytes: res?.rssFileBytes,
    heapTotalBytes: metric(text, 'nodejs_heap_size_total_bytes'),
    externalBytes: metric(text, 'nodejs_external_memory_bytes'),
    mallocFreeBytes: metric(text, 'returncam_malloc_free_bytes'),
    mallocInUseBytes: metric(text, 'returncam_malloc_in_use_bytes'),
    heapUsedBytes: metric(text, 'nodejs_heap_size_used_bytes'),
    heapLiveBytes,
    heapAfterFullGcBytes: metric(text, 'nodejs_heap_after_full_gc_bytes'),
    fullCollections: metric(text, 'nodejs_gc_full_collections_total'),
    fds,
    activeResources: metric(text, 'nodejs_active_resources'),
    liveSessions: live,
    peers: metric(text, 'returncam_peers'),
  };
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const sessions = options.sessions ?? 4;
  const viewers = options.viewers ?? 1;
  const churnMs = options.churnMs ?? 5000;
  const sampleMs = options.sampleMs ?? 10_000;
  const settleMs = options.settleMs ?? Math.min(120_000, Math.round(options.durationMs / 5));
  const growthLimit = options.growthLimit ?? 0.1;
  for (const [name, v, min] of [
    ['sessions', sessions, 1],
    ['viewers', viewers, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min) throw new Error(`soak: ${name} must be >= ${min}`);
  }
  if (sampleMs < 500) throw new Error('soak: samples must be at least 500 ms apart');
  if (options.durationMs < settleMs + 2 * sampleMs)
    throw new Error(
      `soak: ${options.durationMs} ms leaves fewer than two samples after the ${settleMs} ms warm-up`,
    );
  const profile = resolveProfile('lan');
  const bitrateKbps = options.bitrateKbps ?? 600;
  const media = await benchMedia(bitrateKbps, options.cacheDir);
  const startedAt = new Date().toISOString();
  const node = options.node ?? (await startNodeProcess({ inspect: true }));
  const hub = new RelayHub({ profile, seed: 1 });
  const live: FanoutSession[] = [];
  const notes: string[] = [];
  const samples: SoakSample[] = [];
  let started = 0;
  let ended = 0;
  let failed = 0;
  let withoutMedia = 0;
  let framesSent = 0;
  let framesReceived = 0;
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  let inspectorErrors = 0;
  const onInspectorError = (err: unknown) => {
    if (inspectorErrors++ === 0)
      notes.push(`the node's inspector did not answer (${errorMessage(err)}): no live heap then`);
  };

  const startOne = async () => {
    started++;
    const s = new FanoutSession({
      index: started,
      node,
      hub,
      profile,
      media,
      seed: started,
      viewers,
    });
    try {
      await s.start();
      live.push(s);
    } catch (err) {
      failed++;
      if (notes.length < 10) notes.push(`call ${s.index} failed to connect: ${errorMessage(err)}`);
      await s.close().catch(() => {});
      for (const r of [s.buyerRelay, ...s.viewerRelays]) r?.close();
    }
  };
  const endOne = async () => {
    const s = live.shift();
    if (!s) return;
    s.stopSending();
    const frames = s.frames(false);
    framesSent += frames.length;
    const received = frames.filter((f) => f.receivedAt !== undefined);
    framesReceived += received.length;
    const perViewer = new Map<number, number>();
    for (const f of received) perViewer.set(f.session, (perViewer.get(f.session) ?? 0) + 1);
    if (perViewer.size < viewers) withoutMedia++;
    await s.close();
    for (const r of [s.buyerRelay, ...s.viewerRelays]) r?.close();
    ended++;
  };

  try {
    for (let i = 0; i < sessions; i++) await startOne();
    let nextChurn = elapsed() + churnMs;
    let nextSample = elapsed() + Math.min(sampleMs, settleMs || sampleMs);
    let settledIndex = -1;
    while (elapsed() < options.durationMs && !options.signal?.aborted) {
      const wait = Math.max(0, Math.min(nextChurn, nextSample, options.durationMs) - elapsed());
      await sleep(wait, options.signal);
      if (options.signal?.aborted) break;
      if (elapsed() >= nextChurn) {
        nextChurn += churnMs;
        await endOne();
        await startOne();
      }
      if (elapsed() >= nextSample) {
        nextSample += sampleMs;
        const sample = await sampleNode(node, live.length, elapsed() / 1000, onInspectorError);
        samples.push(sample);
        if (settledIndex < 0 && elapsed() >= settleMs) settledIndex = samples.length - 1;
        options.onSample?.(sample, { live: live.length, started, ended });
      }
    }
    const last = await sampleNode(node, live.length, elapsed() / 1000, onInspectorError);
    samples.push(last);
    if (settledIndex < 0) settledIndex = Math.max(0, samples.length - 2);
    while (live.length > 0) await endOne();
    const growth = soakGrowth(samples, settledIndex, growthLimit);
    if (options.signal?.aborted) notes.push('interrupted: growth covers the part that ran');
    const basis = heapBasis(samples.slice(settledIndex));
    if (basis === 'none')
      notes.push("the node's /metrics has no nodejs_heap_size_used_bytes: heap not measured");
    else if (basis === 'live')
      notes.push('heap: what is live, right after a full collection asked for at each sample');
    else if (basis === 'after-gc')
      notes.push("heap: what survived the node's own full collections after settling");
    else
      notes.push(
        'fewer than two full collections after settling: the heap is judged on the lows of its in-use figure',
      );
    const pass =
      growth.every((g) => g.pass) &&
      failed === 0 &&
      withoutMedia === 0 &&
      framesReceived > 0 &&
      !options.signal?.aborted;
    if (failed > 0) notes.push(`${failed} call(s) failed to connect`);
    if (withoutMedia > 0)
      notes.push(`${withoutMedia} call(s) ended with a viewer that saw nothing`);
    return {
      version: 1,
      kind: 'soak',
      startedAt,
      durationMs: options.durationMs,
      sessions,
      viewers,
      churnMs,
      sampleMs,
      settleMs,
      growthLimit,
      samples,
      settledIndex,
      growth,
      rssParts: rssGrowthParts(samples, settledIndex),
      callsStarted: started,
      callsEnded: ended,
      callsFailed: failed,
      callsWithoutMedia: withoutMedia,
      framesSent,
      framesReceived,
      pass,
      notes,
    };
  } finally {
    await Promise.allSettled(live.map((s) => s.close()));
    hub.close();
    if (!options.node) await node.close();
  }
}

/** The soak table's "after full GC" cell: the heap after the last one, and how many so far. */
function afterGc(s: SoakSample): string {
  if (s.fullCollections === undefined || s.heapAfterFullGcBytes === undefined) return '-';
  if (s.fullCollections === 0) return '- (0)';
  return `${(s.heapAfterFullGcBytes / 1048576).toFixed(1)} (${s.fullCollections})`;
}

/** One line: where the RSS growth went. */
export function rssPartsText(p: RssGrowthParts): string {
  const mb = (v: number) => {
    const tenths = Math.round(v / 104857.6); // so that a few KB either way reads +0.0
    return `${tenths < 0 ? '-' : '+'}${(Math.abs(tenths) / 10).toFixed(1)} MB`;
  };
  return `rss growth ${mb(p.rss)}: file-backed ${mb(p.file)}, anonymous ${mb(p.anon)} (V8 heap reserved ${mb(p.v8Heap)}, ArrayBuffers and Buffers ${mb(p.external)}, other native ${mb(p.otherNative)}${p.allocatorFree === undefined || p.allocatorInUse === undefined ? '' : `: allocated and held ${mb(p.allocatorInUse)}, freed and kept by the allocator ${mb(p.allocatorFree)}`})`;
}

export function renderSoakText(r: SoakResult): string {
  const mb = (v: number) => `${(v / 1048576).toFixed(1)} MB`;
  const fmt = (g: SoakGrowth) =>
    g.metric === 'fds' || g.metric === 'handles'
      ? `${g.from.toFixed(0)} -> ${g.to.toFixed(0)}`
      : `${mb(g.from)} -> ${mb(g.to)}`;
  const lines = [
    `returncam bench soak: ${(r.durationMs / 60_000).toFixed(1)} min, ${r.sessions} calls × ${r.viewers} viewer(s) kept up, one replaced every ${(r.churnMs / 1000).toFixed(1)} s`,
    `  calls started ${r.callsStarted}, ended ${r.callsEnded}, failed ${r.callsFailed}, ended without media ${r.callsWithoutMedia}; frames ${r.framesReceived}/${r.framesSent} received`,
    '',
    '  t s      RSS MB   heap MB   live MB   after full GC MB (n)   fds   resources  peers',
    ...r.samples.map(
      (s, i) =>
        `  ${s.t.toFixed(0).padStart(5)}  ${(s.rssBytes / 1048576).toFixed(1).padStart(7)}  ${s.heapUsedBytes !== undefined ? (s.heapUsedBytes / 1048576).toFixed(1).padStart(8) : '       -'}  ${s.heapLiveBytes !== undefined ? (s.heapLiveBytes / 1048576).toFixed(1).padStart(7) : '      -'}  ${afterGc(s).padStart(21)}  ${String(s.fds ?? '-').padStart(4)}  ${String(s.activeResources ?? '-').padStart(9)}  ${String(s.peers ?? '-').padStart(5)}${i === r.settledIndex ? '  <- settled' : ''}`,
    ),
    '',
    ...r.growth.map(
      (g) =>
        `  ${g.metric.padEnd(5)} ${fmt(g)}  ${g.growth >= 0 ? '+' : ''}${(g.growth * 100).toFixed(1)} %  ${g.pass ? 'ok' : `OVER ${(r.growthLimit * 100).toFixed(0)} %`}`,
    ),
    ...(r.rssParts ? [`  ${rssPartsText(r.rssParts)}`] : []),
    ...r.notes.map((n) => `  note: ${n}`),
    `verdict: ${r.pass ? 'PASS' : 'FAIL'} (growth from the settled sample to the end within ${(r.growthLimit * 100).toFixed(0)} %, every call connected and saw media)`,
  ];
  return lines.join('\n');
}
