import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { NodeConfig } from '../../core/config.ts';
import { parseDuration } from '../../core/duration.ts';
import { HttpError } from '../../core/errors.ts';
import { COMPILED } from '../../core/paths.ts';
import { type CaseService, PAGE_EVENT_TYPES } from '../cases/CaseService.ts';
import { recordingsDisk } from '../fleet/health.ts';
import {
  buildSdpFrag,
  iceEntityTag,
  ifMatchHolds,
  parseSdpFrag,
  type RemoteIceFragment,
  SDPFRAG_TYPE,
  SdpFragError,
} from '../media/iceRestart.ts';
import type { ChainedEvent } from '../store/eventChain.ts';
import type { Role } from '../store/Store.ts';
import type { MediaBackend } from '../workers/MediaBackend.ts';
import { servePage, serveStatic } from './pages.ts';
import { registerProbeRoutes } from './probeRoutes.ts';
import { type QualityRouteDeps, registerQualityRoutes } from './qualityRoutes.ts';
import {
  bearerToken,
  type Ctx,
  isLoopback,
  type Router,
  readBody,
  readJson,
  sendJson,
} from './router.ts';
import {
  consentBody,
  decisionBody,
  linkBody,
  messageBody,
  newCaseBody,
  parseBody,
  revokeBody,
  statusQuery,
} from './schemas.ts';
import { iceServersFor, registerTurnRoutes } from './turnRoutes.ts';

export interface AppDeps {
  config: NodeConfig;
  cases: CaseService;
  /** The media layer, in process or over worker threads. */
  media: MediaBackend;
  metrics: Registry;
  adminToken: string;
  version: string;
  startedAt: number;
  sse: Set<ServerResponse>;
  /** Stores the network quality the pages report on their media sessions. */
  evidence: QualityRouteDeps['evidence'];
  /** Refuses a new publisher that could not be recorded (507 when the disk is low). */
  admitPublisher?: () => Promise<void>;
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, DELETE, PATCH, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type, If-Match, Last-Event-ID',
  'Access-Control-Expose-Headers': 'Location, ETag, Link, Accept-Post, Accept-Patch',
  'Access-Control-Max-Age': '600',
};

export function checkAdmin(ctx: Ctx, deps: Pick<AppDeps, 'config' | 'adminToken'>): void {
  if (!deps.config.admin.allowRemote && !isLoopback(ctx.req.socket.remoteAddress)) {
    throw new HttpError(
      403,
      'admin_remote',
      'the admin API answers only local clients (set admin.allowRemote to change this)',
    );
  }
  const token = bearerToken(ctx.req);
  if (!token)
    throw new HttpError(
      401,
      'token_missing',
      'the admin API needs Authorization: Bearer <admin token>',
    );
  const a = Buffer.from(token);
  const b = Buffer.from(deps.adminToken);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new HttpError(
      401,
      'token_bad_admin',
      'the admin token is wrong (see DATA/admin.token on the node)',
    );
  }
}

/** A case as the pages see it: buyers get no staff-only notes. */
function caseForRole(c: ReturnType<CaseService['getCase']>, role: Role) {
  if (role === 'staff') return c;
  const { decisionNote: _d, note: _n, ...rest } = c;
  return rest;
}

function pageEvent(e: ChainedEvent, role: Role): string {
  let data = e.data;
  if (role === 'buyer' && e.type === 'case.decided') {
    const { note: _n, ...rest } = data;
    data = rest;
  }
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ seq: e.seq, at: e.at, type: e.type, data })}\n\n`;
}

export function registerRoutes(router: Router, deps: AppDeps): void {
  const { cases, media, config } = deps;
  const limits = config.limits;

  router.on('GET', '/healthz', async ({ res }) => {
    // media workers start alongside the HTTP listener: the body says whether they are up yet
    const status = await media.status();
    sendJson(res, 200, {
      status: 'ok',
      version: deps.version,
      nodeId: config.node.id,
      uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000),
      runtime: { node: process.version, compiled: COMPILED },
      disk: recordingsDisk(config.node.dataDir),
      media: {
        mode: status.mode,
        ready: status.ready,
        workers: status.workers.map((w) => ({
          index: w.index,
          state: w.state,
          restarts: w.restarts,
          sessions: w.publishers + w.subscribers,
        })),
      },
    });
  });

  registerTurnRoutes(router, deps);
  registerProbeRoutes(router, deps);
  registerQualityRoutes(router, deps);

  router.on('GET', '/metrics', async ({ res }) => {
    // workers' figures are refreshed first, so the totals are current
    await media.status(true);
    const text = await deps.metrics.metrics();
    res.writeHead(200, { 'Content-Type': deps.metrics.contentType });
    res.end(text);
  });

  // ---- admin API ----
  router.on('POST', '/api/admin/cases', async (ctx) => {
    checkAdmin(ctx, deps);
    const body = parseBody(newCaseBody, await readJson(ctx.req, limits.jsonBytes));
    const created = cases.create(body);
    sendJson(ctx.res, 201, created, { Location: `/api/admin/cases/${created.case.id}` });
  });
  router.on('GET', '/api/admin/cases', (ctx) => {
    checkAdmin(ctx, deps);
    const raw = ctx.url.searchParams.get('status') ?? undefined;
    const status = statusQuery.safeParse(raw);
    if (!status.success)
      throw new HttpError(
        400,
        'bad_request',
        `status: use open, inspecting, decided or closed (got ${raw})`,
      );
    sendJson(ctx.res, 200, { cases: cases.list(status.data) });
  });
  router.on('GET', '/api/admin/cases/:id', (ctx) => {
    checkAdmin(ctx, deps);
    sendJson(ctx.res, 200, cases.details(ctx.params.id!));
  });
  router.on('POST', '/api/admin/cases/:id/decision', async (ctx) => {
    checkAdmin(ctx, deps);
    const body = parseBody(decisionBody, await readJson(ctx.req, limits.jsonBytes));
    sendJson(ctx.res, 200, { case: cases.decide(ctx.params.id!, body) });
  });
  router.on('POST', '/api/admin/cases/:id/close', async (ctx) => {
    checkAdmin(ctx, deps);
    const c = cases.close(ctx.params.id!);
    await media.closeRoom(c.id);
    sendJson(ctx.res, 200, { case: c });
  });
  router.on('POST', '/api/admin/cases/:id/links', async (ctx) => {
    checkAdmin(ctx, deps);
    const body = parseBody(linkBody, await readJson(ctx.req, limits.jsonBytes));
    const link = cases.issueLink(
      ctx.params.id!,
      body.role,
      body.ttl ? parseDuration(body.ttl) : undefined,
    );
    sendJson(ctx.res, 201, { link });
  });
  router.on('POST', '/api/admin/cases/:id/revoke', async (ctx) => {
    checkAdmin(ctx, deps);
    const body = parseBody(revokeBody, await readJson(ctx.req, limits.jsonBytes));
    const revoked = cases.revoke(ctx.params.id!, body.role);
    await Promise.all(
      cases
        .liveSessions(ctx.params.id!, body.role)
        .map((sid) => media.endSession(ctx.params.id!, sid)),
    );
    sendJson(ctx.res, 200, { revoked });
  });

  // ---- case API for the pages ----
  router.on('GET', '/api/cases/:id', (ctx) => {
    const who = cases.authorize(ctx.params.id!, bearerToken(ctx.req, ctx.url));
    const c = cases.getCase(ctx.params.id!);
    sendJson(ctx.res, 200, {
      case: caseForRole(c, who.role),
      role: who.role,
      linkExpiresAt: who.expiresAt,
      iceServers: iceServersFor(config, ctx.params.id!, who),
    });
  });
  router.on('POST', '/api/cases/:id/messages', async (ctx) => {
    const id = ctx.params.id!;
    const who = cases.authorize(id, bearerToken(ctx.req), { write: true });
    const body = parseBody(
      messageBody(limits.messageChars),
      await readJson(ctx.req, limits.jsonBytes),
    );
    const { message, created } = cases.postMessage(id, who, body);
    sendJson(ctx.res, created ? 201 : 200, { message });
  });
  router.on('POST', '/api/cases/:id/consent', async (ctx) => {
    const id = ctx.params.id!;
    const who = cases.authorize(id, bearerToken(ctx.req), { write: true, role: 'buyer' });
    parseBody(consentBody, await readJson(ctx.req, limits.jsonBytes));
    cases.consent(id, who);
    sendJson(ctx.res, 201, { ok: true });
  });
  router.on('POST', '/api/cases/:id/decision', async (ctx) => {
    const id = ctx.params.id!;
    const who = cases.authorize(id, bearerToken(ctx.req), { write: true, role: 'staff' });
    const body = parseBody(decisionBody, await readJson(ctx.req, limits.jsonBytes));
    sendJson(ctx.res, 200, { case: cases.decide(id, body, `staff:${who.linkId}`) });
  });
  router.on('POST', '/api/cases/:id/snapshots', async (ctx) => {
    const id = ctx.params.id!;
    const who = cases.authorize(id, bearerToken(ctx.req), { write: true, role: 'staff' });
    const image = await readBody(ctx.req, limits.snapshotBytes, ['image/jpeg', 'image/png']);
    const snapshot = cases.addSnapshot(id, who, image);
    sendJson(ctx.res, 201, {
      snapshot: { ...snapshot, url: `/api/cases/${id}/snapshots/${snapshot.id}` },
    });
  });
  router.on('GET', '/api/cases/:id/snapshots', (ctx) => {
    const id = ctx.params.id!;
    cases.authorize(id, bearerToken(ctx.req, ctx.url), { role: 'staff' });
    const snapshots = cases
      .snapshots(id)
      .map((s) => ({ ...s, url: `/api/cases/${id}/snapshots/${s.id}` }));
    sendJson(ctx.res, 200, { snapshots });
  });
  router.on('GET', '/api/cases/:id/snapshots/:sid', async (ctx) => {
    const id = ctx.params.id!;
    cases.authorize(id, bearerToken(ctx.req, ctx.url), { role: 'staff' });
    const { record, file } = cases.snapshotFile(id, ctx.params.sid!);
    const body = await readFile(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      throw new HttpError(
        410,
        'media_erased',
        `snapshot ${record.id} is no longer stored (the case media was erased or pruned)`,
      );
    });
    ctx.res.writeHead(200, {
      'Content-Type': record.mime,
      'Content-Length': body.length,
      'Cache-Control': 'private, max-age=3600',
    });
    ctx.res.end(body);
  });
  router.on('GET', '/api/cases/:id/events', (ctx) => {
    const id = ctx.params.id!;
    const who = cases.authorize(id, bearerToken(ctx.req, ctx.url));
    const header = ctx.req.headers['last-event-id'] ?? ctx.url.searchParams.get('since') ?? '0';
    const since = Number(Array.isArray(header) ? header[0] : header);
    if (!Number.isInteger(since) || since < 0) {
      throw new HttpError(
        400,
        'bad_request',
        'Last-Event-ID must be a whole number (the id of the last event seen)',
      );
    }
    const { res } = ctx;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      ...CORS,
    });
    res.write('retry: 2000\n\n');
    // subscribe before replaying so nothing falls between the two; drop duplicates by seq
    let lastSent = since;
    const send = (e: ChainedEvent) => {
      if (e.seq <= lastSent || !PAGE_EVENT_TYPES.has(e.type)) {
        lastSent = Math.max(lastSent, e.seq);
        return;
      }
      lastSent = e.seq;
      res.write(pageEvent(e, who.role));
    };
    const stop = cases.onEvent(id, send);
    for (const e of cases.events(id, since)) send(e);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    deps.sse.add(res);
    const end = () => {
      clearInterval(ping);
      stop();
      deps.sse.delete(res);
    };
    res.on('close', end);
  });

  // ---- media: WHIP / WHEP ----
  for (const kind of ['whip', 'whep'] as const) {
    router.on('OPTIONS', `/${kind}/:caseId`, ({ res }) => {
      res.writeHead(204, { ...CORS, 'Accept-Post': 'application/sdp' });
      res.end();
    });
    router.on('OPTIONS', `/${kind}/:caseId/:sessionId`, ({ res }) => {
      res.writeHead(204, { ...CORS, 'Accept-Patch': SDPFRAG_TYPE });
      res.end();
    });
    router.on('POST', `/${kind}/:caseId`, async (ctx) => {
      const caseId = ctx.params.caseId!;
      const who = cases.authorize(caseId, bearerToken(ctx.req), { write: true });
      // a publisher that cannot be recorded is refused before anything is negotiated
      if (kind === 'whip') await deps.admitPublisher?.();
      const sdp = (await readBody(ctx.req, limits.sdpBytes, ['application/sdp'])).toString('utf8');
      if (!sdp.startsWith('v=0'))
        throw new HttpError(
          400,
          'bad_sdp',
          'the body is not an SDP offer (it must start with v=0)',
        );
      const direction = kind === 'whip' ? 'publish' : 'subscribe';
      const { sessionId, answerSdp } =
        kind === 'whip'
          ? await media.publish(caseId, who.role, sdp)
          : await media.subscribe(caseId, who.role, sdp);
      cases.sessionStarted({
        id: sessionId,
        caseId,
        role: who.role,
        direction,
        linkId: who.linkId,
      });
      ctx.res.writeHead(201, {
        ...CORS,
        'Content-Type': 'application/sdp',
        Location: `/${kind}/${caseId}/${sessionId}`,
        ETag: iceEntityTag(sessionId, 0),
        'Accept-Patch': SDPFRAG_TYPE,
      });
      ctx.res.end(answerSdp);
    });
    router.on('DELETE', `/${kind}/:caseId/:sessionId`, async (ctx) => {
      const caseId = ctx.params.caseId!;
      cases.authorize(caseId, bearerToken(ctx.req));
      if (!(await media.endSession(caseId, ctx.params.sessionId!))) {
        throw new HttpError(
          404,
          'session_not_found',
          `no live session ${ctx.params.sessionId} in case ${caseId}`,
        );
      }
      ctx.res.writeHead(200, CORS);
      ctx.res.end();
    });
    if (kind === 'whep') {
      // A viewer page's keyframe request: its video stands still while packets arrive
      // (src/node/web/js/stall.js), about 2 s before the browser would ask on its own.
      router.on('OPTIONS', `/whep/:caseId/:sessionId/keyframe`, ({ res }) => {
        res.writeHead(204, CORS);
        res.end();
      });
      router.on('POST', `/whep/:caseId/:sessionId/keyframe`, async (ctx) => {
        const caseId = ctx.params.caseId!;
        const sessionId = ctx.params.sessionId!;
        const who = cases.authorize(caseId, bearerToken(ctx.req), { write: true });
        if (!(await media.viewerStalled(caseId, sessionId, who.role))) {
          throw new HttpError(
            404,
            'session_not_found',
            `no live WHEP session ${sessionId} with video in case ${caseId} for this link; start a new one with POST /whep/${caseId}`,
            CORS,
          );
        }
        ctx.res.writeHead(204, CORS);
        ctx.res.end();
      });
    }
    // trickle ICE and ICE restart (RFC 9725 section 4.3)
    router.on('PATCH', `/${kind}/:caseId/:sessionId`, async (ctx) => {
      const caseId = ctx.params.caseId!;
      const sessionId = ctx.params.sessionId!;
      const who = cases.authorize(caseId, bearerToken(ctx.req), { write: true });
      const body = await readBody(ctx.req, limits.sdpBytes, [SDPFRAG_TYPE]);
      const session = await media.session(caseId, sessionId);
      const direction = kind === 'whip' ? 'publish' : 'subscribe';
      if (!session || session.direction !== direction || session.role !== who.role) {
        throw new HttpError(
          404,
          'session_not_found',
          `no live ${kind.toUpperCase()} session ${sessionId} in case ${caseId} for this link; start a new one with POST /${kind}/${caseId}`,
          CORS,
        );
      }
      const ifMatch = ctx.req.headers['if-match'];
      if (!ifMatchHolds(ifMatch, session.iceEntityTag)) {
        throw new HttpError(
          412,
          'precondition_failed',
          `If-Match ${ifMatch} does not match the session's current entity-tag ${session.iceEntityTag} (an ICE restart changed it); use If-Match: * to restart ICE`,
          { ...CORS, ETag: session.iceEntityTag },
        );
      }
      let fragment: RemoteIceFragment;
      try {
        fragment = parseSdpFrag(body.toString('utf8'));
      } catch (err) {
        if (err instanceof SdpFragError) throw new HttpError(400, 'bad_sdpfrag', err.message, CORS);
        throw err;
      }
      const { local, iceEntityTag } = await media.patchIce(caseId, sessionId, fragment);
      if (!local) {
        ctx.res.writeHead(204, { ...CORS, ETag: iceEntityTag });
        ctx.res.end();
        return;
      }
      const text = buildSdpFrag(local);
      ctx.res.writeHead(200, {
        ...CORS,
        'Content-Type': SDPFRAG_TYPE,
        'Content-Length': Buffer.byteLength(text),
        ETag: iceEntityTag,
        'Cache-Control': 'no-store',
      });
      ctx.res.end(text);
    });
  }

  // ---- pages ----
  router.on('GET', '/', ({ res }) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('returncam media node. Open a buyer or staff link to join a case.\n');
  });
  router.on('GET', '/b/:caseId', (ctx) => servePage(ctx, 'buyer'));
  router.on('GET', '/s/:caseId', (ctx) => servePage(ctx, 'staff'));
  router.on('GET', '/static/:file', (ctx) => serveStatic(ctx, ctx.params.file!));
  router.on('GET', '/static/:dir/:file', (ctx) =>
    serveStatic(ctx, `${ctx.params.dir}/${ctx.params.file}`),
  );
}

export { CORS };
