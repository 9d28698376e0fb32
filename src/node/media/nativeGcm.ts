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
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths.ts';

/** An OpenSSL AES-128-GCM context pair (seal, open) for one key; freed when collected. */
export type GcmHandle = { readonly __brand: 'GcmHandle' };

interface Addon {
  /** Sets up the contexts for a 16-byte key. */
  context(key: Buffer): GcmHandle;
  /** `dst` = [aad | ciphertext | tag]; the AAD (the RTP header) is already in `dst`. */
  seal(handle: GcmHandle, iv: Buffer, dst: Buffer, aadLength: number, plain: Buffer): void;
  /**
   * `src` = [aad | ciphertext | tag] → `dst` = [aad | plaintext] (`src.length - 16` bytes).
   * False (and `dst` zeroed) when the tag does not match.
   */
  open(handle: GcmHandle, iv: Buffer, src: Buffer, aadLength: number, dst: Buffer): boolean;
  /**
   * Contexts made and not yet freed, in the whole process. A dropped handle's contexts are freed
   * by its finalizer, which Node runs on the event loop after the collection that found it.
   */
  liveContexts(): number;
}

export const NATIVE_ADDON_PATH = join(PACKAGE_ROOT, 'build', 'Release', 'returncam_native.node');

let addon: Addon | undefined;
let reason: string | undefined;
let turnedOff = false;

function load(env: NodeJS.ProcessEnv): void {
  if (env.RETURNCAM_NATIVE === 'off') {
    reason = 'turned off by RETURNCAM_NATIVE=off';
    turnedOff = true;
    return;
  }
  if (!existsSync(NATIVE_ADDON_PATH)) {
    reason = `not built (${NATIVE_ADDON_PATH} is missing): run \`npm run build:native\`, which needs python3, make and a C compiler`;
    return;
  }
  try {
    const loaded = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Partial<Addon>;
    if (
      typeof loaded.context !== 'function' ||
      typeof loaded.seal !== 'function' ||
      typeof loaded.open !== 'function' ||
      typeof loaded.liveContexts !== 'function'
    ) {
      reason = `${NATIVE_ADDON_PATH} is not this version's addon: run \`npm run build:native\``;
      return;
    }
    addon = loaded as Addon;
  } catch (err) {
    reason = `could not be loaded (${(err as Error).message.split('\n')[0]}): run \`npm run build:native\``;
  }
}

load(process.env);

/** The addon, or undefined when the JavaScript path runs (`nativeGcmStatus` says why). */
export const nativeGcm: Addon | undefined = addon;

/** Whether the addon is in use; if not, why, and whether a setting turned it off. */
export function nativeGcmStatus(): { loaded: boolean; reason?: string; turnedOff?: boolean } {
  if (addon) return { loaded: true };
  return turnedOff ? { loaded: false, reason, turnedOff } : { loaded: false, reason };
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
