import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedLink } from '../../src/node/cases/CaseService.ts';
import {
  DESKTOP,
  hasChromium,
  launchBrowser,
  PHONE,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/** Whether a datagram is DTLS (RFC 7983: first byte 20-63) with a ChangeCipherSpec record in it. */
function holdsChangeCipherSpec(data: Buffer): boolean {
  if (data.length < 13 || data[0]! < 20 || data[0]! > 63) return false;
  for (let at = 0; at + 13 <= data.length; at += 13 + data.readUInt16BE(at + 11)) {
    if (data[at] === 20) return true;
  }
  return false;
}

/**
 * Loses, for every peer address and in each direction, the first datagram of the node's UDP
 * sockets that carries a ChangeCipherSpec: the DTLS handshake's last flight from whichever side
 * is the server, and the client's flight before it. Returns what it dropped and how to stop.
 */
function loseFirstChangeCipherSpec() {
  const proto = dgram.Socket.prototype;
  const emit = proto.emit;
  const send = proto.send;
  const dropped: string[] = [];
  const lose = (key: string, data: unknown) => {
    if (!Buffer.isBuffer(data) || !holdsChangeCipherSpec(data) || dropped.includes(key)) {
      return false;
    }
    dropped.push(key);
    return true;
  };
  proto.emit = function (this: dgram.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'message') {
      const rinfo = args[1] as dgram.RemoteInfo;
      if (lose(`from ${rinfo.address}:${rinfo.port}`, args[0])) return true;
    }
    return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof proto.emit;
  proto.send = function (this: dgram.Socket, data: unknown, ...rest: unknown[]) {
    const [port, address] = rest;
    if (typeof port === 'number' && typeof address === 'string') {
      if (lose(`to ${address}:${port}`, data)) {
        const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        callback?.();
        return;
      }
    }
    return (send as (...a: unknown[]) => void).call(this, data, ...rest);
  } as typeof proto.send;
  return {
    dropped,
    stop: () => {
      proto.emit = emit;
      proto.send = send;
    },
  };
}

/**
 * The DTLS handshake of a phone on a lossy uplink: a lost handshake datagram must cost a
 * retransmission, not the call. Both pages in real Chromium against a real node, with the first
 * datagram carrying a ChangeCipherSpec lost each way on every path.
 */
describe.skipIf(!hasChromium)('a DTLS handshake datagram lost on the way', () => {
  let tn: TestNode;
  let buyer: TestBrowser;
  let staff: TestBrowser;
  let links: { buyer: IssuedLink; staff: IssuedLink };
  let loss: ReturnType<typeof loseFirstChangeCipherSpec> | undefined;

  beforeAll(async () => {
    tn = await startTestNode();
    links = tn.node.cases.create({ orderId: 'ORD-DTLS', sku: 'SKU-DTLS', reason: 'damaged' }).links;
    [buyer, staff] = await Promise.all([
      launchBrowser({ viewport: PHONE, isMobile: true }),
      launchBrowser({ viewport: DESKTOP }),
    ]);
  });

  afterAll(async () => {
    loss?.stop();
    await Promise.all([buyer?.close(), staff?.close()]);
    await tn?.close();
  });

  it('costs a retransmission: the staff page still gets the buyer video', async () => {
    loss = loseFirstChangeCipherSpec();
    await staff.page.goto(links.staff.url);
    await buyer.page.goto(links.buyer.url);
    await buyer.page.click('#start');
    await staff.page.waitForFunction(
      () => (window.returncam?.state.framesDecoded ?? 0) > 20,
      undefined,
      {
        timeout: 20_000,
      },
    );
    // the loss happened: on the buyer's path and the staff page's, the browser's datagram
    // (each page has a publish and a subscribe session: four paths, each lost one)
    const fromBrowsers = loss.dropped.filter((d) => d.startsWith('from '));
    console.info(`lost: ${loss.dropped.join(', ')}`);
    expect(fromBrowsers.length).toBeGreaterThanOrEqual(2);
    const state = await buyer.page.evaluate(() => window.returncam!.state);
    expect(state.publish).toBe('connected');
    // no session was given up and made again: the first ones connected
    expect(state.reconnects ?? 0).toBe(0);
  });
});
