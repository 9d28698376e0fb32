import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../../src/core/config.ts';
import { UserError } from '../../src/core/errors.ts';
import { fileDir } from '../helpers/tmp.ts';

const tmp = fileDir('returncam-media-config-');
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe('media.maxBitrateKbps: the video ceiling per publishing role', () => {
  it('defaults to 1500 kbit/s for buyers and 1000 for staff', () => {
    expect(loadNodeConfig({ env: {} }).media.maxBitrateKbps).toEqual({ buyer: 1500, staff: 1000 });
  });

  it('takes one role from the file and the other from the environment', () => {
    const f = file('ceiling.yaml', 'media:\n  maxBitrateKbps:\n    buyer: 800\n');
    const cfg = loadNodeConfig({ file: f, env: { RETURNCAM_MEDIA_MAX_BITRATE_KBPS_STAFF: '600' } });
    expect(cfg.media.maxBitrateKbps).toEqual({ buyer: 800, staff: 600 });
  });

  it.each([
    ['too low', 'buyer: 50', 'media.maxBitrateKbps.buyer: use at least 100 kbit/s'],
    ['too high', 'staff: 50000', 'media.maxBitrateKbps.staff: use at most 20000 kbit/s'],
    ['fractional', 'buyer: 800.5', 'media.maxBitrateKbps.buyer: must be a whole number of kbit/s'],
    ['unknown role', 'admin: 800', 'media.maxBitrateKbps.admin: unknown key'],
  ])('rejects a ceiling that is %s, naming the key', (name, line, message) => {
    const f = file(
      `bad-${name.replace(/\s/g, '-')}.yaml`,
      `media:\n  maxBitrateKbps:\n    ${line}\n`,
    );
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(UserError);
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(message);
  });
});

describe('media.heapGrowthPercent: how far the heap grows before a full collection', () => {
  it("defaults to 25, and takes 0 (V8's own) from the environment", () => {
    expect(loadNodeConfig({ env: {} }).media.heapGrowthPercent).toBe(25);
    const cfg = loadNodeConfig({ env: { RETURNCAM_MEDIA_HEAP_GROWTH_PERCENT: '0' } });
    expect(cfg.media.heapGrowthPercent).toBe(0);
  });

  it.each([
    ['-5', "use 0 (V8's own heuristics) or more"],
    ['500', 'at most 400: the heap may grow to five times what is live'],
    ['12.5', 'media.heapGrowthPercent'],
  ])('rejects %s, naming the key', (value, message) => {
    const f = file(`growth-${value}.yaml`, `media:\n  heapGrowthPercent: ${value}\n`);
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(UserError);
    expect(() => loadNodeConfig({ file: f, env: {} })).toThrow(message);
  });
});
