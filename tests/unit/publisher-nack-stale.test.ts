import { afterEach, describe, expect, it, vi } from 'vitest';
import { PublisherNack } from '../../src/node/media/PublisherNack.ts';

/** A publisher sending 100 packets a second; what the node NACKs and says about each arrival. */
function rig() {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  const nacked: number[] = [];
  const gaveUp: { count: number; seqs: number[]; at: number }[] = [];
  const nack = new PublisherNack({
    send: (lost) => nacked.push(...lost),
    onGiveUp: (count, seqs) => gaveUp.push({ count, seqs: [...seqs], at: performance.now() }),
  });
  const verdicts: string[] = [];
  let seq = 1000;
  const deliver = (n: number, skipBefore = 0) => {
    seq += skipBefore;
    for (let i = 0; i < n; i++) {
      verdicts.push(nack.received(seq & 0xffff, performance.now()));
      seq++;
      vi.advanceTimersByTime(10);
    }
  };
  const silence = (ms: number, packetsSentMeanwhile: number) => {
    vi.advanceTimersByTime(ms);
    seq += packetsSentMeanwhile;
  };
  return { nack, nacked, gaveUp, verdicts, deliver, silence, seq: () => seq };
}

describe('PublisherNack after an outage', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('NACKs nothing of a 5 s outage, says so (keyframe instead), and NACKs new holes', () => {
    const r = rig();
    r.deliver(100);
    r.silence(5000, 500); // the link drops out; the publisher keeps sending
    r.deliver(50);
    expect(r.verdicts.filter((v) => v === 'stale')).toHaveLength(1);
    expect(r.verdicts[100]).toBe('stale');
    expect(r.nacked).toEqual([]); // 500 ms of packets after the link came back
    expect(r.nack.lost).toBe(500);
    // a hole after the link is back is repaired as usual
    const hole = r.seq() & 0xffff;
    r.deliver(20, 1);
    vi.advanceTimersByTime(2000);
    expect(r.nack.lost).toBe(501); // nobody repaired it
    expect(r.nacked[0]).toBe(hole);
    expect(new Set(r.nacked)).toEqual(new Set([hole]));
  });

  it('leaves a burst of more than a few hundred packets to a keyframe', () => {
    const r = rig();
    r.deliver(10);
    r.deliver(10, 400); // no silence to speak of, but 400 packets gone
    vi.advanceTimersByTime(2000);
    expect(r.verdicts).toContain('stale');
    expect(r.nacked).toEqual([]);
  });

  it('NACKs every packet of a short gap, as before', () => {
    const r = rig();
    r.deliver(10);
    const first = r.seq();
    r.silence(200, 20); // 200 ms: within what a viewer can still play
    r.deliver(10);
    vi.advanceTimersByTime(30);
    expect(r.verdicts).not.toContain('stale');
    expect(r.nacked).toEqual(Array.from({ length: 20 }, (_, i) => first + i));
  });

  it('stretches the repair window to two round trips on a slow link', () => {
    const r = rig();
    r.deliver(10);
    // measure a 450 ms round trip: a hole NACKed, repaired 450 ms after the NACK
    const lost = r.seq();
    r.deliver(1, 1);
    vi.advanceTimersByTime(15);
    expect(r.nacked).toEqual([lost]);
    vi.advanceTimersByTime(440);
    r.nack.received(lost, performance.now());
    expect(r.nack.roundTripMs).toBeCloseTo(450, 0);
    expect(r.nack.repairWindowMs).toBeCloseTo(900, 0);
    r.nacked.length = 0;
    r.deliver(5);
    // 700 ms of silence: stale on a fast link, still repairable on this one
    r.silence(700, 70);
    r.deliver(5);
    expect(r.verdicts).not.toContain('stale');
    vi.advanceTimersByTime(30);
    expect(r.nacked).toHaveLength(70);
  });

  it('says when it gives up on a hole, so the caller asks for a keyframe at once', () => {
    const r = rig();
    r.deliver(20);
    const lost = r.seq();
    r.deliver(20, 1); // one packet lost; its repairs never come
    const lostAt = performance.now() - 200;
    vi.advanceTimersByTime(2_000);
    r.deliver(1);
    expect(r.nacked.filter((s) => s === lost)).toHaveLength(4);
    expect(r.gaveUp).toHaveLength(1);
    expect(r.gaveUp[0]!.count).toBe(1);
    expect(r.gaveUp[0]!.seqs).toEqual([lost & 0xffff]);
    // After its last NACK, not seconds later as a viewer's own timeout would.
    expect(r.gaveUp[0]!.at - lostAt).toBeLessThan(1_000);
    // A repaired hole is no give-up.
    const r2 = rig();
    r2.deliver(20);
    const hole = r2.seq();
    r2.deliver(5, 1);
    r2.nack.received(hole, performance.now());
    vi.advanceTimersByTime(2_000);
    expect(r2.gaveUp).toEqual([]);
  });

  it('says when a number arrives a second time: a later repair of a hole already filled', () => {
    const r = rig();
    r.deliver(20);
    const hole = r.seq() & 0xffff;
    r.deliver(20, 1); // lost once; the node NACKs it again each retry
    vi.advanceTimersByTime(300);
    const now = () => performance.now();
    expect(r.nack.received(hole, now())).toBe('ok'); // the first repair
    expect(r.nack.received(hole, now())).toBe('duplicate'); // the next retry's copy
    expect(r.nack.received((hole + 5) & 0xffff, now())).toBe('duplicate'); // arrived in order
    expect(r.nack.received(r.seq() & 0xffff, now())).toBe('ok'); // the newest, first time
    expect(r.nack.received(r.seq() & 0xffff, now())).toBe('duplicate');
    // a number far behind the history (4096) is not taken for a copy
    expect(r.nack.received((r.seq() - 5000) & 0xffff, now())).toBe('ok');
  });
});
