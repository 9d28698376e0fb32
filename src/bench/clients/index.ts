export * from '../../core/NackTracker.ts';
export * from './media.ts';
export * from './rtp.ts';
export * from './signalling.ts';
export * from './WhepSubscriber.ts';
export * from './WhipPublisher.ts';

import type { WhepSubscriber } from './WhepSubscriber.ts';
import type { WhipPublisher } from './WhipPublisher.ts';

/** One publisher → one subscriber run, in the shape the benchmark reports. */
export interface MediaRunResults {
  framesSent: number;
  framesReceived: number;
  completeFrames: number;
  packetsReceived: number;
  nacksSent: number;
  retransmitsReceived: number;
  audioPackets: number;
  /** Receive time of each complete frame minus its send time (same clock: same process). */
  frameLatenciesMs?: number[];
}

export function collectResults(
  publisher: WhipPublisher,
  subscriber: WhepSubscriber,
): MediaRunResults {
  const sent = publisher.results();
  const got = subscriber.results(publisher.sentFrames);
  return {
    framesSent: sent.framesSent,
    framesReceived: got.framesReceived,
    completeFrames: got.completeFrames,
    packetsReceived: got.packetsReceived,
    nacksSent: got.nacksSent,
    retransmitsReceived: got.retransmitsReceived,
    audioPackets: got.audioPackets,
    frameLatenciesMs: got.frameLatenciesMs,
  };
}
