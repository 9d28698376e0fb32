import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createElement } from 'react';
import { BenchStore } from '../../bench/BenchStore.ts';
import {
  type CapacityResult,
  type CapacityServer,
  renderCapacityText,
  runCapacity,
} from '../../bench/capacity.ts';
import { type ProbeResult, runProbe } from '../../bench/probe.ts';
import {
  builtinProfiles,
  describeDirection,
  describeGoals,
  type LegName,
  type NetworkProfile,
  resolveProfile,
} from '../../bench/profiles.ts';
import { renderRepeatText, summarizeRepeats } from '../../bench/repeat.ts';
import {
  asRunResult,
  compareRuns,
  compareSets,
  renderComparison,
  renderSetComparison,
} from '../../bench/report/compare.ts';
import { writeHtmlReport } from '../../bench/report/html.ts';
import { renderRunText, renderSummaryTable } from '../../bench/report/text.ts';
import type { BenchResult } from '../../bench/result.ts';
import {
  type BenchProgress,
  DEFAULT_ALLOWANCE_MS,
  DEFAULT_TARGET_MS,
  type NodeChoice,
  runProfiles,
} from '../../bench/runBench.ts';
import { parseDuration } from '../../core/duration.ts';
import { UserError } from '../../core/errors.ts';
import { out, printJson, status, table, time } from '../output.ts';
import { interactive } from '../progress.ts';
import { BenchDashboard } from '../views/BenchDashboard.tsx';

/** Exit code when a run misses the latency target (1 is an error, 2 a usage error). */
export const EXIT_TARGET_MISSED = 3;

/** Most runs `bench run --repeat` makes of each profile. */
const MAX_REPEAT = 100;

function durationFlag(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const ms = parseDuration(v);
  if (ms === undefined)
    throw new UserError(`${name} must be a duration like 500ms, 10s or 2m (got ${v})`);
  return ms;
}

function intFlag(
  name: string,
  v: string | undefined,
  fallback: number,
  min = 1,
  max = 10_000,
): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UserError(`${name} must be a whole number from ${min} to ${max} (got ${v})`);
  }
  return n;
}

function profilesFlag(v: string): NetworkProfile[] {
  return v
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => resolveProfile(p));
}

function nodeChoice(f: {
  node?: string;
  token?: string;
  data: string;
  spawn?: string;
  direct?: boolean;
}): NodeChoice {
  if (f.direct) {
    if (f.node) throw new UserError('--direct measures without a node; leave out --node');
    return { kind: 'none' };
  }
  if (f.node) return { kind: 'remote', url: f.node, token: f.token, dataDir: f.data };
  if (f.spawn === 'process') return { kind: 'process' };
  if (f.spawn === undefined || f.spawn === 'in-process') return { kind: 'in-process' };
  throw new UserError(`--spawn must be in-process or process (got ${f.spawn})`);
}

function serversFlag(v: string): CapacityServer[] {
  const list = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const x of list) {
    if (x !== 'node' && x !== 'janus')
      throw new UserError(`--server must be node, janus or both (node,janus); got ${x}`);
  }
  if (list.length === 0) throw new UserError('--server names no server (node, janus)');
  return [...new Set(list)] as CapacityServer[];
}

function impairFlag(v: string): void {
  if (v === 'relay') return;
  if (v === 'netns') {
    throw new UserError(
      '--impair netns is not supported yet: the userspace relay (--impair relay, the default) impairs both directions of each leg without root',
    );
  }
  throw new UserError(`--impair must be relay (got ${v})`);
}

/** Live progress: an ink dashboard on a terminal, one plain line per second elsewhere. */
function progressView(title: string) {
  let app:
    | { rerender: (n: ReturnType<typeof createElement>) => void; unmount: () => void }
    | undefined;
  let lastPhase = '';
  let pending: Promise<void> | undefined;
  const onProgress = (p: BenchProgress) => {
    if (interactive()) {
      const el = createElement(BenchDashboard, { title, progress: p });
      if (app) app.rerender(el);
      else
        pending ??= import('ink').then(({ render }) => {
          app = render(el, { stdout: process.stderr, exitOnCtrlC: false, patchConsole: false });
        });
      return;
    }
    if (p.phase !== 'running') {
      if (p.phase !== lastPhase) status(`${title}: ${p.message}`);
      lastPhase = p.phase;
      return;
    }
    lastPhase = p.phase;
    const o = p.overall;
    const kbps = p.sessions.reduce((s, x) => s + x.kbps, 0);
    const loss = p.sessions.length
      ? p.sessions.reduce((s, x) => s + x.lossPct, 0) / p.sessions.length
      : 0;
    const freezes = p.sessions.reduce((s, x) => s + x.freezes, 0);
    status(
      `${title}: ${(p.elapsedMs / 1000).toFixed(0).padStart(3)}/${(p.durationMs / 1000).toFixed(0)} s` +
        (o
          ? `  p50 ${o.p50.toFixed(0)} p95 ${o.p95.toFixed(0)} p99 ${o.p99.toFixed(0)} ms`
          : '  no frames yet') +
        `  ${kbps.toFixed(0)} kbit/s  loss ${loss.toFixed(1)} %  freezes ${freezes}`,
    );
  };
  const close = async () => {
    await pending;
    app?.unmount();
    app = undefined;
  };
  return { onProgress, close };
}

/** First Ctrl-C: stop measuring and report; a second: exit at once. */
function interruptible(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) {
      status(`${sig} again: exiting now`);
      process.exit(130);
    }
    status(`${sig}: stopping early; reporting what was measured (again to force)`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function openStore(data: string, save: boolean): BenchStore | undefined {
  return save ? BenchStore.open(data) : undefined;
}

function saveRun(store: BenchStore | undefined, r: BenchResult): void {
  const main = r.endToEnd ?? r.transit;
  store?.save({
    id: r.id,
    kind: 'run',
    startedAt: Date.parse(r.startedAt),
    profile: r.profile.name,
    mode: r.settings.mode,
    sessions: r.settings.sessions,
    durationMs: r.settings.durationMs,
    p50Ms: main?.p50 ?? null,
    p95Ms: main?.p95 ?? null,
    p99Ms: main?.p99 ?? null,
    targetMs: r.verdict.targetMs,
    pass: r.verdict.pass,
    result: r,
  });
}

interface RunFlags {
  profile: string;
  sessions?: string;
  duration?: string;
  warmup?: string;
  bitrate?: string;
  browser?: boolean;
  audio: boolean;
  simulcast: boolean;
  backupPicture: boolean;
  node?: string;
  token?: string;
  spawn?: string;
  direct?: boolean;
  seed?: string;
  repeat?: string;
  target?: string;
  allowance?: string;
  impair: string;
  report?: string | false;
  data: string;
  save: boolean;
  json?: boolean;
}

interface CapacityFlags {
  profile: string;
  steps: string;
  viewers: string;
  server: string;
  stepDuration: string;
  bitrate?: string;
  p99Limit: string;
  cpuLimit: string;
  baseline: boolean;
  data: string;
  save: boolean;
  json?: boolean;
}

interface ProbeFlags {
  node: string;
  token?: string;
  case?: string;
  count: string;
  interval: string;
  through?: string;
  data: string;
  save: boolean;
  json?: boolean;
}

export function registerBenchCommands(program: Command): void {
  const bench = program
    .command('bench')
    .description('measure latency and loss resilience against the 600 ms target');

  bench
    .command('profiles')
    .description('list the built-in network profiles (configs/profiles)')
    .option('--json', 'print a versioned JSON object')
    .action((f: { json?: boolean }) => {
      const profiles = builtinProfiles();
      if (f.json) {
        printJson({ profiles });
        return;
      }
      out(
        table(
          [
            'name',
            'buyer up',
            'buyer down',
            'staff up',
            'staff down',
            'video',
            'goals (besides p95)',
            'description',
          ],
          profiles.map((p) => [
            p.name,
            describeDirection(p.buyer.up),
            describeDirection(p.buyer.down),
            describeDirection(p.staff.up),
            describeDirection(p.staff.down),
            `${p.bitrateKbps}k`,
            describeGoals(p) || '-',
            p.description,
          ]),
        ),
      );
      out('');
      out(
        'A path to your own YAML file works wherever a profile name does (see configs/profiles/lan.yaml).',
      );
    });

  bench
    .command('run')
    .description('run inspection calls through impaired links and measure them against the target')
    .requiredOption(
      '-p, --profile <names>',
      'network profile name(s), comma-separated, or a YAML file (bench profiles lists them)',
    )
    .option(
      '-n, --sessions <n>',
      'concurrent calls (one buyer publishing, one staff viewer each)',
      '1',
    )
    .option('--duration <d>', 'how long to measure, per profile', '60s')
    .option(
      '--warmup <d>',
      'frames sent in the first part are not measured (default: a fifth, at most 2s)',
    )
    .option(
      '--bitrate <kbps>',
      "video bitrate (default: the profile's; --browser: the most the buyer may send, default the node's buyer ceiling)",
    )
    .option('--browser', 'headless Chromium as buyer and staff: true camera-to-screen latency')
    .option('--no-audio', 'browser mode: the buyer sends video only (no Opus track)')
    .option(
      '--no-simulcast',
      "browser mode: the buyer sends one video layer (default: the buyer page's simulcast layers)",
    )
    .option(
      '--no-backup-picture',
      "browser mode: the staff page receives one picture (default: as the product's staff page, also the buyer's lowest layer, shown while the main picture stands still)",
    )
    .option('--node <url>', 'measure a running node (default: start one in this process)')
    .option(
      '--token <token>',
      'admin token for --node (default: RETURNCAM_ADMIN_TOKEN, or DATA/admin.token)',
    )
    .option('--spawn <how>', 'without --node: in-process (default) or process (a child process)')
    .option(
      '--direct',
      'no node: the clients connect to each other through the relays (the harness floor)',
    )
    .option('--seed <n>', 'seed of the impairment randomness (same seed, same packet fates)', '1')
    .option(
      '--repeat <n>',
      'runs of each profile, seeds --seed, --seed+1, ...; each goal is then judged on the median run',
      '1',
    )
    .option('--target <d>', 'the one-way latency target, p95', `${DEFAULT_TARGET_MS}ms`)
    .option(
      '--allowance <d>',
      'added to synthetic transit before the verdict: capture+encode, jitter buffer, decode+render, which synthetic clients do not have',
      `${DEFAULT_ALLOWANCE_MS}ms`,
    )
    .option(
      '--impair <how>',
      'relay: userspace UDP relay per client, no root (netns is not supported yet)',
      'relay',
    )
    .option('--report <file>', 'HTML report (default: DATA/bench/<id>.html)')
    .option('--no-report', 'write no HTML report')
    .option('-d, --data <dir>', 'data directory: results are kept in its database', './data')
    .option('--no-save', 'do not keep the result for bench list / bench compare')
    .option('--json', 'print a versioned JSON object')
    .addHelpText(
      'after',
      `
Exit codes: 0 every run met its goals, ${EXIT_TARGET_MISSED} a run missed one (p95 over the target, no frame arrived, or a
goal of the profile missed), 1 an error, 2 a usage error. CI can gate on it:
  returncam bench run --profile 3g-cross-border --duration 30s
With --repeat N, each goal is judged over the N runs of a profile instead: met when at least half of the runs
that measured it met it (the median run). On a lossy profile one run says little: the same build's freeze
ratio on 3g-cross-border ranged from 0 % to 10 % between single 40 s runs.
  returncam bench run --profile 3g-cross-border --browser --duration 40s --repeat 8

Goals besides the p95 target come from the profile's goals section and are printed PASS / MISS / - (not measured
in this run, which does not fail it): ramp (browser: the buyer's send rate reaches 90 % of the ceiling), settle
and collapse (browser: where the send rate sits after the ramp), freezeRatio (frozen / measured time at the
viewer), recovery (video back after an outage; 1s by default when the profile has outages).

Synthetic clients (the default) measure transit: the buyer sends a frame's first packet -> staff have all of it,
after loss repair, at the fixed --bitrate. The verdict adds --allowance for what they do not have. --browser
measures camera to screen, and Chrome chooses its own send rate up to the node's buyer ceiling (or --bitrate).`,
    )
    .action(async (f: RunFlags) => {
      impairFlag(f.impair);
      const profiles = profilesFlag(f.profile);
      if (profiles.length === 0) throw new UserError('--profile names no profile');
      const options = {
        sessions: intFlag('--sessions', f.sessions, 1, 1, 500),
        durationMs: durationFlag('--duration', f.duration, 60_000),
        warmupMs: f.warmup !== undefined ? durationFlag('--warmup', f.warmup, 0) : undefined,
        bitrateKbps:
          f.bitrate !== undefined ? intFlag('--bitrate', f.bitrate, 600, 50, 20_000) : undefined,
        node: nodeChoice(f),
        browser: f.browser ?? false,
        browserAudio: f.audio,
        browserSimulcast: f.simulcast,
        browserBackup: f.backupPicture,
        seed: intFlag('--seed', f.seed, 1, 0, 2 ** 31),
        targetMs: durationFlag('--target', f.target, DEFAULT_TARGET_MS),
        allowanceMs: f.browser ? 0 : durationFlag('--allowance', f.allowance, DEFAULT_ALLOWANCE_MS),
      };
      if (options.durationMs < 3000) throw new UserError('--duration must be at least 3s');
      const repeat = intFlag('--repeat', f.repeat, 1, 1, MAX_REPEAT);
      if (options.seed + repeat - 1 > 2 ** 31) {
        throw new UserError(`--seed plus --repeat runs past ${2 ** 31}: give a lower --seed`);
      }
      const store = openStore(f.data, f.save);
      const { signal, dispose } = interruptible();
      const results: BenchResult[] = [];
      try {
        runs: for (const profile of profiles) {
          for (let i = 0; i < repeat; i++) {
            const seed = options.seed + i;
            const title = `bench ${profile.name}: ${options.sessions} session${options.sessions > 1 ? 's' : ''}${options.browser ? ', browser' : ''}${repeat > 1 ? `, run ${i + 1} of ${repeat} (seed ${seed})` : ''}`;
            const view = progressView(title);
            let r: BenchResult | undefined;
            try {
              [r] = await runProfiles([profile], {
                ...options,
                seed,
                signal,
                onProgress: view.onProgress,
              });
            } finally {
              await view.close();
            }
            if (!r) break runs;
            results.push(r);
            saveRun(store, r);
            if (!f.json) {
              out(renderRunText(r));
              out('');
            }
            if (signal.aborted) break runs;
          }
        }
      } finally {
        dispose();
        store?.close();
      }
      let reportFile: string | undefined;
      if (f.report !== false && results.length > 0) {
        reportFile = resolve(
          typeof f.report === 'string' ? f.report : join(f.data, 'bench', `${results[0]!.id}.html`),
        );
        writeHtmlReport(reportFile, results);
      }
      const repeats = repeat > 1 ? summarizeRepeats(results) : undefined;
      if (f.json) {
        printJson({
          kind: 'runs',
          runs: results,
          ...(repeats ? { repeats } : {}),
          report: reportFile ?? null,
        });
      } else {
        if (results.length > 1) out(renderSummaryTable(results));
        if (repeats) {
          out('');
          out(renderRepeatText(repeats));
        }
        if (reportFile) status(`report: ${reportFile}`);
        if (store)
          status(`kept as ${results.map((r) => r.id).join(', ')} (bench list, bench compare)`);
      }
      const missed = repeats ? repeats.some((s) => !s.pass) : results.some((r) => !r.verdict.pass);
      if (missed) process.exitCode = EXIT_TARGET_MISSED;
    });

  bench
    .command('capacity')
    .description(
      "ramp sessions until the node's forwarding time or CPU passes a limit; sessions per core",
    )
    .option('-p, --profile <name>', 'network profile of every session', 'lan')
    .option('--steps <list>', 'session counts to try, in order', '1,2,4,8,12,16,24,32')
    .option('--viewers <n>', 'staff viewers per session (one publisher each)', '1')
    .option(
      '--server <list>',
      "what carries the load, comma-separated, each step in turn: node, janus (Janus VideoRoom from Debian's janus package)",
      'node',
    )
    .option('--step-duration <d>', 'how long each step measures', '15s')
    .option('--bitrate <kbps>', "video bitrate per session (default: the profile's)")
    .option('--p99-limit <d>', 'stop when the node adds more than this at p99', '50ms')
    .option('--cpu-limit <percent>', 'stop when the node uses more than this % of one core', '90')
    .option('--no-baseline', 'skip the no-node step before each node step')
    .option('-d, --data <dir>', 'data directory: results are kept in its database', './data')
    .option('--no-save', 'do not keep the result')
    .option('--json', 'print a versioned JSON object')
    .addHelpText(
      'after',
      '\nEach step starts a fresh `returncam node start` child process (or Janus, with --server janus), so its CPU and\nmemory are measured apart from the clients and relays. The "no server" rows are the harness floor on this machine.\nCompare with Janus in one sitting:  returncam bench capacity --server node,janus --steps 10,25 --viewers 2 --step-duration 30s',
    )
    .action(async (f: CapacityFlags) => {
      const steps = f.steps.split(',').map((s) => intFlag('--steps', s.trim(), 1, 1, 1000));
      if (steps.some((s, i) => i > 0 && s <= steps[i - 1]!)) {
        throw new UserError('--steps must be increasing, e.g. 1,2,4,8');
      }
      const cpu = Number(f.cpuLimit);
      if (!(cpu > 0 && cpu <= 1000))
        throw new UserError(`--cpu-limit must be a percentage (got ${f.cpuLimit})`);
      const store = openStore(f.data, f.save);
      const { signal, dispose } = interruptible();
      const view = progressView('bench capacity');
      let result: CapacityResult;
      try {
        result = await runCapacity({
          profile: resolveProfile(f.profile),
          steps,
          stepDurationMs: durationFlag('--step-duration', f.stepDuration, 15_000),
          bitrateKbps:
            f.bitrate !== undefined ? intFlag('--bitrate', f.bitrate, 600, 50, 20_000) : undefined,
          p99LimitMs: durationFlag('--p99-limit', f.p99Limit, 50),
          cpuLimitPercent: cpu,
          viewers: intFlag('--viewers', f.viewers, 1, 1, 50),
          servers: serversFlag(f.server),
          baseline: f.baseline,
          signal,
          onProgress: (p) => view.onProgress({ ...p, message: `${p.step}: ${p.message}` }),
          onStep: (s) => {
            if (!interactive())
              status(
                `capacity: ${s.sessions}×${s.viewers} ${s.mode === 'baseline' ? 'without a server' : `via ${s.server ?? s.mode}`}: transit p50/p95/p99 ${s.transit ? `${s.transit.p50.toFixed(1)}/${s.transit.p95.toFixed(1)}/${s.transit.p99.toFixed(1)}` : '-'} ms, server-added p99 ${s.nodeAdded?.p99.toFixed(2) ?? '-'} ms${s.nodeCpuPerSessionPercent !== undefined ? `, CPU ${s.nodeCpuPerSessionPercent.toFixed(2)} %/session` : ''}${s.nodeRssBytes ? `, RSS ${(s.nodeRssBytes / 1048576).toFixed(0)} MB` : ''}, ${s.framesLost} frames lost`,
              );
          },
        });
      } finally {
        await view.close();
        dispose();
      }
      store?.save({
        id: result.id,
        kind: 'capacity',
        startedAt: Date.parse(result.startedAt),
        profile: result.profile,
        mode: 'capacity',
        sessions: result.maxSessions,
        durationMs: result.stepDurationMs,
        p50Ms: null,
        p95Ms: null,
        p99Ms: result.steps.find((s) => s.sessions === result.maxSessions)?.nodeAdded?.p99 ?? null,
        targetMs: null,
        pass: null,
        result,
      });
      store?.close();
      if (f.json) printJson({ ...result });
      else out(renderCapacityText(result));
    });

  registerSoakAndStartup(bench);

  bench
    .command('probe')
    .description(
      'round trip, jitter and loss to a node, with data-channel pings over its media path',
    )
    .requiredOption('--node <url>', 'the node to probe, e.g. http://10.0.0.5:8080')
    .option(
      '--token <token>',
      'admin token (default: RETURNCAM_ADMIN_TOKEN, or DATA/admin.token), or a case link token with --case',
    )
    .option('--case <id>', 'probe with a case link token (--token) instead of the admin token')
    .option('--count <n>', 'pings', '200')
    .option('--interval <d>', 'time between pings', '20ms')
    .option(
      '--through <profile[:leg]>',
      "impair the probe through the relay as this profile's leg (buyer or staff; default buyer)",
    )
    .option('-d, --data <dir>', 'data directory: admin token and kept results', './data')
    .option('--no-save', 'do not keep the result')
    .option('--json', 'print a versioned JSON object')
    .action(async (f: ProbeFlags) => {
      let token = f.token ?? process.env.RETURNCAM_ADMIN_TOKEN;
      if (!token && !f.case) {
        const file = join(resolve(f.data), 'admin.token');
        if (!existsSync(file)) {
          throw new UserError(
            `no token: pass --token (admin, or a case link token with --case), set RETURNCAM_ADMIN_TOKEN, or run where the node's data directory is (looked for ${file})`,
          );
        }
        token = readFileSync(file, 'utf8').trim();
      }
      let through: { profile: NetworkProfile; leg: LegName } | undefined;
      if (f.through) {
        const [name, leg = 'buyer'] = f.through.split(':');
        if (leg !== 'buyer' && leg !== 'staff')
          throw new UserError(`--through leg must be buyer or staff (got ${leg})`);
        through = { profile: resolveProfile(name!), leg };
      }
      const { signal, dispose } = interruptible();
      let result: ProbeResult;
      try {
        result = await runProbe({
          nodeUrl: f.node,
          token,
          caseId: f.case,
          count: intFlag('--count', f.count, 200, 1, 100_000),
          intervalMs: durationFlag('--interval', f.interval, 20),
          through,
          signal,
          onProgress: (p) => {
            if (p.sent % 50 === 0 && !f.json)
              status(
                `probe: ${p.sent} sent, ${p.received} back${p.lastRttMs !== undefined ? `, last ${p.lastRttMs.toFixed(1)} ms` : ''}`,
              );
          },
        });
      } finally {
        dispose();
      }
      const store = openStore(f.data, f.save);
      store?.save({
        id: result.id,
        kind: 'probe',
        startedAt: Date.parse(result.startedAt),
        profile: result.path,
        mode: 'probe',
        sessions: 1,
        durationMs: null,
        p50Ms: result.rttMs?.p50 ?? null,
        p95Ms: result.rttMs?.p95 ?? null,
        p99Ms: result.rttMs?.p99 ?? null,
        targetMs: null,
        pass: null,
        result,
      });
      store?.close();
      if (f.json) {
        printJson({ ...result });
        return;
      }
      const r = result.rttMs;
      out(
        `probe ${result.id}: ${result.node} (${result.path}), connected in ${result.connectMs.toFixed(0)} ms`,
      );
      out(
        `  round trip  p50 ${r?.p50.toFixed(1) ?? '-'}  p95 ${r?.p95.toFixed(1) ?? '-'}  p99 ${r?.p99.toFixed(1) ?? '-'}  max ${r?.max.toFixed(1) ?? '-'} ms`,
      );
      out(
        `  jitter      ${result.jitterMs.toFixed(1)} ms (RFC 3550 estimator over successive round trips)`,
      );
      out(
        `  loss        ${(result.lossRatio * 100).toFixed(1)} % (${result.sent - result.received} of ${result.sent} pings), ${result.reordered} reordered`,
      );
    });

  bench
    .command('list')
    .description('results kept in the data directory')
    .option('-p, --profile <name>', 'only this profile')
    .option('--kind <kind>', 'run, capacity or probe')
    .option('--limit <n>', 'how many, newest first', '20')
    .option('-d, --data <dir>', 'data directory', './data')
    .option('--json', 'print a versioned JSON object')
    .action(
      (f: { profile?: string; kind?: string; limit: string; data: string; json?: boolean }) => {
        if (f.kind && !['run', 'capacity', 'probe'].includes(f.kind)) {
          throw new UserError(`--kind must be run, capacity or probe (got ${f.kind})`);
        }
        const store = BenchStore.open(f.data);
        try {
          const rows = store.list({
            profile: f.profile,
            kind: f.kind as 'run' | undefined,
            limit: intFlag('--limit', f.limit, 20, 1, 10_000),
          });
          if (f.json) {
            printJson({ results: rows });
            return;
          }
          const n = (v: number | null) =>
            v === null ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1);
          out(
            table(
              [
                'id',
                'kind',
                'started',
                'profile',
                'mode',
                'sessions',
                'p50',
                'p95',
                'p99',
                'verdict',
              ],
              rows.map((r) => [
                r.id,
                r.kind,
                time(r.startedAt),
                r.profile ?? '-',
                r.mode ?? '-',
                r.sessions === null ? '-' : String(r.sessions),
                n(r.p50Ms),
                n(r.p95Ms),
                n(r.p99Ms),
                r.pass === null ? '-' : r.pass ? 'PASS' : 'FAIL',
              ]),
            ),
          );
        } finally {
          store.close();
        }
      },
    );

  bench
    .command('compare')
    .description('kept runs side by side: two runs, or two sets (before/after) paired by profile')
    .argument(
      '<a>',
      'the baseline: a run id (bench list; a unique prefix), ids joined by commas, or a --json file',
    )
    .argument('<b>', 'what to compare with it, the same way')
    .option('-d, --data <dir>', 'data directory', './data')
    .option('--json', 'print a versioned JSON object')
    .addHelpText(
      'after',
      `
With one run on each side: every figure with its change, and each goal's PASS / MISS. With several (a --json file
from a multi-profile bench run, or ids joined by commas): one before/after table, runs paired by profile.
Several runs of one profile on a side (bench run --repeat) show as their medians, with the median run's verdict.
  returncam bench run --browser --profile lan,3g-uplink,3g-cross-border,outage --json > before.json
  (change the node)
  returncam bench run --browser --profile lan,3g-uplink,3g-cross-border,outage --json > after.json
  returncam bench compare before.json after.json
  returncam bench run --browser --profile 3g-cross-border --repeat 8 --json > before.json   (and after)`,
    )
    .action((a: string, b: string, f: { data: string; json?: boolean }) => {
      const store = BenchStore.open(f.data);
      const load = (ref: string): BenchResult[] => {
        if (ref.endsWith('.json')) {
          if (!existsSync(ref)) throw new UserError(`no such file ${ref}`);
          let doc: { runs?: unknown[] };
          try {
            doc = JSON.parse(readFileSync(ref, 'utf8')) as { runs?: unknown[] };
          } catch {
            throw new UserError(`${ref} is not JSON (bench run --json writes what compare reads)`);
          }
          return Array.isArray(doc.runs)
            ? doc.runs.map((r, i) => asRunResult(r, `${ref} run ${i + 1}`))
            : [asRunResult(doc, ref)];
        }
        return ref
          .split(',')
          .map((id) => id.trim())
          .filter(Boolean)
          .map((id) => {
            const found = store.get(id);
            if (!found)
              throw new UserError(
                `no kept result ${id} in ${resolve(f.data)} (bench list shows them)`,
              );
            return asRunResult(found.result, id);
          });
      };
      try {
        const [runsA, runsB] = [load(a), load(b)];
        if (runsA.length === 0 || runsB.length === 0)
          throw new UserError('compare needs at least one run on each side');
        if (runsA.length === 1 && runsB.length === 1) {
          const comparison = compareRuns(runsA[0]!, runsB[0]!);
          if (f.json) printJson({ ...comparison });
          else out(renderComparison(comparison));
          return;
        }
        const sets = compareSets(runsA, runsB);
        if (f.json) printJson({ ...sets });
        else out(renderSetComparison(sets));
      } finally {
        store.close();
      }
    });
}

interface SoakFlags {
  duration: string;
  sessions: string;
  viewers: string;
  churn: string;
  sample: string;
  settle?: string;
  limit: string;
  bitrate: string;
  json?: boolean;
}

/** `bench soak` and `bench startup`: the node over time, and the node's start. */
function registerSoakAndStartup(bench: Command): void {
  bench
    .command('soak')
    .description(
      'keep calls coming and going through a node for a long time; fail if its memory or handles grow',
    )
    .option('--duration <d>', 'how long', '30m')
    .option('-n, --sessions <n>', 'calls kept up at once', '4')
    .option('--viewers <n>', 'staff viewers per call', '1')
    .option('--churn <d>', 'one call ends and a new one starts this often', '5s')
    .option('--sample <d>', 'time between samples of RSS, heap and file descriptors', '10s')
    .option(
      '--settle <d>',
      'warm-up before the first settled sample (default: a fifth, at most 2m)',
    )
    .option(
      '--limit <percent>',
      'largest acceptable growth from the settled sample to the end',
      '10',
    )
    .option('--bitrate <kbps>', 'video bitrate per call', '600')
    .option('--json', 'print a versioned JSON object')
    .addHelpText(
      'after',
      `\nStarts a \`returncam node start\` child process. Exit codes: 0 no growth over the limit, ${EXIT_TARGET_MISSED} growth over the limit\n(or a call that failed or saw no media), 1 an error, 2 a usage error.`,
    )
    .action(async (f: SoakFlags) => {
      const limit = Number(f.limit);
      if (!(limit > 0 && limit <= 1000))
        throw new UserError(`--limit must be a percentage above 0 (got ${f.limit})`);
      const durationMs = durationFlag('--duration', f.duration, 30 * 60_000);
      const { runSoak, renderSoakText } = await import('../../bench/soak.ts');
      const { signal, dispose } = interruptible();
      try {
        const result = await runSoak({
          durationMs,
          sessions: intFlag('--sessions', f.sessions, 4, 1, 200),
          viewers: intFlag('--viewers', f.viewers, 1, 1, 50),
          churnMs: durationFlag('--churn', f.churn, 5000),
          sampleMs: durationFlag('--sample', f.sample, 10_000),
          settleMs: f.settle !== undefined ? durationFlag('--settle', f.settle, 0) : undefined,
          growthLimit: limit / 100,
          bitrateKbps: intFlag('--bitrate', f.bitrate, 600, 50, 20_000),
          signal,
          onSample: (s, st) => {
            if (!f.json)
              status(
                `soak ${s.t.toFixed(0)} s: RSS ${(s.rssBytes / 1048576).toFixed(1)} MB, heap ${s.heapUsedBytes !== undefined ? (s.heapUsedBytes / 1048576).toFixed(1) : '-'} MB, ${s.fds ?? '-'} fds, ${st.live} calls up (${st.started} started, ${st.ended} ended)`,
              );
          },
        }).catch((err: unknown) => {
          if (err instanceof Error && err.message.startsWith('soak:'))
            throw new UserError(err.message);
          throw err;
        });
        if (f.json) printJson({ ...result });
        else out(renderSoakText(result));
        if (!result.pass) process.exitCode = EXIT_TARGET_MISSED;
      } finally {
        dispose();
      }
    });

  bench
    .command('packet')
    .description(
      "what one packet's SRTP, UDP send and UDP receive cost the node, in isolation: native addon against Node's own paths",
    )
    .option('--packets <n>', 'packets per pass', '20000')
    .option('--passes <n>', 'passes per path and size (the median is reported)', '7')
    .option('--json', 'print a versioned JSON object')
    .action(async (f: { packets: string; passes: string; json?: boolean }) => {
      const { runPacketBench, renderPacketText } = await import('../../bench/packet.ts');
      const result = await runPacketBench({
        packets: intFlag('--packets', f.packets, 20_000, 100, 200_000),
        passes: intFlag('--passes', f.passes, 7, 1, 101),
      });
      if (f.json) printJson({ ...result });
      else out(renderPacketText(result));
    });

  bench
    .command('startup')
    .description('time `returncam node start` from spawn to the first 200 on /healthz')
    .option('--repeat <n>', 'fresh node processes to time', '10')
    .option('--warm', 'reuse one data directory (a restart) instead of a fresh one per start')
    .option('--json', 'print a versioned JSON object')
    .action(async (f: { repeat: string; warm?: boolean; json?: boolean }) => {
      const { runStartup, renderStartupText } = await import('../../bench/startup.ts');
      const result = await runStartup({
        repetitions: intFlag('--repeat', f.repeat, 10, 1, 1000),
        warmData: f.warm ?? false,
        onSample: (s, i) => {
          if (!f.json) status(`startup ${i + 1}: /healthz after ${s.healthzMs.toFixed(0)} ms`);
        },
      });
      if (f.json) printJson({ ...result });
      else out(renderStartupText(result));
    });
}
