import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { LocalEvidence } from '../../node/evidence/LocalEvidence.ts';
import { humanSeconds, pct, type RankRow } from '../../node/evidence/report.ts';
import { renderReportHtml } from '../../node/evidence/reportHtml.ts';
import { out, printJson, status, table } from '../output.ts';
import { caseFilter, openEvidence } from './export.ts';

function rankRows(rows: RankRow[], n = 10): string[][] {
  return rows
    .slice(0, n)
    .map((r) => [r.key, String(r.cases), String(r.decided), String(r.refunds), pct(r.refundRate)]);
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description(
      'handling times, reasons and outcomes, SKUs and warehouses by returns and refund rate, first-call share',
    )
    .option('--since <when>', 'cases created at or after (2026-04-01, an ISO time, or 30d back)')
    .option('--until <when>', 'cases created before (same forms)')
    .option('--warehouse <id>', 'only this warehouse')
    .option('--html <file>', 'also write an HTML report with charts')
    .option('-d, --data <dir>', 'node data directory (on the node host)', './data')
    .option('-c, --config <file>', 'node config')
    .option('--json', 'print a versioned JSON object')
    .action(
      (f: {
        since?: string;
        until?: string;
        warehouse?: string;
        html?: string;
        data: string;
        config?: string;
        json?: boolean;
      }) => {
        const filter = caseFilter(f);
        const ev: LocalEvidence = openEvidence(f);
        let r: ReturnType<LocalEvidence['report']>;
        try {
          r = ev.report(filter);
        } finally {
          ev.close();
        }
        if (f.html) {
          writeFileSync(resolve(f.html), renderReportHtml(r));
          status(`wrote ${resolve(f.html)}`);
        }
        if (f.json) {
          const { version: _v, ...rest } = r;
          return printJson({ report: rest });
        }
        out(
          `${r.cases} case(s), ${r.decided} decided (${r.filter.since ?? 'from the first case'} → ${r.filter.until ?? 'now'}${r.filter.warehouse ? `, warehouse ${r.filter.warehouse}` : ''})`,
        );
        out('');
        out('handling time');
        const h = r.handling;
        out(
          table(
            ['', 'CASES', 'P50', 'P90', 'P95', 'MAX'],
            (
              [
                ['created → decided', h.createdToDecided],
                ['joined → decided', h.joinedToDecided],
                ['created → joined', h.createdToJoined],
              ] as const
            ).map(([label, p]) => [
              label,
              String(p?.count ?? 0),
              humanSeconds(p?.p50),
              humanSeconds(p?.p90),
              humanSeconds(p?.p95),
              humanSeconds(p?.max),
            ]),
          ),
        );
        out('');
        const outcomes = [...new Set(r.byReason.flatMap((x) => Object.keys(x.outcomes)))].sort();
        out('cases by reason and outcome');
        out(
          table(
            ['REASON', 'CASES', ...outcomes.map((o) => o.toUpperCase())],
            r.byReason.map((x) => [
              x.reason,
              String(x.cases),
              ...outcomes.map((o) => String(x.outcomes[o] ?? 0)),
            ]),
          ),
        );
        out('');
        out('SKUs by returns');
        out(table(['SKU', 'CASES', 'DECIDED', 'REFUNDED', 'REFUND RATE'], rankRows(r.skusByCount)));
        out('');
        out('SKUs by refund rate');
        out(
          table(
            ['SKU', 'CASES', 'DECIDED', 'REFUNDED', 'REFUND RATE'],
            rankRows(r.skusByRefundRate),
          ),
        );
        out('');
        out('warehouses by returns');
        out(
          table(
            ['WAREHOUSE', 'CASES', 'DECIDED', 'REFUNDED', 'REFUND RATE'],
            rankRows(r.warehousesByCount),
          ),
        );
        out('');
        out('warehouses by refund rate');
        out(
          table(
            ['WAREHOUSE', 'CASES', 'DECIDED', 'REFUNDED', 'REFUND RATE'],
            rankRows(r.warehousesByRefundRate),
          ),
        );
        out('');
        const fc = r.firstCall;
        out(
          `decided on the first call: ${fc.onFirstCall} of ${fc.decidedWithCall} (${pct(fc.share)}); ${fc.decidedWithoutCall} decided without a call`,
        );
      },
    );
}
