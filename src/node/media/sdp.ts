/**
 * Pure SDP rules for WHIP/WHEP offers: what an offer must contain before werift sees it, and the
 * feedback and header extensions the node is willing to negotiate.
 */
import { VIDEO_LAYERS_ALLOCATION_URI } from './layersAllocation.ts';
import { PLAYOUT_DELAY_URI } from './playoutDelay.ts';
import { TRANSPORT_CC_URI } from './twcc.ts';
import type { SessionDirection } from './types.ts';

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface OfferCodec {
  payloadType: number;
  /** Upper-case codec name, e.g. `VP8`, `H264`, `OPUS`, `RTX`. */
  name: string;
  clockRate: number;
  fmtp?: string;
}

export interface OfferMedia {
  kind: string;
  port: number;
  mid?: string;
  direction: SdpDirection;
  codecs: OfferCodec[];
  /** Payload types listed on the m-line. */
  formats: string[];
  ssrcs: number[];
  simulcast: boolean;
  /** `a=rid` lines: simulcast layer ids and their direction. */
  rids: { id: string; direction: string }[];
  /** URIs of the `a=extmap` lines. */
  extensions: string[];
}

/** Media codecs the node forwards, per kind (upper case). RTX rides along with video. */
export const SUPPORTED_CODECS: Record<'audio' | 'video', readonly string[]> = {
  audio: ['OPUS'],
  video: ['VP8', 'H264'],
};

/**
 * RTCP feedback the node negotiates with every peer; everything else is dropped. transport-cc is
 * added for publishers only ({@link PUBLISHER_RTCP_FEEDBACK}).
 */
export const ALLOWED_RTCP_FEEDBACK: readonly string[] = [
  'nack',
  'nack pli',
  'ccm fir',
  'goog-remb',
];

/** Header extensions the node negotiates with every peer. */
export const ALLOWED_EXTENSION_URIS: readonly string[] = [
  'urn:ietf:params:rtp-hdrext:sdes:mid',
  'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  // simulcast: which layer (rid) a packet, or an RTX repair of one, belongs to
  'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
];

/**
 * What publishers (WHIP) negotiate on top: transport-wide congestion control, answered by the
 * node's own feedback generator (`twcc.ts`), so the browser's send-side estimator ramps to what
 * the link carries (subscribers (WHEP) keep it off: the node has no send-side estimator); and
 * Chrome's video layer allocation (`layersAllocation.ts`), which says at once when the browser
 * switches a simulcast layer off.
 */
export const PUBLISHER_RTCP_FEEDBACK: readonly string[] = [
  ...ALLOWED_RTCP_FEEDBACK,
  'transport-cc',
];
export const PUBLISHER_EXTENSION_URIS: readonly string[] = [
  ...ALLOWED_EXTENSION_URIS,
  TRANSPORT_CC_URI,
  VIDEO_LAYERS_ALLOCATION_URI,
];

/**
 * What viewers (WHEP) negotiate on top: the playout delay (`playoutDelay.ts`), with which the
 * node asks a viewer to hold video long enough to hide repairs on the publisher's uplink.
 */
export const SUBSCRIBER_EXTENSION_URIS: readonly string[] = [
  ...ALLOWED_EXTENSION_URIS,
  PLAYOUT_DELAY_URI,
];

export class SdpError extends Error {
  override name = 'SdpError';
}

const DIRECTIONS: readonly string[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

/** Splits an SDP into lines, tolerating `\n` or `\r\n` and trailing blanks. */
function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).map((line) => line.trimEnd());
}

/** Parses the parts of an offer the node cares about. Throws `SdpError` saying what is wrong. */
export function parseOffer(sdp: string): OfferMedia[] {
  if (typeof sdp !== 'string' || sdp.trim() === '') {
    throw new SdpError('SDP offer is empty');
  }
  const all = lines(sdp).filter((line) => line !== '');
  if (all[0] !== 'v=0') {
    throw new SdpError('SDP offer does not start with "v=0"; the body is not an SDP');
  }
  const media: OfferMedia[] = [];
  let sessionDirection: SdpDirection = 'sendrecv';
  let current: OfferMedia | undefined;
  let currentDirection: SdpDirection | undefined;
  const finish = () => {
    if (current) {
      current.direction = currentDirection ?? sessionDirection;
      media.push(current);
    }
  };
  for (const line of all) {
    if (!/^[a-z]=/.test(line)) {
      throw new SdpError(`SDP offer has a malformed line: "${line.slice(0, 60)}"`);
    }
    if (line.startsWith('m=')) {
      finish();
      const m = /^m=(\S+) (\d+)(?:\/\d+)? (\S+)((?: \S+)*)$/.exec(line);
      if (!m) throw new SdpError(`SDP offer has a malformed m-line: "${line.slice(0, 60)}"`);
      current = {
        kind: m[1]!,
        port: Number(m[2]),
        direction: 'sendrecv',
        codecs: [],
        formats: (m[4] ?? '').trim().split(' ').filter(Boolean),
        ssrcs: [],
        simulcast: false,
        rids: [],
        extensions: [],
      };
      currentDirection = undefined;
      continue;
    }
    if (!line.startsWith('a=')) continue;
    const attr = line.slice(2);
    if (DIRECTIONS.includes(attr)) {
      if (current) currentDirection = attr as SdpDirection;
      else sessionDirection = attr as SdpDirection;
      continue;
    }
    if (!current) continue;
    if (attr.startsWith('mid:')) {
      current.mid = attr.slice(4).trim();
    } else if (attr.startsWith('rtpmap:')) {
      const r = /^rtpmap:(\d+) ([^/\s]+)\/(\d+)/.exec(attr);
      if (!r) throw new SdpError(`SDP offer has a malformed rtpmap: "${line.slice(0, 60)}"`);
      current.codecs.push({
        payloadType: Number(r[1]),
        name: r[2]!.toUpperCase(),
        clockRate: Number(r[3]),
      });
    } else if (attr.startsWith('fmtp:')) {
      const f = /^fmtp:(\d+) (.*)$/.exec(attr);
      if (!f) throw new SdpError(`SDP offer has a malformed fmtp: "${line.slice(0, 60)}"`);
      if (!current.formats.includes(f[1]!)) {
        throw new SdpError(
          `SDP offer ${current.kind} m-line has a=fmtp for payload type ${f[1]}, which its m= line does not list`,
        );
      }
      const codec = current.codecs.find((c) => c.payloadType === Number(f[1]));
      if (codec) codec.fmtp = f[2];
    } else if (attr.startsWith('ssrc:')) {
      const s = /^ssrc:(\d+)/.exec(attr);
      const ssrc = s ? Number(s[1]) : Number.NaN;
      if (Number.isFinite(ssrc) && !current.ssrcs.includes(ssrc)) current.ssrcs.push(ssrc);
    } else if (attr.startsWith('simulcast:')) {
      current.simulcast = true;
    } else if (attr.startsWith('rid:')) {
      const r = /^rid:(\S+) (send|recv)\b/.exec(attr);
      if (!r) throw new SdpError(`SDP offer has a malformed a=rid: "${line.slice(0, 60)}"`);
      current.rids.push({ id: r[1]!, direction: r[2]! });
    } else if (attr.startsWith('extmap:')) {
      const e = /^extmap:\d+(?:\/\S+)? (\S+)/.exec(attr);
      if (e) current.extensions.push(e[1]!);
    }
  }
  finish();
  return media;
}

function sends(direction: SdpDirection): boolean {
  return direction === 'sendrecv' || direction === 'sendonly';
}

export function receives(direction: SdpDirection): boolean {
  return direction === 'sendrecv' || direction === 'recvonly';
}

/** Maximum simulcast layers a publisher may send on one m-line. */
export const MAX_SIMULCAST_LAYERS = 3;
const RID_EXTENSION_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';

/**
 * Simulcast on a publisher's m-line: video only, 2–3 `a=rid:<id> send` layers, and the
 * rtp-stream-id header extension, by which the node tells the layers apart (the offer may list
 * no `a=ssrc`, as Chrome's does not).
 */
function checkSimulcast(m: OfferMedia): void {
  const where = `SDP offer ${m.kind} m-line${m.mid ? ` (mid ${m.mid})` : ''}`;
  if (m.kind !== 'video') throw new SdpError(`${where} uses simulcast; only video may`);
  const send = m.rids.filter((r) => r.direction === 'send');
  if (send.length < 2 || send.length > MAX_SIMULCAST_LAYERS) {
    throw new SdpError(
      `${where} uses simulcast with ${send.length} "a=rid:<id> send" layer(s); send 2 to ${MAX_SIMULCAST_LAYERS}`,
    );
  }
  if (new Set(send.map((r) => r.id)).size !== send.length) {
    throw new SdpError(`${where} repeats a simulcast rid; give every layer its own a=rid`);
  }
  if (!m.extensions.includes(RID_EXTENSION_URI)) {
    throw new SdpError(
      `${where} uses simulcast without the ${RID_EXTENSION_URI} header extension (a=extmap); the node needs it to tell the layers apart`,
    );
  }
}

/**
 * Checks that an offer can be used for `purpose`: it has at least one active audio or video
 * m-line in the right direction, each with a codec the node forwards. Returns the usable m-lines.
 */
export function checkOffer(sdp: string, purpose: SessionDirection): OfferMedia[] {
  const media = parseOffer(sdp);
  const av = media.filter((m) => m.kind === 'audio' || m.kind === 'video');
  if (av.length === 0) throw new SdpError('SDP offer has no audio or video m-line');
  const active = av.filter((m) => m.port !== 0 && m.direction !== 'inactive');
  if (active.length === 0) throw new SdpError('SDP offer has only rejected or inactive m-lines');
  const usable = active.filter((m) => (purpose === 'publish' ? sends : receives)(m.direction));
  if (usable.length === 0) {
    throw new SdpError(
      purpose === 'publish'
        ? 'WHIP offer sends no media: every audio/video m-line is recvonly (use WHEP to receive)'
        : 'WHEP offer receives no media: every audio/video m-line is sendonly (use WHIP to publish)',
    );
  }
  for (const m of active) {
    const kind = m.kind as 'audio' | 'video';
    const supported = SUPPORTED_CODECS[kind];
    if (!m.codecs.some((c) => supported.includes(c.name))) {
      const offered = m.codecs.map((c) => c.name).join(', ') || 'none';
      throw new SdpError(
        `SDP offer ${kind} m-line${m.mid ? ` (mid ${m.mid})` : ''} has no supported codec: offered ${offered}; this node forwards ${supported.join(', ')}`,
      );
    }
    if (purpose === 'publish' && sends(m.direction)) {
      if (m.simulcast) checkSimulcast(m);
      else if (m.ssrcs.length === 0) {
        throw new SdpError(
          `SDP offer ${kind} m-line${m.mid ? ` (mid ${m.mid})` : ''} declares no a=ssrc; the node needs it to route the publisher's packets`,
        );
      }
    }
  }
  for (const [attribute, what] of [
    ['a=ice-ufrag:', 'ICE credentials (a=ice-ufrag)'],
    ['a=ice-pwd:', 'ICE credentials (a=ice-pwd)'],
    ['a=fingerprint:', 'a DTLS fingerprint (a=fingerprint)'],
  ] as const) {
    if (!sdp.includes(attribute)) throw new SdpError(`SDP offer has no ${what}`);
  }
  if (!/^a=fingerprint:\S+ [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+$/m.test(sdp)) {
    throw new SdpError('SDP offer has a malformed a=fingerprint (expected "sha-256 AB:CD:...")');
  }
  const mids = active.map((m) => m.mid).filter((mid): mid is string => mid !== undefined);
  if (mids.length !== active.length || new Set(mids).size !== mids.length) {
    throw new SdpError('SDP offer must give every audio/video m-line a unique a=mid');
  }
  return usable;
}

/**
 * Rewrites an offer so that werift's answer negotiates only the feedback and header extensions the
 * node handles for `purpose`: drops `a=rtcp-fb` lines outside {@link ALLOWED_RTCP_FEEDBACK} and
 * `a=extmap` lines outside {@link ALLOWED_EXTENSION_URIS}; publishers (`publish`) also keep
 * transport-cc and its extension ({@link PUBLISHER_RTCP_FEEDBACK}, {@link PUBLISHER_EXTENSION_URIS}).
 */
export function sanitizeOffer(sdp: string, purpose: SessionDirection): string {
  const feedback = purpose === 'publish' ? PUBLISHER_RTCP_FEEDBACK : ALLOWED_RTCP_FEEDBACK;
  const extensions = purpose === 'publish' ? PUBLISHER_EXTENSION_URIS : SUBSCRIBER_EXTENSION_URIS;
  const out: string[] = [];
  for (const line of lines(sdp)) {
    if (line === '') continue;
    const fb = /^a=rtcp-fb:(\S+) (.+)$/.exec(line);
    if (fb && !feedback.includes(fb[2]!.trim())) continue;
    const ext = /^a=extmap:\d+(?:\/\S+)? (\S+)/.exec(line);
    if (ext && !extensions.includes(ext[1]!)) continue;
    out.push(line);
  }
  return `${out.join('\r\n')}\r\n`;
}
