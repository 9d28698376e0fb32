/** Types of `fallback.js` (the pages are plain JavaScript; tests import it from TypeScript). */

export type Picture = 'main' | 'backup';

export declare class PictureFallback {
  constructor(options?: { holdMs?: number; returnMs?: number });
  readonly holdMs: number;
  readonly returnMs: number;
  /** How long the main picture may present nothing before it counts as stopped, ms. */
  readonly stoppedAfterMs: number;
  /** The picture shown now. */
  readonly showing: Picture;
  /** Times the page went over to the backup picture after the main one had shown. */
  readonly fallbacks: number;
  reset(): void;
  frame(which: Picture, at: number): Picture;
}
