/** Types of `weak.js` (the pages are plain JavaScript; tests import it from TypeScript). */

export declare const WEAK_FPS: number;
export declare const WEAK_WINDOW_MS: number;
export declare const RECOVER_FPS: number;
export declare const RECOVER_WINDOW_MS: number;

export interface WeakVideoSample {
  /** ms, `performance.now()` */
  at: number;
  framesDecoded: number;
  videoPackets: number;
  audioPackets: number;
}

export declare class WeakVideoDetector {
  constructor(options?: { requireVideoPackets?: boolean });
  readonly weak: boolean;
  reset(): void;
  update(sample: WeakVideoSample): boolean;
}
