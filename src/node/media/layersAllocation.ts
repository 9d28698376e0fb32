/**
 * libwebrtc's video-layers-allocation header extension: with each change of its simulcast
 * allocation (and on every keyframe), Chrome tells which of its RTP streams it sends, at what
 * target bitrate per temporal layer, and (optionally) at what resolution and frame rate. It is
 * repeated on each frame until a keyframe or base-layer frame has carried it.
 *
 * For the node it answers one question at once: has the publisher switched a simulcast layer
 * off? Without it, the only sign is that layer's silence while the others go on, which must last
 * long enough not to be an encoder's dropped frame or jitter.
 *
 * Format: http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00 (libwebrtc
 * `docs/native-code/rtp-hdrext/video-layers-allocation00`).
 */

export const VIDEO_LAYERS_ALLOCATION_URI =
  'http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00';

/** RTP streams and spatial layers per stream the format can describe. */
const MAX_STREAMS = 4;
const MAX_SPATIAL = 4;
/** libwebrtc discards larger values as unreasonable. */
const MAX_KBPS = 1_000_000;

export interface AllocatedLayer {
  /** RTP stream (simulcast index, 0 = the first encoding) it is sent on. */
  stream: number;
  /** Spatial layer within that stream (0 for simulcast). */
  spatial: number;
  /** Target bitrate to receive each temporal layer and those below it, kbit/s. */
  targetKbps: number[];
  /** Present only when the extension carried resolution and frame rate. */
  width?: number;
  height?: number;
  fps?: number;
}

export interface LayersAllocation {
  /** The RTP stream this allocation arrived on. */
  streamIndex: number;
  /** The layers the sender sends; an RTP stream with none here is switched off. */
  layers: AllocatedLayer[];
}

/**
 * Parses one extension payload, or undefined when it is malformed (as libwebrtc's parser would
 * reject it). A single zero byte is the empty allocation: nothing is sent on any stream.
 */
export function parseLayersAllocation(data: Uint8Array): LayersAllocation | undefined {
  const end = data.length;
  if (end === 0) return undefined;
  if (end === 1 && data[0] === 0) return { streamIndex: 0, layers: [] };
  let at = 0;
  const header = data[at]!;
  const streamIndex = header >> 6;
  const streams = 1 + ((header >> 4) & 0b11);
  const bitmasks = new Array<number>(MAX_STREAMS).fill(0);
  if ((header & 0b1111) !== 0) {
    for (let i = 0; i < streams; i++) bitmasks[i] = header & 0b1111;
  } else {
    // Bitmasks that differ between streams: a nibble each, one byte, or two for 3-4 streams.
    if (++at === end) return undefined;
    bitmasks[0] = data[at]! >> 4;
    bitmasks[1] = data[at]! & 0b1111;
    if (streams > 2) {
      if (++at === end) return undefined;
      bitmasks[2] = data[at]! >> 4;
      bitmasks[3] = data[at]! & 0b1111;
    }
  }
  if (++at === end) return undefined;
  // Number of temporal layers: two bits per active spatial layer, in (stream, spatial) order.
  const layers: AllocatedLayer[] = [];
  let bit = 8;
  for (let stream = 0; stream < streams; stream++) {
    for (let spatial = 0; spatial < MAX_SPATIAL; spatial++) {
      if ((bitmasks[stream]! & (1 << spatial)) === 0) continue;
      if (bit === 0) {
        bit = 6;
        if (++at === end) return undefined;
      } else {
        bit -= 2;
      }
      const temporal = 1 + ((data[at]! >> bit) & 0b11);
      layers.push({ stream, spatial, targetKbps: new Array<number>(temporal).fill(0) });
    }
  }
  if (++at === end) return undefined;
  for (const layer of layers) {
    for (let t = 0; t < layer.targetKbps.length; t++) {
      const read = readLeb128(data, at);
      if (read === undefined || read.value > MAX_KBPS) return undefined;
      layer.targetKbps[t] = read.value;
      at = read.next;
    }
  }
  if (at !== end) {
    // What is left must be exactly width-1, height-1 (16 bits each) and fps per layer.
    if (at + 5 * layers.length !== end) return undefined;
    for (const layer of layers) {
      layer.width = ((data[at]! << 8) | data[at + 1]!) + 1;
      layer.height = ((data[at + 2]! << 8) | data[at + 3]!) + 1;
      layer.fps = data[at + 4]!;
      at += 5;
    }
  }
  // The stream it came on must be one that is described (libwebrtc's validity rule).
  let highest = 0;
  for (const layer of layers) highest = Math.max(highest, layer.stream);
  if (layers.length > 0 && streamIndex > highest) return undefined;
  return { streamIndex, layers };
}

/** An unsigned LEB128 value at `at`, and where the next field starts; undefined if truncated. */
function readLeb128(data: Uint8Array, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  // Five bytes carry 35 bits, well past the largest value accepted.
  for (let i = 0; i < 5 && at < data.length; i++) {
    const byte = data[at++]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { value, next: at };
    scale *= 128;
  }
  return undefined;
}

/** Which RTP streams an allocation says are sent (index 0..3). */
export function activeStreams(allocation: LayersAllocation): boolean[] {
  const active = new Array<boolean>(MAX_STREAMS).fill(false);
  for (const layer of allocation.layers) active[layer.stream] = true;
  return active;
}

/**
 * A simulcast publisher's latest allocation, shared by its layers (`PublishedTrack`s): layer `i`
 * is RTP stream `i`, the order of the offer's `a=rid` lines, which is the order of the encodings
 * the browser was given.
 */
export class SimulcastAllocation {
  private paused: boolean[] = [];
  /** The allocation in force, for logs. */
  private latest: LayersAllocation | undefined;

  /** Whether the publisher's latest allocation leaves layer `index` out. */
  isPaused(index: number): boolean {
    return this.paused[index] === true;
  }

  /** The allocation in force, if any has arrived. */
  get current(): LayersAllocation | undefined {
    return this.latest;
  }

  /**
   * Takes a newer allocation for `layerCount` layers; true when a layer was switched off or back
   * on by it.
   */
  update(allocation: LayersAllocation, layerCount: number): boolean {
    this.latest = allocation;
    const active = activeStreams(allocation);
    let changed = false;
    for (let i = 0; i < layerCount; i++) {
      const paused = !active[i];
      if ((this.paused[i] === true) !== paused) changed = true;
      this.paused[i] = paused;
    }
    return changed;
  }
}
