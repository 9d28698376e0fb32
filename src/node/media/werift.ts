/**
 * Everything the media layer needs from werift 0.24.4 in one place: peer configuration, and typed
 * views of the few non-public fields the forwarder has to touch. Re-check this file when
 * upgrading werift.
 */
import {
  // werift's factories are named like React hooks; rename them so lint reads them as what they are.
  useAbsSendTime as absSendTimeExtension,
  useFIR as firFeedback,
  GenericNack,
  useH264 as h264Codec,
  useSdesMid as midExtension,
  useNACK as nackFeedback,
  useOPUS as opusCodec,
  usePLI as pliFeedback,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  type RTCRtpReceiver,
  type RTCRtpSender,
  RtcpTransportLayerFeedback,
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

/** Offset from the Unix epoch (1970) to the NTP epoch (1900), in milliseconds. */
const NTP_EPOCH_OFFSET_MS = 2_208_988_800_000;
const TWO_POW_32 = 4_294_967_296;

/**
 * 64-bit NTP timestamp (RFC 3550 section 4: seconds since 1900 in the high word, the binary
 * fraction of a second in the low word) of a `performance.now()` reading.
 */
export function ntpFromPerformance(perfMs: number, timeOrigin = performance.timeOrigin): bigint {
  const ms = timeOrigin + perfMs + NTP_EPOCH_OFFSET_MS;
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.min(
    TWO_POW_32 - 1,
    Math.floor(((ms - seconds * 1000) / 1000) * TWO_POW_32),
  );
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}

/**
 * werift 0.24.4's `ntpTime()` writes the decimal digits after the point of the time in seconds
 * as the binary fraction (x.5 s becomes x + 5/2^32 s), so every sender report it sends states a
 * time up to a second early, by a different amount in each report and for each track. Receivers
 * that sync audio and video by those reports (Chrome) can then hold video back by hundreds of
 * milliseconds. The reports carry `sender.ntpTimestamp`, which `sendRtp` sets from that clock
 * next to the RTP timestamp it just sent; replace it with an accessor that records when it was
 * set and reports that instant as a correct NTP time. Idempotent.
 */
export function fixSenderReportClock(sender: RTCRtpSender): void {
  const target = sender as unknown as { __srClockFixed?: boolean };
  if (target.__srClockFixed) return;
  let setAt: number | undefined;
  Object.defineProperty(sender, 'ntpTimestamp', {
    configurable: true,
    enumerable: true,
    get: () => (setAt === undefined ? 0n : ntpFromPerformance(setAt)),
    set: () => {
      setAt = performance.now();
    },
  });
  target.__srClockFixed = true;
}

/** Private state of werift's receive-side `NackHandler`. */
interface NackHandlerInternals {
  addPacket: (packet: RtpPacket) => void;
  onPacketLost: { execute: (nack: GenericNack) => void };
}

/**
 * Turns werift's own publisher-leg NACK generator off (it re-sends every NACK each 5 ms, ten
 * times: all within ~50 ms, far less than a mobile round trip); the node runs its own
 * (`PublisherNack`). Returns a function that reports a NACK the node sent through the receiver's
 * `onPacketLost` event, so werift's stats and our counters still see it. Idempotent.
 */
export function replaceNackHandler(receiver: RTCRtpReceiver): (nack: GenericNack) => void {
  const nack = (receiver as unknown as { nack?: NackHandlerInternals & { __replaced?: boolean } })
    .nack;
  if (!nack) return () => {};
  if (!nack.__replaced) {
    nack.addPacket = () => {};
    nack.__replaced = true;
  }
  return (sent) => nack.onPacketLost.execute(sent);
}

/** Sends one generic NACK (RFC 4585) for `lost` to the sender of `mediaSsrc`. */
export function sendGenericNack(
  receiver: RTCRtpReceiver,
  mediaSsrc: number,
  lost: number[],
): GenericNack | undefined {
  const transport = receiver.dtlsTransport;
  if (transport?.state !== 'connected') return undefined;
  const nack = new GenericNack({ senderSsrc: receiver.rtcpSsrc, mediaSourceSsrc: mediaSsrc, lost });
  transport.sendRtcp([new RtcpTransportLayerFeedback({ feedback: nack })]).catch(() => {});
  return nack;
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
