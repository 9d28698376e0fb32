import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { sha256Hex } from '../../core/canonical.ts';
import { errorMessage, UserError } from '../../core/errors.ts';
import { VERSION } from '../../core/version.ts';
import { type RecordingLibrary, sha256File } from '../recording/RecordingLibrary.ts';
import type { RecordingRecord } from '../store/Store.ts';
import { type ChannelOutput, ChannelPackager } from './ChannelPackager.ts';
import { CHANNELS, type ChannelId } from './channels.ts';
import type { EvidenceKey } from './EvidenceKey.ts';
import type { CaseData, EvidenceStore } from './EvidenceStore.ts';
import { evidenceFonts } from './fonts.ts';
import { keyMoments, locateFrame, videoSegments } from './keyMoments.ts';
import {
  type BundleFileKind,
  type BundleManifest,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  type ManifestFile,
  SIGNATURE_FILE,
  serializeManifest,
} from './manifest.ts';
import { filterPath, StillMaker } from './StillMaker.ts';
import { buildSummary, type SummaryRecording, type SummaryStill, utc } from './summary.ts';
import { renderSummaryHtml } from './summaryHtml.ts';
import { renderSummaryPdf } from './summaryPdf.ts';
import { timelineJson, transcriptJson, transcriptText } from './transcript.ts';
import { ZipWriter } from './zip.ts';

export interface EvidenceExporterOptions {
  evidence: EvidenceStore;
  library: RecordingLibrary;
  key: EvidenceKey;
  nodeId: string;
}

export interface ExportCaseOptions {
  caseId: string;
  /** The zip to write. */
  out: string;
  /** Also write the files this channel takes, beside the zip in OUT-BASE-CHANNEL/. */
  channel?: ChannelId;
  /** Who exports (recorded in the timeline). */
  by: string;
  onStep?: (line: string) => void;
}

export interface ExportResult {
  caseId: string;
  file: string;
  bytes: number;
  /** SHA-256 of the zip as written. */
  sha256: string;
  manifestSha256: string;
  manifest: BundleManifest;
  /** The `evidence.exported` event. */
  eventSeq: number;
  channel: ChannelOutput | null;
  /** Things a reviewer should know (also in the summary's notes). */
  warnings: string[];
}

const TIMELINE_FILE = 'timeline/events.json';

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Where the files for a channel go: beside the bundle, `evidence-c_x.zip` → `evidence-c_x-stripe/`. */
export function channelDir(out: string, channel: ChannelId): string {
  return join(dirname(out), `${basename(out, extname(out))}-${channel}`);
}

function codecs(r: RecordingRecord): string {
  return r.tracks.map((t) => t.codec).join('+') || '-';
}

/**
 * Builds a case's evidence bundle: the original recordings, MP4 copies, snapshots, watermarked
 * stills at key moments, the chat, the hash-chained timeline, a printable summary (HTML and
 * PDF), and a manifest of every file with its SHA-256, signed with the node's Ed25519 key. The
 * export is then recorded in the case timeline as `evidence.exported`.
 */
export class EvidenceExporter {
  constructor(private readonly o: EvidenceExporterOptions) {}

  async exportCase(opts: ExportCaseOptions): Promise<ExportResult> {
    const step = opts.onStep ?? (() => {});
    const data = this.o.evidence.caseData(opts.caseId);
    if (!data) throw new UserError(`case ${opts.caseId} does not exist`);
    if (!this.o.key.canSign) throw new Error('the evidence key has no private half to sign with');
    const out = resolve(opts.out);
    const outDir = dirname(out);
    if (!existsSync(outDir)) throw new UserError(`the folder ${outDir} does not exist`);
    // an earlier export's bundle is evidence too (its hash is in the timeline): never overwrite it
    if (existsSync(out))
      throw new UserError(
        `${out} exists; pass another --out (earlier bundles are never overwritten)`,
      );
    if (opts.channel && existsSync(channelDir(out, opts.channel)))
      throw new UserError(
        `${channelDir(out, opts.channel)} exists; pass another --out, or move that folder away`,
      );
    const now = Date.now();
    const work = await mkdtemp(join(tmpdir(), 'returncam-evidence-'));
    try {
      return await this.build(data, opts, out, now, work, step);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private async build(
    data: CaseData,
    opts: ExportCaseOptions,
    out: string,
    now: number,
    work: string,
    step: (line: string) => void,
  ): Promise<ExportResult> {
    const c = data.case;
    const zip = new ZipWriter(new Date(now));
    const files: ManifestFile[] = [];
    const notes: string[] = [];
    const warnings: string[] = [];
    const warn = (w: string) => {
      warnings.push(w);
      notes.push(w);
    };
    const addFile = async (kind: BundleFileKind, name: string, file: string) => {
      const sha256 = await sha256File(file);
      const bytes = (await stat(file)).size;
      zip.addFile(file, name);
      files.push({ path: name, kind, bytes, sha256 });
      return sha256;
    };
    const addData = (kind: BundleFileKind, name: string, content: Buffer | string) => {
      const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      zip.addBuffer(buf, name);
      const sha256 = sha256Hex(buf);
      files.push({ path: name, kind, bytes: buf.length, sha256 });
      return sha256;
    };

    // ---- recordings: originals and MP4 copies ----
    const summaryRecordings: SummaryRecording[] = [];
    const manifestRecordings: BundleManifest['recordings'] = [];
    const recordingFiles = new Map<string, string>();
    for (const r of data.recordings) {
      const row: SummaryRecording = {
        id: r.id,
        role: r.role,
        status: r.erasedAt !== null ? 'erased' : r.status,
        startedAt: r.startedAt,
        durationMs: r.durationMs,
        bytes: r.bytes,
        sha256: r.sha256,
        container: r.container,
        codecs: codecs(r),
        file: null,
        mp4: null,
        note: r.note,
      };
      summaryRecordings.push(row);
      if (r.erasedAt !== null) {
        notes.push(
          `Recording ${r.id} (${r.role}) was erased on ${utc(r.erasedAt)}; its hash stays in the timeline.`,
        );
        continue;
      }
      if (r.status === 'recording') {
        warn(
          `Recording ${r.id} (${r.role}) was still being written at export time and is not included.`,
        );
        continue;
      }
      const abs = this.o.library.abs(r.path);
      if (!existsSync(abs)) {
        warn(`The file of recording ${r.id} (${r.path}) is missing from the node.`);
        continue;
      }
      const ext = r.container === 'webm' ? 'webm' : 'mkv';
      const name = `recordings/${r.role}-${r.id}.${ext}`;
      step(`adding recording ${r.id} (${r.role}, ${r.bytes ?? '?'} bytes)`);
      const sha = await addFile('recording', name, abs);
      row.file = name;
      recordingFiles.set(r.id, abs);
      manifestRecordings.push({ id: r.id, role: r.role, file: name, sha256: r.sha256 ?? sha });
      if (r.sha256 && sha !== r.sha256) {
        warn(
          `Recording ${r.id}: its file's SHA-256 (${sha}) differs from the one stored when it ended (${r.sha256}): the file changed on the node after recording.`,
        );
      }
      if (r.originalPath && existsSync(this.o.library.abs(r.originalPath))) {
        await addFile(
          'recording-original',
          `recordings/${r.role}-${r.id}.original.${ext}`,
          this.o.library.abs(r.originalPath),
        );
        notes.push(
          `Recording ${r.id} was repaired after the node stopped while recording; the file as the stop left it is included as .original.${ext}.`,
        );
      }
      if (r.status !== 'failed') {
        step(`transcoding ${r.id} to MP4 (H.264/AAC)`);
        const mp4 = join(work, `${r.id}.mp4`);
        try {
          await this.o.library.transcode(r.id, mp4);
          const mp4Name = `video/${r.role}-${r.id}.mp4`;
          await addFile('video', mp4Name, mp4);
          row.mp4 = mp4Name;
        } catch (err) {
          warn(`Recording ${r.id} could not be transcoded to MP4: ${errorMessage(err)}`);
        }
      }
    }

    // ---- snapshots and stills ----
    const fonts = evidenceFonts();
    let fontFile = fonts.regular;
    try {
      filterPath(fontFile);
    } catch {
      fontFile = join(work, 'font.ttf');
      await copyFile(fonts.regular, fontFile);
    }
    const stillsDir = join(work, 'stills');
    await mkdir(stillsDir);
    const maker = new StillMaker({ fontFile, workDir: work });
    const watermark = (at: number) => [
      utc(at, true),
      `case ${c.id}`,
      `order ${c.orderId}`.slice(0, 64),
    ];
    const pending: (SummaryStill & { path: string })[] = [];
    const manifestSnapshots: BundleManifest['snapshots'] = [];
    for (const [i, s] of data.snapshots.entries()) {
      const abs = join(this.o.library.dataDir, s.path);
      if (!existsSync(abs)) {
        warn(`Snapshot ${s.id} (${s.path}) is missing from the node.`);
        continue;
      }
      const name = `snapshots/${pad(i + 1)}-${s.id}${extname(s.path) || '.jpg'}`;
      const sha = await addFile('snapshot', name, abs);
      manifestSnapshots.push({ id: s.id, file: name, sha256: s.sha256 });
      if (sha !== s.sha256)
        warn(`Snapshot ${s.id}: its file's SHA-256 differs from the one stored when it was taken.`);
      const path = join(stillsDir, `snapshot-${s.id}.jpg`);
      try {
        const still = await maker.fromImage(abs, path, watermark(s.at));
        pending.push({
          path,
          file: '',
          kind: 'snapshot',
          label: `Snapshot by ${s.takenBy.split(':')[0]}`,
          takenAt: s.at,
          source: `staff snapshot ${s.id}, original in ${name}`,
          width: still.width,
          height: still.height,
        });
      } catch (err) {
        warn(`Snapshot ${s.id} could not be made into a still: ${errorMessage(err)}`);
      }
    }
    const segments = videoSegments(data.recordings).filter((s) =>
      recordingFiles.has(s.recordingId),
    );
    const moments = keyMoments(data.events);
    for (const m of moments) {
      const loc = locateFrame(m.at, segments);
      if (!loc) {
        notes.push(`No video near "${m.label}" at ${utc(m.at)}: no still for it.`);
        continue;
      }
      const path = join(stillsDir, `moment-${m.seq}.jpg`);
      step(`still for ${m.label.slice(0, 60)}`);
      try {
        const startedAt = segments.find((s) => s.recordingId === loc.recordingId)!.startedAt;
        const still = await maker.fromRecording(
          recordingFiles.get(loc.recordingId)!,
          loc.offsetMs,
          path,
          (offsetMs) => watermark(startedAt + offsetMs),
        );
        if (!still) {
          notes.push(`The recording has no frame for "${m.label}": no still for it.`);
          continue;
        }
        const frameAt = startedAt + still.offsetMs;
        const where =
          loc.relation === 'during'
            ? ''
            : loc.relation === 'before'
              ? `; last frame, ${(loc.gapMs / 1000).toFixed(1)} s before the event`
              : `; first frame, ${(loc.gapMs / 1000).toFixed(1)} s after the event`;
        pending.push({
          path,
          file: '',
          kind: 'moment',
          label: m.label,
          takenAt: frameAt,
          source: `${loc.role} recording ${loc.recordingId} at ${(still.offsetMs / 1000).toFixed(2)} s (event #${m.seq}${where})`,
          width: still.width,
          height: still.height,
        });
      } catch (err) {
        warn(`No still for "${m.label}": ${errorMessage(err)}`);
      }
    }
    pending.sort((a, b) => a.takenAt - b.takenAt);
    const stills: SummaryStill[] = [];
    const stillPaths = new Map<string, string>();
    for (const [i, p] of pending.entries()) {
      const slug =
        p.kind === 'snapshot'
          ? 'snapshot'
          : p.label.startsWith('First join')
            ? 'first-join'
            : p.label.startsWith('Prompt')
              ? 'prompt'
              : 'decision';
      const name = `stills/${pad(i + 1)}-${slug}.jpg`;
      await addFile('still', name, p.path);
      const { path, ...still } = p;
      stills.push({ ...still, file: name });
      stillPaths.set(name, path);
    }

    // ---- chat, timeline, case record ----
    addData('transcript', 'chat/transcript.txt', transcriptText(c, data.messages));
    addData('transcript', 'chat/transcript.json', transcriptJson(c, data.messages));
    const head = data.events.at(-1);
    addData('timeline', TIMELINE_FILE, timelineJson(c.id, data.events));
    addData(
      'case',
      'case.json',
      `${JSON.stringify(
        {
          version: 1,
          case: c,
          media: data.media,
          participants: data.sessions,
          links: data.links,
          recordings: data.recordings.map((r) => ({
            ...r,
            bundleFile: summaryRecordings.find((x) => x.id === r.id)?.file ?? null,
            bundleMp4: summaryRecordings.find((x) => x.id === r.id)?.mp4 ?? null,
          })),
          snapshots: data.snapshots.map((s) => ({
            ...s,
            bundleFile: manifestSnapshots.find((x) => x.id === s.id)?.file ?? null,
          })),
          stills,
          keyMoments: moments,
        },
        null,
        2,
      )}\n`,
    );

    // ---- summary ----
    const model = buildSummary({
      data,
      nodeId: this.o.nodeId,
      keyId: this.o.key.keyId,
      generatedAt: now,
      exportedBy: opts.by,
      recordings: summaryRecordings,
      stills,
      notes,
    });
    addData('summary', 'summary.html', renderSummaryHtml(model));
    step('rendering the summary PDF');
    const stillBytes = new Map<string, Buffer>();
    for (const s of stills) stillBytes.set(s.file, await readFile(stillPaths.get(s.file)!));
    const pdf = await renderSummaryPdf(model, {
      fonts,
      stillData: (s) => stillBytes.get(s.file)!,
    });
    addData('summary', 'summary.pdf', pdf.data);
    addData('key', 'evidence.pub', this.o.key.publicPem);

    // ---- manifest, signature, zip ----
    const manifest: BundleManifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      createdAt: new Date(now).toISOString(),
      generator: `returncam ${VERSION}`,
      node: { id: this.o.nodeId, keyId: this.o.key.keyId },
      case: {
        id: c.id,
        orderId: c.orderId,
        sku: c.sku,
        marketplace: c.marketplace,
        warehouseId: c.warehouseId,
        reason: c.reason,
        status: c.status,
        outcome: c.outcome,
        disposition: c.disposition,
      },
      eventLog: {
        file: TIMELINE_FILE,
        events: data.events.length,
        headSeq: head?.seq ?? 0,
        headHash: head?.hash ?? '',
      },
      recordings: manifestRecordings,
      snapshots: manifestSnapshots,
      exportedBy: opts.by,
      channel: opts.channel ?? null,
      files: [...files].sort((a, b) => a.path.localeCompare(b.path)),
    };
    const manifestBytes = serializeManifest(manifest);
    const manifestSha256 = sha256Hex(manifestBytes);
    zip.addBuffer(manifestBytes, MANIFEST_FILE);
    zip.addBuffer(this.o.key.sign(manifestBytes), SIGNATURE_FILE);
    step(`writing ${out}`);
    await zip.finish(out);
    const zipSha256 = await sha256File(out);
    const zipBytes = (await stat(out)).size;

    // ---- the channel's files, beside the bundle ----
    let channel: ChannelOutput | null = null;
    if (opts.channel) {
      const ch = CHANNELS[opts.channel];
      const dir = channelDir(out, ch.id);
      step(`making the files ${ch.name} takes`);
      channel = await new ChannelPackager({
        stills: maker,
        fonts,
        workDir: work,
        stillFile: (s) => stillPaths.get(s.file)!,
        onStep: step,
      }).package(
        ch,
        model,
        {
          caseId: c.id,
          orderId: c.orderId,
          sku: c.sku,
          reason: c.reason,
          outcome: c.outcome,
          disposition: c.disposition,
          inspectedAt: c.firstJoinedAt,
          decidedAt: c.decidedAt,
          recordings: manifestRecordings.map((r) => ({
            role: r.role,
            sha256: r.sha256,
            durationMs: data.recordings.find((x) => x.id === r.id)?.durationMs ?? null,
          })),
          manifestNote: `manifest SHA-256 ${manifestSha256}, signed by node ${this.o.nodeId} with key ${this.o.key.keyId}`,
        },
        dir,
      );
    }

    // ---- the export goes into the case's timeline ----
    const event = this.o.evidence.recordExport(c.id, `admin:${opts.by}`, {
      by: opts.by,
      channel: opts.channel ?? null,
      bundle: basename(out),
      bundleSha256: zipSha256,
      manifestSha256,
      files: manifest.files.length,
      eventLogHead: { seq: manifest.eventLog.headSeq, hash: manifest.eventLog.headHash },
      keyId: this.o.key.keyId,
      ...(channel
        ? {
            channelFiles: channel.files.map((f) => ({
              name: f.name,
              bytes: f.bytes,
              sha256: f.sha256,
            })),
          }
        : {}),
    });
    return {
      caseId: c.id,
      file: out,
      bytes: zipBytes,
      sha256: zipSha256,
      manifestSha256,
      manifest,
      eventSeq: event.seq,
      channel,
      warnings,
    };
  }
}
