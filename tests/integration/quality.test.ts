import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvidenceStore } from '../../src/node/evidence/EvidenceStore.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

let t: TestNode;
let evidence: EvidenceStore;
const ids = { a: '', b: '' };
const tokens = { buyerA: '', staffA: '', staffB: '' };

function report(caseId: string, token: string, body: unknown, raw?: string): Promise<Response> {
  return fetch(`${t.url}/api/cases/${caseId}/quality`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: raw ?? JSON.stringify(body),
  });
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

function session(caseId: string, id: string) {
  return evidence.caseData(caseId)!.sessions.find((s) => s.id === id)!;
}

beforeAll(async () => {
  t = await startTestNode();
  evidence = new EvidenceStore(t.node.store);
  const cases = t.node.cases;
  const a = cases.create({ orderId: 'ORD-Q1', sku: 'SKU-Q', reason: 'damaged' });
  const b = cases.create({ orderId: 'ORD-Q2', sku: 'SKU-Q', reason: 'unwanted' });
  ids.a = a.case.id;
  ids.b = b.case.id;
  tokens.buyerA = a.links.buyer.token;
  tokens.staffA = a.links.staff.token;
  tokens.staffB = b.links.staff.token;
  const start = (id: string, caseId: string, role: 'buyer' | 'staff', publish: boolean) =>
    cases.sessionStarted({
      id,
      caseId,
      role,
      direction: publish ? 'publish' : 'subscribe',
      linkId: null,
    });
  start('qa-staff-sub', ids.a, 'staff', false);
  start('qa-buyer-pub', ids.a, 'buyer', true);
  start('qb-staff-sub', ids.b, 'staff', false);
});
afterAll(async () => {
  await t?.close();
});

describe('POST /api/cases/{id}/quality', () => {
  it('stores what a page measured on its own session (204), overwriting in place', async () => {
    const eventsBefore = t.node.cases.events(ids.a).length;
    let res = await report(ids.a, tokens.staffA, {
      sessionId: 'qa-staff-sub',
      rttMs: 12.5,
      lossRatio: 0.01,
      freezeRatio: 0.2,
    });
    expect(res.status).toBe(204);
    expect(session(ids.a, 'qa-staff-sub')).toMatchObject({
      rttMs: 12.5,
      lossRatio: 0.01,
      freezeRatio: 0.2,
      qualityAt: expect.any(Number),
    });
    res = await report(ids.a, tokens.staffA, {
      sessionId: 'qa-staff-sub',
      rttMs: 8,
      lossRatio: 0,
      freezeRatio: 0.05,
    });
    expect(res.status).toBe(204);
    expect(session(ids.a, 'qa-staff-sub')).toMatchObject({
      rttMs: 8,
      lossRatio: 0,
      freezeRatio: 0.05,
    });
    // a publisher has no freeze ratio
    res = await report(ids.a, tokens.buyerA, {
      sessionId: 'qa-buyer-pub',
      rttMs: 30,
      lossRatio: 0.004,
      freezeRatio: null,
    });
    expect(res.status).toBe(204);
    expect(session(ids.a, 'qa-buyer-pub')).toMatchObject({
      rttMs: 30,
      lossRatio: 0.004,
      freezeRatio: null,
    });
    // telemetry, not timeline
    expect(t.node.cases.events(ids.a)).toHaveLength(eventsBefore);
    // the case-data export averages the sessions that reported
    const agg = evidence.caseAggregates().find((c) => c.case.id === ids.a)!;
    expect(agg.rttMs).toBe(19);
    expect(agg.lossRatio).toBeCloseTo(0.002, 6);
    expect(agg.freezeRatio).toBe(0.05);
  });

  it('refuses bad bodies with 400 naming the field', async () => {
    const good = { sessionId: 'qa-staff-sub', rttMs: 1, lossRatio: 0, freezeRatio: 0 };
    const bad: [unknown, RegExp][] = [
      [{ ...good, lossRatio: 1.5 }, /lossRatio/],
      [{ ...good, freezeRatio: -0.1 }, /freezeRatio/],
      [{ ...good, rttMs: '12' }, /rttMs/],
      [{ ...good, extra: 1 }, /extra: unknown field/],
      [{ rttMs: 1, lossRatio: 0, freezeRatio: 0 }, /sessionId/],
      [{ ...good, sessionId: '../x' }, /sessionId/],
      [{ sessionId: 'qa-staff-sub' }, /rttMs/],
    ];
    for (const [body, message] of bad) {
      const e = await errorOf(await report(ids.a, tokens.staffA, body));
      expect(e.status, JSON.stringify(body)).toBe(400);
      expect(e.message).toMatch(message);
    }
    expect((await errorOf(await report(ids.a, tokens.staffA, undefined, '{nope'))).code).toBe(
      'bad_json',
    );
    const huge = { ...good, sessionId: 'x'.repeat(100_000) };
    expect((await report(ids.a, tokens.staffA, huge)).status).toBe(413);
    expect(session(ids.a, 'qa-staff-sub').rttMs).toBe(8);
  });

  it('answers 404 for a session of another role or case, or none; 401/403 for bad tokens', async () => {
    const body = (sessionId: string) => ({
      sessionId,
      rttMs: 99,
      lossRatio: 0.5,
      freezeRatio: 0.5,
    });
    // the buyer cannot report on the staff's session, nor the staff on the buyer's
    let e = await errorOf(await report(ids.a, tokens.buyerA, body('qa-staff-sub')));
    expect(e).toMatchObject({ status: 404, code: 'session_not_found' });
    e = await errorOf(await report(ids.a, tokens.staffA, body('qa-buyer-pub')));
    expect(e.status).toBe(404);
    // a session of case B through case A's token and path
    e = await errorOf(await report(ids.a, tokens.staffA, body('qb-staff-sub')));
    expect(e.status).toBe(404);
    e = await errorOf(await report(ids.a, tokens.staffA, body('no-such-session')));
    expect(e.status).toBe(404);
    // case B's token on case A's path
    e = await errorOf(await report(ids.a, tokens.staffB, body('qa-staff-sub')));
    expect(e).toMatchObject({ status: 403, code: 'token_wrong_case' });
    e = await errorOf(await report(ids.a, 'v1.bad.token', body('qa-staff-sub')));
    expect(e.status).toBe(401);
    expect(session(ids.a, 'qa-staff-sub')).toMatchObject({ rttMs: 8, lossRatio: 0 });
    expect(session(ids.a, 'qa-buyer-pub')).toMatchObject({ rttMs: 30, lossRatio: 0.004 });
    expect(session(ids.b, 'qb-staff-sub')).toMatchObject({ rttMs: null, qualityAt: null });
  });
});
