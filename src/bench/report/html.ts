/**
 * A self-contained HTML report of one or more runs: summary, latency budget, latency CDF,
 * latency and bitrate over time, network legs. Charts are inline SVG; no scripts, nothing
 * fetched from anywhere.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeDirection } from '../profiles.ts';
import { renderRepeatText, summarizeRepeats } from '../repeat.ts';
import type { BenchResult } from '../result.ts';
import { escapeXml, lineChart, stackedBar } from './svg.ts';
import { harnessSummary, proofMark, renderSummaryTable } from './text.ts';

const COLORS = ['#2e86de', '#e67e22', '#27ae60', '#8e44ad', '#c0392b', '#16a085', '#7f8c8d'];

function ms(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function runSection(r: BenchResult): string {
  const main = r.endToEnd ?? r.transit;
  const outageBands = r.outages
    .filter((o, i, all) => all.findIndex((x) => x.startAt === o.startAt) === i)
    .map((o) => ({
      from: (o.startAt - r.epochMs) / 1000,
      to: (o.endAt - r.epochMs) / 1000,
      label: `outage ${o.where}`,
    }));
  const budgetParts = r.budget
    .map((b, i) => ({
      label: b.part,
      value: b.summary?.p50 ?? b.fixedMs ?? 0,
      color: COLORS[i % COLORS.length]!,
    }))
    .filter((p) => p.value > 0);
  const cdfChart = lineChart({
    title: `${r.endToEnd ? 'Camera-to-screen' : 'Transit'} latency, CDF`,
    xLabel: 'ms',
    yLabel: 'share of frames',
    series: [
      {
        name: r.endToEnd ? 'camera to screen' : 'transit',
        color: COLORS[0]!,
        points: r.cdf.map((p) => ({ x: p.x, y: p.p })),
        step: true,
      },
    ],
    yMin: 0,
    yMax: 1,
    xMin: 0,
    xMax: Math.max(r.verdict.targetMs, ...r.cdf.map((p) => p.x)) * 1.12,
    vLines: [
      {
        x: r.verdict.targetMs - r.verdict.allowanceMs,
        label: `target${r.verdict.allowanceMs ? ' − allowance' : ''}`,
        color: '#c0392b',
      },
    ],
  });
  const latencyChart = lineChart({
    title: 'Transit latency over time (frames sent in each second)',
    xLabel: 's since the start of the measurement',
    yLabel: 'ms',
    series: [
      {
        name: 'p50',
        color: COLORS[0]!,
        points: r.series.latency.map((p) => ({ x: p.t, y: p.p50 })),
      },
      {
        name: 'max',
        color: COLORS[1]!,
        points: r.series.latency.map((p) => ({ x: p.t, y: p.max })),
        dashed: true,
      },
    ],
    xMin: 0,
    bands: outageBands,
  });
  const bitrateChart = lineChart({
    title: 'Bitrate delivered to viewers (all sessions, on the wire)',
    xLabel: 's since the start of the measurement',
    yLabel: 'kbit/s',
    series: [
      {
        name: 'received',
        color: COLORS[2]!,
        points: r.series.bitrate.map((p) => ({ x: p.t, y: p.kbps })),
      },
    ],
    xMin: 0,
    bands: outageBands,
  });
  const sr = r.sendRate;
  const sendRateChart = sr
    ? lineChart({
        title: `Buyer send rate (browser; ceiling ${sr.ceilingKbps.toFixed(0)} kbit/s)`,
        xLabel: 's since the start of the measurement',
        yLabel: 'kbit/s',
        series: sr.sessions.flatMap((s, i) => [
          {
            name: `sent, session ${s.session}`,
            color: COLORS[(2 * i) % COLORS.length]!,
            points: s.series.map((p) => ({ x: p.t, y: p.kbps })),
          },
          {
            name: `estimate, session ${s.session}`,
            color: COLORS[(2 * i + 1) % COLORS.length]!,
            points: s.series
              .filter((p) => p.availableKbps !== undefined)
              .map((p) => ({ x: p.t, y: p.availableKbps! })),
            dashed: true,
          },
        ]),
        yMin: 0,
        bands: outageBands,
      })
    : '';
  const proofRows = (r.proofs ?? [])
    .map(
      (p) =>
        `<tr><td class="l">${proofMark(p)}</td><td class="l">${escapeXml(p.goal)}</td><td class="l">${escapeXml(p.measured)}</td></tr>`,
    )
    .join('');
  const legRows = (['buyer.up', 'buyer.down', 'staff.up', 'staff.down'] as const)
    .map((k) => {
      const d = r.network[k];
      return `<tr><td>${k}</td><td class="l">${escapeXml(describeDirection(d.configured))}</td><td>${d.packets}</td><td>${(d.lossRatio * 100).toFixed(2)} %</td><td>${escapeXml(
        Object.entries(d.dropped)
          .filter(([, n]) => n > 0)
          .map(([c, n]) => `${c} ${n}`)
          .join(', ') || '–',
      )}</td><td>${d.maxQueue}</td><td>${ms(d.delayP50Ms)} / ${ms(d.delayP95Ms)}</td></tr>`;
    })
    .join('');
  const budgetRows = r.budget
    .map(
      (b) =>
        `<tr><td>${b.part}</td><td class="l">${escapeXml(b.label)}</td><td>${b.summary ? ms(b.summary.p50) : b.fixedMs !== undefined ? `${b.fixedMs} (fixed)` : 'not measured'}</td><td>${ms(b.summary?.p95)}</td><td>${ms(b.summary?.p99)}</td></tr>`,
    )
    .join('');
  const outageRows = r.outages
    .map(
      (o) =>
        `<li>${escapeXml(o.where)}: ${((o.endAt - o.startAt) / 1000).toFixed(1)} s — ${o.recoveryMs === undefined ? 'video did not recover before the end' : `video back ${ms(o.recoveryMs)} ms after it ended`}</li>`,
    )
    .join('');
  return `<section>
<h2>${escapeXml(r.profile.name)} <span class="${r.verdict.pass ? 'pass' : 'fail'}">${r.verdict.pass ? 'PASS' : 'FAIL'}</span></h2>
<p>${escapeXml(r.profile.description)}. Run <code>${escapeXml(r.id)}</code>, ${escapeXml(r.startedAt)};
${r.settings.sessions} session(s), ${(r.settings.durationMs / 1000).toFixed(0)} s, video ${r.settings.bitrateKbps} kbit/s,
${escapeXml(r.settings.mode)} clients${r.settings.mode === 'baseline' ? ' with no node' : ` via the node (${escapeXml(r.settings.node.kind)})`}.
Configured propagation buyer → staff: ${r.profile.propagationMs} ms.</p>
<p class="verdict">${escapeXml(r.verdict.reason)}</p>
${proofRows ? `<table><tr><th></th><th class="l">goal</th><th class="l">measured</th></tr>${proofRows}</table>` : ''}
<table><tr><th></th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>frames</th></tr>
${r.endToEnd ? `<tr><td>camera to screen</td><td>${ms(r.endToEnd.p50)}</td><td>${ms(r.endToEnd.p95)}</td><td>${ms(r.endToEnd.p99)}</td><td>${ms(r.endToEnd.max)}</td><td>${r.endToEnd.count}</td></tr>` : ''}
${r.transit ? `<tr><td>transit</td><td>${ms(r.transit.p50)}</td><td>${ms(r.transit.p95)}</td><td>${ms(r.transit.p99)}</td><td>${ms(r.transit.max)}</td><td>${r.transit.count}</td></tr>` : ''}
</table>
<p>Frames: ${r.frames.sent} sent, ${r.frames.received} complete (${(r.frames.lossRatio * 100).toFixed(2)} % lost), ${r.frames.freezeCount} freezes, ${(r.frames.freezeRatio * 100).toFixed(1)} % of the time frozen.
Repair: ${r.repair.packetsNacked} packets NACKed by viewers, ${r.repair.retransmitsReceived} repaired, ${r.repair.unrepairedPackets} given up, ${r.repair.plisFromViewers} PLIs.
Bitrate: ${r.bitrate.sentKbps.toFixed(0)} kbit/s sent, ${r.bitrate.receivedKbps.toFixed(0)} kbit/s received.
${main ? '' : 'No frame arrived.'}</p>
<h3>Where the time goes (p50)</h3>
${budgetParts.length ? stackedBar('Latency budget, p50 per part (ms)', budgetParts, r.verdict.targetMs) : ''}
<table><tr><th>part</th><th></th><th>p50</th><th>p95</th><th>p99</th></tr>${budgetRows}</table>
<div class="charts">${cdfChart}${latencyChart}${bitrateChart}${sendRateChart}</div>
<h3>Network legs</h3>
<table><tr><th>leg</th><th>configured</th><th>packets</th><th>loss</th><th>dropped by</th><th>max queue</th><th>relay delay p50 / p95 ms</th></tr>${legRows}</table>
${outageRows ? `<h3>Outages</h3><ul>${outageRows}</ul>` : ''}
<p class="small">Harness: ${escapeXml(harnessSummary(r.harness))}.
${r.nodeResources ? `Node CPU ${r.nodeResources.cpuPercent.toFixed(1)} % of a core${r.nodeResources.shared ? ' (shared with the harness)' : ''}, RSS ${(r.nodeResources.rssBytes / 1048576).toFixed(0)} MB.` : ''}</p>
</section>`;
}

/** With several runs of a profile (`bench run --repeat`): each goal judged on the median run. */
function repeatedSection(results: readonly BenchResult[]): string {
  const names = results.map((r) => r.profile.name);
  if (new Set(names).size === names.length) return '';
  return `<h2>Over the repeated runs</h2>\n<pre>${escapeXml(renderRepeatText(summarizeRepeats(results)))}</pre>`;
}

export function renderHtml(results: readonly BenchResult[], title = 'returncam bench'): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:18px;border-top:1px solid #ddd;padding-top:16px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child,td.l{text-align:left}
.pass{color:#fff;background:#27ae60;padding:1px 8px;border-radius:3px;font-size:13px}.fail{color:#fff;background:#c0392b;padding:1px 8px;border-radius:3px;font-size:13px}
.verdict{font-weight:600}.small{color:#666;font-size:12px}pre{background:#f6f6f6;padding:8px;overflow:auto}
.charts svg{margin:8px 8px 0 0;border:1px solid #eee}
svg .title{font-size:13px;font-weight:600}svg .tick{font-size:10px;fill:#555}svg .label{font-size:11px;fill:#333}svg .bar{font-size:11px;fill:#fff}
svg .grid{stroke:#eee}svg .axis{stroke:#999}
</style></head><body>
<h1>${escapeXml(title)}</h1>
<pre>${escapeXml(renderSummaryTable(results))}</pre>
${repeatedSection(results)}
${results.map(runSection).join('\n')}
</body></html>
`;
}

/** Writes the report, creating its directory. */
export function writeHtmlReport(file: string, results: readonly BenchResult[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderHtml(results));
}
