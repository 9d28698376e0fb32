/**
 * The werift hot-path patches (src/node/media/weriftHotPath.ts) against werift's own functions:
 * the same packets in, the same bytes and state out.
 */

import { createHook } from 'node:async_hooks';
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Connection,
  Event,
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RTCDtlsTransport,
  RTCRtpCodecParameters,
  RTCRtpReceiver,
  RTCRtpSender,
  RTP_EXTENSION_URI,
  RtpHeader,
  RtpPacket,
  RtpRouter,
  rtpHeaderExtensionsParser,
  SrtpAuthenticationError,
  SrtpSession,
  StunProtocol,
  serializeAbsSendTime,
  UdpTransport,
} from 'werift';
import { forwardTiming, SAMPLE_EVERY } from '../../src/node/media/forwardTiming.ts';
import { udpSendCounts } from '../../src/node/media/nativeUdp.ts';
import { udpRecvCounts } from '../../src/node/media/nativeUdpRecv.ts';
import { ntpFromPerformance } from '../../src/node/media/werift.ts';
import {
  absSendTimeBytes,
  copyPacketInto,
  type DtlsReceiveInternals,
  decryptRtpPacket,
  fastEvent,
  fastRouting,
  hotPathStatus,
  isGcmContext,
  ntpNow,
  parseExtensions,
  receiveSrtp,
  replaceLookup,
  reusablePacket,
  sendRtpKeepsNothing,
  sendRtpNow,
  setNativeGcm,
  weriftOriginals,
  writeHeader,
} from '../../src/node/media/weriftHotPath.ts';
import { seededRandom } from '../helpers/random.ts';

function header(props: Partial<RtpHeader>): RtpHeader {
  return new RtpHeader({ version: 2, ...props });
}

/** SRTP master keys of one side, and the other side's (the same, swapped). */
const SRTP_KEYS = {
  localMasterKey: Buffer.alloc(16, 0x11),
  localMasterSalt: Buffer.alloc(12, 0x22),
  remoteMasterKey: Buffer.alloc(16, 0x33),
  remoteMasterSalt: Buffer.alloc(12, 0x44),
};
const MIRRORED_KEYS: typeof SRTP_KEYS = {
  localMasterKey: SRTP_KEYS.remoteMasterKey,
  localMasterSalt: SRTP_KEYS.remoteMasterSalt,
  remoteMasterKey: SRTP_KEYS.localMasterKey,
  remoteMasterSalt: SRTP_KEYS.localMasterSalt,
};

function srtpSession(keys: typeof SRTP_KEYS, profile: number = ProtectionProfileAeadAes128Gcm) {
  return new SrtpSession({ keys, profile } as ConstructorParameters<typeof SrtpSession>[0]);
}

/** Packets covering the header's shapes: CSRCs, padding, one- and two-byte extensions. */
function samplePackets(): Buffer[] {
  const payload = Buffer.from('0123456789abcdef0123456789', 'ascii');
  const ext = (id: number, n: number) => ({ id, payload: Buffer.alloc(n, id) });
  const headers: Partial<RtpHeader>[] = [
    {},
    { marker: true, payloadType: 96, sequenceNumber: 65535, timestamp: 4294967295, ssrc: 1 },
    { csrc: [1, 2, 3], payloadType: 127, sequenceNumber: 7 },
    { csrc: [0xffffffff], marker: true },
    { extensions: [ext(1, 1)] },
    { extensions: [ext(1, 1), ext(3, 3), ext(4, 2), ext(14, 16)] },
    { extensionProfile: 0x1000, extensions: [ext(1, 1), ext(200, 5), ext(255, 0)] },
    { csrc: [9, 8], extensions: [ext(2, 4)], marker: true, payloadType: 111 },
  ];
  const out: Buffer[] = [];
  for (const h of headers) {
    const packet = new RtpPacket(header(h), payload);
    out.push(packet.serialize());
    // padded variant: the last byte counts the padding
    const padded = Buffer.concat([packet.serialize(), Buffer.from([0, 0, 3])]);
    padded[0]! |= 0x20;
    out.push(padded);
  }
  return out;
}

function parseBoth(buf: Buffer): [unknown, unknown] {
  const run = (f: () => RtpHeader) => {
    try {
      return f();
    } catch (err) {
      return `throws ${(err as Error).name}`;
    }
  };
  return [
    run(() => RtpHeader.deSerialize(buf)),
    run(() => weriftOriginals.rtpHeaderDeSerialize!(buf)),
  ];
}

describe('werift hot-path patches', () => {
  it('are all applied to this werift (a changed shape after an upgrade fails here)', () => {
    const notApplied = hotPathStatus().filter((p) => !p.applied);
    expect(notApplied).toEqual([]);
    expect(hotPathStatus().map((p) => p.name)).toEqual([
      'RtpHeader.deSerialize',
      'RtpPacket.clone',
      'RTCRtpSender.runRtcp',
      'RTCRtpReceiver.runRtcp',
      'native AES-GCM',
      'CipherAesGcm.encryptRtp',
      'RTCDtlsTransport.startSrtp',
      'RTCRtpCodecParameters.name',
      'RTCRtpReceiver.codecArray',
      'RtpRouter.routeRtp',
      'RTCRtpSender.sendRtp',
      'dgram lookup',
      'native UDP send',
      'native UDP receive',
      'Event.execute',
    ]);
  });

  describe('RtpRouter.routeRtp', () => {
    const U = RTP_EXTENSION_URI;
    const MAP: Record<number, string> = {
      1: U.sdesMid,
      2: U.sdesRTPStreamID,
      3: U.repairedRtpStreamId,
      4: U.transportWideCC,
      5: U.absSendTime,
      6: U.audioLevelIndication,
      7: U.videoOrientation,
      8: 'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay',
    };
    const ext = (id: number, ...bytes: number[]) => ({ id, payload: Buffer.from(bytes) });

    it("makes werift's extension object: the same keys, in the same order, and values", () => {
      const lists = [
        [],
        [ext(1, 0x30), ext(4, 0x01, 0x02)],
        [ext(2, 0x68), ext(3, 0x6c), ext(5, 1, 2, 3), ext(6, 0x85), ext(7, 0x01)],
        [ext(8, 0, 1, 2), ext(9, 7), ext(1, 0x61, 0x62)],
        [ext(4, 0xff, 0xff), ext(4, 0, 1), ext(12, 1), ext(13, 2)], // repeats: the last wins
        [ext(7, 0x0b), ext(6, 0x7f), ext(5, 0xff, 0xff, 0xff), ext(2, 0x71, 0x72, 0x73)],
      ];
      for (const list of lists) {
        const ours = parseExtensions(list, MAP);
        const werifts = rtpHeaderExtensionsParser(list, MAP);
        expect(ours).toEqual(werifts);
        expect(Object.keys(ours)).toEqual(Object.keys(werifts));
      }
    });

    /** A router with werift's routeRtp or ours, and receivers that record what they are handed. */
    function routed(fast: boolean) {
      const router = new RtpRouter() as unknown as {
        extIdUriMap: Record<number, string>;
        ssrcTable: Record<number, unknown>;
        ridTable: Record<string, unknown>;
        routeRtp: (p: RtpPacket) => void;
      };
      router.extIdUriMap = MAP;
      if (fast) fastRouting({ router });
      const calls: unknown[][] = [];
      const receiver = (name: string, base: object = {}) =>
        Object.assign(base, {
          trackBySSRC: {} as Record<number, unknown>,
          handleRtpBySsrc: (p: RtpPacket, e: object) =>
            calls.push([name, 'ssrc', p.header.ssrc, e]),
          handleRtpByRid: (p: RtpPacket, rid: string, e: object) =>
            calls.push([name, 'rid', p.header.ssrc, rid, e]),
        });
      const plain = receiver('plain');
      const layered = receiver('layered', Object.create(RTCRtpReceiver.prototype));
      layered.trackBySSRC[3000] = {};
      router.ssrcTable[1000] = plain;
      router.ridTable.h = layered;
      const packets = [
        [1000, [ext(1, 0x30), ext(4, 0, 9)]], // by SSRC, with a mid
        [2000, [ext(2, 0x68), ext(3, 0x6c)]], // by rid, with a repaired rid
        [3000, [ext(5, 1, 2, 3)]], // an SSRC only the layered receiver's tracks know
        [3000, [ext(6, 0x85)]], // now in the SSRC table
        [4000, [ext(7, 1)]], // nobody's
      ] as const;
      for (const [ssrc, extensions] of packets) {
        router.routeRtp(
          new RtpPacket(header({ ssrc, extensions: [...extensions] }), Buffer.alloc(2)),
        );
      }
      const fields = (r: Record<string, unknown>) => [r.latestRid, r.sdesMid, r.latestRepairedRid];
      return {
        calls,
        fields: [fields(plain), fields(layered)],
        learned: router.ssrcTable[3000] === layered,
        replaced: router.routeRtp,
      };
    }

    it("routes each packet as werift's routeRtp does, with the same extension objects", () => {
      const ours = routed(true);
      const werifts = routed(false);
      expect(ours.replaced).not.toBe(werifts.replaced);
      expect(ours.calls.length).toBe(4);
      expect(ours.calls).toEqual(werifts.calls);
      expect(ours.fields).toEqual(werifts.fields);
      expect(ours.fields[0]).toEqual([undefined, '0', undefined]);
      expect(ours.fields[1]).toEqual(['h', undefined, 'l']);
      expect(ours.learned).toBe(true);
      expect(werifts.learned).toBe(true);
    });
  });

  it("keeps a receiver's sorted codecs until its codecs change, as werift sorts them", () => {
    const codec = (payloadType: number, mimeType: string, nack: boolean) =>
      new RTCRtpCodecParameters({
        payloadType,
        mimeType,
        clockRate: 90_000,
        rtcpFeedback: nack ? [{ type: 'nack' }] : [],
      });
    // a receiver as werift's code sees it: its prototype, its codecs and RTX table
    const receiver = Object.assign(Object.create(RTCRtpReceiver.prototype), {
      codecs: {},
      ssrcByRtx: {},
    }) as {
      codecs: object;
      codecArray: RTCRtpCodecParameters[];
      nackEnabled: unknown;
      prepareReceive: RTCRtpReceiver['prepareReceive'];
    };
    const original = Object.getOwnPropertyDescriptor(RTCRtpReceiver.prototype, 'codecArray')!;
    expect(receiver.codecArray).toEqual([]);
    expect(receiver.nackEnabled).toBeUndefined();
    receiver.prepareReceive({
      codecs: [codec(100, 'video/VP8', false), codec(96, 'video/VP8', true)],
      encodings: [],
    } as never);
    const first = receiver.codecArray;
    expect(first.map((c) => c.payloadType)).toEqual([96, 100]);
    expect(receiver.nackEnabled).toEqual({ type: 'nack' });
    // read per packet: the same array, not a new sorted one
    expect(receiver.codecArray).toBe(first);
    receiver.prepareReceive({ codecs: [codec(35, 'video/H264', false)], encodings: [] } as never);
    expect(receiver.codecArray.map((c) => c.payloadType)).toEqual([35, 96, 100]);
    expect(receiver.nackEnabled).toBeUndefined();
    // a codecs object replaced outright is noticed too
    receiver.codecs = { 97: codec(97, 'video/VP8', true) };
    expect(receiver.codecArray.map((c) => c.payloadType)).toEqual([97]);
    expect(original.get).toBeTypeOf('function');
  });

  it('parses RTP headers field for field as werift does, including malformed ones', () => {
    for (const buf of samplePackets()) {
      const [patched, original] = parseBoth(buf);
      expect(patched).toBeInstanceOf(RtpHeader);
      expect(patched).toEqual(original);
    }
    // Random bytes with version 2 and the extension bit often set: headers cut short, extension
    // lengths past the end, zero padding bytes, id 15, unknown profiles.
    const random = seededRandom(42);
    let parsed = 0;
    for (let n = 0; n < 5000; n++) {
      const buf = Buffer.alloc(12 + Math.floor(random() * 40));
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(random() * 256);
      buf[0] = (buf[0]! & 0x3f) | 0x80;
      if (random() < 0.6) buf[0]! |= 0x10;
      if (random() < 0.5) buf[0]! &= 0xf1; // few CSRCs
      const profile = random();
      const at = 12 + 4 * (buf[0]! & 0x0f);
      if (at + 4 <= buf.length && profile < 0.7) {
        buf.writeUInt16BE(profile < 0.4 ? 0xbede : 0x1000, at);
        buf.writeUInt16BE(Math.floor(random() * 4), at + 2);
      }
      const [patched, original] = parseBoth(buf);
      expect(patched).toEqual(original);
      if (typeof patched !== 'string') parsed++;
    }
    expect(parsed).toBeGreaterThan(2000);
    // RtpPacket.deSerialize goes through the patched parser.
    const packet = RtpPacket.deSerialize(samplePackets()[10]!);
    expect(packet.header.extensions.map((e) => e.id)).toEqual([1, 3, 4, 14]);
    expect(packet.payload.toString('ascii')).toBe('0123456789abcdef0123456789');
  });

  it('writes every byte of a header as werift serializes it, over whatever the buffer held', () => {
    const ext = (id: number, n: number) => ({ id, payload: Buffer.alloc(n, id) });
    const shapes: Partial<RtpHeader>[] = [
      ...samplePackets().map((b) => RtpHeader.deSerialize(b)),
      { extension: true }, // the bit without extensions: an empty block
      { extensions: [ext(5, 3)], version: 7, payloadType: 300 }, // out-of-range fields masked
      { extensionProfile: 0x1234 as RtpHeader['extensionProfile'], extensions: [ext(0, 8)] },
    ];
    for (const shape of shapes) {
      const ours = header({ ...shape });
      const theirs = header({ ...shape });
      const size = theirs.serializeSize;
      const expected = theirs.serialize(size);
      for (const fill of [0x00, 0xa5, 0xff]) {
        const buf = Buffer.alloc(size + 4, fill);
        expect(writeHeader(ours, buf)).toBe(size);
        expect(buf.subarray(0, size)).toEqual(expected);
        expect(buf.subarray(size)).toEqual(Buffer.alloc(4, fill)); // nothing past the header
        expect(ours.payloadOffset).toBe(theirs.payloadOffset);
        expect(ours.extension).toBe(theirs.extension);
      }
    }
    // the same refusals as werift's: values a field cannot hold
    for (const bad of [
      { timestamp: 2 ** 32 },
      { sequenceNumber: -1 },
      { csrc: [-1] },
      { extensions: [ext(16, 1)] }, // one-byte ids stop at 14
      { extensionProfile: 0x1234 as RtpHeader['extensionProfile'], extensions: [ext(0, 3)] },
    ]) {
      const buf = Buffer.alloc(64);
      const theirs = (() => {
        try {
          header(bad).serialize(64);
          return 'ok';
        } catch (err) {
          return (err as Error).name;
        }
      })();
      expect(theirs).not.toBe('ok');
      expect(() => writeHeader(header(bad), buf)).toThrow();
    }
  });

  it('clones a packet into a new header with the same fields and the same payload', () => {
    for (const buf of samplePackets()) {
      const packet = RtpPacket.deSerialize(buf);
      const copy = packet.clone();
      const reference = weriftOriginals.rtpPacketClone!.call(packet);
      expect(copy.header).not.toBe(packet.header);
      expect(copy.payload).toBe(packet.payload);
      expect(Object.keys(copy.header)).toEqual(Object.keys(reference.header));
      expect(copy.header).toEqual(reference.header);
      copy.header.sequenceNumber = (copy.header.sequenceNumber + 1) & 0xffff;
      expect(copy.header.sequenceNumber).not.toBe(packet.header.sequenceNumber);
      expect(copy.serialize().equals(reference.serialize())).toBe(false);
    }
  });

  // Each SRTP case twice: through the native addon (what the node runs) and through Node's
  // crypto (what it runs without the addon). Both must match werift byte for byte.
  for (const path of ['native', 'JavaScript'] as const) {
    describe(`SRTP through the ${path} AES-GCM path`, () => {
      beforeAll(() => {
        expect(setNativeGcm(path === 'native')).toBe(path === 'native');
      });
      afterAll(() => {
        setNativeGcm(true);
      });

      it('encrypts SRTP (AES-128-GCM) to the same bytes, which the other side decrypts', () => {
        const sender = srtpSession(SRTP_KEYS);
        const receiver = srtpSession(MIRRORED_KEYS);
        const cipher = (sender as unknown as { localContext: { cipher: object } }).localContext
          .cipher;
        const random = seededRandom(7);
        for (const buf of samplePackets()) {
          const packet = RtpPacket.deSerialize(buf);
          if (packet.header.padding) continue; // werift's encryptRtp does not carry padding
          for (const roc of [0, 1, 0xffff]) {
            const payload = Buffer.from(packet.payload.map(() => Math.floor(random() * 256)));
            const ours = (cipher as { encryptRtp: typeof weriftOriginals.gcmEncryptRtp })
              .encryptRtp!(packet.header, payload, roc);
            const theirs = weriftOriginals.gcmEncryptRtp!.call(cipher, packet.header, payload, roc);
            expect(ours.toString('hex')).toBe(theirs.toString('hex'));
            expect(ours.length).toBe(packet.header.serializeSize + payload.length + 16);
          }
        }
        const packet = new RtpPacket(
          header({ sequenceNumber: 10, ssrc: 99, payloadType: 96 }),
          Buffer.from('a returned item, seen live'),
        );
        const wire = sender.encrypt(packet.payload, packet.header);
        const plain = RtpPacket.deSerialize(receiver.decrypt(wire));
        expect(plain.payload.toString()).toBe('a returned item, seen live');
        expect(plain.header.sequenceNumber).toBe(10);
        // tampering is still caught
        wire[wire.length - 20]! ^= 1;
        expect(() => receiver.decrypt(wire)).toThrow();
      });

      describe('SRTP receive (AES-128-GCM)', () => {
        const contextOf = (s: SrtpSession) =>
          (s as unknown as { remoteContext: Parameters<typeof decryptRtpPacket>[0] }).remoteContext;

        /** Encrypted packets over two SSRCs: reordering across a sequence-number wrap, padding. */
        function wirePackets(sender: SrtpSession): { wire: Buffer; note: string }[] {
          const random = seededRandom(11);
          const out: { wire: Buffer; note: string }[] = [];
          const seqs = [
            65530, 65531, 65533, 65532, 65534, 65535, 0, 2, 1, 65535, 3, 4, 40000, 5, 6,
          ];
          for (const [i, seq] of seqs.entries()) {
            for (const ssrc of [0x1234, 0xfeedbeef]) {
              const padded = i % 4 === 3;
              const body = Buffer.from(
                Array.from({ length: 20 + i }, () => Math.floor(random() * 256)),
              );
              const payload = padded ? Buffer.concat([body, Buffer.from([0, 0, 3])]) : body;
              const h = header({
                sequenceNumber: seq,
                ssrc,
                payloadType: 96,
                timestamp: 1000 * i,
                marker: i % 2 === 0,
                padding: padded,
                extensions: i % 3 === 0 ? [{ id: 4, payload: Buffer.from([i]) }] : [],
              });
              out.push({ wire: sender.encrypt(payload, h), note: `${ssrc}/${seq}` });
            }
          }
          return out;
        }

        type Outcome = { header: RtpHeader; payload: string } | string;
        const viaWerift = (receiver: SrtpSession, wire: Buffer): Outcome => {
          try {
            const packet = RtpPacket.deSerialize(receiver.decrypt(wire));
            return { header: packet.header, payload: packet.payload.toString('hex') };
          } catch (err) {
            return `throws ${(err as Error).constructor.name}`;
          }
        };
        const viaPatch = (receiver: SrtpSession, wire: Buffer): Outcome => {
          try {
            // a copy: it decrypts in place, as into a datagram of its own
            const packet = decryptRtpPacket(contextOf(receiver), Buffer.from(wire));
            return { header: packet.header, payload: packet.payload.toString('hex') };
          } catch (err) {
            return `throws ${(err as Error).constructor.name}`;
          }
        };

        it('gives the packet and rollover state werift gives, and rejects what werift rejects', () => {
          const sender = srtpSession(SRTP_KEYS);
          const theirs = srtpSession(MIRRORED_KEYS);
          const ours = srtpSession(MIRRORED_KEYS);
          expect(isGcmContext(contextOf(ours))).toBe(true);
          const random = seededRandom(5);
          let decrypted = 0;
          let rejected = 0;
          for (const { wire, note } of wirePackets(sender)) {
            const variants = [wire];
            // a flipped bit in the header, the payload or the tag; cut short; a padding count
            // larger than the packet (the last byte is ciphertext, so it decrypts to garbage)
            const flipped = Buffer.from(wire);
            flipped[Math.floor(random() * flipped.length)]! ^= 1 << Math.floor(random() * 8);
            variants.push(flipped, wire.subarray(0, 20), wire.subarray(0, 27));
            for (const v of variants) {
              const a = viaWerift(theirs, v);
              const b = viaPatch(ours, v);
              expect(b, note).toEqual(a);
              expect(contextOf(ours).srtpSSRCStates, note).toEqual(
                contextOf(theirs).srtpSSRCStates,
              );
              if (typeof a === 'string') rejected++;
              else decrypted++;
            }
          }
          expect(decrypted).toBe(30);
          expect(rejected).toBe(90);
          // the wrap was seen: both sides moved the rollover counter on and back
          expect(contextOf(ours).srtpSSRCStates[0x1234]?.rolloverCounter).toBe(1);
          // padding is taken off the payload as werift does
          const padded = viaPatch(srtpSession(MIRRORED_KEYS), wirePackets(sender)[6]!.wire);
          expect(typeof padded !== 'string' && padded.header.paddingSize).toBe(3);
        });

        it('decrypts in the datagram itself, the header bytes left in front of the payload as werift leaves them (the FEC path reads them)', () => {
          const sender = srtpSession(SRTP_KEYS);
          const ours = srtpSession(MIRRORED_KEYS);
          const plain = srtpSession(MIRRORED_KEYS);
          for (const { wire, note } of wirePackets(sender)) {
            const datagram = Buffer.from(wire);
            const packet = decryptRtpPacket(contextOf(ours), datagram);
            // no memory of its own: the payload is the datagram's, now in the clear
            expect(packet.payload.buffer, note).toBe(datagram.buffer);
            const offset = packet.header.payloadOffset;
            expect(packet.payload.byteOffset - datagram.byteOffset, note).toBe(offset);
            expect(datagram.subarray(0, offset).equals(wire.subarray(0, offset)), note).toBe(true);
            const expected = RtpPacket.deSerialize(plain.decrypt(wire)).payload;
            expect(packet.payload.equals(expected), note).toBe(true);
          }
        });

        it('keeps the rollover state when a packet fails to authenticate', () => {
          const sender = srtpSession(SRTP_KEYS);
          const ours = srtpSession(MIRRORED_KEYS);
          const first = sender.encrypt(
            Buffer.from('first'),
            header({ sequenceNumber: 65535, ssrc: 7 }),
          );
          decryptRtpPacket(contextOf(ours), first);
          const before = structuredClone(contextOf(ours).srtpSSRCStates);
          // a forged packet just past the wrap would move the counter to 1 if it were believed
          const forged = sender.encrypt(
            Buffer.from('forged'),
            header({ sequenceNumber: 0, ssrc: 7 }),
          );
          forged[forged.length - 1]! ^= 0x80;
          expect(() => decryptRtpPacket(contextOf(ours), forged)).toThrow(SrtpAuthenticationError);
          expect(contextOf(ours).srtpSSRCStates).toEqual(before);
          const next = sender.encrypt(Buffer.from('next'), header({ sequenceNumber: 0, ssrc: 7 }));
          expect(decryptRtpPacket(contextOf(ours), next).payload.toString()).toBe('next');
          expect(contextOf(ours).srtpSSRCStates[7]?.rolloverCounter).toBe(1);
        });

        it("decrypts GCM RTP itself and hands SRTCP and the AES-CM profile to werift's listener", () => {
          const sender = srtpSession(SRTP_KEYS);
          const delivered: RtpPacket[] = [];
          const toWerift: Buffer[] = [];
          const dtls: DtlsReceiveInternals = {
            srtp: srtpSession(MIRRORED_KEYS) as unknown as DtlsReceiveInternals['srtp'],
            config: {},
            bytesReceived: 0,
            packetsReceived: 0,
            onRtp: { execute: (rtp) => delivered.push(rtp) },
          };
          const wire = sender.encrypt(Buffer.from('item'), header({ sequenceNumber: 1, ssrc: 3 }));
          const rtcp = Buffer.from([0x80, 200, 0, 6, ...Buffer.alloc(24)]);
          const tampered = Buffer.from(wire); // before `wire` is decrypted in place
          tampered[14]! ^= 1;
          receiveSrtp(dtls, wire, (d) => toWerift.push(d));
          receiveSrtp(dtls, rtcp, (d) => toWerift.push(d));
          receiveSrtp(dtls, tampered, (d) => toWerift.push(d));
          expect(delivered.map((p) => p.payload.toString())).toEqual(['item']);
          expect(toWerift).toEqual([rtcp]);
          expect(dtls.packetsReceived).toBe(2); // werift counts a packet before it authenticates
          expect(dtls.bytesReceived).toBe(wire.length * 2);

          const cmSender = srtpSession(SRTP_KEYS, ProtectionProfileAes128CmHmacSha1_80);
          const cm = {
            ...dtls,
            srtp: srtpSession(MIRRORED_KEYS, ProtectionProfileAes128CmHmacSha1_80),
          };
          expect(isGcmContext((cm.srtp as { remoteContext: unknown }).remoteContext)).toBe(false);
          const cmWire = cmSender.encrypt(
            Buffer.from('cm'),
            header({ sequenceNumber: 1, ssrc: 3 }),
          );
          receiveSrtp(cm as DtlsReceiveInternals, cmWire, (d) => toWerift.push(d));
          expect(toWerift.at(-1)).toBe(cmWire);
        });
      });
    });
  }

  it('names a codec as werift does, after its MIME type changes too', () => {
    for (const mimeType of [
      'video/VP8',
      'audio/opus',
      'video/rtx',
      'video/red',
      'odd',
      'a/b/c',
      '',
    ]) {
      const codec = new RTCRtpCodecParameters({ mimeType, clockRate: 90000 });
      expect(codec.name).toBe(mimeType.split('/')[1]);
      expect(codec.name).toBe(mimeType.split('/')[1]);
    }
    const codec = new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000 });
    expect(codec.name).toBe('VP8');
    codec.mimeType = 'video/H264';
    expect(codec.name).toBe('H264');
    expect(Object.keys(codec)).not.toContain('name');
  });

  it('states NTP time and abs-send-time with integer maths, as werift serialises them', () => {
    const before = ntpFromPerformance(performance.now());
    const { seconds, fraction } = ntpNow();
    const after = ntpFromPerformance(performance.now());
    const now = (BigInt(seconds) << 32n) | BigInt(fraction);
    expect(now >= before && now <= after).toBe(true);
    const random = seededRandom(3);
    for (let i = 0; i < 1000; i++) {
      const s = 3_900_000_000 + Math.floor(random() * 100_000_000);
      const f = Math.floor(random() * 4294967296);
      const ntp = (BigInt(s) << 32n) | BigInt(f);
      expect(absSendTimeBytes(s, f).equals(serializeAbsSendTime(ntp))).toBe(true);
    }
  });

  describe('RTCRtpSender.sendRtp', () => {
    const mid = RTP_EXTENSION_URI.sdesMid;
    const abs = RTP_EXTENSION_URI.absSendTime;
    const rid = RTP_EXTENSION_URI.sdesRTPStreamID;
    const ABS_ID = 3;

    /** A sender on a DTLS transport whose SRTP is plain RTP and whose ICE keeps the datagrams. */
    function senderWithWire(extensions: { id: number; uri: string }[]) {
      const wire: Buffer[] = [];
      const sender = new RTCRtpSender('video');
      const dtls = Object.create(RTCDtlsTransport.prototype) as Record<string, unknown>;
      Object.assign(dtls, {
        state: 'connected',
        config: {},
        bytesSent: 0,
        packetsSent: 0,
        transportSequenceNumber: 0,
        srtp: {
          encrypt: (payload: Buffer, h: RtpHeader) =>
            Buffer.concat([h.serialize(h.serializeSize), payload]),
        },
        iceTransport: {
          connection: {
            nominated: { protocol: {}, remoteAddr: ['127.0.0.1', 9], packetsSent: 0, bytesSent: 0 },
            canSendApplicationData: () => true,
            send: async (data: Buffer) => {
              wire.push(data);
            },
          },
        },
      });
      const s = sender as unknown as Record<string, unknown>;
      // werift's own DTLS sendRtp on the original path (the patched path never calls it)
      dtls.sendRtp = RTCDtlsTransport.prototype.sendRtp;
      s.dtlsTransport = dtls;
      s.codec = new RTCRtpCodecParameters({
        mimeType: 'video/VP8',
        clockRate: 90000,
        payloadType: 100,
      });
      s.headerExtensions = extensions;
      s.mid = '1';
      s.ssrc = 0x1234;
      s.seqOffset = 1000;
      s.timestampOffset = -5;
      s.rtcpRunning = true; // no RTCP loop in a unit test
      return { sender, wire, dtls, s };
    }

    /** abs-send-time differs by when it was sent (and werift's is wrong): compare it apart. */
    function withoutAbsSendTime(datagram: Buffer): { bytes: Buffer; abs?: number } {
      const h = RtpHeader.deSerialize(datagram);
      const ext = h.extensions.find((e) => e.id === ABS_ID);
      if (!ext) return { bytes: datagram };
      const value = ext.payload.readUIntBE(0, 3);
      ext.payload.fill(0);
      return { bytes: datagram, abs: value };
    }

    const inputs = () => [
      new RtpPacket(
        header({ sequenceNumber: 1, timestamp: 3, payloadType: 96, marker: true }),
        Buffer.from('one'),
      ),
      new RtpPacket(
        header({
          sequenceNumber: 65535,
          timestamp: 4294967295,
          payloadType: 96,
          extensions: [{ id: 7, payload: Buffer.from([1, 2]) }],
        }),
        Buffer.from('two'),
      ),
      new RtpPacket(
        header({
          sequenceNumber: 2,
          timestamp: 1,
          payloadType: 96,
          extensions: [{ id: 1, payload: Buffer.from('x') }],
        }),
        Buffer.from('three'),
      ),
    ];

    for (const [name, extensions] of [
      ['no extensions', []],
      ['mid', [{ id: 1, uri: mid }]],
      [
        'mid, abs-send-time and an unset rid, out of id order',
        [
          { id: ABS_ID, uri: abs },
          { id: 2, uri: rid },
          { id: 1, uri: mid },
        ],
      ],
    ] as const) {
      it(`sends what werift sends (${name}), synchronously`, async () => {
        const ours = senderWithWire([...extensions]);
        const theirs = senderWithWire([...extensions]);
        const sentOurs = inputs();
        const sentTheirs = inputs();
        const nowSeconds = Number(ntpFromPerformance(performance.now()) >> 32n);
        for (let i = 0; i < sentOurs.length; i++) {
          const sent = sendRtpNow(ours.sender, sentOurs[i]!);
          expect(ours.wire).toHaveLength(i + 1); // on the wire before sendRtpNow returned
          // and returned, for the retransmit history: the node's scratch memory, so what sends
          // later (here werift's asynchronous connection.send) was given a copy
          expect(sent).toEqual(ours.wire[i]);
          expect(sent).not.toBe(ours.wire[i]);
          await weriftOriginals.senderSendRtp!.call(theirs.sender, sentTheirs[i]!);
        }
        expect(theirs.wire).toHaveLength(sentTheirs.length);
        for (let i = 0; i < ours.wire.length; i++) {
          const a = withoutAbsSendTime(ours.wire[i]!);
          const b = withoutAbsSendTime(theirs.wire[i]!);
          expect(a.bytes.toString('hex')).toBe(b.bytes.toString('hex'));
          expect(a.abs === undefined).toBe(b.abs === undefined);
          if (a.abs !== undefined) {
            // 6.18 fixed point: the low 6 bits of the second and its fraction, correct to ~1 ms
            expect(a.abs >> 18).toBe(nowSeconds & 0x3f);
          }
        }
        for (const key of [
          'sequenceNumber',
          'timestamp',
          'octetCount',
          'packetCount',
          'headerBytesSent',
          'rtpTimestamp',
        ]) {
          expect(ours.s[key]).toBe(theirs.s[key]);
        }
        expect(ours.dtls.bytesSent).toBe(theirs.dtls.bytesSent);
        expect(ours.dtls.packetsSent).toBe(theirs.dtls.packetsSent);
        const cached = (x: typeof ours) =>
          (x.s.rtpCache as (RtpPacket | undefined)[]).flatMap((p) =>
            p ? [p.header.sequenceNumber] : [],
          );
        expect(cached(ours)).toEqual(cached(theirs));
        // The packets themselves were rewritten as werift rewrites them.
        expect(sentOurs.map((p) => p.header.extensions.map((e) => e.id))).toEqual(
          sentTheirs.map((p) => p.header.extensions.map((e) => e.id)),
        );
      });
    }

    it("keeps nothing in werift's cache for a sender whose NACKs the node answers", () => {
      const { sender, wire, s } = senderWithWire([{ id: 1, uri: mid }]);
      s.__nacksIntercepted = true;
      const packets = inputs();
      for (const p of packets) expect(sendRtpNow(sender, p)).toEqual(wire.at(-1));
      expect(wire).toHaveLength(packets.length);
      expect((s.rtpCache as unknown[]).filter(Boolean)).toEqual([]);
      // the header went out in the clear at the start of the SRTP packet, as rewritten
      const first = RtpHeader.deSerialize(wire[0]!);
      expect(first.sequenceNumber).toBe(packets[0]!.header.sequenceNumber);
      expect(first.ssrc).toBe(0x1234);
      expect(wire[0]!.subarray(0, packets[0]!.header.serializeSize)).toEqual(
        packets[0]!.header.serialize(packets[0]!.header.serializeSize),
      );
    });

    it('sends from one reused packet object the bytes it sends from a clone per packet', () => {
      const cloned = senderWithWire([{ id: 1, uri: mid }]);
      const reused = senderWithWire([{ id: 1, uri: mid }]);
      cloned.s.__nacksIntercepted = true;
      reused.s.__nacksIntercepted = true;
      expect(sendRtpKeepsNothing(reused.sender)).toBe(true);
      const scratch = reusablePacket();
      const sources = [...inputs(), ...inputs()];
      for (const p of sources) {
        sendRtpNow(cloned.sender, p.clone());
        sendRtpNow(reused.sender, copyPacketInto(scratch, p));
      }
      expect(reused.wire).toHaveLength(sources.length);
      expect(reused.wire).toEqual(cloned.wire);
      // the packets copied from were not rewritten
      expect(sources.map((p) => p.serialize())).toEqual(
        [...inputs(), ...inputs()].map((p) => p.serialize()),
      );
    });

    it("says a sender keeps its packets while werift's own cache or RED has them", () => {
      const { sender, s } = senderWithWire([]);
      expect(sendRtpKeepsNothing(sender)).toBe(false); // werift answers its NACKs from rtpCache
      s.__nacksIntercepted = true;
      expect(sendRtpKeepsNothing(sender)).toBe(true);
      s.redRedundantPayloadType = 63; // werift's asynchronous sendRtp builds RED from it
      expect(sendRtpKeepsNothing(sender)).toBe(false);
    });

    it('hands the datagram to a real UDP socket without creating a promise', async () => {
      const receiver = createSocket('udp4');
      const received: Buffer[] = [];
      receiver.on('message', (data) => received.push(data));
      await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
      const transport = await UdpTransport.init('udp4', { interfaceAddresses: undefined });
      try {
        const protocol = new StunProtocol();
        protocol.transport = transport;
        const { sender, dtls } = senderWithWire([{ id: 1, uri: mid }]);
        const pair = {
          protocol,
          remoteAddr: ['127.0.0.1', receiver.address().port],
          packetsSent: 0,
          bytesSent: 0,
        };
        const ice = (dtls.iceTransport as { connection: { nominated: unknown } }).connection;
        ice.nominated = pair;
        let promises = 0;
        const hook = createHook({
          init: (_id, type) => {
            if (type === 'PROMISE') promises++;
          },
        }).enable();
        const packets = inputs();
        const directBefore = udpSendCounts.direct;
        try {
          for (const packet of packets) sendRtpNow(sender, packet);
        } finally {
          hook.disable();
        }
        expect(promises).toBe(0);
        expect(pair.packetsSent).toBe(packets.length);
        // straight onto the socket's descriptor, not through dgram's send
        expect(udpSendCounts.direct - directBefore).toBe(packets.length);
        // werift's own chain, for comparison: several promises per packet.
        const theirs = inputs()[0]!;
        hook.enable();
        const sent = weriftOriginals.senderSendRtp!.call(sender, theirs);
        hook.disable();
        await sent;
        expect(promises).toBeGreaterThanOrEqual(3);
        const deadline = performance.now() + 2000;
        while (received.length < packets.length && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        expect(received.map((d) => RtpHeader.deSerialize(d).sequenceNumber)).toEqual(
          packets.map((p) => p.header.sequenceNumber),
        );
        expect(pair.bytesSent).toBe(received.reduce((n, d) => n + d.length, 0));
      } finally {
        receiver.close();
        await transport.close();
      }
    });

    it('sends to an IP literal without a lookup tick, and to a host name through Node', async () => {
      const receiver = createSocket('udp4');
      const received: string[] = [];
      receiver.on('message', (data) => received.push(data.toString()));
      await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
      const port = receiver.address().port;
      const sender = createSocket('udp4');
      await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
      let ticks = 0;
      const hook = createHook({
        init: (_id, type) => {
          if (type === 'TickObject') ticks++;
        },
      });
      const sendTen = (from: number) => {
        ticks = 0;
        hook.enable();
        for (let i = from; i < from + 10; i++) sender.send(Buffer.from(`d${i}`), port, '127.0.0.1');
        hook.disable();
        return ticks;
      };
      try {
        // Node's own lookup: a tick per datagram
        expect(sendTen(0)).toBeGreaterThanOrEqual(10);
        expect(replaceLookup(sender as never)).toBe(true);
        expect(sendTen(10)).toBe(0);
        sender.send(Buffer.from('by-name'), port, 'localhost');
        const deadline = performance.now() + 2000;
        while (received.length < 21 && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        expect(received.sort()).toEqual(
          [...Array.from({ length: 20 }, (_, i) => `d${i}`), 'by-name'].sort(),
        );
      } finally {
        receiver.close();
        sender.close();
      }
    });

    it('keeps sendRtp a promise for werift callers and sends nothing before DTLS connects', async () => {
      const { sender, wire, dtls } = senderWithWire([]);
      const result = sender.sendRtp(inputs()[0]!);
      expect(result).toBeInstanceOf(Promise);
      await result;
      expect(wire).toHaveLength(1);
      dtls.state = 'connecting';
      await sender.sendRtp(inputs()[0]!);
      sendRtpNow(sender, inputs()[0]!);
      expect(wire).toHaveLength(1);
    });
  });

  describe('Event.execute without a promise per event', () => {
    /** Runs a scenario on a werift Event, patched or not, and returns what happened in order. */
    async function scenario(patched: boolean, syncThrows: boolean, withAsync: boolean) {
      const log: string[] = [];
      const event = new Event<[number, string]>();
      event.onerror = (e) => log.push(`onerror ${(e as Error).message}`);
      if (patched) expect(fastEvent(event)).toBe(true);
      event.subscribe((n, s) => log.push(`a ${n} ${s}`));
      const off = event.subscribe(() => log.push('b')).unSubscribe;
      event.subscribe(() => {
        log.push('c');
        if (syncThrows) throw new Error('sync');
      });
      if (withAsync) {
        event.queuingSubscribe(async (n) => {
          await new Promise((r) => setTimeout(r, 5));
          log.push(`async1 ${n}`);
        });
        event.queuingSubscribe(async () => {
          log.push('async2');
          throw new Error('async');
        });
      }
      for (const n of [1, 2]) {
        try {
          event.execute(n, 'x');
          log.push(`returned ${n}`);
        } catch (e) {
          log.push(`threw ${(e as Error).message}`);
        }
        if (n === 1) off();
      }
      await new Promise((r) => setTimeout(r, 40));
      event.complete();
      event.execute(3, 'after end');
      return log;
    }

    for (const syncThrows of [false, true]) {
      for (const withAsync of [false, true]) {
        it(`behaves as werift's (sync listener throws: ${syncThrows}, async listeners: ${withAsync})`, async () => {
          const ours = await scenario(true, syncThrows, withAsync);
          const theirs = await scenario(false, syncThrows, withAsync);
          expect(ours).toEqual(theirs);
          expect(ours.length).toBeGreaterThan(4);
        });
      }
    }

    it('passes each listener as many arguments as the event was given', async () => {
      const counts = async (patched: boolean) => {
        const seen: number[] = [];
        const event = new Event<unknown[]>();
        if (patched) fastEvent(event);
        event.subscribe((...xs: unknown[]) => seen.push(xs.length));
        event.queuingSubscribe(async (...xs: unknown[]) => {
          seen.push(100 + xs.length);
        });
        const run = event.execute as (...xs: unknown[]) => void;
        run();
        run(1);
        run(1, undefined);
        run(1, 2, 3);
        await new Promise((r) => setTimeout(r, 10));
        return seen;
      };
      const ours = await counts(true);
      expect(ours.filter((n) => n < 100)).toEqual([0, 1, 2, 3]);
      expect(ours.filter((n) => n >= 100)).toEqual([100, 101, 102, 103]);
      expect(ours).toEqual(await counts(false));
    });

    it('receives datagrams on every ICE socket without a promise per datagram', async () => {
      /** Promises made while werift handles `count` datagrams sent to one of its ICE sockets. */
      async function promisesPerDatagram(ensure: (c: Connection, p: StunProtocol) => void) {
        const connection = new Connection(true, {});
        const protocol = new StunProtocol();
        ensure(connection, protocol);
        await protocol.connectionMade(true, undefined, undefined);
        protocol.localCandidate = {} as StunProtocol['localCandidate'];
        const received: string[] = [];
        connection.onData.subscribe((d: Buffer) => received.push(d.toString()));
        const socket = (
          protocol.transport as unknown as { socket: ReturnType<typeof createSocket> }
        ).socket;
        let promises = 0;
        const hook = createHook({
          init: (_id, type) => {
            if (type === 'PROMISE') promises++;
          },
        });
        // around werift's own listener: only what it does per datagram is counted
        socket.prependListener('message', () => hook.enable());
        socket.on('message', () => hook.disable());
        const from = createSocket('udp4');
        const count = 20;
        try {
          const port = socket.address().port;
          for (let i = 0; i < count; i++) from.send(Buffer.from(`rtp ${i}`), port, '127.0.0.1');
          const deadline = performance.now() + 2000;
          while (received.length < count && performance.now() < deadline) {
            await new Promise((r) => setTimeout(r, 10));
          }
        } finally {
          hook.disable();
          from.close();
          await protocol.close();
        }
        expect(received.sort()).toEqual(Array.from({ length: count }, (_, i) => `rtp ${i}`).sort());
        return promises / count;
      }
      const ensure = (c: Connection, p: StunProtocol) =>
        (c as unknown as { ensureProtocol: (p: StunProtocol) => void }).ensureProtocol(p);
      const readDirectly = udpRecvCounts.datagrams;
      expect(await promisesPerDatagram(ensure)).toBe(0);
      // the ICE socket was read through the addon (nativeUdpRecv.ts), not Node's receive path
      expect(udpRecvCounts.datagrams - readDirectly).toBe(20);
      // werift's own: a promise per event, two events per datagram
      expect(
        await promisesPerDatagram((c, p) => weriftOriginals.ensureProtocol!.call(c, p)),
      ).toBeGreaterThanOrEqual(2);
    });

    it('leaves what is not a werift Event alone', () => {
      expect(fastEvent(undefined)).toBe(false);
      expect(fastEvent({ execute: () => {} })).toBe(false);
    });
  });

  it('samples one forwarded packet in 16 into a ring and hands it over in seconds', () => {
    const got: number[] = [];
    forwardTiming.flush();
    forwardTiming.setSink((s) => got.push(s));
    try {
      let sampled = 0;
      for (let i = 0; i < SAMPLE_EVERY * 100; i++) if (forwardTiming.shouldSample()) sampled++;
      expect(sampled).toBe(100);
      for (let i = 0; i < 5000; i++) forwardTiming.record(i % 10);
      // the ring (4096) was handed over once when it filled; the rest waits for a scrape
      expect(got).toHaveLength(4096);
      expect(forwardTiming.pending).toBe(5000 - 4096);
      forwardTiming.flush();
      expect(got).toHaveLength(5000);
      expect(got[3]).toBeCloseTo(0.003, 9);
    } finally {
      forwardTiming.setSink(undefined);
    }
  });
});
