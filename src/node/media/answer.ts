/**
 * Pure rules that shape the node's SDP answer to a publisher (WHIP) before it is returned:
 * a video bitrate ceiling, and Opus in-band FEC and DTX. A receiver's answer is what tells a
 * browser how to send, so these lines steer the publisher's encoder and bandwidth estimate.
 */

export interface PublisherAnswerOptions {
  /** Most video the publisher may send, kbit/s: `b=AS` (kbit/s) and `b=TIAS` (bit/s) lines. */
  maxVideoKbps: number;
}

/** Opus parameters the node asks publishers for: in-band FEC (loss repair) and DTX (silence). */
export const OPUS_RECEIVE_PARAMETERS: Readonly<Record<string, string>> = {
  useinbandfec: '1',
  usedtx: '1',
};

/**
 * Returns `sdp` with, on every video m-section, `b=AS:<kbps>` and `b=TIAS:<bps>` in place of any
 * bandwidth lines werift wrote (Chrome caps its send bitrate and its estimate at them), and the
 * Opus `a=fmtp` of every audio m-section carrying {@link OPUS_RECEIVE_PARAMETERS} (added when
 * missing, other parameters kept). Keeps the line ending of the input.
 */
export function shapePublisherAnswer(sdp: string, options: PublisherAnswerOptions): string {
  const kbps = options.maxVideoKbps;
  if (!Number.isInteger(kbps) || kbps < 1) {
    throw new RangeError(`maxVideoKbps must be a positive whole number of kbit/s, got ${kbps}`);
  }
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(/\r?\n/);
  const trailing = lines.length > 0 && lines[lines.length - 1] === '';
  if (trailing) lines.pop();
  const out: string[] = [];
  const sections = splitSections(lines);
  out.push(...sections.session);
  for (const section of sections.media) {
    const kind = /^m=(\S+)/.exec(section[0]!)?.[1];
    if (kind === 'video') out.push(...withBandwidth(section, kbps));
    else if (kind === 'audio') out.push(...withOpusParameters(section));
    else out.push(...section);
  }
  return out.join(eol) + (trailing ? eol : '');
}

function splitSections(lines: string[]): { session: string[]; media: string[][] } {
  const session: string[] = [];
  const media: string[][] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) media.push([line]);
    else if (media.length > 0) media[media.length - 1]!.push(line);
    else session.push(line);
  }
  return { session, media };
}

/** SDP orders a media section's lines m, i, c, b, k, a (RFC 8866 section 5). */
function withBandwidth(section: string[], kbps: number): string[] {
  const kept = section.filter((line) => !line.startsWith('b='));
  let at = 1;
  while (at < kept.length && (kept[at]!.startsWith('i=') || kept[at]!.startsWith('c='))) at++;
  kept.splice(at, 0, `b=AS:${kbps}`, `b=TIAS:${kbps * 1000}`);
  return kept;
}

function withOpusParameters(section: string[]): string[] {
  const opus = new Set<string>();
  for (const line of section) {
    const m = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (m) opus.add(m[1]!);
  }
  if (opus.size === 0) return section;
  const withFmtp = new Set<string>();
  const out = section.map((line) => {
    const f = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (!f || !opus.has(f[1]!)) return line;
    withFmtp.add(f[1]!);
    return `a=fmtp:${f[1]} ${mergeParameters(f[2]!)}`;
  });
  for (const pt of opus) {
    if (withFmtp.has(pt)) continue;
    const at = out.findIndex((line) => line.startsWith(`a=rtpmap:${pt} `));
    out.splice(at + 1, 0, `a=fmtp:${pt} ${mergeParameters('')}`);
  }
  return out;
}

function mergeParameters(parameters: string): string {
  const parts = parameters
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean);
  const seen = new Set<string>();
  const merged = parts.map((part) => {
    const key = part.split('=')[0]!.trim().toLowerCase();
    seen.add(key);
    const wanted = OPUS_RECEIVE_PARAMETERS[key];
    return wanted === undefined ? part : `${key}=${wanted}`;
  });
  for (const [key, value] of Object.entries(OPUS_RECEIVE_PARAMETERS)) {
    if (!seen.has(key)) merged.push(`${key}=${value}`);
  }
  return merged.join(';');
}
