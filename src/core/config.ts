import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { UserError } from './errors.ts';

/**
 * The node's configuration: one schema, one place for defaults.
 * Layers, later wins: defaults → YAML file → environment (`RETURNCAM_*`) → flags.
 */

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${v}" is not a duration (use e.g. 30s, 15m, 72h, 7d)`,
    });
    return z.NEVER;
  }
  return ms;
});

const iceServer = z.strictObject({
  urls: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  username: z.string().optional(),
  credential: z.string().optional(),
});

const port = z.number().int().min(0).max(65535);

/** A video bitrate ceiling, kbit/s: enough for a usable picture, below what any link carries. */
const videoKbps = z
  .number()
  .int('must be a whole number of kbit/s')
  .min(100, 'use at least 100 kbit/s (less cannot carry inspection video)')
  .max(20_000, 'use at most 20000 kbit/s');

export const nodeConfigSchema = z.strictObject({
  node: z
    .strictObject({
      /** Identifies this node in evidence manifests and fleet status. */
      id: z.string().min(1).default('local'),
      /** Where the database, keys and recordings live. */
      dataDir: z.string().min(1).default('./data'),
      /** Base URL put into links; defaults to http://HOST:PORT. */
      publicUrl: z.url().optional(),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
    })
    .prefault({}),
  admin: z
    .strictObject({
      /** Admin bearer token; generated into DATA/admin.token when absent. */
      token: z.string().min(16).optional(),
      /** Answer admin requests from non-loopback clients too. */
      allowRemote: z.boolean().default(false),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      /** HMAC key for case links (base64 or hex, ≥ 32 bytes); generated into DATA/token.key when absent. */
      secret: z.string().min(32).optional(),
      buyerTtl: duration.default(72 * 3_600_000),
      staffTtl: duration.default(14 * 86_400_000),
    })
    .prefault({}),
  media: z
    .strictObject({
      /** Public address to announce in ICE candidates (NAT'd hosts). */
      announcedIp: z.string().optional(),
      /** UDP ports for media, inclusive. */
      portRange: z
        .tuple([port.min(1), port.min(1)])
        .refine(([a, b]) => a <= b, 'first port must not exceed the second')
        .optional(),
      /** ICE servers handed to peers. Empty by default: nodes may have no internet. */
      iceServers: z.array(iceServer).default([]),
      /** Offer a 127.0.0.1 candidate (local demos and tests). */
      loopbackCandidate: z.boolean().default(true),
      /**
       * Worker threads for media rooms: `auto` (one per core, none on a one-core machine) or a
       * number; 0 runs rooms on the main thread.
       */
      workers: z
        .union(
          [
            z.literal('auto'),
            z.number().int().min(0, 'use 0 (rooms on the main thread) or more').max(256),
          ],
          {
            error: 'use auto, or a whole number of worker threads from 0 (none) to 256',
          },
        )
        .default(0),
      /**
       * Most video a publisher of each role may send, kbit/s: written into the WHIP answer
       * (b=AS / b=TIAS on the video section). Chrome caps its whole send estimate at it, so the
       * publisher's audio and packet headers come out of the same budget.
       */
      maxBitrateKbps: z
        .strictObject({
          buyer: videoKbps.default(1500),
          staff: videoKbps.default(1000),
        })
        .prefault({}),
      /**
       * Let publishers send video FEC (RED + ULPFEC; Chrome adds it once the node's receiver
       * reports show loss) and rebuild lost packets from it, a round trip sooner than a NACK.
       * Chrome pays for it out of the video rate, and only on a lossy link: on 3g-cross-border
       * it cut the viewer's freezes from 35 to 10 in eight runs at the same frame rate; on a
       * 750 kbit/s uplink with 1.5 % loss the widest layer ran at 13-17 fps instead of 22-30.
       */
      publisherFec: z.boolean().default(true),
      /**
       * Most minimum playout delay the node asks of viewers, ms, so that a packet repaired on
       * the publisher's uplink comes in time to be shown (0: ask none). The node asks only while
       * that uplink needs repairs, and only what its typical repair takes beyond what a viewer
       * shows without a freeze. Every millisecond of it is latency, so it is off by default: on
       * 3g-cross-border, 250 ms cut the median freeze ratio from 1.78 to 1.51 % and added 73 ms
       * to the p95 camera to screen (DEVELOPERS.md).
       */
      maxPlayoutDelayMs: z
        .number()
        .int()
        .min(0, 'use 0 (ask viewers for no delay) or more')
        .max(2000, 'at most 2000 ms: beyond that a repair costs more latency than a freeze')
        .default(0),
      /**
       * How far V8 lets the old generation grow past what survived its last full collection
       * before it starts the next one, % (0: V8's own heuristics). Under load V8 kept the limit
       * so close to the live heap that at 25 calls × 2 viewers it ran 22-28 full collections in
       * 45 s, each stalling the packet path for up to ~12 ms. A larger step means fewer of them
       * and more memory. Since the RTCP report loops stopped promoting a promise chain per
       * report, a small step costs no more: at 25 × 2 with 4 MB semi-spaces, 25 (the default)
       * gave RSS 139-140 MB and the node's added p99 3.0-3.4 ms, 50 148-151 MB and 3.9-4.4 ms,
       * 15 no less memory than 25, CPU within the runs' spread (docs/performance.md, "Twelfth
       * round"; 100 gave 171 MB before). Applied process-wide by `node start`.
       */
      heapGrowthPercent: z
        .number()
        .int()
        .min(0, "use 0 (V8's own heuristics) or more")
        .max(400, 'at most 400: the heap may grow to five times what is live')
        .default(25),
    })
    .prefault({}),
  turn: z
    .strictObject({
      /** TURN URLs handed to peers with short-lived credentials (coturn's TURN REST API scheme). */
      urls: z.array(z.string().regex(/^turns?:\S+$/, 'must be a turn: or turns: URL')).default([]),
      /** coturn's static-auth-secret; when unset, DATA/turn.secret is read if it exists. */
      sharedSecret: z.string().min(16).optional(),
      /** How long a TURN credential stays valid (never past the link's own expiry). */
      ttl: duration.default(12 * 3_600_000),
    })
    .prefault({}),
  limits: z
    .strictObject({
      sdpBytes: z
        .number()
        .int()
        .min(1024)
        .default(64 * 1024),
      jsonBytes: z
        .number()
        .int()
        .min(1024)
        .default(64 * 1024),
      messageChars: z.number().int().min(1).default(4000),
      snapshotBytes: z
        .number()
        .int()
        .min(1024)
        .default(10 * 1024 * 1024),
    })
    .prefault({}),
  recording: z
    .strictObject({
      /** Record every track published to the node (WHIP), from the moment it arrives. */
      enabled: z.boolean().default(true),
      /** Refuse new WHIP sessions (HTTP 507) below this much free space on the recordings disk, bytes. */
      minFreeBytes: z
        .number()
        .int()
        .min(0)
        .default(1024 ** 3),
      /** Stop running recordings cleanly (marked truncated) below this much free space, bytes. */
      stopFreeBytes: z
        .number()
        .int()
        .min(0)
        .default(256 * 1024 ** 2),
      /** Days after a case closes before its media may be pruned; 0 keeps media forever. */
      retentionDays: z.number().int().min(0).default(180),
      /** How often the node applies retention by itself; 0 leaves it to `returncam rec prune`. */
      pruneInterval: duration.default(0),
      /**
       * How long a gap in a publisher's video waits at least for a retransmission before its frame
       * is given up (and a keyframe asked for). Over a long round trip to the publisher it waits
       * 2.5 round trips (as the node measures its repairs or its ICE checks), up to 1 s.
       */
      nackWait: duration
        .default(300)
        .refine((ms) => ms >= 20 && ms <= 2000, 'use between 20ms and 2s'),
      /** Written media is synced to the disk at least this often (at most every second). */
      syncInterval: duration
        .default(1000)
        .refine((ms) => ms >= 50 && ms <= 1000, 'use between 50ms and 1s'),
    })
    .refine((r) => r.stopFreeBytes <= r.minFreeBytes, {
      message: 'stopFreeBytes must not exceed minFreeBytes',
      path: ['stopFreeBytes'],
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
      json: z.boolean().default(false),
    })
    .prefault({}),
});

export type NodeConfig = z.output<typeof nodeConfigSchema>;
export type NodeConfigInput = z.input<typeof nodeConfigSchema>;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  }
  return out;
}

/** Formats schema issues as `path: message` lines, prefixed by where the value came from. */
export function formatIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.map((i) => {
    const path = i.path.join('.') || '(top level)';
    if (i.code === 'unrecognized_keys') {
      const where = i.path.length ? `${i.path.join('.')}.` : '';
      return `  ${i.keys.map((k) => `${where}${k}`).join(', ')}: unknown key`;
    }
    return `  ${path}: ${i.message}`;
  });
  return `${source} is not valid:\n${lines.join('\n')}`;
}

/** `http.port` → `RETURNCAM_HTTP_PORT`; `node.dataDir` → `RETURNCAM_NODE_DATA_DIR`. */
export function envName(path: string[]): string {
  return `RETURNCAM_${path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = (s as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } })
      .def;
    if (['default', 'optional', 'prefault'].includes(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
}

/** Every leaf of the schema with its path, so environment overrides cover each key without a list. */
function leaves(schema: z.ZodType, prefix: string[] = []): { path: string[]; schema: z.ZodType }[] {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) {
    return Object.entries(s.shape).flatMap(([k, v]) => leaves(v as z.ZodType, [...prefix, k]));
  }
  return [{ path: prefix, schema: s }];
}

/** Reads `RETURNCAM_*` overrides. Values are parsed as YAML scalars/lists (`8080`, `true`, `[a, b]`). */
export function envOverrides(env: NodeJS.ProcessEnv): Obj {
  const out: Obj = {};
  for (const { path, schema } of leaves(nodeConfigSchema)) {
    const raw = env[envName(path)];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    // string keys (tokens, hosts, ids) take the text as it is, even when it looks like a number
    if (!(schema instanceof z.ZodString)) {
      try {
        value = parseYaml(raw);
      } catch {
        value = raw;
      }
    }
    let cur = out;
    for (const p of path.slice(0, -1)) {
      cur[p] = isObj(cur[p]) ? cur[p] : {};
      cur = cur[p] as Obj;
    }
    cur[path.at(-1)!] = value;
  }
  return out;
}

export function readConfigFile(file: string): Obj {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UserError(`config ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isObj(doc)) throw new UserError(`config ${file} must be a YAML mapping at the top level`);
  return doc;
}

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: NodeConfigInput;
}

/** Builds the effective config from all layers and validates it once against the schema. */
export function loadNodeConfig(opts: LoadConfigOptions = {}): NodeConfig {
  const fileLayer = opts.file ? readConfigFile(opts.file) : {};
  const fileCheck = nodeConfigSchema.safeParse(fileLayer);
  if (!fileCheck.success) throw new UserError(formatIssues(`config ${opts.file}`, fileCheck.error));
  const envLayer = envOverrides(opts.env ?? process.env);
  const merged = deepMerge(deepMerge(fileLayer, envLayer), (opts.overrides ?? {}) as Obj);
  const result = nodeConfigSchema.safeParse(merged);
  if (!result.success) {
    throw new UserError(
      formatIssues('configuration (file, RETURNCAM_* environment and flags)', result.error),
    );
  }
  const cfg = result.data;
  if (opts.file) {
    // a relative dataDir in a config file is relative to the file, not to wherever the node was started
    const fromFile = (fileLayer.node as Obj | undefined)?.dataDir;
    const overridden = envLayer.node && (envLayer.node as Obj).dataDir;
    if (typeof fromFile === 'string' && !overridden && !opts.overrides?.node?.dataDir) {
      cfg.node.dataDir = resolve(opts.file, '..', fromFile);
    }
  }
  cfg.node.dataDir = resolve(cfg.node.dataDir);
  return cfg;
}
