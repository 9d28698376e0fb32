import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import {
  DESKTOP,
  hasChromium,
  launchBrowser,
  sleep,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { testMedia } from '../helpers/media.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

declare global {
  interface Window {
    /** performance.now() of every frame the staff page's video presented (this test's hook). */
    presentedAt?: number[];
  }
}

/**
 * A staff viewer whose picture stops while its packets keep coming (a frame its decoder needs
 * never came, and no NACK can bring it) gets a keyframe within about a second: its page asks
 * the node for one. Chrome on its own asks only after 3 s without a decodable frame.
 */
describe.skipIf(!hasChromium)('a staff viewer stuck on a broken picture', () => {
  let tn: TestNode;
  let staff: TestBrowser;
  let media: TestMedia;
  let publisher: WhipPublisher;

  beforeAll(async () => {
    // one keyframe in 20 s: the picture does not come back on its own before the test ends
    media = await testMedia({ seconds: 20, keyframeSeconds: 20 });
    [tn, staff] = await Promise.all([startTestNode(), launchBrowser({ viewport: DESKTOP })]);
  });

  afterAll(async () => {
    await publisher?.close();
    await staff?.close();
    await tn?.close();
  });

  it('asks the node for a keyframe as soon as its video stands still while packets arrive', async () => {
    const created = tn.node.cases.create({ orderId: 'ORD-STALL', sku: 'SKU-1', reason: 'damaged' });
    await staff.page.goto(created.links.staff.url);
    publisher = new WhipPublisher({
      baseUrl: tn.url,
      caseId: created.case.id,
      headers: { Authorization: `Bearer ${created.links.buyer.token}` },
      media,
    });
    await publisher.start();
    await staff.page.waitForFunction(
      () => (window.returncam?.state.framesDecoded ?? 0) > 30,
      undefined,
      { timeout: 30_000 },
    );
    await staff.page.evaluate(() => {
      const video = document.getElementById('remote') as HTMLVideoElement;
      const times: number[] = [];
      window.presentedAt = times;
      const onFrame = () => {
        times.push(performance.now());
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    });
    // the keyframe requests of the start are over (the skip must not fall just before one)
    let requestsBefore = publisher.results().keyframeRequests;
    for (let quiet = 0; quiet < 1500; quiet += 250) {
      await sleep(250);
      const now = publisher.results().keyframeRequests;
      if (now !== requestsBefore) quiet = -250;
      requestsBefore = now;
    }
    const plisBefore = tn.node.rooms.counters.plisFromSubscribers;
    const skippedAt = await staff.page.evaluate(() => performance.now());
    publisher.skipPicture();
    await sleep(4000);

    const times = await staff.page.evaluate(() => window.presentedAt ?? []);
    const after = times.filter((t) => t >= skippedAt);
    // the picture stood still: the frames after the missing one could not be decoded
    let longest = 0;
    let last = skippedAt;
    for (const t of after) {
      longest = Math.max(longest, t - last);
      last = t;
    }
    console.info(`viewer stall: picture stood still ${Math.round(longest)} ms`);
    expect(longest, 'the video never stood still: the broken picture did not show').toBeGreaterThan(
      500,
    );
    // ... and came back well before Chrome's own keyframe request (3 s without a decodable
    // frame, then the keyframe's way: 3.07 s measured without the page's request)
    expect(longest).toBeLessThan(2500);
    expect(after.at(-1)! - skippedAt, 'the video did not run on after the stall').toBeGreaterThan(
      3500,
    );
    expect(publisher.results().keyframeRequests).toBeGreaterThan(requestsBefore);
    const counters = tn.node.rooms.counters;
    expect(counters.stallReportsFromViewers).toBeGreaterThanOrEqual(1);
    // the page asked, not Chrome (which would only after 3 s)
    expect(counters.plisFromSubscribers).toBe(plisBefore);
    const state = await staff.page.evaluate(() => window.returncam!.state);
    expect(state.keyframeRequests).toBe(counters.stallReportsFromViewers);
  });
});
