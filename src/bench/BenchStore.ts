import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Statement } from 'better-sqlite3';
import { errorMessage, UserError } from '../core/errors.ts';
import { Store } from '../node/store/Store.ts';

export type BenchKind = 'run' | 'capacity' | 'probe';

/** One stored result, as `bench list` shows it. */
export interface BenchRow {
  id: string;
  kind: BenchKind;
  startedAt: number;
  profile: string | null;
  mode: string | null;
  sessions: number | null;
  durationMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  targetMs: number | null;
  pass: boolean | null;
}

export interface NewBenchRow extends Omit<BenchRow, 'pass'> {
  pass: boolean | null;
  /** The versioned JSON result. */
  result: unknown;
}

type Row = Record<string, unknown>;

function toRow(r: Row): BenchRow {
  return {
    id: r.id as string,
    kind: r.kind as BenchKind,
    startedAt: r.started_at as number,
    profile: r.profile as string | null,
    mode: r.mode as string | null,
    sessions: r.sessions as number | null,
    durationMs: r.duration_ms as number | null,
    p50Ms: r.p50_ms as number | null,
    p95Ms: r.p95_ms as number | null,
    p99Ms: r.p99_ms as number | null,
    targetMs: r.target_ms as number | null,
    pass: r.pass === null ? null : r.pass === 1,
  };
}

/**
 * Benchmark results in the data directory's database (`bench_runs`, migration 0004), through the
 * node's own {@link Store} so there is one schema and one migration path. All bench SQL is here.
 */
export class BenchStore {
  private readonly store: Store;
  private readonly stmt: Record<'insert' | 'list' | 'byId' | 'byPrefix', Statement>;
  private closed = false;

  private constructor(store: Store) {
    this.store = store;
    const db = store.db;
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO bench_runs (id, kind, started_at, profile, mode, sessions, duration_ms, p50_ms, p95_ms, p99_ms, target_ms, pass, result)
         VALUES (@id, @kind, @startedAt, @profile, @mode, @sessions, @durationMs, @p50Ms, @p95Ms, @p99Ms, @targetMs, @pass, @result)`,
      ),
      list: db.prepare(
        `SELECT id, kind, started_at, profile, mode, sessions, duration_ms, p50_ms, p95_ms, p99_ms, target_ms, pass
         FROM bench_runs WHERE (@profile IS NULL OR profile = @profile) AND (@kind IS NULL OR kind = @kind)
         ORDER BY started_at DESC, id DESC LIMIT @limit`,
      ),
      byId: db.prepare('SELECT * FROM bench_runs WHERE id = ?'),
      byPrefix: db.prepare(
        "SELECT * FROM bench_runs WHERE id LIKE ? || '%' ORDER BY started_at DESC LIMIT 2",
      ),
    };
  }

  /** Opens (creating it if needed) the database of the data directory `dataDir`. */
  static open(dataDir: string): BenchStore {
    const dir = resolve(dataDir);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new UserError(`cannot create the data directory ${dir}: ${errorMessage(err)}`);
    }
    return new BenchStore(new Store(join(dir, 'returncam.db')));
  }

  save(row: NewBenchRow): void {
    this.assertOpen();
    this.stmt.insert.run({
      ...row,
      pass: row.pass === null ? null : row.pass ? 1 : 0,
      result: JSON.stringify(row.result),
    });
  }

  list(filter: { profile?: string; kind?: BenchKind; limit?: number } = {}): BenchRow[] {
    this.assertOpen();
    return (
      this.stmt.list.all({
        profile: filter.profile ?? null,
        kind: filter.kind ?? null,
        limit: filter.limit ?? 20,
      }) as Row[]
    ).map(toRow);
  }

  /** A stored result by id, or by an unambiguous prefix of one. */
  get(idOrPrefix: string): { row: BenchRow; result: unknown } | undefined {
    this.assertOpen();
    let r = this.stmt.byId.get(idOrPrefix) as Row | undefined;
    if (!r) {
      const matches = this.stmt.byPrefix.all(idOrPrefix) as Row[];
      if (matches.length > 1) {
        throw new UserError(
          `"${idOrPrefix}" matches more than one stored result; give more of the id`,
        );
      }
      r = matches[0];
    }
    if (!r) return undefined;
    return { row: toRow(r), result: JSON.parse(r.result as string) as unknown };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.store.closeDb();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('bench store: used after close()');
  }
}
