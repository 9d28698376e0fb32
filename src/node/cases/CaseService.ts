import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../../core/canonical.ts';
import { HttpError } from '../../core/errors.ts';
import { imageSize } from '../../core/imageSize.ts';
import type { ChainedEvent } from '../store/eventChain.ts';
import type {
  CaseRecord,
  Disposition,
  LinkRecord,
  MessageRecord,
  Outcome,
  Reason,
  Role,
  SessionRecord,
  SnapshotRecord,
  Store,
} from '../store/Store.ts';
import { signToken, type TokenClaims, verifyToken } from '../tokens.ts';

export interface CaseServiceOptions {
  store: Store;
  /** Snapshots are written under DATA/snapshots/{caseId}/. */
  dataDir: string;
  tokenSecret: Buffer;
  /** Base URL put into links, e.g. http://127.0.0.1:8080 */
  publicUrl: () => string;
  ttl: { buyer: number; staff: number };
}

export interface NewCaseInput {
  orderId: string;
  sku: string;
  reason: Reason;
  marketplace?: string | null;
  warehouseId?: string | null;
  note?: string | null;
}

export interface IssuedLink {
  id: string;
  role: Role;
  url: string;
  token: string;
  expiresAt: number;
}

export interface CaseDetails {
  case: CaseRecord;
  events: ChainedEvent[];
  links: LinkRecord[];
  sessions: SessionRecord[];
}

export type EventListener = (event: ChainedEvent) => void;

type Append = (type: string, data?: Record<string, unknown>, at?: number) => ChainedEvent;

/** What the pages' event stream carries; internal events (links, admin actions) stay out. */
export const PAGE_EVENT_TYPES = new Set([
  'message.posted',
  'case.status',
  'case.decided',
  'case.closed',
  'participant.joined',
  'participant.left',
  'consent.given',
  'snapshot.taken',
]);

export function newId(prefix: string, bytes = 12): string {
  return `${prefix}_${randomBytes(bytes).toString('base64url')}`;
}

/**
 * Cases, links and everything that happens in them. Every change and the event that records it
 * are stored in one transaction; listeners hear about events only after they are stored.
 */
export class CaseService {
  private readonly store: Store;
  private readonly listeners = new Map<string, Set<EventListener>>();

  constructor(private readonly opts: CaseServiceOptions) {
    this.store = opts.store;
  }

  private emit(events: ChainedEvent[]): void {
    for (const e of events) {
      const set = this.listeners.get(e.caseId);
      if (!set) continue;
      for (const l of set) {
        try {
          l(e);
        } catch {
          // a listener's failure (e.g. a closed socket) must not stop the others
        }
      }
    }
  }

  /** Listens to one case's new events; returns the function that stops listening. */
  onEvent(caseId: string, listener: EventListener): () => void {
    let set = this.listeners.get(caseId);
    if (!set) {
      set = new Set();
      this.listeners.set(caseId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(caseId);
    };
  }

  /** Runs `fn` in one transaction with an `append` for the case's log; emits the events once stored. */
  private record(fn: (append: Append) => void, caseId: string, actor: string): ChainedEvent[] {
    const appended: ChainedEvent[] = [];
    this.store.tx(() =>
      fn((type, data, at) => {
        const e = this.store.appendEvent({ caseId, type, actor, data, at });
        appended.push(e);
        return e;
      }),
    );
    this.emit(appended);
    return appended;
  }

  getCase(id: string): CaseRecord {
    const c = this.store.getCase(id);
    if (!c) throw new HttpError(404, 'case_not_found', `case ${id} does not exist`);
    return c;
  }

  create(
    input: NewCaseInput,
    actor = 'admin',
  ): { case: CaseRecord; links: Record<Role, IssuedLink> } {
    const id = newId('c');
    const now = Date.now();
    let links: Record<Role, IssuedLink> | undefined;
    this.record(
      (append) => {
        this.store.insertCase({
          id,
          orderId: input.orderId,
          sku: input.sku,
          reason: input.reason,
          marketplace: input.marketplace ?? null,
          warehouseId: input.warehouseId ?? null,
          note: input.note ?? null,
          createdAt: now,
        });
        append('case.created', {
          orderId: input.orderId,
          sku: input.sku,
          reason: input.reason,
          marketplace: input.marketplace ?? null,
          warehouseId: input.warehouseId ?? null,
        });
        links = {
          buyer: this.insertLink(id, 'buyer', this.opts.ttl.buyer, now, append),
          staff: this.insertLink(id, 'staff', this.opts.ttl.staff, now, append),
        };
      },
      id,
      actor,
    );
    return { case: this.getCase(id), links: links! };
  }

  private insertLink(
    caseId: string,
    role: Role,
    ttl: number,
    now: number,
    append: Append,
  ): IssuedLink {
    const id = newId('l', 9);
    const expiresAt = now + ttl;
    this.store.insertLink({ id, caseId, role, createdAt: now, expiresAt });
    append('link.issued', { role, linkId: id, expiresAt });
    const token = signToken(this.opts.tokenSecret, { caseId, role, linkId: id, expiresAt });
    const page = role === 'buyer' ? 'b' : 's';
    return {
      id,
      role,
      token,
      expiresAt,
      url: `${this.opts.publicUrl()}/${page}/${caseId}#t=${token}`,
    };
  }

  issueLink(caseId: string, role: Role, ttl?: number, actor = 'admin'): IssuedLink {
    const c = this.getCase(caseId);
    if (c.status === 'closed')
      throw new HttpError(409, 'case_closed', `case ${caseId} is closed; links cannot be issued`);
    let link: IssuedLink | undefined;
    this.record(
      (append) => {
        link = this.insertLink(caseId, role, ttl ?? this.opts.ttl[role], Date.now(), append);
      },
      caseId,
      actor,
    );
    return link!;
  }

  revoke(caseId: string, role: Role, actor = 'admin'): number {
    this.getCase(caseId);
    let n = 0;
    this.record(
      (append) => {
        n = this.store.revokeLinks(caseId, role, Date.now());
        append('link.revoked', { role, count: n });
      },
      caseId,
      actor,
    );
    return n;
  }

  decide(
    caseId: string,
    d: { outcome: Outcome; disposition?: Disposition | null; note?: string | null },
    actor = 'admin',
  ): CaseRecord {
    const c = this.getCase(caseId);
    if (c.status === 'closed')
      throw new HttpError(
        409,
        'case_closed',
        `case ${caseId} is closed; it cannot be decided again`,
      );
    this.record(
      (append) => {
        this.store.decide({
          id: caseId,
          outcome: d.outcome,
          disposition: d.disposition ?? null,
          note: d.note ?? null,
          at: Date.now(),
        });
        append('case.decided', {
          outcome: d.outcome,
          disposition: d.disposition ?? null,
          note: d.note ?? null,
          previous: c.outcome,
        });
        append('case.status', {
          status: 'decided',
          outcome: d.outcome,
          disposition: d.disposition ?? null,
        });
      },
      caseId,
      actor,
    );
    return this.getCase(caseId);
  }

  close(caseId: string, actor = 'admin'): CaseRecord {
    const c = this.getCase(caseId);
    if (c.status === 'closed') return c;
    this.record(
      (append) => {
        this.store.close(caseId, Date.now());
        append('case.closed', {});
        append('case.status', { status: 'closed', outcome: c.outcome, disposition: c.disposition });
      },
      caseId,
      actor,
    );
    return this.getCase(caseId);
  }

  list(status?: CaseRecord['status']): CaseRecord[] {
    return this.store.listCases({ status });
  }

  details(caseId: string): CaseDetails {
    return {
      case: this.getCase(caseId),
      events: this.store.events(caseId),
      links: this.store.links(caseId),
      sessions: this.store.sessions(caseId),
    };
  }

  events(caseId: string, afterSeq = 0): ChainedEvent[] {
    return this.store.events(caseId, afterSeq);
  }

  /**
   * Who is asking: checks the token's signature, expiry, revocation and that it names this case.
   * `write` also refuses closed cases.
   */
  authorize(
    caseId: string,
    token: string | undefined,
    opts: { write?: boolean; role?: Role } = {},
  ): TokenClaims {
    if (!token) {
      throw new HttpError(
        401,
        'token_missing',
        'this request needs the link token (Authorization: Bearer …)',
        {
          'WWW-Authenticate': 'Bearer',
        },
      );
    }
    const check = verifyToken(this.opts.tokenSecret, token);
    if (!check.ok)
      throw new HttpError(401, check.code, check.message, {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      });
    const { claims } = check;
    if (claims.caseId !== caseId) {
      throw new HttpError(403, 'token_wrong_case', 'this link belongs to another case');
    }
    const link = this.store.getLink(claims.linkId);
    if (!link || link.caseId !== caseId)
      throw new HttpError(401, 'token_unknown', 'this link is not known to this node');
    if (link.revokedAt !== null) {
      throw new HttpError(
        401,
        'token_revoked',
        'this link was revoked; ask support for a new one',
        {
          'WWW-Authenticate': 'Bearer error="invalid_token"',
        },
      );
    }
    const c = this.getCase(caseId);
    if (opts.write && c.status === 'closed')
      throw new HttpError(409, 'case_closed', 'this case is closed');
    if (opts.role && claims.role !== opts.role) {
      throw new HttpError(403, 'wrong_role', `only ${opts.role} links may do this`);
    }
    return claims;
  }

  postMessage(
    caseId: string,
    who: TokenClaims,
    m: { clientId: string; text: string; kind: 'text' | 'prompt' },
  ): { message: MessageRecord; created: boolean } {
    if (m.kind === 'prompt' && who.role !== 'staff') {
      throw new HttpError(403, 'wrong_role', 'only staff can send prompts');
    }
    const existing = this.store.messageByClientId(caseId, m.clientId);
    if (existing) return { message: existing, created: false };
    let message: MessageRecord | undefined;
    let created = false;
    this.record(
      (append) => {
        // re-check inside the transaction: two identical POSTs may race
        const again = this.store.messageByClientId(caseId, m.clientId);
        if (again) {
          message = again;
          return;
        }
        const at = Date.now();
        const event = append(
          'message.posted',
          { clientId: m.clientId, role: who.role, kind: m.kind, text: m.text },
          at,
        );
        message = this.store.insertMessage({
          caseId,
          clientId: m.clientId,
          role: who.role,
          kind: m.kind,
          body: m.text,
          at,
          eventSeq: event.seq,
        });
        created = true;
      },
      caseId,
      `${who.role}:${who.linkId}`,
    );
    return { message: message!, created };
  }

  consent(caseId: string, who: TokenClaims): void {
    this.record(
      (append) => append('consent.given', { role: who.role, recording: true }),
      caseId,
      `${who.role}:${who.linkId}`,
    );
  }

  /**
   * Stores a still from the live video: the file is written and synced first, then its row and
   * event in one transaction; if that fails the file is removed, so nothing is stored half-way.
   */
  addSnapshot(caseId: string, who: TokenClaims, image: Buffer): SnapshotRecord {
    const size = imageSize(image);
    if (!size) throw new HttpError(400, 'bad_image', 'the snapshot must be a JPEG or PNG image');
    const id = newId('s', 9);
    const rel = join('snapshots', caseId, `${id}.${size.mime === 'image/png' ? 'png' : 'jpg'}`);
    const abs = join(this.opts.dataDir, rel);
    mkdirSync(join(this.opts.dataDir, 'snapshots', caseId), { recursive: true });
    const fd = openSync(abs, 'wx', 0o640);
    try {
      writeSync(fd, image);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const snap: SnapshotRecord = {
      id,
      caseId,
      at: Date.now(),
      takenBy: `${who.role}:${who.linkId}`,
      mime: size.mime,
      bytes: image.length,
      width: size.width,
      height: size.height,
      sha256: sha256Hex(image),
      path: rel,
    };
    try {
      this.record(
        (append) => {
          this.store.insertSnapshot(snap);
          append(
            'snapshot.taken',
            {
              id,
              sha256: snap.sha256,
              width: snap.width,
              height: snap.height,
              bytes: snap.bytes,
              mime: snap.mime,
            },
            snap.at,
          );
        },
        caseId,
        snap.takenBy,
      );
    } catch (err) {
      rmSync(abs, { force: true });
      throw err;
    }
    return snap;
  }

  snapshots(caseId: string): SnapshotRecord[] {
    return this.store.snapshots(caseId);
  }

  snapshotFile(caseId: string, id: string): { record: SnapshotRecord; file: string } {
    const record = this.store.getSnapshot(caseId, id);
    if (!record)
      throw new HttpError(404, 'snapshot_not_found', `case ${caseId} has no snapshot ${id}`);
    return { record, file: join(this.opts.dataDir, record.path) };
  }

  messages(caseId: string): MessageRecord[] {
    return this.store.messages(caseId);
  }

  /** A media session began: log it, stamp first-joined, and move an open case to inspecting. */
  sessionStarted(s: {
    id: string;
    caseId: string;
    role: Role;
    direction: 'publish' | 'subscribe';
    linkId: string | null;
  }): void {
    const c = this.getCase(s.caseId);
    this.record(
      (append) => {
        const now = Date.now();
        this.store.insertSession({ ...s, startedAt: now });
        append('participant.joined', { role: s.role, direction: s.direction, sessionId: s.id });
        if (s.role === 'buyer' && s.direction === 'publish')
          this.store.setFirstJoined(s.caseId, now);
        if (c.status === 'open' && s.direction === 'publish') {
          this.store.setStatus(s.caseId, 'inspecting');
          append('case.status', { status: 'inspecting', outcome: null, disposition: null });
        }
      },
      s.caseId,
      `${s.role}:${s.linkId ?? 'unknown'}`,
    );
  }

  sessionEnded(
    s: { id: string; caseId: string; role: Role; direction: 'publish' | 'subscribe' },
    reason: string,
  ): void {
    this.record(
      (append) => {
        if (this.store.endSession(s.id, Date.now(), reason)) {
          append('participant.left', {
            role: s.role,
            direction: s.direction,
            sessionId: s.id,
            reason,
          });
        }
      },
      s.caseId,
      'node',
    );
  }

  /** Media sessions of a role that have not ended (to cut them when a link is revoked). */
  liveSessions(caseId: string, role: Role): string[] {
    return this.store
      .sessions(caseId)
      .filter((s) => s.role === role && s.endedAt === null)
      .map((s) => s.id);
  }

  /**
   * Sessions still marked open are ended, each with its `participant.left` event so that pages
   * rebuilding presence from the timeline see who is gone: at start-up (a crash left them) and at
   * shutdown.
   */
  endOpenSessions(reason: string): number {
    const open = this.store.openSessions();
    for (const s of open) this.sessionEnded({ ...s, role: s.role as Role }, reason);
    return open.length;
  }
}
