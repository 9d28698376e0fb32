import type Database from 'better-sqlite3';
import type { ChainedEvent } from '../store/eventChain.ts';
import type {
  CaseMediaRecord,
  CaseRecord,
  LinkRecord,
  MessageRecord,
  RecordingRecord,
  SessionRecord,
  SnapshotRecord,
  Store,
} from '../store/Store.ts';

/** Network quality a session measured (the pages' or bench clients' getStats); null until reported. */
export interface SessionQuality {
  rttMs: number | null;
  lossRatio: number | null;
  freezeRatio: number | null;
  qualityAt: number | null;
}

export type SessionWithQuality = SessionRecord & SessionQuality;

/** Everything an evidence bundle is made of, read in one transaction (one consistent view). */
export interface CaseData {
  case: CaseRecord;
  events: ChainedEvent[];
  messages: MessageRecord[];
  snapshots: SnapshotRecord[];
  /** Oldest first. */
  recordings: RecordingRecord[];
  sessions: SessionWithQuality[];
  links: LinkRecord[];
  media: CaseMediaRecord;
}

export interface CaseFilter {
  /** Created at or after, UTC ms. */
  since?: number;
  /** Created before, UTC ms. */
  until?: number;
  warehouseId?: string;
}

/** One case with the counts and sums an analysis needs. */
export interface CaseAggregate {
  case: CaseRecord;
  videoMs: number;
  recordings: number;
  snapshots: number;
  messages: number;
  prompts: number;
  rttMs: number | null;
  lossRatio: number | null;
  freezeRatio: number | null;
  /** Publisher sessions, oldest first. */
  publishSessions: { role: string; startedAt: number; endedAt: number | null }[];
}

type Row = Record<string, unknown>;

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/**
 * Queries for evidence exports, case data exports and reports, on the node's database
 * (`Store.db`). The store's own statements stay in Store.ts; these are the ones only exports
 * and reports need.
 */
export class EvidenceStore {
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(private readonly store: Store) {
    this.db = store.db;
    this.stmt = {
      sessions: this.db.prepare('SELECT * FROM sessions WHERE case_id = ? ORDER BY started_at, id'),
      setQuality: this.db.prepare(
        `UPDATE sessions SET rtt_ms = @rttMs, loss_ratio = @lossRatio, freeze_ratio = @freezeRatio,
           quality_at = @at WHERE id = @id`,
      ),
      setOwnQuality: this.db.prepare(
        `UPDATE sessions SET rtt_ms = @rttMs, loss_ratio = @lossRatio, freeze_ratio = @freezeRatio,
           quality_at = @at WHERE id = @id AND case_id = @caseId AND role = @role`,
      ),
      aggregates: this.db.prepare(
        `SELECT c.*,
           (SELECT COALESCE(SUM(r.duration_ms), 0) FROM recordings r
              WHERE r.case_id = c.id AND r.status <> 'recording') AS video_ms,
           (SELECT COUNT(*) FROM recordings r WHERE r.case_id = c.id) AS recording_count,
           (SELECT COUNT(*) FROM snapshots s WHERE s.case_id = c.id) AS snapshot_count,
           (SELECT COUNT(*) FROM messages m WHERE m.case_id = c.id) AS message_count,
           (SELECT COUNT(*) FROM messages m WHERE m.case_id = c.id AND m.kind = 'prompt') AS prompt_count,
           (SELECT AVG(s.rtt_ms) FROM sessions s WHERE s.case_id = c.id) AS q_rtt_ms,
           (SELECT AVG(s.loss_ratio) FROM sessions s WHERE s.case_id = c.id) AS q_loss_ratio,
           (SELECT AVG(s.freeze_ratio) FROM sessions s WHERE s.case_id = c.id) AS q_freeze_ratio
         FROM cases c
         WHERE (@since IS NULL OR c.created_at >= @since)
           AND (@until IS NULL OR c.created_at < @until)
           AND (@warehouse IS NULL OR c.warehouse_id = @warehouse)
         ORDER BY c.created_at, c.id`,
      ),
      publishSessions: this.db.prepare(
        `SELECT s.case_id, s.role, s.started_at, s.ended_at FROM sessions s JOIN cases c ON c.id = s.case_id
         WHERE s.direction = 'publish'
           AND (@since IS NULL OR c.created_at >= @since)
           AND (@until IS NULL OR c.created_at < @until)
           AND (@warehouse IS NULL OR c.warehouse_id = @warehouse)
         ORDER BY s.started_at, s.id`,
      ),
    };
  }

  private sessions(caseId: string): SessionWithQuality[] {
    return (this.stmt.sessions.all(caseId) as Row[]).map((r) => ({
      id: r.id as string,
      caseId: r.case_id as string,
      role: r.role as string,
      direction: r.direction as 'publish' | 'subscribe',
      linkId: r.link_id as string | null,
      startedAt: r.started_at as number,
      endedAt: r.ended_at as number | null,
      endReason: r.end_reason as string | null,
      rttMs: num(r.rtt_ms),
      lossRatio: num(r.loss_ratio),
      freezeRatio: num(r.freeze_ratio),
      qualityAt: num(r.quality_at),
    }));
  }

  /** A case and everything recorded about it, or undefined when there is no such case. */
  caseData(caseId: string): CaseData | undefined {
    return this.store.tx(() => {
      const c = this.store.getCase(caseId);
      if (!c) return undefined;
      return {
        case: c,
        events: this.store.events(caseId),
        messages: this.store.messages(caseId),
        snapshots: this.store.snapshots(caseId),
        recordings: this.store.listRecordings({ caseId }).sort((a, b) => a.startedAt - b.startedAt),
        sessions: this.sessions(caseId),
        links: this.store.links(caseId),
        media: this.store.caseMedia(caseId),
      };
    });
  }

  /**
   * Stores the network quality a session measured (the columns stay NULL until it is reported).
   * Telemetry, overwritten in place by each report: not an event in the case's timeline.
   */
  setSessionQuality(
    sessionId: string,
    q: { rttMs?: number | null; lossRatio?: number | null; freezeRatio?: number | null },
    at = Date.now(),
  ): boolean {
    return (
      this.stmt.setQuality.run({
        id: sessionId,
        rttMs: q.rttMs ?? null,
        lossRatio: q.lossRatio ?? null,
        freezeRatio: q.freezeRatio ?? null,
        at,
      }).changes > 0
    );
  }

  /**
   * `setSessionQuality` for a session of the given case and role only (what a page reports with
   * its link token); false when there is no such session.
   */
  setOwnSessionQuality(
    caseId: string,
    role: string,
    sessionId: string,
    q: { rttMs: number | null; lossRatio: number | null; freezeRatio: number | null },
    at = Date.now(),
  ): boolean {
    const { rttMs, lossRatio, freezeRatio } = q;
    const params = { id: sessionId, caseId, role, rttMs, lossRatio, freezeRatio, at };
    return this.stmt.setOwnQuality.run(params).changes > 0;
  }

  /** Cases created in a time range (and warehouse), oldest first, with their counts and sums. */
  caseAggregates(filter: CaseFilter = {}): CaseAggregate[] {
    const params = {
      since: filter.since ?? null,
      until: filter.until ?? null,
      warehouse: filter.warehouseId ?? null,
    };
    return this.store.tx(() => {
      const sessions = new Map<string, CaseAggregate['publishSessions']>();
      for (const s of this.stmt.publishSessions.all(params) as Row[]) {
        const id = s.case_id as string;
        let list = sessions.get(id);
        if (!list) {
          list = [];
          sessions.set(id, list);
        }
        list.push({
          role: s.role as string,
          startedAt: s.started_at as number,
          endedAt: s.ended_at as number | null,
        });
      }
      return (this.stmt.aggregates.all(params) as Row[]).map((r) => {
        const c = this.store.getCase(r.id as string)!;
        return {
          case: c,
          videoMs: (r.video_ms as number) ?? 0,
          recordings: r.recording_count as number,
          snapshots: r.snapshot_count as number,
          messages: r.message_count as number,
          prompts: r.prompt_count as number,
          rttMs: num(r.q_rtt_ms),
          lossRatio: num(r.q_loss_ratio),
          freezeRatio: num(r.q_freeze_ratio),
          publishSessions: sessions.get(c.id) ?? [],
        };
      });
    });
  }

  /**
   * Appends `evidence.exported` to the case's timeline in an IMMEDIATE transaction, so a CLI on
   * the node host and a running node never interleave their appends.
   */
  recordExport(caseId: string, actor: string, data: Record<string, unknown>): ChainedEvent {
    return this.store.txImmediate(() =>
      this.store.appendEvent({ caseId, type: 'evidence.exported', actor, data }),
    );
  }
}
