import { Command, CommanderError } from 'commander';
import { UserError } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';

import { GROUPS, groupsFor } from './groups.ts';

/**
 * The one place that decides exit codes: a UserError prints its message and exits 1; a usage
 * error prints help and exits 2; anything else is a bug: stack trace, exit 1.
 */
export async function buildProgram(
  groups: readonly string[] = Object.keys(GROUPS),
): Promise<Command> {
  const program = new Command('returncam')
    .description('Live video inspection of returned items: media node, cases, benchmarks')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const registers = await Promise.all(groups.map((g) => GROUPS[g]!()));
  for (const register of registers) register(program);
  for (const cmd of program.commands) {
    cmd.exitOverride().showHelpAfterError();
    for (const sub of cmd.commands) sub.exitOverride().showHelpAfterError();
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(groupsFor(argv));
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.exitCode === 0
      )
        return 0;
      if (err.code === 'commander.help') return 0;
      return 2;
    }
    if (err instanceof UserError) {
      process.stderr.write(`returncam: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(
      `returncam: internal error (please report it):\n${(err as Error)?.stack ?? String(err)}\n`,
    );
    return 1;
  }
}

// Commands resolve when their work is done (`node start` after shutdown); stdout and stderr are
// synchronous for files and pipes on Linux, so exiting here loses no output.
process.exit(await main(process.argv));
