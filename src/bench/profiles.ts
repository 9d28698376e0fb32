/**
 * Network profiles: how each leg of a call (buyer <-> node, staff <-> node) behaves in each
 * direction. Built-ins live in `configs/profiles/*.yaml`; a path to a user's own YAML file works
 * wherever a profile name does. One strict schema: unknown keys and bad values are errors that
 * name the field (`buyer.up.loss: must be between 0 and 1`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../core/config.ts';
import { parseDuration } from '../core/duration.ts';
import { errorMessage, UserError } from '../core/errors.ts';

/** Where the built-in profiles are: `configs/profiles` at the root of the package. */
export const BUILTIN_PROFILE_DIR = fileURLToPath(
  new URL('../../configs/profiles/', import.meta.url),
);

const probability = z
  .number({ error: 'must be a number between 0 and 1' })
  .min(0, 'must be between 0 and 1')
  .max(1, 'must be between 0 and 1');

/** A duration string (`150ms`, `5s`) or a bare number of seconds, as in the node config. */
function duration(max: number) {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use e.g. 150ms or 5s)` });
      return z.NEVER;
    }
    if (ms > max) {
      ctx.addIssue({
        code: 'custom',
        message: `${v} is more than ${max / 1000} s${typeof v === 'number' ? ' (a bare number is seconds; write e.g. 150ms)' : ''}`,
      });
      return z.NEVER;
    }
    // parseDuration rounds to whole ms; keep sub-millisecond delays (lan: 0.5ms)
    const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*ms\s*$/.exec(v) : null;
    return m ? Number(m[1]) : ms;
  });
}

const burstSchema = z.strictObject({
  /** Probability of moving from the good to the bad state, per packet. */
  p: probability,
  /** Probability of moving from the bad back to the good state, per packet (mean burst 1/r). */
  r: probability.refine((r) => r > 0, 'must be above 0 (the bad state must end)'),
  /** Loss probability in the bad state. */
  badLoss: probability.default(1),
  /** Loss probability in the good state. */
  goodLoss: probability.default(0),
});

const outageSchema = z.strictObject({
  /** From the start of the measurement. */
  at: duration(24 * 3_600_000),
  duration: duration(3_600_000).refine((ms) => ms > 0, 'must be longer than 0'),
});

export const directionSchema = z
  .strictObject({
    /** One-way propagation delay: the floor; jitter only adds to it. */
    delay: duration(10_000).default(0),
    /** Scale of the extra per-packet delay: half-normal |N(0, jitter)|, mean 0.8 × jitter. */
    jitter: duration(5_000).default(0),
    /** How much each packet's jitter follows the previous one (0: independent, 0.9: smooth). */
    jitterCorrelation: probability.refine((c) => c < 1, 'must be below 1').default(0),
    /** Random (independent) loss probability. */
    loss: probability.default(0),
    /** Bursty loss, Gilbert-Elliott two-state model. */
    burst: burstSchema.optional(),
    /** Bottleneck rate in kbit/s; absent: unlimited. */
    rateKbps: z
      .number({ error: 'must be a number of kbit/s' })
      .positive('must be above 0')
      .max(10_000_000, 'must be at most 10000000 (10 Gbit/s)')
      .optional(),
    /** Packets the bottleneck may hold; one more is dropped (tail drop). */
    queuePackets: z
      .number({ error: 'must be a whole number of packets' })
      .int('must be a whole number of packets')
      .min(1, 'must be at least 1')
      .default(100),
    /** Token bucket depth: bytes that may pass at once after an idle moment. */
    bucketBytes: z
      .number({ error: 'must be a whole number of bytes' })
      .int('must be a whole number of bytes')
      .min(1500, 'must be at least 1500 (one full packet)')
      .default(3000),
    /** Share of packets held back by `reorderDelay`, so later packets overtake them. */
    reorder: probability.default(0),
    reorderDelay: duration(5_000).default(20),
    /** Windows in which everything is dropped. */
    outages: z.array(outageSchema).default([]),
  })
  .superRefine((d, ctx) => {
    const sorted = [...d.outages].sort((a, b) => a.at - b.at);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.at < sorted[i - 1]!.at + sorted[i - 1]!.duration) {
        ctx.addIssue({ code: 'custom', path: ['outages'], message: 'outages must not overlap' });
        return;
      }
    }
  });

const legSchema = z.strictObject({
  /** Client -> node. */
  up: directionSchema.prefault({}),
  /** Node -> client. */
  down: directionSchema.prefault({}),
});

/**
 * What a run on this profile must show, besides the p95 latency target (`bench run --target`).
 * Each goal is checked and printed with its measured figure; a miss fails the run (exit code 3).
 */
const goalsSchema = z.strictObject({
  /** Browser runs: the buyer's send rate reaches `to` × the ceiling within `within` of connecting. */
  ramp: z
    .strictObject({
      to: probability.refine((v) => v > 0, 'must be above 0').default(0.9),
      within: duration(600_000),
    })
    .optional(),
  /**
   * Browser runs, after the ramp: the buyer's send rate settles (median) within [low, high] × the
   * ceiling, and is never under low × the ceiling for longer than `maxCollapse` at a time.
   */
  settle: z
    .strictObject({
      low: probability.default(0.5),
      high: z
        .number({ error: 'must be a number (share of the ceiling)' })
        .positive('must be above 0')
        .default(1),
      maxCollapse: duration(600_000),
    })
    .refine((s) => s.low < s.high, 'low must be below high')
    .optional(),
  /** Frozen time / measured time at the viewer, at most. */
  freezeRatio: probability.optional(),
  /** Video back at the viewer within this long after an outage ends (default 1s when the profile has outages). */
  recovery: duration(600_000).optional(),
});

export const profileSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lower-case letters, digits, ".", "_" and "-"'),
  description: z.string().min(1).default(''),
  /** The video bitrate a sender should use on this path (a default for `bench run`). */
  bitrateKbps: z
    .number({ error: 'must be a number of kbit/s' })
    .int('must be a whole number')
    .min(50, 'must be at least 50')
    .max(20_000, 'must be at most 20000')
    .default(600),
  buyer: legSchema.prefault({}),
  staff: legSchema.prefault({}),
  goals: goalsSchema.prefault({}),
});

export type DirectionSpec = z.output<typeof directionSchema>;
export type LegSpec = z.output<typeof legSchema>;
export type ProfileGoals = z.output<typeof goalsSchema>;
export type NetworkProfile = z.output<typeof profileSchema> & {
  /** Where it came from: `builtin` or the file's path. */
  source: string;
};
export type LegName = 'buyer' | 'staff';

/** Parses and validates a profile document; `origin` names it in error messages. */
export function parseProfile(doc: unknown, origin: string, source = origin): NetworkProfile {
  const result = profileSchema.safeParse(doc ?? {});
  if (!result.success) {
    throw new UserError(formatIssues(`profile ${origin}`, result.error));
  }
  return { ...result.data, source };
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `cannot read profile ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
    );
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new UserError(`profile ${file} is not valid YAML: ${errorMessage(err)}`);
  }
}

/** Loads a profile from a YAML file. */
export function loadProfileFile(file: string, source = file): NetworkProfile {
  return parseProfile(readYaml(file), file, source);
}

/** Names of the built-in profiles, in a stable order (gentlest first). */
export function builtinProfileNames(dir = BUILTIN_PROFILE_DIR): string[] {
  const order = [
    'lan',
    'outage',
    'cross-border',
    '4g',
    '3g-uplink',
    '3g',
    '3g-cross-border',
    'hostile',
  ];
  const names = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => f.replace(/\.ya?ml$/, ''));
  const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Every built-in profile, parsed. */
export function builtinProfiles(dir = BUILTIN_PROFILE_DIR): NetworkProfile[] {
  return builtinProfileNames(dir).map((name) => {
    const file = existsSync(join(dir, `${name}.yaml`))
      ? join(dir, `${name}.yaml`)
      : join(dir, `${name}.yml`);
    return loadProfileFile(file, 'builtin');
  });
}

/**
 * A built-in profile by name, or a YAML file by path (anything with a `/` or ending in
 * `.yaml`/`.yml`). An unknown name lists the built-ins.
 */
export function resolveProfile(nameOrPath: string, dir = BUILTIN_PROFILE_DIR): NetworkProfile {
  const looksLikePath = /[/\\]/.test(nameOrPath) || /\.ya?ml$/.test(nameOrPath);
  if (looksLikePath) return loadProfileFile(resolve(nameOrPath));
  const names = builtinProfileNames(dir);
  if (!names.includes(nameOrPath)) {
    throw new UserError(
      `no profile named "${nameOrPath}"; built-in profiles: ${names.join(', ')} (or give a path to a YAML file)`,
    );
  }
  const file = existsSync(join(dir, `${nameOrPath}.yaml`))
    ? join(dir, `${nameOrPath}.yaml`)
    : join(dir, `${nameOrPath}.yml`);
  const profile = loadProfileFile(file, 'builtin');
  if (profile.name !== nameOrPath) {
    throw new UserError(
      `profile file ${basename(file)} is named "${profile.name}"; the name must match the file`,
    );
  }
  return profile;
}

/** The sum of one-way delays a buyer's frame crosses to reach staff (buyer up + staff down). */
export function pathPropagationMs(profile: Pick<NetworkProfile, 'buyer' | 'staff'>): number {
  return profile.buyer.up.delay + profile.staff.down.delay;
}

/** Long-run loss of one direction: random and Gilbert-Elliott loss combined. */
export function expectedLoss(d: DirectionSpec): number {
  let burst = 0;
  if (d.burst) {
    const { p, r, badLoss, goodLoss } = d.burst;
    const bad = p + r > 0 ? p / (p + r) : 0;
    burst = bad * badLoss + (1 - bad) * goodLoss;
  }
  return 1 - (1 - d.loss) * (1 - burst);
}

/** A one-line summary of a direction for tables: `150ms±30 675k q40 1.0%`. */
export function describeDirection(d: DirectionSpec): string {
  const parts = [`${d.delay}ms`];
  if (d.jitter) parts[0] += `±${d.jitter}`;
  if (d.rateKbps) parts.push(`${d.rateKbps}k q${d.queuePackets}`);
  const loss = expectedLoss(d);
  if (loss > 0)
    parts.push(`${(loss * 100).toFixed(loss < 0.01 ? 2 : 1)}%${d.burst ? ' bursty' : ''}`);
  if (d.outages.length) parts.push(`${d.outages.length} outage${d.outages.length > 1 ? 's' : ''}`);
  return parts.join(' ');
}

/** A one-line summary of a profile's goals (besides the p95 target): `ramp 90 % in 10 s, recovery 1 s`. */
export function describeGoals(p: Pick<NetworkProfile, 'goals' | 'buyer' | 'staff'>): string {
  const g = p.goals;
  const parts: string[] = [];
  if (g.ramp) parts.push(`ramp ${(g.ramp.to * 100).toFixed(0)} % in ${g.ramp.within / 1000} s`);
  if (g.settle)
    parts.push(
      `settle ${(g.settle.low * 100).toFixed(0)}-${(g.settle.high * 100).toFixed(0)} %, collapse <= ${g.settle.maxCollapse / 1000} s`,
    );
  if (g.freezeRatio !== undefined) parts.push(`frozen <= ${(g.freezeRatio * 100).toFixed(1)} %`);
  const hasOutages = [p.buyer.up, p.buyer.down, p.staff.up, p.staff.down].some(
    (d) => d.outages.length > 0,
  );
  if (g.recovery !== undefined || hasOutages)
    parts.push(`recovery <= ${(g.recovery ?? 1000) / 1000} s`);
  return parts.join(', ');
}
