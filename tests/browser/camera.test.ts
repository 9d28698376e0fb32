import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DESKTOP,
  hasChromium,
  launchBrowser,
  PHONE,
  sleep,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/** The audio the page has received so far: its energy grows while the other side talks. */
function receivedAudio(
  page: Page,
): Promise<{ energy: number; packets: number; samples: number; concealed: number }> {
  return page.evaluate(async () => {
    const report = await window.returncam!.peerConnections.subscribe!.getStats();
    const out = { energy: 0, packets: 0, samples: 0, concealed: 0 };
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      out.energy += s.totalAudioEnergy ?? 0;
      out.packets += s.packetsReceived ?? 0;
      out.samples += s.totalSamplesReceived ?? 0;
      out.concealed += s.concealedSamples ?? 0;
    });
    return out;
  });
}

/** The energy of the audio the page has sent so far (after its echo canceller and the rest). */
function sentAudioEnergy(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const report = await window.returncam!.peerConnections.publish!.getStats();
    let energy = 0;
    report.forEach((s) => {
      if (s.type === 'media-source' && s.kind === 'audio') energy += s.totalAudioEnergy ?? 0;
    });
    return energy;
  });
}

/** The buyer's call controls and prompts, seen from the staff page. */
describe.skipIf(!hasChromium)("the buyer's call controls", () => {
  let tn: TestNode;
  let buyer: TestBrowser;
  let staff: TestBrowser;
  let staffUrl: string;

  beforeAll(async () => {
    tn = await startTestNode();
    const created = tn.node.cases.create({
      orderId: 'ORD-CAM',
      sku: 'LAMP-DESK-LED',
      reason: 'defective',
    });
    [buyer, staff] = await Promise.all([
      launchBrowser({ viewport: PHONE, isMobile: true, cameras: 2 }),
      launchBrowser({ viewport: DESKTOP }),
    ]);
    // The staff's microphone opens 4 s late, as a slow permission prompt or device would: the
    // buyer's audio arrives first, when Chromium lets a page without a click or a capture
    // running play it only muted.
    await staff.page.addInitScript(() => {
      const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = (c) =>
        new Promise((resolve) => setTimeout(resolve, 4000)).then(() => open(c));
    });
    staffUrl = created.links.staff.url;
    await staff.page.goto(staffUrl);
    await buyer.page.goto(created.links.buyer.url);
    await buyer.page.click('#start');
    await staff.page.waitForFunction(
      () => (window.returncam?.state.framesDecoded ?? 0) > 10,
      undefined,
      {
        timeout: 20_000,
      },
    );
  });

  afterAll(async () => {
    await Promise.all([buyer?.close(), staff?.close()]);
    await tn?.close();
  });

  const buyerState = () => buyer.page.evaluate(() => window.returncam!.state);

  it("switches the buyer's camera on the same connection", async () => {
    const senderLabel = () =>
      buyer.page.evaluate(
        () =>
          window
            .returncam!.peerConnections.publish!.getSenders()
            .find((s) => s.track?.kind === 'video')?.track?.label,
      );
    expect(await buyer.page.locator('#flip').isVisible()).toBe(true);
    const first = await senderLabel();
    const { reconnects } = await buyerState();
    // Chromium's second fake camera shows in <video> but its frames never reach the encoder,
    // so switch there and back: the staff page must then see the first camera again
    await buyer.page.click('#flip');
    await expect.poll(senderLabel).not.toBe(first);
    await buyer.page.click('#flip');
    await expect.poll(senderLabel).toBe(first);
    const frames = await staff.page.evaluate(() => window.returncam!.state.framesDecoded ?? 0);
    await staff.page.waitForFunction(
      (n) => (window.returncam?.state.framesDecoded ?? 0) > n + 15,
      frames,
    );
    // replaceTrack, no renegotiation: still the first WHIP session
    expect((await buyerState()).reconnects).toBe(reconnects);
  });

  it("plays the buyer's sound on the staff page once its microphone is open, without a click", async () => {
    const sound = () =>
      staff.page.evaluate(() => ({
        blocked: window.returncam!.state.soundBlocked,
        muted: (document.getElementById('remote') as HTMLVideoElement).muted,
        mic: window.returncam!.state.micOn,
      }));
    await expect
      .poll(sound, { timeout: 10_000 })
      .toEqual({ blocked: false, muted: false, mic: true });
    expect(await staff.page.locator('#sound').isVisible()).toBe(false);
  });

  it('mutes and unmutes the buyer for the staff', async () => {
    // What arrived over `ms`: if no energy, the packet and sample counts tell a node that sent
    // nothing from a browser that did not play what it got; the staff video's muted flag, a page
    // held to muted play by the autoplay rule; the buyer's own sent energy, a silent buyer.
    let last = '';
    const energyOver = async (ms: number) => {
      const [a, sentA] = await Promise.all([
        receivedAudio(staff.page),
        sentAudioEnergy(buyer.page),
      ]);
      await sleep(ms);
      const [b, sentB] = await Promise.all([
        receivedAudio(staff.page),
        sentAudioEnergy(buyer.page),
      ]);
      const muted = await staff.page.evaluate(
        () => (document.getElementById('remote') as HTMLVideoElement).muted,
      );
      last = `video muted ${muted}, packets +${b.packets - a.packets}, samples +${b.samples - a.samples}, concealed +${b.concealed - a.concealed}; energy sent by the buyer +${(sentB - sentA).toPrecision(3)}`;
      return b.energy - a.energy;
    };
    // the buyer's tone is flowing before anything is muted (on a loaded machine audio can start
    // a moment after the previous test's checks)
    let loud = 0;
    await expect
      .poll(
        async () => {
          loud = await energyOver(1200);
          return loud;
        },
        { timeout: 10_000 },
      )
      .toBeGreaterThan(0)
      .catch((err: unknown) => {
        throw new Error(`no audio energy at the staff page over 10 s (last 1.2 s: ${last})`, {
          cause: err,
        });
      });
    await buyer.page.click('#mute');
    expect(await buyer.page.locator('#mute').getAttribute('aria-pressed')).toBe('true');
    expect(await buyer.page.locator('#mute').getAttribute('aria-label')).toBe('Unmute microphone');
    await sleep(500);
    // silence (the jitter buffer may still play out a few milliseconds of the tone)
    const muted = await energyOver(1200);
    console.info(`received audio energy: ${loud} talking, ${muted} muted`);
    expect(muted).toBeLessThan(loud / 20);
    await buyer.page.click('#mute');
    await expect.poll(() => energyOver(1200), { timeout: 6000 }).toBeGreaterThan(loud / 4);
  });

  it("shows a prompt in each reader's own language", async () => {
    await staff.page.selectOption('#lang', 'zh-CN');
    const chip = staff.page.locator('button[data-prompt="prompt.damage"]');
    await expect.poll(() => chip.textContent()).toBe('请展示损坏处');
    await chip.click();
    await expect
      .poll(() => buyer.page.locator('#prompt-text').textContent())
      .toBe('Show the damage');
    await expect
      .poll(() => staff.page.locator('#messages .msg-prompt .msg-text').last().textContent())
      .toBe('请展示损坏处');
    await staff.page.selectOption('#lang', 'en');
  });

  it('tells staff without a microphone that the buyer cannot hear them; video still plays', async () => {
    const nomic = await launchBrowser({ viewport: DESKTOP, fakeUi: false });
    try {
      await nomic.page.goto(staffUrl);
      const loadedAt = Date.now();
      // (the page asks for the microphone once the case has loaded; a busy machine can take
      // longer than expect.poll's default second to get there and be refused)
      await expect
        .poll(() => nomic.page.locator('#notice').getAttribute('data-key'), { timeout: 10_000 })
        .toBe('staff.micDenied');
      console.info(`microphone refused: notice ${Date.now() - loadedAt} ms after the page loaded`);
      expect(await nomic.page.locator('#notice-text').textContent()).toContain(
        'the buyer cannot hear you',
      );
      expect(await nomic.page.locator('#mic').isDisabled()).toBe(true);
      await nomic.page.waitForFunction(
        () => (window.returncam?.state.framesDecoded ?? 0) > 5,
        undefined,
        {
          timeout: 10_000,
        },
      );
    } finally {
      await nomic.close();
    }
  });

  it('ends the call and rejoins', async () => {
    await buyer.page.click('#end');
    await expect.poll(() => buyer.page.locator('#ended').isVisible()).toBe(true);
    // both sessions were ended on the node (DELETE on their Location)
    await expect
      .poll(() => staff.page.evaluate(() => window.returncam!.state.buyerLive))
      .toBe(false);
    await buyer.page.click('#rejoin');
    await expect
      .poll(async () => (await buyerState()).publish, { timeout: 10_000 })
      .toBe('connected');
    await expect
      .poll(() => staff.page.evaluate(() => window.returncam!.state.buyerLive))
      .toBe(true);
  });
});
