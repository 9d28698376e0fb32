import { type FileHandle, open } from 'node:fs/promises';
import { errorMessage } from '../../core/errors.ts';

/** The file operations RecordingFile uses; tests swap in failing ones (a full disk). */
export interface RecordingFileIo {
  open(path: string): Promise<FileHandle>;
  write(fh: FileHandle, buf: Buffer, position: number): Promise<number>;
}

export const defaultIo: RecordingFileIo = {
  open: (path) => open(path, 'wx', 0o640),
  write: async (fh, buf, position) => (await fh.write(buf, 0, buf.length, position)).bytesWritten,
};

export interface RecordingFileOptions {
  path: string;
  /** Appended bytes reach the operating system at least this often (ms). */
  flushMs?: number;
  /** And are synced to the disk at least this often (ms). */
  syncMs?: number;
  /** Pending bytes that trigger a write before the flush timer. */
  flushBytes?: number;
  io?: RecordingFileIo;
  /** Called once when a write fails; the file is cut back to its last complete write. */
  onFailed?: (err: Error) => void;
}

type Op =
  | { kind: 'append'; chunks: Buffer[]; lengths: number[] }
  | { kind: 'patch'; offset: number; bytes: Buffer };

/** Appended bytes are gathered in chunks of this size (or one appended piece's, if larger). */
const CHUNK_BYTES = 32 * 1024;
/** Written chunks kept for reuse, per file. */
const SPARE_CHUNKS = 3;

/**
 * An append-only file written off the packet path: `append` only queues, a timer writes the queue
 * every `flushMs` and syncs every `syncMs`, so a `kill -9` loses at most the last flush interval
 * and a power cut at most the last sync interval. Appends and patches are applied in call order.
 * When a write fails (ENOSPC, EIO) the file is cut back to the end of the last complete write —
 * an element boundary, so it stays readable — and everything after is refused.
 */
export class RecordingFile {
  readonly path: string;
  private readonly io: RecordingFileIo;
  private readonly flushMs: number;
  private readonly syncMs: number;
  private readonly flushBytes: number;
  private fh: FileHandle | undefined;
  private chain: Promise<void>;
  /** Filled chunks not yet queued for writing, then the one being filled (`chunk`, `used` bytes). */
  private filled: Buffer[] = [];
  private filledLengths: number[] = [];
  private chunk: Buffer | undefined;
  private used = 0;
  private pendingSize = 0;
  private spare: Buffer[] = [];
  private queued: Op[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  private closing: Promise<void> | undefined;
  /** Bytes accepted by `append` (the offset of the next append). */
  private appended = 0;
  /** Bytes fully written to the file. */
  private writtenEnd = 0;
  private failure: Error | undefined;

  constructor(private readonly options: RecordingFileOptions) {
    this.path = options.path;
    this.io = options.io ?? defaultIo;
    this.flushMs = options.flushMs ?? 200;
    this.syncMs = Math.min(options.syncMs ?? 1000, 1000);
    this.flushBytes = options.flushBytes ?? 256 * 1024;
    this.chain = this.io.open(this.path).then(
      (fh) => {
        this.fh = fh;
      },
      (err: unknown) => this.fail(err),
    );
    this.flushTimer = setInterval(() => this.flush(), this.flushMs);
    this.flushTimer.unref();
    this.syncTimer = setInterval(() => this.sync(), this.syncMs);
    this.syncTimer.unref();
  }

  /** Bytes appended so far (accepted, maybe not yet written). */
  get size(): number {
    return this.appended;
  }

  /** Bytes known to be in the file. */
  get written(): number {
    return this.writtenEnd;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Appends a copy of `buf`. */
  append(buf: Buffer): void {
    const at = this.reserve(buf.length);
    if (at >= 0) buf.copy(this.buffer, at);
  }

  /**
   * Appends `n` bytes the caller writes at once, synchronously, into {@link buffer} from the
   * offset returned; -1 (write nothing) once the file failed or is closing.
   */
  reserve(n: number): number {
    if (this.failure || this.closing) return -1;
    if (this.pendingSize > 0 && this.pendingSize + n > this.flushBytes) this.flush();
    if (!this.chunk || this.used + n > this.chunk.length) {
      if (this.chunk && this.used > 0) {
        this.filled.push(this.chunk);
        this.filledLengths.push(this.used);
      }
      this.chunk =
        n <= CHUNK_BYTES
          ? (this.spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES))
          : Buffer.allocUnsafeSlow(n);
      this.used = 0;
    }
    const at = this.used;
    this.used += n;
    this.pendingSize += n;
    this.appended += n;
    return at;
  }

  /** Where the bytes {@link reserve} made room for go. */
  get buffer(): Buffer {
    return this.chunk!;
  }

  /** Overwrites bytes written (or queued) earlier, in order with the appends around it. */
  patch(offset: number, bytes: Buffer): void {
    if (this.failure || this.closing) return;
    this.takePending();
    this.queued.push({ kind: 'patch', offset, bytes });
  }

  private takePending(): void {
    if (this.chunk && this.used > 0) {
      this.filled.push(this.chunk);
      this.filledLengths.push(this.used);
      this.chunk = undefined;
      this.used = 0;
    }
    if (this.filled.length === 0) return;
    this.queued.push({ kind: 'append', chunks: this.filled, lengths: this.filledLengths });
    this.filled = [];
    this.filledLengths = [];
    this.pendingSize = 0;
  }

  /** Starts writing what is queued; resolves when it is in the file. */
  flush(): Promise<void> {
    this.takePending();
    if (this.queued.length === 0) return this.chain;
    const ops = this.queued;
    this.queued = [];
    this.chain = this.chain.then(() => this.run(ops));
    return this.chain;
  }

  private sync(): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (!this.fh || !this.dirty || this.failure) return;
      this.dirty = false;
      try {
        await this.fh.sync();
      } catch (err) {
        await this.fail(err);
      }
    });
    return this.chain;
  }

  private async run(ops: Op[]): Promise<void> {
    for (const op of ops) {
      if (this.failure || !this.fh) return;
      try {
        if (op.kind === 'append') {
          for (let i = 0; i < op.chunks.length; i++) {
            const buf = op.chunks[i]!.subarray(0, op.lengths[i]);
            let done = 0;
            while (done < buf.length) {
              const n = await this.io.write(this.fh, buf.subarray(done), this.writtenEnd + done);
              if (n <= 0)
                throw Object.assign(new Error('the disk accepted no bytes'), { code: 'ENOSPC' });
              done += n;
            }
            this.writtenEnd += buf.length;
          }
          for (const chunk of op.chunks) {
            if (chunk.length === CHUNK_BYTES && this.spare.length < SPARE_CHUNKS)
              this.spare.push(chunk);
          }
        } else {
          let done = 0;
          while (done < op.bytes.length) {
            const n = await this.io.write(this.fh, op.bytes.subarray(done), op.offset + done);
            if (n <= 0)
              throw Object.assign(new Error('the disk accepted no bytes'), { code: 'ENOSPC' });
            done += n;
          }
        }
        this.dirty = true;
      } catch (err) {
        await this.fail(err);
        return;
      }
    }
  }

  private async fail(err: unknown): Promise<void> {
    if (this.failure) return;
    const code = (err as NodeJS.ErrnoException)?.code;
    this.failure = new Error(`${this.path}: ${code ? `${code}: ` : ''}${errorMessage(err)}`);
    this.filled = [];
    this.filledLengths = [];
    this.chunk = undefined;
    this.spare = [];
    this.queued = [];
    if (this.fh) {
      try {
        await this.fh.truncate(this.writtenEnd);
        await this.fh.sync();
      } catch {
        // the cut is best effort: the scan on finalise finds the readable end anyway
      }
    }
    try {
      this.options.onFailed?.(this.failure);
    } catch {
      // the owner's handler must not break the write chain
    }
  }

  /** Writes everything queued, syncs and closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.flushTimer);
      clearInterval(this.syncTimer);
      await this.flush();
      this.dirty = true;
      await this.sync();
      await this.chain;
      if (this.fh) {
        await this.fh.close().catch(() => {});
        this.fh = undefined;
      }
    })();
    return this.closing;
  }
}
