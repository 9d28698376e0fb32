/** Small inline-SVG charts for the HTML report: no scripts, no external resources. */

import { escapeXml } from '../../core/html.ts';

export { escapeXml };

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
  /** Draw as steps (a CDF) instead of straight segments. */
  step?: boolean;
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Vertical reference lines (the target). */
  vLines?: { x: number; label: string; color: string }[];
  /** Shaded x ranges (outages). */
  bands?: { from: number; to: number; label: string }[];
}

/** "Nice" tick values covering [min, max]. */
export function ticks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/0+$/, '');
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 280;
  const m = { left: 56, right: 16, top: 28, bottom: 44 };
  const all = o.series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x).concat((o.vLines ?? []).map((v) => v.x));
  const ys = all.map((p) => p.y);
  const xMin = o.xMin ?? (xs.length ? Math.min(...xs) : 0);
  let xMax = o.xMax ?? (xs.length ? Math.max(...xs) : 1);
  if (xMax <= xMin) xMax = xMin + 1;
  const yMin = o.yMin ?? 0;
  let yMax = o.yMax ?? (ys.length ? Math.max(...ys) * 1.05 : 1);
  if (yMax <= yMin) yMax = yMin + 1;
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sx = (x: number) => m.left + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number) => m.top + ph - ((y - yMin) / (yMax - yMin)) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(o.title)}">`,
    `<text x="${m.left}" y="18" class="title">${escapeXml(o.title)}</text>`,
  );
  for (const b of o.bands ?? []) {
    const x1 = sx(Math.max(xMin, b.from));
    const x2 = sx(Math.min(xMax, b.to));
    if (x2 <= x1) continue;
    parts.push(
      `<rect x="${x1.toFixed(1)}" y="${m.top}" width="${(x2 - x1).toFixed(1)}" height="${ph}" fill="#f2c14e" opacity="0.25"><title>${escapeXml(b.label)}</title></rect>`,
    );
  }
  for (const t of ticks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" class="grid"/>`,
      `<text x="${m.left - 6}" y="${y}" class="tick" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
    );
  }
  for (const t of ticks(xMin, xMax, 8)) {
    const x = sx(t).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${m.top + ph}" y2="${m.top + ph + 4}" class="axis"/>`,
      `<text x="${x}" y="${m.top + ph + 16}" class="tick" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" class="axis"/>`,
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" class="axis"/>`,
    `<text x="${m.left + pw / 2}" y="${height - 6}" class="label" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text x="14" y="${m.top + ph / 2}" class="label" text-anchor="middle" transform="rotate(-90 14 ${m.top + ph / 2})">${escapeXml(o.yLabel)}</text>`,
  );
  for (const v of o.vLines ?? []) {
    if (v.x < xMin || v.x > xMax) continue;
    const x = sx(v.x).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}" stroke="${v.color}" stroke-dasharray="4 3"/>`,
      `<text x="${x}" y="${m.top - 4}" class="tick" text-anchor="middle" fill="${v.color}">${escapeXml(v.label)}</text>`,
    );
  }
  o.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    let d = '';
    s.points.forEach((p, j) => {
      const x = sx(Math.min(xMax, Math.max(xMin, p.x))).toFixed(1);
      const y = sy(Math.min(yMax, Math.max(yMin, p.y))).toFixed(1);
      if (j === 0) d += `M${x},${y}`;
      else if (s.step) d += `H${x}V${y}`;
      else d += `L${x},${y}`;
    });
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}><title>${escapeXml(s.name)}</title></path>`,
      `<rect x="${m.left + pw - 150}" y="${m.top + 6 + i * 16}" width="10" height="3" fill="${s.color}"/>`,
      `<text x="${m.left + pw - 135}" y="${m.top + 10 + i * 16}" class="tick">${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

/** A horizontal stacked bar: where the milliseconds go. */
export function stackedBar(
  title: string,
  parts: { label: string; value: number; color: string }[],
  target?: number,
): string {
  const width = 640;
  const height = 96;
  const left = 16;
  const pw = width - 2 * left;
  const total = parts.reduce((s, p) => s + p.value, 0);
  const scale = Math.max(total, target ?? 0) || 1;
  let x = left;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(title)}">`,
    `<text x="${left}" y="16" class="title">${escapeXml(title)}</text>`,
  ];
  for (const p of parts) {
    const w = (p.value / scale) * pw;
    out.push(
      `<rect x="${x.toFixed(1)}" y="28" width="${Math.max(0, w).toFixed(1)}" height="26" fill="${p.color}"><title>${escapeXml(`${p.label}: ${p.value.toFixed(1)} ms`)}</title></rect>`,
    );
    if (w > 60) {
      out.push(
        `<text x="${(x + w / 2).toFixed(1)}" y="45" class="bar" text-anchor="middle">${escapeXml(`${p.label} ${p.value.toFixed(0)}`)}</text>`,
      );
    }
    x += w;
  }
  if (target !== undefined) {
    const tx = (left + (target / scale) * pw).toFixed(1);
    out.push(
      `<line x1="${tx}" x2="${tx}" y1="24" y2="60" stroke="#c0392b" stroke-dasharray="4 3"/>`,
      `<text x="${tx}" y="74" class="tick" text-anchor="middle" fill="#c0392b">target ${target} ms</text>`,
    );
  }
  let ly = 90;
  let lx = left;
  for (const p of parts) {
    out.push(
      `<rect x="${lx}" y="${ly - 8}" width="10" height="8" fill="${p.color}"/>`,
      `<text x="${lx + 14}" y="${ly}" class="tick">${escapeXml(`${p.label} ${p.value.toFixed(1)} ms`)}</text>`,
    );
    lx += 150;
    if (lx > width - 150) {
      lx = left;
      ly += 12;
    }
  }
  out.push('</svg>');
  return out.join('');
}
