import { z } from 'zod';
import type { Recorder } from '../recording/Recorder.ts';
import type { RecordingLibrary } from '../recording/RecordingLibrary.ts';
import { type Ctx, type Router, readJson, sendJson } from './router.ts';
import { parseBody } from './schemas.ts';

/** Admin API for recordings: list, show, verify, retention, legal hold and erasure. */

export interface RecRoutesDeps {
  library: RecordingLibrary;
  recorder: Recorder;
  /** Throws unless the request carries the admin token (and comes from where admin may). */
  checkAdmin: (ctx: Ctx) => void;
  jsonBytes: number;
}

const text = (max: number) => z.string().trim().min(1).max(max);
const who = text(200).optional();

export const holdBody = z.strictObject({ reason: text(2000), by: who });
export const releaseBody = z.strictObject({ by: who, reason: text(2000).optional() });
export const eraseBody = z.strictObject({ reason: text(2000), by: who });
export const pruneBody = z.strictObject({ dryRun: z.boolean().optional(), by: who });

/** Bodies are optional for release and prune: an empty body is `{}`. */
async function optionalJson(ctx: Ctx, limit: number): Promise<unknown> {
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  if (!len && !ctx.req.headers['transfer-encoding']) return {};
  return readJson(ctx.req, limit);
}

export function registerRecRoutes(router: Router, deps: RecRoutesDeps): void {
  const { library, recorder, checkAdmin, jsonBytes } = deps;

  router.on('GET', '/api/admin/recordings', (ctx) => {
    checkAdmin(ctx);
    const caseId = ctx.url.searchParams.get('case') ?? undefined;
    sendJson(ctx.res, 200, { recordings: library.list({ caseId }) });
  });
  router.on('GET', '/api/admin/recordings/:id', (ctx) => {
    checkAdmin(ctx);
    sendJson(ctx.res, 200, { recording: library.get(ctx.params.id!) });
  });
  router.on('POST', '/api/admin/recordings/verify', async (ctx) => {
    checkAdmin(ctx);
    const results = [];
    for (const r of library.list()) results.push(await library.verify(r.id));
    sendJson(ctx.res, 200, { results });
  });
  router.on('POST', '/api/admin/recordings/:id/verify', async (ctx) => {
    checkAdmin(ctx);
    sendJson(ctx.res, 200, { results: [await library.verify(ctx.params.id!)] });
  });
  router.on('POST', '/api/admin/recordings/prune', async (ctx) => {
    checkAdmin(ctx);
    const body = parseBody(pruneBody, await optionalJson(ctx, jsonBytes));
    const cases = await library.prune({ dryRun: body.dryRun, by: body.by ?? 'admin' });
    sendJson(ctx.res, 200, { dryRun: body.dryRun ?? false, cases });
  });
  router.on('GET', '/api/admin/cases/:id/media', (ctx) => {
    checkAdmin(ctx);
    const id = ctx.params.id!;
    sendJson(ctx.res, 200, {
      media: library.caseMedia(id),
      recordings: library.list({ caseId: id }),
    });
  });
  router.on('POST', '/api/admin/cases/:id/hold', async (ctx) => {
    checkAdmin(ctx);
    const body = parseBody(holdBody, await readJson(ctx.req, jsonBytes));
    sendJson(ctx.res, 200, {
      media: library.hold(ctx.params.id!, body.reason, body.by ?? 'admin'),
    });
  });
  router.on('POST', '/api/admin/cases/:id/release', async (ctx) => {
    checkAdmin(ctx);
    const body = parseBody(releaseBody, await optionalJson(ctx, jsonBytes));
    sendJson(ctx.res, 200, {
      media: library.release(ctx.params.id!, body.by ?? 'admin', body.reason),
    });
  });
  router.on('POST', '/api/admin/cases/:id/erase', async (ctx) => {
    checkAdmin(ctx);
    const id = ctx.params.id!;
    const body = parseBody(eraseBody, await readJson(ctx.req, jsonBytes));
    // under legal hold nothing stops: erase refuses below
    if (library.caseMedia(id).holdAt === null) await recorder.stopCase(id);
    sendJson(ctx.res, 200, {
      erased: await library.erase(id, { reason: body.reason, by: body.by ?? 'admin' }),
    });
  });
}
