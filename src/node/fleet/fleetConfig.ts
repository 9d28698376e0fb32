import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { formatIssues, readConfigFile } from '../../core/config.ts';
import { parseDuration } from '../../core/duration.ts';
import { errorMessage, UserError } from '../../core/errors.ts';

/**
 * The fleet file: one entry per warehouse, each becoming one media node with its own coturn.
 * `defaults` holds settings shared by every warehouse; a warehouse's own keys win (objects merge,
 * lists and values replace). One strict schema: unknown keys are errors naming their path.
 */

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use e.g. 30s, 15m, 12h)` });
    return z.NEVER;
  }
  return ms;
});

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** `20GiB`, `500MB`, `1.5TB` or a number of bytes. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = SIZE_UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (use e.g. 20GiB, 500MB)` });
    return z.NEVER;
  }
  return bytes;
});

const port = z.number().int().min(1).max(65535);
const portRange = z
  .tuple([port, port])
  .refine(([a, b]) => a <= b, 'first port must not exceed the second');
const ip = z.string().refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address');
const absPath = z.string().refine((v) => v.startsWith('/'), 'must be an absolute path');
const command = z.string().min(1);

/** Settings a warehouse may take from `defaults`. */
export const warehouseSettingsSchema = z.strictObject({
  ssh: z
    .strictObject({
      /** Login user on the host. */
      user: z.string().min(1).default('root'),
      port: port.default(22),
      /** Private key to log in with; relative paths are relative to the fleet file. */
      identityFile: z.string().min(1).optional(),
      /** known_hosts file to check the host key against (default: ssh's own). */
      knownHostsFile: z.string().min(1).optional(),
      /** Extra `-o` options, e.g. StrictHostKeyChecking=accept-new. */
      options: z.array(z.string().regex(/^\w+=.+$/, 'use Name=value')).default([]),
    })
    .prefault({}),
  /** Address the node's HTTP listener binds to on the host. */
  listen: ip.default('0.0.0.0'),
  ports: z
    .strictObject({
      http: port.default(8080),
      /** UDP ports for WebRTC media, inclusive. */
      media: portRange.default([40000, 40999]),
      /** coturn's plain listener, UDP and TCP. */
      turn: port.default(3478),
      /** coturn's TLS listener, for networks that only let HTTPS out. */
      turnTls: port.default(443),
      /** UDP ports coturn relays from, inclusive. */
      relay: portRange.default([49152, 65535]),
    })
    .prefault({}),
  turn: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Defaults to the warehouse's publicHost. */
      realm: z.string().min(1).optional(),
      /** How long a TURN credential minted by the node stays valid. */
      ttl: duration.default(12 * 3_600_000),
      /** Certificate and key on the host for turns: (TLS); without them only plain TURN runs. */
      tls: z.strictObject({ cert: absPath, key: absPath }).optional(),
      /** Addresses coturn listens on; empty: all. */
      listeningIps: z.array(ip).default([]),
      /** Addresses coturn relays from; empty: coturn picks. */
      relayIps: z.array(ip).default([]),
      /** Peers the relay may reach although they are in a private range (the node is added). */
      allowedPeerIps: z.array(ip).default([]),
      /** Concurrent allocations per username, and in total. */
      userQuota: z.number().int().min(0).default(12),
      totalQuota: z.number().int().min(0).default(1200),
    })
    .prefault({}),
  recording: z
    .strictObject({
      /** Free space the recordings disk must keep: the node refuses new recordings below it and fleet status calls the node unhealthy. */
      floor: size.default(5 * 1024 ** 3),
      /** Days after a case closes before its media may be pruned; 0 keeps it forever. */
      retentionDays: z.number().int().min(0).default(180),
    })
    .prefault({}),
  paths: z
    .strictObject({
      /** Releases live in INSTALL/releases/<version>-<time>, the running one is INSTALL/current. */
      installDir: absPath.default('/opt/returncam'),
      configDir: absPath.default('/etc/returncam'),
      dataDir: absPath.default('/var/lib/returncam'),
      unitDir: absPath.default('/etc/systemd/system'),
      /** Pid files and logs when the host has no systemd. */
      runDir: absPath.default('/run/returncam'),
      logDir: absPath.default('/var/log/returncam'),
    })
    .prefault({}),
  service: z
    .strictObject({
      /** systemd, or shell commands where there is none; auto picks by looking. */
      manager: z.enum(['auto', 'systemd', 'command']).default('auto'),
      user: z.string().min(1).default('returncam'),
      turnUser: z.string().min(1).default('turnserver'),
      nodeBinary: absPath.default('/usr/bin/node'),
      turnBinary: absPath.default('/usr/bin/turnserver'),
      memoryMax: z
        .string()
        .regex(/^(\d+[KMGT]?|\d+%|infinity)$/, 'use a systemd size such as 2G')
        .default('2G'),
      openFiles: z.number().int().min(1024).default(65536),
      tasksMax: z.number().int().min(16).default(4096),
      /** Without systemd: shell commands run on the host; {placeholders} name fleet paths. */
      startCommand: command.optional(),
      stopCommand: command.optional(),
      turnStartCommand: command.optional(),
      turnStopCommand: command.optional(),
    })
    .prefault({}),
  deploy: z
    .strictObject({
      /** git: the files `git ls-files` lists (tracked and new, not ignored); npm-pack: `npm pack`. */
      release: z.enum(['git', 'npm-pack']).default('git'),
      /** The package directory to release; relative to the fleet file. Unset: this installation. */
      source: z.string().min(1).optional(),
      /** Run in the new release directory before it can become current. */
      installCommand: command.default('npm ci --omit=dev --no-audit --no-fund'),
      /** How long the node may take to answer /healthz after a restart. */
      healthTimeout: duration.default(60_000),
      /** Releases kept on the host (the current and previous one always are). */
      keepReleases: z.number().int().min(2).default(5),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    })
    .prefault({}),
});

export const warehouseSchema = warehouseSettingsSchema.extend({
  /** Short name: the node id, the provisioned directory, what commands take. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'use 1-32 lowercase letters, digits and -'),
  region: z.string().min(1),
  /** ISO 3166-1 alpha-2. */
  country: z.string().regex(/^[A-Z]{2}$/, 'use an ISO 3166-1 alpha-2 code such as DE'),
  /** How this machine is reached from where you run returncam: ssh, health checks. */
  host: z.string().min(1),
  /** IP or DNS name buyers and staff reach: links, TURN URLs. */
  publicHost: z.string().min(1),
  /** Address announced in ICE candidates; defaults to publicHost when that is an IP. */
  publicIp: ip.optional(),
  /** The host's own address behind 1:1 NAT (coturn's external-ip mapping). */
  privateIp: ip.optional(),
  /** Base URL in links (e.g. behind a TLS proxy); defaults to http://publicHost:ports.http. */
  publicUrl: z.url().optional(),
  /** Where fleet status and deploy read /healthz and /metrics; defaults to http://host:ports.http. */
  statusUrl: z.url().optional(),
});

export type Warehouse = z.output<typeof warehouseSchema>;

export interface Fleet {
  file: string;
  warehouses: Warehouse[];
}

const fleetShape = z.strictObject({
  version: z.literal(1).default(1),
  defaults: z.record(z.string(), z.unknown()).default({}),
  warehouses: z.array(z.record(z.string(), z.unknown())).min(1, 'list at least one warehouse'),
});

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  }
  return out;
}

function expandPath(p: string | undefined, baseDir: string): string | undefined {
  if (p === undefined) return undefined;
  if (p === '~' || p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/** Validates a parsed fleet document; `source` names it in errors. */
export function parseFleet(doc: unknown, file: string): Fleet {
  const source = `fleet ${file}`;
  const shape = fleetShape.safeParse(doc ?? {});
  if (!shape.success) throw new UserError(formatIssues(source, shape.error));
  const issues: z.core.$ZodIssue[] = [];
  const prefixed = (prefix: (string | number)[], e: z.ZodError) =>
    issues.push(...e.issues.map((i) => ({ ...i, path: [...prefix, ...i.path] })));
  const defaults = warehouseSettingsSchema.safeParse(shape.data.defaults);
  if (!defaults.success) prefixed(['defaults'], defaults.error);
  const warehouses: Warehouse[] = [];
  const baseDir = dirname(resolve(file));
  shape.data.warehouses.forEach((raw, i) => {
    if (!defaults.success) return; // fix defaults first: every warehouse would repeat its errors
    const parsed = warehouseSchema.safeParse(deepMerge(shape.data.defaults, raw));
    if (!parsed.success) {
      prefixed(['warehouses', i], parsed.error);
      return;
    }
    const w = parsed.data;
    w.ssh.identityFile = expandPath(w.ssh.identityFile, baseDir);
    w.ssh.knownHostsFile = expandPath(w.ssh.knownHostsFile, baseDir);
    w.deploy.source = expandPath(w.deploy.source, baseDir);
    if (w.ports.media[0] <= w.ports.turn && w.ports.turn <= w.ports.media[1])
      issues.push({
        code: 'custom',
        path: ['warehouses', i, 'ports', 'turn'],
        message: 'must not be inside ports.media',
        input: w.ports.turn,
      });
    warehouses.push(w);
  });
  const seen = new Set<string>();
  warehouses.forEach((w) => {
    if (seen.has(w.id))
      issues.push({
        code: 'custom',
        path: ['warehouses'],
        message: `the id ${w.id} is used twice`,
        input: w.id,
      });
    seen.add(w.id);
  });
  if (issues.length) throw new UserError(formatIssues(source, new z.ZodError(issues)));
  return { file: resolve(file), warehouses };
}

export const DEFAULT_FLEET_FILE = 'configs/fleet.yaml';

export function loadFleet(file: string): Fleet {
  if (!existsSync(file)) {
    throw new UserError(
      `no fleet file at ${file}; create one with: returncam fleet init${file === DEFAULT_FLEET_FILE ? '' : ` --out ${file}`}`,
    );
  }
  return parseFleet(readConfigFile(file), file);
}

export function findWarehouse(fleet: Fleet, id: string): Warehouse {
  const w = fleet.warehouses.find((x) => x.id === id);
  if (!w) {
    throw new UserError(
      `no warehouse ${id} in ${fleet.file} (it has: ${fleet.warehouses.map((x) => x.id).join(', ')})`,
    );
  }
  return w;
}

/** Derived addresses every part agrees on. */
export function warehouseUrls(w: Warehouse): {
  publicUrl: string;
  statusUrl: string;
  announcedIp: string | undefined;
  turnUrls: string[];
  realm: string;
} {
  const hostPart = (h: string) => (isIP(h) === 6 ? `[${h}]` : h);
  const turnUrls = w.turn.enabled
    ? [
        `turn:${hostPart(w.publicHost)}:${w.ports.turn}?transport=udp`,
        `turn:${hostPart(w.publicHost)}:${w.ports.turn}?transport=tcp`,
        ...(w.turn.tls ? [`turns:${hostPart(w.publicHost)}:${w.ports.turnTls}?transport=tcp`] : []),
      ]
    : [];
  return {
    publicUrl: (w.publicUrl ?? `http://${hostPart(w.publicHost)}:${w.ports.http}`).replace(
      /\/$/,
      '',
    ),
    statusUrl: (w.statusUrl ?? `http://${hostPart(w.host)}:${w.ports.http}`).replace(/\/$/, ''),
    announcedIp: w.publicIp ?? (isIP(w.publicHost) ? w.publicHost : undefined),
    turnUrls,
    realm: w.turn.realm ?? w.publicHost,
  };
}

/** The commented example that ships with the package; `fleet init` starts from it. */
export const FLEET_EXAMPLE = fileURLToPath(
  new URL('../../../configs/fleet.example.yaml', import.meta.url),
);

/** Writes a new fleet file from the example; refuses to replace one unless `force`. */
export function initFleetFile(out: string, force = false): { file: string; replaced: boolean } {
  const file = resolve(out);
  const replaced = existsSync(file);
  if (replaced && !force) throw new UserError(`${out} already exists; pass --force to replace it`);
  try {
    mkdirSync(dirname(file), { recursive: true });
    copyFileSync(FLEET_EXAMPLE, file);
  } catch (err) {
    throw new UserError(`cannot write ${out}: ${errorMessage(err)}`);
  }
  return { file, replaced };
}
