import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startNodeProcess } from '../../src/bench/BenchNode.ts';
import { NODE_START_FLAGS } from '../../src/node/heapFlags.ts';

describe('bench: the node process the benchmarks measure', () => {
  it('runs with the Node.js flags a deployed node runs with', async () => {
    const node = await startNodeProcess({ nodeFlags: ['--stack-size=1000'] });
    try {
      const argv = readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').split('\0');
      // the deployed node's flags first, then the caller's, then the CLI
      expect(argv.slice(1, 2 + NODE_START_FLAGS.length)).toEqual([
        ...NODE_START_FLAGS,
        '--stack-size=1000',
      ]);
      expect(argv.slice(2 + NODE_START_FLAGS.length, 5 + NODE_START_FLAGS.length)).toEqual([
        expect.stringMatching(/\/bin\/returncam$/),
        'node',
        'start',
      ]);
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    } finally {
      await node.close();
    }
  });
});
