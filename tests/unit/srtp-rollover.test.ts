/**
 * SRTP rollover counting (src/node/media/srtpRollover.ts): real werift SRTP sessions, one
 * encrypting and one decrypting, through loss bursts, retransmissions and reordering around the
 * sequence number wrap.
 */
import { describe, expect, it } from 'vitest';
import {
  ProtectionProfileAeadAes128Gcm,
  ProtectionProfileAes128CmHmacSha1_80,
  RtpHeader,
  RtpPacket,
  SrtpSession,
} from 'werift';
// Importing the media layer applies the fix, as the node does.
import '../../src/node/media/werift.ts';
import {
  rolloverFor,
  type SrtpSsrcState,
  srtpRolloverFixStatus,
  weriftUpdateRolloverCount,
} from '../../src/node/media/srtpRollover.ts';
import { decryptRtpPacket } from '../../src/node/media/weriftHotPath.ts';

const KEYS = {
  localMasterKey: Buffer.alloc(16, 0x11),
  localMasterSalt: Buffer.alloc(12, 0x22),
  remoteMasterKey: Buffer.alloc(16, 0x33),
  remoteMasterSalt: Buffer.alloc(12, 0x44),
};
const MIRRORED = {
  localMasterKey: KEYS.remoteMasterKey,
  localMasterSalt: KEYS.remoteMasterSalt,
  remoteMasterKey: KEYS.localMasterKey,
  remoteMasterSalt: KEYS.localMasterSalt,
};
const SSRC = 0x5eed;

function session(keys: typeof KEYS, profile: number): SrtpSession {
  return new SrtpSession({ keys, profile } as ConstructorParameters<typeof SrtpSession>[0]);
}

type Context = Parameters<typeof decryptRtpPacket>[0];
const contextOf = (s: SrtpSession) => (s as unknown as { remoteContext: Context }).remoteContext;
const stateOf = (s: SrtpSession) => contextOf(s).srtpSSRCStates[SSRC] as SrtpSsrcState | undefined;

function encrypt(sender: SrtpSession, seq: number): Buffer {
  const header = new RtpHeader({ version: 2, payloadType: 96, sequenceNumber: seq, ssrc: SSRC });
  return sender.encrypt(Buffer.from(`packet ${seq}`), header);
}

/** Sequence numbers from `from`, `count` of them, across the wrap. */
function run(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => (from + i) & 0xffff);
}

const PROFILES = [
  ['AES-128-GCM', ProtectionProfileAeadAes128Gcm],
  ['AES-CM-128 HMAC-SHA1-80', ProtectionProfileAes128CmHmacSha1_80],
] as const;

/** Each receive path: werift's `decrypt`, and the node's own for GCM. */
const PATHS = [
  ['werift decrypt', (r: SrtpSession, wire: Buffer) => RtpPacket.deSerialize(r.decrypt(wire))],
  ['node GCM decrypt', (r: SrtpSession, wire: Buffer) => decryptRtpPacket(contextOf(r), wire)],
] as const;

/** Sends every number of `sent`, delivers those in `delivered` order; the payloads that decrypt. */
function deliver(
  profile: number,
  path: (typeof PATHS)[number][1],
  sent: readonly number[],
  delivered: readonly number[],
): { got: number[]; failed: number[]; receiver: SrtpSession } {
  const sender = session(KEYS, profile);
  const receiver = session(MIRRORED, profile);
  const wire = new Map<number, Buffer[]>();
  for (const seq of sent) wire.set(seq, [...(wire.get(seq) ?? []), encrypt(sender, seq)]);
  const got: number[] = [];
  const failed: number[] = [];
  const nth = new Map<number, number>();
  for (const seq of delivered) {
    const i = nth.get(seq) ?? 0;
    nth.set(seq, i + 1);
    try {
      const packet = path(receiver, wire.get(seq)![i]!);
      expect(packet.payload.toString()).toBe(`packet ${seq}`);
      got.push(seq);
    } catch {
      failed.push(seq);
    }
  }
  return { got, failed, receiver };
}

describe('SRTP rollover counting', () => {
  it('is in effect on this werift', () => {
    expect(srtpRolloverFixStatus()).toEqual({ applied: true });
  });

  it('guesses the rollover counter as RFC 3711 §3.3.1 does', () => {
    const at = (roc: number, seq: number) => roc * 65536 + seq;
    expect(rolloverFor(at(0, 100), 101)).toBe(0);
    expect(rolloverFor(at(0, 65400), 300)).toBe(1); // after the wrap, 436 on
    expect(rolloverFor(at(0, 65400), 32_000)).toBe(1); // 32 136 on, not 33 400 back
    expect(rolloverFor(at(0, 65400), 32_700)).toBe(0); // 32 700 back, not 32 836 on
    expect(rolloverFor(at(1, 300), 65400)).toBe(0); // from before the wrap
    expect(rolloverFor(at(1, 300), 30_000)).toBe(1);
    expect(rolloverFor(at(3, 40_000), 7_000)).toBe(4);
    expect(rolloverFor(at(3, 40_000), 7_500)).toBe(3); // 32 500 back
    expect(rolloverFor(at(0, 5), 65_000)).toBe(0); // before index 0: cannot authenticate
  });

  for (const [profileName, profile] of PROFILES) {
    for (const [pathName, path] of PATHS) {
      if (pathName === 'node GCM decrypt' && profile !== ProtectionProfileAeadAes128Gcm) continue;

      it(`${profileName}, ${pathName}: a stream that loses 350 packets across the wrap goes on`, () => {
        // 3 s of a 500 kbit/s video stream lost, 65 400 → 214: more than 100 each side of 0
        const sent = run(65_300, 450);
        const delivered = [...sent.slice(0, 100), ...sent.slice(450 - 100)];
        const { got, failed, receiver } = deliver(profile, path, sent, delivered);
        expect(failed).toEqual([]);
        expect(got.at(-1)).toBe(213);
        expect(stateOf(receiver)?.highestIndex).toBe(65536 + 213);
      });

      it(`${profileName}, ${pathName}: a retransmission from before the wrap decrypts after it`, () => {
        // 65 500 lost, the stream wraps, 200 more arrive, then its repair (resent with the
        // same number, as RFC 4588-less senders and the node's own history do)
        const sent = [...run(65_400, 300), 65_500];
        const delivered = [
          ...run(65_400, 100),
          ...run(65_501, 199),
          65_500,
          // the stream goes on after the late repair
        ];
        const { got, failed, receiver } = deliver(profile, path, sent, delivered);
        expect(failed).toEqual([]);
        expect(got.at(-1)).toBe(65_500);
        expect(stateOf(receiver)?.highestIndex).toBe(65536 + 163);
      });
    }
  }

  it("werift's own counting loses the stream after the same burst (what the fix is for)", () => {
    expect(weriftUpdateRolloverCount).toBeTypeOf('function');
    const state: SrtpSsrcState = { ssrc: SSRC, rolloverCounter: 0, lastSequenceNumber: 0 };
    for (const seq of run(65_300, 100)) weriftUpdateRolloverCount!(seq, state);
    weriftUpdateRolloverCount!(214, state);
    // the sender's counter is 1 after the wrap; werift's stays at 0, for every packet after
    expect(state.rolloverCounter).toBe(0);
  });

  it('a forged packet far ahead does not move the rollover state', () => {
    const sender = session(KEYS, ProtectionProfileAeadAes128Gcm);
    const receiver = session(MIRRORED, ProtectionProfileAeadAes128Gcm);
    for (const seq of run(65_500, 20)) decryptRtpPacket(contextOf(receiver), encrypt(sender, seq));
    const before = structuredClone(stateOf(receiver));
    const forged = encrypt(session(KEYS, ProtectionProfileAeadAes128Gcm), 20_000);
    forged[forged.length - 1]! ^= 1;
    expect(() => decryptRtpPacket(contextOf(receiver), forged)).toThrow();
    expect(stateOf(receiver)).toEqual(before);
    // the real stream goes on with the right counter
    const next = decryptRtpPacket(contextOf(receiver), encrypt(sender, 65_520 & 0xffff));
    expect(next.payload.toString()).toBe('packet 65520');
  });
});
