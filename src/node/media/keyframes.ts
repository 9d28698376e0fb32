/**
 * Whether an RTP packet starts a keyframe, read from its payload alone: VP8 (RFC 7741: start of
 * partition 0 with the P bit clear) and H.264 (RFC 6184: an IDR slice or an SPS in a single NAL,
 * STAP-A or the first FU-A fragment). Pure, no allocation.
 */
import { vp8Descriptor } from '../recording/codecs.ts';

export type KeyframeCodec = 'VP8' | 'H264';

/** The codec whose keyframes can be recognised, from a MIME type (`video/VP8`). */
export function keyframeCodecOf(mimeType: string): KeyframeCodec | undefined {
  const name = mimeType.slice(mimeType.indexOf('/') + 1).toUpperCase();
  return name === 'VP8' || name === 'H264' ? name : undefined;
}

export function isKeyframeStart(payload: Uint8Array, codec: KeyframeCodec): boolean {
  return codec === 'VP8' ? vp8KeyframeStart(payload) : h264KeyframeStart(payload);
}

function vp8KeyframeStart(payload: Uint8Array): boolean {
  const d = vp8Descriptor(payload as Buffer);
  if (!d?.start || d.offset >= payload.length) return false;
  return (payload[d.offset]! & 0x01) === 0;
}

function isKeyNal(type: number): boolean {
  return type === 5 || type === 7;
}

function h264KeyframeStart(payload: Uint8Array): boolean {
  if (payload.length < 2) return false;
  const type = payload[0]! & 0x1f;
  if (type >= 1 && type <= 23) return isKeyNal(type);
  if (type === 24) {
    let i = 1;
    while (i + 2 < payload.length) {
      const size = (payload[i]! << 8) | payload[i + 1]!;
      if (size === 0) return false;
      if (isKeyNal(payload[i + 2]! & 0x1f)) return true;
      i += 2 + size;
    }
    return false;
  }
  if (type === 28) return (payload[1]! & 0x80) !== 0 && isKeyNal(payload[1]! & 0x1f);
  return false;
}
