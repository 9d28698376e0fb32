import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import type { PublisherSession } from '../../src/node/media/PublisherSession.ts';
import type { SubscriberSession } from '../../src/node/media/SubscriberSession.ts';
import {
  DESKTOP,
  hasChromium,
  launchBrowser,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';
import { fileDir } from '../helpers/tmp.ts';

warnIfNoChromium();

interface PageIds {
  sessionIds: { publish?: string; subscribe?: string };
  simulcast?: boolean;
}

const dir = fileDir('returncam-camera-');

/** A moving test picture of `width` x `height` as a Y4M file, for Chromium's file camera. */
function cameraFile(width: number, height: number): string {
  const file = join(dir, `camera-${width}x${height}.y4m`);
  execFileSync(ffmpegPath(), [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=30`,
    '-t',
    '2',
    '-pix_fmt',
    'yuv420p',
    '-y',
    file,
  ]);
  return file;
}

describe.skipIf(!hasChromium)('simulcast layers follow the buyer camera size', () => {
  let tn: TestNode | undefined;
  let browsers: TestBrowser[] = [];

  afterEach(async () => {
    await Promise.all(browsers.map((b) => b.close()));
    browsers = [];
    await tn?.close();
    tn = undefined;
  });

  it.each([
    [640, 360, ['h', 'f']],
    [1280, 720, ['q', 'h', 'f']],
  ])(
    'a %ix%i camera: layers %j, and the staff viewer plays the full width',
    async (width, height, rids) => {
      tn = await startTestNode();
      const created = tn.node.cases.create({ orderId: 'ORD-CAM', sku: 'SKU-C', reason: 'damaged' });
      const caseId = created.case.id;
      const [buyer, staff] = await Promise.all([
        launchBrowser({ viewport: DESKTOP, cameraFile: cameraFile(width, height) }),
        launchBrowser({ viewport: DESKTOP }),
      ]);
      browsers = [buyer, staff];
      await staff.page.goto(created.links.staff.url);
      await buyer.page.goto(created.links.buyer.url);
      await buyer.page.click('#start');
      await staff.page.waitForFunction(
        () => (window.returncam?.state.framesDecoded ?? 0) > 10,
        undefined,
        { timeout: 30_000 },
      );

      const camera = await buyer.page.evaluate(() => {
        const pc = window.returncam!.peerConnections.publish!;
        return pc
          .getSenders()
          .find((s) => s.track?.kind === 'video')!
          .track!.getSettings();
      });
      expect([camera.width, camera.height]).toEqual([width, height]);
      const buyerState = (await buyer.page.evaluate(
        () => window.returncam!.state,
      )) as unknown as PageIds;
      expect(buyerState.simulcast).toBe(true);
      const offer = await buyer.page.evaluate(
        () => window.returncam!.peerConnections.publish!.localDescription!.sdp,
      );
      expect(offer).toMatch(new RegExp(`^a=simulcast:send ${rids.join(';')}$`, 'm'));

      // The node receives every layer, the top one included.
      const publisher = tn.node.rooms.publisher(
        caseId,
        'buyer',
        buyerState.sessionIds.publish!,
      ) as PublisherSession;
      expect(publisher.videoLayers.map((l) => l.rid)).toEqual(rids);
      await expect
        .poll(() => publisher.videoLayers.map((l) => l.bitrate(performance.now()) > 0), {
          timeout: 30_000,
        })
        .toEqual(rids.map(() => true));

      // The staff page plays the top layer: frames as wide as the camera.
      await expect
        .poll(() => staff.page.evaluate(() => window.returncam!.state.videoWidth), {
          timeout: 40_000,
          interval: 500,
        })
        .toBe(width);
      const staffIds = (await staff.page.evaluate(
        () => window.returncam!.state,
      )) as unknown as PageIds;
      const viewer = tn.node.rooms.session(caseId, staffIds.sessionIds.subscribe!) as
        | SubscriberSession
        | undefined;
      console.info(
        `camera ${width}x${height}: layers ${publisher.videoLayers
          .map((l) => `${l.rid} ${Math.round(l.bitrate(performance.now()) / 1000)} kbit/s`)
          .join(', ')}; staff ${JSON.stringify(viewer?.quality)}`,
      );
      expect(viewer?.quality).toMatchObject({ rid: 'f', layer: rids.length - 1 });
    },
    120_000,
  );
});
