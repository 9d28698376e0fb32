import { escapeXml } from '../../core/html.ts';
import { type CaseReport, humanSeconds, pct, type RankRow, UNDECIDED } from './report.ts';

/**
 * The case report as one self-contained HTML page: tables and inline SVG bar charts, no scripts,
 * nothing fetched.
 */

const OUTCOME_COLORS: Record<string, string> = {
  refund: '#c0392b',
  partial_refund: '#e67e22',
  replacement: '#2e86de',
  rejected: '#27ae60',
  [UNDECIDED]: '#95a5a6',
};

interface BarSegment {
  name: string;
  value: number;
  color: string;
}

interface BarRow {
  label: string;
  segments: BarSegment[];
  /** Text at the end of the bar (defaults to the sum). */
  note?: string;
}

/** Horizontal (stacked) bars with a legend. */
export function barChart(o: {
  title: string;
  rows: BarRow[];
  max?: number;
  legend?: { name: string; color: string }[];
}): string {
  const width = 680;
  const labelW = 170;
  const noteW = 90;
  const barH = 18;
  const gap = 8;
  const top = 30;
  const legendH = o.legend?.length ? 22 : 0;
  const height = top + o.rows.length * (barH + gap) + legendH + 6;
  const pw = width - labelW - noteW - 16;
  const max =
    o.max ?? Math.max(1e-9, ...o.rows.map((r) => r.segments.reduce((s, x) => s + x.value, 0)));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(o.title)}">`,
    `<text x="0" y="18" class="title">${escapeXml(o.title)}</text>`,
  ];
  o.rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    const label = r.label.length > 26 ? `${r.label.slice(0, 25)}…` : r.label;
    out.push(
      `<text x="${labelW - 8}" y="${y + barH / 2}" class="tick" text-anchor="end" dominant-baseline="middle">${escapeXml(label)}</text>`,
    );
    let x = labelW;
    let sum = 0;
    for (const s of r.segments) {
      const w = (s.value / max) * pw;
      sum += s.value;
      if (w > 0) {
        out.push(
          `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${s.color}"><title>${escapeXml(`${r.label}: ${s.name} ${s.value}`)}</title></rect>`,
        );
      }
      x += w;
    }
    out.push(
      `<text x="${(x + 6).toFixed(1)}" y="${y + barH / 2}" class="tick" dominant-baseline="middle">${escapeXml(r.note ?? String(sum))}</text>`,
    );
  });
  if (o.legend?.length) {
    let lx = labelW;
    const ly = top + o.rows.length * (barH + gap) + 12;
    for (const l of o.legend) {
      out.push(
        `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${l.color}"/>`,
        `<text x="${lx + 14}" y="${ly}" class="tick">${escapeXml(l.name)}</text>`,
      );
      lx += 24 + l.name.length * 7;
    }
  }
  out.push('</svg>');
  return out.join('');
}

function rankTable(title: string, rows: RankRow[], keyName: string): string {
  const body = rows
    .slice(0, 15)
    .map(
      (r) =>
        `<tr><td>${escapeXml(r.key)}</td><td class="n">${r.cases}</td><td class="n">${r.decided}</td><td class="n">${r.refunds}</td><td class="n">${pct(r.refundRate)}</td></tr>`,
    )
    .join('');
  return `<h3>${escapeXml(title)}</h3><table><tr><th>${escapeXml(keyName)}</th><th>cases</th><th>decided</th><th>refunded</th><th>refund rate</th></tr>${body || '<tr><td colspan="5">none</td></tr>'}</table>`;
}

function rankCharts(count: RankRow[], rate: RankRow[], what: string): string {
  const top = count.slice(0, 10);
  const byRate = rate.slice(0, 10);
  return (
    barChart({
      title: `${what} by number of returns (top ${top.length})`,
      rows: top.map((r) => ({
        label: r.key,
        segments: [{ name: 'cases', value: r.cases, color: '#2e86de' }],
      })),
    }) +
    barChart({
      title: `${what} by refund rate (decided cases; top ${byRate.length})`,
      max: 1,
      rows: byRate.map((r) => ({
        label: r.key,
        segments: [{ name: 'refund rate', value: r.refundRate ?? 0, color: '#c0392b' }],
        note: `${pct(r.refundRate)} of ${r.decided}`,
      })),
    })
  );
}

export function renderReportHtml(r: CaseReport): string {
  const period = [
    r.filter.since ? `from ${r.filter.since}` : 'from the first case',
    r.filter.until ? `until ${r.filter.until}` : 'until now',
    r.filter.warehouse ? `warehouse ${r.filter.warehouse}` : 'all warehouses',
  ].join(', ');
  const h = r.handling;
  const handlingRows = (
    [
      ['created → decided (handling)', h.createdToDecided],
      ['first joined → decided (inspection)', h.joinedToDecided],
      ['created → first joined (waiting for the buyer)', h.createdToJoined],
    ] as const
  )
    .map(
      ([label, p]) =>
        `<tr><td>${label}</td><td class="n">${p?.count ?? 0}</td><td class="n">${humanSeconds(p?.p50)}</td><td class="n">${humanSeconds(p?.p90)}</td><td class="n">${humanSeconds(p?.p95)}</td><td class="n">${humanSeconds(p?.max)}</td></tr>`,
    )
    .join('');
  const handlingChart = barChart({
    title: 'Handling time, created → decided (minutes)',
    rows: h.createdToDecided
      ? (['p50', 'p90', 'p95', 'max'] as const).map((k) => ({
          label: k,
          segments: [{ name: k, value: h.createdToDecided![k] / 60, color: '#8e44ad' }],
          note: humanSeconds(h.createdToDecided![k]),
        }))
      : [],
  });
  const outcomeKeys = [...new Set(r.byReason.flatMap((x) => Object.keys(x.outcomes)))].sort(
    (a, b) => (a === UNDECIDED ? 1 : b === UNDECIDED ? -1 : a.localeCompare(b)),
  );
  const reasonChart = barChart({
    title: 'Cases by return reason and outcome',
    rows: r.byReason.map((x) => ({
      label: x.reason,
      segments: outcomeKeys.map((k) => ({
        name: k,
        value: x.outcomes[k] ?? 0,
        color: OUTCOME_COLORS[k] ?? '#7f8c8d',
      })),
    })),
    legend: outcomeKeys.map((k) => ({ name: k, color: OUTCOME_COLORS[k] ?? '#7f8c8d' })),
  });
  const reasonRows = r.byReason
    .map(
      (x) =>
        `<tr><td>${escapeXml(x.reason)}</td><td class="n">${x.cases}</td>${outcomeKeys.map((k) => `<td class="n">${x.outcomes[k] ?? 0}</td>`).join('')}</tr>`,
    )
    .join('');
  const fc = r.firstCall;
  const firstCallChart = barChart({
    title: 'Decided cases: settled on the first call or not',
    rows: [
      {
        label: 'decided with a call',
        segments: [
          { name: 'first call', value: fc.onFirstCall, color: '#27ae60' },
          { name: 'more calls', value: fc.decidedWithCall - fc.onFirstCall, color: '#e67e22' },
        ],
        note: `${pct(fc.share)} first call`,
      },
    ],
    legend: [
      { name: 'first call', color: '#27ae60' },
      { name: 'more calls', color: '#e67e22' },
    ],
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>returncam case report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px auto; max-width: 980px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; } th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f6f6f6; }
.meta { color: #666; font-size: 13px; } .cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 140px; } .card b { display: block; font-size: 20px; }
svg { display: block; margin: 10px 0; max-width: 100%; height: auto; } svg .title { font: 600 13px sans-serif; } svg .tick { font: 11px sans-serif; fill: #444; }
</style></head><body>
<h1>Return cases report</h1>
<p class="meta">${escapeXml(period)}. Generated ${escapeXml(r.generatedAt)} (times in UTC).</p>
<div class="cards">
<div class="card"><b>${r.cases}</b>cases</div>
<div class="card"><b>${r.decided}</b>decided</div>
<div class="card"><b>${humanSeconds(h.createdToDecided?.p50)}</b>median handling time</div>
<div class="card"><b>${pct(fc.share)}</b>decided on the first call</div>
<div class="card"><b>${r.video.minutes}</b>video minutes</div>
</div>
<h2>Handling time</h2>
<table><tr><th></th><th>cases</th><th>p50</th><th>p90</th><th>p95</th><th>max</th></tr>${handlingRows}</table>
${h.createdToDecided ? handlingChart : '<p>No case is decided yet.</p>'}
<h2>Reasons and outcomes</h2>
${r.byReason.length ? reasonChart : ''}
<table><tr><th>reason</th><th>cases</th>${outcomeKeys.map((k) => `<th>${escapeXml(k)}</th>`).join('')}</tr>${reasonRows || '<tr><td colspan="2">no cases</td></tr>'}</table>
<h2>First call</h2>
<p>${fc.onFirstCall} of ${fc.decidedWithCall} decided cases with a buyer call were decided after the first call (${pct(fc.share)}); ${fc.decidedWithoutCall} were decided without any call. Buyer sessions less than 5 minutes apart count as one call.</p>
${fc.decidedWithCall ? firstCallChart : ''}
<h2>SKUs</h2>
${rankCharts(r.skusByCount, r.skusByRefundRate, 'SKUs')}
${rankTable('SKUs by number of returns', r.skusByCount, 'SKU')}
${rankTable('SKUs by refund rate', r.skusByRefundRate, 'SKU')}
<h2>Warehouses</h2>
${rankCharts(r.warehousesByCount, r.warehousesByRefundRate, 'Warehouses')}
${rankTable('Warehouses by number of returns', r.warehousesByCount, 'warehouse')}
${rankTable('Warehouses by refund rate', r.warehousesByRefundRate, 'warehouse')}
<p class="meta">Refund rate = refunds and partial refunds / decided cases. ${r.video.snapshots} snapshots, ${r.video.messages} chat messages, ${r.video.reconnects} reconnects in the period.</p>
</body></html>
`;
}
