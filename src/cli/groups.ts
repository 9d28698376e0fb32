import type { Command } from 'commander';

export type Register = (program: Command) => void;

/**
 * Each command group, loaded only when it is run: `node start` must not pay for the benchmark's
 * clients, React or the PDF writer (startup to the first /healthz stays well under a second).
 * The order is the order of `returncam --help`.
 */
export const GROUPS: Record<string, () => Promise<Register>> = {
  node: async () => (await import('./commands/node.ts')).registerNodeCommands,
  case: async () => (await import('./commands/case.ts')).registerCaseCommands,
  fleet: async () => (await import('./commands/fleet.ts')).registerFleetCommands,
  rec: async () => (await import('./commands/rec.ts')).registerRecCommands,
  export: async () => (await import('./commands/export.ts')).registerExportCommands,
  report: async () => (await import('./commands/report.ts')).registerReportCommands,
  bench: async () => (await import('./commands/bench.ts')).registerBenchCommands,
};

/**
 * The groups `argv` needs: the one it names (`returncam node start` -> node), none for
 * `--version`, every group otherwise (top-level help, `help <group>`, a mistyped command).
 */
export function groupsFor(argv: readonly string[]): string[] {
  const first = argv[2];
  if (first !== undefined && Object.hasOwn(GROUPS, first)) return [first];
  if (first === '--version' || first === '-V') return [];
  return Object.keys(GROUPS);
}
