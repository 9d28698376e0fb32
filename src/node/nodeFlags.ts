/**
 * Node.js flags a media node process starts with: the fleet's systemd unit, `npm start`, and the
 * benchmarks' node processes (so they measure what is deployed). V8 sizes its heap before any
 * JavaScript runs, so these cannot be set from inside (`v8.setFlagsFromString` is too late).
 *
 * `--max-semi-space-size=8`: a 16 MB young generation instead of V8's 32 MB. Forwarded packets
 * and recorded frames no longer outlive a young collection (they are copied into byte rings), so
 * the smaller one collects as little into the old generation: at 25 calls × 2 viewers, RSS is
 * ~15 MB lower, collections pause for less, and CPU is unchanged (docs/performance.md, fifth
 * round). At 4 MB scavenges ran twice as often and cost 15 % more CPU.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/**
 * `node [NODE_FLAGS] [extra] BIN node start --port 0 --data DIR`: a node on a free port with its
 * data in `dataDir`, as the benchmarks start one (after `process.execPath`).
 */
export function nodeStartArgs(
  bin: string,
  dataDir: string,
  extraFlags: readonly string[] = [],
): string[] {
  return [...NODE_FLAGS, ...extraFlags, bin, 'node', 'start', '--port', '0', '--data', dataDir];
}
