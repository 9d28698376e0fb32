/**
 * Faster versions of the werift 0.24.4 functions every forwarded RTP packet passes through
 * (docs/performance.md, "Where the packet path spends its time"). Each patch replaces one
 * werift function with one that produces the same packets and state without the per-packet
 * strings, BigInts, arrays and promises. Before patching, each checks that werift's function
 * still has the shape it was written against (its fields, or words of its source); a patch whose
 * check fails is left out and listed in `hotPathStatus()`, which a unit test asserts is empty
 * of failures, so a werift upgrade that changes a shape fails loudly there.
 *
 * Applied once, at import of `werift.ts` (`applyHotPathPatches`). Per-connection parts (werift's
 * `Event` instances, whose `execute` is an instance field) are applied by `fastReceivePath`.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import {
  Connection,
  compactNtp,
  deserializeAbsSendTime,
  deserializeAudioLevelIndication,
  deserializeString,
  deserializeUint16BE,
  deserializeVideoOrientation,
  Event,
  ProtectionProfileAeadAes128Gcm,
  RTCDtlsTransport,
  RTCRtpCodecParameters,
  RTCRtpReceiver,
  RTCRtpSender,
  RTP_EXTENSION_URI,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSourceDescriptionPacket,
  RtcpSrPacket,
  RtpHeader,
  RtpPacket,
  RtpRouter,
  rtpHeaderExtensionsParser,
  SourceDescriptionChunk,
  SourceDescriptionItem,
  SrtpAuthenticationError,
  SrtpSession,
  StunProtocol,
  timestampSeconds,
  UdpTransport,
} from 'werift';
import { gcmHandle, nativeGcm, nativeGcmStatus } from './nativeGcm.ts';
import {
  type DatagramSocket,
  type DatagramTarget,
  dgramFdShapeChanged,
  dgramState,
  nativeUdp,
  nativeUdpStatus,
  sendDatagram,
} from './nativeUdp.ts';
import { dgramRecvShapeChanged, nativeUdpRecvStatus, receiveDirectly } from './nativeUdpRecv.ts';
import type { SrtpSsrcState } from './srtpRollover.ts';

/** Offset from the Unix epoch (1970) to the NTP epoch (1900), in milliseconds. */
const NTP_EPOCH_OFFSET_MS = 2_208_988_800_000;
const TWO_POW_32 = 4_294_967_296;
const RESOLVED: Promise<void> = Promise.resolve();

function ignore(): void {}

export interface HotPathPatch {
  name: string;
  /** What it replaces in werift 0.24.4 (`lib/index.mjs`). */
  replaces: string;
  applied: boolean;
  /** Why it was not applied. */
  reason?: string;
  /** Not applied because a setting left it out on purpose (not because it could not be). */
  chosen?: boolean;
}

const status: HotPathPatch[] = [];

/** Every patch and whether it is in effect. */
export function hotPathStatus(): readonly HotPathPatch[] {
  return status;
}

/** The werift functions as they were before patching (tests compare against them). */
export const weriftOriginals: {
  rtpHeaderDeSerialize?: (buf: Buffer) => RtpHeader;
  rtpPacketClone?: (this: RtpPacket) => RtpPacket;
  senderSendRtp?: (this: RTCRtpSender, rtp: RtpPacket | Buffer) => Promise<void>;
  gcmEncryptRtp?: (header: RtpHeader, payload: Buffer, roc: number) => Buffer;
  ensureProtocol?: (this: unknown, protocol: unknown) => void;
} = {};

function sourceHas(fn: unknown, words: readonly string[]): string | undefined {
  if (typeof fn !== 'function') return 'not a function';
  const text = Function.prototype.toString.call(fn);
  for (const w of words) if (!text.includes(w)) return `its source no longer contains "${w}"`;
  return undefined;
}

function patch(
  name: string,
  replaces: string,
  check: () => string | undefined,
  apply: () => void,
  /** True when `check` refused because a setting turned the patch off. */
  turnedOff: () => boolean = () => false,
) {
  let reason: string | undefined;
  let chosen = false;
  try {
    chosen = skipped.has(name);
    reason = chosen ? 'left out by RETURNCAM_WERIFT_HOTPATH' : check();
    if (reason === undefined) apply();
    else chosen ||= turnedOff();
  } catch (err) {
    reason = `check failed: ${(err as Error).message}`;
  }
  status.push({
    name,
    replaces,
    applied: reason === undefined,
    reason,
    ...(chosen ? { chosen } : {}),
  });
}

let applied = false;
/**
 * `RETURNCAM_WERIFT_HOTPATH=off` leaves werift as it is (to compare, or if a patch misbehaves);
 * `RETURNCAM_WERIFT_HOTPATH=skip:RtpPacket.clone,Event.execute` leaves out the patches named.
 */
let disabled = false;
let skipped: ReadonlySet<string> = new Set();

/** Applies every process-wide patch once. */
export function applyHotPathPatches(env: NodeJS.ProcessEnv = process.env): void {
  if (applied) return;
  applied = true;
  const setting = env.RETURNCAM_WERIFT_HOTPATH ?? '';
  if (setting.startsWith('skip:')) skipped = new Set(setting.slice(5).split(','));
  if (setting === 'off') {
    disabled = true;
    status.push({
      name: 'all',
      replaces: 'every patch in this file',
      applied: false,
      reason: 'turned off by RETURNCAM_WERIFT_HOTPATH=off',
      chosen: true,
    });
    return;
  }
  patchRtpHeaderDeSerialize();
  patchRtpPacketClone();
  patchRunRtcp();
  patch(
    'native AES-GCM',
    'createCipheriv/createDecipheriv per SRTP packet in the two patches below: one OpenSSL context per session key instead (nativeGcm.ts)',
    () => nativeGcmStatus().reason,
    () => {
      nativeApplied = true;
      useNative = true;
    },
    () => nativeGcmStatus().turnedOff === true,
  );
  patchGcmEncrypt();
  patchSrtpReceive();
  patchCodecName();
  patchReceiverCodecArray();
  patch(
    'RtpRouter.routeRtp',
    'RtpRouter.routeRtp (webrtc/src/media/router.ts): rtpHeaderExtensionsParser per received packet, a { uri, value } object per extension, an array and two closures; replaced per connection by fastRouting',
    checkRouterShape,
    () => {
      fastRoutingOn = true;
    },
  );
  patchSenderSendRtp();
  patch(
    'dgram lookup',
    'dgram.Socket.send: dns.lookup and a process.nextTick per datagram to an IP literal',
    lookupShapeChanged,
    () => {
      syncLookup = true;
    },
  );
  patch(
    'native UDP send',
    "dgram.Socket.send for SRTP out: its argument list, request object and address parsing per datagram; one sendto(2) on the socket's descriptor instead (nativeUdp.ts)",
    () => nativeUdpStatus().reason ?? dgramFdShapeChanged(createSocket),
    () => {
      directUdp = true;
    },
    () => nativeUdpStatus().turnedOff === true,
  );
  patch(
    'native UDP receive',
    "dgram's receive path on every ICE socket: an ArrayBuffer of its own (a 64 KiB malloc shrunk) and an address string per datagram; RTP and RTCP read into shared slabs through the addon instead (nativeUdpRecv.ts)",
    () =>
      nativeUdpRecvStatus().reason ??
      dgramRecvShapeChanged(createSocket) ??
      sourceHas(UdpTransport, ['this.socket.on("message", (data, info) =>', 'this.onData(data']) ??
      sourceHas((UdpTransport.prototype as unknown as { init: unknown }).init, [
        'this.socket.bind',
        '"listening"',
      ]),
    patchUdpTransportInit,
    () => nativeUdpRecvStatus().turnedOff === true,
  );
  patch(
    'Event.execute',
    'Event.execute (common/src/event.ts): an async IIFE per event; replaced per event by fastReceivePath, and for every ICE socket by Connection.ensureProtocol',
    () =>
      checkEventShape(() => new Event()) ??
      sourceHas(connectionProto().ensureProtocol, ['protocol.onDataReceived.subscribe']),
    patchEnsureProtocol,
  );
}

// ---------------------------------------------------------------------------------------------
// `RTCRtpReceiver.codecArray` sorts a new array of the receiver's codecs at each read, and
// `handleRTP` reads it for every video packet (`nackEnabled`): ~8 % of what the node allocated at
// 25 calls × 2 viewers. A receiver's codecs change only in `prepareReceive`: the sorted array is
// kept until then (and while `codecs` is the same object).

interface ReceiverCodecs {
  codecs: object;
  __codecArray?: unknown[];
  __codecArrayOf?: object;
}

function patchReceiverCodecArray(): void {
  const proto = RTCRtpReceiver.prototype as unknown as {
    prepareReceive: (this: ReceiverCodecs, params: unknown) => void;
  };
  const getter = Object.getOwnPropertyDescriptor(proto, 'codecArray')?.get as
    | ((this: ReceiverCodecs) => unknown[])
    | undefined;
  patch(
    'RTCRtpReceiver.codecArray',
    'RTCRtpReceiver.codecArray (webrtc/src/media/rtpReceiver.ts): Object.values + sort per video packet',
    () =>
      sourceHas(getter, ['Object.values(this.codecs).sort']) ??
      sourceHas(proto.prepareReceive, ['this.codecs[c.payloadType] = c']),
    () => {
      const prepare = proto.prepareReceive;
      const get = getter!;
      Object.defineProperty(proto, 'codecArray', {
        configurable: true,
        get(this: ReceiverCodecs) {
          if (this.__codecArrayOf !== this.codecs || !this.__codecArray) {
            this.__codecArray = get.call(this);
            this.__codecArrayOf = this.codecs;
          }
          return this.__codecArray;
        },
      });
      proto.prepareReceive = function prepareReceive(this: ReceiverCodecs, params: unknown) {
        this.__codecArray = undefined;
        return prepare.call(this, params);
      };
    },
  );
}

// ---------------------------------------------------------------------------------------------
// RTP header parsing: `RtpHeader.deSerialize` (rtp/src/rtp/rtp.ts) reads its bit fields through
// `getBit`, which formats each byte as a binary string, splits it and parses it back (four calls
// per header), and grows the extension list by spreading it into a new array per extension. It
// parses every packet twice (SRTP header check, then `RtpPacket.deSerialize`). Same fields, read
// with shifts and masks.

/** Own fields of a werift 0.24.4 `RtpHeader`, in declaration order. */
const HEADER_FIELDS = [
  'version',
  'padding',
  'paddingSize',
  'extension',
  'marker',
  'payloadOffset',
  'payloadType',
  'sequenceNumber',
  'timestamp',
  'ssrc',
  'csrcLength',
  'csrc',
  'extensionProfile',
  'extensionLength',
  'extensions',
] as const;

/**
 * Makes an `RtpHeader` (its prototype; its own fields, in declaration order, set from the values
 * given) without werift's constructor, which allocates an options object and `csrc` and
 * `extensions` arrays and runs `Object.assign`, all replaced at once on the packet path. Only
 * per-packet headers are made here: `deSerializeHeader` and `cloneHeader`.
 */
const RawHeader = function RawHeader(
  this: RtpHeader,
  version: number,
  padding: boolean,
  paddingSize: number,
  extension: boolean,
  marker: boolean,
  payloadOffset: number,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
  csrcLength: number,
  csrc: number[],
  extensionProfile: RtpHeader['extensionProfile'],
  extensionLength: number | undefined,
  extensions: Extension[],
) {
  this.version = version;
  this.padding = padding;
  this.paddingSize = paddingSize;
  this.extension = extension;
  this.marker = marker;
  this.payloadOffset = payloadOffset;
  this.payloadType = payloadType;
  this.sequenceNumber = sequenceNumber;
  this.timestamp = timestamp;
  this.ssrc = ssrc;
  this.csrcLength = csrcLength;
  this.csrc = csrc;
  this.extensionProfile = extensionProfile;
  this.extensionLength = extensionLength;
  this.extensions = extensions;
} as unknown as new (
  ...fields: [
    number,
    boolean,
    number,
    boolean,
    boolean,
    number,
    number,
    number,
    number,
    number,
    number,
    number[],
    RtpHeader['extensionProfile'],
    number | undefined,
    Extension[],
  ]
) => RtpHeader;
(RawHeader as unknown as { prototype: object }).prototype = RtpHeader.prototype;

function headerShapeChanged(): string | undefined {
  const keys = Object.keys(new RtpHeader());
  if (keys.join() !== HEADER_FIELDS.join()) return `RtpHeader fields are now ${keys.join()}`;
  return undefined;
}

const ONE_BYTE_PROFILE = 0xbede;
const TWO_BYTE_PROFILE = 0x1000;

type Extension = RtpHeader['extensions'][number];

function deSerializeHeader(raw: Buffer): RtpHeader {
  const b0 = raw[0]!;
  const cc = b0 & 0x0f;
  const csrc: number[] = new Array(cc);
  for (let i = 0; i < cc; i++) csrc[i] = raw.readUInt32BE(12 + i * 4);
  const b1 = raw[1]!;
  const extensions: Extension[] = [];
  const h = new RawHeader(
    b0 >> 6,
    (b0 & 0x20) !== 0,
    0,
    (b0 & 0x10) !== 0,
    (b1 & 0x80) !== 0,
    0,
    b1 & 0x7f,
    raw.readUInt16BE(2),
    raw.readUInt32BE(4),
    raw.readUInt32BE(8),
    cc,
    csrc,
    ONE_BYTE_PROFILE as RtpHeader['extensionProfile'],
    undefined,
    extensions,
  );
  let offset = 12 + cc * 4;
  if (h.extension) {
    const profile = raw.readUInt16BE(offset);
    h.extensionProfile = profile as RtpHeader['extensionProfile'];
    offset += 2;
    const extensionLength = raw.readUInt16BE(offset) * 4;
    h.extensionLength = extensionLength;
    offset += 2;
    if (profile === ONE_BYTE_PROFILE) {
      const end = offset + extensionLength;
      while (offset < end) {
        const byte = raw[offset];
        if (byte === 0) {
          offset++;
          continue;
        }
        // werift reads past the end as `undefined`: an id of 0 and a length of 1.
        const id = byte === undefined ? 0 : byte >> 4;
        const len = byte === undefined ? 1 : (byte & 0x0f) + 1;
        offset++;
        if (id === 15) break;
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        offset += len;
      }
    } else if (profile === TWO_BYTE_PROFILE) {
      const end = offset + extensionLength;
      while (offset < end) {
        if (raw[offset] === 0) {
          offset++;
          continue;
        }
        const id = raw[offset]!;
        offset++;
        const len = raw[offset]!;
        offset++;
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        offset += len;
      }
    } else {
      const payload = raw.subarray(offset, offset + extensionLength);
      extensions.push({ id: 0, payload });
      offset += payload.length;
    }
  }
  h.payloadOffset = offset;
  if (h.padding) h.paddingSize = raw[raw.length - 1]!;
  return h;
}

function patchRtpHeaderDeSerialize(): void {
  const target = RtpHeader as unknown as { deSerialize: (buf: Buffer) => RtpHeader };
  patch(
    'RtpHeader.deSerialize',
    'RtpHeader.deSerialize (rtp/src/rtp/rtp.ts): getBit string parsing, array spreads',
    () =>
      headerShapeChanged() ??
      sourceHas(target.deSerialize, ['getBit(v_p_x_cc, 0, 2)', 'getBit(m_pt, 1, 7)', '240']),
    () => {
      weriftOriginals.rtpHeaderDeSerialize = target.deSerialize.bind(RtpHeader);
      target.deSerialize = deSerializeHeader;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// `RtpPacket.clone` (rtp/src/rtp/rtp.ts) spreads the header into a temporary object and copies
// it again in `RtpHeader`'s constructor (`Object.assign`); werift's receiver clones every packet
// for its track, the forwarder every packet per subscriber. Same new header (the same fields;
// `csrc` and `extensions` arrays shared as the spread shares them), same shared payload.

function cloneHeader(s: RtpHeader): RtpHeader {
  return new RawHeader(
    s.version,
    s.padding,
    s.paddingSize,
    s.extension,
    s.marker,
    s.payloadOffset,
    s.payloadType,
    s.sequenceNumber,
    s.timestamp,
    s.ssrc,
    s.csrcLength,
    s.csrc,
    s.extensionProfile,
    s.extensionLength,
    s.extensions,
  );
}

/**
 * A packet object to reuse with {@link copyPacketInto}: its header made as the packet path's
 * headers are (`RawHeader`), so code that reads headers sees one object shape, not two.
 */
export function reusablePacket(): RtpPacket {
  return new RtpPacket(cloneHeader(new RtpHeader()), Buffer.alloc(0));
}

/**
 * Makes `target` what `source.clone()` returns (the header's fields copied, its `csrc` and
 * `extensions` arrays and the payload shared) without allocating: for a packet object reused per
 * send, see {@link sendRtpKeepsNothing}.
 */
export function copyPacketInto(target: RtpPacket, source: RtpPacket): RtpPacket {
  const t = target.header;
  const s = source.header;
  t.version = s.version;
  t.padding = s.padding;
  t.paddingSize = s.paddingSize;
  t.extension = s.extension;
  t.marker = s.marker;
  t.payloadOffset = s.payloadOffset;
  t.payloadType = s.payloadType;
  t.sequenceNumber = s.sequenceNumber;
  t.timestamp = s.timestamp;
  t.ssrc = s.ssrc;
  t.csrcLength = s.csrcLength;
  t.csrc = s.csrc;
  t.extensionProfile = s.extensionProfile;
  t.extensionLength = s.extensionLength;
  t.extensions = s.extensions;
  target.payload = source.payload;
  return target;
}

function patchRtpPacketClone(): void {
  const proto = RtpPacket.prototype as unknown as { clone: (this: RtpPacket) => RtpPacket };
  patch(
    'RtpPacket.clone',
    'RtpPacket.clone (rtp/src/rtp/rtp.ts): header spread + Object.assign',
    () => headerShapeChanged() ?? sourceHas(proto.clone, ['new RtpHeader({ ...this.header })']),
    () => {
      weriftOriginals.rtpPacketClone = proto.clone;
      proto.clone = function clone(this: RtpPacket) {
        return new RtpPacket(cloneHeader(this.header), this.payload);
      };
    },
  );
}

// ---------------------------------------------------------------------------------------------
// `runRtcp` (RTCRtpSender, RTCRtpReceiver): the loop that sends a sender report (with the CNAME)
// or a receiver report every 0.5-1.5 s. werift writes it as an async loop that awaits
// `timers/promises`' `setTimeout` with an abort signal: each turn makes a promise, a timer, an
// abort listener and a `finally` chain that live through the wait, so all of them outlive two
// young collections and are promoted, for a full collection to sweep. At 25 calls × 2 viewers
// that was ~30 % of everything promoted (a sampling heap profile of what survived young
// collections). Here each turn is one plain timer, and the stop is one abort listener per loop.
// werift also calls `runRtcp` for every packet sent or received; it returns at once (without a
// promise) when the loop runs. The reports are built as werift builds them.

/** An RTP sender or receiver as its RTCP loop sees it. */
interface RtcpLoopOwner {
  rtcpRunning?: boolean;
  stopped?: boolean;
  rtcpCancel: AbortController;
  dtlsTransport: { sendRtcp(packets: object[]): Promise<unknown> };
  __rtcpTimer?: ReturnType<typeof setTimeout>;
}

interface SenderRtcpState extends RtcpLoopOwner {
  ssrc: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  cname?: string;
  lastSRtimestamp: number;
  lastSentSRTimestamp: number;
}

interface ReceiverRtcpState extends RtcpLoopOwner {
  rtcpSsrc: number;
  config: { debug?: { receiverReportDelay?: number } };
  remoteStreams: Record<
    string,
    { fraction_lost: number; packets_lost: number; max_seq: number; jitter: number }
  >;
  lastSRtimestamp: Record<string, number>;
  receiveLastSRTimestamp: Record<string, number>;
}

/** werift's spacing between reports, ms. */
const rtcpInterval = () => 500 + Math.random() * 1e3;

function senderReports(s: SenderRtcpState): object[] {
  const packets: object[] = [
    new RtcpSrPacket({
      ssrc: s.ssrc,
      senderInfo: new RtcpSenderInfo({
        ntpTimestamp: s.ntpTimestamp,
        rtpTimestamp: s.rtpTimestamp,
        packetCount: s.packetCount,
        octetCount: s.octetCount,
      }),
    }),
  ];
  s.lastSRtimestamp = compactNtp(s.ntpTimestamp);
  s.lastSentSRTimestamp = timestampSeconds();
  if (s.cname) {
    packets.push(
      new RtcpSourceDescriptionPacket({
        chunks: [
          new SourceDescriptionChunk({
            source: s.ssrc,
            items: [new SourceDescriptionItem({ type: 1, text: s.cname })],
          }),
        ],
      }),
    );
  }
  return packets;
}

function receiverReports(r: ReceiverRtcpState): object[] {
  const reports: RtcpReceiverInfo[] = [];
  for (const ssrc in r.remoteStreams) {
    const stream = r.remoteStreams[ssrc]!;
    let lastSRtimestamp = 0;
    let delaySinceLastSR = 0;
    if (r.lastSRtimestamp[ssrc]) {
      lastSRtimestamp = r.lastSRtimestamp[ssrc];
      const delaySeconds = timestampSeconds() - r.receiveLastSRTimestamp[ssrc]!;
      if (delaySeconds > 0 && delaySeconds < 65536) {
        delaySinceLastSR = Math.floor(delaySeconds * 65536);
      }
    }
    reports.push(
      new RtcpReceiverInfo({
        ssrc: Number(ssrc),
        fractionLost: stream.fraction_lost,
        packetsLost: stream.packets_lost,
        highestSequence: stream.max_seq,
        jitter: stream.jitter,
        lsr: lastSRtimestamp,
        dlsr: delaySinceLastSR,
      }),
    );
  }
  return [new RtcpRrPacket({ ssrc: r.rtcpSsrc, reports })];
}

/**
 * Runs `owner`'s report loop: a report every 0.5-1.5 s (the next timer set once the send has
 * settled, as werift awaits it), another such wait after a send that failed, and nothing more
 * once the owner stops (`rtcpRunning` false, or `rtcpCancel` aborted, which also clears the timer).
 */
function startRtcpLoop<T extends RtcpLoopOwner>(owner: T, build: (o: T) => object[]): void {
  const signal = owner.rtcpCancel.signal;
  const running = () => owner.rtcpRunning === true && !signal.aborted;
  const schedule = () => {
    owner.__rtcpTimer = running() ? setTimeout(turn, rtcpInterval()) : undefined;
  };
  const afterFailure = () => {
    owner.__rtcpTimer = running() ? setTimeout(schedule, rtcpInterval()) : undefined;
  };
  function turn() {
    owner.__rtcpTimer = undefined;
    if (!running()) return;
    let sent: Promise<unknown>;
    try {
      sent = owner.dtlsTransport.sendRtcp(build(owner));
    } catch {
      afterFailure();
      return;
    }
    sent.then(schedule, afterFailure);
  }
  if (signal.aborted) {
    owner.rtcpRunning = false;
    return;
  }
  signal.addEventListener(
    'abort',
    () => {
      if (owner.__rtcpTimer !== undefined) clearTimeout(owner.__rtcpTimer);
      owner.__rtcpTimer = undefined;
    },
    { once: true },
  );
  schedule();
}

function patchRunRtcp(): void {
  const loops = [
    [
      'RTCRtpSender',
      RTCRtpSender,
      [
        'if (this.rtcpRunning || this.stopped) return;',
        'signal: this.rtcpCancel.signal',
        'new RtcpSrPacket',
        'ntpTimestamp: this.ntpTimestamp',
        'octetCount: this.octetCount',
        'this.lastSRtimestamp = compactNtp(this.ntpTimestamp)',
        'this.lastSentSRTimestamp = timestampSeconds()',
        'new SourceDescriptionItem({ type: 1, text: this.cname })',
        'await this.dtlsTransport.sendRtcp(packets)',
      ],
      senderReports,
    ],
    [
      'RTCRtpReceiver',
      RTCRtpReceiver,
      [
        'if (this.rtcpRunning || this.stopped) return;',
        'signal: this.rtcpCancel.signal',
        'Object.entries(this.remoteStreams)',
        'this.receiveLastSRTimestamp[ssrc]',
        'fractionLost: stream.fraction_lost',
        'highestSequence: stream.max_seq',
        'new RtcpRrPacket({ ssrc: this.rtcpSsrc, reports })',
        'this.config.debug.receiverReportDelay',
        'await this.dtlsTransport.sendRtcp([packet])',
      ],
      receiverReports,
    ],
  ] as const;
  for (const [name, cls, words, build] of loops) {
    const proto = cls.prototype as unknown as {
      runRtcp: (this: RtcpLoopOwner) => Promise<void> | undefined;
    };
    patch(
      `${name}.runRtcp`,
      `${name}.runRtcp: an async loop awaiting a promise timer with an abort signal per report, and a promise per packet sent or received once it runs`,
      () => sourceHas(proto.runRtcp, words),
      () => {
        const original = proto.runRtcp;
        proto.runRtcp = function runRtcp(this: RtcpLoopOwner) {
          if (this.rtcpRunning || this.stopped) return RESOLVED;
          // a receiver told to delay its reports (a debugging setting): werift's own loop
          if ((this as Partial<ReceiverRtcpState>).config?.debug?.receiverReportDelay) {
            return original.call(this);
          }
          this.rtcpRunning = true;
          startRtcpLoop(this, build as (o: RtcpLoopOwner) => object[]);
          return RESOLVED;
        };
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// SRTP encrypt, AES-128-GCM (`CipherAesGcm.encryptRtp`, rtp/src/srtp/cipher/gcm.ts): serialises
// the header into its own Buffer, then `Buffer.concat([hdr, enc, authTag])`, and writes the IV
// through a generic writer (an array and a closure per packet). Here the header is serialised (by
// werift's own `serialize`) into a Buffer sized for the whole SRTP packet, the ciphertext and tag
// are copied behind it, and the IV goes into a reused Buffer: the same bytes, no concat. With the
// native addon (`nativeGcm.ts`) the ciphertext and tag are written straight into that Buffer by
// the session key's one OpenSSL context, instead of a new Node cipher per packet.

const scratchIv = Buffer.alloc(12);

/**
 * Set by `dtlsSendRtpNow` around its encrypt: the SRTP packet then goes into `sealScratch`, since
 * it is sent (or copied for a later send) before anything else is sealed, so no Buffer (and no
 * share of Node's pool) is taken per packet per viewer.
 */
let sealIntoScratch = false;
let sealScratch = Buffer.allocUnsafeSlow(2048);

function scratchFor(size: number): Buffer {
  if (sealScratch.length < size) {
    sealScratch = Buffer.allocUnsafeSlow(Math.max(size, 2 * sealScratch.length));
  }
  return sealScratch.subarray(0, size);
}

/** Set when the native AES-GCM addon loaded and is not left out (`nativeGcm.ts`). */
let nativeApplied = false;
let useNative = false;

/**
 * Turns the native AES-GCM path off, or back on where it was applied; returns whether it is on.
 * For comparing the two paths (tests, `bench packet`): both give the same bytes.
 */
export function setNativeGcm(on: boolean): boolean {
  useNative = on && nativeApplied;
  return useNative;
}

/** Whether werift's IV still has the layout `rtpIv` writes. */
function ivShapeChanged(proto: GcmCipher): string | undefined {
  return sourceHas(proto.rtpInitializationVector, [
    'this.rtpIvWriter([',
    '0,',
    'header.ssrc,',
    'rolloverCounter,',
    'header.sequenceNumber',
    'iv[i] ^= this.srtpSessionSalt[i]',
  ]);
}

/**
 * The AES-GCM IV of an SRTP packet (RFC 7714 §8.1: 00 00 | SSRC | ROC | SEQ, XOR the session
 * salt), as werift's `rtpInitializationVector` writes it, into one reused Buffer: OpenSSL copies
 * the IV when the cipher is created, so the next packet may overwrite it.
 */
function rtpIv(salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  const iv = scratchIv;
  iv[0] = 0;
  iv[1] = 0;
  iv.writeUInt32BE(ssrc >>> 0, 2);
  iv.writeUInt32BE(roc >>> 0, 6);
  iv.writeUInt16BE(seq, 10);
  for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
  return iv;
}

interface GcmCipher {
  srtpSessionKey: Buffer;
  srtpSessionSalt: Buffer;
  aeadAuthTagLen: number;
  rtpInitializationVector: (header: RtpHeader, roc: number) => Buffer;
  encryptRtp: (header: RtpHeader, payload: Buffer, roc: number) => Buffer;
}

/** A throwaway GCM `SrtpSession`, to reach werift's cipher and context classes. */
export function probeSession(): { localContext: { cipher: object }; remoteContext: object } {
  const session = new SrtpSession({
    keys: {
      localMasterKey: Buffer.alloc(16, 1),
      localMasterSalt: Buffer.alloc(12, 2),
      remoteMasterKey: Buffer.alloc(16, 3),
      remoteMasterSalt: Buffer.alloc(12, 4),
    },
    profile: ProtectionProfileAeadAes128Gcm,
  } as ConstructorParameters<typeof SrtpSession>[0]);
  return session as unknown as { localContext: { cipher: object }; remoteContext: object };
}

function gcmCipherPrototype(): GcmCipher {
  return Object.getPrototypeOf(probeSession().localContext.cipher) as GcmCipher;
}

/**
 * Writes `h` into the start of `buf` as werift's `RtpHeader.serialize` writes it into a new
 * zeroed Buffer: the same bytes (every one of the header's, padding included, since `buf` may be
 * unzeroed pool memory), the same errors for values out of range, the same side effects
 * (`extension` set when there are extensions, `payloadOffset`). No bit-writer objects, no
 * iterators. Returns the header's length.
 */
export function writeHeader(h: RtpHeader, buf: Buffer): number {
  const csrc = h.csrc;
  const extensions = h.extensions;
  if (extensions.length > 0) h.extension = true;
  buf.writeUInt8(
    ((h.version & 0x03) << 6) |
      (h.padding ? 0x20 : 0) |
      (h.extension ? 0x10 : 0) |
      (csrc.length & 0x0f),
    0,
  );
  buf.writeUInt8((h.marker ? 0x80 : 0) | (h.payloadType & 0x7f), 1);
  buf.writeUInt16BE(h.sequenceNumber, 2);
  buf.writeUInt32BE(h.timestamp, 4);
  buf.writeUInt32BE(h.ssrc, 8);
  let offset = 12;
  for (let i = 0; i < csrc.length; i++) {
    buf.writeUInt32BE(csrc[i]!, offset);
    offset += 4;
  }
  if (h.extension) {
    const extHeaderPos = offset;
    buf.writeUInt16BE(h.extensionProfile, offset);
    offset += 4;
    const start = offset;
    const profile = h.extensionProfile as number;
    if (profile === ONE_BYTE_PROFILE) {
      for (let i = 0; i < extensions.length; i++) {
        const e = extensions[i]!;
        buf.writeUInt8((e.id << 4) | (e.payload.length - 1), offset++);
        e.payload.copy(buf, offset);
        offset += e.payload.length;
      }
    } else if (profile === TWO_BYTE_PROFILE) {
      for (let i = 0; i < extensions.length; i++) {
        const e = extensions[i]!;
        buf.writeUInt8(e.id, offset++);
        buf.writeUInt8(e.payload.length, offset++);
        e.payload.copy(buf, offset);
        offset += e.payload.length;
      }
    } else {
      const only = extensions[0]!.payload;
      if (only.length % 4 !== 0) throw new Error();
      only.copy(buf, offset);
      offset += only.length;
    }
    const size = offset - start;
    const rounded = Math.trunc((size + 3) / 4) * 4;
    buf.writeUInt16BE(rounded / 4, extHeaderPos + 2);
    for (let i = size; i < rounded; i++) buf[offset++] = 0;
  }
  h.payloadOffset = offset;
  return offset;
}

function patchGcmEncrypt(): void {
  let proto: GcmCipher | undefined;
  patch(
    'CipherAesGcm.encryptRtp',
    'CipherAesGcm.encryptRtp (rtp/src/srtp/cipher/gcm.ts): separate header Buffer + Buffer.concat',
    () => {
      proto = gcmCipherPrototype();
      return (
        ivShapeChanged(proto) ??
        sourceHas(proto.encryptRtp, [
          'header.serialize(header.serializeSize)',
          'createCipheriv',
          '"aes-128-gcm"',
          'cipher.setAAD(hdr)',
          'Buffer.concat([hdr, enc, authTag])',
        ])
      );
    },
    () => {
      const p = proto!;
      weriftOriginals.gcmEncryptRtp = p.encryptRtp;
      p.encryptRtp = function encryptRtp(this: GcmCipher, header, payload, roc) {
        const headerSize = header.serializeSize;
        const size = headerSize + payload.length + this.aeadAuthTagLen;
        // not zeroed: the header, the sealed payload and the tag fill it
        const dst = sealIntoScratch ? scratchFor(size) : Buffer.allocUnsafe(size);
        writeHeader(header, dst);
        const iv = rtpIv(this.srtpSessionSalt, header.ssrc, roc, header.sequenceNumber);
        if (useNative && this.aeadAuthTagLen === GCM_TAG_LENGTH) {
          const native = nativeGcm!;
          native.seal(gcmHandle(native, this.srtpSessionKey), iv, dst, headerSize, payload);
          return dst;
        }
        const cipher = createCipheriv('aes-128-gcm', this.srtpSessionKey, iv);
        cipher.setAAD(dst.subarray(0, headerSize));
        const enc = cipher.update(payload);
        cipher.final();
        enc.copy(dst, headerSize);
        cipher.getAuthTag().copy(dst, headerSize + enc.length);
        return dst;
      };
    },
  );
}

// ---------------------------------------------------------------------------------------------
// SRTP decrypt, AES-128-GCM, on the receive path (`RTCDtlsTransport.startSrtp`'s data listener,
// webrtc/src/transport/dtls.ts → `SrtpContext.decryptRtp`, rtp/src/srtp/context/srtp.ts →
// `CipherAesGcm.decryptRtp`): per packet werift parses the header, copies the SSRC's rollover
// state into a new object, writes the IV through a generic writer, copies header and plaintext
// into a new zero-filled Buffer, and then `RtpPacket.deSerialize` parses the same header again.
//
// `decryptRtpPacket` parses once, runs the context's `updateRolloverCount` (the RFC 3711 one of
// srtpRollover.ts) on a reused scratch state that is committed only when the packet
// authenticates (as werift's copy is), writes the IV into a reused Buffer (OpenSSL copies it),
// and decrypts in place, in the received datagram's own Buffer, through the native addon's
// context for the key (`nativeGcm.ts`) or else a Node decipher, making the plaintext the payload:
// no Buffer (and no ArrayBuffer for the young collections to sweep) per packet. The patched
// `startSrtp` puts a listener in front of werift's: SRTP packets of a GCM session take this path,
// everything else (SRTCP, the AES-CM profiles, the debug loss setting) goes to werift's listener
// unchanged.

const SRTP_AUTH_FAILED = 'Failed to authenticate SRTP packet';
const GCM_TAG_LENGTH = 16;
const MIN_RTP_HEADER = 12;

/** The remote (decrypting) `SrtpContext` of a werift `SrtpSession`. */
interface SrtpRtpContext {
  cipher: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer };
  srtpSSRCStates: Record<number, SrtpSsrcState | undefined>;
  updateRolloverCount: (sequenceNumber: number, state: SrtpSsrcState) => void;
}

const scratchState: SrtpSsrcState = {
  ssrc: 0,
  rolloverCounter: 0,
  lastSequenceNumber: 0,
  rolloverHasProcessed: false,
  highestIndex: undefined,
};

/** True when `context` decrypts with werift's AES-128-GCM cipher (the path below handles). */
export function isGcmContext(context: unknown): context is SrtpRtpContext {
  const cipher = (context as { cipher?: object } | undefined)?.cipher;
  return cipher !== undefined && Object.getPrototypeOf(cipher) === gcmProto;
}

let gcmProto: GcmCipher | undefined;

/**
 * Decrypts one SRTP packet (AES-128-GCM) into an `RtpPacket`, as werift's `decryptRtp` followed
 * by `RtpPacket.deSerialize` would: the same header fields, payload bytes and rollover state, and
 * an `SrtpAuthenticationError` (state untouched) for what werift rejects.
 *
 * In place: `data` becomes the packet (header, then plaintext, then the 16 tag bytes unused), so
 * it must be the packet's own memory, as a datagram Node has just received is; after a failure
 * its contents are undefined.
 */
export function decryptRtpPacket(context: SrtpRtpContext, data: Buffer): RtpPacket {
  const authTagOffset = data.length - GCM_TAG_LENGTH;
  if (data.length < MIN_RTP_HEADER + GCM_TAG_LENGTH) {
    throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
  }
  let header: RtpHeader;
  try {
    header = RtpHeader.deSerialize(data.subarray(0, authTagOffset));
  } catch {
    throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
  }
  const offset = header.payloadOffset;
  if (!(offset >= MIN_RTP_HEADER && offset <= authTagOffset)) {
    throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
  }
  const ssrc = header.ssrc;
  const existing = context.srtpSSRCStates[ssrc];
  const s = scratchState;
  s.ssrc = ssrc;
  s.rolloverCounter = existing?.rolloverCounter ?? 0;
  s.lastSequenceNumber = existing?.lastSequenceNumber ?? 0;
  s.rolloverHasProcessed = existing?.rolloverHasProcessed ?? false;
  s.highestIndex = existing?.highestIndex;
  context.updateRolloverCount(header.sequenceNumber, s);
  const iv = rtpIv(context.cipher.srtpSessionSalt, ssrc, s.rolloverCounter, header.sequenceNumber);
  // The plaintext stays behind the header, as werift's decrypt leaves it: the publisher FEC path
  // (`rawPacket` in fecReceivePath.ts) reads the packet's header bytes in front of its payload,
  // and without them it gave up on every RED packet's FEC. The datagram is its own ArrayBuffer
  // (Node's dgram gives each one its own), so a payload kept for a while keeps only its packet.
  if (useNative) {
    const native = nativeGcm!;
    const sealed = data.subarray(0, authTagOffset);
    if (!native.open(gcmHandle(native, context.cipher.srtpSessionKey), iv, data, offset, sealed)) {
      throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
    }
  } else {
    const decipher = createDecipheriv('aes-128-gcm', context.cipher.srtpSessionKey, iv);
    decipher.setAAD(data.subarray(0, offset));
    decipher.setAuthTag(data.subarray(authTagOffset));
    const plain = decipher.update(data.subarray(offset, authTagOffset));
    try {
      decipher.final();
    } catch {
      throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
    }
    plain.copy(data, offset);
  }
  const plainLength = authTagOffset - offset;
  let padding = 0;
  if (header.padding) {
    padding = plainLength > 0 ? data[authTagOffset - 1]! : 0;
    if (!(padding > 0 && padding <= plainLength)) {
      throw new SrtpAuthenticationError(SRTP_AUTH_FAILED);
    }
  }
  header.paddingSize = padding;
  if (existing) {
    existing.rolloverCounter = s.rolloverCounter;
    existing.lastSequenceNumber = s.lastSequenceNumber;
    existing.rolloverHasProcessed = s.rolloverHasProcessed;
    existing.highestIndex = s.highestIndex;
  } else {
    context.srtpSSRCStates[ssrc] = {
      ssrc,
      rolloverCounter: s.rolloverCounter,
      lastSequenceNumber: s.lastSequenceNumber,
      rolloverHasProcessed: s.rolloverHasProcessed,
      highestIndex: s.highestIndex,
    };
  }
  return new RtpPacket(header, data.subarray(offset, authTagOffset - padding));
}

/** What of `RTCDtlsTransport` the receive listener touches. */
export interface DtlsReceiveInternals {
  srtp?: { remoteContext?: unknown };
  config: { debug?: { inboundPacketLoss?: number } };
  bytesReceived: number;
  packetsReceived: number;
  onRtp: { execute: (rtp: RtpPacket) => void };
}

/**
 * The listener in front of werift's: an SRTP packet of a GCM session is decrypted here and
 * handed to `onRtp`; anything else goes to `werifts` (werift's own listener).
 */
export function receiveSrtp(
  dtls: DtlsReceiveInternals,
  data: Buffer,
  werifts: (data: Buffer) => void,
): void {
  const first = data[0];
  const context = dtls.srtp?.remoteContext;
  if (
    first === undefined ||
    first < 128 ||
    first > 191 || // not RTP/RTCP: werift drops it
    (data.length >= 2 && data[1]! >= 192 && data[1]! <= 208) || // RTCP
    dtls.config.debug?.inboundPacketLoss ||
    !isGcmContext(context)
  ) {
    werifts(data);
    return;
  }
  dtls.bytesReceived += data.length;
  dtls.packetsReceived++;
  let rtp: RtpPacket;
  try {
    rtp = decryptRtpPacket(context, data);
  } catch (err) {
    if (err instanceof SrtpAuthenticationError) return; // werift drops it too
    throw err;
  }
  try {
    dtls.onRtp.execute(rtp);
  } catch {
    // werift logs "RTP error" at debug level and carries on
  }
}

interface WeriftEventLike {
  subscribe: (listener: (data: Buffer) => void) => unknown;
}

function patchSrtpReceive(): void {
  const proto = RTCDtlsTransport.prototype as unknown as {
    startSrtp: (this: DtlsReceiveInternals & SrtpStarter) => void;
  };
  patch(
    'RTCDtlsTransport.startSrtp',
    'RTCDtlsTransport.startSrtp → SrtpContext.decryptRtp → CipherAesGcm.decryptRtp → RtpPacket.deSerialize: the header parsed twice, the rollover state and the plaintext copied per packet',
    () => {
      gcmProto = gcmCipherPrototype();
      const context = probeSession().remoteContext as Record<string, unknown>;
      for (const field of ['srtpSSRCStates', 'cipher']) {
        if (!(field in context)) return `SrtpContext has no ${field}`;
      }
      return (
        sourceHas(proto.startSrtp, [
          'if (this.srtpStarted) return;',
          'this.iceTransport.connection.onData.subscribe((data) =>',
          'inboundPacketLoss',
          'if (!isMedia(data)) return;',
          'this.bytesReceived += data.length',
          'this.packetsReceived++',
          'if (isRtcp(data))',
          'dec = this.srtp.decrypt(data)',
          'rtp = RtpPacket.deSerialize(dec)',
          'this.onRtp.execute(rtp)',
        ]) ??
        sourceHas(Object.getPrototypeOf(context).decryptRtp, [
          'parseSrtpRtpHeader(cipherText, this.rtpAuthTagLength)',
          'this.srtpSSRCStates[header.ssrc]',
          'this.updateRolloverCount(header.sequenceNumber, nextState)',
          'Object.assign(existingState, nextState)',
        ]) ??
        sourceHas((gcmProto as unknown as { decryptRtp: unknown }).decryptRtp, [
          'this.rtpInitializationVector(header, rolloverCounter)',
          'createDecipheriv',
          '"aes-128-gcm"',
          'decipher.setAAD(headerBuffer)',
          'decipher.setAuthTag(authTag)',
          'finalizeSrtpRtpHeader(header, dst',
        ]) ??
        ivShapeChanged(gcmProto)
      );
    },
    () => {
      const original = proto.startSrtp;
      proto.startSrtp = function startSrtp() {
        const onData = this.iceTransport.connection.onData;
        const own = Object.hasOwn(onData, 'subscribe');
        const subscribe = onData.subscribe;
        // werift subscribes its listener inside startSrtp; ours goes in its place and calls it
        // for what it does not handle.
        onData.subscribe = (werifts) =>
          subscribe.call(onData, (data: Buffer) => receiveSrtp(this, data, werifts));
        try {
          original.call(this);
        } finally {
          if (own) onData.subscribe = subscribe;
          else delete (onData as Partial<WeriftEventLike>).subscribe;
        }
      };
    },
  );
}

interface SrtpStarter {
  iceTransport: { connection: { onData: WeriftEventLike } };
}

// ---------------------------------------------------------------------------------------------
// `RtpRouter.routeRtp` (webrtc/src/media/router.ts) hands every received packet's header
// extensions on as an object keyed by URI, made by `rtpHeaderExtensionsParser`: a `{ uri, value }`
// object per extension, the array of them and two closures per packet, reduced into that object.
// `parseExtensions` makes the same object (same keys, in the same order, same values) in one loop.
// `routeRtp` is an instance field, and the parser it calls is bound inside werift's bundle
// (replacing the export would not reach it), so `fastRouting` replaces each connection's
// `routeRtp` with the same steps around `parseExtensions`.

const EXT = RTP_EXTENSION_URI;

interface HeaderExtension {
  id: number;
  payload: Buffer;
}

/** `rtpHeaderExtensionsParser`'s object, without its per-extension objects, array and closures. */
export function parseExtensions(
  extensions: readonly HeaderExtension[],
  extIdUriMap: Record<number, string>,
): Record<string, unknown> {
  const parsed: Record<string, unknown> = {};
  for (let i = 0; i < extensions.length; i++) {
    const extension = extensions[i]!;
    const uri = extIdUriMap[extension.id];
    if (!uri) {
      parsed.unknown = extension.payload;
      continue;
    }
    switch (uri) {
      case EXT.sdesMid:
      case EXT.sdesRTPStreamID:
      case EXT.repairedRtpStreamId:
        parsed[uri] = deserializeString(extension.payload);
        break;
      case EXT.transportWideCC:
        parsed[uri] = deserializeUint16BE(extension.payload);
        break;
      case EXT.absSendTime:
        parsed[uri] = deserializeAbsSendTime(extension.payload);
        break;
      case EXT.audioLevelIndication:
        parsed[uri] = deserializeAudioLevelIndication(extension.payload);
        break;
      case EXT.videoOrientation:
        parsed[uri] = deserializeVideoOrientation(extension.payload);
        break;
      default:
        parsed[uri] = extension.payload;
    }
  }
  return parsed;
}

/** werift's router, as far as `routeRtp` reads it. */
interface RouterInternals {
  extIdUriMap: Record<number, string>;
  ssrcTable: Record<number, RoutedReceiver | undefined>;
  ridTable: Record<string, RoutedReceiver | undefined>;
  registerRtpReceiver: (receiver: RoutedReceiver, ssrc: number) => void;
  routeRtp: (packet: RtpPacket) => void;
  __fastRouting?: boolean;
}

interface RoutedReceiver {
  latestRid?: string;
  sdesMid?: string;
  latestRepairedRid?: string;
  trackBySSRC: Record<number, unknown>;
  handleRtpByRid: (packet: RtpPacket, rid: string, extensions: Record<string, unknown>) => void;
  handleRtpBySsrc: (packet: RtpPacket, extensions: Record<string, unknown>) => void;
}

let fastRoutingOn = false;

function checkRouterShape(): string | undefined {
  const router = new RtpRouter() as unknown as RouterInternals;
  return (
    sourceHas(router.routeRtp, [
      'rtpHeaderExtensionsParser(',
      'this.extIdUriMap',
      'let rtpReceiver = this.ssrcTable[packet.header.ssrc]',
      'extensions[RTP_EXTENSION_URI.sdesRTPStreamID]',
      'rtpReceiver = this.ridTable[rid]',
      'rtpReceiver.latestRid = rid',
      'rtpReceiver.handleRtpByRid(packet, rid, extensions)',
      'rtpReceiver.handleRtpBySsrc(packet, extensions)',
      'Object.values(this.ridTable).filter((r) => r instanceof RTCRtpReceiver).find((r) => r.trackBySSRC[packet.header.ssrc])',
      'this.registerRtpReceiver(rtpReceiver, packet.header.ssrc)',
      'extensions[RTP_EXTENSION_URI.sdesMid]',
      'rtpReceiver.sdesMid = sdesMid',
      'extensions[RTP_EXTENSION_URI.repairedRtpStreamId]',
      'rtpReceiver.latestRepairedRid = repairedRid',
    ]) ??
    sourceHas(rtpHeaderExtensionsParser, [
      'return { uri: "unknown", value: extension.payload }',
      'deserializeString(extension.payload)',
      'deserializeUint16BE(extension.payload)',
      'deserializeAbsSendTime(extension.payload)',
      'deserializeAudioLevelIndication(extension.payload)',
      'deserializeVideoOrientation(extension.payload)',
      'return { uri, value: extension.payload }',
      'acc[cur.uri] = cur.value',
    ])
  );
}

/**
 * Replaces `pc`'s `routeRtp` with werift's steps around `parseExtensions`. Call it before anything
 * wraps `routeRtp` (`tapIncomingRtp`, `routeSimulcastRtx`): they call whatever it was when they
 * wrapped it. Idempotent; nothing when the patch is off.
 */
export function fastRouting(pc: unknown): void {
  if (!fastRoutingOn) return;
  const router = (pc as { router?: RouterInternals }).router;
  if (!router || router.__fastRouting) return;
  router.__fastRouting = true;
  router.routeRtp = (packet) => {
    const ssrc = packet.header.ssrc;
    const extensions = parseExtensions(packet.header.extensions, router.extIdUriMap);
    let receiver = router.ssrcTable[ssrc];
    const rid = extensions[EXT.sdesRTPStreamID];
    if (typeof rid === 'string') {
      receiver = router.ridTable[rid]!; // werift throws here for a rid it does not know, too
      receiver.latestRid = rid;
      receiver.handleRtpByRid(packet, rid, extensions);
    } else if (receiver) {
      receiver.handleRtpBySsrc(packet, extensions);
    } else {
      // a simulcast layer whose SSRC the receiver learned after sending a report
      receiver = Object.values(router.ridTable).find(
        (r) => r instanceof RTCRtpReceiver && r.trackBySSRC[ssrc],
      );
      if (receiver) {
        router.registerRtpReceiver(receiver, ssrc);
        receiver.handleRtpBySsrc(packet, extensions);
      }
    }
    if (!receiver) return;
    const mid = extensions[EXT.sdesMid];
    if (typeof mid === 'string') receiver.sdesMid = mid;
    const repaired = extensions[EXT.repairedRtpStreamId];
    if (typeof repaired === 'string') receiver.latestRepairedRid = repaired;
  };
}

// ---------------------------------------------------------------------------------------------
// `RTCRtpCodecParameters.name` (webrtc/src/media/parameters.ts) splits the MIME type on every
// read; werift's receiver reads it twice per packet (`handleRTP`: is it RTX, is it RED). The same
// value from a cache by MIME type (a handful of distinct strings per process).

const codecNames = new Map<string, string | undefined>();

function patchCodecName(): void {
  const proto = RTCRtpCodecParameters.prototype as unknown as { mimeType: string };
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'name');
  patch(
    'RTCRtpCodecParameters.name',
    'RTCRtpCodecParameters.name: mimeType.split("/") on every read, twice per received packet',
    () => sourceHas(descriptor?.get, ['this.mimeType.split("/")[1]']),
    () => {
      Object.defineProperty(proto, 'name', {
        ...descriptor,
        get(this: { mimeType: string }) {
          const mimeType = this.mimeType;
          let name = codecNames.get(mimeType);
          if (name === undefined && !codecNames.has(mimeType)) {
            name = mimeType.split('/')[1];
            if (codecNames.size < 256) codecNames.set(mimeType, name);
          }
          return name;
        },
      });
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The send chain: `RTCRtpSender.sendRtp` (webrtc/src/media/rtpSender.ts) → `RTCDtlsTransport.
// sendRtp` (webrtc/src/transport/dtls.ts) → ICE `Connection.send` (ice/src/ice.ts) →
// `StunProtocol.sendData` → `UdpTransport.send` (common/src/transport.ts): four async functions,
// none of which waits for anything when the peer's address is an IP literal. Per packet the
// sender also formats `ntpTime()` through a string and a BigInt, copies, maps, filters and sorts
// the header-extension list, and files a BWE record that only transport-cc feedback reads.
//
// `sendRtpNow` does the same synchronously: rewrites the header (SSRC, payload type, offsets,
// extensions in id order), keeps the packet in werift's 128-entry cache, encrypts and hands the
// datagram to the socket. The NTP time comes from integer maths (werift's writes the decimal
// digits of the fraction as binary, see `fixSenderReportClock`), so abs-send-time is now correct.
// Anything unusual (RED, a Buffer instead of a packet, a TURN relay) takes werift's own path.

interface SenderExt {
  id: number;
  uri: string;
}

interface SenderInternals {
  dtlsTransport: DtlsInternals;
  codec?: { payloadType: number };
  ssrc: number;
  timestampOffset: number;
  seqOffset: number;
  timestamp: number;
  sequenceNumber: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  octetCount: number;
  headerBytesSent: number;
  packetCount: number;
  rtpCache: (RtpPacket | undefined)[];
  redRedundantPayloadType?: number;
  headerExtensions: SenderExt[];
  mid?: string;
  rtpStreamId?: string;
  repairedRtpStreamId?: string;
  rtcpRunning?: boolean;
  stopped?: boolean;
  runRtcp: () => Promise<void>;
  senderBWE: { rtpPacketSent: (info: object) => void };
  __srClockFixed?: boolean;
  __extPlan?: ExtensionPlan;
  /** `interceptNacks` answers this sender's NACKs: werift's `rtpCache` is never read. */
  __nacksIntercepted?: boolean;
}

interface DtlsInternals {
  state: string;
  srtp: { encrypt: (payload: Buffer, header: RtpHeader) => Buffer };
  config: { debug?: { outboundPacketLoss?: number } };
  bytesSent: number;
  packetsSent: number;
  transportSequenceNumber: number;
  iceTransport: { connection: IceConnection };
  sendRtp: (payload: Buffer, header: RtpHeader) => Promise<number>;
}

interface CandidatePair extends DatagramTarget {
  protocol: unknown;
  remoteAddr: [string, number];
  packetsSent: number;
  bytesSent: number;
  /** The pair's remote host and port, read once (`remoteAddr` makes an array per call). */
  __host?: string;
  __port?: number;
  /** Whether `__host` is an IP literal. */
  __literal?: boolean;
}

interface IceConnection {
  nominated?: CandidatePair;
  /** While an ICE restart has nominated no pair: the pair to send on (`bridgeIceRestart`). */
  restartBridge?: CandidatePair;
  canSendApplicationData: () => boolean;
  send: (data: Buffer) => Promise<void>;
}

/** Per sender: the negotiated extensions, split into fixed payloads and per-packet ones. */
interface ExtensionPlan {
  source: SenderExt[];
  mid: string | undefined;
  rid: string | undefined;
  rrid: string | undefined;
  /** In negotiated order; `payload` undefined for per-packet ones (abs-send-time, transport-cc). */
  entries: { id: number; uri: string; payload: Buffer | undefined }[];
  absSendTime: boolean;
  transportCc: boolean;
}

const RTP_HISTORY_SIZE = 128;

function extensionPlan(s: SenderInternals): ExtensionPlan {
  const plan = s.__extPlan;
  if (
    plan &&
    plan.source === s.headerExtensions &&
    plan.mid === s.mid &&
    plan.rid === s.rtpStreamId &&
    plan.rrid === s.repairedRtpStreamId
  ) {
    return plan;
  }
  const entries: ExtensionPlan['entries'] = [];
  let absSendTime = false;
  let transportCc = false;
  for (const e of s.headerExtensions) {
    switch (e.uri) {
      case RTP_EXTENSION_URI.sdesMid:
        if (s.mid) entries.push({ id: e.id, uri: e.uri, payload: Buffer.from(s.mid) });
        break;
      case RTP_EXTENSION_URI.sdesRTPStreamID:
        if (s.rtpStreamId)
          entries.push({ id: e.id, uri: e.uri, payload: Buffer.from(s.rtpStreamId) });
        break;
      case RTP_EXTENSION_URI.repairedRtpStreamId:
        if (s.repairedRtpStreamId) {
          entries.push({ id: e.id, uri: e.uri, payload: Buffer.from(s.repairedRtpStreamId) });
        }
        break;
      case RTP_EXTENSION_URI.transportWideCC:
        transportCc = true;
        entries.push({ id: e.id, uri: e.uri, payload: undefined });
        break;
      case RTP_EXTENSION_URI.absSendTime:
        absSendTime = true;
        entries.push({ id: e.id, uri: e.uri, payload: undefined });
        break;
    }
  }
  const next: ExtensionPlan = {
    source: s.headerExtensions,
    mid: s.mid,
    rid: s.rtpStreamId,
    rrid: s.repairedRtpStreamId,
    entries,
    absSendTime,
    transportCc,
  };
  s.__extPlan = next;
  return next;
}

/** NTP time now: seconds since 1900 in the high word, binary fraction in the low word. */
export function ntpNow(): { seconds: number; fraction: number } {
  const ms = performance.timeOrigin + performance.now() + NTP_EPOCH_OFFSET_MS;
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.min(
    TWO_POW_32 - 1,
    Math.floor(((ms - seconds * 1000) / 1000) * TWO_POW_32),
  );
  return { seconds, fraction };
}

/** abs-send-time (6.18 fixed-point seconds, 24 bits) of an NTP time, as werift serialises it. */
export function absSendTimeBytes(seconds: number, fraction: number): Buffer {
  const value = ((seconds & 0x3f) << 18) | (fraction >>> 14);
  const buf = Buffer.allocUnsafe(3);
  buf.writeUIntBE(value & 0xffffff, 0, 3);
  return buf;
}

function buildExtensions(s: SenderInternals, header: RtpHeader): Extension[] {
  const plan = extensionPlan(s);
  const original = header.extensions;
  const out: Extension[] = [];
  let abs: Buffer | undefined;
  if (plan.absSendTime) {
    const ms = performance.timeOrigin + performance.now() + NTP_EPOCH_OFFSET_MS;
    const seconds = Math.floor(ms / 1000);
    const fraction = Math.min(
      TWO_POW_32 - 1,
      Math.floor(((ms - seconds * 1000) / 1000) * TWO_POW_32),
    );
    abs = absSendTimeBytes(seconds, fraction);
  }
  const entries = plan.entries;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    let payload = e.payload;
    if (payload === undefined) {
      if (e.uri === RTP_EXTENSION_URI.absSendTime) payload = abs!;
      else {
        const dtls = s.dtlsTransport;
        dtls.transportSequenceNumber = (dtls.transportSequenceNumber + 1) & 0xffff;
        payload = Buffer.allocUnsafe(2);
        payload.writeUInt16BE(dtls.transportSequenceNumber, 0);
      }
    }
    out.push({ id: e.id, payload });
  }
  // The packet's own extensions: a negotiated id takes their payload, others are kept.
  for (let i = 0; i < original.length; i++) {
    const ext = original[i]!;
    let found = -1;
    for (let j = 0; j < out.length; j++) {
      if (out[j]!.id === ext.id) {
        found = j;
        break;
      }
    }
    if (found >= 0) out[found] = { id: ext.id, payload: ext.payload };
    else out.push(ext);
  }
  // Stable insertion sort by id (a handful of entries), as werift's `sort`.
  for (let i = 1; i < out.length; i++) {
    const e = out[i]!;
    let j = i - 1;
    while (j >= 0 && out[j]!.id > e.id) {
      out[j + 1] = out[j]!;
      j--;
    }
    out[j + 1] = e;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// `dgram.Socket.send` to an address looks it up first, even an IP literal: `dns.lookup` answers
// an IP through `process.nextTick`, so every datagram cost a lookup, a tick, a callback and the
// tick queue's rejection bookkeeping (~6 % of what the node allocated at 25 calls × 2 viewers),
// and went out only at the end of the current callback. The node's sockets send to IP
// literals (`iceSendNow` checks): their lookup answers those at once, and passes anything else to
// the lookup Node set up. Node takes the same synchronous path for a connected socket.

interface DgramSocket extends DatagramSocket {
  /** Whether `replaceLookup` replaced this socket's lookup (false: it could not). */
  __lookupReplaced?: boolean;
}

/** Why a socket's lookup cannot be replaced on this Node, or undefined when it can. */
export function lookupShapeChanged(): string | undefined {
  const probe = createSocket('udp4');
  try {
    const lookup = dgramState(probe)?.handle?.lookup;
    return typeof lookup === 'function'
      ? undefined
      : 'dgram sockets no longer keep their lookup at [kStateSymbol].handle.lookup';
  } finally {
    probe.close();
  }
}

let syncLookup = false;
/** Set by the 'native UDP send' patch: `iceSendNow` sends through the addon. */
let directUdp = false;

/** Every werift UDP socket is read through the addon once it is bound (`nativeUdpRecv.ts`). */
function patchUdpTransportInit(): void {
  const proto = UdpTransport.prototype as unknown as {
    init: (this: UdpTransport) => Promise<void>;
  };
  const init = proto.init;
  proto.init = async function initAndReceiveDirectly(this: UdpTransport) {
    await init.call(this);
    receiveDirectly(this.socket);
  };
}

/** Replaces a socket's lookup with one that answers IP literals at once. */
export function replaceLookup(socket: DgramSocket): boolean {
  const handle = syncLookup ? dgramState(socket)?.handle : undefined;
  const original = handle?.lookup;
  if (!handle || typeof original !== 'function') {
    socket.__lookupReplaced = false;
    return false;
  }
  let last = '';
  handle.lookup = (address, callback) => {
    if (address !== last) {
      if (isIP(address) === 0) {
        original(address, callback);
        return;
      }
      last = address;
    }
    callback(null, address);
  };
  socket.__lookupReplaced = true;
  return true;
}

/**
 * ICE send without promises: straight to the UDP socket for a host/srflx pair. A `borrowed`
 * `data` is reused once this returns, so what sends it later gets a copy.
 */
function iceSendNow(connection: IceConnection, data: Buffer, borrowed = false): void {
  if (!connection.canSendApplicationData()) return;
  const pair = (connection.nominated ?? connection.restartBridge)!;
  const protocol = pair.protocol as {
    transport?: { closed?: boolean; socket?: { send: (...a: unknown[]) => void } };
  };
  const transport = protocol.transport;
  let host = pair.__host;
  if (host === undefined) {
    // a pair's remote candidate never changes: read and parse it once, not per packet
    const addr = pair.remoteAddr;
    host = pair.__host = addr[0];
    pair.__port = addr[1];
    pair.__literal = isIP(host) !== 0;
  }
  if (
    !(protocol instanceof StunProtocol) ||
    !(transport instanceof UdpTransport) ||
    !transport.socket ||
    !pair.__literal
  ) {
    connection.send(borrowed ? Buffer.from(data) : data).catch(ignore);
    return;
  }
  if (transport.closed) return;
  const socket = transport.socket as DgramSocket;
  if (socket.__lookupReplaced === undefined) replaceLookup(socket);
  try {
    sendDatagram(
      socket,
      data,
      pair.__port!,
      host,
      pair,
      directUdp ? nativeUdp : undefined,
      borrowed,
    );
  } catch {
    return; // werift's chain swallows send errors and then does not count the packet
  }
  pair.packetsSent++;
  pair.bytesSent += data.length;
}

/**
 * `RTCDtlsTransport.sendRtp` without the promise: the SRTP packet, undefined when it failed. The
 * packet is scratch memory, good until the next send.
 */
function dtlsSendRtpNow(
  dtls: DtlsInternals,
  payload: Buffer,
  header: RtpHeader,
): Buffer | undefined {
  try {
    let enc: Buffer;
    sealIntoScratch = true;
    try {
      enc = dtls.srtp.encrypt(payload, header);
    } finally {
      sealIntoScratch = false;
    }
    const loss = dtls.config.debug?.outboundPacketLoss;
    if (loss && loss / 100 < Math.random()) return enc;
    dtls.bytesSent += enc.length;
    dtls.packetsSent++;
    iceSendNow(dtls.iceTransport.connection, enc, true);
    return enc;
  } catch {
    return undefined;
  }
}

/**
 * True when `sendRtpNow(sender, packet)` keeps no reference to `packet` (or its header) once it
 * returns: it sends synchronously, and werift's own retransmit cache is not filled because
 * `interceptNacks` answers this sender's NACKs. The caller may then reuse one packet object for
 * every send. False whenever werift's own (asynchronous) `sendRtp` would run.
 */
export function sendRtpKeepsNothing(sender: RTCRtpSender): boolean {
  const s = sender as unknown as SenderInternals;
  return (
    weriftOriginals.senderSendRtp !== undefined &&
    s.__nacksIntercepted === true &&
    !s.redRedundantPayloadType
  );
}

/**
 * Sends `rtp` on `sender` now, as werift's `sendRtp` would (the packet is rewritten, and kept in
 * the sender's cache unless `interceptNacks` answers its NACKs), without creating a promise.
 * Throws what werift's would reject with.
 *
 * Returns the SRTP packet sent (its RTP header is in the clear at its start), or undefined when
 * nothing was sent or werift's own `sendRtp` took the packet (asynchronously). The packet is
 * scratch memory that the next send overwrites: copy what must be kept.
 */
export function sendRtpNow(sender: RTCRtpSender, rtp: RtpPacket): Buffer | undefined {
  const s = sender as unknown as SenderInternals;
  const original = weriftOriginals.senderSendRtp;
  if (!original) {
    sender.sendRtp(rtp).catch(ignore);
    return;
  }
  const dtls = s.dtlsTransport;
  if (dtls.state !== 'connected' || !s.codec) return;
  if (s.redRedundantPayloadType || Buffer.isBuffer(rtp)) {
    original.call(sender, rtp).catch(ignore);
    return;
  }
  const header = rtp.header;
  const payload = rtp.payload;
  header.ssrc = s.ssrc;
  header.payloadType = s.codec.payloadType;
  header.timestamp = (header.timestamp + s.timestampOffset) >>> 0;
  header.sequenceNumber = (header.sequenceNumber + s.seqOffset) & 0xffff;
  s.timestamp = header.timestamp;
  s.sequenceNumber = header.sequenceNumber;
  header.extensions = buildExtensions(s, header);
  if (s.__srClockFixed) {
    // `fixSenderReportClock`'s setter records the instant and ignores the value.
    s.ntpTimestamp = 0n;
  } else {
    const { seconds, fraction } = ntpNow();
    s.ntpTimestamp = (BigInt(seconds) << 32n) | BigInt(fraction);
  }
  s.rtpTimestamp = header.timestamp;
  s.octetCount += payload.length;
  s.headerBytesSent += header.serializeSize;
  s.packetCount = (s.packetCount + 1) >>> 0;
  // Kept only for werift's own NACK answer: a packet held past the young generation costs a
  // full collection later.
  if (!s.__nacksIntercepted) s.rtpCache[header.sequenceNumber % RTP_HISTORY_SIZE] = rtp;
  const sent = dtlsSendRtpNow(dtls, payload, header);
  if (!s.rtcpRunning && !s.stopped) s.runRtcp().catch(ignore);
  if (s.__extPlan?.transportCc) {
    // Only transport-cc feedback reads these records (werift's sender BWE).
    const millitime = Date.now();
    s.senderBWE.rtpPacketSent({
      wideSeq: dtls.transportSequenceNumber,
      size: sent?.length ?? 0,
      sendingAtMs: millitime,
      sentAtMs: millitime,
    });
  }
  return sent;
}

function patchSenderSendRtp(): void {
  const proto = RTCRtpSender.prototype as unknown as {
    sendRtp: (this: RTCRtpSender, rtp: RtpPacket | Buffer) => Promise<void>;
  };
  patch(
    'RTCRtpSender.sendRtp',
    'RTCRtpSender.sendRtp → RTCDtlsTransport.sendRtp → Connection.send → StunProtocol.sendData → UdpTransport.send: four async functions, ntpTime() strings, extension arrays',
    () =>
      sourceHas(proto.sendRtp, [
        'header.ssrc = this.ssrc',
        'header.payloadType = this.codec.payloadType',
        'uint32Add(header.timestamp, this.timestampOffset)',
        'uint16Add(header.sequenceNumber, this.seqOffset)',
        'const ntpTimestamp = ntpTime()',
        'this.headerExtensions.map',
        'header.extensions.sort((a, b) => a.id - b.id)',
        'this.rtpCache[header.sequenceNumber % RTP_HISTORY_SIZE] = rtp',
        'this.redRedundantPayloadType',
        'await this.dtlsTransport.sendRtp(rtpPayload, header)',
        'this.senderBWE.rtpPacketSent(sentInfo)',
      ]) ??
      sourceHas(RTCDtlsTransport.prototype.sendRtp, [
        'this.srtp.encrypt(payload, header)',
        'outboundPacketLoss',
        'this.bytesSent += enc.length',
        'this.iceTransport.connection.send(enc)',
      ]) ??
      sourceHas(Connection, [
        'send = async (data) =>',
        'if (!this.canSendApplicationData())',
        'await activePair.protocol.sendData(data, activePair.remoteAddr)',
        'activePair.packetsSent++',
      ]) ??
      sourceHas(StunProtocol.prototype.sendData, [
        'this.transport.closed',
        'this.transport.send',
      ]) ??
      sourceHas(UdpTransport, [
        'send = async (data, addr) =>',
        'net.isIP(addr[0])',
        'this.socket.send(data, addr[1], addr[0])',
      ]),
    () => {
      weriftOriginals.senderSendRtp = proto.sendRtp;
      proto.sendRtp = function sendRtp(this: RTCRtpSender, rtp) {
        if (Buffer.isBuffer(rtp)) return weriftOriginals.senderSendRtp!.call(this, rtp);
        try {
          sendRtpNow(this, rtp);
        } catch (err) {
          return Promise.reject(err);
        }
        return RESOLVED;
      };
    },
  );
}

// ---------------------------------------------------------------------------------------------
// werift's `Event.execute` (common/src/event.ts) runs the synchronous listeners, then starts an
// async IIFE for the `promiseStack` listeners, empty on the packet path: a promise and a closure
// per event per packet, four events per received packet. `execute` is an instance field, so it is
// replaced per event: same order, a throwing sync listener still throws to the emitter (and the
// async listeners then do not run), async listeners still run one after another with errors to
// `onerror`; only when there are none is no promise made.

interface WeriftEvent {
  ended: boolean;
  event: {
    stack: { execute: (...args: unknown[]) => unknown }[];
    promiseStack: { execute: (...args: unknown[]) => Promise<unknown> }[];
  };
  onerror: (e: unknown) => void;
  execute: (...args: unknown[]) => void;
  __fast?: boolean;
}

function isWeriftEvent(value: unknown): value is WeriftEvent {
  const e = value as WeriftEvent | undefined;
  return (
    typeof e?.execute === 'function' &&
    Array.isArray(e.event?.stack) &&
    Array.isArray(e.event?.promiseStack) &&
    typeof e.ended === 'boolean'
  );
}

/** Replaces one werift `Event`'s `execute` (see above). False when `event` is not one. */
export function fastEvent(event: unknown): boolean {
  if (!isWeriftEvent(event)) return false;
  if (event.__fast) return true;
  const e = event;
  const runAsync = (args: unknown[]) => {
    const promiseStack = e.event.promiseStack;
    if (promiseStack.length === 0) return;
    (async () => {
      for (const item of promiseStack) await item.execute(...args);
    })().catch((err) => e.onerror(err));
  };
  // Per-packet events carry one or two arguments: passed on as they came, with no array per
  // event (a rest parameter made one for every packet at every hop).
  e.execute = function execute(a?: unknown, b?: unknown): void {
    if (e.ended) return;
    // biome-ignore lint/complexity/noArguments: the count only, so listeners get what was passed
    const n = arguments.length;
    if (n > 2) {
      // biome-ignore lint/complexity/noArguments: rare (no per-packet event has three)
      const args = Array.from(arguments);
      const stack = e.event.stack;
      for (let i = 0; i < stack.length; i++) stack[i]!.execute(...args);
      runAsync(args);
      return;
    }
    const stack = e.event.stack;
    for (let i = 0; i < stack.length; i++) {
      const listener = stack[i]!;
      if (n === 2) listener.execute(a, b);
      else if (n === 1) listener.execute(a);
      else listener.execute();
    }
    if (e.event.promiseStack.length > 0) runAsync(n === 2 ? [a, b] : n === 1 ? [a] : []);
  };
  e.__fast = true;
  return true;
}

/**
 * The per-packet events of a publisher's receive path: each ICE protocol's `onDataReceived`, the
 * ICE connection's `onData`, the DTLS transport's `onRtp`, the receiver's `onRtp` and the track's
 * `onReceiveRtp`. Idempotent; protocols added later (an ICE restart) are caught on the next call.
 */
export function fastReceivePath(receiver: RTCRtpReceiver, track?: unknown): void {
  if (disabled || skipped.has('Event.execute')) return;
  const r = receiver as unknown as {
    onRtp?: unknown;
    dtlsTransport?: {
      onRtp?: unknown;
      iceTransport?: { connection?: { onData?: unknown; protocols?: unknown[] } };
    };
  };
  fastEvent(r.onRtp);
  fastEvent((track as { onReceiveRtp?: unknown } | undefined)?.onReceiveRtp);
  const dtls = r.dtlsTransport;
  fastEvent(dtls?.onRtp);
  const connection = dtls?.iceTransport?.connection;
  fastEvent(connection?.onData);
  for (const protocol of connection?.protocols ?? []) {
    fastEvent((protocol as { onDataReceived?: unknown }).onDataReceived);
  }
}

function connectionProto(): { ensureProtocol: (this: unknown, protocol: unknown) => void } {
  return Connection.prototype as unknown as {
    ensureProtocol: (this: unknown, protocol: unknown) => void;
  };
}

/**
 * Every ICE socket of every peer connection (publishers' and subscribers' legs, and those an ICE
 * restart adds) hands each datagram it receives to its protocol's `onDataReceived`, and from
 * there to the connection's `onData`: both fastened as werift wires the protocol up, before its
 * first datagram.
 */
function patchEnsureProtocol(): void {
  const proto = connectionProto();
  const original = proto.ensureProtocol;
  weriftOriginals.ensureProtocol = original;
  proto.ensureProtocol = function ensureProtocol(this: unknown, protocol: unknown) {
    original.call(this, protocol);
    fastEvent((protocol as { onDataReceived?: unknown } | undefined)?.onDataReceived);
    fastEvent((this as { onData?: unknown } | undefined)?.onData);
  };
}

/** Checks werift's `Event` still has the shape `fastEvent` replaces (for the status list). */
export function checkEventShape(make: () => unknown): string | undefined {
  const e = make();
  if (!isWeriftEvent(e)) return 'Event no longer has execute/event.stack/event.promiseStack/ended';
  return sourceHas(e.execute, ['promiseStack', 'item.execute(...args)', 'this.onerror(e)']);
}
