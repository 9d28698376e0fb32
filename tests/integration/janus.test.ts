import { describe, expect, it } from 'vitest';
import { FanoutSession } from '../../src/bench/FanoutSession.ts';
import { findJanus, startJanus } from '../../src/bench/janus/JanusServer.ts';
import { resolveProfile } from '../../src/bench/profiles.ts';
import { runBench } from '../../src/bench/runBench.ts';

const janus = findJanus();

describe.skipIf(!janus)(
  'Janus VideoRoom as a comparison server (needs `apt-get install janus`)',
  () => {
    it('carries one publisher and two viewers: every frame reaches both, Janus measured by its PID', async () => {
      const r = await runBench({
        profile: resolveProfile('lan'),
        sessions: 1,
        durationMs: 5000,
        bitrateKbps: 600,
        node: { kind: 'custom', open: () => startJanus() },
        createSession: (o) => new FanoutSession({ ...o, node: o.node!, viewers: 2 }),
      });
      expect(r.settings.node.kind).toBe('janus');
      // two viewers: every frame sent in the window is counted for each
      expect(r.frames.sent).toBeGreaterThan(2 * 100);
      expect(r.frames.lost).toBeLessThanOrEqual(r.frames.sent * 0.02);
      // frames matched to the publisher's despite Janus rewriting timestamps: transit is small
      expect(r.transit!.p50).toBeGreaterThan(0);
      expect(r.transit!.p50).toBeLessThan(30);
      const hop = r.budget.find((b) => b.part === 'node')?.summary;
      expect(hop?.count).toBeGreaterThan(100);
      expect(r.nodeResources?.shared).toBe(false);
      expect(r.nodeResources?.cpuPercent).toBeGreaterThan(0);
      expect(r.nodeResources?.rssBytes).toBeGreaterThan(1048576);
    }, 60_000);
  },
);

describe.skipIf(!!janus)('without Janus installed', () => {
  it('says how to install it', async () => {
    await expect(startJanus()).rejects.toThrow(/apt-get install -y janus/);
  });
});
