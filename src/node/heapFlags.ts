/**
 * The size of V8's young generation the node runs with: semi-spaces of 4 MB. V8's default lets
 * them grow to 16 MB each under load, and a node forwarding media allocates fast enough that
 * they do: at 25 calls × 2 viewers the young generation alone then holds 32 MB. Capped at 4 MB,
 * RSS was 22-25 MB lower with CPU per session and the time the node adds at p99 unchanged
 * (docs/performance.md, "Eleventh round").
 */
export const NODE_SEMI_SPACE_MB = 4;

/**
 * Node.js flags for a node process, given before the script: V8 sizes the main thread's heap
 * when the process starts (a flag set from inside it later has no effect on this). Used by the
 * systemd unit, `node deploy`'s start command and the benchmarks, so what is measured is what
 * runs in a warehouse.
 */
export const NODE_START_FLAGS: readonly string[] = [`--max-semi-space-size=${NODE_SEMI_SPACE_MB}`];

/**
 * A media worker thread's young generation (its `resourceLimits`), MB: V8 counts two
 * semi-spaces and a large-object space of the same size, so this gives each worker the same
 * semi-spaces as the main thread.
 */
export const WORKER_YOUNG_GENERATION_MB = 3 * NODE_SEMI_SPACE_MB;
