import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../../core/errors.ts';
import { SOURCE_DIR } from '../../core/paths.ts';
import { type ChainedEvent, eventHash, GENESIS_HASH } from './eventChain.ts';

/**
 * All SQL lives here: callers see typed rows, never statements. A PostgreSQL backend for
 * fleets would be a second class with these methods.
 */

export const REASONS = [
  'damaged',
  'defective',
  'wrong_item',
  'missing_parts',
  'not_as_described',
  'unwanted',
  'other',
] as const;
export const STATUSES = ['open', 'inspecting', 'decided', 'closed'] as const;
export const OUTCOMES = ['refund', 'replacement', 'partial_refund', 'rejected'] as const;
export const DISPOSITIONS = ['restock', 'refurbish', 'dispose', 'return_to_sender'] as const;
export const ROLES = ['buyer', 'staff'] as const;

export type Reason = (typeof REASONS)[number];
export type CaseStatus = (typeof STATUSES)[number];
export type Outcome = (typeof OUTCOMES)[number];
export type Disposition = (typeof DISPOSITIONS)[number];
export type Role = (typeof ROLES)[number];

export interface CaseRecord {
  id: string;
  orderId: string;
  sku: string;
  marketplace: string | null;
  warehouseId: string | null;
  reason: Reason;
  note: string | null;
  status: CaseStatus;
  outcome: Outcome | null;
  disposition: Disposition | null;
  decisionNote: string | null;
  createdAt: number;
  firstJoinedAt: number | null;
  decidedAt: number | null;
  closedAt: number | null;
}

export interface LinkRecord {
  id: string;
  caseId: string;
  role: Role;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface MessageRecord {
  id: number;
  caseId: string;
  clientId: string;
  role: string;
  kind: 'text' | 'prompt';
  body: string;
  at: number;
  eventSeq: number;
}

export interface SessionRecord {
  id: string;
  caseId: string;
  role: string;
  direction: 'publish' | 'subscribe';
  linkId: string | null;
  startedAt: number;
  endedAt: number | null;
  endReason: string | null;
}

export interface SnapshotRecord {
  id: string;
  caseId: string;
  at: number;
  takenBy: string;
  mime: string;
  bytes: number;
  width: number;
  height: number;
  sha256: string;
  /** Relative to the data directory. */
  path: string;
}

export interface NewEvent {
  caseId: string;
  type: string;
  actor: string;
  data?: Record<string, unknown>;
  at?: number;
}

const MIGRATIONS_DIR = join(SOURCE_DIR, 'node', 'store', 'migrations');

interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}-.+\.sql$/.test(f))
    .sort()
    .map((name, i) => {
      const version = Number(name.slice(0, 4));
      if (version !== i + 1) throw new Error(`migration ${name}: expected number ${i + 1}`);
      return { version, name, sql: readFileSync(join(dir, name), 'utf8') };
    });
}

type Row = Record<string, unknown>;

function toCase(r: Row): CaseRecord {
  return {
    id: r.id as string,
    orderId: r.order_id as string,
    sku: r.sku as string,
    marketplace: r.marketplace as string | null,
    warehouseId: r.warehouse_id as string | null,
    reason: r.reason as Reason,
    note: r.note as string | null,
    status: r.status as CaseStatus,
    outcome: r.outcome as Outcome | null,
    disposition: r.disposition as Disposition | null,
    decisionNote: r.decision_note as string | null,
    createdAt: r.created_at as number,
    firstJoinedAt: r.first_joined_at as number | null,
    decidedAt: r.decided_at as number | null,
    closedAt: r.closed_at as number | null,
  };
}

function toEvent(r: Row): ChainedEvent {
  return {
    caseId: r.case_id as string,
    seq: r.seq as number,
    at: r.at as number,
    type: r.type as string,
    actor: r.actor as string,
    data: JSON.parse(r.data as string) as Record<string, unknown>,
    prevHash: r.prev_hash as string,
    hash: r.hash as string,
  };
}

function toLink(r: Row): LinkRecord {
  return {
    id: r.id as string,
    caseId: r.case_id as string,
    role: r.role as Role,
    createdAt: r.created_at as number,
    expiresAt: r.expires_at as number,
    revokedAt: r.revoked_at as number | null,
  };
}

function toMessage(r: Row): MessageRecord {
  return {
    id: r.id as number,
    caseId: r.case_id as string,
    clientId: r.client_id as string,
    role: r.role as string,
    kind: r.kind as 'text' | 'prompt',
    body: r.body as string,
    at: r.at as number,
    eventSeq: r.event_seq as number,
  };
}

function toSnapshot(r: Row): SnapshotRecord {
  return {
    id: r.id as string,
    caseId: r.case_id as string,
    at: r.at as number,
    takenBy: r.taken_by as string,
    mime: r.mime as string,
    bytes: r.bytes as number,
    width: r.width as number,
    height: r.height as number,
    sha256: r.sha256 as string,
    path: r.path as string,
  };
}

function toSession(r: Row): SessionRecord {
  return {
    id: r.id as string,
    caseId: r.case_id as string,
    role: r.role as string,
    direction: r.direction as 'publish' | 'subscribe',
    linkId: r.link_id as string | null,
    startedAt: r.started_at as number,
    endedAt: r.ended_at as number | null,
    endReason: r.end_reason as string | null,
  };
}

/**
 * SQLite's page cache per connection, in KiB. SQLite's own default (2 000 KiB) is filled page by
 * page as cases accumulate, and in a soak it was the only native memory found growing with the
 * calls (heaptrack). In a 20-minute soak the allocator's memory in use grew +2.4 MiB with
 * SQLite's default and +0.2 MiB with this bound.
 * The node reads by key (tokens, case ids) and appends events, so its working set is a few dozen
 * pages; anything else is read back from the OS's file cache, which is shared and reclaimable.
 */
export const PAGE_CACHE_KIB = 512;

export class Store {
  readonly db: Database.Database;
  private closed = false;
  private readonly stmt;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    this.migrate();
    const db = this.db;
    this.stmt = {
      insertCase: db.prepare(
        `INSERT INTO cases (id, order_id, sku, marketplace, warehouse_id, reason, note, created_at)
         VALUES (@id, @orderId, @sku, @marketplace, @warehouseId, @reason, @note, @createdAt)`,
      ),
      getCase: db.prepare('SELECT * FROM cases WHERE id = ?'),
      listCases: db.prepare(
        'SELECT * FROM cases WHERE (@status IS NULL OR status = @status) ORDER BY created_at DESC, id LIMIT @limit',
      ),
      setStatus: db.prepare('UPDATE cases SET status = ? WHERE id = ?'),
      setFirstJoined: db.prepare(
        'UPDATE cases SET first_joined_at = ? WHERE id = ? AND first_joined_at IS NULL',
      ),
      decide: db.prepare(
        `UPDATE cases SET status = 'decided', outcome = @outcome, disposition = @disposition,
           decision_note = @note, decided_at = @at WHERE id = @id`,
      ),
      close: db.prepare(`UPDATE cases SET status = 'closed', closed_at = ? WHERE id = ?`),
      lastEvent: db.prepare(
        'SELECT seq, hash FROM events WHERE case_id = ? ORDER BY seq DESC LIMIT 1',
      ),
      insertEvent: db.prepare(
        `INSERT INTO events (case_id, seq, at, type, actor, data, prev_hash, hash)
         VALUES (@caseId, @seq, @at, @type, @actor, @data, @prevHash, @hash)`,
      ),
      eventsSince: db.prepare('SELECT * FROM events WHERE case_id = ? AND seq > ? ORDER BY seq'),
      insertLink: db.prepare(
        `INSERT INTO links (id, case_id, role, created_at, expires_at)
         VALUES (@id, @caseId, @role, @createdAt, @expiresAt)`,
      ),
      getLink: db.prepare('SELECT * FROM links WHERE id = ?'),
      linksForCase: db.prepare('SELECT * FROM links WHERE case_id = ? ORDER BY created_at'),
      revokeLinks: db.prepare(
        'UPDATE links SET revoked_at = ? WHERE case_id = ? AND role = ? AND revoked_at IS NULL',
      ),
      insertMessage: db.prepare(
        `INSERT INTO messages (case_id, client_id, role, kind, body, at, event_seq)
         VALUES (@caseId, @clientId, @role, @kind, @body, @at, @eventSeq)`,
      ),
      messageByClientId: db.prepare('SELECT * FROM messages WHERE case_id = ? AND client_id = ?'),
      messagesForCase: db.prepare('SELECT * FROM messages WHERE case_id = ? ORDER BY id'),
      insertSession: db.prepare(
        `INSERT INTO sessions (id, case_id, role, direction, link_id, started_at)
         VALUES (@id, @caseId, @role, @direction, @linkId, @startedAt)`,
      ),
      endSession: db.prepare(
        'UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL',
      ),
      openSessions: db.prepare('SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY started_at'),
      insertSnapshot: db.prepare(
        `INSERT INTO snapshots (id, case_id, at, taken_by, mime, bytes, width, height, sha256, path)
         VALUES (@id, @caseId, @at, @takenBy, @mime, @bytes, @width, @height, @sha256, @path)`,
      ),
      snapshotsForCase: db.prepare('SELECT * FROM snapshots WHERE case_id = ? ORDER BY at, id'),
      getSnapshot: db.prepare('SELECT * FROM snapshots WHERE id = ? AND case_id = ?'),
      sessionsForCase: db.prepare('SELECT * FROM sessions WHERE case_id = ? ORDER BY started_at'),
    };
  }

  private migrate(): void {
    const migrations = loadMigrations();
    const current = this.db.pragma('user_version', { simple: true }) as number;
    const latest = migrations.length;
    if (current > latest) {
      throw new UserError(
        `database schema version ${current} is newer than this returncam knows (${latest}); upgrade returncam instead of opening it with an older one`,
      );
    }
    const apply = this.db.transaction((m: Migration) => {
      this.db.exec(m.sql);
      this.db.pragma(`user_version = ${m.version}`);
    });
    for (const m of migrations) if (m.version > current) apply(m);
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** Runs `fn` in one transaction: all of it is stored, or none of it. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  insertCase(
    c: Pick<
      CaseRecord,
      'id' | 'orderId' | 'sku' | 'marketplace' | 'warehouseId' | 'reason' | 'note' | 'createdAt'
    >,
  ): void {
    this.stmt.insertCase.run(c);
  }

  getCase(id: string): CaseRecord | undefined {
    const r = this.stmt.getCase.get(id) as Row | undefined;
    return r ? toCase(r) : undefined;
  }

  listCases(filter: { status?: CaseStatus; limit?: number } = {}): CaseRecord[] {
    return (
      this.stmt.listCases.all({
        status: filter.status ?? null,
        limit: filter.limit ?? 1000,
      }) as Row[]
    ).map(toCase);
  }

  setStatus(id: string, status: CaseStatus): void {
    this.stmt.setStatus.run(status, id);
  }

  setFirstJoined(id: string, at: number): boolean {
    return this.stmt.setFirstJoined.run(at, id).changes > 0;
  }

  decide(d: {
    id: string;
    outcome: Outcome;
    disposition: Disposition | null;
    note: string | null;
    at: number;
  }): void {
    this.stmt.decide.run(d);
  }

  close(id: string, at: number): void {
    this.stmt.close.run(at, id);
  }

  /** Appends to the case's hash chain. Call inside `tx` together with the change it records. */
  appendEvent(e: NewEvent): ChainedEvent {
    const last = this.stmt.lastEvent.get(e.caseId) as { seq: number; hash: string } | undefined;
    const base = {
      caseId: e.caseId,
      seq: (last?.seq ?? 0) + 1,
      at: e.at ?? Date.now(),
      type: e.type,
      actor: e.actor,
      data: e.data ?? {},
      prevHash: last?.hash ?? GENESIS_HASH,
    };
    const event: ChainedEvent = { ...base, hash: eventHash(base) };
    this.stmt.insertEvent.run({ ...event, data: JSON.stringify(event.data) });
    return event;
  }

  events(caseId: string, afterSeq = 0): ChainedEvent[] {
    return (this.stmt.eventsSince.all(caseId, afterSeq) as Row[]).map(toEvent);
  }

  insertLink(l: Omit<LinkRecord, 'revokedAt'>): void {
    this.stmt.insertLink.run(l);
  }

  getLink(id: string): LinkRecord | undefined {
    const r = this.stmt.getLink.get(id) as Row | undefined;
    return r ? toLink(r) : undefined;
  }

  links(caseId: string): LinkRecord[] {
    return (this.stmt.linksForCase.all(caseId) as Row[]).map(toLink);
  }

  revokeLinks(caseId: string, role: Role, at: number): number {
    return this.stmt.revokeLinks.run(at, caseId, role).changes;
  }

  insertMessage(m: Omit<MessageRecord, 'id'>): MessageRecord {
    const info = this.stmt.insertMessage.run(m);
    return { ...m, id: Number(info.lastInsertRowid) };
  }

  messageByClientId(caseId: string, clientId: string): MessageRecord | undefined {
    const r = this.stmt.messageByClientId.get(caseId, clientId) as Row | undefined;
    return r ? toMessage(r) : undefined;
  }

  messages(caseId: string): MessageRecord[] {
    return (this.stmt.messagesForCase.all(caseId) as Row[]).map(toMessage);
  }

  insertSession(s: Omit<SessionRecord, 'endedAt' | 'endReason'>): void {
    this.stmt.insertSession.run(s);
  }

  endSession(id: string, at: number, reason: string): boolean {
    return this.stmt.endSession.run(at, reason, id).changes > 0;
  }

  /** Sessions not marked ended (at start-up: the ones a crash left open). */
  openSessions(): SessionRecord[] {
    return (this.stmt.openSessions.all() as Row[]).map(toSession);
  }

  sessions(caseId: string): SessionRecord[] {
    return (this.stmt.sessionsForCase.all(caseId) as Row[]).map(toSession);
  }

  insertSnapshot(s: SnapshotRecord): void {
    this.stmt.insertSnapshot.run(s);
  }

  snapshots(caseId: string): SnapshotRecord[] {
    return (this.stmt.snapshotsForCase.all(caseId) as Row[]).map(toSnapshot);
  }

  getSnapshot(caseId: string, id: string): SnapshotRecord | undefined {
    const r = this.stmt.getSnapshot.get(id, caseId) as Row | undefined;
    return r ? toSnapshot(r) : undefined;
  }

  // ---- recordings and case media (retention, legal hold, erasure) ----

  private recStmt: ReturnType<typeof prepareRecordingStatements> | undefined;

  private get rec(): ReturnType<typeof prepareRecordingStatements> {
    this.recStmt ??= prepareRecordingStatements(this.db);
    return this.recStmt;
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction: the write lock is taken first, so a CLI on the node
   * host and the node can both append to a case's log without one's read going stale.
   */
  txImmediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  insertRecording(
    r: Pick<
      RecordingRecord,
      'id' | 'caseId' | 'sessionId' | 'role' | 'path' | 'container' | 'tracks' | 'startedAt'
    >,
  ): void {
    this.rec.insert.run({ ...r, tracks: JSON.stringify(r.tracks) });
  }

  /** Records how a recording ended: its file, length, size, hash and status. */
  finishRecording(f: {
    id: string;
    path: string;
    originalPath: string | null;
    tracks: RecordingTrack[];
    endedAt: number;
    durationMs: number;
    bytes: number;
    sha256: string;
    originalSha256: string | null;
    status: Exclude<RecordingStatus, 'recording'>;
    note: string | null;
  }): void {
    this.rec.finish.run({ ...f, tracks: JSON.stringify(f.tracks) });
  }

  getRecording(id: string): RecordingRecord | undefined {
    const r = this.rec.get.get(id) as Row | undefined;
    return r ? toRecording(r) : undefined;
  }

  /** Recordings, newest first; of one case when `caseId` is given. */
  listRecordings(filter: { caseId?: string; limit?: number } = {}): RecordingRecord[] {
    return (
      this.rec.list.all({ caseId: filter.caseId ?? null, limit: filter.limit ?? 10_000 }) as Row[]
    ).map(toRecording);
  }

  /** Recordings still marked as being written: after a crash, the ones to repair. */
  unfinishedRecordings(): RecordingRecord[] {
    return (this.rec.unfinished.all() as Row[]).map(toRecording);
  }

  /** The latest end of a case role's finished segments (so a new one never starts before it). */
  lastRecordingEnd(caseId: string, role: string): number | null {
    const r = this.rec.lastEnd.get(caseId, role) as { last: number | null } | undefined;
    return r?.last ?? null;
  }

  markRecordingErased(id: string, at: number): void {
    this.rec.erase.run(at, id);
  }

  caseMedia(caseId: string): CaseMediaRecord {
    const r = this.rec.media.get(caseId) as Row | undefined;
    return r
      ? toCaseMedia(r)
      : {
          caseId,
          holdReason: null,
          holdBy: null,
          holdAt: null,
          erasedAt: null,
          erasedBy: null,
          eraseReason: null,
        };
  }

  setHold(caseId: string, reason: string, by: string, at: number): void {
    this.rec.hold.run({ caseId, reason, by, at });
  }

  clearHold(caseId: string): boolean {
    return this.rec.release.run(caseId).changes > 0;
  }

  markCaseErased(caseId: string, reason: string, by: string, at: number): void {
    this.rec.eraseCase.run({ caseId, reason, by, at });
  }

  /** Closed cases past `closedBefore`, not on hold, not erased, that still have media. */
  casesPastRetention(closedBefore: number): { caseId: string; closedAt: number }[] {
    return (this.rec.pastRetention.all(closedBefore) as Row[]).map((r) => ({
      caseId: r.id as string,
      closedAt: r.closed_at as number,
    }));
  }

  closeDb(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

// ---- recordings and case media ----

export const RECORDING_STATUSES = [
  'recording',
  'finished',
  'truncated',
  'repaired',
  'failed',
] as const;
export type RecordingStatus = (typeof RECORDING_STATUSES)[number];

export interface RecordingTrack {
  number: number;
  kind: 'audio' | 'video';
  codec: string;
  frames?: number;
  keyframes?: number;
  width?: number;
  height?: number;
  [stat: string]: unknown;
}

export interface RecordingRecord {
  id: string;
  caseId: string;
  sessionId: string;
  role: string;
  /** Relative to the data directory. */
  path: string;
  originalPath: string | null;
  container: 'webm' | 'matroska';
  tracks: RecordingTrack[];
  startedAt: number;
  endedAt: number | null;
  durationMs: number | null;
  bytes: number | null;
  sha256: string | null;
  originalSha256: string | null;
  status: RecordingStatus;
  note: string | null;
  erasedAt: number | null;
}

export interface CaseMediaRecord {
  caseId: string;
  holdReason: string | null;
  holdBy: string | null;
  holdAt: number | null;
  erasedAt: number | null;
  erasedBy: string | null;
  eraseReason: string | null;
}

function prepareRecordingStatements(db: Database.Database) {
  return {
    insert: db.prepare(
      `INSERT INTO recordings (id, case_id, session_id, role, path, container, tracks, started_at)
       VALUES (@id, @caseId, @sessionId, @role, @path, @container, @tracks, @startedAt)`,
    ),
    finish: db.prepare(
      `UPDATE recordings SET path = @path, original_path = @originalPath, tracks = @tracks, ended_at = @endedAt,
         duration_ms = @durationMs, bytes = @bytes, sha256 = @sha256, original_sha256 = @originalSha256,
         status = @status, note = @note
       WHERE id = @id`,
    ),
    get: db.prepare('SELECT * FROM recordings WHERE id = ?'),
    list: db.prepare(
      `SELECT * FROM recordings WHERE (@caseId IS NULL OR case_id = @caseId)
       ORDER BY started_at DESC, id LIMIT @limit`,
    ),
    unfinished: db.prepare(
      `SELECT * FROM recordings WHERE status = 'recording' ORDER BY started_at`,
    ),
    lastEnd: db.prepare(
      'SELECT MAX(ended_at) AS last FROM recordings WHERE case_id = ? AND role = ?',
    ),
    erase: db.prepare('UPDATE recordings SET erased_at = ? WHERE id = ? AND erased_at IS NULL'),
    media: db.prepare('SELECT * FROM case_media WHERE case_id = ?'),
    hold: db.prepare(
      `INSERT INTO case_media (case_id, hold_reason, hold_by, hold_at) VALUES (@caseId, @reason, @by, @at)
       ON CONFLICT (case_id) DO UPDATE SET hold_reason = @reason, hold_by = @by, hold_at = @at`,
    ),
    release: db.prepare(
      'UPDATE case_media SET hold_reason = NULL, hold_by = NULL, hold_at = NULL WHERE case_id = ? AND hold_at IS NOT NULL',
    ),
    eraseCase: db.prepare(
      `INSERT INTO case_media (case_id, erased_at, erased_by, erase_reason) VALUES (@caseId, @at, @by, @reason)
       ON CONFLICT (case_id) DO UPDATE SET erased_at = @at, erased_by = @by, erase_reason = @reason`,
    ),
    pastRetention: db.prepare(
      `SELECT c.id, c.closed_at FROM cases c LEFT JOIN case_media m ON m.case_id = c.id
       WHERE c.status = 'closed' AND c.closed_at IS NOT NULL AND c.closed_at < ?
         AND m.hold_at IS NULL AND m.erased_at IS NULL
         AND (EXISTS (SELECT 1 FROM recordings r WHERE r.case_id = c.id AND r.erased_at IS NULL)
              OR EXISTS (SELECT 1 FROM snapshots s WHERE s.case_id = c.id))
       ORDER BY c.closed_at`,
    ),
  };
}

function toRecording(r: Row): RecordingRecord {
  return {
    id: r.id as string,
    caseId: r.case_id as string,
    sessionId: r.session_id as string,
    role: r.role as string,
    path: r.path as string,
    originalPath: r.original_path as string | null,
    container: r.container as 'webm' | 'matroska',
    tracks: JSON.parse(r.tracks as string) as RecordingTrack[],
    startedAt: r.started_at as number,
    endedAt: r.ended_at as number | null,
    durationMs: r.duration_ms as number | null,
    bytes: r.bytes as number | null,
    sha256: r.sha256 as string | null,
    originalSha256: r.original_sha256 as string | null,
    status: r.status as RecordingStatus,
    note: r.note as string | null,
    erasedAt: r.erased_at as number | null,
  };
}

function toCaseMedia(r: Row): CaseMediaRecord {
  return {
    caseId: r.case_id as string,
    holdReason: r.hold_reason as string | null,
    holdBy: r.hold_by as string | null,
    holdAt: r.hold_at as number | null,
    erasedAt: r.erased_at as number | null,
    erasedBy: r.erased_by as string | null,
    eraseReason: r.erase_reason as string | null,
  };
}
