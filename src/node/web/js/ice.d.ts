/** Types of `ice.js` (the pages are plain JavaScript; tests import it from TypeScript). */

export declare const SDPFRAG_TYPE: 'application/trickle-ice-sdpfrag';

export interface PageIce {
  ufrag: string;
  pwd: string;
  candidates: string[];
}

export declare function restartFragment(
  offerSdp: string,
  options?: { gatheringComplete?: boolean },
): string;
export declare function parseFragment(text: string): PageIce;
export declare function answerWithIce(previousAnswer: string, ice: PageIce): string;
