/** Types of `stall.js` (the pages are plain JavaScript; tests import it from TypeScript). */

export interface DecodeStallSample {
  /** ms, `performance.now()` */
  at: number;
  framesDecoded: number;
  videoPackets: number;
}

export declare class DecodeStallWatch {
  constructor(options?: {
    stallMs?: number;
    repeatMs?: number;
    minPackets?: number;
    recentMs?: number;
  });
  /** Asks made since the last reset. */
  readonly requests: number;
  reset(): void;
  update(sample: DecodeStallSample): boolean;
}
