/** Plain-text renderings of benchmark results, for terminals and CI logs. */
import { describeDirection } from '../profiles.ts';
import type { Proof } from '../proofs.ts';
import type { BenchResult, LegDirectionResult } from '../result.ts';
import type { Summary } from '../stats.ts';

function ms(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function pct(v: number): string {
  return `${(v * 100).toFixed(v > 0 && v < 0.001 ? 3 : 1)} %`;
}

/** Left-aligned columns separated by two spaces. */
export function columns(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (let i = 0; i < r.length; i++) widths[i] = Math.max(widths[i] ?? 0, r[i]!.length);
  }
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function summaryCells(s: Summary | undefined): string[] {
  return [ms(s?.p50), ms(s?.p95), ms(s?.p99), ms(s?.max)];
}

function direction(name: string, d: LegDirectionResult): string[] {
  const dropped = Object.entries(d.dropped)
    .filter(([, n]) => n > 0)
    .map(([cause, n]) => `${cause} ${n}`)
    .join(', ');
  return [
    name,
    describeDirection(d.configured),
    String(d.packets),
    pct(d.lossRatio),
    dropped || '-',
    String(d.maxQueue),
    `${ms(d.delayP50Ms)} / ${ms(d.delayP95Ms)}`,
  ];
}

interface BrowserSessionDetails {
  session: number;
  framesDrawn: number;
  framesShownReadable: number;
  framesShownUnreadable: number;
  framesStampMismatched?: number;
  sender?: Record<string, unknown> & { frameSize?: string; qualityLimitationReason?: string };
  receiver?: Record<string, unknown>;
}

function browserSessions(r: BenchResult): BrowserSessionDetails[] {
  const sessions = (r.browser as { sessions?: BrowserSessionDetails[] } | undefined)?.sessions;
  return Array.isArray(sessions) ? sessions : [];
}

/** PASS, MISS, or `-` for a goal this run could not measure. */
export function proofMark(p: Proof): string {
  return p.pass === null ? '-' : p.pass ? 'PASS' : 'MISS';
}

/** One line per goal: mark, goal, measured figure. */
export function renderProofs(r: BenchResult): string {
  const proofs = r.proofs ?? [];
  if (proofs.length === 0) return '';
  return columns([
    ['goals', '', 'measured'],
    ...proofs.map((p) => [proofMark(p), p.goal, p.measured]),
  ]);
}

/** The send-rate lines of a browser run. */
function sendRateLines(r: BenchResult): string[] {
  const sr = r.sendRate;
  if (!sr) return [];
  const from = [
    `page ${sr.ceilingFrom.pageKbps.toFixed(0)}`,
    sr.ceilingFrom.nodeKbps !== undefined ? `node ${sr.ceilingFrom.nodeKbps.toFixed(0)}` : '',
    sr.ceilingFrom.uplinkKbps !== undefined
      ? `buyer uplink ${sr.ceilingFrom.uplinkKbps.toFixed(0)}`
      : '',
  ]
    .filter(Boolean)
    .join(', ');
  const lines = [
    `send rate ceiling ${sr.ceilingKbps.toFixed(0)} kbit/s (lowest of ${from}); ${(sr.rampTo * 100).toFixed(0)} % of it ${sr.rampSeconds === null ? 'never reached' : `reached ${sr.rampSeconds.toFixed(1)} s after connecting`}`,
  ];
  if (sr.settle) {
    lines.push(
      `          after the ramp (${sr.settle.seconds.toFixed(0)} s): median ${sr.settle.medianKbps.toFixed(0)} kbit/s, ${pct(sr.settle.inBandFraction)} of the time within ${(sr.band.low * 100).toFixed(0)}-${(sr.band.high * 100).toFixed(0)} % of the ceiling, longest under ${(sr.band.low * 100).toFixed(0)} %: ${sr.settle.longestCollapseSeconds.toFixed(1)} s`,
    );
  }
  for (const s of sr.sessions) {
    const end = r.settings.durationMs / 1000;
    const pts = s.series.filter((p) => p.t > s.connectedAtSeconds && p.t <= end + 0.5);
    if (pts.length === 0) continue;
    lines.push(
      `          session ${s.session}, kbit/s per second: ${pts.map((p) => p.kbps.toFixed(0)).join(' ')}`,
    );
  }
  return lines;
}

/**
 * The harness, one line: how late the relays' deliveries were, who timed the arrivals, and how
 * many datagrams full socket buffers dropped.
 */
export function harnessSummary(h: BenchResult['harness']): string {
  const timed =
    h.kernelTimedArrivals === undefined
      ? ''
      : `; arrivals timed by the kernel: ${(100 * h.kernelTimedArrivals).toFixed(1)} %`;
  const drops =
    h.udpBufferDrops === undefined
      ? ''
      : `; datagrams dropped in full socket buffers: ${h.udpBufferDrops}`;
  return `${h.deliveries} relay deliveries, ${h.lateDeliveries} late by more than 2 ms, mean lateness ${h.meanLatenessMs.toFixed(2)} ms${timed}${drops}`;
}

/** The full report of one run. */
export function renderRunText(r: BenchResult): string {
  const s = r.settings;
  const lines: string[] = [];
  const via =
    s.mode === 'baseline'
      ? 'no node (clients connected to each other through the relays)'
      : `${s.mode} clients via ${s.node.kind} node${s.node.url ? ` ${s.node.url}` : ''}`;
  lines.push(
    `returncam bench ${r.id}: ${r.profile.name} (${r.profile.description})`,
    `  ${s.sessions} session${s.sessions > 1 ? 's' : ''}, ${(s.durationMs / 1000).toFixed(0)} s (first ${(s.warmupMs / 1000).toFixed(1)} s not measured), video ${s.mode === 'browser' ? `up to ${s.bitrateKbps} kbit/s${s.simulcast ? ' (top simulcast layer)' : ''}` : `${s.bitrateKbps} kbit/s`}, ${via}`,
    '',
  );
  const latencyRows = [['latency, ms', 'p50', 'p95', 'p99', 'max', 'frames']];
  if (r.endToEnd)
    latencyRows.push(['camera to screen', ...summaryCells(r.endToEnd), String(r.endToEnd.count)]);
  if (r.transit)
    latencyRows.push([
      'transit (send -> complete at viewer)',
      ...summaryCells(r.transit),
      String(r.transit.count),
    ]);
  lines.push(columns(latencyRows));
  lines.push(`  configured propagation on the path: ${r.profile.propagationMs} ms one way`, '');

  const budgetRows = [['where the time goes, ms', 'p50', 'p95', 'p99', '']];
  for (const b of r.budget) {
    if (b.summary) {
      budgetRows.push([
        `${b.part}: ${b.label}`,
        ms(b.summary.p50),
        ms(b.summary.p95),
        ms(b.summary.p99),
        '',
      ]);
    } else if (b.fixedMs !== undefined) {
      budgetRows.push([`${b.part}: ${b.label}`, ms(b.fixedMs), '', '', 'fixed']);
    } else {
      budgetRows.push([`${b.part}: ${b.label}`, '-', '-', '-', 'not measured']);
    }
  }
  lines.push(columns(budgetRows), '');

  const f = r.frames;
  lines.push(
    `frames    ${f.sent} sent, ${f.received} complete at the viewer (${pct(f.lossRatio)} lost), ${f.shown} decodable; ${f.freezeCount} freeze${f.freezeCount === 1 ? '' : 's'}, ${(f.freezeMs / 1000).toFixed(1)} s frozen of ${((f.measuredMs ?? 0) / 1000).toFixed(1)} s (${pct(f.freezeRatio)}${freezeSourceNote(r)})`,
  );
  if (r.settings.backupPicture) lines.push(backupLine(r));
  lines.push(...sendRateLines(r));
  const rep = r.repair;
  lines.push(
    `repair    viewers NACKed ${rep.packetsNacked} packets in ${rep.nacksFromViewers} NACKs, ${rep.retransmitsReceived} repaired, ${rep.unrepairedPackets} given up; ${rep.plisFromViewers} PLIs`,
  );
  if (rep.node) {
    lines.push(
      `          node: ${rep.node.nacksToPublishers} NACKs to the buyer, ${rep.node.retransmits} resends to viewers, ${rep.node.plisToPublishers} keyframe requests to the buyer (${rep.node.stallReportsFromViewers ?? 0} asked by staff pages whose picture stood still); buyer saw ${rep.nacksAtPublishers} NACKs, ${rep.keyframeRequestsAtPublishers} keyframe requests`,
    );
  }
  lines.push(
    `bitrate   ${r.bitrate.sentKbps.toFixed(0)} kbit/s sent by buyers, ${r.bitrate.receivedKbps.toFixed(0)} kbit/s delivered to viewers (on the wire, all sessions)`,
  );
  if (r.rttMs.buyer || r.rttMs.staff) {
    lines.push(
      `rtt       ICE checks through the relays: buyer leg p50 ${ms(r.rttMs.buyer?.p50)} ms, staff leg p50 ${ms(r.rttMs.staff?.p50)} ms`,
    );
  }
  if (r.nodeResources) {
    lines.push(
      `node      CPU ${r.nodeResources.cpuPercent.toFixed(1)} % of one core${r.nodeResources.shared ? ' (same process as the harness: includes it)' : ''}, RSS ${(r.nodeResources.rssBytes / 1024 / 1024).toFixed(0)} MB`,
    );
  }
  lines.push('');
  lines.push(
    columns([
      [
        'network',
        'configured',
        'packets',
        'loss',
        'dropped by',
        'max queue',
        'relay delay p50 / p95 ms',
      ],
      direction('buyer.up', r.network['buyer.up']),
      direction('buyer.down', r.network['buyer.down']),
      direction('staff.up', r.network['staff.up']),
      direction('staff.down', r.network['staff.down']),
    ]),
  );
  if (r.outages.length) {
    lines.push('');
    for (const o of r.outages) {
      lines.push(
        `outage    ${o.where}: ${((o.endAt - o.startAt) / 1000).toFixed(1)} s; ${o.recoveryMs === undefined ? 'video did not recover before the end of the run' : `video back ${ms(o.recoveryMs)} ms after it ended`}`,
      );
    }
  }
  for (const b of browserSessions(r)) {
    const num = (v: unknown, digits = 1) => (typeof v === 'number' ? v.toFixed(digits) : '-');
    const tx = b.sender ?? {};
    const rx = b.receiver ?? {};
    lines.push(
      '',
      `browser   session ${b.session}: drawn ${b.framesDrawn}, encoded ${num(tx.framesEncoded, 0)}, decoded ${num(rx.framesDecoded, 0)}, shown with a readable stamp ${b.framesShownReadable} (unreadable ${b.framesShownUnreadable}, copied a frame late ${b.framesStampMismatched ?? 0})`,
      `          buyer (sender): ${tx.frameSize ?? '-'}, target ${typeof tx.targetBitrate === 'number' ? (tx.targetBitrate / 1000).toFixed(0) : '-'} kbit/s, limited by ${tx.qualityLimitationReason ?? '-'}, encode ${num(tx.encodeMsPerFrame)} ms/frame, ${num(tx.nackCount, 0)} NACKs and ${num(tx.pliCount, 0)} PLIs received, RTT ${num(tx.rttMs)} ms`,
      `          staff (receiver): jitter buffer ${num(rx.jitterBufferMs)} ms (target ${num(rx.jitterBufferTargetMs)}, floor ${num(rx.jitterBufferMinimumMs)} from A/V sync; audio ${num(rx.audioJitterBufferMs)} ms), decode ${num(rx.decodeMsPerFrame)} ms/frame, ${num(rx.freezeCount, 0)} freezes (${num(rx.totalFreezesDurationS)} s), ${num(rx.packetsLost, 0)} packets lost, ${num(rx.nackCount, 0)} NACKs sent, RTT ${num(rx.rttMs)} ms`,
    );
  }
  for (const note of r.notes) lines.push(`note      ${note}`);
  const proofs = renderProofs(r);
  if (proofs) lines.push('', proofs);
  lines.push(
    '',
    `harness   ${harnessSummary(r.harness)}`,
    `verdict   ${r.verdict.pass ? 'PASS' : 'FAIL'}: ${r.verdict.reason}`,
  );
  return lines.join('\n');
}

function recoveryCell(r: BenchResult): string {
  if (r.outages.length === 0) return '-';
  if (r.outages.some((o) => o.recoveryMs === undefined)) return 'never';
  return `${ms(Math.max(...r.outages.map((o) => o.recoveryMs!)))} ms`;
}

/** One line per run: the table `npm run bench` prints. */
export function renderSummaryTable(results: readonly BenchResult[]): string {
  const rows = [
    [
      'profile',
      'mode',
      'sessions',
      'seed',
      'propagation',
      'p50',
      'p95',
      'p99',
      'max',
      'lost',
      'frozen',
      'ramp',
      'settle / collapse',
      'recovery',
      'verdict',
    ],
  ];
  for (const r of results) {
    const s = r.endToEnd ?? r.transit;
    rows.push([
      r.profile.name,
      r.settings.mode,
      String(r.settings.sessions),
      String(r.settings.seed),
      `${r.profile.propagationMs} ms`,
      ms(s?.p50),
      ms(s?.p95),
      ms(s?.p99),
      ms(s?.max),
      pct(r.frames.lossRatio),
      pct(r.frames.freezeRatio),
      r.sendRate
        ? r.sendRate.rampSeconds === null
          ? 'never'
          : `${r.sendRate.rampSeconds.toFixed(1)} s`
        : '-',
      r.sendRate?.settle
        ? `${((100 * r.sendRate.settle.medianKbps) / r.sendRate.ceilingKbps).toFixed(0)} % / ${r.sendRate.settle.longestCollapseSeconds.toFixed(0)} s`
        : '-',
      recoveryCell(r),
      `${r.verdict.pass ? 'PASS' : 'FAIL'} p95 ${ms(r.verdict.p95Ms)}${r.verdict.allowanceMs ? ` incl. ${r.verdict.allowanceMs} allowance` : ''} / ${r.verdict.targetMs}${
        (r.proofs ?? []).some((p) => p.pass === false && p.id !== 'latency')
          ? `, missed ${(r.proofs ?? [])
              .filter((p) => p.pass === false && p.id !== 'latency')
              .map((p) => p.id)
              .join(', ')}`
          : ''
      }`,
    ]);
  }
  return columns(rows);
}

/** How the frozen time was counted, when it matters to the reader. */
function freezeSourceNote(r: BenchResult): string {
  if (r.settings.backupPicture) return ', the picture on screen, main or backup';
  return r.frames.freezeSource === 'chrome' ? ", Chrome's count" : '';
}

/** Browser runs with the backup picture: how often, and how long, the staff page showed it. */
function backupLine(r: BenchResult): string {
  const viewer = r.series.viewer ?? [];
  const fallbacks = viewer.reduce((sum, v) => sum + (v.fallbacks ?? 0), 0);
  const ms = viewer.reduce((sum, v) => sum + (v.backupMs ?? 0), 0);
  const measured = r.frames.measuredMs ?? 0;
  const share = measured > 0 ? ` (${pct(ms / measured)})` : '';
  return `backup    the staff page showed the lowest layer ${fallbacks} time${fallbacks === 1 ? '' : 's'}, ${(ms / 1000).toFixed(1)} s in all${share}, while its main picture stood still`;
}
