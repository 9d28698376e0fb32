import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderRunText } from '../../src/bench/report/text.ts';
import type { BenchResult } from '../../src/bench/result.ts';
import { runCli } from '../helpers/cli.ts';

const data = mkdtempSync(join(tmpdir(), 'returncam-bench-outage-'));
afterAll(() => rmSync(data, { recursive: true, force: true }));

/** A time as the report prints it: whole ms from 100 ms, one decimal below. */
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));

describe('bench run --profile outage (CLI, synthetic clients through the relays)', () => {
  it('drops the buyer link for 5 s at 10 s, sees video come back, and reports recovery and freezes', {
    timeout: 90_000,
  }, async () => {
    const r = await runCli(
      ['bench', 'run', '--json', '--data', data, '--profile', 'outage', '--duration', '18s'],
      {},
    );
    let run: BenchResult;
    try {
      run = (JSON.parse(r.stdout) as { runs: BenchResult[] }).runs[0]!;
    } catch {
      throw new Error(`bench run printed no JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
    }
    // the exit code follows the verdict, whatever it is
    expect(r.exitCode, r.stderr).toBe(run.verdict.pass ? 0 : 3);

    // both directions of the buyer leg went down together: one outage, 10 s to 15 s
    expect(run.outages).toHaveLength(1);
    const [outage] = run.outages;
    expect(outage!.where).toBe('buyer.up+buyer.down (session 1)');
    expect(outage!.startAt - run.epochMs).toBe(10_000);
    expect(outage!.endAt - outage!.startAt).toBe(5_000);
    // the relays did drop everything meanwhile
    expect(run.network['buyer.up'].dropped.outage).toBeGreaterThan(100);

    // video came back: a frame captured after the link returned reached the viewer whole and
    // decodable, at least one buyer-up + staff-down crossing (10 + 10 ms) later
    // (with RETURNCAM_BENCH_LOG_LEVEL=debug, the node's layer decisions say why not)
    const decisions = r.stderr
      .split('\n')
      .filter((l) => /layer|switched|still/.test(l))
      .join('\n');
    expect(outage!.recoveryMs, `video did not come back\n${decisions}`).toBeDefined();
    expect(outage!.recoveryMs!).toBeGreaterThanOrEqual(20);
    expect(outage!.recoveryMs!).toBeLessThan(3_000);
    const recovery = run.proofs.find((p) => p.id === 'recovery')!;
    expect(recovery).toMatchObject({ limit: 1000, value: outage!.recoveryMs });
    expect(recovery.pass).toBe(outage!.recoveryMs! <= 1000);

    // the viewer was frozen for about the outage: measured over the 16 s after the warm-up
    const f = run.frames;
    expect(f.freezeSource).toBe('frame gaps');
    expect(f.measuredMs).toBeGreaterThan(15_000);
    expect(f.measuredMs).toBeLessThan(17_000);
    expect(f.freezeCount).toBeGreaterThanOrEqual(1);
    expect(f.freezeMs).toBeGreaterThanOrEqual(4_900);
    expect(f.freezeMs).toBeLessThan(5_000 + 3_000);
    expect(f.freezeRatio).toBeCloseTo(f.freezeMs / f.measuredMs, 9);
    // synthetic clients send at a fixed rate: no send-rate figures, and no goal is left unexplained
    expect(run.sendRate).toBeUndefined();
    expect(run.proofs.map((p) => p.id)).toEqual(['latency', 'recovery']);

    // the text report prints each goal with its mark and figure
    const text = renderRunText(run);
    expect(text).toMatch(
      new RegExp(
        `${recovery.pass ? 'PASS' : 'MISS'}\\s+video back within 1000 ms of the link returning\\s+${ms(outage!.recoveryMs!)} ms`,
      ),
    );
    expect(text).toMatch(/(PASS|MISS)\s+p95 transit \+ allowance <= 600 ms/);
  });
});
