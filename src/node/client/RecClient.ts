import { UserError } from '../../core/errors.ts';
import type { RecordingOps } from '../recording/LocalRecordings.ts';
import type {
  EraseResult,
  PrunePlan,
  TranscodeResult,
  VerifyResult,
} from '../recording/RecordingLibrary.ts';
import type { CaseMediaRecord, RecordingRecord } from '../store/Store.ts';
import { AdminClient } from './AdminClient.ts';

/** The `rec` operations through a node's admin API (`--node URL`). */
export class RecClient implements RecordingOps {
  private readonly admin: AdminClient;

  constructor(opts: { node: string; token?: string; dataDir?: string }) {
    this.admin = new AdminClient(opts);
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.admin.request<T>(method, path, body);
  }

  async list(caseId?: string): Promise<RecordingRecord[]> {
    const q = caseId ? `?case=${encodeURIComponent(caseId)}` : '';
    return (await this.call<{ recordings: RecordingRecord[] }>('GET', `/api/admin/recordings${q}`))
      .recordings;
  }

  async show(id: string): Promise<RecordingRecord> {
    return (
      await this.call<{ recording: RecordingRecord }>(
        'GET',
        `/api/admin/recordings/${encodeURIComponent(id)}`,
      )
    ).recording;
  }

  async verify(
    ids: string[] | 'all',
    onStep?: (r: VerifyResult, index: number, total: number) => void,
  ): Promise<VerifyResult[]> {
    const out: VerifyResult[] = [];
    if (ids === 'all') {
      out.push(
        ...(await this.call<{ results: VerifyResult[] }>('POST', '/api/admin/recordings/verify'))
          .results,
      );
      for (const [i, r] of out.entries()) onStep?.(r, i, out.length);
      return out;
    }
    for (const [i, id] of ids.entries()) {
      const [r] = (
        await this.call<{ results: VerifyResult[] }>(
          'POST',
          `/api/admin/recordings/${encodeURIComponent(id)}/verify`,
        )
      ).results;
      if (r) {
        onStep?.(r, i, ids.length);
        out.push(r);
      }
    }
    return out;
  }

  async prune(opts: {
    dryRun: boolean;
    by: string;
    onStep?: (p: PrunePlan) => void;
  }): Promise<PrunePlan[]> {
    const r = await this.call<{ cases: PrunePlan[] }>('POST', '/api/admin/recordings/prune', {
      dryRun: opts.dryRun,
      by: opts.by,
    });
    for (const p of r.cases) opts.onStep?.(p);
    return r.cases;
  }

  async hold(caseId: string, reason: string, by: string): Promise<CaseMediaRecord> {
    return (
      await this.call<{ media: CaseMediaRecord }>(
        'POST',
        `/api/admin/cases/${encodeURIComponent(caseId)}/hold`,
        { reason, by },
      )
    ).media;
  }

  async release(caseId: string, by: string, reason?: string): Promise<CaseMediaRecord> {
    const body = { by, ...(reason ? { reason } : {}) };
    return (
      await this.call<{ media: CaseMediaRecord }>(
        'POST',
        `/api/admin/cases/${encodeURIComponent(caseId)}/release`,
        body,
      )
    ).media;
  }

  async erase(caseId: string, reason: string, by: string): Promise<EraseResult> {
    return (
      await this.call<{ erased: EraseResult }>(
        'POST',
        `/api/admin/cases/${encodeURIComponent(caseId)}/erase`,
        { reason, by },
      )
    ).erased;
  }

  transcode(): Promise<TranscodeResult> {
    return Promise.reject(
      new UserError(
        'rec transcode runs on the node host against its data directory: use --data DIR instead of --node',
      ),
    );
  }

  close(): void {}
}
