import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import { verifyChain } from '../../src/node/store/eventChain.ts';
import { readSse, startTestNode, type TestNode } from '../helpers/node.ts';
import { testDir } from '../helpers/tmp.ts';

let t: TestNode;

interface Created {
  case: { id: string; status: string };
  links: {
    buyer: { token: string; url: string; expiresAt: number };
    staff: { token: string; url: string };
  };
}

async function createCase(body: Record<string, unknown> = {}): Promise<Created> {
  const res = await t.admin('/api/admin/cases', {
    method: 'POST',
    body: JSON.stringify({ orderId: 'ORD-1', sku: 'SKU-1', reason: 'damaged', ...body }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Created;
}

function asUser(token: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${t.url}${path}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(typeof init.body === 'string' ? { 'Content-Type': 'application/json' } : {}),
      ...(init.headers as Record<string, string> | undefined),
    },
  });
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

beforeAll(async () => {
  t = await startTestNode();
});
afterAll(async () => {
  await t.close();
});

describe('health and metrics', () => {
  it('answers /healthz', async () => {
    const res = await fetch(`${t.url}/healthz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; version: string };
    expect(body.status).toBe('ok');
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
  });
  it('serves Prometheus text with the media and process series', async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    for (const name of [
      'returncam_active_cases',
      'returncam_peers',
      'returncam_rtp_packets_in_total',
      'returncam_rtp_bytes_out_total',
      'returncam_nacks_received_total',
      'returncam_plis_received_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      expect(text).toMatch(new RegExp(`^${name} \\d`, 'm'));
    }
  });
});

describe('admin API', () => {
  it('refuses requests without or with a wrong admin token', async () => {
    const none = await fetch(`${t.url}/api/admin/cases`);
    expect(await errorOf(none)).toMatchObject({ status: 401, code: 'token_missing' });
    const wrong = await fetch(`${t.url}/api/admin/cases`, {
      headers: { Authorization: 'Bearer nope' },
    });
    expect(await errorOf(wrong)).toMatchObject({ status: 401, code: 'token_bad_admin' });
  });
  it('writes the generated admin token with mode 0600', async () => {
    const { statSync } = await import('node:fs');
    expect(statSync(join(t.dataDir, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(t.dataDir, 'token.key')).mode & 0o777).toBe(0o600);
  });
  it('creates a case with two links and a hash-chained timeline', async () => {
    const c = await createCase({ marketplace: 'ebay', warehouseId: 'FRA1' });
    expect(c.case.id).toMatch(/^c_[\w-]{16}$/);
    expect(c.case.status).toBe('open');
    expect(c.links.buyer.url).toBe(`${t.url}/b/${c.case.id}#t=${c.links.buyer.token}`);
    expect(c.links.staff.url).toContain(`/s/${c.case.id}#t=`);
    expect(c.links.buyer.expiresAt - Date.now()).toBeGreaterThan(71 * 3600_000);
    const show = (await (await t.admin(`/api/admin/cases/${c.case.id}`)).json()) as {
      events: Parameters<typeof verifyChain>[0];
    };
    expect(show.events.map((e) => e.type)).toEqual(['case.created', 'link.issued', 'link.issued']);
    expect(verifyChain(show.events)).toEqual([]);
  });
  it.each([
    [{ orderId: 'O', sku: 'S', reason: 'broken' }, 'reason'],
    [{ orderId: '', sku: 'S', reason: 'damaged' }, 'orderId'],
    [{ sku: 'S', reason: 'damaged' }, 'orderId'],
    [{ orderId: 'O', sku: 'S', reason: 'damaged', colour: 'red' }, 'colour: unknown field'],
  ])('rejects a bad case body %j naming the field', async (body, field) => {
    const res = await t.admin('/api/admin/cases', { method: 'POST', body: JSON.stringify(body) });
    const err = await errorOf(res);
    expect(err.status).toBe(400);
    expect(err.message).toContain(field);
  });
  it('decides and closes, moving the status forward', async () => {
    const c = await createCase();
    const decided = await t.admin(`/api/admin/cases/${c.case.id}/decision`, {
      method: 'POST',
      body: JSON.stringify({ outcome: 'refund', disposition: 'dispose', note: 'cracked' }),
    });
    expect(((await decided.json()) as { case: { status: string } }).case.status).toBe('decided');
    const closed = await t.admin(`/api/admin/cases/${c.case.id}/close`, { method: 'POST' });
    const body = (await closed.json()) as { case: { status: string; closedAt: number } };
    expect(body.case.status).toBe('closed');
    expect(body.case.closedAt).toBeGreaterThan(0);
    const again = await t.admin(`/api/admin/cases/${c.case.id}/decision`, {
      method: 'POST',
      body: JSON.stringify({ outcome: 'rejected' }),
    });
    expect(await errorOf(again)).toMatchObject({ status: 409, code: 'case_closed' });
  });
});

describe('link tokens', () => {
  let a: Created;
  let b: Created;
  beforeAll(async () => {
    a = await createCase();
    b = await createCase();
  });
  it('opens its own case', async () => {
    const res = await asUser(a.links.buyer.token, `/api/cases/${a.case.id}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { role: string; case: Record<string, unknown> };
    expect(body.role).toBe('buyer');
    expect(body.case).not.toHaveProperty('note');
  });
  it('never opens another case', async () => {
    const res = await asUser(a.links.buyer.token, `/api/cases/${b.case.id}`);
    expect(await errorOf(res)).toMatchObject({ status: 403, code: 'token_wrong_case' });
    const whip = await fetch(`${t.url}/whip/${b.case.id}`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${a.links.buyer.token}`,
        'Content-Type': 'application/sdp',
      },
      body: 'v=0\r\n',
    });
    expect(whip.status).toBe(403);
  });
  it('refuses a tampered token', async () => {
    const tok = a.links.buyer.token;
    const tampered = `${tok.slice(0, -3)}${tok.endsWith('xyz') ? 'abc' : 'xyz'}`;
    const res = await asUser(tampered, `/api/cases/${a.case.id}`);
    expect(await errorOf(res)).toMatchObject({ status: 401, code: 'token_bad_signature' });
    expect(res.headers.get('www-authenticate')).toContain('Bearer');
  });
  it('refuses an expired token', async () => {
    const res = await t.admin(`/api/admin/cases/${a.case.id}/links`, {
      method: 'POST',
      body: JSON.stringify({ role: 'buyer', ttl: '1ms' }),
    });
    const { link } = (await res.json()) as { link: { token: string } };
    await new Promise((r) => setTimeout(r, 10));
    const err = await errorOf(await asUser(link.token, `/api/cases/${a.case.id}`));
    expect(err).toMatchObject({ status: 401, code: 'token_expired' });
    expect(err.message).toContain('expired');
  });
  it('stops working once revoked, and a new link works', async () => {
    const c = await createCase();
    expect((await asUser(c.links.buyer.token, `/api/cases/${c.case.id}`)).status).toBe(200);
    const rev = await t.admin(`/api/admin/cases/${c.case.id}/revoke`, {
      method: 'POST',
      body: JSON.stringify({ role: 'buyer' }),
    });
    expect(await rev.json()).toEqual({ revoked: 1 });
    const err = await errorOf(await asUser(c.links.buyer.token, `/api/cases/${c.case.id}`));
    expect(err).toMatchObject({ status: 401, code: 'token_revoked' });
    // staff links are untouched
    expect((await asUser(c.links.staff.token, `/api/cases/${c.case.id}`)).status).toBe(200);
    const fresh = await t.admin(`/api/admin/cases/${c.case.id}/links`, {
      method: 'POST',
      body: JSON.stringify({ role: 'buyer' }),
    });
    const { link } = (await fresh.json()) as { link: { token: string } };
    expect((await asUser(link.token, `/api/cases/${c.case.id}`)).status).toBe(200);
  });
  it('lets only staff decide and only buyers consent', async () => {
    const d = await asUser(a.links.buyer.token, `/api/cases/${a.case.id}/decision`, {
      method: 'POST',
      body: JSON.stringify({ outcome: 'refund' }),
    });
    expect(await errorOf(d)).toMatchObject({ status: 403, code: 'wrong_role' });
    const consent = await asUser(a.links.staff.token, `/api/cases/${a.case.id}/consent`, {
      method: 'POST',
      body: JSON.stringify({ accepted: true }),
    });
    expect(consent.status).toBe(403);
  });
});

describe('chat and events', () => {
  it('stores messages in order, re-sends are idempotent, and catch-up replays what was missed', async () => {
    const c = await createCase();
    const post = (token: string, clientId: string, text: string, kind = 'text') =>
      asUser(token, `/api/cases/${c.case.id}/messages`, {
        method: 'POST',
        body: JSON.stringify({ clientId, text, kind }),
      });
    const first = await post(c.links.buyer.token, 'b-1', 'hello, the handle is cracked');
    expect(first.status).toBe(201);
    const again = await post(c.links.buyer.token, 'b-1', 'hello, the handle is cracked');
    expect(again.status).toBe(200);
    const m1 = ((await first.json()) as { message: { id: number } }).message;
    expect(((await again.json()) as { message: { id: number } }).message.id).toBe(m1.id);
    expect((await post(c.links.staff.token, 's-1', 'Show the label', 'prompt')).status).toBe(201);
    expect((await post(c.links.buyer.token, 'b-2', 'try this', 'prompt')).status).toBe(403);
    expect((await post(c.links.staff.token, 's-2', 'thanks')).status).toBe(201);

    const sse = `${t.url}/api/cases/${c.case.id}/events?access_token=${encodeURIComponent(c.links.buyer.token)}`;
    const all = await readSse(sse, {
      until: (ev) => ev.filter((e) => e.event === 'message.posted').length >= 3,
    });
    const texts = all
      .filter((e) => e.event === 'message.posted')
      .map((e) => (JSON.parse(e.data) as { data: { text: string; kind: string } }).data);
    expect(texts).toEqual([
      { clientId: 'b-1', role: 'buyer', kind: 'text', text: 'hello, the handle is cracked' },
      { clientId: 's-1', role: 'staff', kind: 'prompt', text: 'Show the label' },
      { clientId: 's-2', role: 'staff', kind: 'text', text: 'thanks' },
    ]);
    // internal events (links) are not on the pages' stream
    expect(all.map((e) => e.event)).not.toContain('link.issued');

    // reconnect after the second message: only what came after it
    const secondId = all.filter((e) => e.event === 'message.posted')[1]!.id!;
    const live = readSse(sse, {
      headers: { 'Last-Event-ID': String(secondId) },
      until: (ev) => ev.some((e) => e.data.includes('arrived live')),
    });
    await new Promise((r) => setTimeout(r, 200));
    expect((await post(c.links.staff.token, 's-3', 'arrived live')).status).toBe(201);
    const caught = (await live).filter((e) => e.event === 'message.posted');
    expect(caught.map((e) => (JSON.parse(e.data) as { data: { text: string } }).data.text)).toEqual(
      ['thanks', 'arrived live'],
    );
  });

  it('refuses chat on a closed case and keeps what was stored', async () => {
    const c = await createCase();
    await asUser(c.links.buyer.token, `/api/cases/${c.case.id}/messages`, {
      method: 'POST',
      body: JSON.stringify({ clientId: 'x1', text: 'before close' }),
    });
    await t.admin(`/api/admin/cases/${c.case.id}/close`, { method: 'POST' });
    const res = await asUser(c.links.buyer.token, `/api/cases/${c.case.id}/messages`, {
      method: 'POST',
      body: JSON.stringify({ clientId: 'x2', text: 'after close' }),
    });
    expect(await errorOf(res)).toMatchObject({ status: 409, code: 'case_closed' });
    expect(t.node.cases.messages(c.case.id).map((m) => m.body)).toEqual(['before close']);
  });

  it('stores a snapshot with its hash and lists it in the timeline', async () => {
    const c = await createCase();
    const dir = testDir('returncam-snap-');
    const jpg = join(dir, 'frame.jpg');
    execFileSync(ffmpegPath(), [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=640x360',
      '-frames:v',
      '1',
      jpg,
    ]);
    const image = readFileSync(jpg);
    const res = await asUser(c.links.staff.token, `/api/cases/${c.case.id}/snapshots`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: image,
    });
    expect(res.status).toBe(201);
    const { snapshot } = (await res.json()) as {
      snapshot: { sha256: string; width: number; height: number; url: string };
    };
    expect(snapshot).toMatchObject({ width: 640, height: 360 });
    const { createHash } = await import('node:crypto');
    expect(snapshot.sha256).toBe(createHash('sha256').update(image).digest('hex'));
    const back = await asUser(c.links.staff.token, snapshot.url);
    expect(Buffer.from(await back.arrayBuffer()).equals(image)).toBe(true);
    const bogus = await asUser(c.links.staff.token, `/api/cases/${c.case.id}/snapshots`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: 'not a jpeg',
    });
    expect(await errorOf(bogus)).toMatchObject({ status: 400, code: 'bad_image' });
    const buyer = await asUser(c.links.buyer.token, `/api/cases/${c.case.id}/snapshots`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: image,
    });
    expect(buyer.status).toBe(403);
    expect(t.node.cases.snapshots(c.case.id)).toHaveLength(1);
    expect(t.node.cases.events(c.case.id).filter((e) => e.type === 'snapshot.taken')).toHaveLength(
      1,
    );
  });
});

/** Sends raw bytes so malformed requests reach the server as they are. */
function rawRequest(text: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    import('node:net').then(({ connect }) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write(text));
      let data = '';
      s.on('data', (d) => {
        data += d.toString();
      });
      s.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data }));
      s.on('error', reject);
    });
  });
}

describe('bad input', () => {
  let c: Created;
  beforeAll(async () => {
    c = await createCase();
  });
  const msgPath = () => `/api/cases/${c.case.id}/messages`;

  it('malformed JSON is a 400 saying so', async () => {
    const res = await asUser(c.links.buyer.token, msgPath(), {
      method: 'POST',
      body: '{"clientId": "a",',
    });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: 'bad_json' });
  });
  it('a huge JSON body is a 413', async () => {
    const res = await asUser(c.links.buyer.token, msgPath(), {
      method: 'POST',
      body: JSON.stringify({ clientId: 'big', text: 'x'.repeat(200_000) }),
    });
    expect(res.status).toBe(413);
  });
  it('a too-long message is a 400 naming the field', async () => {
    const res = await asUser(c.links.buyer.token, msgPath(), {
      method: 'POST',
      body: JSON.stringify({ clientId: 'long', text: 'x'.repeat(5000) }),
    });
    const err = await errorOf(res);
    expect(err.status).toBe(400);
    expect(err.message).toContain('text');
  });
  it('the wrong content type is a 415', async () => {
    const res = await asUser(c.links.buyer.token, msgPath(), {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'hello',
    });
    expect(await errorOf(res)).toMatchObject({ status: 415, code: 'unsupported_media_type' });
  });
  it('an unknown case is a 404 for admins and a 403 for a token of another case', async () => {
    expect((await t.admin('/api/admin/cases/c_doesnotexist')).status).toBe(404);
    expect((await asUser(c.links.buyer.token, '/api/cases/c_doesnotexist')).status).toBe(403);
  });
  it('a wrong method is a 405 with Allow', async () => {
    const res = await fetch(`${t.url}/healthz`, { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
  it('an unknown path is a 404', async () => {
    expect((await fetch(`${t.url}/nope/nothing`)).status).toBe(404);
  });
  it('a WHIP body that is not SDP is a 400, a huge one a 413, a wrong type a 415', async () => {
    const whip = (body: string, type = 'application/sdp') =>
      fetch(`${t.url}/whip/${c.case.id}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${c.links.buyer.token}`, 'Content-Type': type },
        body,
      });
    expect(await errorOf(await whip('hello'))).toMatchObject({ status: 400, code: 'bad_sdp' });
    expect((await whip(`v=0\r\n${'a=x\r\n'.repeat(20_000)}`)).status).toBe(413);
    expect((await whip('v=0\r\n', 'application/json')).status).toBe(415);
    const garbage = await whip('v=0\r\nm=video this is not an m-line\r\n');
    expect(garbage.status).toBe(400);
    expect(
      ((await garbage.json()) as { error: { message: string } }).error.message.length,
    ).toBeGreaterThan(10);
  });
  it('answers CORS preflight for WHIP as browsers need', async () => {
    const res = await fetch(`${t.url}/whip/${c.case.id}`, { method: 'OPTIONS' });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toContain('Location');
    expect(res.headers.get('accept-post')).toBe('application/sdp');
  });
  it('oversized headers and garbage requests get a 4xx and the node keeps serving', async () => {
    const huge = await rawRequest(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
    );
    expect(huge.status).toBe(431);
    const garbage = await rawRequest('NOT HTTP AT ALL\r\n\r\n');
    expect(garbage.status).toBe(400);
    const bad = await new Promise<number>((resolve) => {
      const req = httpRequest(
        `${t.url}/api/cases/${c.case.id}`,
        { headers: { Authorization: 'Basic abc' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.end();
    });
    expect(bad).toBe(401);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});
