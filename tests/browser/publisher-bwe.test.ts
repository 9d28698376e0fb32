import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/bench/profiles.ts';
import { RelayHub } from '../../src/bench/relay/RelayHub.ts';
import type { UdpRelay } from '../../src/bench/relay/UdpRelay.ts';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';
import {
  hasChromium,
  launchBrowser,
  type TestBrowser,
  warnIfNoChromium,
} from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/** The buyer's video ceiling on the clean link, kbit/s: well inside what the camera below can use. */
const CEILING_KBPS = 800;

/**
 * A camera that can fill the ceiling: 640x480 at 30 fps of moving test pattern under fresh noise
 * in every frame, which no encoder compresses below a few Mbit/s. (Chromium's built-in fake
 * camera is so simple that its encoder undershoots any target.)
 */
function noisyCameraFile(): string {
  const dir = fileURLToPath(new URL('../output/fake-camera/', import.meta.url));
  const file = join(dir, 'noise10-640x480.y4m');
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp.y4m`;
  execFileSync(ffmpegPath(), [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x480:rate=30,noise=alls=10:allf=t',
    '-frames:v',
    '60',
    '-pix_fmt',
    'yuv420p',
    tmp,
  ]);
  renameSync(tmp, file);
  return file;
}

interface Sample {
  /** Seconds since the publisher connected. */
  t: number;
  /** Chrome's bandwidth estimate for the connection (candidate-pair availableOutgoingBitrate), kbit/s. */
  available: number;
  /** The video encoder's target (outbound-rtp targetBitrate), kbit/s. */
  target: number;
  /** Everything sent over the last second (candidate-pair bytesSent: RTP and RTCP, audio and video), kbit/s. */
  sent: number;
  /** outbound-rtp qualityLimitationReason of the video. */
  limit: string;
  /** Frames per second of the widest video layer being sent (0 when none is). */
  topFps: number;
}

/** Chrome's view of the publisher connection, once a second for `seconds` seconds. */
function sampleSendRate(page: Page, seconds: number): Promise<Sample[]> {
  return page.evaluate(async (seconds) => {
    const pc = window.returncam!.peerConnections.publish!;
    const read = async () => {
      const report = await pc.getStats();
      // The pair in use is the transport's selected one (others may be nominated too).
      const byId = new Map<string, { availableOutgoingBitrate?: number; bytesSent?: number }>();
      let selected = '';
      let target = 0;
      let limit = '';
      let topWidth = 0;
      let topFps = 0;
      report.forEach((s) => {
        byId.set(s.id, s);
        if (s.type === 'transport') selected = s.selectedCandidatePairId ?? selected;
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          target += s.targetBitrate ?? 0;
          limit = s.qualityLimitationReason ?? '';
          if ((s.frameWidth ?? 0) > topWidth && (s.targetBitrate ?? 0) > 0) {
            topWidth = s.frameWidth;
            topFps = s.framesPerSecond ?? 0;
          }
        }
      });
      const pair = byId.get(selected);
      return {
        at: performance.now(),
        available: pair?.availableOutgoingBitrate ?? 0,
        bytes: pair?.bytesSent ?? 0,
        target,
        limit,
        topFps,
      };
    };
    const out: Sample[] = [];
    let last = await read();
    const start = last.at;
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await read();
      out.push({
        t: Math.round((now.at - start) / 100) / 10,
        available: Math.round(now.available / 1000),
        target: Math.round(now.target / 1000),
        sent: Math.round(((now.bytes - last.bytes) * 8) / (now.at - last.at)),
        limit: now.limit,
        topFps: now.topFps,
      });
      last = now;
    }
    return out;
  }, seconds);
}

/** Opens the buyer page of a new case and starts publishing; resolves when connected. */
async function startBuyer(tn: TestNode, page: Page): Promise<void> {
  const created = tn.node.cases.create({ orderId: 'ORD-BWE', sku: 'CAM-1', reason: 'damaged' });
  await page.goto(created.links.buyer.url);
  await page.click('#start');
  await page.waitForFunction(
    () => window.returncam?.peerConnections.publish?.connectionState === 'connected',
    undefined,
    { timeout: 20_000 },
  );
}

/** One line per sample, for failure messages and the log. */
const describeSamples = (samples: Sample[]) =>
  samples
    .map(
      (s) =>
        `${s.t}s: estimate ${s.available}, encoder ${s.target}, sent ${s.sent} (${s.limit}), top layer ${s.topFps} fps`,
    )
    .join('; ');

/**
 * A buyer's Chrome publishing to the node (WHIP) on a clean loopback link must ramp to the
 * configured ceiling within seconds: the node answers transport-wide congestion control with
 * feedback Chrome's delay-based estimator trusts, and caps the video with b=AS/b=TIAS.
 */
describe.skipIf(!hasChromium)('publisher bandwidth estimate', () => {
  let tn: TestNode;
  let buyer: TestBrowser;

  beforeAll(async () => {
    tn = await startTestNode({
      media: { maxBitrateKbps: { buyer: CEILING_KBPS } },
      recording: { enabled: false },
    });
    buyer = await launchBrowser({ cameraFile: noisyCameraFile() });
  });

  afterAll(async () => {
    await buyer?.close();
    await tn?.close();
  });

  it(`ramps the buyer's video to the ${CEILING_KBPS} kbit/s ceiling within 10 s and stays under it`, async () => {
    const page = buyer.page;
    await startBuyer(tn, page);
    // What the node told Chrome: transport-cc on, the ceiling on the video, Opus FEC and DTX.
    const remote = await page.evaluate(
      () => window.returncam!.peerConnections.publish!.remoteDescription!.sdp,
    );
    const video = remote.slice(remote.indexOf('m=video'));
    // (Chrome keeps one bandwidth line of the two the node sends: the last, b=TIAS.)
    expect(video).toMatch(/\r\nb=(AS:800|TIAS:800000)\r\n/);
    expect(video).toMatch(/a=rtcp-fb:\d+ transport-cc/);
    expect(remote).toMatch(/a=fmtp:111 .*useinbandfec=1/);
    expect(remote).toMatch(/a=fmtp:111 .*usedtx=1/);

    const samples = await sampleSendRate(page, 12);
    const table = describeSamples(samples);
    console.info(`publisher ramp, kbit/s (ceiling ${CEILING_KBPS}): ${table}`);

    // Within 10 s of connecting, Chrome's estimate reaches 90 % of the ceiling...
    const ramped = samples.find((s) => s.available >= 0.9 * CEILING_KBPS);
    expect(ramped?.t ?? Number.POSITIVE_INFINITY, table).toBeLessThanOrEqual(10.5);
    // ...and what it sends follows: the estimate also covers audio and packet headers (UDP/IP
    // headers are not in bytesSent), so the payload sent is a little under it.
    const sending = samples.find((s) => s.sent >= 0.8 * CEILING_KBPS);
    expect(sending?.t ?? Number.POSITIVE_INFINITY, table).toBeLessThanOrEqual(10.5);
    // Once there, it stays: a false congestion signal in the feedback would pull it down again
    // (werift's own feedback took Chrome from 215 to 34 kbit/s within 8 s).
    for (const s of samples.filter((x) => x.t > ramped!.t)) {
      expect(s.available, table).toBeGreaterThanOrEqual(0.75 * CEILING_KBPS);
    }
    // Nothing goes more than 10 % over the ceiling: not the estimate, the encoder or the link.
    for (const s of samples) {
      expect(s.available, table).toBeLessThanOrEqual(1.1 * CEILING_KBPS);
      expect(s.target, table).toBeLessThanOrEqual(1.1 * CEILING_KBPS);
      expect(s.sent, table).toBeLessThanOrEqual(1.1 * CEILING_KBPS);
    }
  });
});

/**
 * The buyer's 3G uplink shrinks what Chrome may send below the node's ceiling: 750 kbit/s with a
 * 40-packet queue, 1.5 % random loss, 125 ms ±10 ms one way (comcast's "3G/HSDPA (good)":
 * 750 kbit/s, 1.5 % loss, 250 ms round trip), through the benchmark's userspace relay. Chrome
 * must settle within 50-100 % of that cap and never stay under 50 % for more than 2 s: backing
 * off on the queue's delay, not collapsing on the random loss. Once with the node's defaults
 * (publisher FEC on: Chrome adds ULPFEC on this loss, out of the same rate), once without FEC,
 * where the video keeps all of it and the widest layer must run at 15 fps or more.
 */
describe.skipIf(!hasChromium).each([
  { fec: true, name: 'with publisher FEC (the default)' },
  { fec: false, name: 'without FEC' },
])('publisher bandwidth estimate on a lossy 3G uplink, $name', ({ fec }) => {
  const UPLINK_KBPS = 750;
  let tn: TestNode;
  let hub: RelayHub;
  let relay: UdpRelay;
  let buyer: TestBrowser;

  beforeAll(async () => {
    tn = await startTestNode({
      media: { maxBitrateKbps: { buyer: 1500 }, publisherFec: fec },
      recording: { enabled: false },
    });
    const profile = parseProfile(
      {
        name: 'buyer-3g-uplink',
        buyer: {
          up: {
            delay: '125ms',
            jitter: '10ms',
            loss: 0.015,
            rateKbps: UPLINK_KBPS,
            queuePackets: 40,
          },
          down: { delay: '125ms', jitter: '10ms', rateKbps: 1440, queuePackets: 60 },
        },
      },
      'test',
    );
    hub = new RelayHub({ profile, seed: 1 });
    relay = await hub.create('buyer', 'buyer-1');
    hub.start(performance.now());
    buyer = await launchBrowser({ cameraFile: noisyCameraFile() });
    // The buyer's WHIP exchange names the relay on both sides, so every packet crosses it.
    await buyer.page.route(/\/whip\/[^/]+$/, async (route) => {
      const request = route.request();
      if (request.method() !== 'POST') return route.continue();
      const response = await route.fetch({
        postData: relay.rewriteClientSdp(request.postData() ?? ''),
      });
      const body = await response.text();
      await route.fulfill({
        response,
        body: response.status() === 201 ? relay.rewriteNodeSdp(body) : body,
      });
    });
  });

  afterAll(async () => {
    await buyer?.close();
    hub?.close();
    await tn?.close();
  });

  it(`settles within 50-100 % of a ${UPLINK_KBPS} kbit/s uplink and never collapses for more than 2 s`, async () => {
    const page = buyer.page;
    await startBuyer(tn, page);
    const samples = await sampleSendRate(page, 25);
    const table = describeSamples(samples);
    console.info(
      `publisher on a ${UPLINK_KBPS} kbit/s 1.5 % loss uplink (FEC ${fec ? 'on' : 'off'}), kbit/s: ${table}; FEC rebuilt ${tn.node.media.counters.fecRecovered}`,
    );

    // It gets going: half the uplink within 10 s of connecting.
    const rampAt = samples.findIndex((s) => s.sent >= 0.5 * UPLINK_KBPS);
    expect(rampAt, table).toBeGreaterThanOrEqual(0);
    expect(samples[rampAt]!.t, table).toBeLessThanOrEqual(10.5);
    // After that, the median second is within 50-100 % of the uplink...
    const after = samples.slice(rampAt + 1).map((s) => s.sent);
    const median = [...after].sort((a, b) => a - b)[Math.floor(after.length / 2)]!;
    expect(median, table).toBeGreaterThanOrEqual(0.5 * UPLINK_KBPS);
    expect(median, table).toBeLessThanOrEqual(UPLINK_KBPS);
    // ...and it is never under half of it for more than two seconds in a row.
    let run = 0;
    let longest = 0;
    for (const kbps of after) {
      run = kbps < 0.5 * UPLINK_KBPS ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    expect(longest, table).toBeLessThanOrEqual(2);
    if (fec) {
      // Chrome protected its video, and the node rebuilt lost packets from it.
      expect(tn.node.media.counters.fecRecovered, table).toBeGreaterThan(0);
    } else {
      // What it sends is live video: the widest layer keeps a median of at least 15 fps.
      // (Encoded as a screen share, Chrome held it at its minimum rate and 6-10 fps here.)
      const fps = samples.slice(rampAt + 1).map((s) => s.topFps);
      const medianFps = [...fps].sort((a, b) => a - b)[Math.floor(fps.length / 2)]!;
      expect(medianFps, table).toBeGreaterThanOrEqual(15);
    }
  });
});
