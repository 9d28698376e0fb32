import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  encodeStatusChunks,
  extensionIdTable,
  runLengthChunk,
  STATUS_NOT_RECEIVED,
  statusVectorChunk,
  TransportFeedbackGenerator,
  transportSequenceNumber,
} from '../../src/node/media/twcc.ts';
import { decodeFeedback } from '../helpers/twcc.ts';

/**
 * Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01)
 * checked byte for byte against packets worked out by hand from the draft's layout, and decoded
 * back by an independent decoder written from the draft alone (tests/helpers/twcc.ts).
 */

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('packet status chunks (draft section 3.1.3 and 3.1.4 examples)', () => {
  it.each([
    // |0|0 0|0 0 0 0 0 1 1 0 1 1 1 0 1|: a run of 221 "packet not received"
    ['run of 221 not received', runLengthChunk(STATUS_NOT_RECEIVED, 221), 0b0_00_0000011011101],
    // |0|1 1|0 0 0 0 0 0 0 0 1 1 0 0 0|: a run of 24 "received without delta"
    ['run of 24 received w/o delta', runLengthChunk(3, 24), 0b0_11_0000000011000],
    // |1|0|0 1 1 1 1 1 0 0 0 1 1 1 0 0|: 1 lost, 5 received, 3 lost, 3 received, 2 lost
    [
      'one-bit vector',
      statusVectorChunk([0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0], 0, 14, false),
      0b1_0_01111100011100,
    ],
    // |1|1|00 11 01 01 01 00 00|: 1 lost, 1 received w/o delta, 3 received, 2 lost
    ['two-bit vector', statusVectorChunk([0, 3, 1, 1, 1, 0, 0], 0, 7, true), 0b1_1_00110101010000],
  ])('%s', (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  it('picks the chunk the draft examples use for each pattern', () => {
    const out = new Uint16Array(16);
    const oneBit = [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0];
    expect(encodeStatusChunks(oneBit, 14, out)).toBe(1);
    expect(out[0]).toBe(0b1_0_01111100011100);
    const lost = new Array(221).fill(STATUS_NOT_RECEIVED);
    expect(encodeStatusChunks(lost, 221, out)).toBe(1);
    expect(out[0]).toBe(0b0_00_0000011011101);
  });

  it('refuses run lengths a chunk cannot hold', () => {
    expect(() => runLengthChunk(1, 0)).toThrow(/run length 0/);
    expect(() => runLengthChunk(1, 8192)).toThrow(/outside 1\.\.8191/);
  });
});

describe('TransportFeedbackGenerator', () => {
  it('builds the packet worked out by hand: sequence wrap, a loss, large, negative and small deltas', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 0x01020304 });
    const media = 0x0a0b0c0d;
    // Arrivals (µs), recorded in arrival order (seq 3 overtakes seq 2; seq 0 never arrives):
    gen.record(65534, 10_005_300, media);
    gen.record(65535, 10_007_300, media);
    gen.record(1, 10_020_000, media);
    gen.record(3, 10_089_000, media);
    gen.record(4, 10_089_500, media);
    gen.record(2, 10_090_000, media);
    const [packet, ...rest] = gen.flush();
    expect(rest).toEqual([]);
    // Reference time: floor(10_005_300 / 64_000) = 156 (= 9_984_000 µs). Every delta is measured
    // from the previous packet's time as the receiver will rebuild it, starting at 9_984_000:
    //   65534: 10_005_300 - 9_984_000  = 21_300 -> 85 ticks (21_250), small  0x55; now 10_005_250
    //   65535: 10_007_300 - 10_005_250 =  2_050 ->  8 ticks  (2_000), small  0x08; now 10_007_250
    //   0:     not received
    //   1:     10_020_000 - 10_007_250 = 12_750 -> 51 ticks,          small  0x33; now 10_020_000
    //   2:     10_090_000 - 10_020_000 = 70_000 -> 280 ticks, large 0x0118;        now 10_090_000
    //   3:     10_089_000 - 10_090_000 = -1_000 -> -4 ticks, large  0xfffc;        now 10_089_000
    //   4:     10_089_500 - 10_089_000 =    500 ->  2 ticks,          small  0x02
    // Statuses 1 1 0 1 2 2 1: a large delta among them, no run of 7, so one two-bit vector:
    //   |1|1|01 01 00 01 10 10 01| = 0xd469
    // 20 header bytes + 2 chunk bytes + 8 delta bytes = 30, padded to 32 (P set, last byte 2):
    //   length field 32/4 - 1 = 7; first byte V=2, P=1, FMT=15 = 0xaf; PT 205 = 0xcd.
    expect(hex(packet!)).toBe(
      [
        'afcd0007', // V=2 P=1 FMT=15, PT=205, length 7
        '01020304', // sender SSRC
        '0a0b0c0d', // media source SSRC
        'fffe0007', // base sequence number 65534, 7 statuses
        '00009c00', // reference time 156, feedback packet count 0
        'd469', // two-bit status vector
        '5508330118fffc02', // receive deltas
        '0002', // padding, last byte = padding length
      ].join(''),
    );
    // The independent decoder gets every arrival back within one 250 µs tick.
    const decoded = decodeFeedback(packet!);
    expect(decoded.arrivals.get(0)).toBeNull();
    const truth = new Map([
      [65534, 10_005_300],
      [65535, 10_007_300],
      [1, 10_020_000],
      [2, 10_090_000],
      [3, 10_089_000],
      [4, 10_089_500],
    ]);
    for (const [seq, at] of truth) {
      const got = decoded.arrivals.get(seq)!;
      expect(at - got).toBeGreaterThanOrEqual(0);
      expect(at - got).toBeLessThan(250);
    }
  });

  it('measures the first delta from the floored reference time', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 1 });
    // 63.9 ms past a 64 ms boundary: an encoder that measured the first delta from the unfloored
    // time would place this packet 63.9 ms early.
    gen.record(10, 64_000 * 1000 + 63_900, 5);
    const decoded = decodeFeedback(gen.flush()[0]!);
    expect(decoded.referenceUs).toBe(64_000 * 1000);
    expect(decoded.arrivals.get(10)).toBe(64_000 * 1000 + 63_750); // 255 ticks, the small maximum
  });

  it('encodes a loss run longer than a run-length chunk holds (2^13 - 1) as consecutive runs', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 7 });
    gen.record(0, 640_000, 9); // reference 10 (640_000 µs), delta 0
    gen.record(9001, 660_000, 9); // 9000 lost in between; delta 20_000 µs = 80 ticks
    const [packet] = gen.flush();
    // Statuses: 1, 0 x 9000, 1 (9002). Chunks:
    //   one-bit vector of the first 14: |1|0|1 0 0 0 0 0 0 0 0 0 0 0 0 0| = 0xa000
    //   the remaining 9000 - 13 = 8987 lost: a run of 8191 (0x1fff), then of 796 (0x031c)
    //   the last packet: a run of 1 "small delta" = |0|01|0000000000001| = 0x2001
    expect(hex(packet!)).toBe(
      [
        'afcd0007',
        '00000007',
        '00000009',
        '0000232a',
        '00000a00',
        'a0001fff031c2001',
        '0050',
        '0002',
      ].join(''),
    );
    const decoded = decodeFeedback(packet!);
    expect([...decoded.arrivals.values()].filter((v) => v === null)).toHaveLength(9000);
    expect(decoded.arrivals.get(9001)).toBe(660_000);
    expect(gen.stats.reportedLost).toBe(9000);
  });

  it('starts a new feedback, with its own reference time, when a delta does not fit 16 bits', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 1 });
    gen.record(100, 1_000_000, 5);
    gen.record(101, 1_000_000 + 9_000_000, 5); // 36_000 ticks > 32_767
    const packets = gen.flush();
    expect(packets).toHaveLength(2);
    const [a, b] = packets.map((p) => decodeFeedback(p));
    expect([...a!.arrivals.keys()]).toEqual([100]);
    expect([...b!.arrivals.keys()]).toEqual([101]);
    expect(b!.arrivals.get(101)).toBe(10_000_000);
    expect([a!.fbCount, b!.fbCount]).toEqual([0, 1]);
  });

  it('reports each loss once and ignores late arrivals of what it already reported', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 1 });
    gen.record(1, 1_000_000, 5);
    gen.record(3, 1_010_000, 5);
    const first = decodeFeedback(gen.flush()[0]!);
    expect(first.arrivals.get(2)).toBeNull();
    gen.record(2, 1_015_000, 5); // arrives after it was reported lost
    gen.record(1, 1_016_000, 5); // a duplicate of a reported one
    expect(gen.flush()).toEqual([]);
    gen.record(4, 1_020_000, 5);
    const second = decodeFeedback(gen.flush()[0]!);
    expect([...second.arrivals.keys()]).toEqual([4]);
    expect(gen.stats).toMatchObject({ recorded: 3, ignored: 2, reportedLost: 1, feedbacks: 2 });
  });

  it('keeps trailing losses for the next feedback, where a later arrival may still fill them', () => {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 1 });
    gen.record(10, 1_000_000, 5);
    gen.record(11, 1_001_000, 5);
    expect(decodeFeedback(gen.flush()[0]!).baseSeq).toBe(10);
    gen.record(13, 1_003_000, 5);
    gen.record(12, 1_004_000, 5); // reordered, not lost: never reported as lost
    const next = decodeFeedback(gen.flush()[0]!);
    expect(next.arrivals.get(12)).toBe(1_004_000);
    expect(gen.stats.reportedLost).toBe(0);
  });

  it('survives a long random session: wraps, losses, reordering and jitter all decode within 250 µs', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const gen = new TransportFeedbackGenerator({ senderSsrc: 0xdeadbeef });
    const truth = new Map<number, number>();
    const decoded = new Map<number, number | null>();
    let t = 5_000_000_123;
    let pending: [number, number][] = [];
    const deliver = () => {
      // Deliver in a shuffled order (reordering within a batch), then feed back.
      pending.sort(() => random() - 0.5);
      for (const [seq, at] of pending) gen.record(seq & 0xffff, at, 1234);
      pending = [];
      for (const p of gen.flush()) {
        for (const [seq, at] of decodeFeedback(p).arrivals) {
          expect(decoded.has(seq), `seq ${seq} reported twice`).toBe(false);
          decoded.set(seq, at);
        }
      }
    };
    for (let seq = 60_000; seq < 60_000 + 12_000; seq++) {
      t += Math.floor(random() * 20_000) + (random() < 0.01 ? 300_000 : 0);
      if (random() < 0.1) continue; // lost
      truth.set(seq & 0xffff, t);
      pending.push([seq, t]);
      if (random() < 0.08) deliver();
    }
    deliver();
    let received = 0;
    for (const [seq, at] of decoded) {
      if (at === null) {
        expect(truth.has(seq), `seq ${seq} arrived but was reported lost`).toBe(false);
        continue;
      }
      received++;
      const real = truth.get(seq)!;
      expect(real - at).toBeGreaterThanOrEqual(0);
      expect(real - at).toBeLessThan(250);
    }
    expect(received).toBe(truth.size);
  });

  it('reads the transport-wide sequence number by the negotiated extension ids', () => {
    const extensions = [
      { id: 1, payload: Buffer.from('0') },
      { id: 3, payload: Buffer.from([0x12, 0x34]) },
    ];
    expect(transportSequenceNumber(extensions, extensionIdTable([3]))).toBe(0x1234);
    expect(transportSequenceNumber(extensions, extensionIdTable([5, 3]))).toBe(0x1234);
    expect(transportSequenceNumber(extensions, extensionIdTable([5]))).toBeUndefined();
    expect(() => extensionIdTable([256])).toThrow(/outside 1\.\.255/);
  });

  it('says what is wrong with a bad sender SSRC', () => {
    expect(() => new TransportFeedbackGenerator({ senderSsrc: -1 })).toThrow(/senderSsrc/);
  });
});

/**
 * Why the node has its own generator: werift 0.24.4's `ReceiverTWCC`, fed the same arrivals,
 * sends feedback from which the sender rebuilds arrival times tens of milliseconds off, and
 * reports packets that never arrived as received.
 */
describe("werift's ReceiverTWCC against ours", () => {
  const require = createRequire(import.meta.url);
  const weriftDir = join(dirname(require.resolve('werift')));
  const utils = require(join(weriftDir, 'utils.js')) as { microTime: () => bigint };
  const { ReceiverTWCC } = require(join(weriftDir, 'media/receiver/receiverTwcc.js')) as {
    ReceiverTWCC: new (
      transport: unknown,
      rtcpSsrc: number,
      mediaSsrc: number,
    ) => { handleTWCC: (seq: number) => void };
  };

  /** Feeds werift's generator; returns the serialized feedback it sent. */
  function werift(arrivals: [number, number][]): Buffer[] {
    const sent: Buffer[] = [];
    const transport = {
      sendRtcp: async (packets: { serialize: () => Buffer }[]) => {
        for (const p of packets) sent.push(p.serialize());
      },
    };
    const original = utils.microTime;
    try {
      const twcc = new ReceiverTWCC(transport, 1, 2);
      for (const [seq, at] of arrivals) {
        utils.microTime = () => BigInt(at);
        twcc.handleTWCC(seq);
      }
    } finally {
      utils.microTime = original;
    }
    return sent;
  }

  function ours(arrivals: [number, number][]): Uint8Array[] {
    const gen = new TransportFeedbackGenerator({ senderSsrc: 1 });
    for (const [seq, at] of arrivals) gen.record(seq, at, 2);
    return gen.flush();
  }

  // Eleven packets 5 ms apart (werift sends once it holds more than ten), starting 50 ms past
  // a 64 ms boundary.
  const start = 64_000 * 20_000 + 50_000;
  const steady: [number, number][] = Array.from({ length: 11 }, (_, i) => [
    100 + i,
    start + i * 5_000,
  ]);

  it('werift places every packet up to 64 ms early; ours within 250 µs', () => {
    const [w] = werift(steady);
    expect(w).toBeDefined();
    const weriftDecoded = decodeFeedback(w!, true).arrivals;
    const oursDecoded = decodeFeedback(ours(steady)[0]!).arrivals;
    for (const [seq, at] of steady) {
      expect(at - weriftDecoded.get(seq)!).toBe(50_000);
      expect(at - oursDecoded.get(seq)!).toBeLessThan(250);
      expect(at - oursDecoded.get(seq)!).toBeGreaterThanOrEqual(0);
    }
    // werift also declares a length that cuts its last receive deltas off (33 bytes, unpadded).
    expect(w!.length % 4).not.toBe(0);
    expect(() => decodeFeedback(w!)).toThrow(/length field/);
  });

  it('werift reports a packet that never arrived as received; ours as lost', () => {
    const lossy: [number, number][] = [
      ...steady.filter(([seq]) => seq !== 105),
      [111, start + 55_000],
    ];
    const [w] = werift(lossy);
    expect(w).toBeDefined();
    const weriftStatuses = decodeFeedbackStatuses(w!);
    expect(weriftStatuses.get(105)).not.toBe(STATUS_NOT_RECEIVED);
    const oursDecoded = decodeFeedback(ours(lossy)[0]!).arrivals;
    expect(oursDecoded.get(105)).toBeNull();
    for (const [seq, at] of lossy) {
      expect(at - oursDecoded.get(seq)!).toBeLessThan(250);
    }
  });
});

/** Only the status symbols of a feedback, per sequence number. */
function decodeFeedbackStatuses(bytes: Uint8Array): Map<number, number> {
  const b = Buffer.from(bytes);
  const baseSeq = b.readUInt16BE(12);
  const count = b.readUInt16BE(14);
  const statuses: number[] = [];
  for (let at = 20; statuses.length < count; at += 2) {
    const chunk = b.readUInt16BE(at);
    if ((chunk & 0x8000) === 0) {
      for (let k = 0; k < (chunk & 0x1fff); k++) statuses.push((chunk >> 13) & 0b11);
    } else if ((chunk & 0x4000) === 0) {
      for (let k = 0; k < 14; k++) statuses.push((chunk >> (13 - k)) & 1);
    } else {
      for (let k = 0; k < 7; k++) statuses.push((chunk >> (12 - 2 * k)) & 0b11);
    }
  }
  return new Map(statuses.slice(0, count).map((s, i) => [(baseSeq + i) & 0xffff, s]));
}
