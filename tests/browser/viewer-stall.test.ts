import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMedia } from '../../src/bench/clients/media.ts';
import { WhipPublisher } from '../../src/bench/clients/WhipPublisher.ts';
import { type Picture, PictureFallback } from '../../src/node/web/js/fallback.js';
import {
  backupVideoWidth,
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
    /** Every frame either video of the staff page presented (this test's hook). */
    framesSeen?: { at: number; which: 'main' | 'backup' }[];
  }
}

/**
 * The staff page when the buyer's video stops: a picture whose packets keep coming while it
 * stands still asks the node for a keyframe; a picture that waits for the buyer's uplink shows
 * the backup (the buyer's lowest layer) meanwhile.
 */
describe.skipIf(!hasChromium)('a staff viewer whose picture stops', () => {
  let tn: TestNode;
  let staff: TestBrowser;
  let media: TestMedia;
  let layers: { h: TestMedia; f: TestMedia };
  let publisher: WhipPublisher | undefined;

  beforeAll(async () => {
    // one keyframe in 20 s: the picture does not come back on its own before the test ends
    const [stallMedia, h, f] = await Promise.all([
      testMedia({ seconds: 20, keyframeSeconds: 20 }),
      testMedia({ width: 320, height: 180, bitrateKbps: 300 }),
      testMedia({ width: 640, height: 360, bitrateKbps: 800 }),
    ]);
    media = stallMedia;
    layers = { h, f };
    [tn, staff] = await Promise.all([startTestNode(), launchBrowser({ viewport: DESKTOP })]);
  });

  afterAll(async () => {
    await publisher?.close();
    await staff?.close();
    await tn?.close();
  });

  /**
   * A staff viewer whose picture stops while its packets keep coming (a frame its decoder needs
   * never came, and no NACK can bring it) gets a keyframe within about a second: its page asks
   * the node for one. Chrome on its own asks only after 3 s without a decodable frame.
   */
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

  /**
   * When the buyer's browser switches its top layer off, the main picture waits for the lower
   * layer's keyframe (a round trip over the buyer's uplink); the viewer sees the backup meanwhile.
   */
  it('shows the backup picture while the top layer is switched off: the picture on screen goes on', async () => {
    await publisher?.close();
    const created = tn.node.cases.create({ orderId: 'ORD-BAK', sku: 'SKU-1', reason: 'damaged' });
    await staff.page.goto(created.links.staff.url);
    publisher = new WhipPublisher({
      baseUrl: tn.url,
      caseId: created.case.id,
      headers: { Authorization: `Bearer ${created.links.buyer.token}` },
      media: layers.f,
      simulcast: [
        { rid: 'h', videoPath: layers.h.videoPath },
        { rid: 'f', videoPath: layers.f.videoPath },
      ],
    });
    await publisher.start();
    await expect
      .poll(() => staff.page.evaluate(() => window.returncam?.state.videoWidth), {
        timeout: 30_000,
        interval: 250,
      })
      .toBe(640);
    await expect
      .poll(() => backupVideoWidth(staff.page), { timeout: 10_000, interval: 250 })
      .toBe(320);
    await staff.page.evaluate(() => {
      const seen: { at: number; which: 'main' | 'backup' }[] = [];
      window.framesSeen = seen;
      for (const [which, id] of [
        ['main', 'remote'],
        ['backup', 'remote-backup'],
      ] as const) {
        const video = document.getElementById(id) as HTMLVideoElement;
        const onFrame = (now: number) => {
          seen.push({ at: now, which });
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      }
    });
    await sleep(1_000);
    const fallbacksBefore = await staff.page.evaluate(() => window.returncam!.state.fallbacks!);
    const droppedAt = await staff.page.evaluate(() => performance.now());
    // the buyer's encoder switches the top layer off for 2 s: the node moves the viewer's main
    // picture to the lower layer at its next keyframe
    publisher.pauseLayer('f', 2_000);
    const pictures: Picture[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(250);
      pictures.push(await staff.page.evaluate(() => window.returncam!.state.picture!));
    }
    const seen = (await staff.page.evaluate(() => window.framesSeen ?? [])).filter(
      (f) => f.at >= droppedAt - 500,
    );
    const state = await staff.page.evaluate(() => window.returncam!.state);
    const longestGap = (times: number[]) =>
      times.slice(1).reduce((m, t, i) => Math.max(m, t - times[i]!), 0);
    const main = longestGap(seen.filter((f) => f.which === 'main').map((f) => f.at));
    // what the viewer saw: the same rule the page applies, over the frames it presented
    const rule = new PictureFallback();
    const onScreen = longestGap(
      seen.filter((f) => rule.frame(f.which, f.at) === f.which).map((f) => f.at),
    );
    console.info(
      `backup picture: main picture stood still ${Math.round(main)} ms at the top layer's drop, ` +
        `the picture on screen ${Math.round(onScreen)} ms; page showed ${pictures.join(',')}; ` +
        `fallbacks ${fallbacksBefore} -> ${state.fallbacks}`,
    );
    // without the backup the viewer would have seen a freeze (Chrome counts one at ~180 ms)
    expect(main).toBeGreaterThan(300);
    // the page went over to the backup picture, and what was on screen never froze
    expect(state.fallbacks!).toBeGreaterThan(fallbacksBefore);
    expect(pictures).toContain('backup');
    expect(onScreen).toBeLessThan(180);
    // and back to the main picture once it moved again
    expect(pictures.at(-1)).toBe('main');
  });
});
