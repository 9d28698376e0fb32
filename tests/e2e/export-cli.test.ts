import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import { CASE_COLUMNS } from '../../src/node/evidence/caseRows.ts';
import { EvidenceStore } from '../../src/node/evidence/EvidenceStore.ts';
import { verifyChain } from '../../src/node/store/eventChain.ts';
import { runCli } from '../helpers/cli.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

interface Created {
  case: { id: string };
  links: { buyer: { token: string }; staff: { token: string } };
}

/** Rewrites one entry of a zip (the rest byte for byte). */
async function rewriteEntry(
  file: string,
  name: string,
  change: (b: Buffer) => Buffer,
  out: string,
) {
  const entries = await new Promise<Map<string, Buffer>>((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const map = new Map<string, Buffer>();
      zip.on('entry', (e: yauzl.Entry) =>
        zip.openReadStream(e, (err2, s) => {
          if (err2 || !s) return reject(err2);
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            map.set(e.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        }),
      );
      zip.on('end', () => resolve(map));
      zip.readEntry();
    });
  });
  const zip = new yazl.ZipFile();
  for (const [n, data] of entries) zip.addBuffer(n === name ? change(data) : data, n);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  writeFileSync(out, Buffer.concat(chunks));
}

describe('returncam export / report / node key (CLI against a running node’s data directory)', () => {
  let t: TestNode;
  let work: string;
  const ids: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'returncam-export-cli-'));
    t = await startTestNode();
    const create = async (orderId: string, sku: string, reason: string, warehouseId: string) => {
      const res = await t.admin('/api/admin/cases', {
        method: 'POST',
        body: JSON.stringify({ orderId, sku, reason, warehouseId, marketplace: 'shopify' }),
      });
      return (await res.json()) as Created;
    };
    const a = await create('ORD-1001', 'MUG-350', 'damaged', 'de-fra-1');
    const b = await create('ORD-1002', 'MUG-350', 'unwanted', 'us-nyc-1');
    const c = await create('ORD-1003', 'LAMP-9', 'defective', 'de-fra-1');
    ids.a = a.case.id;
    ids.b = b.case.id;
    ids.c = c.case.id;
    // case A: a call with one reconnect, a snapshot, a prompt, a decision, closed
    const cases = t.node.cases;
    cases.sessionStarted({
      id: 'sess-a1',
      caseId: ids.a,
      role: 'buyer',
      direction: 'publish',
      linkId: null,
    });
    cases.sessionEnded(
      { id: 'sess-a1', caseId: ids.a, role: 'buyer', direction: 'publish' },
      'network',
    );
    cases.sessionStarted({
      id: 'sess-a2',
      caseId: ids.a,
      role: 'buyer',
      direction: 'publish',
      linkId: null,
    });
    new EvidenceStore(t.node.store).setSessionQuality('sess-a2', {
      rttMs: 180,
      lossRatio: 0.02,
      freezeRatio: 0.05,
    });
    const jpeg = execFileSync(ffmpegPath(), [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=480x640:rate=1',
      '-frames:v',
      '1',
      '-f',
      'mjpeg',
      '-',
    ]);
    const staff = (path: string, init: RequestInit) =>
      fetch(`${t.url}/api/cases/${ids.a}${path}`, {
        ...init,
        headers: {
          Authorization: `Bearer ${a.links.staff.token}`,
          ...(init.headers as Record<string, string>),
        },
      });
    expect(
      (
        await staff('/snapshots', {
          method: 'POST',
          headers: { 'Content-Type': 'image/jpeg' },
          body: jpeg,
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await staff('/messages', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ clientId: 'p1', text: 'Show the base, please', kind: 'prompt' }),
        })
      ).status,
    ).toBe(201);
    cases.decide(ids.a, { outcome: 'refund', disposition: 'dispose' });
    cases.sessionEnded(
      { id: 'sess-a2', caseId: ids.a, role: 'buyer', direction: 'publish' },
      'left',
    );
    cases.close(ids.a);
    cases.decide(ids.b, { outcome: 'rejected', disposition: 'return_to_sender' });
  });

  afterAll(async () => {
    await t?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('node key prints the public key and key id the node made at first start', async () => {
    const r = await runCli(['node', 'key', '--data', t.dataDir]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`key id ${t.node.evidenceKey.keyId}`);
    expect(r.stdout).toContain(t.node.evidenceKey.publicPem.trim());
    const empty = await runCli(['node', 'key', '--data', work]);
    expect(empty.exitCode).toBe(1);
    expect(empty.stderr).toMatch(/no evidence key in .*the node creates it at its first start/);
  });

  it('export case --for amex writes the bundle and the Amex files; verify passes, then names a tampered file', async () => {
    const zip = join(work, 'a.zip');
    const r = await runCli([
      'export',
      'case',
      ids.a,
      '--data',
      t.dataDir,
      '--out',
      zip,
      '--for',
      'amex',
      '--by',
      'desk@example',
    ]);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*a\.zip \(.+, \d+ files\)$/m);
    expect(r.stdout).toMatch(/within American Express's limits/);
    expect(r.stderr).toMatch(/making the files American Express takes/);
    const dir = join(work, 'a-amex');
    expect(readdirSync(dir).sort()).toEqual(['order-ORD-1001-inspection.pdf', 'response.txt']);
    expect(readFileSync(join(dir, 'response.txt'), 'utf8')).toMatch(/No video recording was kept/);
    // the export is in the timeline, written while the node runs, and the chain holds
    const events = t.node.store.events(ids.a);
    expect(events.at(-1)).toMatchObject({ type: 'evidence.exported', actor: 'admin:desk@example' });
    expect(events.at(-1)!.data).toMatchObject({ by: 'desk@example', channel: 'amex' });
    expect(verifyChain(events)).toEqual([]);

    const ok = await runCli(['export', 'verify', zip, '--data', t.dataDir]);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/^signature {2}valid/m);
    expect(ok.stdout).toMatch(/^OK: every file, the signature and the event chain hold$/m);
    const withKey = await runCli([
      'export',
      'verify',
      zip,
      '--key',
      join(t.dataDir, 'evidence.pub'),
      '--json',
    ]);
    expect(withKey.exitCode).toBe(0);
    expect(JSON.parse(withKey.stdout)).toMatchObject({ version: 1, ok: true, signature: 'valid' });

    const bad = join(work, 'a-bad.zip');
    await rewriteEntry(zip, 'summary.html', (b) => Buffer.concat([b, Buffer.from(' ')]), bad);
    const failed = await runCli(['export', 'verify', bad, '--data', t.dataDir]);
    expect(failed.exitCode).toBe(1);
    expect(failed.stdout).toMatch(/^ALTERED +summary\.html was altered: sha256 /m);
    expect(failed.stdout).toMatch(/^FAILED: 1 problem\(s\)$/m);

    const untrusted = await runCli(['export', 'verify', zip, '--data', work]);
    expect(untrusted.exitCode).toBe(1);
    expect(untrusted.stdout).toMatch(/no trusted public key/);
  });

  it('usage errors exit 2; an unknown case exits 1 with its message', async () => {
    const channel = await runCli(['export', 'case', ids.a, '--data', t.dataDir, '--for', 'visa']);
    expect(channel.exitCode).toBe(2);
    expect(channel.stderr).toMatch(/Allowed choices are stripe, paypal, ebay, amex, generic/);
    const format = await runCli(['export', 'cases', '--data', t.dataDir]);
    expect(format.exitCode).toBe(2);
    const unknown = await runCli([
      'export',
      'case',
      'c_nope',
      '--data',
      t.dataDir,
      '--out',
      join(work, 'x.zip'),
    ]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toBe('returncam: case c_nope does not exist');
    expect(existsSync(join(work, 'x.zip'))).toBe(false);
    // an earlier bundle is never overwritten
    const again = await runCli([
      'export',
      'case',
      ids.a,
      '--data',
      t.dataDir,
      '--out',
      join(work, 'a.zip'),
    ]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/a\.zip exists; pass another --out/);
  });

  it('export cases: CSV and NDJSON round-trip with the right columns and durations; filters apply', async () => {
    const csv = await runCli(['export', 'cases', '--data', t.dataDir, '--format', 'csv']);
    expect(csv.exitCode).toBe(0);
    const rows = parse(csv.stdout, { columns: true }) as Record<string, string>[];
    expect(Object.keys(rows[0]!)).toEqual([...CASE_COLUMNS]);
    expect(rows.map((r) => r.case_id)).toEqual([ids.a, ids.b, ids.c]);
    const a = rows[0]!;
    const c = t.node.store.getCase(ids.a)!;
    expect(Number(a.created_to_joined_s)).toBe((c.firstJoinedAt! - c.createdAt) / 1000);
    expect(Number(a.created_to_decided_s)).toBe((c.decidedAt! - c.createdAt) / 1000);
    expect(Number(a.decided_to_closed_s)).toBe((c.closedAt! - c.decidedAt!) / 1000);
    expect(a).toMatchObject({
      order_id: 'ORD-1001',
      sku: 'MUG-350',
      warehouse_id: 'de-fra-1',
      outcome: 'refund',
      disposition: 'dispose',
      status: 'closed',
      snapshots: '1',
      messages: '1',
      prompts: '1',
      calls: '1',
      reconnects: '1',
      decided_on_first_call: 'true',
      rtt_ms: '180',
      packet_loss: '0.02',
      freeze_ratio: '0.05',
      video_minutes: '0',
    });
    expect(rows[2]).toMatchObject({
      status: 'open',
      decided_at: '',
      created_to_decided_s: '',
      rtt_ms: '',
    });

    const out = join(work, 'cases.ndjson');
    const nd = await runCli([
      'export',
      'cases',
      '--data',
      t.dataDir,
      '--format',
      'ndjson',
      '--warehouse',
      'de-fra-1',
      '--out',
      out,
    ]);
    expect(nd.exitCode).toBe(0);
    expect(nd.stderr).toMatch(/wrote 2 case\(s\)/);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.case_id)).toEqual([ids.a, ids.c]);
    expect(lines[0]!.created_to_decided_s).toBe((c.decidedAt! - c.createdAt) / 1000);

    const none = await runCli([
      'export',
      'cases',
      '--data',
      t.dataDir,
      '--format',
      'json',
      '--since',
      '2999-01-01',
    ]);
    expect(none.exitCode).toBe(0);
    expect(JSON.parse(none.stdout)).toMatchObject({
      version: 1,
      cases: [],
      filter: { since: '2999-01-01T00:00:00.000Z' },
    });
  });

  it('report prints tables and writes an HTML report with inline SVG charts', async () => {
    const html = join(work, 'report.html');
    const r = await runCli(['report', '--data', t.dataDir, '--html', html]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^3 case\(s\), 2 decided/m);
    expect(r.stdout).toMatch(/^created → decided +2 /m);
    expect(r.stdout).toMatch(/^MUG-350 +2 +2 +1 +50\.0 %$/m);
    expect(r.stdout).toMatch(
      /^decided on the first call: 1 of 1 \(100\.0 %\); 1 decided without a call$/m,
    );
    const page = readFileSync(html, 'utf8');
    expect(page.match(/<svg /g)?.length).toBeGreaterThanOrEqual(5);
    expect(page).not.toMatch(/<script/);
    expect(page).toContain('MUG-350');
  });
});
