/**
 * Everything the media layer needs from werift 0.24.4 in one place: peer configuration, and typed
 * views of the few non-public fields the forwarder has to touch. Re-check this file when
 * upgrading werift.
 */
import {
  // werift's factories are named like React hooks; rename them so lint reads them as what they are.
  useAbsSendTime as absSendTimeExtension,
  useFIR as firFeedback,
  useH264 as h264Codec,
  useSdesMid as midExtension,
  useNACK as nackFeedback,
  useOPUS as opusCodec,
  usePLI as pliFeedback,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  type RTCRtpReceiver,
  type RTCRtpSender,
  type RtpPacket,
  useREMB as rembFeedback,
  useVP8 as vp8Codec,
} from 'werift';
import type { MediaOptions } from './types.ts';

/** Size of werift's per-sender retransmission history (`RTP_HISTORY_SIZE` in rtpSender.js). */
export const SENDER_HISTORY_SIZE = 128;

/** Private state of `RTCRtpSender` the forwarder reads or adjusts. */
export interface SenderInternals {
  rtxPayloadType?: number;
  sequenceNumber?: number;
  timestamp?: number;
  seqOffset: number;
  timestampOffset: number;
  rtpCache: (RtpPacket | undefined)[];
}

export function senderInternals(sender: RTCRtpSender): SenderInternals {
  return sender as unknown as SenderInternals;
}

/** Private state of werift's receive-side `NackHandler`. */
interface NackHandlerInternals {
  lostSeqNumbers: number[];
  mediaSourceSsrc?: number;
  sendNack: () => Promise<void>;
}

/**
 * werift's NackHandler keeps a 5 ms interval alive forever once the first gap is repaired: its
 * `sendNack()` returns a promise that never settles when nothing is lost, so the loop never
 * reaches its own `clearInterval`. Make it settle, so the interval stops when the loss list is
 * empty. Idempotent.
 */
export function fixNackHandlerLoop(receiver: RTCRtpReceiver): void {
  const nack = (receiver as unknown as { nack: NackHandlerInternals & { __fixed?: boolean } }).nack;
  if (!nack || nack.__fixed) return;
  const original = nack.sendNack;
  nack.sendNack = () =>
    nack.lostSeqNumbers.length > 0 && nack.mediaSourceSsrc ? original() : Promise.resolve();
  nack.__fixed = true;
}

/** RTCP feedback the node offers on video codecs: no transport-cc (see DESIGN: it collapses Chrome's estimate). */
function videoFeedback() {
  return [nackFeedback(), pliFeedback(), firFeedback(), rembFeedback()];
}

/** Peer configuration shared by publisher and subscriber connections. */
export function peerConfig(options: MediaOptions): RTCPeerConnectionConfig {
  const hostAddresses: string[] = [];
  if (options.loopbackCandidate) hostAddresses.push('127.0.0.1');
  if (options.announcedIp) hostAddresses.push(options.announcedIp);
  return {
    iceServers: options.iceServers.map((s) => ({ ...s })),
    icePortRange: options.portRange,
    iceAdditionalHostAddresses: hostAddresses.length > 0 ? hostAddresses : undefined,
    bundlePolicy: 'max-bundle',
    codecs: {
      audio: [opusCodec()],
      video: [
        vp8Codec({ rtcpFeedback: videoFeedback() }),
        h264Codec({ rtcpFeedback: videoFeedback() }),
        new RTCRtpCodecParameters({ mimeType: 'video/rtx', clockRate: 90000 }),
      ],
    },
    headerExtensions: {
      audio: [midExtension()],
      video: [midExtension(), absSendTimeExtension()],
    },
  };
}

/** Parses `a=fmtp` style `key=value;key=value` parameters. */
export function fmtpParams(parameters: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!parameters) return out;
  for (const part of parameters.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Picks the subscriber codec that can carry packets of the publisher codec `source` unchanged:
 * same MIME type; for H.264 the same packetization mode, preferring the same profile.
 */
export function matchCodec(
  source: RTCRtpCodecParameters,
  candidates: readonly RTCRtpCodecParameters[],
): RTCRtpCodecParameters | undefined {
  const mime = source.mimeType.toLowerCase();
  const same = candidates.filter((c) => c.mimeType.toLowerCase() === mime);
  if (mime !== 'video/h264') return same[0];
  const src = fmtpParams(source.parameters);
  const mode = src.get('packetization-mode') ?? '0';
  const sameMode = same.filter(
    (c) => (fmtpParams(c.parameters).get('packetization-mode') ?? '0') === mode,
  );
  const profile = src.get('profile-level-id')?.slice(0, 2).toLowerCase();
  return (
    sameMode.find(
      (c) =>
        fmtpParams(c.parameters).get('profile-level-id')?.slice(0, 2).toLowerCase() === profile,
    ) ?? sameMode[0]
  );
}

/** The RTX payload type whose `apt` points at `payloadType`, if negotiated. */
export function rtxPayloadTypeFor(
  payloadType: number,
  candidates: readonly RTCRtpCodecParameters[],
): number | undefined {
  for (const c of candidates) {
    if (c.name.toLowerCase() !== 'rtx') continue;
    if (Number(fmtpParams(c.parameters).get('apt')) === payloadType) return c.payloadType;
  }
  return undefined;
}
