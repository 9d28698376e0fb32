import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../../core/errors.ts';
import { RecordingLibrary } from '../recording/RecordingLibrary.ts';
import { Store } from '../store/Store.ts';
import { type CaseRow, toCaseRow } from './caseRows.ts';
import type { ChannelId } from './channels.ts';
import { EvidenceExporter, type ExportResult } from './EvidenceExporter.ts';
import { EvidenceKey } from './EvidenceKey.ts';
import { type CaseFilter, EvidenceStore } from './EvidenceStore.ts';
import { buildReport, type CaseReport } from './report.ts';

export interface LocalEvidenceOptions {
  dataDir: string;
  nodeId: string;
  retentionDays: number;
}

/**
 * Exports, case data and reports, run on the node host against its data directory (the database
 * in WAL mode is shared safely with a running node; the export's timeline event is written in an
 * IMMEDIATE transaction).
 */
export class LocalEvidence {
  private readonly store: Store;
  private readonly evidence: EvidenceStore;
  private readonly library: RecordingLibrary;
  private readonly dataDir: string;

  constructor(private readonly opts: LocalEvidenceOptions) {
    this.dataDir = resolve(opts.dataDir);
    const db = join(this.dataDir, 'returncam.db');
    if (!existsSync(db)) {
      throw new UserError(
        `no node database in ${this.dataDir} (looked for ${db}); pass --data DIR with the node's data directory`,
      );
    }
    this.store = new Store(db);
    this.evidence = new EvidenceStore(this.store);
    this.library = new RecordingLibrary({
      store: this.store,
      dataDir: this.dataDir,
      retentionDays: opts.retentionDays,
    });
  }

  exportCase(o: {
    caseId: string;
    out: string;
    channel?: ChannelId;
    by: string;
    onStep?: (line: string) => void;
  }): Promise<ExportResult> {
    const exporter = new EvidenceExporter({
      evidence: this.evidence,
      library: this.library,
      key: EvidenceKey.readOrCreate(this.dataDir),
      nodeId: this.opts.nodeId,
    });
    return exporter.exportCase(o);
  }

  caseRows(filter: CaseFilter): CaseRow[] {
    return this.evidence.caseAggregates(filter).map(toCaseRow);
  }

  report(filter: CaseFilter, now = Date.now()): CaseReport {
    return buildReport(
      this.caseRows(filter),
      { since: filter.since, until: filter.until, warehouse: filter.warehouseId },
      now,
    );
  }

  close(): void {
    this.store.closeDb();
  }
}
