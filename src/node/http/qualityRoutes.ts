import { z } from 'zod';
import type { NodeConfig } from '../../core/config.ts';
import { HttpError } from '../../core/errors.ts';
import type { CaseService } from '../cases/CaseService.ts';
import type { EvidenceStore } from '../evidence/EvidenceStore.ts';
import { bearerToken, type Router, readJson } from './router.ts';
import { parseBody } from './schemas.ts';

/**
 * Network quality the pages measure with getStats, stored on their media session
 * (sessions.rtt_ms, loss_ratio, freeze_ratio, quality_at) for `returncam export cases`.
 * Each report overwrites the previous one; it is telemetry, not an event in the timeline.
 */

const ratio = z.number().min(0).max(1).nullable();

export const qualityBody = z.strictObject({
  /** The last path segment of the Location the WHIP or WHEP POST answered with. */
  sessionId: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[\w-]+$/, 'use the session id from the WHIP/WHEP Location'),
  rttMs: z.number().min(0).max(60_000).nullable(),
  lossRatio: ratio,
  freezeRatio: ratio,
});

export interface QualityRouteDeps {
  config: NodeConfig;
  cases: CaseService;
  evidence: EvidenceStore;
}

export function registerQualityRoutes(router: Router, deps: QualityRouteDeps): void {
  router.on('POST', '/api/cases/:id/quality', async (ctx) => {
    const id = ctx.params.id!;
    // no write check: the last report of a call may arrive just after the case was closed
    const who = deps.cases.authorize(id, bearerToken(ctx.req));
    const body = parseBody(qualityBody, await readJson(ctx.req, deps.config.limits.jsonBytes));
    const { sessionId, ...quality } = body;
    if (!deps.evidence.setOwnSessionQuality(id, who.role, sessionId, quality)) {
      throw new HttpError(
        404,
        'session_not_found',
        `no ${who.role} media session ${sessionId} in case ${id}`,
      );
    }
    ctx.res.writeHead(204, { 'Cache-Control': 'no-store' });
    ctx.res.end();
  });
}
