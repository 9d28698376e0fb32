import { escapeXml as esc } from '../../core/html.ts';
import { bytes, duration, type SummaryModel, utc } from './summary.ts';

/**
 * The printable summary as one HTML page that sits at the root of the bundle and shows the stills
 * from `stills/` beside it. No scripts, nothing fetched.
 */
export function renderSummaryHtml(m: SummaryModel): string {
  const c = m.case;
  const facts = m.facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  const recordings = m.recordings
    .map(
      (r) =>
        `<tr><td>${esc(r.role)}</td><td>${esc(utc(r.startedAt))}</td><td>${esc(duration(r.durationMs))}</td><td>${esc(r.status)}${r.note ? `<br><span class="small">${esc(r.note)}</span>` : ''}</td><td>${esc(r.codecs)}</td><td>${esc(bytes(r.bytes))}</td><td class="hash">${esc(r.sha256 ?? '-')}</td><td>${r.file ? `<a href="${esc(r.file)}">original</a>` : '-'}${r.mp4 ? ` · <a href="${esc(r.mp4)}">MP4</a>` : ''}</td></tr>`,
    )
    .join('');
  const participants = m.participants
    .map(
      (p) =>
        `<tr><td>${esc(p.role)}</td><td>${p.direction === 'publish' ? 'sent video' : 'watched'}</td><td>${esc(utc(p.startedAt))}</td><td>${esc(utc(p.endedAt))}</td><td>${esc(p.endReason ?? '-')}</td></tr>`,
    )
    .join('');
  const stills = m.stills
    .map(
      (s) =>
        `<figure><img src="${esc(s.file)}" alt="${esc(s.label)}" width="${s.width}" height="${s.height}"><figcaption><b>${esc(s.label)}</b><br>${esc(utc(s.takenAt, true))} · ${esc(s.source)}</figcaption></figure>`,
    )
    .join('');
  const timeline = m.timeline
    .map(
      (e) =>
        `<tr><td class="n">${e.seq}</td><td>${esc(utc(e.at, true))}</td><td>${esc(e.type)}</td><td>${esc(e.actor)}</td><td>${esc(e.detail)}</td><td class="hash">${esc(e.hash.slice(0, 16))}…</td></tr>`,
    )
    .join('');
  const chat = m.messages
    .map(
      (msg) =>
        `<tr><td>${esc(utc(msg.at))}</td><td>${esc(msg.role)}${msg.kind === 'prompt' ? ' (prompt)' : ''}</td><td>${esc(msg.body)}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Return inspection evidence — order ${esc(c.orderId)} — case ${esc(c.id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: "DejaVu Sans", system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; max-width: 960px; margin: 24px auto; padding: 0 16px; font-size: 14px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid #1d1d1f; padding-bottom: 3px; }
.meta { color: #555; font-size: 12px; } .small { color: #666; font-size: 11px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 12.5px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #e3e3e3; }
table.facts th { width: 190px; color: #444; font-weight: 600; background: #f7f7f7; }
.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 11px; word-break: break-all; } td.n { text-align: right; }
.stills { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid #ddd; padding: 6px; break-inside: avoid; } figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; margin-top: 6px; } .notes { background: #fff6e0; border: 1px solid #f0d58c; padding: 8px 12px; }
ol.verify li { margin-bottom: 6px; } code { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
</style></head><body>
<h1>Return inspection evidence</h1>
<p class="meta">Order ${esc(c.orderId)} · SKU ${esc(c.sku)} · case ${esc(c.id)}<br>
Exported ${esc(utc(m.generatedAt))} by ${esc(m.exportedBy)} from node ${esc(m.nodeId)} (evidence key ${esc(m.keyId)}). All times are UTC.</p>
${m.notes.length ? `<div class="notes"><b>Notes</b><ul>${m.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></div>` : ''}
<h2>Case</h2>
<table class="facts">${facts}</table>
<h2>Recordings</h2>
${m.recordings.length ? `<table><tr><th>role</th><th>started</th><th>length</th><th>status</th><th>codecs</th><th>size</th><th>SHA-256 (stored when it ended)</th><th>files</th></tr>${recordings}</table>` : '<p>No recording was kept for this case.</p>'}
<h2>Stills</h2>
${m.stills.length ? `<p class="small">Staff snapshots and frames taken from the recording at key moments; each carries its UTC time, the case and the order in a band at the bottom.</p><div class="stills">${stills}</div>` : '<p>No stills.</p>'}
<h2>Participants</h2>
${m.participants.length ? `<table><tr><th>role</th><th>as</th><th>from</th><th>until</th><th>ended because</th></tr>${participants}</table>` : '<p>Nobody joined the call.</p>'}
<h2>Chat</h2>
${m.messages.length ? `<table><tr><th>time</th><th>from</th><th>text</th></tr>${chat}</table>` : '<p>No chat messages.</p>'}
<h2>Timeline</h2>
<p class="small">${m.eventCount} events; head hash <span class="hash">${esc(m.headHash)}</span></p>
<table><tr><th>#</th><th>time</th><th>event</th><th>by</th><th>detail</th><th>hash</th></tr>${timeline}</table>
<h2>How to verify</h2>
<ol class="verify">${m.howToVerify.map((l) => `<li>${esc(l)}</li>`).join('')}</ol>
</body></html>
`;
}
