// Where the node allocates: a `--require` hook for `returncam node start` that runs V8's sampling
// heap profiler for a while under load and writes the profile. Through NODE_OPTIONS, `bench
// capacity` (or `bench soak`) passes it to the node process it starts:
//
//   NODE_OPTIONS="--require ./scripts/alloc-profile.cjs" \
//     bin/returncam bench capacity --server node --steps 25 --viewers 2 --step-duration 30s --no-save
//   node scripts/alloc-profile-summary.mjs returncam-alloc-*.json
//
// RETURNCAM_ALLOC_DIR      where the profile goes (default: the current directory)
// RETURNCAM_ALLOC_DELAY    seconds after start before sampling (default 10: the calls are up)
// RETURNCAM_ALLOC_SECONDS  how long to sample (default 20)
// RETURNCAM_ALLOC_KEPT=1   only what outlived young collections (promoted, or still alive)
// RETURNCAM_ALLOC_NO_INLINING=1  turn TurboFan inlining off: slower, but each allocation is put
//                          on the function that made it, not on the one it was inlined into
'use strict';
if (process.argv.includes('start')) {
  const { Session } = require('node:inspector');
  const { writeFileSync } = require('node:fs');
  const { join } = require('node:path');
  const env = process.env;
  if (env.RETURNCAM_ALLOC_NO_INLINING === '1')
    require('node:v8').setFlagsFromString('--no-turbo-inlining');
  const dir = env.RETURNCAM_ALLOC_DIR || process.cwd();
  const delayMs = 1000 * Number(env.RETURNCAM_ALLOC_DELAY || 10);
  const sampleMs = 1000 * Number(env.RETURNCAM_ALLOC_SECONDS || 20);
  const kept = env.RETURNCAM_ALLOC_KEPT === '1';
  const session = new Session();
  session.connect();
  setTimeout(() => {
    session.post('HeapProfiler.enable', () =>
      session.post('HeapProfiler.startSampling', {
        samplingInterval: 8192,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: !kept,
      }),
    );
    setTimeout(() => {
      session.post('HeapProfiler.stopSampling', (err, result) => {
        if (err) return process.stderr.write(`alloc-profile: ${err.message}\n`);
        const file = join(dir, `returncam-alloc-${process.pid}.json`);
        writeFileSync(file, JSON.stringify(result.profile));
        process.stderr.write(`alloc-profile: wrote ${file}\n`);
      });
    }, sampleMs).unref();
  }, delayMs).unref();
}
