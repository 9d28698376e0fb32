import PDFDocument from 'pdfkit';
import { CJK_TEXT, type FontSet } from './fonts.ts';
import { bytes, duration, type SummaryModel, type SummaryStill, utc } from './summary.ts';

export interface SummaryPdfOptions {
  fonts: FontSet;
  /** JPEG bytes of each still, by its bundle path (the stills may be re-encoded smaller). */
  stillData: (still: SummaryStill) => Buffer;
  /** Show at most this many timeline events (the rest: "see timeline/events.json"). */
  maxTimelineRows?: number;
  /** Show at most this many chat messages. */
  maxMessages?: number;
  /** Show at most this many stills (snapshots first, then key moments in time order). */
  maxStills?: number;
  /** Smaller stills, two to a row, not starting a new page (for channels with a page limit). */
  compactStills?: boolean;
  /** A line under the title saying which channel this copy is for. */
  edition?: string;
}

const PAGE = { width: 595.28, height: 841.89, margin: 48 };
const INK = '#1d1d1f';
const MUTED = '#5f6368';
const RULE = '#d0d0d0';

type Doc = InstanceType<typeof PDFDocument>;

/**
 * The printable summary as an A4 PDF (pdfkit): case facts, recordings with their SHA-256,
 * the stills, participants, chat, the timeline with hashes, and how to verify the bundle. Text is
 * embedded DejaVu (CJK text needs a system CJK font; without one its glyphs are missing here and
 * the HTML and the transcript files have it). Returns the bytes and the page count.
 */
export async function renderSummaryPdf(
  m: SummaryModel,
  o: SummaryPdfOptions,
): Promise<{ data: Buffer; pages: number }> {
  const doc = new PDFDocument({
    size: 'A4',
    margin: PAGE.margin,
    bufferPages: true,
    info: {
      Title: `Return inspection evidence, order ${m.case.orderId}, case ${m.case.id}`,
      Author: `returncam node ${m.nodeId}`,
      Subject: 'Return inspection evidence',
      CreationDate: new Date(m.generatedAt),
    },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', () => resolve());
    doc.on('error', reject);
  });
  doc.registerFont('sans', o.fonts.regular);
  doc.registerFont('bold', o.fonts.bold);
  doc.registerFont('mono', o.fonts.mono);
  if (o.fonts.cjk) doc.registerFont('cjk', o.fonts.cjk.file, o.fonts.cjk.family);
  const font = (name: 'sans' | 'bold' | 'mono', text = ''): Doc =>
    doc.font(o.fonts.cjk && CJK_TEXT.test(text) ? 'cjk' : name);

  const left = PAGE.margin;
  const width = PAGE.width - 2 * PAGE.margin;
  const bottom = PAGE.height - PAGE.margin - 18; // room for the footer

  const ensure = (h: number) => {
    if (doc.y + h > bottom) doc.addPage();
  };
  const heading = (text: string) => {
    ensure(60);
    doc.moveDown(0.6);
    font('bold').fontSize(13).fillColor(INK).text(text, left, doc.y, { width });
    const y = doc.y + 2;
    doc
      .moveTo(left, y)
      .lineTo(left + width, y)
      .lineWidth(1)
      .strokeColor(INK)
      .stroke();
    doc.y = y + 6;
  };
  const para = (text: string, size = 9.5, color = INK) => {
    font('sans', text).fontSize(size).fillColor(color).text(text, left, doc.y, { width });
  };

  // ---- title ----
  font('bold').fontSize(19).fillColor(INK).text('Return inspection evidence', left, PAGE.margin);
  const sub = `Order ${m.case.orderId}  ·  SKU ${m.case.sku}  ·  Case ${m.case.id}`;
  font('sans', sub).fontSize(11).fillColor(INK).text(sub, { width });
  para(
    `Exported ${utc(m.generatedAt)} by ${m.exportedBy} from node ${m.nodeId}, evidence key ${m.keyId}. All times are UTC.`,
    8.5,
    MUTED,
  );
  if (o.edition) para(o.edition, 8.5, MUTED);
  const notes = [...m.notes];
  const cjkText = [...m.messages.map((x) => x.body), ...m.facts.map(([, v]) => v)].some((t) =>
    CJK_TEXT.test(t),
  );
  if (cjkText && !o.fonts.cjk)
    notes.push(
      'Some text is in Chinese, Japanese or Korean, which this PDF cannot show (no CJK font on the node); summary.html and chat/transcript.txt in the bundle have it exactly.',
    );
  if (notes.length) {
    doc.moveDown(0.5);
    const text = notes.map((n) => `• ${n}`).join('\n');
    font('sans', text).fontSize(9);
    const h = doc.heightOfString(text, { width: width - 16 }) + 12;
    ensure(h);
    const y = doc.y;
    doc.rect(left, y, width, h).fillAndStroke('#fff6e0', '#f0d58c');
    doc.fillColor(INK).text(text, left + 8, y + 6, { width: width - 16 });
    doc.y = y + h + 4;
  }

  // ---- case facts ----
  heading('Case');
  const labelW = 130;
  for (const [k, v] of m.facts) {
    font('sans', v).fontSize(9.5);
    const h = Math.max(doc.heightOfString(v, { width: width - labelW }), 12) + 3;
    ensure(h);
    const y = doc.y;
    font('bold')
      .fontSize(9.5)
      .fillColor(MUTED)
      .text(k, left, y, { width: labelW - 8 });
    font('sans', v)
      .fontSize(9.5)
      .fillColor(INK)
      .text(v, left + labelW, y, { width: width - labelW });
    doc.y = y + h;
    doc
      .moveTo(left, doc.y - 1.5)
      .lineTo(left + width, doc.y - 1.5)
      .lineWidth(0.4)
      .strokeColor(RULE)
      .stroke();
  }

  // ---- recordings ----
  heading('Recordings');
  if (!m.recordings.length) para('No recording was kept for this case.');
  for (const r of m.recordings) {
    ensure(40);
    const line = `${r.role} · started ${utc(r.startedAt)} · ${duration(r.durationMs)} · ${r.status} · ${r.codecs} · ${bytes(r.bytes)}`;
    font('bold').fontSize(9.5).fillColor(INK).text(line, left, doc.y, { width });
    font('mono')
      .fontSize(8)
      .fillColor(INK)
      .text(`SHA-256 ${r.sha256 ?? '-'}`, { width });
    const files = [r.file && `original ${r.file}`, r.mp4 && `MP4 ${r.mp4}`]
      .filter(Boolean)
      .join(' · ');
    para(`${files || 'not in this bundle'}${r.note ? ` — ${r.note}` : ''}`, 8.5, MUTED);
    doc.moveDown(0.4);
  }

  // ---- participants ----
  heading('Participants');
  if (!m.participants.length) para('Nobody joined the call.');
  for (const p of m.participants) {
    const t = `${p.role} ${p.direction === 'publish' ? 'sent video' : 'watched'} from ${utc(p.startedAt)} until ${utc(p.endedAt)}${p.endReason ? ` (${p.endReason})` : ''}`;
    ensure(14);
    para(t, 9);
  }

  // ---- how to verify ----
  heading('How to verify this evidence');
  m.howToVerify.forEach((line, i) => {
    font('sans').fontSize(8.5);
    const h = doc.heightOfString(line, { width: width - 16 }) + 4;
    ensure(h);
    const y = doc.y;
    doc.fillColor(INK).text(`${i + 1}.`, left, y, { width: 14 });
    doc.text(line, left + 16, y, { width: width - 16 });
    doc.y = Math.max(doc.y, y + h);
  });

  // ---- stills ----
  const stills = m.stills.slice(0, o.maxStills ?? m.stills.length);
  if (stills.length) {
    if (!o.compactStills) doc.addPage();
    heading('Stills');
    para(
      `Staff snapshots and frames taken from the recording at key moments (${stills.length}${stills.length < m.stills.length ? ` of ${m.stills.length}; all are in stills/ in the bundle` : ''}). Each carries its UTC time, the case and the order.`,
      8.5,
      MUTED,
    );
    doc.moveDown(0.4);
    const gap = 12;
    const captionH = 34;
    const compact = o.compactStills ?? false;
    const maxRowH = compact ? 180 : 300;
    // two portrait phone frames side by side get more height, so their watermark stays legible
    const maxPortraitRowH = compact ? 260 : 400;
    let i = 0;
    while (i < stills.length) {
      const a = stills[i]!;
      const portrait = (s: SummaryStill) => s.height > s.width;
      const pairs = compact || portrait(a);
      const row =
        pairs && i + 1 < stills.length && (compact || portrait(stills[i + 1]!))
          ? [a, stills[i + 1]!]
          : [a];
      const cellW = row.length === 2 || compact ? (width - gap) / 2 : width;
      const rowMax = portrait(a) ? maxPortraitRowH : maxRowH;
      const imgH = Math.min(
        rowMax,
        Math.max(...row.map((s) => Math.min((cellW * s.height) / s.width, rowMax))),
      );
      ensure(imgH + captionH + gap);
      const y = doc.y;
      row.forEach((s, j) => {
        const x = left + j * (cellW + gap);
        const scale = Math.min(cellW / s.width, imgH / s.height);
        const w = s.width * scale;
        const h = s.height * scale;
        doc.image(o.stillData(s), x + (cellW - w) / 2, y, { width: w, height: h });
        doc
          .rect(x + (cellW - w) / 2, y, w, h)
          .lineWidth(0.5)
          .strokeColor(RULE)
          .stroke();
        font('bold', s.label)
          .fontSize(8.5)
          .fillColor(INK)
          .text(s.label, x, y + imgH + 4, {
            width: cellW,
            height: 12,
            ellipsis: true,
          });
        const cap = `${utc(s.takenAt, true)} · ${s.source}`;
        font('sans', cap)
          .fontSize(7.5)
          .fillColor(MUTED)
          .text(cap, x, y + imgH + 16, {
            width: cellW,
            height: 18,
            ellipsis: true,
          });
      });
      doc.y = y + imgH + captionH + gap;
      i += row.length;
    }
  }

  // ---- chat ----
  heading('Chat');
  const messages = m.messages.slice(0, o.maxMessages ?? m.messages.length);
  if (!m.messages.length) para('No chat messages.');
  for (const msg of messages) {
    const head = `${utc(msg.at)} · ${msg.role}${msg.kind === 'prompt' ? ' (prompt)' : ''}`;
    font('sans', msg.body).fontSize(9);
    const bodyH = doc.heightOfString(msg.body, { width: width - 150 });
    font('bold').fontSize(8);
    const headH = doc.heightOfString(head, { width: 145 });
    const h = Math.max(bodyH, headH) + 5;
    ensure(h);
    const y = doc.y;
    font('bold').fontSize(8).fillColor(MUTED).text(head, left, y, { width: 145 });
    font('sans', msg.body)
      .fontSize(9)
      .fillColor(INK)
      .text(msg.body, left + 150, y, {
        width: width - 150,
      });
    doc.y = Math.max(doc.y, y + h);
  }
  if (messages.length < m.messages.length)
    para(
      `… ${m.messages.length - messages.length} more messages: see chat/transcript.txt in the bundle.`,
      8.5,
      MUTED,
    );

  // ---- timeline ----
  heading('Timeline');
  para(`${m.eventCount} events. Head hash:`, 8.5, MUTED);
  font('mono').fontSize(7.5).fillColor(INK).text(m.headHash, { width });
  doc.moveDown(0.3);
  const cols = [
    { w: 22, key: 'seq' },
    { w: 108, key: 'at' },
    { w: 92, key: 'type' },
    { w: 38, key: 'actor' },
    { w: width - 22 - 108 - 92 - 38, key: 'detail' },
  ] as const;
  const rows = m.timeline.slice(0, o.maxTimelineRows ?? m.timeline.length);
  const drawHeader = () => {
    const y = doc.y;
    let x = left;
    for (const [c, title] of cols.map(
      (c, j) => [c, ['#', 'time (UTC)', 'event', 'by', 'detail'][j]!] as const,
    )) {
      font('bold')
        .fontSize(7.5)
        .fillColor(MUTED)
        .text(title, x, y, { width: c.w - 4 });
      x += c.w;
    }
    doc.y = y + 11;
  };
  ensure(36); // the header never sits alone at the foot of a page
  drawHeader();
  for (const e of rows) {
    const cells: Record<string, string> = {
      seq: String(e.seq),
      at: utc(e.at, true).replace(' UTC', ''),
      type: e.type,
      actor: e.actor,
      detail: e.detail,
    };
    font('sans', e.detail).fontSize(7.5);
    const h =
      Math.max(...cols.map((c) => doc.heightOfString(cells[c.key]!, { width: c.w - 4 }))) + 3;
    if (doc.y + h > bottom) {
      doc.addPage();
      drawHeader();
    }
    const y = doc.y;
    let x = left;
    for (const c of cols) {
      font('sans', cells[c.key])
        .fontSize(7.5)
        .fillColor(INK)
        .text(cells[c.key]!, x, y, {
          width: c.w - 4,
        });
      x += c.w;
    }
    doc.y = y + h;
    doc
      .moveTo(left, doc.y - 1)
      .lineTo(left + width, doc.y - 1)
      .lineWidth(0.3)
      .strokeColor(RULE)
      .stroke();
  }
  if (rows.length < m.timeline.length)
    para(
      `… ${m.timeline.length - rows.length} more events: see timeline/events.json in the bundle.`,
      8.5,
      MUTED,
    );

  // ---- footers ----
  const range = doc.bufferedPageRange();
  for (let p = range.start; p < range.start + range.count; p++) {
    doc.switchToPage(p);
    const text = `Case ${m.case.id} · order ${m.case.orderId} · node ${m.nodeId}, key ${m.keyId} · page ${p + 1} of ${range.count}`;
    doc.page.margins.bottom = 0;
    font('sans', text)
      .fontSize(7)
      .fillColor(MUTED)
      .text(text, left, PAGE.height - PAGE.margin + 8, {
        width,
        align: 'center',
        lineBreak: false,
      });
  }
  doc.end();
  await ended;
  return { data: Buffer.concat(chunks), pages: range.count };
}
