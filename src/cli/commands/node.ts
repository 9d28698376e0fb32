import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { loadNodeConfig, type NodeConfigInput } from '../../core/config.ts';
import { UserError } from '../../core/errors.ts';
import { ensureDemoCase } from '../../node/cases/demo.ts';
import type { DeployResult, DeployStep } from '../../node/fleet/deploy.ts';
import { MediaNode } from '../../node/MediaNode.ts';
import { out, printJson, status, table } from '../output.ts';
import { defaultFleetFile } from './fleet.ts';
import { registerKeyCommand } from './key.ts';

interface StartFlags {
  config?: string;
  data?: string;
  port?: string;
  host?: string;
  demo?: boolean;
}

function portFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UserError(`--port must be a whole number 0-65535 (got ${v})`);
  return n;
}

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('run and manage a media node');

  node
    .command('start')
    .description('start a media node (HTTP, WHIP/WHEP, chat) and run until Ctrl-C')
    .option('-c, --config <file>', 'node config (YAML); see configs/node.example.yaml')
    .option('-d, --data <dir>', 'data directory (database, keys, recordings)')
    .option('-p, --port <n>', 'HTTP port (0 picks a free one)')
    .option('--host <addr>', 'address to listen on')
    .option('--demo', 'create (or reuse) a demo case and print its buyer and staff links')
    .action(async (flags: StartFlags) => {
      const overrides: NodeConfigInput = {};
      if (flags.data) overrides.node = { dataDir: flags.data };
      const port = portFlag(flags.port);
      if (port !== undefined || flags.host) overrides.http = { port, host: flags.host };
      const config = loadNodeConfig({ file: flags.config, overrides });
      // Handlers first: until a process listens for SIGINT the kernel's default (terminate at once)
      // applies, and a Ctrl-C right after the "listening" line would skip the clean shutdown.
      const shutdown = shutdownSignal();
      // Process-wide, before the heap has grown: V8 reads it each time it sets the next limit.
      const growth = config.media.heapGrowthPercent;
      if (growth > 0) setFlagsFromString(`--heap-growing-percent=${growth}`);
      const started = await MediaNode.start({ config });
      status(
        `returncam node ${config.node.id} listening on ${started.url} (data in ${config.node.dataDir})`,
      );
      if (flags.demo) {
        const demo = ensureDemoCase(started.cases);
        out('');
        out(
          `Demo case ${demo.caseId} (order ${demo.orderId}) is ready. Open each link in its own browser tab:`,
        );
        out(`  buyer (phone):   ${demo.buyerUrl}`);
        out(`  staff (desktop): ${demo.staffUrl}`);
        out('');
        out('Press Ctrl-C to stop the node.');
      }
      // the line scripts and tests wait on, last, with the real port when --port 0 was given
      out(`listening ${started.url}`);
      const sig = await shutdown;
      status(`${sig}: closing sessions and the database (again to force)`);
      await started.close();
      status('node stopped');
    });

  registerFleetNodeCommands(node);
  registerKeyCommand(node);
}

/** `node provision` and `node deploy`: one warehouse of the fleet file. */
function registerFleetNodeCommands(node: Command): void {
  node
    .command('provision')
    .description("render a warehouse host's config, secrets, systemd units and coturn config")
    .argument('<warehouse>', 'warehouse id from the fleet file')
    .option('-f, --fleet <file>', 'fleet file', defaultFleetFile())
    .option(
      '-o, --out <dir>',
      'write into DIR/WAREHOUSE/ (holds secrets: keep it out of git)',
      'provisioned',
    )
    .option(
      '--rotate',
      'replace every secret (links and TURN credentials already out stop working)',
    )
    .option('--show-secrets', 'print the secrets (they are never printed otherwise)')
    .option('--json', 'print a versioned JSON object')
    .action(
      async (
        id: string,
        f: { fleet: string; out: string; rotate?: boolean; showSecrets?: boolean; json?: boolean },
      ) => {
        // loaded here, not at the top: `node start` must not pay for the fleet tools
        const { findWarehouse, loadFleet } = await import('../../node/fleet/fleetConfig.ts');
        const { provisionWarehouse } = await import('../../node/fleet/provision.ts');
        const warehouse = findWarehouse(loadFleet(f.fleet), id);
        const r = provisionWarehouse({ warehouse, outDir: f.out, rotate: f.rotate });
        const secrets = Object.fromEntries(
          r.files
            .filter((x) => x.secret && x.name.startsWith('secrets/'))
            .map((x) => [x.name, x.content.trim()]),
        );
        if (f.json) {
          printJson({
            warehouse: id,
            dir: r.dir,
            files: r.files.map((x) => ({
              name: x.name,
              path: x.path,
              remote: x.remote,
              mode: `0${x.mode.toString(8)}`,
              action: x.action,
            })),
            ...(f.showSecrets ? { secrets } : {}),
          });
          return;
        }
        out(`provisioned ${id} into ${r.dir}`);
        out(
          table(
            ['FILE', 'MODE', 'ACTION', 'ON THE HOST'],
            r.files.map((x) => [
              x.name,
              `0${x.mode.toString(8)}`,
              x.action,
              x.remote + (x.systemdOnly ? ' (systemd)' : ''),
            ]),
          ),
        );
        if (f.showSecrets) {
          out('');
          for (const [name, value] of Object.entries(secrets)) out(`${name}:\n${value}\n`);
        } else {
          status('secrets are not printed (--show-secrets prints them)');
        }
        status(
          `next: returncam node deploy ${id}${f.fleet === defaultFleetFile() ? '' : ` --fleet ${f.fleet}`}${f.out === 'provisioned' ? '' : ` --out ${f.out}`}`,
        );
      },
    );

  node
    .command('deploy')
    .description(
      'install a release and the provisioned files on a warehouse host over ssh, then check it',
    )
    .argument('<warehouse>', 'warehouse id from the fleet file')
    .option('-f, --fleet <file>', 'fleet file', defaultFleetFile())
    .option(
      '-o, --out <dir>',
      'provisioned files (DIR/WAREHOUSE/; provisioned again, secrets kept)',
      'provisioned',
    )
    .option('-n, --dry-run', 'inspect the host and print the plan; change nothing')
    .option('--json', 'print a versioned JSON object')
    .action(
      async (id: string, f: { fleet: string; out: string; dryRun?: boolean; json?: boolean }) => {
        const { findWarehouse, loadFleet } = await import('../../node/fleet/fleetConfig.ts');
        const { DeployError, deployWarehouse } = await import('../../node/fleet/deploy.ts');
        const warehouse = findWarehouse(loadFleet(f.fleet), id);
        const line = (s: DeployStep) =>
          `${s.status.padEnd(7)} ${s.name}${s.ms >= 100 ? ` (${(s.ms / 1000).toFixed(1)} s)` : ''}: ${s.detail}`;
        let r: DeployResult;
        try {
          r = await deployWarehouse({
            warehouse,
            outDir: f.out,
            dryRun: f.dryRun,
            onStep: (s) => {
              if (!f.dryRun && !f.json) status(line(s));
            },
          });
        } catch (err) {
          if (err instanceof DeployError && f.json)
            printJson({
              warehouse: id,
              ok: false,
              failedStep: err.step,
              error: err.message,
              steps: err.steps,
            });
          if (err instanceof DeployError && f.dryRun && !f.json)
            for (const s of err.steps) out(line(s));
          throw err;
        }
        if (f.json) {
          printJson({ ok: true, ...r });
          return;
        }
        if (r.dryRun) {
          out(`plan for ${id} on ${r.target} (dry run: nothing was changed)`);
          for (const s of r.steps) out(line(s));
          return;
        }
        out(
          r.changed
            ? `deployed ${id}: release ${r.release.id}${r.release.reused ? ' (already on the host)' : ''} is running on ${r.target}`
            : `${id} already runs release ${r.release.id}; nothing changed`,
        );
      },
    );
}

/**
 * Resolves with the first SIGINT/SIGTERM (the caller then closes sessions and the database and
 * exits 0); a second signal exits at once with 130.
 */
function shutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (received) {
        status(`${sig} again: exiting now`);
        process.exit(130);
      }
      received = true;
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
