import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { loadNodeConfig } from '../../core/config.ts';
import { UserError } from '../../core/errors.ts';
import { RecClient } from '../../node/client/RecClient.ts';
import { LocalRecordings, type RecordingOps } from '../../node/recording/LocalRecordings.ts';
import type { RecordingRecord } from '../../node/store/Store.ts';
import { out, printJson, status, table, time } from '../output.ts';
import { startProgress } from '../progress.ts';

interface RecFlags {
  data: string;
  node?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

/** Flags every rec command shares: the local data directory, or a node's admin API. */
function withRecFlags(cmd: Command): Command {
  return cmd
    .option('-d, --data <dir>', 'node data directory (on the node host)', './data')
    .option('--node <url>', 'ask a running node through its admin API instead of opening --data')
    .option(
      '--token <token>',
      'admin token for --node (default: RETURNCAM_ADMIN_TOKEN, or DATA/admin.token)',
    )
    .option('-c, --config <file>', 'node config (for recording.retentionDays with --data)')
    .option('--json', 'print a versioned JSON object');
}

function ops(f: RecFlags): RecordingOps {
  if (f.node)
    return new RecClient({
      node: f.node,
      token: f.token ?? process.env.RETURNCAM_ADMIN_TOKEN,
      dataDir: f.data,
    });
  const config = loadNodeConfig({ file: f.config, overrides: { node: { dataDir: f.data } } });
  return new LocalRecordings({ dataDir: f.data, retentionDays: config.recording.retentionDays });
}

async function run<T>(f: RecFlags, fn: (o: RecordingOps) => Promise<T>): Promise<T> {
  const o = ops(f);
  try {
    return await fn(o);
  } finally {
    o.close();
  }
}

function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

function mb(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function secs(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`;
}

function recStatus(r: RecordingRecord): string {
  return r.erasedAt !== null ? 'erased' : r.status;
}

function codecs(r: RecordingRecord): string {
  return r.tracks.map((t) => t.codec).join('+') || '-';
}

export function registerRecCommands(program: Command): void {
  const cmd = program
    .command('rec')
    .description('recordings: list, verify, transcode, retention, legal hold, erasure');

  withRecFlags(
    cmd
      .command('list')
      .description('list recordings, newest first')
      .option('--case <id>', 'only this case'),
  ).action(async (f: RecFlags & { case?: string }) => {
    const recordings = await run(f, (o) => o.list(f.case));
    if (f.json) return printJson({ recordings });
    if (!recordings.length) {
      out(f.case ? `case ${f.case} has no recordings` : 'no recordings yet');
      return;
    }
    out(
      table(
        ['RECORDING', 'CASE', 'ROLE', 'STARTED (UTC)', 'LENGTH', 'SIZE', 'CODECS', 'STATUS'],
        recordings.map((r) => [
          r.id,
          r.caseId,
          r.role,
          time(r.startedAt),
          secs(r.durationMs),
          mb(r.bytes),
          codecs(r),
          recStatus(r),
        ]),
      ),
    );
  });

  withRecFlags(
    cmd
      .command('show')
      .description('one recording: tracks, length, hashes')
      .argument('<id>', 'recording id'),
  ).action(async (id: string, f: RecFlags) => {
    const r = await run(f, (o) => o.show(id));
    if (f.json) return printJson({ recording: r });
    out(`recording   ${r.id}`);
    out(`case        ${r.caseId} (${r.role}, session ${r.sessionId})`);
    out(`status      ${recStatus(r)}${r.note ? ` (${r.note})` : ''}`);
    out(`started     ${new Date(r.startedAt).toISOString()}`);
    out(`ended       ${r.endedAt ? new Date(r.endedAt).toISOString() : '-'}`);
    out(`length      ${secs(r.durationMs)}`);
    out(`file        ${r.path} (${r.container}, ${mb(r.bytes)})`);
    out(`sha256      ${r.sha256 ?? '-'}`);
    if (r.originalPath) {
      out(`original    ${r.originalPath} (as the crash left it)`);
      out(`sha256      ${r.originalSha256 ?? '-'}`);
    }
    if (r.erasedAt) out(`erased      ${time(r.erasedAt)}`);
    out('');
    out(
      table(
        ['TRACK', 'KIND', 'CODEC', 'FRAMES', 'KEYFRAMES', 'SIZE', 'LOST', 'SKIPPED'],
        r.tracks.map((t) => [
          String(t.number),
          t.kind,
          t.codec,
          String(t.frames ?? '-'),
          String(t.keyframes ?? '-'),
          t.width ? `${t.width}x${t.height}` : '-',
          String(t.framesLost ?? '-'),
          String(t.framesSkipped ?? '-'),
        ]),
      ),
    );
  });

  withRecFlags(
    cmd
      .command('verify')
      .description('re-hash and decode recordings; exit 1 when anything is damaged')
      .argument('[id]', 'recording id')
      .option('--all', 'every recording'),
  ).action(async (id: string | undefined, f: RecFlags & { all?: boolean }) => {
    if (!id && !f.all) throw new UserError('name a recording id, or pass --all');
    if (id && f.all) throw new UserError('pass a recording id or --all, not both');
    const progress = await startProgress('verifying', { quiet: f.json });
    const results = await run(f, (o) =>
      o.verify(id ? [id] : 'all', (r, i, n) => {
        progress.update(
          (i + 1) / n,
          `verified ${i + 1}/${n} ${r.id}: ${r.skipped ? `skipped (${r.skipped})` : r.ok ? 'ok' : 'DAMAGED'}`,
        );
      }),
    ).finally(() => progress.done());
    const damaged = results.filter((r) => !r.ok);
    if (damaged.length) process.exitCode = 1;
    if (f.json) return printJson({ ok: damaged.length === 0, results });
    for (const r of results) {
      if (r.skipped) out(`skip     ${r.id} (${r.skipped})`);
      else if (r.ok) out(`ok       ${r.id} sha256 ${r.sha256}`);
      else for (const p of r.problems) out(`DAMAGED  ${r.id}: ${p}`);
    }
    out(
      damaged.length
        ? `${damaged.length} of ${results.length} recording(s) damaged`
        : `${results.length} recording(s) checked, none damaged`,
    );
  });

  withRecFlags(
    cmd
      .command('transcode')
      .description('write an MP4 (H.264/AAC) copy of a recording for any player')
      .argument('<id>', 'recording id')
      .addOption(new Option('--to <format>', 'output format').choices(['mp4']).default('mp4'))
      .option('-o, --out <file>', 'output file (default: ./<id>.mp4)'),
  ).action(async (id: string, f: RecFlags & { to: string; out?: string }) => {
    const output = resolve(f.out ?? `${id}.mp4`);
    const progress = await startProgress(`transcoding ${id}`, { quiet: f.json });
    const r = await run(f, (o) =>
      o.transcode(id, output, (fraction) => {
        progress.update(fraction, `transcoding ${id}: ${Math.floor(fraction * 10) * 10}%`);
      }),
    ).finally(() => progress.done());
    if (f.json) return printJson({ ...r });
    out(`wrote ${r.output} (${mb(r.bytes)}, ${secs(r.durationMs)})`);
  });

  withRecFlags(
    cmd
      .command('prune')
      .description(
        'apply retention: delete the media of cases closed longer ago than recording.retentionDays',
      )
      .option('--dry-run', 'only show what would be deleted')
      .option('--by <name>', 'who runs it (recorded in the timeline)', defaultActor()),
  ).action(async (f: RecFlags & { dryRun?: boolean; by: string }) => {
    const plans = await run(f, (o) =>
      o.prune({
        dryRun: Boolean(f.dryRun),
        by: f.by,
        onStep: (p) => {
          if (!f.json) status(`erased the media of case ${p.caseId}`);
        },
      }),
    );
    if (f.json) return printJson({ dryRun: Boolean(f.dryRun), cases: plans });
    if (!plans.length) {
      out('nothing to prune');
      return;
    }
    out(
      table(
        ['CASE', 'CLOSED (UTC)', 'RECORDINGS', 'SNAPSHOTS', 'SIZE'],
        plans.map((p) => [
          p.caseId,
          time(p.closedAt),
          String(p.recordings.length),
          String(p.snapshots),
          mb(p.bytes),
        ]),
      ),
    );
    const total = plans.reduce((n, p) => n + p.bytes, 0);
    out(
      f.dryRun
        ? `would delete ${mb(total)} from ${plans.length} case(s) (dry run)`
        : `deleted ${mb(total)} from ${plans.length} case(s)`,
    );
  });

  withRecFlags(
    cmd
      .command('hold')
      .description('put a case on legal hold: its media is never pruned or erased until released')
      .argument('<case>', 'case id')
      .requiredOption('--reason <text>', 'why (e.g. the dispute or court reference)')
      .option('--by <name>', 'who places the hold', defaultActor()),
  ).action(async (caseId: string, f: RecFlags & { reason: string; by: string }) => {
    const media = await run(f, (o) => o.hold(caseId, f.reason, f.by));
    if (f.json) return printJson({ media });
    out(`case ${caseId} is on legal hold: ${media.holdReason}`);
  });

  withRecFlags(
    cmd
      .command('release')
      .description('release a legal hold')
      .argument('<case>', 'case id')
      .option('--reason <text>', 'why')
      .option('--by <name>', 'who releases it', defaultActor()),
  ).action(async (caseId: string, f: RecFlags & { reason?: string; by: string }) => {
    const media = await run(f, (o) => o.release(caseId, f.by, f.reason));
    if (f.json) return printJson({ media });
    out(`case ${caseId}: legal hold released`);
  });

  withRecFlags(
    cmd
      .command('erase')
      .description(
        "delete a case's media on request (the case and its timeline stay, marked erased)",
      )
      .argument('<case>', 'case id')
      .requiredOption('--reason <text>', 'why (e.g. the erasure request reference)')
      .option('--by <name>', 'who erases it', defaultActor()),
  ).action(async (caseId: string, f: RecFlags & { reason: string; by: string }) => {
    const r = await run(f, (o) => o.erase(caseId, f.reason, f.by));
    if (r.leftovers.length) {
      process.exitCode = 1;
      for (const l of r.leftovers) status(`could not delete ${l}`);
    }
    if (f.json) return printJson({ erased: r });
    out(
      `case ${caseId}: erased ${r.recordings.length} recording(s) and ${r.snapshots} snapshot(s), ${mb(r.bytes)} (timeline event #${r.eventSeq})`,
    );
    if (r.leftovers.length)
      out(`${r.leftovers.length} file(s) could not be deleted; run the erase again`);
  });
}
