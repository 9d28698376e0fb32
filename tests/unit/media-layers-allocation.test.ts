import { describe, expect, it } from 'vitest';
import {
  activeStreams,
  parseLayersAllocation,
  SimulcastAllocation,
} from '../../src/node/media/layersAllocation.ts';

// Byte vectors written out by hand from the format's description (libwebrtc
// docs/native-code/rtp-hdrext/video-layers-allocation00), one field at a time.
const bytes = (...values: number[]) => Uint8Array.from(values);

/** Two simulcast streams, 3 temporal layers each, sent on stream 0, no resolutions. */
const BOTH_ON = bytes(
  0b00_01_0001, // RID 0, NS 1 (two streams), sl_bm 0001: spatial layer 0 on every stream
  0b10_10_0000, // #tl - 1 = 2 for each of the two active spatial layers
  0x32, // 50 kbit/s (TL0)
  0x64, // 100 (TL0+1)
  0x96,
  0x01, // 150 (all)
  0xc8,
  0x01, // 200
  0x90,
  0x03, // 400
  0xd8,
  0x04, // 600
);

/** The top stream switched off (so NS drops to 0), with 320x180 at 30 fps. */
const TOP_OFF = bytes(
  0b00_00_0001, // RID 0, NS 0: stream 0 is the highest one described
  0b10_000000, // 3 temporal layers
  0x32,
  0x64,
  0x96,
  0x01,
  0x01,
  0x3f, // width - 1 = 319
  0x00,
  0xb3, // height - 1 = 179
  30,
);

/** The lowest stream off, the top one on: per-stream bitmasks, sent on stream 1. */
const LOW_OFF = bytes(
  0b01_01_0000, // RID 1, NS 1, sl_bm 0: bitmasks follow
  0b0000_0001, // stream 0: none; stream 1: spatial layer 0
  0b10_000000,
  0xc8,
  0x01,
  0x90,
  0x03,
  0xd8,
  0x04,
);

describe('video layers allocation', () => {
  it('reads the layers of every stream, lowest stream first', () => {
    const a = parseLayersAllocation(BOTH_ON)!;
    expect(a.streamIndex).toBe(0);
    expect(a.layers).toEqual([
      { stream: 0, spatial: 0, targetKbps: [50, 100, 150] },
      { stream: 1, spatial: 0, targetKbps: [200, 400, 600] },
    ]);
    expect(activeStreams(a)).toEqual([true, true, false, false]);
  });

  it('reads a stream switched off, and resolutions when they are there', () => {
    const a = parseLayersAllocation(TOP_OFF)!;
    expect(a.layers).toEqual([
      { stream: 0, spatial: 0, targetKbps: [50, 100, 150], width: 320, height: 180, fps: 30 },
    ]);
    expect(activeStreams(a)).toEqual([true, false, false, false]);
    const low = parseLayersAllocation(LOW_OFF)!;
    expect(low.streamIndex).toBe(1);
    expect(activeStreams(low)).toEqual([false, true, false, false]);
    expect(low.layers[0]!.targetKbps).toEqual([200, 400, 600]);
  });

  it('reads three streams with two bitmask bytes, and two-bit counts across a byte boundary', () => {
    // Three streams; stream 1 has spatial layers 0 and 1 (as an SVC stream would), stream 2
    // has layers 0-2: six active layers, so their counts take two bytes.
    const a = parseLayersAllocation(
      bytes(
        0b10_10_0000, // RID 2, NS 2, bitmasks follow
        0b0001_0011, // stream 0: layer 0; stream 1: layers 0, 1
        0b0111_0000, // stream 2: layers 0-2; stream 3: none
        0b00_00_00_01, // one temporal layer each, except the fourth layer: two
        0b00_00_0000, // the fifth and sixth: one
        ...[10, 20, 30, 40, 41, 50, 60],
      ),
    )!;
    expect(a.layers.map((l) => [l.stream, l.spatial, l.targetKbps.length])).toEqual([
      [0, 0, 1],
      [1, 0, 1],
      [1, 1, 1],
      [2, 0, 2],
      [2, 1, 1],
      [2, 2, 1],
    ]);
    expect(a.layers[3]!.targetKbps).toEqual([40, 41]);
    expect(activeStreams(a)).toEqual([true, true, true, false]);
  });

  it('takes a single zero byte as nothing sent on any stream', () => {
    const a = parseLayersAllocation(bytes(0))!;
    expect(a.layers).toEqual([]);
    expect(activeStreams(a)).toEqual([false, false, false, false]);
  });

  it('rejects what libwebrtc would: truncated, odd leftovers, huge rates, a stream not described', () => {
    expect(parseLayersAllocation(bytes())).toBeUndefined();
    for (let cut = 1; cut < BOTH_ON.length; cut++) {
      expect(parseLayersAllocation(BOTH_ON.subarray(0, cut)), `cut at ${cut}`).toBeUndefined();
    }
    // Four bytes after the rates: not 5 per layer.
    expect(
      parseLayersAllocation(bytes(...TOP_OFF.subarray(0, TOP_OFF.length - 1))),
    ).toBeUndefined();
    // A LEB128 rate over 1 000 000 kbit/s (0x80 0x89 0x7a = 2 000 000).
    expect(parseLayersAllocation(bytes(0b00_00_0001, 0, 0x80, 0x89, 0x7a))).toBeUndefined();
    // A LEB128 value that never ends.
    expect(parseLayersAllocation(bytes(0b00_00_0001, 0, 0xff, 0xff))).toBeUndefined();
    // Sent on stream 1 while only stream 0 is described.
    expect(parseLayersAllocation(bytes(0b01_00_0001, 0, 0x32))).toBeUndefined();
  });

  it('tracks which layers a publisher switched off, and says when that changes', () => {
    const shared = new SimulcastAllocation();
    expect(shared.isPaused(1)).toBe(false);
    expect(shared.update(parseLayersAllocation(BOTH_ON)!, 2)).toBe(false);
    expect(shared.update(parseLayersAllocation(TOP_OFF)!, 2)).toBe(true);
    expect([shared.isPaused(0), shared.isPaused(1)]).toEqual([false, true]);
    // The same news again (repeated until a base-layer frame carries it) is not a change.
    expect(shared.update(parseLayersAllocation(TOP_OFF)!, 2)).toBe(false);
    expect(shared.update(parseLayersAllocation(BOTH_ON)!, 2)).toBe(true);
    expect(shared.isPaused(1)).toBe(false);
    expect(shared.current?.layers).toHaveLength(2);
  });
});
