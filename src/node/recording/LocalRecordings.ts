import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HttpError, UserError } from '../../core/errors.ts';
import type { CaseMediaRecord, RecordingRecord } from '../store/Store.ts';
import { Store } from '../store/Store.ts';
import {
  type EraseResult,
  type PrunePlan,
  RecordingLibrary,
  type TranscodeResult,
  type VerifyResult,
} from './RecordingLibrary.ts';

/** What the `rec` commands need, whether they open the data directory or call a node. */
export interface RecordingOps {
  list(caseId?: string): Promise<RecordingRecord[]>;
  show(id: string): Promise<RecordingRecord>;
  /** Verifies the given recordings, or all of them. */
  verify(
    ids: string[] | 'all',
    onStep?: (r: VerifyResult, index: number, total: number) => void,
  ): Promise<VerifyResult[]>;
  prune(opts: {
    dryRun: boolean;
    by: string;
    onStep?: (p: PrunePlan) => void;
  }): Promise<PrunePlan[]>;
  hold(caseId: string, reason: string, by: string): Promise<CaseMediaRecord>;
  release(caseId: string, by: string, reason?: string): Promise<CaseMediaRecord>;
  erase(caseId: string, reason: string, by: string): Promise<EraseResult>;
  transcode(
    id: string,
    output: string,
    onProgress?: (fraction: number) => void,
  ): Promise<TranscodeResult>;
  close(): void;
}

/** An HTTP error from the library is the user's to fix here: its message alone. */
async function userErrors<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof HttpError) throw new UserError(err.message);
    throw err;
  }
}

/**
 * The `rec` commands run on the node host against its data directory (the database in WAL mode
 * is shared safely with a running node). Erasing a case whose recording is being written is
 * refused here: go through the node (`--node`) for that.
 */
export class LocalRecordings implements RecordingOps {
  private readonly store: Store;
  private readonly library: RecordingLibrary;

  constructor(opts: { dataDir: string; retentionDays: number }) {
    const dataDir = resolve(opts.dataDir);
    const db = join(dataDir, 'returncam.db');
    if (!existsSync(db)) {
      throw new UserError(
        `no node database in ${dataDir} (looked for ${db}); pass --data DIR, or --node URL to ask a running node`,
      );
    }
    this.store = new Store(db);
    this.library = new RecordingLibrary({
      store: this.store,
      dataDir,
      retentionDays: opts.retentionDays,
    });
  }

  list(caseId?: string): Promise<RecordingRecord[]> {
    return userErrors(() => this.library.list({ caseId }));
  }

  show(id: string): Promise<RecordingRecord> {
    return userErrors(() => this.library.get(id));
  }

  verify(
    ids: string[] | 'all',
    onStep?: (r: VerifyResult, index: number, total: number) => void,
  ): Promise<VerifyResult[]> {
    return userErrors(async () => {
      const list = ids === 'all' ? this.library.list().map((r) => r.id) : ids;
      for (const id of list) this.library.get(id);
      const out: VerifyResult[] = [];
      for (const [i, id] of list.entries()) {
        const r = await this.library.verify(id);
        onStep?.(r, i, list.length);
        out.push(r);
      }
      return out;
    });
  }

  prune(opts: {
    dryRun: boolean;
    by: string;
    onStep?: (p: PrunePlan) => void;
  }): Promise<PrunePlan[]> {
    return userErrors(() => this.library.prune(opts));
  }

  hold(caseId: string, reason: string, by: string): Promise<CaseMediaRecord> {
    return userErrors(() => this.library.hold(caseId, reason, by));
  }

  release(caseId: string, by: string, reason?: string): Promise<CaseMediaRecord> {
    return userErrors(() => this.library.release(caseId, by, reason));
  }

  erase(caseId: string, reason: string, by: string): Promise<EraseResult> {
    return userErrors(() => this.library.erase(caseId, { reason, by }));
  }

  transcode(
    id: string,
    output: string,
    onProgress?: (fraction: number) => void,
  ): Promise<TranscodeResult> {
    return userErrors(() => this.library.transcode(id, output, onProgress));
  }

  close(): void {
    this.store.closeDb();
  }
}
