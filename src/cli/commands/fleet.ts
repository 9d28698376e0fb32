import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../../core/duration.ts';
import { UserError } from '../../core/errors.ts';
import { DEFAULT_FLEET_FILE, initFleetFile, loadFleet } from '../../node/fleet/fleetConfig.ts';
import {
  type FleetStatus,
  fleetStatus,
  formatBytes,
  type NodeStatus,
} from '../../node/fleet/status.ts';
import { out, printJson, status, table, time } from '../output.ts';
import { interactive } from '../progress.ts';
import type { FleetStatusViewProps } from '../views/FleetStatusView.tsx';

/** `--fleet` default: RETURNCAM_FLEET, else configs/fleet.yaml. */
export function defaultFleetFile(): string {
  return process.env.RETURNCAM_FLEET || DEFAULT_FLEET_FILE;
}

function uptime(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

const HEADERS = [
  'NODE',
  'COUNTRY',
  'STATE',
  'VERSION',
  'UPTIME',
  'CASES',
  'PEERS',
  'CPU',
  'RSS',
  'DISK FREE',
  'REC ERR',
  'CERT',
  'TURN',
  'PROBE',
];

function row(n: NodeStatus): string[] {
  const num = (v: number | null) => (v === null ? '-' : String(v));
  return [
    n.id,
    n.country,
    n.state,
    n.version ?? '-',
    uptime(n.uptimeSeconds),
    num(n.activeCases),
    num(n.peers),
    n.cpu === null ? '-' : `${Math.round(n.cpu * 100)}%`,
    n.rssBytes === null ? '-' : formatBytes(n.rssBytes),
    n.diskFreeBytes === null ? '-' : formatBytes(n.diskFreeBytes),
    num(n.recordingErrors),
    n.certificateExpiresAt ? n.certificateExpiresAt.slice(0, 10) : '-',
    n.turn,
    `${n.probe.result === 'ok' ? 'ok' : 'failed'} ${n.probe.ms}ms`,
  ];
}

function problems(s: FleetStatus): string[] {
  return s.nodes.flatMap((n) => n.problems.map((p) => `${n.id}: ${p}`));
}

function summary(s: FleetStatus): string {
  const down = s.nodes.filter((n) => n.state === 'down').length;
  const sick = s.nodes.filter((n) => n.state === 'unhealthy').length;
  return s.ok
    ? `all ${s.nodes.length} nodes ok`
    : `${s.nodes.length} nodes: ${s.nodes.length - down - sick} ok, ${sick} unhealthy, ${down} down`;
}

function printText(s: FleetStatus): void {
  out(table(HEADERS, s.nodes.map(row)));
  const p = problems(s);
  if (p.length) out(`\n${p.join('\n')}`);
}

interface StatusFlags {
  fleet: string;
  watch?: boolean;
  interval: string;
  timeout: string;
  json?: boolean;
}

function durationFlag(name: string, v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0)
    throw new UserError(`${name}: "${v}" is not a duration (e.g. 5s)`);
  return ms;
}

async function watch(f: StatusFlags, intervalMs: number, timeoutMs: number): Promise<FleetStatus> {
  let last: FleetStatus | undefined;
  let stopped = false;
  let stopNow = () => {};
  const stop = new Promise<void>((resolve) => {
    stopNow = () => {
      stopped = true;
      resolve();
    };
  });
  process.once('SIGINT', stopNow);
  process.once('SIGTERM', stopNow);
  const sleep = () => Promise.race([stop, new Promise<void>((r) => setTimeout(r, intervalMs))]);

  if (interactive(process.stdout) && !f.json) {
    const { render } = await import('ink');
    const { createElement } = await import('react');
    const { FleetStatusView } = await import('../views/FleetStatusView.tsx');
    const props = (s: FleetStatus): FleetStatusViewProps => ({
      headers: HEADERS,
      rows: s.nodes.map((n) => ({ cells: row(n), state: n.state })),
      problems: problems(s),
      updatedAt: time(Date.now()),
      intervalText: formatDuration(intervalMs),
    });
    last = await fleetStatus(loadFleet(f.fleet), { timeoutMs });
    // ink reads the keyboard in raw mode, so Ctrl-C arrives as a key and ends ink, not as SIGINT
    const app = render(createElement(FleetStatusView, props(last)), { exitOnCtrlC: true });
    app.waitUntilExit().then(stopNow, stopNow);
    while (!stopped) {
      await sleep();
      if (stopped) break;
      last = await fleetStatus(loadFleet(f.fleet), { timeoutMs });
      if (!stopped) app.rerender(createElement(FleetStatusView, props(last)));
    }
    app.unmount();
    return last;
  }
  // plain text: one table per round under a time stamp; JSON: one object per line and round
  while (!stopped) {
    last = await fleetStatus(loadFleet(f.fleet), { timeoutMs });
    if (f.json) {
      out(
        JSON.stringify({
          version: 1,
          at: new Date().toISOString(),
          ok: last.ok,
          nodes: last.nodes,
        }),
      );
    } else {
      out(`# ${time(Date.now())}  ${summary(last)}`);
      printText(last);
      out('');
    }
    await sleep();
  }
  return last!;
}

export function registerFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('the warehouse nodes, all at once');

  fleet
    .command('init')
    .description('write a fleet file to start from (every key explained)')
    .option('-o, --out <file>', 'where to write it', DEFAULT_FLEET_FILE)
    .option('--force', 'replace an existing file')
    .action((f: { out: string; force?: boolean }) => {
      const r = initFleetFile(f.out, f.force);
      out(`${r.replaced ? 'replaced' : 'wrote'} ${f.out}`);
      status(
        `next: edit the warehouses in it, then: returncam node provision WAREHOUSE --fleet ${f.out}`,
      );
    });

  fleet
    .command('status')
    .description("every node's health, load, disk and TURN; exit 1 when one is down or unhealthy")
    .option('-f, --fleet <file>', 'fleet file', defaultFleetFile())
    .option('-w, --watch', 'keep polling (a live table on a terminal) until Ctrl-C')
    .option('--interval <duration>', 'time between polls with --watch', '5s')
    .option('--timeout <duration>', 'how long each probe may take', '3s')
    .option('--json', 'print a versioned JSON object (with --watch: one per line and poll)')
    .action(async (f: StatusFlags) => {
      const intervalMs = durationFlag('--interval', f.interval);
      const timeoutMs = durationFlag('--timeout', f.timeout);
      const fleetFile = loadFleet(f.fleet);
      let s: FleetStatus;
      if (f.watch) {
        s = await watch(f, intervalMs, timeoutMs);
      } else {
        s = await fleetStatus(fleetFile, { timeoutMs });
        if (f.json) printJson({ ok: s.ok, nodes: s.nodes });
        else printText(s);
      }
      status(summary(s));
      if (!s.ok) process.exitCode = 1;
    });
}
