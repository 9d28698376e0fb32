import { describe, expect, it } from 'vitest';
import { CaseAssignment } from '../../src/node/workers/CaseAssignment.ts';
import { portSlice } from '../../src/node/workers/MediaWorkerPool.ts';
import {
  BATCH_PACKETS,
  type BatchedPacket,
  PacketBatchWriter,
  RECORD_HEADER_BYTES,
  readPacketBatch,
} from '../../src/node/workers/packetBatch.ts';

const all = () => true;

describe('case → worker assignment', () => {
  it('places a new case on the least-loaded live worker and keeps it there while it has sessions', () => {
    const a = new CaseAssignment(3);
    const p1 = a.place('A', all)!;
    const p2 = a.place('B', all)!;
    const p3 = a.place('A', all)!; // A's viewer joins A's worker
    const p4 = a.place('C', all)!;
    expect([p1.worker, p2.worker, p3.worker, p4.worker]).toEqual([0, 1, 0, 2]);
    expect([0, 1, 2].map((w) => a.sessionsOn(w))).toEqual([2, 1, 1]);
    // D goes to the lowest index among the least loaded (1 and 2 hold one session each)
    expect(a.place('D', all)!.worker).toBe(1);
    a.release(p1);
    expect(a.workerOf('A')).toBe(0); // still one session
    a.release(p3);
    expect(a.workerOf('A')).toBeUndefined(); // gone with its last session
    expect(a.sessionsOn(0)).toBe(0);
    // A's next session may land anywhere: worker 0 is now the emptiest
    expect(a.place('A', all)!.worker).toBe(0);
  });

  const cases: [string, (w: number) => boolean, number | undefined][] = [
    ['skips a worker that is down', (w) => w !== 0, 1],
    ['skips every worker but the last', (w) => w === 2, 2],
    ['no live worker: nothing placed', () => false, undefined],
  ];
  it.each(cases)('%s', (_name, live, expected) => {
    const a = new CaseAssignment(3);
    expect(a.place('X', live)?.worker).toBe(expected);
  });

  it('moves a case off a failed worker; a stale release does not touch the new placement', () => {
    const a = new CaseAssignment(2);
    const old = a.place('A', all)!;
    expect(old.worker).toBe(0);
    expect(a.drop(0)).toEqual(['A']);
    const moved = a.place('A', (w) => w === 1)!;
    expect(moved.worker).toBe(1);
    a.release(old); // the failed worker's session reports late
    expect(a.workerOf('A')).toBe(1);
    expect(a.sessionsOn(1)).toBe(1);
    // a case still mapped to a worker that is no longer live is placed afresh
    const b = new CaseAssignment(2);
    b.place('B', all);
    expect(b.place('B', (w) => w === 1)!.worker).toBe(1);
    expect(b.sessionsOn(0)).toBe(0);
  });

  it('refuses a pool of no workers', () => {
    expect(() => new CaseAssignment(0)).toThrow(/at least one worker/);
  });
});

describe('port range slices per worker', () => {
  const table: [[number, number] | undefined, number, [number, number] | undefined][][] = [
    [
      [[40000, 40999], 2, [40000, 40499]],
      [[40000, 40999], 2, [40500, 40999]],
    ],
    [
      [[10000, 10009], 3, [10000, 10002]],
      [[10000, 10009], 3, [10003, 10005]],
      [[10000, 10009], 3, [10006, 10008]],
    ],
    [[undefined, 4, undefined]],
  ];
  it('gives each worker its own part of media.portRange, never overlapping', () => {
    for (const rows of table) {
      rows.forEach(([range, workers, expected], index) => {
        expect(portSlice(range, workers, index)).toEqual(expected);
      });
    }
  });
  it('says what to fix when the range is smaller than the number of workers', () => {
    expect(() => portSlice([5000, 5001], 3, 0)).toThrow(
      /media.portRange \[5000, 5001\] has fewer ports than media.workers \(3\)/,
    );
  });
});

describe('packet batches (worker → recorder)', () => {
  const packet = (i: number, size: number): BatchedPacket => ({
    sequenceNumber: (65530 + i) & 0xffff,
    timestamp: (4294967000 + i * 3000) >>> 0,
    marker: i % 3 === 0,
    payloadType: 96 + (i % 2),
    payload: Uint8Array.from({ length: size }, (_, k) => (i * 7 + k) & 0xff),
  });

  it('round-trips every field and byte, across sequence and timestamp wrap-around', () => {
    const writer = new PacketBatchWriter();
    const sent = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => packet(i, [0, 1, 160, 1200][i % 4]!));
    for (const p of sent) {
      expect(writer.add(p.sequenceNumber, p.timestamp, p.marker, p.payloadType, p.payload)).toBe(
        true,
      );
    }
    const batch = writer.take()!;
    expect(batch.count).toBe(sent.length);
    expect(batch.buffer.byteLength).toBe(
      sent.reduce((n, p) => n + RECORD_HEADER_BYTES + p.payload.length, 0),
    );
    const got: BatchedPacket[] = [];
    expect(readPacketBatch(batch.buffer, (p) => got.push(p))).toBe(sent.length);
    expect(got.map((p) => ({ ...p, payload: Array.from(p.payload) }))).toEqual(
      sent.map((p) => ({ ...p, payload: Array.from(p.payload) })),
    );
    expect(writer.take()).toBeUndefined(); // emptied by take()
  });

  it('is full at a batch of packets, and refuses a packet that no longer fits', () => {
    const writer = new PacketBatchWriter(4 * (RECORD_HEADER_BYTES + 100));
    for (let i = 0; i < 4; i++) expect(writer.add(i, 0, false, 96, new Uint8Array(100))).toBe(true);
    expect(writer.add(4, 0, false, 96, new Uint8Array(100))).toBe(false);
    expect(writer.take()!.count).toBe(4);
    // a lone packet bigger than the buffer still goes, in a buffer of its own size
    expect(writer.add(5, 0, true, 96, new Uint8Array(1000))).toBe(true);
    expect(writer.take()!.buffer.byteLength).toBe(RECORD_HEADER_BYTES + 1000);
    const big = new PacketBatchWriter();
    for (let i = 0; i < BATCH_PACKETS; i++) big.add(i, 0, false, 96, new Uint8Array(10));
    expect(big.full).toBe(true);
  });

  it('says where a damaged batch breaks', () => {
    const writer = new PacketBatchWriter();
    writer.add(1, 2, true, 96, new Uint8Array(50));
    const { buffer } = writer.take()!;
    expect(() => readPacketBatch(buffer.slice(0, 40), () => {})).toThrow(/overruns/);
    expect(() => readPacketBatch(buffer.slice(0, 5), () => {})).toThrow(
      /truncated header at byte 0/,
    );
  });
});
