import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startNodeProcess } from '../../src/bench/BenchNode.ts';
import { DEFAULT_COMMANDS, expandCommand } from '../../src/node/fleet/deploy.ts';
import { parseFleet } from '../../src/node/fleet/fleetConfig.ts';
import { renderNodeUnit } from '../../src/node/fleet/render.ts';
import { NODE_FLAGS } from '../../src/node/nodeFlags.ts';

const ROOT = join(import.meta.dirname, '..', '..');

const warehouse = parseFleet(
  {
    warehouses: [
      { id: 'w1', region: 'test', country: 'NL', host: '10.0.0.5', publicHost: 'w1.example' },
    ],
  },
  '/tmp/fleet.yaml',
).warehouses[0]!;

describe("the node's Node.js flags (set before V8 sizes its heap)", () => {
  it('every way a node is started passes them: systemd unit, start command, npm start', async () => {
    expect(NODE_FLAGS.length).toBeGreaterThan(0);
    const unit = renderNodeUnit(warehouse);
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
    expect(exec.slice(1, 1 + NODE_FLAGS.length)).toEqual([...NODE_FLAGS]);
    const start = expandCommand(DEFAULT_COMMANDS.start, warehouse);
    expect(start).toContain(
      `'/usr/bin/node' ${NODE_FLAGS.map((f) => `'${f}'`).join(' ')} bin/returncam node start`,
    );
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} bin/returncam node start --demo`);
    // and Node accepts them
    const r = await execa(process.execPath, [...NODE_FLAGS, '-e', 'process.exit(0)'], {
      reject: false,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it("the benchmarks' node process runs with them, so it measures what is deployed", async () => {
    const node = await startNodeProcess();
    try {
      const cmdline = readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').split('\0');
      for (const f of NODE_FLAGS) expect(cmdline).toContain(f);
      expect((await fetch(`${node.url}/healthz`)).ok).toBe(true);
    } finally {
      await node.close();
    }
  }, 40_000);
});
