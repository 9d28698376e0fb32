import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Media tests are CPU-heavy; two cores, so at most two files at once.
    maxWorkers: 2,
    pool: 'forks',
  },
});
