import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { type CapacityResult, renderCapacityText } from '../../src/bench/capacity.ts';
import { BIN } from '../helpers/cli.ts';

const data = mkdtempSync(join(tmpdir(), 'returncam-capacity-'));
afterAll(() => rmSync(data, { recursive: true, force: true }));

describe('bench capacity --viewers (CLI, a node process per step)', () => {
  it('measures 1×2 and 2×2 with the no-server floor first, and keeps the result', async () => {
    const r = await execa(
      BIN,
      [
        'bench',
        'capacity',
        '--steps',
        '1,2',
        '--viewers',
        '2',
        '--step-duration',
        '4s',
        '--p99-limit',
        '1000ms',
        '--data',
        data,
        '--json',
      ],
      { reject: false, env: { CI: '1' }, timeout: 170_000 },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as CapacityResult;
    expect(c.version).toBe(1);
    expect(c.viewers).toBe(2);
    expect(c.servers).toEqual(['node']);
    expect(c.baseline.map((s) => `${s.sessions}×${s.viewers}`)).toEqual(['1×2', '2×2']);
    expect(c.steps.map((s) => `${s.sessions}×${s.viewers}`)).toEqual(['1×2', '2×2']);
    for (const s of c.steps) {
      expect(s.mode).toBe('node');
      expect(s.server).toBe('returncam node');
      // every sent frame is counted once per viewer
      expect(s.framesSent).toBeGreaterThan(2 * s.sessions * 60);
      expect(s.framesLost).toBeLessThanOrEqual(s.framesSent * 0.05);
      expect(s.transit!.p50).toBeGreaterThan(0);
      expect(s.transit!.p50).toBeLessThanOrEqual(s.transit!.p95);
      expect(s.transit!.p95).toBeLessThanOrEqual(s.transit!.p99);
      expect(s.nodeCpuPerSessionPercent).toBeGreaterThan(0);
      expect(s.nodeCpuPerSessionPercent! * s.sessions).toBeCloseTo(s.nodeCpuPercent!, 6);
      expect(s.nodeRssBytes).toBeGreaterThan(20 * 1048576);
      // its parts from /proc: heaps and buffers, and pages of node and its libraries
      expect(s.nodeRssAnonBytes! + s.nodeRssFileBytes!).toBeLessThanOrEqual(s.nodeRssBytes!);
      expect(s.nodeRssAnonBytes).toBeGreaterThan(4 * 1048576);
      expect(s.nodeRssFileBytes).toBeGreaterThan(4 * 1048576);
    }
    // the table shows each step's RSS with its parts
    const last = c.steps.at(-1)!;
    const mb = (v: number | undefined) => (v! / 1048576).toFixed(0);
    expect(renderCapacityText(c)).toContain(
      `${mb(last.nodeRssBytes)} (${mb(last.nodeRssAnonBytes)}/${mb(last.nodeRssFileBytes)})`,
    );
    for (const s of c.baseline) {
      expect(s.mode).toBe('baseline');
      expect(s.nodeCpuPercent).toBeUndefined();
      expect(s.framesSent).toBeGreaterThan(0);
    }
    // kept for bench list
    const list = await execa(
      BIN,
      ['bench', 'list', '--kind', 'capacity', '--data', data, '--json'],
      {
        reject: false,
        env: { CI: '1' },
      },
    );
    expect(list.exitCode, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).results.map((x: { id: string }) => x.id)).toContain(c.id);
  }, 180_000);

  it('rejects a bad --viewers or --server with a message that says what to pass', async () => {
    const bad = await execa(BIN, ['bench', 'capacity', '--viewers', '0', '--no-save'], {
      reject: false,
      env: { CI: '1' },
    });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('--viewers must be a whole number from 1 to 50 (got 0)');
    const server = await execa(BIN, ['bench', 'capacity', '--server', 'mediasoup', '--no-save'], {
      reject: false,
      env: { CI: '1' },
    });
    expect(server.exitCode).toBe(1);
    expect(server.stderr).toContain(
      '--server must be node, janus or both (node,janus); got mediasoup',
    );
  });
});
