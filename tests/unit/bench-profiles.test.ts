import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  builtinProfileNames,
  expectedLoss,
  loadProfileFile,
  parseProfile,
  pathPropagationMs,
  resolveProfile,
} from '../../src/bench/profiles.ts';
import { UserError } from '../../src/core/errors.ts';
import { fileDir } from '../helpers/tmp.ts';

const tmp = fileDir('returncam-profiles-');
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('network profiles', () => {
  it('every file in configs/profiles loads, is named after its file and cites its sources', () => {
    const files = readdirSync('configs/profiles').filter((f) => /\.ya?ml$/.test(f));
    expect(files.sort()).toEqual(
      ['3g-cross-border', '3g-uplink', '3g', '4g', 'cross-border', 'hostile', 'lan', 'outage']
        .map((n) => `${n}.yaml`)
        .sort(),
    );
    for (const f of files) {
      const profile = loadProfileFile(join('configs/profiles', f));
      expect(profile.name).toBe(f.replace(/\.yaml$/, ''));
      expect(profile.description.length).toBeGreaterThan(10);
      // every built-in says where its figures come from, in a comment
      expect(readFileSync(join('configs/profiles', f), 'utf8')).toMatch(/^# .+/m);
    }
    expect(builtinProfileNames()).toEqual([
      'lan',
      'outage',
      'cross-border',
      '4g',
      '3g-uplink',
      '3g',
      '3g-cross-border',
      'hostile',
    ]);
  });

  it('reads the headline profile as the figures its sources give', () => {
    const p = resolveProfile('3g-cross-border');
    expect(p.source).toBe('builtin');
    expect(p.buyer.up).toMatchObject({ delay: 150, jitter: 30, rateKbps: 675, queuePackets: 40 });
    expect(p.buyer.down.rateKbps).toBe(1440);
    expect(p.staff.down).toMatchObject({ delay: 104, loss: 0.001 });
    expect(pathPropagationMs(p)).toBe(254);
    // 0.5 % random + Gilbert-Elliott bursts: about 1 % overall
    expect(expectedLoss(p.buyer.up)).toBeGreaterThan(0.008);
    expect(expectedLoss(p.buyer.up)).toBeLessThan(0.015);
    const hostile = resolveProfile('hostile');
    expect(hostile.buyer.up.outages).toEqual([{ at: 20_000, duration: 5_000 }]);
    expect(resolveProfile('lan').buyer.up.delay).toBe(0.5);
  });

  it('carries the goals the proofs check: ramp on lan, settle on 3g-uplink, freezes on 3g-cross-border, recovery on outage', () => {
    expect(resolveProfile('lan').goals).toEqual({ ramp: { to: 0.9, within: 10_000 } });
    const uplink = resolveProfile('3g-uplink');
    expect(uplink.buyer.up).toMatchObject({ rateKbps: 750, loss: 0.015 });
    expect(expectedLoss(uplink.buyer.down)).toBe(0);
    expect(uplink.goals.settle).toEqual({ low: 0.5, high: 1, maxCollapse: 2000 });
    expect(resolveProfile('3g-cross-border').goals).toEqual({ freezeRatio: 0.01 });
    const outage = resolveProfile('outage');
    for (const d of [outage.buyer.up, outage.buyer.down])
      expect(d.outages).toEqual([{ at: 10_000, duration: 5_000 }]);
    expect(outage.staff.up.outages).toEqual([]);
    expect(outage.goals.recovery).toBe(1000);
    expect(parseProfile({ name: 'x' }, 'test').goals).toEqual({});
  });

  it.each([
    [{ ramp: { within: 'soon' } }, /goals\.ramp\.within: "soon" is not a duration/],
    [{ ramp: { to: 1.5, within: '10s' } }, /goals\.ramp\.to: must be between 0 and 1/],
    [
      { settle: { low: 0.8, high: 0.5, maxCollapse: '2s' } },
      /goals\.settle: low must be below high/,
    ],
    [{ settle: { low: 0.5 } }, /goals\.settle\.maxCollapse/],
    [{ freezeRatio: 2 }, /goals\.freezeRatio: must be between 0 and 1/],
    [{ recovery: '1s', p95: '600ms' }, /goals.*p95/],
  ])('refuses bad goals %j with a message naming the field', (goals, message) => {
    expect(errorOf(() => parseProfile({ name: 'x', goals }, 'test'))).toMatch(message);
  });

  it('fills defaults: a leg left out is a perfect link', () => {
    const p = parseProfile({ name: 'x' }, 'test');
    expect(p.buyer.up).toEqual({
      delay: 0,
      jitter: 0,
      jitterCorrelation: 0,
      loss: 0,
      queuePackets: 100,
      bucketBytes: 3000,
      reorder: 0,
      reorderDelay: 20,
      outages: [],
    });
    expect(p.bitrateKbps).toBe(600);
  });

  const bad: [string, unknown, RegExp][] = [
    ['loss above 1', { buyer: { up: { loss: 1.5 } } }, /buyer\.up\.loss: must be between 0 and 1/],
    [
      'negative loss',
      { staff: { down: { loss: -0.1 } } },
      /staff\.down\.loss: must be between 0 and 1/,
    ],
    ['unknown key', { buyer: { up: { latency: '10ms' } } }, /buyer\.up\.latency: unknown key/],
    ['unknown leg', { seller: {} }, /seller: unknown key/],
    [
      'not a duration',
      { buyer: { up: { delay: 'soon' } } },
      /buyer\.up\.delay: "soon" is not a duration/,
    ],
    [
      'bare number of seconds',
      { buyer: { up: { delay: 150 } } },
      /buyer\.up\.delay: 150 is more than 10 s \(a bare number is seconds; write e\.g\. 150ms\)/,
    ],
    ['zero rate', { buyer: { up: { rateKbps: 0 } } }, /buyer\.up\.rateKbps: must be above 0/],
    [
      'fractional queue',
      { buyer: { up: { queuePackets: 2.5 } } },
      /buyer\.up\.queuePackets: must be a whole number of packets/,
    ],
    [
      'burst that never ends',
      { buyer: { up: { burst: { p: 0.1, r: 0 } } } },
      /buyer\.up\.burst\.r: must be above 0/,
    ],
    [
      'burst without p',
      { buyer: { up: { burst: { r: 0.5 } } } },
      /buyer\.up\.burst\.p: must be a number between 0 and 1/,
    ],
    [
      'overlapping outages',
      {
        buyer: {
          down: {
            outages: [
              { at: '1s', duration: '5s' },
              { at: '3s', duration: '1s' },
            ],
          },
        },
      },
      /buyer\.down\.outages: outages must not overlap/,
    ],
    [
      'empty outage',
      { buyer: { down: { outages: [{ at: '1s', duration: 0 }] } } },
      /buyer\.down\.outages\.0\.duration: must be longer than 0/,
    ],
    ['bad name', { name: 'My Profile' }, /name: use lower-case letters/],
  ];
  it.each(bad)('refuses %s, naming the field', (_what, doc, message) => {
    const text = errorOf(() => parseProfile({ name: 'x', ...(doc as object) }, 'test.yaml'));
    expect(text).toMatch(/^profile test\.yaml is not valid:/);
    expect(text).toMatch(message);
  });

  it('takes a path to a user file anywhere a name works; an unknown name lists the built-ins', () => {
    const mine = file(
      'mine.yaml',
      'name: satellite\nbuyer:\n  up: { delay: 300ms, loss: 0.01 }\n  down: { delay: 300ms }\n',
    );
    const p = resolveProfile(mine);
    expect(p).toMatchObject({ name: 'satellite', source: mine });
    expect(p.buyer.up.delay).toBe(300);
    expect(errorOf(() => resolveProfile('5g'))).toMatch(
      /no profile named "5g"; built-in profiles: lan, outage, cross-border, 4g, 3g-uplink, 3g, 3g-cross-border, hostile/,
    );
    expect(errorOf(() => resolveProfile(join(tmp, 'missing.yaml')))).toMatch(
      /cannot read profile .*ENOENT/,
    );
    expect(errorOf(() => resolveProfile(file('broken.yaml', 'buyer: [1, 2\n')))).toMatch(
      /is not valid YAML/,
    );
  });
});
