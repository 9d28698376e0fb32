/**
 * The live view's frames (`recentFrames`): the same frames, times and order as the full list
 * (`frames(false)`) filtered to those sent since a moment, over lost, late, repeated and
 * reordered arrivals and a server that rewrites RTP timestamps.
 */
import { describe, expect, it } from 'vitest';
import { type FrameTimes, recentFrames } from '../../src/bench/BenchSession.ts';
import type { ReceivedFrame } from '../../src/bench/clients/WhepSubscriber.ts';
import type { SentFrame } from '../../src/bench/clients/WhipPublisher.ts';
import { seededRandom } from '../helpers/random.ts';

/** What `frames(false)` of a session gives, filtered as the live view filtered it. */
function fullThenFiltered(
  session: number,
  sent: SentFrame[],
  received: ReceivedFrame[],
  since: number,
  offset: number,
): FrameTimes[] {
  const at = new Map<number, number>();
  for (const f of received) at.set((f.rtpTimestamp - offset) >>> 0, f.receivedAt);
  return sent
    .map((f) => ({
      session,
      rtpTimestamp: f.rtpTimestamp,
      keyframe: f.keyframe,
      sentAt: f.sentAt,
      atNode: undefined,
      fromNode: undefined,
      receivedAt: at.get(f.rtpTimestamp),
    }))
    .filter((f) => f.sentAt >= since);
}

function run(seed: number, offset: number) {
  const random = seededRandom(seed);
  const sent: SentFrame[] = [];
  const arrivals: ReceivedFrame[] = [];
  for (let i = 0; i < 1800; i++) {
    // timestamps wrap past 2^32 partway through
    const rtpTimestamp = (4_294_000_000 + i * 3000) >>> 0;
    const sentAt = 1000 + i * 33.3;
    sent.push({ rtpTimestamp, sentAt, keyframe: i % 300 === 0 });
    const r = random();
    if (r < 0.05) continue; // lost
    const ts = (rtpTimestamp + offset) >>> 0;
    arrivals.push({ rtpTimestamp: ts, receivedAt: sentAt + 5 + random() * 200, keyframe: false });
    // a repaired frame that arrives twice
    if (r > 0.97) arrivals.push({ rtpTimestamp: ts, receivedAt: sentAt + 400, keyframe: false });
  }
  const received = arrivals.sort((a, b) => a.receivedAt - b.receivedAt);
  return { sent, received };
}

describe('recentFrames', () => {
  for (const offset of [0, 123_456_789]) {
    it(`gives what the full list gives for frames sent since a moment (offset ${offset})`, () => {
      for (const seed of [1, 2, 3]) {
        const { sent, received } = run(seed, offset);
        for (const since of [0, 1000, 30_000, 50_000, 59_900, 70_000]) {
          const ours = recentFrames(7, sent, received, since, offset);
          expect(ours).toEqual(fullThenFiltered(7, sent, received, since, offset));
        }
        // and it is a window, not the run: the last 10 s of a 60 s run
        expect(recentFrames(7, sent, received, 50_000, offset).length).toBeLessThan(
          sent.length / 5,
        );
      }
    });
  }
});
