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
  type Message,
  useSdesMid as midExtension,
  useNACK as nackFeedback,
  useOPUS as opusCodec,
  parseMessage,
  usePLI as pliFeedback,
  type RTCPeerConnection,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  RTCRtpHeaderExtensionParameters,
  type RTCRtpReceiver,
  type RTCRtpSender,
  type RtcpPacket,
  RtcpTransportLayerFeedback,
  type RtpPacket,
  useREMB as rembFeedback,
  useRepairedRtpStreamId as repairedRidExtension,
  useSdesRTPStreamId as ridExtension,
  useTransportWideCC as transportCcExtension,
  useTWCC as transportCcFeedback,
  useVP8 as vp8Codec,
} from 'werift';
import { VIDEO_LAYERS_ALLOCATION_URI } from './layersAllocation.ts';
import { PLAYOUT_DELAY_URI } from './playoutDelay.ts';
import { applySrtpRolloverFix } from './srtpRollover.ts';
import type { MediaOptions, SessionDirection } from './types.ts';
import { applyHotPathPatches } from './weriftHotPath.ts';

// SRTP rollover counting that survives a loss burst across the sequence number wrap
// (srtpRollover.ts), and faster versions of werift's per-packet functions (weriftHotPath.ts),
// once per process.
applySrtpRolloverFix();
applyHotPathPatches();

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

/**
 * The round trip of the node's latest ICE check (connectivity or consent) on the receiver's
 * transport, ms: werift keeps it on the nominated pair, in seconds. Undefined before one.
 */
export function iceRoundTripMs(receiver: RTCRtpReceiver): number | undefined {
  const transport = receiver.dtlsTransport as unknown as
    | { iceTransport?: { connection?: { nominated?: { rtt?: number } } } }
    | undefined;
  const rtt = transport?.iceTransport?.connection?.nominated?.rtt;
  return typeof rtt === 'number' && rtt > 0 ? rtt * 1000 : undefined;
}

/**
 * RTCP feedback the node offers on video codecs. transport-cc only where the node answers it
 * with its own generator (publishers, `twcc.ts`): werift's own collapses Chrome's estimate.
 * werift answers with the offer's feedback lines, so what an answer carries is decided by
 * `sanitizeOffer`, per direction; this list matters for offers the node makes.
 */
function videoFeedback(direction: SessionDirection) {
  const feedback = [nackFeedback(), pliFeedback(), firFeedback(), rembFeedback()];
  if (direction === 'publish') feedback.push(transportCcFeedback());
  return feedback;
}

/**
 * Peer configuration of publisher (`publish`) and subscriber (`subscribe`) connections. The
 * transport-wide sequence number extension is listed only for publishers.
 */
export function peerConfig(
  options: MediaOptions,
  direction: SessionDirection = 'subscribe',
): RTCPeerConnectionConfig {
  const hostAddresses: string[] = [];
  if (options.loopbackCandidate) hostAddresses.push('127.0.0.1');
  if (options.announcedIp) hostAddresses.push(options.announcedIp);
  const transportCc = direction === 'publish' ? [transportCcExtension()] : [];
  return {
    iceServers: options.iceServers.map((s) => ({ ...s })),
    icePortRange: options.portRange,
    iceAdditionalHostAddresses: hostAddresses.length > 0 ? hostAddresses : undefined,
    bundlePolicy: 'max-bundle',
    codecs: {
      audio: [opusCodec()],
      video: [
        vp8Codec({ rtcpFeedback: videoFeedback(direction) }),
        h264Codec({ rtcpFeedback: videoFeedback(direction) }),
        new RTCRtpCodecParameters({ mimeType: 'video/rtx', clockRate: 90000 }),
        // Publishers: RED with ULPFEC (Chrome adds FEC once the node's reports show loss), rebuilt
        // by the node (fecReceivePath.ts). Viewers get plain VP8/H.264: FEC is not forwarded.
        ...(direction === 'publish' && options.publisherFec !== false
          ? [
              new RTCRtpCodecParameters({ mimeType: 'video/red', clockRate: 90000 }),
              new RTCRtpCodecParameters({ mimeType: 'video/ulpfec', clockRate: 90000 }),
            ]
          : []),
      ],
    },
    headerExtensions: {
      audio: [midExtension(), ...transportCc],
      video: [
        midExtension(),
        absSendTimeExtension(),
        ridExtension(),
        repairedRidExtension(),
        ...transportCc,
        ...(direction === 'publish'
          ? [new RTCRtpHeaderExtensionParameters({ uri: VIDEO_LAYERS_ALLOCATION_URI })]
          : [new RTCRtpHeaderExtensionParameters({ uri: PLAYOUT_DELAY_URI })]),
      ],
    },
  };
}

/** werift's RTP router (private in its typings): every RTP packet of a connection passes `routeRtp`. */
interface RouterInternals {
  routeRtp: (packet: RtpPacket) => void;
  __rtpTaps?: RtpTap[];
}

/** Sees (and may rewrite) a packet before werift routes it; `false` drops it. */
export type RtpTap = (packet: RtpPacket) => unknown;

/**
 * Calls `tap` with every RTP packet the connection receives, on every SSRC (audio, video, RTX,
 * simulcast layers), before werift routes it, in the order the taps were added. A tap may
 * rewrite the packet, or return `false` to drop it. Returns a function that removes the tap.
 */
export function tapIncomingRtp(pc: RTCPeerConnection, tap: RtpTap): () => void {
  const router = (pc as unknown as { router: RouterInternals }).router;
  if (!router.__rtpTaps) {
    const taps: RtpTap[] = [];
    const route = router.routeRtp;
    router.routeRtp = (packet) => {
      for (let i = 0; i < taps.length; i++) {
        try {
          if (taps[i]!(packet) === false) return;
        } catch {
          // A tap that throws does not stop the packet from being routed.
        }
      }
      route(packet);
    };
    router.__rtpTaps = taps;
  }
  const taps = router.__rtpTaps;
  taps.push(tap);
  return () => {
    const at = taps.indexOf(tap);
    if (at >= 0) taps.splice(at, 1);
  };
}

/**
 * Turns werift's own transport-cc feedback (`ReceiverTWCC`, created per receiver when the offer
 * negotiates transport-cc) off on every receiver of the connection: the node sends its own.
 * Call after each remote description is applied. Idempotent.
 */
export function disableWeriftTwcc(pc: RTCPeerConnection): void {
  for (const transceiver of pc.getTransceivers()) {
    const receiver = transceiver.receiver as unknown as {
      receiverTWCC?: { handleTWCC: (seq: number) => void };
    };
    // With a receiverTWCC present werift never creates another; this one does nothing.
    receiver.receiverTWCC = { handleTWCC: () => {} };
  }
}

/** A werift 0.24.4 ICE socket (`StunProtocol` or its TCP twin), as far as STUN requests go. */
interface IceRequestSocket {
  onRequestReceived: {
    execute: (message: Message, addr: [string, number], data: Buffer) => void;
  };
}

/**
 * Makes the node the DTLS server of a connection whose offer lets it choose (`a=setup:actpass`,
 * or `active`): its answer says `a=setup:passive` and the browser runs the handshake as the client.
 *
 * werift answers as the client (`active`), which leaves the handshake's last flight (the server's
 * ChangeCipherSpec and Finished) to the browser. Chrome's DTLS server counts itself connected
 * once it has sent that flight, starts sending media, and does not send it again when werift
 * repeats its own flight: one lost datagram, and werift never connects while the browser sends
 * media into the void for the rest of the call (on a 3G uplink with 1 % loss, about one session
 * in a hundred). As the server, werift sends the last flight, and a browser that misses it keeps
 * resending its own until the node's arrives (which werift answers again), as RFC 6347 section
 * 4.2.4 wants.
 */
export function answerAsDtlsServer(pc: RTCPeerConnection, offerSdp: string): void {
  const setups = [...offerSdp.matchAll(/^a=setup:(\w+)/gm)].map((m) => m[1]);
  if (setups.length === 0 || setups.some((s) => s === 'passive')) return;
  for (const transport of pc.dtlsTransports) {
    if (transport.state !== 'new' || transport.role !== 'auto') continue;
    transport.role = 'server';
    holdEarlyHandshake(transport);
  }
}

/** DTLS datagrams kept for a server that does not listen yet: a ClientHello and a resend of it. */
const MAX_EARLY_DTLS = 16;

/**
 * werift's DTLS server listens only once its own side of ICE counts as connected, and the
 * browser (controlling ICE) may send its ClientHello before that. Such a datagram was dropped,
 * and the handshake waited for the client to resend it: 1 s for libdatachannel (OpenSSL), so
 * every connect took a second longer. The DTLS datagrams that come before the server listens
 * are kept and handed to it once it does.
 */
function holdEarlyHandshake(transport: RTCPeerConnection['dtlsTransports'][number]): void {
  const connection = transport.iceTransport.connection;
  const held: Buffer[] = [];
  const hold = connection.onData.subscribe((data) => {
    // RFC 7983: a first byte of 20-63 is DTLS
    if (
      transport.state === 'new' &&
      held.length < MAX_EARLY_DTLS &&
      data[0]! >= 20 &&
      data[0]! <= 63
    ) {
      held.push(data);
    }
  });
  const watch = transport.onStateChange.subscribe((state) => {
    if (state === 'new') return;
    // werift creates its server right after this event, in the same turn: hand over after it
    queueMicrotask(() => {
      hold.unSubscribe();
      watch.unSubscribe();
      if (state !== 'connecting') return;
      for (const data of held.splice(0)) connection.onData.execute(data);
    });
  });
}

/** Sockets {@link verifyIceRequests} already guards. */
const guardedSockets = new WeakSet<object>();

/**
 * Drops every STUN request that is not signed with one of the connection's ICE passwords. werift
 * answers any binding request (it signs the answer with the password of the ufrag named, or its
 * current one) and starts a check towards the sender: anyone who can reach the node's port could
 * make it send checks to an address of their choosing and grow its pair list. RFC 8445 section
 * 7.3 wants requests checked; the ufrags of earlier ICE restarts stay valid (a peer may still use
 * them on a path it made with them). Call once the connection has gathered; idempotent.
 */
export function verifyIceRequests(pc: RTCPeerConnection): void {
  for (const transport of pc.iceTransports) {
    const ice = transport.connection as unknown as {
      protocols: IceRequestSocket[];
      userHistory: Record<string, string>;
    };
    for (const socket of ice.protocols) {
      if (guardedSockets.has(socket)) continue;
      guardedSockets.add(socket);
      const event = socket.onRequestReceived;
      const execute = event.execute;
      event.execute = (message, addr, data) => {
        const username = message.getAttributeValue('USERNAME');
        const ours = typeof username === 'string' ? username.split(':')[0]! : '';
        const password = Object.hasOwn(ice.userHistory, ours) ? ice.userHistory[ours] : undefined;
        if (password === undefined || !parseMessage(data, Buffer.from(password, 'utf8'))) return;
        execute(message, addr, data);
      };
    }
  }
}

/** The ids the remote description gave header extension `uri` (one per m-section at most). */
export function negotiatedExtensionIds(pc: RTCPeerConnection, uri: string): number[] {
  const ids = new Set<number>();
  for (const transceiver of pc.getTransceivers()) {
    for (const e of transceiver.headerExtensions) if (e.uri === uri) ids.add(e.id);
  }
  return [...ids];
}

/** An RTCP SSRC of the connection (the first receiver's), for feedback the node writes itself. */
export function connectionRtcpSsrc(pc: RTCPeerConnection): number | undefined {
  return pc.getTransceivers()[0]?.receiver.rtcpSsrc;
}

/**
 * Sends RTCP bytes the node serialised itself over the connection's DTLS transport (SRTCP).
 * False when the transport is not connected.
 */
export function sendRawRtcp(pc: RTCPeerConnection, bytes: Uint8Array): boolean {
  const transport = pc.dtlsTransports[0];
  if (transport?.state !== 'connected') return false;
  const packet = { serialize: () => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  transport.sendRtcp([packet as unknown as RtcpPacket]).catch(() => {});
  return true;
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
