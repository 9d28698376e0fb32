import { isIP } from 'node:net';
import { stringify } from 'yaml';
import type { NodeConfigInput } from '../../core/config.ts';
import { formatDuration } from '../../core/duration.ts';
import { NODE_START_FLAGS } from '../heapFlags.ts';
import { type Warehouse, warehouseUrls } from './fleetConfig.ts';

/**
 * What a warehouse host needs, rendered from its fleet entry. Pure functions: text in, text out;
 * `provision.ts` writes them, `deploy.ts` installs them where `hostFiles` says.
 */

export const NODE_UNIT = 'returncam-node.service';
export const TURN_UNIT = 'returncam-turn.service';

export type FileOwner = 'root' | 'node' | 'turn';

export interface HostFile {
  /** Path inside the provisioned directory. */
  name: string;
  /** Where it goes on the host. */
  remote: string;
  mode: number;
  owner: FileOwner;
  secret: boolean;
  /** Only installed under systemd. */
  systemdOnly?: boolean;
}

/** Every provisioned file and its place on the host. */
export function hostFiles(w: Warehouse): HostFile[] {
  const { configDir, dataDir, unitDir } = w.paths;
  const files: HostFile[] = [
    {
      name: 'node.yaml',
      remote: `${configDir}/node.yaml`,
      mode: 0o644,
      owner: 'root',
      secret: false,
    },
    {
      name: NODE_UNIT,
      remote: `${unitDir}/${NODE_UNIT}`,
      mode: 0o644,
      owner: 'root',
      secret: false,
      systemdOnly: true,
    },
    {
      name: 'secrets/admin.token',
      remote: `${dataDir}/admin.token`,
      mode: 0o600,
      owner: 'node',
      secret: true,
    },
    {
      name: 'secrets/token.key',
      remote: `${dataDir}/token.key`,
      mode: 0o600,
      owner: 'node',
      secret: true,
    },
    {
      name: 'secrets/turn.secret',
      remote: `${dataDir}/turn.secret`,
      mode: 0o600,
      owner: 'node',
      secret: true,
    },
    {
      name: 'secrets/evidence.key',
      remote: `${dataDir}/evidence.key`,
      mode: 0o600,
      owner: 'node',
      secret: true,
    },
    {
      name: 'secrets/evidence.pub',
      remote: `${dataDir}/evidence.pub`,
      mode: 0o644,
      owner: 'node',
      secret: false,
    },
  ];
  if (w.turn.enabled) {
    files.push(
      {
        name: 'turnserver.conf',
        remote: `${configDir}/turnserver.conf`,
        mode: 0o600,
        owner: 'turn',
        secret: true,
      },
      {
        name: TURN_UNIT,
        remote: `${unitDir}/${TURN_UNIT}`,
        mode: 0o644,
        owner: 'root',
        secret: false,
        systemdOnly: true,
      },
    );
  }
  return files;
}

function header(w: Warehouse, what: string): string {
  return [
    `# ${what} for returncam warehouse ${w.id} (${w.country}, ${w.region}).`,
    `# Rendered by \`returncam node provision ${w.id}\` from the fleet file: change the fleet file and`,
    '# provision again rather than editing this copy.',
  ].join('\n');
}

/** The node's own config (secrets stay in DATA/, mode 0600, where the node reads them). */
export function renderNodeConfig(w: Warehouse): string {
  const urls = warehouseUrls(w);
  const floor = w.recording.floor;
  const config: NodeConfigInput = {
    node: { id: w.id, dataDir: w.paths.dataDir, publicUrl: urls.publicUrl },
    http: { host: w.listen, port: w.ports.http },
    admin: { allowRemote: false },
    media: {
      ...(urls.announcedIp ? { announcedIp: urls.announcedIp } : {}),
      portRange: w.ports.media,
      iceServers: [],
      loopbackCandidate: false,
    },
    turn: { urls: urls.turnUrls, ttl: formatDuration(w.turn.ttl) },
    recording: {
      minFreeBytes: floor,
      stopFreeBytes: Math.min(256 * 1024 ** 2, floor),
      retentionDays: w.recording.retentionDays,
    },
    log: { level: w.log.level, json: false },
  };
  return `${header(w, 'Media node config')}\n# Secrets: DATA/admin.token, DATA/token.key, DATA/turn.secret, DATA/evidence.key.\n\n${stringify(config, { lineWidth: 0 })}`;
}

/** Sandboxing both units share; the node also gets a system call filter (coturn is not ours to profile). */
function hardening(syscallFilter: boolean): string[] {
  return [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'PrivateMounts=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'ProtectProc=invisible',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RemoveIPC=yes',
    'SystemCallArchitectures=native',
    ...(syscallFilter
      ? [
          'SystemCallFilter=@system-service',
          'SystemCallFilter=~@privileged',
          'SystemCallErrorNumber=EPERM',
        ]
      : []),
  ];
}

/** systemd unit for the node: its own user, resource limits, read-only system but DATA. */
export function renderNodeUnit(w: Warehouse): string {
  const { installDir, configDir, dataDir } = w.paths;
  const lowPort = w.ports.http < 1024;
  return `${header(w, 'systemd unit of the media node')}

[Unit]
Description=returncam media node, warehouse ${w.id} (${w.country})
After=network-online.target ${TURN_UNIT}
Wants=network-online.target

[Service]
Type=simple
User=${w.service.user}
Group=${w.service.user}
WorkingDirectory=${installDir}/current
ExecStart=${w.service.nodeBinary} ${NODE_START_FLAGS.join(' ')} ${installDir}/current/bin/returncam node start --config ${configDir}/node.yaml
Environment=NODE_ENV=production
# The first SIGINT closes sessions and the database cleanly; recordings stay playable.
KillSignal=SIGINT
TimeoutStopSec=30s
Restart=on-failure
RestartSec=2s
MemoryMax=${w.service.memoryMax}
LimitNOFILE=${w.service.openFiles}
TasksMax=${w.service.tasksMax}
UMask=0077
ReadWritePaths=${dataDir}
${lowPort ? 'AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE' : 'CapabilityBoundingSet='}
${hardening(true).join('\n')}

[Install]
WantedBy=multi-user.target
`;
}

/** systemd unit for coturn with this warehouse's config; takes over from Debian's coturn.service. */
export function renderTurnUnit(w: Warehouse): string {
  const privileged = w.ports.turn < 1024 || (w.turn.tls !== undefined && w.ports.turnTls < 1024);
  return `${header(w, 'systemd unit of coturn')}

[Unit]
Description=coturn TURN server for returncam warehouse ${w.id} (${w.country})
After=network-online.target
Wants=network-online.target
Conflicts=coturn.service

[Service]
Type=simple
User=${w.service.turnUser}
Group=${w.service.turnUser}
ExecStart=${w.service.turnBinary} -c ${w.paths.configDir}/turnserver.conf --pidfile=
Restart=on-failure
RestartSec=2s
LimitNOFILE=${w.service.openFiles}
UMask=0077
${privileged ? 'AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE' : 'CapabilityBoundingSet='}
# coturn opens its (unused) SQLite user database here
ReadWritePaths=-/var/lib/turn
${hardening(false).join('\n')}

[Install]
WantedBy=multi-user.target
`;
}

/** Private and special-purpose ranges a relay must not reach (RFC 8656 §21.5 advice). */
const DENIED_PEERS = [
  '0.0.0.0-0.255.255.255',
  '10.0.0.0-10.255.255.255',
  '100.64.0.0-100.127.255.255',
  '127.0.0.0-127.255.255.255',
  '169.254.0.0-169.254.255.255',
  '172.16.0.0-172.31.255.255',
  '192.0.0.0-192.0.0.255',
  '192.0.2.0-192.0.2.255',
  '192.88.99.0-192.88.99.255',
  '192.168.0.0-192.168.255.255',
  '198.18.0.0-198.19.255.255',
  '198.51.100.0-198.51.100.255',
  '203.0.113.0-203.0.113.255',
  '240.0.0.0-255.255.255.255',
  '::1',
  '64:ff9b::-64:ff9b::ffff:ffff',
  '::ffff:0.0.0.0-::ffff:255.255.255.255',
  '100::-100::ffff:ffff:ffff:ffff',
  '2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff',
  '2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
];

/** coturn config: TURN REST API auth with the node's shared secret, no open relay to private ranges. */
export function renderTurnConfig(w: Warehouse, sharedSecret: string): string {
  const urls = warehouseUrls(w);
  const nodeAddresses = [
    ...new Set(
      [w.privateIp, urls.announcedIp, ...w.turn.allowedPeerIps].filter(
        (a): a is string => a !== undefined && isIP(a) !== 0,
      ),
    ),
  ];
  const lines = [
    header(w, 'coturn config'),
    '# Credentials are minted by the media node (GET /api/cases/{id}/ice) from the same secret:',
    '# username "<expiry unix time>:<case>-<role>", password base64(HMAC-SHA1(secret, username)).',
    '',
    '# listeners: UDP and TCP here; TLS below for networks that only let HTTPS out',
    `listening-port=${w.ports.turn}`,
    ...w.turn.listeningIps.map((a) => `listening-ip=${a}`),
    ...w.turn.relayIps.map((a) => `relay-ip=${a}`),
    ...(w.privateIp && urls.announcedIp ? [`external-ip=${urls.announcedIp}/${w.privateIp}`] : []),
    `min-port=${w.ports.relay[0]}`,
    `max-port=${w.ports.relay[1]}`,
    '',
    '# authentication: TURN REST API (time-limited HMAC credentials), long-term mechanism',
    `realm=${urls.realm}`,
    `server-name=${urls.realm}`,
    'use-auth-secret',
    `static-auth-secret=${sharedSecret}`,
    'fingerprint',
    'stale-nonce=600',
    `user-quota=${w.turn.userQuota}`,
    `total-quota=${w.turn.totalQuota}`,
    '',
    '# TLS',
    ...(w.turn.tls
      ? [
          `tls-listening-port=${w.ports.turnTls}`,
          `cert=${w.turn.tls.cert}`,
          `pkey=${w.turn.tls.key}`,
          'no-tlsv1',
          'no-tlsv1_1',
          'no-dtls',
        ]
      : ['no-tls', 'no-dtls']),
    '',
    '# a relay for WebRTC media only: no TCP relays, no multicast, no private ranges but the node',
    'no-tcp-relay',
    'no-multicast-peers',
    ...DENIED_PEERS.map((r) => `denied-peer-ip=${r}`),
    ...nodeAddresses.map((a) => `allowed-peer-ip=${a}`),
    '',
    '# operations',
    'no-cli',
    'no-software-attribute',
    'log-file=stdout',
    'simple-log',
    '',
  ];
  return lines.join('\n');
}
