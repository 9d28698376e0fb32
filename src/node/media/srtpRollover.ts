/**
 * SRTP packet index estimation (RFC 3711 §3.3.1) in place of werift 0.24.4's.
 *
 * An SRTP packet's keystream and authentication cover its 48-bit index: the 16-bit RTP sequence
 * number plus a rollover counter (ROC) that both ends count and never send. werift's
 * `Context.updateRolloverCount` (rtp/src/srtp/context/context.ts, unchanged in 0.25) counts a
 * rollover only when the previous packet was within 100 numbers of 65535 and this one within 100
 * of 0. A loss burst of more than 100 packets across the wrap (a 3 s outage of a 500 kbit/s video
 * stream is ~350 packets) leaves its ROC one behind the sender's: every packet after it then
 * fails authentication and is dropped, and the stream never comes back. On the node that is a
 * buyer's video gone for every viewer and the recording; the same error on its encrypting side
 * sends retransmissions from before the wrap with the wrong ROC.
 *
 * RFC 3711 guesses the ROC from the highest index seen so far (`s_l` and `ROC`): a sequence
 * number more than 2^15 below `s_l` is after the wrap, one more than 2^15 above it is from
 * before. That holds for any jump under 2^15 packets. The highest index lives in its own field
 * (`highestIndex`) on werift's per-SSRC state; `rolloverCounter` and `lastSequenceNumber`, which
 * werift's callers read right after the call, are this packet's. Decryption commits the state
 * only once the packet authenticates (werift's `decryptRtp` and `decryptRtpPacket` both do), so
 * a forged or corrupt packet cannot move the highest index.
 *
 * Applied once per process, at import of `werift.ts`. Unlike the hot-path patches it is a
 * correctness fix and is not turned off by `RETURNCAM_WERIFT_HOTPATH`.
 */
import { probeSession } from './weriftHotPath.ts';

const SEQ_MODULUS = 0x1_0000;
const HALF = 0x8000;

/** werift's per-SSRC SRTP state, with the highest index this module keeps next to it. */
export interface SrtpSsrcState {
  ssrc: number;
  /** The rollover counter of the last packet (werift's callers read it after the update). */
  rolloverCounter: number;
  /** The sequence number of the last packet. */
  lastSequenceNumber: number;
  rolloverHasProcessed?: boolean;
  /** ROC × 2^16 + SEQ of the highest packet index seen (RFC 3711's `ROC` and `s_l`). */
  highestIndex?: number;
}

/**
 * The rollover counter of a packet with sequence number `seq`, given the highest index seen
 * (RFC 3711 §3.3.1). A packet that would fall before index 0 gets 0 (it fails authentication).
 */
export function rolloverFor(highestIndex: number, seq: number): number {
  const roc = Math.floor(highestIndex / SEQ_MODULUS);
  const highestSeq = highestIndex - roc * SEQ_MODULUS;
  if (highestSeq < HALF) return seq - highestSeq > HALF ? Math.max(0, roc - 1) : roc;
  return highestSeq - HALF > seq ? roc + 1 : roc;
}

/** The replacement of werift's `updateRolloverCount`: same signature, same fields set. */
export function updateRolloverCount(sequenceNumber: number, s: SrtpSsrcState): void {
  if (!s.rolloverHasProcessed) {
    // The first packet of the SSRC: werift starts its ROC at 0, as RFC 3711 does.
    s.rolloverHasProcessed = true;
    s.highestIndex = s.rolloverCounter * SEQ_MODULUS + sequenceNumber;
    s.lastSequenceNumber = sequenceNumber;
    return;
  }
  const highest = s.highestIndex ?? s.rolloverCounter * SEQ_MODULUS + s.lastSequenceNumber;
  const roc = rolloverFor(highest, sequenceNumber);
  const index = roc * SEQ_MODULUS + sequenceNumber;
  s.highestIndex = Math.max(highest, index);
  s.rolloverCounter = roc;
  s.lastSequenceNumber = sequenceNumber;
}

export interface RolloverFixStatus {
  applied: boolean;
  /** Why it was not applied. */
  reason?: string;
}

let status: RolloverFixStatus | undefined;

/** werift's own `updateRolloverCount`, kept so tests can show what it did. */
export let weriftUpdateRolloverCount: typeof updateRolloverCount | undefined;

/** Whether the fix is in effect (a unit test asserts it is). */
export function srtpRolloverFixStatus(): RolloverFixStatus {
  return status ?? { applied: false, reason: 'not applied yet' };
}

/** werift's SRTP `Context` prototype: the one that defines `updateRolloverCount`. */
function contextPrototype(): { updateRolloverCount: unknown } | undefined {
  let proto: object | null = Object.getPrototypeOf(probeSession().remoteContext);
  while (proto && !Object.hasOwn(proto, 'updateRolloverCount'))
    proto = Object.getPrototypeOf(proto);
  return proto as { updateRolloverCount: unknown } | undefined;
}

/**
 * Replaces werift's `updateRolloverCount` once per process. Checks first that werift's function
 * still reads and writes the fields this one does; if not, leaves werift as it is and says why.
 */
export function applySrtpRolloverFix(): RolloverFixStatus {
  if (status) return status;
  try {
    const proto = contextPrototype();
    const text =
      typeof proto?.updateRolloverCount === 'function'
        ? Function.prototype.toString.call(proto.updateRolloverCount)
        : '';
    const missing = [
      's.rolloverHasProcessed',
      's.rolloverCounter++',
      's.lastSequenceNumber = sequenceNumber',
    ].find((word) => !text.includes(word));
    if (!proto || missing !== undefined) {
      status = {
        applied: false,
        reason: proto
          ? `werift's updateRolloverCount no longer contains "${missing}"`
          : 'werift has no updateRolloverCount',
      };
    } else {
      weriftUpdateRolloverCount = proto.updateRolloverCount as typeof updateRolloverCount;
      proto.updateRolloverCount = updateRolloverCount;
      status = { applied: true };
    }
  } catch (err) {
    status = { applied: false, reason: `check failed: ${(err as Error).message}` };
  }
  return status;
}
