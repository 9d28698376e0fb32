import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, Registry } from 'prom-client';
import { registerForwardHistogram } from './media/forwardTiming.ts';
import { mallocStats } from './media/nativeMalloc.ts';
import type { MediaCounters } from './media/types.ts';
import type { MediaBackendStatus } from './workers/MediaBackend.ts';

export interface MetricsSources {
  /** Numbers the media path bumps in place (no allocation per packet); read at scrape time. */
  counters: () => MediaCounters;
  rooms: () => { rooms: number; publishers: number; subscribers: number };
  sseClients: () => number;
  /** Per-worker figures when media rooms run in worker threads (`media.workers`). */
  workers?: (fresh: boolean) => Promise<MediaBackendStatus>;
}

/** Counters that only go up, exposed from a value the node keeps itself. */
function sourcedCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  const c = new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v > last) c.inc(v - last);
      last = v;
    },
  });
}

/**
 * `read` once per scrape: the gauges of one scrape are collected in one synchronous pass, so
 * they share its first reading, and the next scrape (after a microtask at least) reads afresh.
 */
function oncePerScrape<T>(read: () => T): () => T {
  let reading: { value: T } | undefined;
  return () => {
    if (reading === undefined) {
      reading = { value: read() };
      queueMicrotask(() => {
        reading = undefined;
      });
    }
    return reading.value;
  };
}

const heapStatistics = oncePerScrape(getHeapStatistics);
/**
 * The main thread's full (mark-compact) collections: how many, and the heap in use right after
 * the last one. The heap in use saw-tooths with garbage between collections; what survives a
 * full collection is what the node actually holds, so a leak shows there and nowhere sooner.
 */
const fullCollections = { count: 0, heapAfterBytes: 0 };
let gcObserver: PerformanceObserver | undefined;

function watchFullCollections(): void {
  if (gcObserver) return;
  gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        fullCollections.count++;
        // the entries come in a batch after the collection: close enough to what survived it
        fullCollections.heapAfterBytes = getHeapStatistics().used_heap_size;
      }
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
}

export function createMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  const m = () => src.counters();
  sourcedCounter(
    registry,
    'returncam_rtp_packets_in_total',
    'RTP packets received from publishers',
    () => m().packetsIn,
  );
  sourcedCounter(
    registry,
    'returncam_rtp_bytes_in_total',
    'RTP payload bytes received from publishers',
    () => m().bytesIn,
  );
  sourcedCounter(
    registry,
    'returncam_rtp_packets_out_total',
    'RTP packets forwarded to subscribers',
    () => m().packetsOut,
  );
  sourcedCounter(
    registry,
    'returncam_rtp_bytes_out_total',
    'RTP payload bytes forwarded to subscribers',
    () => m().bytesOut,
  );
  sourcedCounter(
    registry,
    'returncam_nacks_received_total',
    'Generic NACKs received from subscribers',
    () => m().nacksFromSubscribers,
  );
  sourcedCounter(
    registry,
    'returncam_nacks_sent_total',
    'Generic NACKs sent to publishers',
    () => m().nacksToPublishers,
  );
  sourcedCounter(
    registry,
    'returncam_plis_received_total',
    'PLIs received from subscribers',
    () => m().plisFromSubscribers,
  );
  sourcedCounter(
    registry,
    'returncam_viewer_stall_reports_total',
    'Keyframe requests from viewer pages whose video stood still while packets arrived',
    () => m().stallReportsFromViewers,
  );
  sourcedCounter(
    registry,
    'returncam_plis_sent_total',
    'PLIs sent to publishers',
    () => m().plisToPublishers,
  );
  sourcedCounter(
    registry,
    'returncam_rtp_retransmits_total',
    'Packets resent to subscribers from history',
    () => m().retransmits,
  );
  sourcedCounter(
    registry,
    'returncam_layer_switches_total',
    'Subscribers moved between simulcast layers',
    () => m().layerSwitches,
  );
  sourcedCounter(
    registry,
    'returncam_still_frame_entries_total',
    'Subscribers put on audio plus still frames (link too weak for the lowest layer)',
    () => m().stillFrameEntries,
  );
  sourcedCounter(
    registry,
    'returncam_recovery_keyframe_requests_total',
    'Keyframes asked of publishers after an outage or an unrepairable gap',
    () => m().recoveryKeyframeRequests,
  );
  sourcedCounter(
    registry,
    'returncam_fec_recovered_packets_total',
    'Publisher video packets lost on the way in and rebuilt from FEC (no NACK round trip)',
    () => m().fecRecovered,
  );
  sourcedCounter(
    registry,
    'returncam_duplicate_packets_dropped_total',
    'Publisher video packets that arrived again (repeated repairs, probe padding), not forwarded',
    () => m().duplicatesDropped,
  );
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge('returncam_active_cases', 'Cases with a live media room', () => src.rooms().rooms);
  gauge('returncam_publishers', 'Connected publisher sessions', () => src.rooms().publishers);
  gauge('returncam_subscribers', 'Connected subscriber sessions', () => src.rooms().subscribers);
  gauge('returncam_peers', 'Connected WebRTC peers', () => {
    const r = src.rooms();
    return r.publishers + r.subscribers;
  });
  gauge('returncam_sse_clients', 'Open event streams', () => src.sseClients());
  if (src.workers) perWorker(registry, src.workers);
  registerForwardHistogram(registry);
  let lastCpu = process.cpuUsage();
  let lastAt = process.hrtime.bigint();
  sourcedCounter(
    registry,
    'process_cpu_seconds_total',
    'User and system CPU time spent, seconds',
    () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
  );
  gauge(
    'returncam_process_cpu_ratio',
    'CPU used since the last scrape, as a fraction of one core',
    () => {
      const u = process.cpuUsage(lastCpu);
      const now = process.hrtime.bigint();
      const ratio = (u.user + u.system) / 1e3 / (Number(now - lastAt) / 1e6 || 1);
      lastCpu = process.cpuUsage();
      lastAt = now;
      return ratio;
    },
  );
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes', () =>
    process.memoryUsage.rss(),
  );
  gauge(
    'nodejs_heap_size_used_bytes',
    'V8 heap in use, bytes',
    () => heapStatistics().used_heap_size,
  );
  gauge(
    'nodejs_heap_size_total_bytes',
    "Main thread's V8 heap reserved from the system (what it uses plus room to grow), bytes",
    () => heapStatistics().total_heap_size,
  );
  gauge(
    'nodejs_external_memory_bytes',
    'Memory outside the V8 heap held by JavaScript objects (ArrayBuffers, Buffers), bytes',
    () => heapStatistics().external_memory,
  );
  // glibc's figures through the addon: what the rest of the process's memory is
  const allocator = oncePerScrape(mallocStats);
  if (allocator() !== undefined) {
    gauge(
      'returncam_malloc_in_use_bytes',
      'Memory allocated from the C allocator and not freed (ArrayBuffers included), bytes',
      () => allocator()?.inUseBytes ?? 0,
    );
    gauge(
      'returncam_malloc_free_bytes',
      'Memory freed to the C allocator and kept in its arenas for later requests, bytes',
      () => allocator()?.freeBytes ?? 0,
    );
  }
  watchFullCollections();
  sourcedCounter(
    registry,
    'nodejs_gc_full_collections_total',
    "Full (mark-compact) collections of the main thread's V8 heap",
    () => fullCollections.count,
  );
  gauge(
    'nodejs_heap_after_full_gc_bytes',
    "Main thread's V8 heap in use right after its last full collection (what survived it), bytes; 0 before the first",
    () => fullCollections.heapAfterBytes,
  );
  gauge(
    'nodejs_active_resources',
    'Resources keeping the event loop alive (sockets, timers, handles)',
    () => process.getActiveResourcesInfo().length,
  );
  return registry;
}

/**
 * `worker`-labelled series for media worker threads. The unlabelled totals above stay the sums
 * over all workers (a restarted worker's earlier counts included); these split them per worker.
 * Worker counters restart from zero with the worker (`returncam_media_worker_restarts_total`
 * says when), as a restarted process's would.
 */
function perWorker(
  registry: Registry,
  read: (fresh: boolean) => Promise<MediaBackendStatus>,
): void {
  const labelNames = ['worker'] as const;
  let pending: Promise<MediaBackendStatus> | undefined;
  // one read per scrape, shared by every series below
  const status = () => {
    pending ??= read(false).finally(() => {
      setImmediate(() => {
        pending = undefined;
      });
    });
    return pending;
  };
  const series = (
    name: string,
    help: string,
    value: (w: MediaBackendStatus['workers'][number]) => number,
  ) => {
    const counter = name.endsWith('_total');
    const Type = counter ? Counter : Gauge;
    return new Type({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const s = await status();
        this.reset();
        for (const w of s.workers) {
          const labels = { worker: String(w.index) };
          if (this instanceof Counter) this.inc(labels, value(w));
          else (this as Gauge).set(labels, value(w));
        }
      },
    });
  };
  series('returncam_media_worker_up', '1 when the media worker thread is running', (w) =>
    w.state === 'ready' ? 1 : 0,
  );
  series(
    'returncam_media_worker_restarts_total',
    'Times the media worker was restarted after it failed',
    (w) => w.restarts,
  );
  series(
    'returncam_media_worker_rooms',
    'Cases with a live media room on the worker',
    (w) => w.rooms,
  );
  series(
    'returncam_media_worker_publishers',
    'Publisher sessions on the worker',
    (w) => w.publishers,
  );
  series(
    'returncam_media_worker_subscribers',
    'Subscriber sessions on the worker',
    (w) => w.subscribers,
  );
  series(
    'returncam_media_worker_event_loop_utilization',
    'Share of the last second the worker event loop was busy (0..1)',
    (w) => w.eventLoopUtilization,
  );
  series(
    'returncam_media_worker_heap_used_bytes',
    "The worker's V8 heap in use (live, and garbage not yet collected), bytes",
    (w) => w.heap.usedBytes,
  );
  series(
    'returncam_media_worker_young_generation_bytes',
    "What the worker's V8 young generation (its two semi-spaces) takes now, bytes",
    (w) => w.heap.youngGenerationBytes,
  );
  series(
    'returncam_media_worker_rtp_packets_in_total',
    'RTP packets the worker received from publishers (since it last started)',
    (w) => w.counters.packetsIn,
  );
  series(
    'returncam_media_worker_rtp_packets_out_total',
    'RTP packets the worker forwarded to subscribers (since it last started)',
    (w) => w.counters.packetsOut,
  );
}
