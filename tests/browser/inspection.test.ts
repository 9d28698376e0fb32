import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedLink } from '../../src/node/cases/CaseService.ts';
import type { CaseRow } from '../../src/node/evidence/caseRows.ts';
import { EvidenceStore } from '../../src/node/evidence/EvidenceStore.ts';
import {
  DESKTOP,
  fakeCameraFile,
  hasChromium,
  inboundPackets,
  launchBrowser,
  PHONE,
  screenshot,
  sleep,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { runCli } from '../helpers/cli.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/**
 * A whole inspection in real Chromium: the buyer page on a phone-sized screen and the staff page
 * on a desktop, against a real node, with Chromium's fake microphone and a fake camera showing a
 * returned parcel (portrait, as from a phone held upright).
 */
describe.skipIf(!hasChromium)('an inspection between the buyer and staff pages', () => {
  let tn: TestNode;
  let buyer: TestBrowser;
  let staff: TestBrowser;
  let caseId: string;
  let links: { buyer: IssuedLink; staff: IssuedLink };

  beforeAll(async () => {
    tn = await startTestNode();
    const created = tn.node.cases.create({
      orderId: 'ORD-48213',
      sku: 'KETTLE-GLASS-1.7L',
      reason: 'damaged',
      marketplace: 'Amazon DE',
      warehouseId: 'SZX-2',
      note: 'Buyer reports a cracked lid hinge.',
    });
    caseId = created.case.id;
    links = created.links;
    [buyer, staff] = await Promise.all([
      launchBrowser({
        viewport: PHONE,
        isMobile: true,
        cameraFile: await fakeCameraFile(),
        timezoneId: 'Europe/Berlin',
      }),
      launchBrowser({ viewport: DESKTOP, timezoneId: 'Asia/Shanghai' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([buyer?.close(), staff?.close()]);
    await tn?.close();
  });

  const staffState = () => staff.page.evaluate(() => window.returncam!.state);
  const buyerState = () => buyer.page.evaluate(() => window.returncam!.state);

  it('staff sees and hears the buyer; the buyer hears the staff', async () => {
    await staff.page.goto(links.staff.url);
    await buyer.page.goto(links.buyer.url);
    await expect
      .poll(() => buyer.page.locator('#intro-order').textContent())
      .toContain('ORD-48213');
    expect(await buyer.page.locator('#intro h1').textContent()).toBe('Show us your return');
    await buyer.page.click('#start');

    await staff.page.waitForFunction(
      () =>
        (window.returncam?.state.framesDecoded ?? 0) > 20 &&
        (window.returncam?.state.videoWidth ?? 0) > 0,
      undefined,
      { timeout: 20_000 },
    );
    const video = await staff.page.evaluate(() => {
      const v = document.querySelector<HTMLVideoElement>('#remote')!;
      return { width: v.videoWidth, height: v.videoHeight };
    });
    expect(video.width).toBeGreaterThan(0);
    expect(video.height).toBeGreaterThan(0);
    expect(tn.node.cases.getCase(caseId).status).toBe('inspecting');

    // audio both ways: inbound-rtp audio packets keep rising on both pages
    const before = await Promise.all([
      inboundPackets(staff.page, 'audio'),
      inboundPackets(buyer.page, 'audio'),
    ]);
    await sleep(1500);
    const after = await Promise.all([
      inboundPackets(staff.page, 'audio'),
      inboundPackets(buyer.page, 'audio'),
    ]);
    expect(after[0]).toBeGreaterThan(before[0] + 10);
    expect(after[1]).toBeGreaterThan(before[1] + 10);

    await expect.poll(async () => (await buyerState()).quality, { timeout: 5000 }).toBe('good');
    await expect
      .poll(() => buyer.page.locator('#stage-status').getAttribute('data-key'))
      .toBe('buyer.staffHere');
    await expect
      .poll(() => staff.page.locator('#stats').textContent())
      .toMatch(/\d+×\d+ · [\d.]+ fps · .*RTT \d+ ms/);
    // times in each viewer's own zone
    await expect(buyer.page.locator('#timezone').textContent()).resolves.toContain('Europe/Berlin');
    await expect(staff.page.locator('#timezone').textContent()).resolves.toContain('Asia/Shanghai');
  });

  it("shows the staff's camera on the buyer page when staff turn it on", async () => {
    const remote = buyer.page.locator('#remote');
    expect(await remote.isVisible()).toBe(false);
    await staff.page.click('#cam');
    await expect.poll(() => staff.page.locator('#cam').getAttribute('aria-pressed')).toBe('true');
    await expect.poll(() => remote.isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await remote.evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
    await staff.page.click('#cam');
    await expect.poll(() => remote.isVisible(), { timeout: 10_000 }).toBe(false);
  });

  it('chat crosses both ways', async () => {
    await buyer.page.fill(
      '#chat-input',
      'Hi! The lid was already cracked when the parcel arrived.',
    );
    await buyer.page.press('#chat-input', 'Enter');
    await staff.page.fill(
      '#chat-input',
      'Thanks, we can see it. Please tilt the kettle towards the light.',
    );
    await staff.page.click('#chat-form button');
    for (const page of [buyer.page, staff.page]) {
      await expect
        .poll(() => page.locator('#messages .msg').allTextContents())
        .toEqual([
          expect.stringContaining('already cracked'),
          expect.stringContaining('tilt the kettle'),
        ]);
    }
    // each message shows once and is confirmed (no "sending" left)
    await expect.poll(() => buyer.page.locator('#messages .msg-sent').count()).toBe(2);
    expect(tn.node.cases.messages(caseId).map((m) => m.role)).toEqual(['buyer', 'staff']);
  });

  it('stores a snapshot at the full received resolution', async () => {
    await staff.page.click('#snapshot');
    await expect.poll(() => tn.node.cases.snapshots(caseId).length).toBe(1);
    const shot = tn.node.cases.snapshots(caseId)[0]!;
    const video = await staff.page.evaluate(() => {
      const v = document.querySelector<HTMLVideoElement>('#remote')!;
      return { width: v.videoWidth, height: v.videoHeight };
    });
    expect(shot.mime).toBe('image/jpeg');
    expect({ width: shot.width, height: shot.height }).toEqual(video);
    const strip = staff.page.locator('#snapshot-strip .strip-item img');
    await expect.poll(() => strip.count()).toBe(1);
    // the thumbnail really loads (img with ?access_token=)
    await expect
      .poll(() =>
        strip.first().evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth),
      )
      .toBe(shot.width);
  });

  it('shows a staff prompt as a large banner on the buyer page', async () => {
    await staff.page.click('button[data-prompt="prompt.label"]');
    const banner = buyer.page.locator('#prompt');
    await expect.poll(() => banner.isVisible()).toBe(true);
    await expect(buyer.page.locator('#prompt-text').textContent()).resolves.toBe('Show the label');
    const size = await buyer.page
      .locator('#prompt-text')
      .evaluate((el) => Number.parseFloat(getComputedStyle(el).fontSize));
    expect(size).toBeGreaterThanOrEqual(22);
    expect(tn.node.cases.messages(caseId).at(-1)).toMatchObject({
      role: 'staff',
      kind: 'prompt',
      body: 'Show the label',
    });
  });

  it('takes screenshots of both pages at phone and desktop sizes', async () => {
    await buyer.page.locator('#messages').evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await staff.page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('#snapshot-strip img');
      return !!img && img.complete;
    });
    await staff.page.locator('#toast').waitFor({ state: 'hidden' });
    await screenshot(buyer.page, 'buyer-phone');
    await screenshot(staff.page, 'staff-desktop');
    await buyer.page.setViewportSize(DESKTOP);
    await staff.page.setViewportSize(PHONE);
    await sleep(300);
    await screenshot(buyer.page, 'buyer-desktop');
    await screenshot(staff.page, 'staff-phone');
    await buyer.page.setViewportSize(PHONE);
    await staff.page.setViewportSize(DESKTOP);
  });

  it('replays the chat history after a reload of either page', async () => {
    await Promise.all([staff.page.reload(), buyer.page.reload()]);
    for (const page of [buyer.page, staff.page]) {
      await expect.poll(() => page.locator('#messages .msg').count()).toBe(3);
      await expect(page.locator('#messages .msg').first().textContent()).resolves.toContain(
        'already cracked',
      );
    }
    // the old prompt is history, not a new request
    expect(await buyer.page.locator('#prompt').isVisible()).toBe(false);
    // a reloaded staff page lists the stored snapshots again
    await expect.poll(() => staff.page.locator('#snapshot-strip .strip-item').count()).toBe(1);
    // the buyer starts the camera again; the staff page picks it up
    await buyer.page.click('#start');
    const frames = (await staffState()).framesDecoded ?? 0;
    await staff.page.waitForFunction(
      (n) => (window.returncam?.state.framesDecoded ?? 0) > n + 20,
      frames,
      {
        timeout: 15_000,
      },
    );
  });

  it("recovers the staff page's video after the buyer's connection is killed", async () => {
    await expect
      .poll(async () => (await buyerState()).publish, { timeout: 10_000 })
      .toBe('connected');
    const killedAt = Date.now();
    await buyer.page.evaluate(() => window.returncam!.peerConnections.publish!.close());
    // the staff page stops receiving, the buyer page reconnects by itself with a new WHIP POST
    await expect
      .poll(async () => (await buyerState()).reconnects, { timeout: 10_000 })
      .toBeGreaterThan(0);
    const frozen = (await staffState()).framesDecoded ?? 0;
    await staff.page.waitForFunction(
      (n) => (window.returncam?.state.framesDecoded ?? 0) > n + 5,
      frozen,
      {
        timeout: 15_000,
      },
    );
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(5000);
    expect((await buyerState()).publish).toBe('connected');
    console.info(`staff video recovered ${recoveredMs} ms after the buyer's connection was killed`);
  });

  it('records the decision and shows the new status on both pages', async () => {
    await staff.page.selectOption('#outcome', 'refund');
    await staff.page.selectOption('#disposition', 'refurbish');
    await staff.page.fill('#decision-note', 'Hinge crack visible on camera; packaging intact.');
    await staff.page.click('#decide');
    await expect.poll(() => tn.node.cases.getCase(caseId).status).toBe('decided');
    const c = tn.node.cases.getCase(caseId);
    expect(c).toMatchObject({ outcome: 'refund', disposition: 'refurbish' });
    expect(c.decisionNote).toContain('Hinge crack');
    await expect
      .poll(() => staff.page.locator('#status-pill').getAttribute('data-status'))
      .toBe('decided');
    await expect
      .poll(() => staff.page.locator('#decision-result').textContent())
      .toContain('Refund');
    await expect
      .poll(() => buyer.page.locator('#decision').textContent())
      .toBe('Your return has been reviewed: Refund.');
    // the buyer never sees the internal note
    expect(await buyer.page.content()).not.toContain('Hinge crack');
  });

  it("stores the staff's measured network quality, which export cases shows", async () => {
    const measured = () =>
      new EvidenceStore(tn.node.store)
        .caseData(caseId)!
        .sessions.filter((s) => s.role === 'staff' && s.direction === 'subscribe')
        .filter((s) => s.rttMs !== null && s.lossRatio !== null && s.freezeRatio !== null);
    // the reload above sent the first subscription's last report; the live one reports every ~10 s
    await expect.poll(() => measured().length, { timeout: 15_000 }).toBeGreaterThan(0);
    for (const s of measured()) {
      expect(s.rttMs).toBeGreaterThanOrEqual(0);
      expect(s.rttMs).toBeLessThan(1000);
      expect(s.lossRatio).toBeGreaterThanOrEqual(0);
      expect(s.lossRatio).toBeLessThanOrEqual(1);
      expect(s.freezeRatio).toBeGreaterThanOrEqual(0);
      expect(s.freezeRatio).toBeLessThanOrEqual(1);
    }
    const out = await runCli(['export', 'cases', '--data', tn.dataDir, '--format', 'json']);
    expect(out.exitCode, out.stderr).toBe(0);
    const row = (JSON.parse(out.stdout) as { cases: CaseRow[] }).cases.find(
      (c) => c.case_id === caseId,
    );
    expect(row).toMatchObject({
      rtt_ms: expect.any(Number),
      packet_loss: expect.any(Number),
      freeze_ratio: expect.any(Number),
    });
  });

  it('left no script errors or CSP violations on either page', () => {
    const relevant = (list: string[]) =>
      list.filter((e) => e.startsWith('pageerror') || e.includes('Content Security Policy'));
    expect(relevant(buyer.errors)).toEqual([]);
    expect(relevant(staff.errors)).toEqual([]);
  });
});
