import { configDefaults, defineConfig } from 'vitest/config';
import { LongRunningFirst } from './tests/sequencer.ts';

/**
 * Files that drive real browsers or measure media timing through the node: recovery times,
 * latency floors, send rates. Run two at a time on a 2-core machine, each starved the other's
 * Chromium and node (four browsers on two cores) and their figures measured the test run rather
 * than the product. They run one at a time, after the rest. The capacity, soak and Janus runs
 * assert no timing (frames delivered, growth, no failed call) and run with the rest.
 */
const MEDIA_TIMING = ['tests/browser/**/*.test.ts', 'tests/integration/bench-*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    sequence: { sequencer: LongRunningFirst },
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['tests/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...MEDIA_TIMING],
          // Media tests are CPU-heavy; two cores, so at most two files at once.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'media-timing',
          include: MEDIA_TIMING,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
