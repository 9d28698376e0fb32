import { existsSync } from 'node:fs';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { errorMessage, UserError } from '../../core/errors.ts';
import type { BenchNode } from '../BenchNode.ts';
import type {
  BenchSession,
  BrowserSeries,
  FrameTimes,
  SenderSample,
  SessionCounters,
  ViewerSample,
} from '../BenchSession.ts';
import { FrameTap } from '../FrameTap.ts';
import type { RelayHub } from '../relay/RelayHub.ts';
import type { UdpRelay } from '../relay/UdpRelay.ts';
import { benchLayers, buyerPage, type PageConfig, staffPage } from './pages.ts';

/** Debian's Chromium (scripts/install-test-deps.sh installs it). */
export const CHROMIUM_PATH = process.env.RETURNCAM_CHROMIUM ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // pages that are not in front must keep their timers and rendering at full rate
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** One headless Chromium for every page of a run. */
export class BrowserHarness {
  private constructor(readonly browser: Browser) {}

  static async launch(): Promise<BrowserHarness> {
    if (!existsSync(CHROMIUM_PATH)) {
      throw new UserError(
        `--browser needs Chromium at ${CHROMIUM_PATH} (Debian: apt-get install chromium; or set RETURNCAM_CHROMIUM)`,
      );
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    return new BrowserHarness(browser);
  }

  close(): Promise<void> {
    return this.browser.close().catch(() => {});
  }
}

export interface Shown {
  ts: number;
  rtp?: number;
  received?: number;
  shown: number;
  width: number;
  height: number;
}

type Stats = Record<string, Record<string, unknown>>;

export interface BrowserSessionOptions {
  index: number;
  node: BenchNode;
  hub: RelayHub;
  harness: BrowserHarness;
  bitrateKbps: number;
  fps?: number;
  /** The buyer sends audio too (default true). */
  audio?: boolean;
  /** The buyer sends the product page's simulcast layers, the top one held to `bitrateKbps` (default true). */
  simulcast?: boolean;
  /**
   * The staff page also receives the backup picture and shows it while the main one stands
   * still, as the product's staff page does (default true).
   */
  backup?: boolean;
}

const PAGE_PATH = '/__returncam_bench';

/**
 * One call with real browsers: a buyer page (canvas camera, WHIP) and a staff page (WHEP) in
 * their own contexts, each page's WHIP/WHEP exchange intercepted so its SDP names the relay, so
 * the media crosses the impaired legs. The pages are served by the harness on the node's origin
 * (intercepted, never reaching the node), so no cross-origin rules apply.
 */
export class BrowserSession implements BenchSession {
  readonly index: number;
  readonly warnings: string[] = [];
  buyerRelay: UdpRelay | undefined;
  staffRelay: UdpRelay | undefined;
  private contexts: BrowserContext[] = [];
  private buyer: Page | undefined;
  private staff: Page | undefined;
  private upTap: FrameTap | undefined;
  private downTap: FrameTap | undefined;
  private readonly drawn: number[] = [];
  private readonly shown: Shown[] = [];
  private unreadable = 0;
  private mismatched = 0;
  private lastStats: { buyer?: Stats; staff?: Stats } = {};
  private readonly series: BrowserSeries = { sender: [], viewer: [], presented: [] };
  private closed = false;

  constructor(private readonly options: BrowserSessionOptions) {
    this.index = options.index;
  }

  async start(): Promise<void> {
    const { hub, node, index } = this.options;
    const buyerRelay = await hub.create(
      'buyer',
      `buyer-${index}`,
      (direction, phase, packet, at) => {
        if (direction === 'up' && phase === 'egress') this.upTap?.record(packet, at);
      },
    );
    const staffRelay = await hub.create(
      'staff',
      `staff-${index}`,
      (direction, phase, packet, at) => {
        if (direction === 'down' && phase === 'ingress') this.downTap?.record(packet, at);
      },
    );
    this.buyerRelay = buyerRelay;
    this.staffRelay = staffRelay;
    this.upTap = new FrameTap(() => buyerRelay.videoPts);
    this.downTap = new FrameTap(() => staffRelay.videoPts);
    const bench = await node.createCase(`bench-browser-${index}`);
    const base = {
      audio: this.options.audio ?? true,
      nodeUrl: node.url,
      caseId: bench.caseId,
      bitrateKbps: this.options.bitrateKbps,
      layers:
        (this.options.simulcast ?? true) ? benchLayers(this.options.bitrateKbps).layers : undefined,
      fps: this.options.fps ?? 30,
    };
    this.staff = await this.openPage(
      'staff',
      staffPage({ ...base, token: bench.staffToken, backup: this.options.backup ?? true }),
      staffRelay,
    );
    this.buyer = await this.openPage(
      'buyer',
      buyerPage({ ...base, token: bench.buyerToken }),
      buyerRelay,
    );
    await this.staff.evaluate(() => (window as unknown as BenchWindow).bench.start());
    await this.buyer
      .evaluate(() => (window as unknown as BenchWindow).bench.start())
      .catch((err: unknown) => {
        // A server that cannot take simulcast (an older node, another WHIP server) refuses the
        // buyer's offer; one layer is what it can be measured with.
        const refused = /whip (\d{3}): ?([^\n]*)/.exec(errorMessage(err));
        if (refused && base.layers) {
          throw new UserError(
            `the node refused the buyer's simulcast offer (HTTP ${refused[1]}: ${refused[2]!.trim().slice(0, 200) || 'no reason given'}); measure it with --no-simulcast`,
          );
        }
        throw err;
      });
    await this.waitConnected();
  }

  stopSending(): void {
    this.buyer?.evaluate(() => (window as unknown as BenchWindow).bench.stop()).catch(() => {});
  }

  /** Pulls what the pages measured since the last call. */
  async refresh(): Promise<void> {
    if (this.closed || !this.buyer || !this.staff) return;
    try {
      const drawn = await this.buyer.evaluate(() =>
        (window as unknown as BenchWindow).bench.takeDrawn(),
      );
      const taken = await this.staff.evaluate(() =>
        (window as unknown as BenchWindow).bench.take(),
      );
      this.drawn.push(...drawn);
      this.shown.push(...taken.frames);
      this.series.presented!.push(...taken.presented);
      this.unreadable = taken.unreadable;
      const [sent, viewed] = await Promise.all([
        this.buyer.evaluate(() => (window as unknown as BenchWindow).bench.takeSamples()),
        this.staff.evaluate(() => (window as unknown as BenchWindow).bench.takeSamples()),
      ]);
      this.series.connectedAt ??= sent.connectedAt;
      this.series.sender.push(...(sent.samples as SenderSample[]));
      this.series.viewer.push(...(viewed.samples as ViewerSample[]));
      await this.pollStats();
    } catch (err) {
      this.warn(`could not read the pages: ${errorMessage(err)}`);
    }
  }

  counters(): SessionCounters | undefined {
    if (!this.buyerRelay || !this.staffRelay) return undefined;
    const inbound = this.lastStats.staff?.['inbound-rtp:video'] ?? {};
    const outbound = this.lastStats.buyer?.['outbound-rtp:video'] ?? {};
    const n = (v: unknown) => (typeof v === 'number' ? v : 0);
    return {
      repair: {
        nacksFromViewers: n(inbound.nackCount),
        packetsNacked: n(inbound.nackCount),
        retransmitsReceived: n(inbound.retransmittedPacketsReceived),
        unrepairedPackets: n(inbound.packetsLost),
        plisFromViewers: n(inbound.pliCount),
        nacksAtPublishers: n(outbound.nackCount),
        keyframeRequestsAtPublishers: n(outbound.pliCount) + n(outbound.firCount),
      },
      buyer: this.buyerRelay.stats(),
      staff: this.staffRelay.stats(),
    };
  }

  /** Shown frames whose stamp belongs to the frame the browser reported: see {@link matchedStamps}. */
  private consistentShown(): Shown[] {
    const { kept, mismatched } = matchedStamps(this.shown);
    this.mismatched = mismatched;
    return kept;
  }

  frames(withPath = true): FrameTimes[] {
    const byTs = new Map<number, Shown>();
    for (const s of this.consistentShown()) if (!byTs.has(s.ts)) byTs.set(s.ts, s);
    const none = new Map<number, number>();
    const atNode = (withPath && this.upTap?.framesPassed()) || none;
    const fromNode = (withPath && this.downTap?.framesPassed()) || none;
    return this.drawn.map((ts) => {
      const s = byTs.get(ts);
      const rtp = s?.rtp;
      return {
        session: this.index,
        rtpTimestamp: rtp ?? -1,
        // a shown frame was decodable by definition; the browser's decoder handles the rest
        keyframe: true,
        sentAt: ts,
        atNode: rtp !== undefined ? atNode.get(rtp) : undefined,
        fromNode: rtp !== undefined ? fromNode.get(rtp) : undefined,
        receivedAt: s ? (s.received ?? s.shown) : undefined,
        shownAt: s?.shown,
      };
    });
  }

  recentFrames(since: number): FrameTimes[] {
    // a few browser sessions at most, with their frames as of the last refresh
    return this.frames(false).filter((f) => f.sentAt >= since);
  }

  browserSeries(): BrowserSeries {
    return {
      ...this.series,
      sender: [...this.series.sender],
      viewer: [...this.series.viewer],
      presented: [...(this.series.presented ?? [])],
    };
  }

  latenciesSince(since: number): number[] {
    const out: number[] = [];
    for (let i = this.shown.length - 1; i >= 0; i--) {
      const s = this.shown[i]!;
      if (s.shown < since) break;
      out.push(s.shown - s.ts);
    }
    return out;
  }

  async details(): Promise<Record<string, unknown>> {
    await this.pollStats();
    this.consistentShown();
    const inbound = this.lastStats.staff?.['inbound-rtp:video'] ?? {};
    const inboundAudio = this.lastStats.staff?.['inbound-rtp:audio'] ?? {};
    const outbound = this.lastStats.buyer?.['outbound-rtp:video'] ?? {};
    const n = (v: unknown) => (typeof v === 'number' ? v : undefined);
    const per = (total: unknown, count: unknown) =>
      n(total) !== undefined && n(count) ? (1000 * n(total)!) / n(count)! : undefined;
    const sizes = new Map<string, number>();
    for (const s of this.shown)
      sizes.set(`${s.width}x${s.height}`, (sizes.get(`${s.width}x${s.height}`) ?? 0) + 1);
    return {
      session: this.index,
      framesDrawn: this.drawn.length,
      framesShownReadable: this.shown.length,
      framesShownUnreadable: this.unreadable,
      framesStampMismatched: this.mismatched,
      resolutions: Object.fromEntries(sizes),
      sender: {
        targetBitrate: n(outbound.targetBitrate),
        qualityLimitationReason: outbound.qualityLimitationReason,
        framesEncoded: n(outbound.framesEncoded),
        encodeMsPerFrame: per(outbound.totalEncodeTime, outbound.framesEncoded),
        frameSize: outbound.frameWidth
          ? `${outbound.frameWidth}x${outbound.frameHeight}`
          : undefined,
        nackCount: n(outbound.nackCount),
        pliCount: n(outbound.pliCount),
        retransmittedPacketsSent: n(outbound.retransmittedPacketsSent),
        rttMs:
          n(this.lastStats.buyer?.pair?.currentRoundTripTime) !== undefined
            ? 1000 * n(this.lastStats.buyer?.pair?.currentRoundTripTime)!
            : undefined,
      },
      receiver: {
        jitterBufferMs: per(inbound.jitterBufferDelay, inbound.jitterBufferEmittedCount),
        jitterBufferTargetMs: per(
          inbound.jitterBufferTargetDelay,
          inbound.jitterBufferEmittedCount,
        ),
        // The floor under the target: audio/video sync (and any jitterBufferTarget) set it.
        jitterBufferMinimumMs: per(
          inbound.jitterBufferMinimumDelay,
          inbound.jitterBufferEmittedCount,
        ),
        audioJitterBufferMs: per(
          inboundAudio.jitterBufferDelay,
          inboundAudio.jitterBufferEmittedCount,
        ),
        audioJitterBufferTargetMs: per(
          inboundAudio.jitterBufferTargetDelay,
          inboundAudio.jitterBufferEmittedCount,
        ),
        decodeMsPerFrame: per(inbound.totalDecodeTime, inbound.framesDecoded),
        framesDecoded: n(inbound.framesDecoded),
        framesDropped: n(inbound.framesDropped),
        framesPerSecond: n(inbound.framesPerSecond),
        freezeCount: n(inbound.freezeCount),
        totalFreezesDurationS: n(inbound.totalFreezesDuration),
        packetsLost: n(inbound.packetsLost),
        nackCount: n(inbound.nackCount),
        pliCount: n(inbound.pliCount),
        rttMs:
          n(this.lastStats.staff?.pair?.currentRoundTripTime) !== undefined
            ? 1000 * n(this.lastStats.staff?.pair?.currentRoundTripTime)!
            : undefined,
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.contexts.map((c) => c.close()));
  }

  private warn(text: string): void {
    if (this.warnings.length < 20) this.warnings.push(`session ${this.index}: ${text}`);
  }

  private async pollStats(): Promise<void> {
    try {
      const [buyer, staff] = await Promise.all([
        this.buyer?.evaluate(() => (window as unknown as BenchWindow).bench.stats()),
        this.staff?.evaluate(() => (window as unknown as BenchWindow).bench.stats()),
      ]);
      this.lastStats = { buyer: buyer as Stats | undefined, staff: staff as Stats | undefined };
    } catch (err) {
      this.warn(`could not read getStats: ${errorMessage(err)}`);
    }
  }

  private async openPage(role: 'buyer' | 'staff', html: string, relay: UdpRelay): Promise<Page> {
    const context = await this.options.harness.browser.newContext({
      viewport: { width: 700, height: 420 },
    });
    this.contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (err) => this.warn(`${role} page: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.warn(`${role} page console: ${msg.text()}`);
    });
    const nodeOrigin = new URL(this.options.node.url).origin;
    await page.route(
      (url) => url.origin === nodeOrigin && url.pathname === `${PAGE_PATH}/${role}`,
      (route) =>
        route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }),
    );
    await page.route(
      (url) => url.origin === nodeOrigin && /^\/(whip|whep)\/[^/]+$/.test(url.pathname),
      (route) => this.relaySignalling(route, relay, role),
    );
    await page.goto(`${nodeOrigin}${PAGE_PATH}/${role}`);
    return page;
  }

  /** Rewrites a WHIP/WHEP exchange so both offer and answer name the relay. */
  private async relaySignalling(
    route: Route,
    relay: UdpRelay,
    role: 'buyer' | 'staff',
  ): Promise<void> {
    const request = route.request();
    if (request.method() !== 'POST') return route.continue();
    try {
      const offer = relay.rewriteClientSdp(request.postData() ?? '');
      const response = await route.fetch({ postData: offer });
      const body = await response.text();
      if (role === 'buyer' && response.status() === 201)
        this.series.signalledKbps = signalledVideoKbps(body);
      await route.fulfill({
        response,
        body: response.status() === 201 ? relay.rewriteNodeSdp(body) : body,
      });
    } catch (err) {
      this.warn(`signalling through the relay failed: ${errorMessage(err)}`);
      await route.abort().catch(() => {});
    }
  }

  private async waitConnected(): Promise<void> {
    const deadline = performance.now() + 20_000;
    for (;;) {
      const states = await Promise.all([
        this.buyer!.evaluate(() => (window as unknown as BenchWindow).bench.state()),
        this.staff!.evaluate(() => (window as unknown as BenchWindow).bench.state()),
      ]);
      if (states.every((s) => s === 'connected')) return;
      if (states.some((s) => s === 'failed') || performance.now() > deadline) {
        throw new Error(
          `browser session ${this.index}: connections did not come up (buyer ${states[0]}, staff ${states[1]})${this.warnings.length ? `: ${this.warnings.join('; ')}` : ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * The bitrate an SDP answer allows for its (first) video section: `b=TIAS` (bit/s) or `b=AS`
 * (kbit/s), kbit/s; undefined when it sets none.
 */
export function signalledVideoKbps(sdp: string): number | undefined {
  const sections = sdp.split(/\r?\n(?=m=)/);
  const video = sections.find((m) => m.startsWith('m=video'));
  if (!video) return undefined;
  const tias = /^b=TIAS:(\d+)/m.exec(video);
  if (tias) return Number(tias[1]) / 1000;
  const as = /^b=AS:(\d+)/m.exec(video);
  return as ? Number(as[1]) : undefined;
}

/** What the bench pages expose to the harness. */
interface BenchWindow {
  bench: {
    start(): Promise<void>;
    stop(): void;
    takeDrawn(): number[];
    take(): { frames: Shown[]; presented: number[]; unreadable: number };
    takeSamples(): { connectedAt?: number; samples: unknown[] };
    state(): string;
    stats(): Promise<Stats>;
  };
}

export type { PageConfig };

/** Offsets within this much below (or over) their run's median belong to their own picture, ms. */
const STAMP_EARLY_MS = 8;
const STAMP_LATE_MS = 20;
/** A jump of the offset larger than this starts a new run (the stream's timestamps were rebased). */
const STAMP_REBASE_MS = 100;
/** A run shorter than this has no trustworthy median: its frames are kept. */
const STAMP_MIN_RUN = 5;

/**
 * Shown frames whose stamp belongs to the frame the browser reported: the staff page copies the
 * picture a moment after the frame callback, and under load the video may have moved on to the
 * next frame by then. A frame's RTP timestamp (90 kHz, from its capture time) and its stamp keep
 * a near-constant offset: the buyer page asks for a capture right after each draw, which the
 * browser takes at its next paint (0-17 ms later). A stamp read from the following picture sits a
 * whole frame (33 ms at 30 fps) below its own pair's offset, and the correct offsets spread up to
 * a paint (17 ms) above the lowest: a pair more than 8 ms under its run's median (or 20 ms over
 * it) is dropped.
 *
 * The offset holds per run of one stream: each simulcast layer has its own timestamps, and the
 * node rebases them at every layer switch. A run is a stretch of frames of one size with no jump
 * of the offset over 100 ms; each is judged against its own median (one median for the whole
 * call threw out every frame of the layer the viewer had less often).
 */
export function matchedStamps<T extends Shown>(
  shown: readonly T[],
): { kept: T[]; mismatched: number } {
  const withRtp = shown.filter((s) => s.rtp !== undefined);
  let previous = withRtp[0]?.rtp ?? 0;
  let unwrapped = previous;
  const offsets = withRtp.map((s) => {
    let d = s.rtp! - previous;
    if (d < -0x80000000) d += 0x100000000;
    else if (d > 0x80000000) d -= 0x100000000;
    unwrapped += d;
    previous = s.rtp!;
    return unwrapped / 90 - s.ts;
  });
  const drop = new Set<T>();
  let start = 0;
  for (let i = 1; i <= withRtp.length; i++) {
    const runGoesOn =
      i < withRtp.length &&
      withRtp[i]!.width === withRtp[start]!.width &&
      withRtp[i]!.height === withRtp[start]!.height &&
      Math.abs(offsets[i]! - offsets[i - 1]!) <= STAMP_REBASE_MS;
    if (runGoesOn) continue;
    if (i - start >= STAMP_MIN_RUN) {
      const run = offsets.slice(start, i).sort((a, b) => a - b);
      const median = run[Math.floor(run.length / 2)]!;
      for (let k = start; k < i; k++) {
        const d = offsets[k]! - median;
        if (d < -STAMP_EARLY_MS || d > STAMP_LATE_MS) drop.add(withRtp[k]!);
      }
    }
    start = i;
  }
  return { kept: shown.filter((s) => !drop.has(s)), mismatched: drop.size };
}
