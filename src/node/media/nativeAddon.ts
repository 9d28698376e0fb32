/**
 * The node's small native addon (`native/`, built by `npm install` into `build/Release/`), loaded
 * once and shared by its parts: SRTP's AES-GCM (`nativeGcm.ts`), UDP sends (`nativeUdp.ts`) and
 * UDP receives (`nativeUdpRecv.ts`).
 * Each part checks for its own functions, so an addon built by an older version still serves the
 * parts it has.
 *
 * Optional: without a compiler at install, or with `RETURNCAM_NATIVE=off`, the node runs Node's
 * own paths (each part's status says why, and the node logs it at start).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths.ts';

export const NATIVE_ADDON_PATH = join(PACKAGE_ROOT, 'build', 'Release', 'returncam_native.node');

/** Whether a part is in use; if not, why, and whether a setting turned it off. */
export interface NativePartStatus {
  loaded: boolean;
  reason?: string;
  turnedOff?: boolean;
}

/** The addon as loaded (or why not). */
export interface LoadedAddon {
  module?: Record<string, unknown>;
  reason?: string;
  turnedOff?: boolean;
}

/** Loads the addon from `path`, unless `env` turns it off. */
export function loadNativeAddon(
  env: NodeJS.ProcessEnv,
  path: string = NATIVE_ADDON_PATH,
): LoadedAddon {
  if (env.RETURNCAM_NATIVE === 'off') {
    return { reason: 'turned off by RETURNCAM_NATIVE=off', turnedOff: true };
  }
  if (!existsSync(path)) {
    return {
      reason: `not built (${path} is missing): run \`npm run build:native\`, which needs python3, make and a C compiler`,
    };
  }
  try {
    return { module: createRequire(import.meta.url)(path) as Record<string, unknown> };
  } catch (err) {
    return {
      reason: `could not be loaded (${(err as Error).message.split('\n')[0]}): run \`npm run build:native\``,
    };
  }
}

const addon = loadNativeAddon(process.env);

/**
 * The addon as `T` when it has every function named, with its status; otherwise undefined and
 * why (an addon without them was built by an older version).
 */
export function nativePart<T>(
  functions: readonly string[],
  from: LoadedAddon = addon,
): { part: T | undefined; status: NativePartStatus } {
  const { module, reason, turnedOff } = from;
  if (module === undefined) {
    return {
      part: undefined,
      status: turnedOff ? { loaded: false, reason, turnedOff } : { loaded: false, reason },
    };
  }
  const missing = functions.filter((f) => typeof module[f] !== 'function');
  if (missing.length > 0) {
    return {
      part: undefined,
      status: {
        loaded: false,
        reason: `${NATIVE_ADDON_PATH} has no ${missing.join(', ')} (built by an older version): run \`npm run build:native\``,
      },
    };
  }
  return { part: module as T, status: { loaded: true } };
}
