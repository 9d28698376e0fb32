// How late the node's event loop runs, and what its garbage collections cost: a `--require` hook
// for `returncam node start` that, for a while under load, keeps a histogram of event-loop delay
// (how late a 1 ms timer fires: a packet arriving then waits as long) and every GC pause by kind
// and by why V8 ran it, and samples its ArrayBuffer memory and old generation twice a second (an
// ArrayBuffer memory that climbs between full collections is packet memory something keeps past
// two young collections), then writes a JSON file and a one-line summary. Through NODE_OPTIONS,
// `bench capacity` (or `bench soak`) passes it to the node process it starts:
//
//   NODE_OPTIONS="--require ./scripts/loop-profile.cjs" \
//     bin/returncam bench capacity --server node --steps 25 --viewers 2 --step-duration 90s --no-save
//
// RETURNCAM_LOOP_DIR         where the result goes (default: the current directory)
// RETURNCAM_LOOP_DELAY       seconds after start before measuring (default 30: the calls are up)
// RETURNCAM_LOOP_SECONDS     how long to measure (default 45; keep it inside the step)
// RETURNCAM_LOOP_RESOLUTION  the delay histogram's timer, ms (default 1)
'use strict';
if (process.argv.includes('start')) {
  const { monitorEventLoopDelay, PerformanceObserver, constants } = require('node:perf_hooks');
  const { writeFileSync } = require('node:fs');
  const { join } = require('node:path');
  const { getHeapSpaceStatistics } = require('node:v8');
  const env = process.env;
  const dir = env.RETURNCAM_LOOP_DIR || process.cwd();
  const delayMs = 1000 * Number(env.RETURNCAM_LOOP_DELAY || 30);
  const spanMs = 1000 * Number(env.RETURNCAM_LOOP_SECONDS || 45);
  const resolution = Number(env.RETURNCAM_LOOP_RESOLUTION || 1);
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
  };
  const FLAGS = Object.keys(constants)
    .filter((k) => k.startsWith('NODE_PERFORMANCE_GC_FLAGS_') && constants[k] !== 0)
    .map((k) => [k.slice('NODE_PERFORMANCE_GC_FLAGS_'.length), constants[k]]);
  const why = (flags) =>
    FLAGS.filter(([, bit]) => flags & bit)
      .map(([name]) => name)
      .join('+') || 'allocation';
  const histogram = monitorEventLoopDelay({ resolution });
  const pauses = []; // [kind, ms, why]
  const memory = []; // [s into the window, ArrayBuffer MB, old generation in use MB]
  let measuring = false;
  let startedAt = 0;
  let sampler;
  const mb = (bytes) => Math.round(bytes / 1e5) / 10;
  const sampleMemory = () => {
    const old = getHeapSpaceStatistics().find((space) => space.space_name === 'old_space');
    memory.push([
      Math.round((performance.now() - startedAt) / 100) / 10,
      mb(process.memoryUsage().arrayBuffers),
      mb(old ? old.space_used_size : 0),
    ]);
  };
  const observer = new PerformanceObserver((list) => {
    if (!measuring) return;
    for (const e of list.getEntries()) {
      pauses.push([
        KINDS[e.detail.kind] || `kind ${e.detail.kind}`,
        e.duration,
        why(e.detail.flags),
      ]);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  const quantile = (sorted, q) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const finish = () => {
    if (!measuring) return;
    measuring = false;
    histogram.disable();
    observer.disconnect();
    clearInterval(sampler);
    sampleMemory();
    const gc = {};
    for (const [kind, duration, reason] of pauses) {
      gc[kind] ??= { count: 0, totalMs: 0, pausesMs: [], why: {} };
      const g = gc[kind];
      g.count++;
      g.totalMs += duration;
      g.pausesMs.push(duration);
      g.why[reason] = (g.why[reason] || 0) + 1;
    }
    for (const g of Object.values(gc)) {
      const sorted = g.pausesMs.sort((a, b) => a - b);
      g.totalMs = Math.round(g.totalMs * 100) / 100;
      g.p50Ms = Math.round(quantile(sorted, 0.5) * 100) / 100;
      g.p90Ms = Math.round(quantile(sorted, 0.9) * 100) / 100;
      g.maxMs = Math.round(sorted.at(-1) * 100) / 100;
      delete g.pausesMs;
    }
    const result = {
      seconds: spanMs / 1000,
      resolutionMs: resolution,
      loopDelayMs: {
        p50: ms(histogram.percentile(50)),
        p90: ms(histogram.percentile(90)),
        p99: ms(histogram.percentile(99)),
        p999: ms(histogram.percentile(99.9)),
        max: ms(histogram.max),
        samples: histogram.count,
      },
      gc,
      arrayBuffersMB: {
        min: Math.min(...memory.map((m) => m[1])),
        max: Math.max(...memory.map((m) => m[1])),
      },
      memoryMB: memory,
    };
    const file = join(dir, `returncam-loop-${process.pid}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    const d = result.loopDelayMs;
    const parts = Object.entries(gc).map(([k, g]) => `${k} ${g.count} (${g.totalMs} ms)`);
    const ab = result.arrayBuffersMB;
    process.stderr.write(
      `loop-profile: delay p50/p99/max ${d.p50}/${d.p99}/${d.max} ms; ${parts.join(', ') || 'no collections'}; ArrayBuffer memory ${ab.min}-${ab.max} MB; wrote ${file}\n`,
    );
  };
  // a process that ends inside the window still reports what it measured
  process.once('exit', finish);
  setTimeout(() => {
    measuring = true;
    histogram.enable();
    startedAt = performance.now();
    sampleMemory();
    sampler = setInterval(sampleMemory, 500);
    sampler.unref();
    setTimeout(finish, spanMs).unref();
  }, delayMs).unref();
}
