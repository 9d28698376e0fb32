import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hasChromium,
  launchBrowser,
  PHONE,
  screenshot,
  sleep,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/** What a buyer sees when the link, the case, the camera or the network is not right. */
describe.skipIf(!hasChromium)('the pages explain what went wrong', () => {
  let tn: TestNode;
  let browser: TestBrowser;

  const newCase = (orderId: string) =>
    tn.node.cases.create({
      orderId,
      sku: 'HEADPHONES-BT-200',
      reason: 'defective',
      marketplace: 'eBay UK',
    });

  /** Opens a URL in a fresh page of the shared browser; closes it after `fn`. */
  async function withPage<T>(
    b: TestBrowser,
    url: string,
    fn: (page: Page) => Promise<T>,
  ): Promise<T> {
    const page = await b.context.newPage();
    try {
      await page.goto(url);
      return await fn(page);
    } finally {
      await page.close();
    }
  }

  async function fatal(page: Page): Promise<{ kind: string | null; title: string | null }> {
    const box = page.locator('#fatal');
    await box.waitFor({ state: 'visible' });
    return {
      kind: await box.getAttribute('data-kind'),
      title: await page.locator('#fatal-title').textContent(),
    };
  }

  beforeAll(async () => {
    tn = await startTestNode();
    browser = await launchBrowser({ viewport: PHONE, isMobile: true });
  });

  afterAll(async () => {
    await browser?.close();
    await tn?.close();
  });

  it('says when the link has expired', async () => {
    const c = newCase('ORD-EXPIRED');
    const link = tn.node.cases.issueLink(c.case.id, 'buyer', 1);
    await sleep(5);
    await withPage(browser, link.url, async (page) => {
      expect(await fatal(page)).toEqual({ kind: 'expired', title: 'This link has expired' });
      await screenshot(page, 'buyer-phone-expired');
    });
  });

  it('says when the link was revoked', async () => {
    const c = newCase('ORD-REVOKED');
    tn.node.cases.revoke(c.case.id, 'buyer');
    await withPage(browser, c.links.buyer.url, async (page) => {
      expect(await fatal(page)).toEqual({ kind: 'revoked', title: 'This link is no longer valid' });
    });
  });

  it('refuses a link of another case, a tampered link and a buyer link on the staff page', async () => {
    const a = newCase('ORD-CASE-A');
    const b = newCase('ORD-CASE-B');
    const badLink = { kind: 'badLink', title: 'This link is not valid' };
    // case A's buyer token on case B's page
    await withPage(browser, `${tn.url}/b/${b.case.id}#t=${a.links.buyer.token}`, async (page) => {
      expect(await fatal(page)).toEqual(badLink);
      // nothing of case B leaked onto the page
      expect(await page.content()).not.toContain('ORD-CASE-B');
    });
    const tampered = `${a.links.buyer.token.slice(0, -4)}AAAA`;
    await withPage(browser, `${tn.url}/b/${a.case.id}#t=${tampered}`, async (page) => {
      expect(await fatal(page)).toEqual(badLink);
    });
    await withPage(browser, `${tn.url}/b/${a.case.id}`, async (page) => {
      expect(await fatal(page)).toEqual(badLink);
    });
    await withPage(browser, `${tn.url}/s/${a.case.id}#t=${a.links.buyer.token}`, async (page) => {
      expect(await fatal(page)).toEqual(badLink);
    });
  });

  it('says when the case is closed, on load and while the page is open', async () => {
    const closed = newCase('ORD-CLOSED');
    tn.node.cases.close(closed.case.id);
    await withPage(browser, closed.links.buyer.url, async (page) => {
      expect(await fatal(page)).toEqual({ kind: 'closed', title: 'This case is closed' });
    });
    const open = newCase('ORD-CLOSING');
    await withPage(browser, open.links.buyer.url, async (page) => {
      await page.locator('#intro').waitFor({ state: 'visible' });
      tn.node.cases.close(open.case.id);
      expect(await fatal(page)).toEqual({ kind: 'closed', title: 'This case is closed' });
    });
  });

  it('says when the network is gone, and sends the chat message once it is back', async () => {
    const c = newCase('ORD-OFFLINE');
    await withPage(browser, c.links.buyer.url, async (page) => {
      await page.locator('#intro').waitFor({ state: 'visible' });
      await browser.context.setOffline(true);
      try {
        await expect
          .poll(() => page.locator('#notice').getAttribute('data-key'))
          .toBe('error.network');
        expect(await page.locator('#notice-text').textContent()).toContain('No network connection');
        await page.fill('#chat-input', 'Are you still there?');
        await page.press('#chat-input', 'Enter');
        await expect.poll(() => page.locator('#messages .msg-failed').count()).toBe(1);
        expect(tn.node.cases.messages(c.case.id)).toEqual([]);
      } finally {
        await browser.context.setOffline(false);
      }
      await expect.poll(() => page.locator('#notice').isVisible()).toBe(false);
      // re-sent with the same clientId: stored once, shown once
      await expect.poll(() => tn.node.cases.messages(c.case.id).length, { timeout: 8000 }).toBe(1);
      await expect.poll(() => page.locator('#messages .msg-sent').count()).toBe(1);
      expect(await page.locator('#messages .msg').count()).toBe(1);
    });
  });

  it('says when video cannot connect and points to the chat', async () => {
    const c = newCase('ORD-NOVIDEO');
    const page = await browser.context.newPage();
    try {
      // the media endpoints are unreachable (e.g. a network that blocks them)
      await page.route('**/whip/**', (route) => route.abort('connectionrefused'));
      await page.route('**/whep/**', (route) => route.abort('connectionrefused'));
      await page.goto(c.links.buyer.url);
      await page.click('#start');
      await expect
        .poll(() => page.locator('#notice').getAttribute('data-key'), { timeout: 8000 })
        .toBe('buyer.fallback');
      expect(await page.locator('#notice-text').textContent()).toContain('Video cannot connect');
      expect(await page.locator('#quality').getAttribute('data-quality')).toBe('reconnecting');
      await page.fill('#chat-input', 'Video is not working here.');
      await page.press('#chat-input', 'Enter');
      await expect.poll(() => tn.node.cases.messages(c.case.id).length).toBe(1);
    } finally {
      await page.close();
    }
  });

  it('says when the camera is blocked, and keeps the chat working', async () => {
    const c = newCase('ORD-NOCAM');
    const denied = await launchBrowser({ viewport: PHONE, isMobile: true, fakeUi: false });
    try {
      await withPage(denied, c.links.buyer.url, async (page) => {
        await page.click('#start');
        await expect
          .poll(() => page.locator('#notice').getAttribute('data-key'))
          .toBe('error.camDenied');
        expect(await page.locator('#notice-text').textContent()).toContain(
          'Camera and microphone access is blocked',
        );
        expect(await page.locator('#notice-action').textContent()).toBe('Try again');
        // consent was recorded before the camera was asked for
        expect(tn.node.cases.events(c.case.id).map((e) => e.type)).toContain('consent.given');
        await page.fill('#chat-input', 'My camera does not work, can we chat?');
        await page.press('#chat-input', 'Enter');
        await expect
          .poll(() => tn.node.cases.messages(c.case.id).map((m) => m.body))
          .toEqual(['My camera does not work, can we chat?']);
        await screenshot(page, 'buyer-phone-camera-denied');
      });
    } finally {
      await denied.close();
    }
  });

  it('speaks Simplified Chinese to a Chinese browser and switches to English on request', async () => {
    const c = newCase('ORD-ZH');
    const zh = await launchBrowser({ viewport: PHONE, isMobile: true, locale: 'zh-CN' });
    try {
      await withPage(zh, c.links.buyer.url, async (page) => {
        await expect
          .poll(() => page.locator('#intro h1').textContent())
          .toBe('请向我们展示退货商品');
        expect(await page.locator('#start').textContent()).toBe('开始');
        expect(await page.evaluate(() => document.documentElement.lang)).toBe('zh-CN');
        await page.selectOption('#lang', 'en');
        await expect
          .poll(() => page.locator('#intro h1').textContent())
          .toBe('Show us your return');
        expect(await page.locator('#start').textContent()).toBe('Start');
      });
      // the choice is remembered
      await withPage(zh, c.links.buyer.url, async (page) => {
        await expect
          .poll(() => page.locator('#intro h1').textContent())
          .toBe('Show us your return');
      });
    } finally {
      await zh.close();
    }
  });
});
