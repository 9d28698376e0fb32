import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { errorMessage } from '../../core/errors.ts';
import { type Fleet, type Warehouse, warehouseUrls } from './fleetConfig.ts';
import { stunBinding } from './stun.ts';

/**
 * Polls one node the way an operator would look at it: /healthz, /metrics, the TLS certificate in
 * front of it (when its public URL is https), and a STUN Binding to its coturn. Returns data; the
 * CLI decides how to show it.
 */

export type NodeState = 'ok' | 'unhealthy' | 'down';

export interface NodeStatus {
  id: string;
  region: string;
  country: string;
  url: string;
  state: NodeState;
  reachable: boolean;
  /** Why the node is not ok (empty when it is). */
  problems: string[];
  version: string | null;
  nodeId: string | null;
  uptimeSeconds: number | null;
  activeCases: number | null;
  peers: number | null;
  /** CPU since the previous scrape, as a fraction of one core. */
  cpu: number | null;
  rssBytes: number | null;
  diskFreeBytes: number | null;
  recordingFloorBytes: number;
  /** Recordings that failed since the node started, plus WHIP sessions refused for disk space. */
  recordingErrors: number | null;
  certificateExpiresAt: string | null;
  turn: 'ok' | 'no answer' | 'off';
  probe: { at: string; ms: number; result: string };
}

export interface ProbeOptions {
  timeoutMs?: number;
  /** Certificates expiring sooner than this make a node unhealthy. */
  certWarnDays?: number;
  now?: () => number;
}

/** Parses Prometheus text: name → summed value over label sets matching `labels`. */
export function parseMetrics(text: string): Map<string, { labels: string; value: number }[]> {
  const out = new Map<string, { labels: string; value: number }[]>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const list = out.get(m[1]!) ?? [];
    list.push({ labels: m[2] ?? '', value });
    out.set(m[1]!, list);
  }
  return out;
}

function metric(
  metrics: Map<string, { labels: string; value: number }[]>,
  name: string,
  labelFilter?: string,
): number | null {
  const list = metrics.get(name);
  if (!list) return null;
  const hits = labelFilter ? list.filter((x) => x.labels.includes(labelFilter)) : list;
  return hits.reduce((sum, x) => sum + x.value, 0);
}

async function fetchWithin(url: string, timeoutMs: number): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
}

function why(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  if (e?.cause?.code) return e.cause.code.toLowerCase().replace(/_/g, ' ');
  return e?.cause?.message ?? errorMessage(err);
}

/** Expiry of the certificate a TLS server presents (not whether it is trusted). */
export function certificateExpiry(host: string, port: number, timeoutMs: number): Promise<Date> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      // SNI carries names only
      { host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false },
      () => {
        const cert = socket.getPeerCertificate();
        socket.destroy();
        if (!cert?.valid_to) reject(new Error('no certificate'));
        else resolve(new Date(cert.valid_to));
      },
    );
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error('timed out'));
    });
    socket.on('error', reject);
  });
}

export async function probeNode(w: Warehouse, opts: ProbeOptions = {}): Promise<NodeStatus> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const now = opts.now ?? Date.now;
  const urls = warehouseUrls(w);
  const started = now();
  const s: NodeStatus = {
    id: w.id,
    region: w.region,
    country: w.country,
    url: urls.statusUrl,
    state: 'down',
    reachable: false,
    problems: [],
    version: null,
    nodeId: null,
    uptimeSeconds: null,
    activeCases: null,
    peers: null,
    cpu: null,
    rssBytes: null,
    diskFreeBytes: null,
    recordingFloorBytes: w.recording.floor,
    recordingErrors: null,
    certificateExpiresAt: null,
    turn: w.turn.enabled ? 'no answer' : 'off',
    probe: { at: new Date(started).toISOString(), ms: 0, result: '' },
  };

  const health = (async () => {
    const res = await fetchWithin(`${urls.statusUrl}/healthz`, timeoutMs);
    const body = (await res.json().catch(() => ({}))) as {
      status?: string;
      version?: string;
      nodeId?: string;
      uptimeSeconds?: number;
      disk?: { freeBytes?: number } | null;
    };
    return { status: res.status, body };
  })();
  const metrics = (async () => {
    const res = await fetchWithin(`${urls.statusUrl}/metrics`, timeoutMs);
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return parseMetrics(await res.text());
  })();
  const cert = (async () => {
    const u = new URL(urls.publicUrl);
    if (u.protocol !== 'https:') return null;
    return certificateExpiry(u.hostname, Number(u.port || 443), timeoutMs);
  })();
  const turn = (async () => {
    if (!w.turn.enabled) return 'off' as const;
    await stunBinding({ host: w.host, port: w.ports.turn, timeoutMs });
    return 'ok' as const;
  })();
  const [h, m, c, t] = await Promise.allSettled([health, metrics, cert, turn]);

  if (h.status === 'rejected') {
    s.probe.result = `cannot reach ${urls.statusUrl}: ${why(h.reason)}`;
    s.problems.push(s.probe.result);
  } else {
    s.reachable = true;
    const b = h.value.body;
    s.version = b.version ?? null;
    s.nodeId = b.nodeId ?? null;
    s.uptimeSeconds = b.uptimeSeconds ?? null;
    s.diskFreeBytes = b.disk?.freeBytes ?? null;
    if (h.value.status !== 200 || b.status !== 'ok') {
      s.problems.push(`/healthz answered ${h.value.status} ${b.status ?? ''}`.trim());
    }
    if (b.nodeId && b.nodeId !== w.id) {
      s.problems.push(`answers as node ${b.nodeId}, not ${w.id}`);
    }
  }
  if (m.status === 'fulfilled') {
    const mm = m.value;
    s.activeCases = metric(mm, 'returncam_active_cases');
    s.peers = metric(mm, 'returncam_peers');
    s.cpu = metric(mm, 'returncam_process_cpu_ratio');
    s.rssBytes = metric(mm, 'process_resident_memory_bytes');
    s.diskFreeBytes ??= metric(mm, 'returncam_recording_disk_free_bytes');
    const failed = metric(mm, 'returncam_recordings_finished_total', 'status="failed"');
    const refused = metric(mm, 'returncam_recording_refused_total');
    s.recordingErrors = failed === null && refused === null ? null : (failed ?? 0) + (refused ?? 0);
  } else if (s.reachable) {
    s.problems.push(`cannot read /metrics: ${why(m.reason)}`);
  }
  if (s.diskFreeBytes !== null && s.diskFreeBytes < w.recording.floor) {
    s.problems.push(
      `recordings disk below its floor: ${formatBytes(s.diskFreeBytes)} free, floor ${formatBytes(w.recording.floor)}`,
    );
  }
  if (c.status === 'fulfilled' && c.value) {
    s.certificateExpiresAt = c.value.toISOString();
    const days = (c.value.getTime() - now()) / 86_400_000;
    if (days < (opts.certWarnDays ?? 14))
      s.problems.push(
        days < 0
          ? 'TLS certificate has expired'
          : `TLS certificate expires in ${Math.floor(days)} days`,
      );
  } else if (c.status === 'rejected') {
    s.problems.push(`cannot read the TLS certificate of ${urls.publicUrl}: ${why(c.reason)}`);
  }
  if (t.status === 'fulfilled') s.turn = t.value;
  else s.problems.push(`coturn on ${w.host}:${w.ports.turn} does not answer STUN`);

  s.state = !s.reachable ? 'down' : s.problems.length ? 'unhealthy' : 'ok';
  s.probe.ms = now() - started;
  if (!s.probe.result) s.probe.result = s.problems[0] ?? 'ok';
  return s;
}

export interface FleetStatus {
  nodes: NodeStatus[];
  /** ok when every node is. */
  ok: boolean;
}

export async function fleetStatus(fleet: Fleet, opts: ProbeOptions = {}): Promise<FleetStatus> {
  const nodes = await Promise.all(fleet.warehouses.map((w) => probeNode(w, opts)));
  return { nodes, ok: nodes.every((n) => n.state === 'ok') };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
