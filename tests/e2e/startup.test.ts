import { describe, expect, it } from 'vitest';
import { groupsFor } from '../../src/cli/groups.ts';
import { runCli } from '../helpers/cli.ts';

describe('bench startup: spawn of `node start` to the first 200 on /healthz', () => {
  it('times fresh node processes and reports p50 and max', async () => {
    const r = await runCli(['bench', 'startup', '--repeat', '2', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.version).toBe(1);
    expect(doc.kind).toBe('startup');
    expect(doc.samples).toHaveLength(2);
    for (const s of doc.samples) {
      expect(s.listeningMs).toBeGreaterThan(0);
      expect(s.healthzMs).toBeGreaterThanOrEqual(s.listeningMs);
    }
    expect(doc.healthzMs.max).toBe(
      Math.max(...doc.samples.map((s: { healthzMs: number }) => s.healthzMs)),
    );
  });

  it('rejects a bad --repeat', async () => {
    const r = await runCli(['bench', 'startup', '--repeat', '0']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('--repeat must be a whole number from 1 to 1000 (got 0)');
  });
});

describe('the CLI loads only the command group it runs', () => {
  const all = ['node', 'case', 'fleet', 'rec', 'export', 'report', 'bench'];
  const cases: [string[], string[]][] = [
    [['node', 'start', '--port', '0'], ['node']],
    [['bench', 'capacity'], ['bench']],
    [['--version'], []],
    [['--help'], all],
    [['help', 'node'], all],
    [['nodes'], all],
    [[], all],
  ];
  for (const [args, groups] of cases) {
    it(`returncam ${args.join(' ') || '(nothing)'} -> ${groups.join(', ') || 'none'}`, () => {
      expect(groupsFor(['node', 'returncam', ...args])).toEqual(groups);
    });
  }
});
