import { writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { loadNodeConfig } from '../../core/config.ts';
import { verifyBundle } from '../../node/evidence/BundleVerifier.ts';
import { toCsv, toNdjson } from '../../node/evidence/caseRows.ts';
import { CHANNEL_IDS, CHANNELS, type ChannelId } from '../../node/evidence/channels.ts';
import { EvidenceKey } from '../../node/evidence/EvidenceKey.ts';
import { LocalEvidence } from '../../node/evidence/LocalEvidence.ts';
import { parsePointInTime } from '../../node/evidence/period.ts';
import { out, printJson, status, table } from '../output.ts';

interface DataFlags {
  data: string;
  config?: string;
  json?: boolean;
}

function withDataFlags(cmd: Command): Command {
  return cmd
    .option('-d, --data <dir>', 'node data directory (on the node host)', './data')
    .option('-c, --config <file>', 'node config (for node.id and recording settings)');
}

/** Opens the data directory as the node's config describes it (node id, retention). */
export function openEvidence(f: DataFlags): LocalEvidence {
  const config = loadNodeConfig({ file: f.config, overrides: { node: { dataDir: f.data } } });
  return new LocalEvidence({
    dataDir: config.node.dataDir,
    nodeId: config.node.id,
    retentionDays: config.recording.retentionDays,
  });
}

/** `--since`, `--until`, `--warehouse` as a case filter. */
export function caseFilter(f: { since?: string; until?: string; warehouse?: string }) {
  const now = Date.now();
  return {
    since: f.since ? parsePointInTime(f.since, '--since', now) : undefined,
    until: f.until ? parsePointInTime(f.until, '--until', now) : undefined,
    warehouseId: f.warehouse,
  };
}

function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

function size(bytes: number): string {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

export function registerExportCommands(program: Command): void {
  const cmd = program
    .command('export')
    .description('evidence bundles for disputes, and case data for analysis');

  withDataFlags(
    cmd
      .command('case')
      .description(
        'write a signed evidence bundle (zip) of a case; --for also writes what a dispute channel takes',
      )
      .argument('<id>', 'case id')
      .option('-o, --out <file>', 'the zip to write (default: ./evidence-<id>.zip)')
      .addOption(
        new Option(
          '--for <channel>',
          'also write the files this channel accepts, within its limits',
        ).choices(CHANNEL_IDS),
      )
      .option('--by <name>', 'who exports (recorded in the timeline)', defaultActor())
      .option('--json', 'print a versioned JSON object'),
  ).action(async (id: string, f: DataFlags & { out?: string; for?: ChannelId; by: string }) => {
    const ev = openEvidence(f);
    try {
      const r = await ev.exportCase({
        caseId: id,
        out: resolve(f.out ?? `evidence-${id}.zip`),
        channel: f.for,
        by: f.by,
        onStep: (line) => {
          if (!f.json) status(line);
        },
      });
      for (const w of r.warnings) status(`warning: ${w}`);
      if (r.channel?.violations.length) {
        process.exitCode = 1;
        for (const v of r.channel.violations)
          status(`${CHANNELS[r.channel.channel as ChannelId].name}: ${v}`);
      }
      if (f.json) {
        const { manifest, ...rest } = r;
        printJson({ ...rest, files: manifest.files, eventLog: manifest.eventLog });
        return;
      }
      out(`wrote ${r.file} (${size(r.bytes)}, ${r.manifest.files.length} files)`);
      out(`sha256   ${r.sha256}`);
      out(`manifest ${r.manifestSha256} (signed, key ${r.manifest.node.keyId})`);
      out(
        `timeline head #${r.manifest.eventLog.headSeq} ${r.manifest.eventLog.headHash}; export recorded as event #${r.eventSeq}`,
      );
      if (r.channel) {
        const ch = CHANNELS[r.channel.channel as ChannelId];
        out('');
        out(`for ${ch.name} (in ${r.channel.dir}):`);
        out(
          table(
            ['FILE', 'TYPE', 'SIZE', 'PAGES'],
            r.channel.files.map((x) => [
              x.name,
              x.mime,
              size(x.bytes),
              x.pages === undefined ? '-' : String(x.pages),
            ]),
          ),
        );
        out(
          r.channel.violations.length
            ? `DOES NOT FIT ${ch.name}'s limits`
            : `within ${ch.name}'s limits (stills ≤ ${r.channel.stillMaxWidth} px, JPEG q${r.channel.stillQuality})`,
        );
        if (r.channel.trimmed) out(`note: ${r.channel.trimmed}`);
      }
    } finally {
      ev.close();
    }
  });

  cmd
    .command('verify')
    .description(
      "check a bundle's hashes, signature and event chain; exit 1 naming what was altered, missing or added",
    )
    .argument('<file>', 'the evidence bundle (zip)')
    .option('--key <pem>', "the node's public key (evidence.pub); default: the keys in --data")
    .option('-d, --data <dir>', 'node data directory whose evidence keys to trust', './data')
    .option('--json', 'print a versioned JSON object')
    .action(async (file: string, f: { key?: string; data: string; json?: boolean }) => {
      const keys = f.key
        ? [EvidenceKey.fromPublicFile(f.key)]
        : EvidenceKey.trustedKeys(resolve(f.data));
      const keySource = f.key ? `--key ${f.key}` : `${resolve(f.data)}/evidence.pub`;
      const r = await verifyBundle({ file: resolve(file), keys, keySource });
      if (!r.ok) process.exitCode = 1;
      if (f.json) return printJson({ ...r });
      out(`bundle     ${r.file}`);
      if (r.caseId) out(`case       ${r.caseId} (order ${r.orderId})`);
      if (r.nodeId) out(`node       ${r.nodeId}, key ${r.keyId}`);
      out(
        `signature  ${r.signature === 'valid' ? `valid (key ${r.signedBy}, ${keySource})` : r.signature.toUpperCase()}`,
      );
      out(`files      ${r.files.listed} listed in the manifest, ${r.files.inZip} in the zip`);
      if (r.events)
        out(
          `timeline   ${r.events.count} events, chain ${r.events.chainIntact ? 'intact' : 'BROKEN'}, head #${r.events.headSeq} ${r.events.headHash}`,
        );
      for (const x of r.findings) out(`${x.kind.toUpperCase().padEnd(10)} ${x.message}`);
      out(
        r.ok
          ? 'OK: every file, the signature and the event chain hold'
          : `FAILED: ${r.findings.length} problem(s)`,
      );
    });

  withDataFlags(
    cmd
      .command('cases')
      .description(
        'one row per case for analysis: facts, durations, video, chat, reconnects, quality',
      )
      .option('--since <when>', 'cases created at or after (2026-04-01, an ISO time, or 30d back)')
      .option('--until <when>', 'cases created before (same forms)')
      .option('--warehouse <id>', 'only this warehouse')
      .addOption(
        new Option('--format <format>', 'output format')
          .choices(['csv', 'json', 'ndjson'])
          .makeOptionMandatory(),
      )
      .option('-o, --out <file>', 'write to a file instead of stdout'),
  ).action(
    (
      f: DataFlags & {
        since?: string;
        until?: string;
        warehouse?: string;
        format: 'csv' | 'json' | 'ndjson';
        out?: string;
      },
    ) => {
      const filter = caseFilter(f);
      const ev = openEvidence(f);
      let rows: ReturnType<LocalEvidence['caseRows']>;
      try {
        rows = ev.caseRows(filter);
      } finally {
        ev.close();
      }
      const text =
        f.format === 'csv'
          ? toCsv(rows)
          : f.format === 'ndjson'
            ? toNdjson(rows)
            : `${JSON.stringify(
                {
                  version: 1,
                  generatedAt: new Date().toISOString(),
                  filter: {
                    since: filter.since ? new Date(filter.since).toISOString() : null,
                    until: filter.until ? new Date(filter.until).toISOString() : null,
                    warehouse: filter.warehouseId ?? null,
                  },
                  cases: rows,
                },
                null,
                2,
              )}\n`;
      if (f.out) {
        writeFileSync(resolve(f.out), text);
        status(`wrote ${rows.length} case(s) to ${resolve(f.out)}`);
      } else {
        process.stdout.write(text);
      }
    },
  );
}
