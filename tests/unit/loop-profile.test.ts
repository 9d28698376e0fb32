import { describe, expect, it } from 'vitest';
import { runStartHook } from '../helpers/startHook.ts';
import { testDir } from '../helpers/tmp.ts';

interface LoopProfile {
  seconds: number;
  loopDelayMs: { p50: number; p99: number; max: number; samples: number };
  gc: Record<
    string,
    { count: number; totalMs: number; maxMs: number; why: Record<string, number> }
  >;
  arrayBuffersMB: { min: number; max: number };
  memoryMB: [number, number, number][];
}

describe('scripts/loop-profile.cjs', () => {
  async function profile(code: string, seconds: string) {
    const dir = testDir('returncam-loop-');
    const written = await runStartHook(
      'loop-profile.cjs',
      code,
      { RETURNCAM_LOOP_DIR: dir, RETURNCAM_LOOP_DELAY: '0.1', RETURNCAM_LOOP_SECONDS: seconds },
      dir,
      ['--expose-gc'],
    );
    return JSON.parse(written) as LoopProfile;
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

  it('samples ArrayBuffer memory and the old generation twice a second', async () => {
    // 4 MB more ArrayBuffer memory kept every 100 ms, ten times
    const code = `
      const kept = [];
      const t = setInterval(() => {
        kept.push(new ArrayBuffer(4e6));
        if (kept.length === 10) clearInterval(t);
      }, 100);
      setTimeout(() => {}, 1500);
    `;
    const p = await profile(code, '1.3');
    expect(p.memoryMB.length).toBeGreaterThanOrEqual(3);
    const times = p.memoryMB.map((m) => m[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times.at(-1)).toBeGreaterThanOrEqual(1);
    expect(p.arrayBuffersMB.max - p.arrayBuffersMB.min).toBeGreaterThanOrEqual(30);
    expect(Math.max(...p.memoryMB.map((m) => m[1]))).toBe(p.arrayBuffersMB.max);
    expect(p.memoryMB.every((m) => m[2] > 0)).toBe(true);
  });

  it('reports what it measured when the process ends inside the window', async () => {
    const p = await profile('setTimeout(() => {}, 600);', '30');
    expect(p.loopDelayMs.samples).toBeGreaterThan(0);
    expect(p.loopDelayMs.max).toBeLessThan(30);
  });
});
