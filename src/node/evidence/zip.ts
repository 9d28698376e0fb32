import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';

/** Formats that are compressed already: stored as they are. */
const STORED = /\.(webm|mkv|mp4|jpe?g|png|gif|pdf|zip)$/i;

/**
 * Writes a zip: files are streamed from disk, buffers from memory. `finish()` writes to a temp
 * file next to the target and renames it, so a reader never sees half a bundle.
 */
export class ZipWriter {
  private readonly zip = new yazl.ZipFile();
  private readonly names = new Set<string>();

  constructor(private readonly mtime = new Date()) {}

  private check(name: string): void {
    if (this.names.has(name)) throw new Error(`zip: ${name} is added twice`);
    if (name.startsWith('/') || name.split('/').includes('..'))
      throw new Error(`zip: ${name} is not a relative path inside the bundle`);
    this.names.add(name);
  }

  addFile(file: string, name: string): void {
    this.check(name);
    this.zip.addFile(file, name, { compress: !STORED.test(name), mtime: this.mtime, mode: 0o644 });
  }

  addBuffer(data: Buffer, name: string): void {
    this.check(name);
    this.zip.addBuffer(data, name, {
      compress: !STORED.test(name),
      mtime: this.mtime,
      mode: 0o644,
    });
  }

  async finish(target: string): Promise<void> {
    const tmp = `${target}.${process.pid}.tmp`;
    this.zip.end();
    try {
      await pipeline(this.zip.outputStream, createWriteStream(tmp, { mode: 0o644 }));
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}

export interface ZipEntryInfo {
  name: string;
  bytes: number;
  sha256: string;
  /** Contents, for entries up to `keepBytes` (manifest, signature, timeline). */
  data?: Buffer;
  /** The entry could not be read (corrupt data, bad compression). */
  error?: string;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false, strictFileNames: false }, (err, zip) =>
      err || !zip ? reject(err ?? new Error(`cannot open ${file}`)) : resolve(zip),
    ),
  );
}

function entryStream(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Readable> {
  return new Promise((resolve, reject) =>
    zip.openReadStream(entry, (err, stream) =>
      err || !stream ? reject(err ?? new Error(`cannot read ${entry.fileName}`)) : resolve(stream),
    ),
  );
}

/**
 * Every file in a zip with its size and SHA-256 (streamed); entries whose name passes `keep`
 * also come with their contents. Directory entries are skipped.
 */
export async function readZip(
  file: string,
  keep: (name: string) => boolean = () => false,
): Promise<ZipEntryInfo[]> {
  const zip = await openZip(file);
  const out: ZipEntryInfo[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName.endsWith('/')) {
          zip.readEntry();
          return;
        }
        void (async () => {
          const hash = createHash('sha256');
          const chunks: Buffer[] = [];
          const wanted = keep(entry.fileName);
          let bytes = 0;
          try {
            const stream = await entryStream(zip, entry);
            for await (const chunk of stream) {
              const c = chunk as Buffer;
              hash.update(c);
              bytes += c.length;
              if (wanted) chunks.push(c);
            }
            out.push({
              name: entry.fileName,
              bytes,
              sha256: hash.digest('hex'),
              ...(wanted ? { data: Buffer.concat(chunks) } : {}),
            });
          } catch (err) {
            out.push({
              name: entry.fileName,
              bytes,
              sha256: '',
              error: err instanceof Error ? err.message : String(err),
            });
          }
          zip.readEntry();
        })();
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return out;
}
