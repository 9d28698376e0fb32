/**
 * Pure SDP helpers for the relay: read the candidates of a description, replace them all with
 * one UDP host candidate (the relay's socket), and find the payload types of the video stream so
 * the relay can read RTP headers (they travel in the clear in SRTP) of the right packets.
 */

export interface SdpCandidate {
  foundation: string;
  component: number;
  transport: string;
  priority: number;
  address: string;
  port: number;
  type: string;
}

const CANDIDATE = /^a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)/i;

function splitLines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l !== '');
}

export function parseCandidates(sdp: string): SdpCandidate[] {
  const out: SdpCandidate[] = [];
  for (const line of splitLines(sdp)) {
    const m = CANDIDATE.exec(line);
    if (!m) continue;
    out.push({
      foundation: m[1]!,
      component: Number(m[2]),
      transport: m[3]!.toLowerCase(),
      priority: Number(m[4]),
      address: m[5]!,
      port: Number(m[6]),
      type: m[7]!.toLowerCase(),
    });
  }
  return out;
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

export function isIpv4(address: string): boolean {
  return IPV4.test(address);
}

/**
 * The one candidate the relay talks to: UDP, IPv4, RTP component; preferring `preferAddress`,
 * then loopback, then host over server-reflexive over relayed, then priority. Undefined when the
 * description has no usable candidate (TCP, IPv6 and mDNS `.local` names are never used).
 */
export function pickCandidate(sdp: string, preferAddress?: string): SdpCandidate | undefined {
  const usable = parseCandidates(sdp).filter(
    (c) => c.transport === 'udp' && c.component === 1 && isIpv4(c.address),
  );
  const typeRank: Record<string, number> = { host: 0, srflx: 1, prflx: 2, relay: 3 };
  const rank = (c: SdpCandidate) => [
    c.address === preferAddress ? 0 : 1,
    c.address.startsWith('127.') ? 0 : 1,
    typeRank[c.type] ?? 4,
    -c.priority,
  ];
  return usable.sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < ra.length; i++) if (ra[i]! !== rb[i]!) return ra[i]! - rb[i]!;
    return 0;
  })[0];
}

/**
 * Replaces every candidate (UDP, TCP, IPv6, mDNS) in every media section with a single UDP host
 * candidate at `address:port`, and points the connection line and media port there too, so a
 * peer that reads the description can reach the other side only through that address. Rejected
 * media sections (port 0) stay rejected.
 */
export function replaceCandidates(sdp: string, address: string, port: number): string {
  const lines = splitLines(sdp);
  const out: string[] = [];
  const candidate = `a=candidate:1 1 udp 2130706431 ${address} ${port} typ host`;
  let inMedia = false;
  let rejected = false;
  let added = false;
  const finishSection = () => {
    if (inMedia && !rejected && !added) {
      out.push(candidate, 'a=end-of-candidates');
    }
  };
  for (const line of lines) {
    if (line.startsWith('m=')) {
      finishSection();
      inMedia = true;
      added = false;
      const parts = line.split(' ');
      rejected = parts[1] === '0';
      if (!rejected) parts[1] = String(port);
      out.push(parts.join(' '));
      continue;
    }
    if (/^a=candidate:/i.test(line)) continue;
    if (line === 'a=end-of-candidates') continue;
    if (inMedia && line.startsWith('c=IN ')) {
      out.push(`c=IN IP4 ${address}`);
      continue;
    }
    out.push(line);
  }
  finishSection();
  return `${out.join('\r\n')}\r\n`;
}

export interface VideoPayloadTypes {
  /** VP8 (or H.264) media payload type. */
  media?: number;
  /** RTX payload type pointing at `media`, if negotiated. */
  rtx?: number;
  /** RED, when negotiated: media (and FEC) then travel as RED. */
  red?: number;
}

/** The video payload types of the first video section (VP8 preferred over H.264). */
export function videoPayloadTypes(sdp: string): VideoPayloadTypes {
  const lines = splitLines(sdp);
  let inVideo = false;
  let seen = false;
  const codecs = new Map<number, string>();
  const apt = new Map<number, number>();
  for (const line of lines) {
    if (line.startsWith('m=')) {
      if (seen) break;
      inVideo = line.startsWith('m=video ');
      if (inVideo) seen = true;
      continue;
    }
    if (!inVideo) continue;
    const rtpmap = /^a=rtpmap:(\d+) ([^/]+)\//.exec(line);
    if (rtpmap) codecs.set(Number(rtpmap[1]), rtpmap[2]!.toUpperCase());
    const fmtp = /^a=fmtp:(\d+) .*\bapt=(\d+)/.exec(line);
    if (fmtp) apt.set(Number(fmtp[1]), Number(fmtp[2]));
  }
  let media: number | undefined;
  for (const want of ['VP8', 'H264']) {
    for (const [pt, name] of codecs) {
      if (name === want && media === undefined) media = pt;
    }
  }
  let rtx: number | undefined;
  for (const [pt, target] of apt) {
    if (codecs.get(pt) === 'RTX' && target === media) rtx = pt;
  }
  let red: number | undefined;
  for (const [pt, name] of codecs) if (name === 'RED' && red === undefined) red = pt;
  return { media, rtx, ...(red !== undefined ? { red } : {}) };
}
