/**
 * AES-128-GCM for SRTP through the node's small native addon (`native/srtp_gcm.c`, built by
 * `npm install` into `build/Release/`). Node's crypto API takes a GCM IV only when a cipher is
 * created, so from JavaScript every SRTP packet costs a new OpenSSL context and key schedule plus
 * three output Buffers: about 7 µs per 1100-byte packet here, against about 1.1 µs with one
 * context per session key that only takes a new IV per packet (docs/performance.md, third round).
 *
 * Optional: without a compiler at install, or with `RETURNCAM_NATIVE=off`, the node runs the
 * JavaScript path (`nativeGcmStatus()` says why, and the node logs it at start).
 */
import { type NativePartStatus, nativePart } from './nativeAddon.ts';

/** An OpenSSL AES-128-GCM context pair (seal, open) for one key; freed when collected. */
export type GcmHandle = { readonly __brand: 'GcmHandle' };

interface Addon {
  /** Sets up the contexts for a 16-byte key. */
  context(key: Buffer): GcmHandle;
  /** `dst` = [aad | ciphertext | tag]; the AAD (the RTP header) is already in `dst`. */
  seal(handle: GcmHandle, iv: Buffer, dst: Buffer, aadLength: number, plain: Buffer): void;
  /**
   * `src` = [aad | ciphertext | tag] → `dst` = [aad | plaintext] (`src.length - 16` bytes).
   * `dst` may be `src`'s own first bytes (decrypting in place). False (and `dst` zeroed) when
   * the tag does not match.
   */
  open(handle: GcmHandle, iv: Buffer, src: Buffer, aadLength: number, dst: Buffer): boolean;
  /**
   * Contexts made and not yet freed, in the whole process. A dropped handle's contexts are freed
   * by its finalizer, which Node runs on the event loop after the collection that found it.
   */
  liveContexts(): number;
}

const { part, status } = nativePart<Addon>(['context', 'seal', 'open', 'liveContexts']);

/** The addon, or undefined when the JavaScript path runs (`nativeGcmStatus` says why). */
export const nativeGcm: Addon | undefined = part;

/** Whether the addon is in use; if not, why, and whether a setting turned it off. */
export function nativeGcmStatus(): NativePartStatus {
  return status;
}

const handles = new WeakMap<Buffer, GcmHandle>();

/** The context for `key`, made once per key Buffer (werift keeps one per SRTP session and side). */
export function gcmHandle(native: Addon, key: Buffer): GcmHandle {
  let handle = handles.get(key);
  if (handle === undefined) {
    handle = native.context(key);
    handles.set(key, handle);
  }
  return handle;
}
