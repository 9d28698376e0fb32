import type { Command } from 'commander';
import { loadNodeConfig, type NodeConfigInput } from '../../core/config.ts';
import { UserError } from '../../core/errors.ts';
import { ensureDemoCase } from '../../node/cases/demo.ts';
import { MediaNode } from '../../node/MediaNode.ts';
import { out, status } from '../output.ts';

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
      await waitForShutdown(started);
    });
}

/** First SIGINT/SIGTERM: close sessions, flush the database, exit 0. A second: exit at once. */
function waitForShutdown(node: MediaNode): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        status(`${sig} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      status(`${sig}: closing sessions and the database (again to force)`);
      node.close().then(() => {
        status('node stopped');
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
