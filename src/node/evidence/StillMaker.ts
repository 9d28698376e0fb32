import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg.ts';
import { imageSize } from '../../core/imageSize.ts';

export interface StillMakerOptions {
  /** A TrueType font for the watermark. */
  fontFile: string;
  /** Scratch space for intermediate frames and the watermark text. */
  workDir: string;
}

export interface Still {
  file: string;
  width: number;
  height: number;
  bytes: number;
}

/**
 * A path inside an ffmpeg filter option. Filter strings have two levels of escaping; instead of
 * getting both right, only plain paths are accepted (the callers use a temp dir and a font path).
 */
export function filterPath(p: string): string {
  if (!/^[A-Za-z0-9_./@+-]+$/.test(p))
    throw new Error(`path ${p} has characters an ffmpeg filter option cannot take as they are`);
  return p;
}

/** DejaVu Sans digits and letters are at most about this wide, in font sizes. */
const CHAR_WIDTH = 0.64;
/** The time line, the longest line that must never be cut ("2026-04-01 12:00:00.000 UTC"). */
const TIME_CHARS = 27;

/**
 * Watermark band layout: the font size follows the picture's longer side (so a portrait phone
 * frame gets as large a text as a landscape one) but never so large that the time line leaves
 * the picture; longer lines are cut with an ellipsis.
 */
export function watermarkLayout(
  width: number,
  height: number,
  lines: readonly string[],
): { fontSize: number; band: number; pad: number; lines: string[] } {
  const byPicture = Math.round(Math.max(width, height) / 40);
  const byWidth = Math.floor((width * 0.92) / (TIME_CHARS * CHAR_WIDTH));
  const fontSize = Math.max(10, Math.min(40, byPicture, byWidth));
  const pad = Math.round(fontSize * 0.6);
  const lineSpacing = Math.round(fontSize * 0.35);
  const band =
    2 * pad +
    lines.length * fontSize +
    (lines.length - 1) * lineSpacing +
    Math.round(fontSize * 0.25);
  const maxChars = Math.max(8, Math.floor((width - 2 * pad) / (fontSize * CHAR_WIDTH)));
  const fitted = lines.map((l) => (l.length > maxChars ? `${l.slice(0, maxChars - 1)}…` : l));
  return { fontSize, band, pad, lines: fitted };
}

/**
 * JPEG stills for evidence, made with ffmpeg: a frame of a recording at a media time, or a staff
 * snapshot, each with a watermark band (UTC time, case, order) burnt into the picture; and
 * smaller re-encodes of them for channels with file-size limits.
 */
export class StillMaker {
  private seq = 0;

  constructor(private readonly opts: StillMakerOptions) {}

  private async ffmpeg(args: string[], what: string): Promise<void> {
    const { execa } = await import('execa');
    const r = await execa(ffmpegPath(), ['-nostdin', '-v', 'error', '-y', ...args], {
      reject: false,
    });
    if (r.exitCode !== 0) {
      throw new Error(
        `${what}: ffmpeg failed: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ') || `exit ${r.exitCode}`}`,
      );
    }
  }

  private tmp(ext: string): string {
    this.seq++;
    return join(this.opts.workDir, `still-tmp-${this.seq}.${ext}`);
  }

  /** The frame shown at `offsetMs` of a recording, as a lossless PNG (undefined past the end). */
  private async grab(file: string, offsetMs: number): Promise<string | undefined> {
    const out = this.tmp('png');
    await this.ffmpeg(
      ['-ss', (offsetMs / 1000).toFixed(3), '-i', file, '-map', '0:v:0', '-frames:v', '1', out],
      `frame at ${offsetMs} ms of ${file}`,
    );
    try {
      if ((await stat(out)).size > 0) return out;
    } catch {
      // no frame at that time
    }
    return undefined;
  }

  private async watermark(input: string, out: string, lines: string[]): Promise<Still> {
    const size = imageSize(await readFile(input));
    if (!size) throw new Error(`watermark: ${input} is not a PNG or JPEG`);
    const layout = watermarkLayout(size.width, size.height, lines);
    const { fontSize, band, pad } = layout;
    const textFile = this.tmp('txt');
    await writeFile(textFile, layout.lines.join('\n'), 'utf8');
    const filter = [
      `drawbox=x=0:y=ih-${band}:w=iw:h=${band}:color=black@0.62:t=fill`,
      `drawtext=fontfile=${filterPath(this.opts.fontFile)}:textfile=${filterPath(textFile)}:expansion=none` +
        `:fontcolor=white:fontsize=${fontSize}:line_spacing=${Math.round(fontSize * 0.35)}` +
        `:x=${pad}:y=h-${band}+${pad}:shadowcolor=black@0.8:shadowx=1:shadowy=1`,
      'format=yuvj420p',
    ].join(',');
    try {
      await this.ffmpeg(
        ['-i', input, '-vf', filter, '-frames:v', '1', '-q:v', '2', out],
        `watermark ${out}`,
      );
    } finally {
      await rm(textFile, { force: true });
    }
    return { file: out, width: size.width, height: size.height, bytes: (await stat(out)).size };
  }

  /**
   * A watermarked JPEG of the frame at `offsetMs` into a recording. Past the end (a file shorter
   * than its stored length), the frame a second earlier is tried. Undefined when there is none.
   */
  async fromRecording(
    file: string,
    offsetMs: number,
    out: string,
    /** The watermark for the frame at a media time (the frame used may be a second earlier). */
    lines: (offsetMs: number) => string[],
  ): Promise<(Still & { offsetMs: number }) | undefined> {
    let at = Math.max(0, offsetMs);
    let frame = await this.grab(file, at);
    if (!frame && at > 0) {
      at = Math.max(0, at - 1000);
      frame = await this.grab(file, at);
    }
    if (!frame) return undefined;
    try {
      return { ...(await this.watermark(frame, out, lines(at))), offsetMs: at };
    } finally {
      await rm(frame, { force: true });
    }
  }

  /** A watermarked JPEG copy of a snapshot (JPEG or PNG). */
  fromImage(file: string, out: string, lines: string[]): Promise<Still> {
    return this.watermark(file, out, lines);
  }

  /**
   * A smaller JPEG of a still: no wider than `maxWidth` (never enlarged) at ffmpeg JPEG quality
   * `q` (2 best … 31 worst).
   */
  async recompress(input: string, out: string, maxWidth: number, q: number): Promise<Still> {
    await this.ffmpeg(
      [
        '-i',
        input,
        '-vf',
        `scale='min(${maxWidth},iw)':-2:flags=lanczos,format=yuvj420p`,
        '-frames:v',
        '1',
        '-q:v',
        String(q),
        out,
      ],
      `re-encode ${input}`,
    );
    const data = await readFile(out);
    const size = imageSize(data);
    if (!size) throw new Error(`re-encode ${input}: ffmpeg wrote no JPEG`);
    return { file: out, width: size.width, height: size.height, bytes: data.length };
  }
}
