import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import nodeDataChannel from 'node-datachannel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { sha256Hex } from '../../src/core/canonical.ts';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import { imageSize } from '../../src/core/imageSize.ts';
import { verifyBundle } from '../../src/node/evidence/BundleVerifier.ts';
import { ChannelPackager } from '../../src/node/evidence/ChannelPackager.ts';
import {
  CHANNEL_IDS,
  CHANNELS,
  type ChannelProfile,
  channelViolations,
} from '../../src/node/evidence/channels.ts';
import type { ExportResult } from '../../src/node/evidence/EvidenceExporter.ts';
import { EvidenceKey } from '../../src/node/evidence/EvidenceKey.ts';
import { EvidenceStore } from '../../src/node/evidence/EvidenceStore.ts';
import { evidenceFonts } from '../../src/node/evidence/fonts.ts';
import { LocalEvidence } from '../../src/node/evidence/LocalEvidence.ts';
import type { BundleManifest } from '../../src/node/evidence/manifest.ts';
import { StillMaker } from '../../src/node/evidence/StillMaker.ts';
import { buildSummary, type SummaryStill } from '../../src/node/evidence/summary.ts';
import { verifyChain } from '../../src/node/store/eventChain.ts';
import type { RecordingRecord } from '../../src/node/store/Store.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { decode } from '../helpers/recordingMedia.ts';
import { sleep } from '../helpers/wait.ts';

/** Rendered pages and stills land here, to be looked at. */
const OUTPUT = join(import.meta.dirname, '..', 'output', 'evidence');

/** Every entry of a zip, in full. */
function unzip(file: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, Buffer>();
      zip.on('entry', (e: yauzl.Entry) => {
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) return reject(err2);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(e.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

function rezip(entries: Map<string, Buffer>, file: string): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of entries) zip.addBuffer(data, name);
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => {
      writeFileSync(file, Buffer.concat(chunks));
      resolve();
    });
    zip.outputStream.on('error', reject);
  });
}

function flipByte(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const i = Math.floor(copy.length / 2);
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}

describe('evidence bundle of a real inspection (node-datachannel publisher through a real node)', () => {
  let t: TestNode;
  let work: string;
  let caseId: string;
  let ev: LocalEvidence;
  let result: ExportResult;
  let entries: Map<string, Buffer>;
  let manifest: BundleManifest;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'returncam-evidence-test-'));
    mkdirSync(OUTPUT, { recursive: true });
    const media = await testMedia({ seconds: 5 });
    t = await startTestNode({ recording: { minFreeBytes: 1, stopFreeBytes: 0 } });
    const res = await t.admin('/api/admin/cases', {
      method: 'POST',
      body: JSON.stringify({
        orderId: 'ORD-48213',
        sku: 'KETTLE-GLASS-1.7L',
        reason: 'damaged',
        marketplace: 'ebay',
        warehouseId: 'de-fra-1',
        note: 'buyer says the glass arrived cracked',
      }),
    });
    const created = (await res.json()) as {
      case: { id: string };
      links: { buyer: { token: string }; staff: { token: string } };
    };
    caseId = created.case.id;
    const staff = created.links.staff.token;
    const buyer = created.links.buyer.token;
    const as = (token: string, path: string, init: RequestInit) =>
      fetch(`${t.url}${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) },
      });
    const post = (token: string, text: string, kind: 'text' | 'prompt') =>
      as(token, `/api/cases/${caseId}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ clientId: `m-${Math.random()}`, text, kind }),
      });
    // a staff snapshot: a frame of the buyer's video, as the staff page would capture it
    const snapshot = join(work, 'snap.jpg');
    execFileSync(ffmpegPath(), [
      '-v',
      'error',
      '-y',
      '-ss',
      '1',
      '-i',
      media.videoPath,
      '-frames:v',
      '1',
      '-q:v',
      '3',
      snapshot,
    ]);

    const publisher = new WhipPublisher({
      baseUrl: t.url,
      caseId,
      token: buyer,
      media,
      loop: false,
    });
    try {
      await publisher.start();
      await sleep(800);
      expect((await post(staff, 'Please show the label on the box', 'prompt')).status).toBe(201);
      await sleep(700);
      expect((await post(buyer, 'Here it is, the corner is dented', 'text')).status).toBe(201);
      await sleep(500);
      const snap = await as(staff, `/api/cases/${caseId}/snapshots`, {
        method: 'POST',
        headers: { 'Content-Type': 'image/jpeg' },
        body: readFileSync(snapshot),
      });
      expect(snap.status).toBe(201);
      await sleep(600);
      expect((await post(staff, 'Now the crack, closer please', 'prompt')).status).toBe(201);
      await sleep(800);
      const decided = await as(staff, `/api/cases/${caseId}/decision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          outcome: 'refund',
          disposition: 'dispose',
          note: 'glass cracked in transit',
        }),
      });
      expect(decided.status).toBe(200);
      await publisher.finished;
    } finally {
      await publisher.close();
    }
    const deadline = Date.now() + 10_000;
    let recs: RecordingRecord[] = [];
    while (Date.now() < deadline) {
      recs = t.node.recordings.list({ caseId });
      if (recs.length && recs.every((r) => r.status !== 'recording')) break;
      await sleep(100);
    }
    expect(recs.map((r) => r.status)).toEqual(['finished']);

    // the CLI's way: the data directory opened directly while the node runs
    ev = new LocalEvidence({ dataDir: t.dataDir, nodeId: 'test-node', retentionDays: 0 });
    const started = performance.now();
    result = await ev.exportCase({ caseId, out: join(work, 'bundle.zip'), by: 'tester@host' });
    console.log(
      `export: ${result.bytes} bytes, ${result.manifest.files.length} files in ${(performance.now() - started).toFixed(0)} ms`,
    );
    entries = await unzip(result.file);
    manifest = JSON.parse(entries.get('manifest.json')!.toString('utf8')) as BundleManifest;
  }, 60_000);

  afterAll(async () => {
    ev?.close();
    await t?.close();
    nodeDataChannel.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds the recording, an MP4, snapshots, watermarked stills, chat, timeline, summary, and a signed manifest of them all', async () => {
    const names = [...entries.keys()].sort();
    const rec = t.node.recordings.list({ caseId })[0]!;
    expect(names).toEqual(
      expect.arrayContaining([
        `recordings/buyer-${rec.id}.webm`,
        `video/buyer-${rec.id}.mp4`,
        'chat/transcript.txt',
        'chat/transcript.json',
        'timeline/events.json',
        'case.json',
        'summary.html',
        'summary.pdf',
        'evidence.pub',
        'manifest.json',
        'manifest.sig',
      ]),
    );
    // the original is byte for byte the recording, whose hash the timeline stored
    expect(sha256Hex(entries.get(`recordings/buyer-${rec.id}.webm`)!)).toBe(rec.sha256);
    // every file but the manifest and its signature is listed with its size and hash
    const listed = manifest.files.map((f) => f.path).sort();
    expect(listed).toEqual(names.filter((n) => n !== 'manifest.json' && n !== 'manifest.sig'));
    for (const f of manifest.files) {
      expect(sha256Hex(entries.get(f.path)!), f.path).toBe(f.sha256);
      expect(entries.get(f.path)!.length).toBe(f.bytes);
    }
    expect(manifest.node).toEqual({ id: 'test-node', keyId: t.node.evidenceKey.keyId });
    const events = t.node.store.events(caseId);
    const exported = events.at(-1)!;
    expect(exported.type).toBe('evidence.exported');
    expect(manifest.eventLog).toMatchObject({
      headSeq: exported.seq - 1,
      headHash: exported.prevHash,
    });
    expect(exported.data).toMatchObject({
      by: 'tester@host',
      channel: null,
      manifestSha256: sha256Hex(entries.get('manifest.json')!),
      bundleSha256: sha256Hex(readFileSync(result.file)),
    });
    // written by a second connection while the node ran: the chain is still whole
    expect(verifyChain(events)).toEqual([]);
    // the signature checks with the key the node made at its first start, and with openssl
    expect(
      t.node.evidenceKey.verify(entries.get('manifest.json')!, entries.get('manifest.sig')!),
    ).toBe(true);
    for (const n of ['manifest.json', 'manifest.sig', 'evidence.pub'])
      writeFileSync(join(work, n), entries.get(n)!);
    const ossl = await execa(
      'openssl',
      [
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        'evidence.pub',
        '-rawin',
        '-in',
        'manifest.json',
        '-sigfile',
        'manifest.sig',
      ],
      { cwd: work, reject: false },
    );
    expect(ossl.stdout).toMatch(/Signature Verified Successfully/);
    // chat
    const chat = entries.get('chat/transcript.txt')!.toString('utf8');
    expect(chat).toMatch(/staff \(prompt\): Please show the label on the box/);
    expect(chat).toMatch(/buyer: Here it is, the corner is dented/);
  });

  it('the MP4 decodes with ffmpeg as H.264 + AAC', async () => {
    const mp4 = [...entries.keys()].find((n) => n.endsWith('.mp4'))!;
    const file = join(work, 'copy.mp4');
    writeFileSync(file, entries.get(mp4)!);
    const d = await decode(file);
    expect(d.errors).toBe('');
    expect(d.videoFrames).toBeGreaterThan(100);
    expect(d.audioFrames).toBeGreaterThan(0);
    const probe = await execa(ffmpegPath(), ['-hide_banner', '-i', file], { reject: false });
    expect(probe.stderr).toMatch(/Video: h264/);
    expect(probe.stderr).toMatch(/Audio: aac/);
  });

  it('has a watermarked still for the snapshot, the first join, each prompt and the decision', async () => {
    const stills = manifest.files.filter((f) => f.kind === 'still').map((f) => f.path);
    expect(stills.map((s) => s.replace(/^stills\/\d+-/, '').replace('.jpg', '')).sort()).toEqual(
      ['decision', 'first-join', 'prompt', 'prompt', 'snapshot'].sort(),
    );
    const caseJson = JSON.parse(entries.get('case.json')!.toString('utf8')) as {
      stills: { file: string; kind: string; takenAt: number; source: string }[];
    };
    // the frames are the recording's at the event times: the recording covers every moment but
    // the join itself, which comes a moment before the first packet (its first frame is used)
    for (const s of caseJson.stills.filter((x) => x.kind === 'moment')) {
      if (s.file.includes('first-join'))
        expect(s.source).toMatch(/first frame, 0\.\d s after the event/);
      else expect(s.source).not.toMatch(/before the event|after the event/);
    }
    for (const s of stills) {
      const size = imageSize(entries.get(s)!);
      expect(size?.mime, s).toBe('image/jpeg');
    }
    // one watermarked still as a PNG, to look at
    const decision = stills.find((s) => s.includes('decision'))!;
    writeFileSync(join(OUTPUT, 'still-decision.jpg'), entries.get(decision)!);
    execFileSync(ffmpegPath(), [
      '-v',
      'error',
      '-y',
      '-i',
      join(OUTPUT, 'still-decision.jpg'),
      join(OUTPUT, 'still-decision.png'),
    ]);
    // the band at the bottom is dark with white text: its mean brightness is far below the picture's
    const gray = execFileSync(ffmpegPath(), [
      '-v',
      'error',
      '-i',
      join(OUTPUT, 'still-decision.jpg'),
      '-vf',
      'crop=iw:48:0:ih-48,format=gray',
      '-f',
      'rawvideo',
      '-',
    ]);
    const mean = gray.reduce((n, v) => n + v, 0) / gray.length;
    const bright = gray.filter((v) => v > 200).length / gray.length;
    expect(mean).toBeLessThan(110);
    // white text on it (the picture under the band is darkened to at most ~100)
    expect(bright).toBeGreaterThan(0.01);
  });

  it('the summary PDF opens, has every still, and renders', async () => {
    const pdf = join(work, 'summary.pdf');
    writeFileSync(pdf, entries.get('summary.pdf')!);
    const info = await execa('pdfinfo', [pdf]);
    const pages = Number(/Pages:\s+(\d+)/.exec(info.stdout)![1]);
    expect(pages).toBeGreaterThanOrEqual(2);
    expect(info.stdout).toMatch(/Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)/);
    const images = await execa('pdfimages', ['-list', pdf]);
    const imageRows = images.stdout
      .split('\n')
      .slice(2)
      .filter((l) => l.trim());
    expect(imageRows).toHaveLength(manifest.files.filter((f) => f.kind === 'still').length);
    const text = await execa('pdftotext', ['-layout', pdf, '-']);
    expect(text.stdout).toMatch(/ORD-48213/);
    expect(text.stdout).toMatch(/KETTLE-GLASS-1\.7L/);
    expect(text.stdout).toContain(t.node.recordings.list({ caseId })[0]!.sha256!);
    expect(text.stdout).toMatch(/How to verify/);
    // the PDF and its pages as PNG, to look at
    writeFileSync(join(OUTPUT, 'summary.pdf'), entries.get('summary.pdf')!);
    await execa('pdftoppm', ['-png', '-r', '72', pdf, join(OUTPUT, 'summary')]);
    const html = entries.get('summary.html')!.toString('utf8');
    for (const s of manifest.files.filter((f) => f.kind === 'still'))
      expect(html).toContain(`src="${s.path}"`);
  });

  it('every channel profile writes files within that channel’s limits, with a response text citing the recording hash', async () => {
    const rec = t.node.recordings.list({ caseId })[0]!;
    const sizes: string[] = [];
    for (const id of CHANNEL_IDS) {
      const r = await ev.exportCase({
        caseId,
        out: join(work, `bundle-${id}.zip`),
        by: 'tester@host',
        channel: id,
      });
      const ch = CHANNELS[id];
      const files = r.channel!.files;
      expect(r.channel!.violations, id).toEqual([]);
      expect(channelViolations(ch, files), id).toEqual([]);
      const uploads = files.filter((f) => f.mime !== 'text/plain');
      expect(uploads.length, id).toBeGreaterThan(0);
      for (const f of uploads) {
        const data = readFileSync(f.path);
        expect(data.length).toBe(f.bytes);
        expect(data.length).toBeLessThanOrEqual(ch.maxFileBytes);
        if (f.mime === 'application/pdf') {
          const info = await execa('pdfinfo', [f.path]);
          const pages = Number(/Pages:\s+(\d+)/.exec(info.stdout)![1]);
          expect(pages).toBe(f.pages);
          if (ch.maxPages) expect(pages).toBeLessThanOrEqual(ch.maxPages);
        } else {
          expect(imageSize(data)?.mime).toBe(f.mime);
        }
      }
      const response = readFileSync(files.find((f) => f.name === 'response.txt')!.path, 'utf8');
      expect(response).toContain(rec.sha256!);
      expect(response).toContain(r.manifestSha256);
      expect(response.length).toBeLessThanOrEqual(ch.responseMaxChars ?? 1500);
      const events = t.node.store.events(caseId);
      expect(events.at(-1)!.data).toMatchObject({ channel: id, manifestSha256: r.manifestSha256 });
      sizes.push(
        `${id}: bundle ${r.bytes} B; ${files.map((f) => `${f.name} ${f.bytes} B${f.pages ? ` ${f.pages} p` : ''}`).join(', ')}`,
      );
    }
    console.log(`channel outputs:\n  ${sizes.join('\n  ')}`);
    expect(verifyChain(t.node.store.events(caseId))).toEqual([]);
  });

  it('a tight channel gets smaller stills and a trimmed PDF until it fits, or a clear refusal', async () => {
    const caseJson = JSON.parse(entries.get('case.json')!.toString('utf8')) as {
      stills: SummaryStill[];
    };
    mkdirSync(join(work, 'stills'), { recursive: true });
    for (const s of caseJson.stills) writeFileSync(join(work, s.file), entries.get(s.file)!);
    const model = buildSummary({
      data: new EvidenceStore(t.node.store).caseData(caseId)!,
      nodeId: 'test-node',
      keyId: 'k',
      generatedAt: Date.now(),
      exportedBy: 'tester',
      recordings: [],
      stills: caseJson.stills,
      notes: [],
    });
    const fonts = evidenceFonts();
    const packager = new ChannelPackager({
      stills: new StillMaker({ fontFile: fonts.regular, workDir: work }),
      fonts,
      workDir: work,
      stillFile: (s) => join(work, s.file),
    });
    const facts = {
      caseId,
      orderId: 'ORD-48213',
      sku: 'KETTLE-GLASS-1.7L',
      reason: 'damaged',
      outcome: 'refund',
      disposition: 'dispose',
      inspectedAt: null,
      decidedAt: null,
      recordings: [],
      manifestNote: 'manifest SHA-256 x',
    };
    const tight: ChannelProfile = {
      ...CHANNELS.amex,
      maxFileBytes: 90_000,
      maxTotalBytes: 90_000,
      maxPages: 3,
    };
    const r = await packager.package(tight, model, facts, join(work, 'tight'));
    const pdf = r.files.find((f) => f.mime === 'application/pdf')!;
    console.log(
      `tight profile: ${pdf.bytes} B, ${pdf.pages} pages, stills ≤ ${r.stillMaxWidth} px q${r.stillQuality}; ${r.trimmed}`,
    );
    writeFileSync(join(OUTPUT, 'summary-tight.pdf'), readFileSync(pdf.path));
    expect(r.violations).toEqual([]);
    expect(pdf.bytes).toBeLessThanOrEqual(90_000);
    expect(pdf.pages).toBeLessThanOrEqual(3);
    // re-encoded down: a lower JPEG quality than the first step (the stills are 640 px already)
    expect(r.stillQuality).toBeGreaterThan(3);
    expect(r.trimmed).toMatch(/to fit 3 pages/);
    const impossible: ChannelProfile = { ...tight, maxFileBytes: 5_000, maxTotalBytes: 5_000 };
    await expect(
      packager.package(impossible, model, facts, join(work, 'impossible')),
    ).rejects.toThrow(
      /cannot make a summary PDF that American Express accepts \(at most 5000 bytes, 3 pages\)/,
    );
  });

  it('export verify passes on the fresh bundle', async () => {
    const r = await verifyBundle({
      file: result.file,
      keys: EvidenceKey.trustedKeys(t.dataDir),
      keySource: 'data dir',
    });
    expect(r.findings).toEqual([]);
    expect(r).toMatchObject({ ok: true, signature: 'valid', signedBy: t.node.evidenceKey.keyId });
    expect(r.events?.chainIntact).toBe(true);
    // another node's key does not vouch for it
    const other = mkdtempSync(join(tmpdir(), 'returncam-otherkey-'));
    try {
      EvidenceKey.readOrCreate(other);
      const r2 = await verifyBundle({
        file: result.file,
        keys: EvidenceKey.trustedKeys(other),
        keySource: other,
      });
      expect(r2.ok).toBe(false);
      expect(r2.signature).toBe('invalid');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('export verify fails, naming the file, after one byte flips in each kind of file', async () => {
    const keys = EvidenceKey.trustedKeys(t.dataDir);
    const kinds = new Map<string, string>();
    for (const f of manifest.files) if (!kinds.has(f.kind)) kinds.set(f.kind, f.path);
    const targets = [
      ...new Set([...kinds.values(), 'chat/transcript.json', 'manifest.json', 'manifest.sig']),
    ];
    expect(targets.length).toBeGreaterThanOrEqual(11);
    for (const target of targets) {
      const changed = new Map(entries);
      changed.set(target, flipByte(entries.get(target)!));
      const file = join(work, 'tampered.zip');
      await rezip(changed, file);
      const r = await verifyBundle({ file, keys, keySource: 'data dir' });
      expect(r.ok, target).toBe(false);
      if (target === 'manifest.json' || target === 'manifest.sig') {
        expect(r.signature, target).toBe('invalid');
        expect(r.findings.some((f) => f.kind === 'signature' && f.message.includes(target))).toBe(
          true,
        );
      } else {
        const named = r.findings.filter((f) => f.path === target);
        expect(
          named.map((f) => f.kind),
          target,
        ).toContain('altered');
        expect(named.find((f) => f.kind === 'altered')!.message).toMatch(/was altered/);
        expect(r.signature).toBe('valid');
      }
    }
  });

  it('export verify names a removed file, an added file, and an edited timeline (chain break and hash mismatch)', async () => {
    const keys = EvidenceKey.trustedKeys(t.dataDir);
    const file = join(work, 'changed.zip');
    const still = manifest.files.find((f) => f.kind === 'still')!.path;

    const removed = new Map(entries);
    removed.delete(still);
    await rezip(removed, file);
    let r = await verifyBundle({ file, keys, keySource: 'data dir' });
    expect(r.ok).toBe(false);
    expect(r.findings).toEqual([{ kind: 'missing', path: still, message: `${still} is missing` }]);

    const added = new Map(entries);
    added.set('stills/99-extra.jpg', entries.get(still)!);
    await rezip(added, file);
    r = await verifyBundle({ file, keys, keySource: 'data dir' });
    expect(r.ok).toBe(false);
    expect(r.findings).toEqual([
      expect.objectContaining({ kind: 'added', path: 'stills/99-extra.jpg' }),
    ]);

    // the decision rewritten in the timeline: "refund" becomes "rejected"
    const timeline = JSON.parse(entries.get('timeline/events.json')!.toString('utf8')) as {
      events: { seq: number; type: string; data: Record<string, unknown> }[];
    };
    const decision = timeline.events.find((e) => e.type === 'case.decided')!;
    decision.data.outcome = 'rejected';
    const edited = new Map(entries);
    edited.set('timeline/events.json', Buffer.from(JSON.stringify(timeline, null, 2)));
    await rezip(edited, file);
    r = await verifyBundle({ file, keys, keySource: 'data dir' });
    expect(r.ok).toBe(false);
    expect(r.findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'altered', path: 'timeline/events.json' }),
        expect.objectContaining({
          kind: 'chain',
          seq: decision.seq,
          message: `timeline/events.json: event #${decision.seq}: content does not match its hash`,
        }),
      ]),
    );
    expect(r.events?.chainIntact).toBe(false);
  });
});
