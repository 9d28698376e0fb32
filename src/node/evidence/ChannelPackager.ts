import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../core/errors.ts';
import {
  type ChannelFile,
  type ChannelProfile,
  channelViolations,
  type EvidenceMime,
  perFileBudget,
  type ResponseFacts,
  responseText,
} from './channels.ts';
import type { FontSet } from './fonts.ts';
import type { StillMaker } from './StillMaker.ts';
import type { SummaryModel, SummaryStill } from './summary.ts';
import { renderSummaryPdf } from './summaryPdf.ts';

export interface ChannelPackagerOptions {
  stills: StillMaker;
  fonts: FontSet;
  /** Scratch space for re-encoded stills. */
  workDir: string;
  /** The full-quality still files, by bundle path. */
  stillFile: (s: SummaryStill) => string;
  onStep?: (line: string) => void;
}

export interface ChannelOutputFile extends ChannelFile {
  path: string;
  sha256: string;
}

export interface ChannelOutput {
  channel: string;
  dir: string;
  files: ChannelOutputFile[];
  /** Rules the files still break (empty: they fit). */
  violations: string[];
  /** The still size and JPEG quality that made them fit. */
  stillMaxWidth: number;
  stillQuality: number;
  /** What had to be left out of the PDF to fit the page limit. */
  trimmed: string | null;
}

/** Image steps, best first: largest width, then ffmpeg JPEG quality (2 best … 31 worst). */
export const IMAGE_LADDER: readonly { width: number; q: number }[] = [
  { width: 1600, q: 3 },
  { width: 1280, q: 5 },
  { width: 1024, q: 7 },
  { width: 800, q: 10 },
  { width: 640, q: 14 },
  { width: 480, q: 19 },
  { width: 360, q: 25 },
];

/** Content steps for page limits: the first one keeps everything. */
const CONTENT_LEVELS: readonly {
  maxTimelineRows?: number;
  maxMessages?: number;
  maxStills?: number;
  compactStills?: boolean;
}[] = [
  {},
  { compactStills: true },
  { maxTimelineRows: 80, maxMessages: 60, compactStills: true },
  { maxTimelineRows: 40, maxMessages: 30, maxStills: 12, compactStills: true },
  { maxTimelineRows: 20, maxMessages: 15, maxStills: 6, compactStills: true },
  { maxTimelineRows: 10, maxMessages: 8, maxStills: 4, compactStills: true },
];

function trimNote(pages: number | null, c: (typeof CONTENT_LEVELS)[number]): string | null {
  const cut = [
    c.maxTimelineRows !== undefined && `at most ${c.maxTimelineRows} events`,
    c.maxMessages !== undefined && `${c.maxMessages} messages`,
    c.maxStills !== undefined && `${c.maxStills} stills`,
  ].filter(Boolean);
  if (!c.compactStills && !cut.length) return null;
  return `to fit ${pages} pages the PDF shows its stills smaller${cut.length ? ` and ${cut.join(', ')}` : ''}; the bundle has everything`;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60) || 'case';
}

/** Stills in the order a channel with fewer slots should keep them: decisions and snapshots first. */
function byPriority(stills: readonly SummaryStill[]): SummaryStill[] {
  const rank = (s: SummaryStill) =>
    s.kind === 'snapshot' ? 1 : /^Decision/.test(s.label) ? 0 : /^First join/.test(s.label) ? 2 : 3;
  const kept = [...stills].sort((a, b) => rank(a) - rank(b) || a.takenAt - b.takenAt);
  return kept;
}

/**
 * The files one dispute channel takes, within its limits: a summary PDF whose stills are
 * re-encoded smaller step by step until it fits (and trimmed if it has too many pages), or for
 * image-only channels the stills themselves; plus a short response text.
 */
export class ChannelPackager {
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly o: ChannelPackagerOptions) {}

  private async still(s: SummaryStill, step: { width: number; q: number }): Promise<Buffer> {
    const key = `${s.file}@${step.width}q${step.q}`;
    let data = this.cache.get(key);
    if (!data) {
      const out = join(this.o.workDir, `${this.cache.size}-${step.width}-${step.q}.jpg`);
      await this.o.stills.recompress(this.o.stillFile(s), out, step.width, step.q);
      data = await readFile(out);
      await rm(out, { force: true });
      this.cache.set(key, data);
    }
    return data;
  }

  async package(
    ch: ChannelProfile,
    model: SummaryModel,
    facts: Omit<ResponseFacts, 'attachments' | 'stills'>,
    dir: string,
  ): Promise<ChannelOutput> {
    await mkdir(dir);
    const base = safeName(`order-${model.case.orderId}`);
    const outputs: {
      name: string;
      mime: EvidenceMime | 'text/plain';
      data: Buffer;
      pages?: number;
    }[] = [];
    let chosen = IMAGE_LADDER[0]!;
    let trimmed: string | null = null;
    let stillCount = model.stills.length;

    if (ch.summaryPdf) {
      const budget = perFileBudget(ch, 1);
      let done: { data: Buffer; pages: number } | undefined;
      let closest = '';
      outer: for (const [level, content] of CONTENT_LEVELS.entries()) {
        for (const step of IMAGE_LADDER) {
          const stills = byPriority(model.stills).slice(
            0,
            content.maxStills ?? model.stills.length,
          );
          const data = new Map<string, Buffer>();
          for (const s of stills) data.set(s.file, await this.still(s, step));
          const ordered = model.stills.filter((s) => data.has(s.file));
          const pdf = await renderSummaryPdf(
            { ...model, stills: ordered },
            {
              fonts: this.o.fonts,
              stillData: (s) => data.get(s.file)!,
              maxTimelineRows: content.maxTimelineRows,
              maxMessages: content.maxMessages,
              compactStills: content.compactStills,
              edition: `Copy for ${ch.name}: stills at most ${step.width} px wide; the full-resolution stills and the recordings are in the signed bundle.`,
            },
          );
          this.o.onStep?.(
            `${ch.id}: summary PDF with stills ≤ ${step.width} px, JPEG q${step.q}: ${pdf.data.length} bytes, ${pdf.pages} pages`,
          );
          closest = `${pdf.data.length} bytes, ${pdf.pages} pages`;
          if (ch.maxPages !== null && pdf.pages > ch.maxPages) continue outer;
          if (pdf.data.length <= budget) {
            done = pdf;
            chosen = step;
            stillCount = ordered.length;
            if (level > 0) trimmed = trimNote(ch.maxPages, content);
            break outer;
          }
          // smaller images cannot help when a step without any still is already too big
          if (!ordered.length) break;
        }
      }
      if (!done) {
        throw new UserError(
          `cannot make a summary PDF that ${ch.name} accepts (at most ${budget} bytes${ch.maxPages !== null ? `, ${ch.maxPages} pages` : ''}); the last try gave ${closest}`,
        );
      }
      outputs.push({
        name: `${base}-inspection.pdf`,
        mime: 'application/pdf',
        data: done.data,
        pages: done.pages,
      });
    } else {
      // photos only: every still, each re-encoded down until it fits the per-file (and total) budget
      const stills = byPriority(model.stills);
      const n = Math.min(stills.length, ch.maxFiles ?? stills.length);
      const budget = perFileBudget(ch, Math.max(1, n));
      const kept = stills.slice(0, n).sort((a, b) => a.takenAt - b.takenAt);
      let worst = 0;
      for (const [i, s] of kept.entries()) {
        let data: Buffer | undefined;
        for (const [k, step] of IMAGE_LADDER.entries()) {
          const d = await this.still(s, step);
          if (d.length <= budget) {
            data = d;
            worst = Math.max(worst, k);
            break;
          }
        }
        if (!data)
          throw new UserError(`cannot fit still ${s.file} into ${ch.name}'s ${budget} bytes`);
        const slug = s.label
          .toLowerCase()
          .replace(/[^a-z0-9]+/g, '-')
          .replace(/^-+|-+$/g, '')
          .slice(0, 30)
          .replace(/-+$/, '');
        outputs.push({
          name: `${base}-photo-${String(i + 1).padStart(2, '0')}-${slug}.jpg`,
          mime: 'image/jpeg',
          data,
        });
      }
      chosen = IMAGE_LADDER[worst]!;
      stillCount = n;
      if (n < stills.length)
        trimmed = `${ch.name} takes ${n} files; ${stills.length - n} stills left out`;
    }

    const text = responseText(ch, {
      ...facts,
      stills: stillCount,
      attachments: outputs.map((f) => f.name),
    });
    outputs.push({ name: 'response.txt', mime: 'text/plain', data: Buffer.from(text, 'utf8') });

    const files: ChannelOutputFile[] = [];
    for (const f of outputs) {
      const path = join(dir, f.name);
      await writeFile(path, f.data, { mode: 0o644 });
      files.push({
        name: f.name,
        path,
        mime: f.mime,
        bytes: f.data.length,
        sha256: sha256(f.data),
        ...(f.pages !== undefined ? { pages: f.pages } : {}),
      });
    }
    return {
      channel: ch.id,
      dir,
      files,
      violations: channelViolations(ch, files),
      stillMaxWidth: chosen.width,
      stillQuality: chosen.q,
      trimmed,
    };
  }
}
