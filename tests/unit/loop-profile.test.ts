import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

interface LoopProfile {
  seconds: number;
  loopDelayMs: { p50: number; p99: number; max: number; samples: number };
  gc: Record<
    string,
    { count: number; totalMs: number; maxMs: number; why: Record<string, number> }
  >;
}

describe('scripts/loop-profile.cjs', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function profile(code: string, seconds: string) {
    dir = mkdtempSync(join(tmpdir(), 'returncam-loop-'));
    const r = await execa(
      process.execPath,
      ['--expose-gc', '--require', join(ROOT, 'scripts', 'loop-profile.cjs'), '-e', code, 'start'],
      {
        env: {
          RETURNCAM_LOOP_DIR: dir,
          RETURNCAM_LOOP_DELAY: '0.1',
          RETURNCAM_LOOP_SECONDS: seconds,
        },
        reject: false,
        timeout: 20_000,
      },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(r.stderr).toContain(`wrote ${join(dir, files[0]!)}`);
    return JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as LoopProfile;
  }

  it('measures how late the loop runs and what each kind of collection cost, and why it ran', async () => {
    // every 100 ms the loop is held for 40 ms; a forced full collection every 300 ms
    const code = `
      let n = 0;
      const t = setInterval(() => {
        const until = Date.now() + 40; while (Date.now() < until) {}
        if (++n % 3 === 0) global.gc();
        if (n === 15) clearInterval(t);
      }, 100);
    `;
    const p = await profile(code, '1.2');
    expect(p.seconds).toBe(1.2);
    expect(p.loopDelayMs.samples).toBeGreaterThan(50);
    expect(p.loopDelayMs.max).toBeGreaterThanOrEqual(30);
    expect(p.loopDelayMs.p50).toBeLessThan(p.loopDelayMs.max);
    const full = p.gc['mark-compact']!;
    expect(full.count).toBeGreaterThanOrEqual(2);
    expect(full.why.FORCED).toBe(full.count);
    expect(full.totalMs).toBeGreaterThan(0);
  });

  it('reports what it measured when the process ends inside the window', async () => {
    const p = await profile('setTimeout(() => {}, 600);', '30');
    expect(p.loopDelayMs.samples).toBeGreaterThan(0);
    expect(p.loopDelayMs.max).toBeLessThan(30);
  });
});
