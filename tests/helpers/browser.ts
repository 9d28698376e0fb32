import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ffmpegPath } from '../../src/core/ffmpeg.ts';

/** Debian's Chromium (scripts/install-test-deps.sh installs it); RETURNCAM_CHROMIUM overrides. */
export const CHROMIUM_PATH = process.env.RETURNCAM_CHROMIUM || '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM_PATH);

export const SCREENSHOT_DIR = fileURLToPath(new URL('../output/screenshots/', import.meta.url));

export const PHONE = { width: 360, height: 740 };
export const DESKTOP = { width: 1280, height: 800 };

/** Prints once per test file why the browser tests did not run. */
export function warnIfNoChromium(): void {
  if (!hasChromium) {
    console.warn(
      `browser tests skipped: ${CHROMIUM_PATH} not found; run scripts/install-test-deps.sh as root`,
    );
  }
}

const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface LaunchOptions {
  /** Accept camera/microphone prompts (default true); false makes getUserMedia fail with NotAllowedError. */
  fakeUi?: boolean;
  /** Fake cameras to offer (default 1; 2 lets the buyer page switch cameras). */
  cameras?: number;
  /** A Y4M file to use as the (only) camera, e.g. from {@link fakeCameraFile}. */
  cameraFile?: string;
  viewport?: { width: number; height: number };
  locale?: string;
  timezoneId?: string;
  isMobile?: boolean;
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far (for assertions and debugging). */
  errors: string[];
  close: () => Promise<void>;
}

/**
 * One Chromium process with its own fresh profile (a temp --user-data-dir, removed on close),
 * fake camera and microphone, and one page.
 */
export async function launchBrowser(opts: LaunchOptions = {}): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'returncam-chromium-'));
  const args = [...BASE_ARGS];
  const cameras = opts.cameras ?? 1;
  args.push(
    cameras > 1
      ? `--use-fake-device-for-media-stream=device-count=${cameras}`
      : '--use-fake-device-for-media-stream',
  );
  if (opts.cameraFile) args.push(`--use-file-for-fake-video-capture=${opts.cameraFile}`);
  if (opts.fakeUi ?? true) args.push('--use-fake-ui-for-media-stream');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args,
      viewport: opts.viewport ?? DESKTOP,
      locale: opts.locale ?? 'en-US',
      timezoneId: opts.timezoneId,
      isMobile: opts.isMobile,
      hasTouch: opts.isMobile,
      deviceScaleFactor: 1,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  const watch = (p: Page) => {
    p.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    p.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
  };
  watch(page);
  context.on('page', watch);
  let closed: Promise<void> | undefined;
  return {
    context,
    page,
    errors,
    close: () => {
      closed ??= context
        .close()
        .catch(() => {})
        .then(() => rmSync(userDataDir, { recursive: true, force: true }));
      return closed;
    },
  };
}

/** What the pages expose on `window.returncam` (read-only). */
export interface ReturncamHook {
  readonly state: {
    role: 'buyer' | 'staff';
    phase: string;
    fatal?: string;
    notice?: unknown;
    online: boolean;
    publish: string;
    subscribe: string;
    quality?: string;
    reconnects?: number;
    staffWatching?: boolean;
    buyerLive?: boolean;
    caseStatus?: string;
    framesDecoded?: number;
    videoWidth?: number;
    videoHeight?: number;
    snapshots?: number;
    resubscribes?: number;
    /** Staff: keyframes asked of the node because the buyer's video stood still. */
    keyframeRequests?: number;
    /** Staff: the picture on screen, the main one or the backup (the buyer's lowest layer). */
    picture?: 'main' | 'backup';
    /** Staff: times the page went over to the backup picture. */
    fallbacks?: number;
    /** Staff: the microphone is on. */
    micOn?: boolean;
    /** Staff: the buyer's audio plays muted until a click (the browser's autoplay rule). */
    soundBlocked?: boolean;
  };
  readonly stats: Record<string, unknown>;
  readonly peerConnections: { publish?: RTCPeerConnection; subscribe?: RTCPeerConnection };
}

declare global {
  interface Window {
    returncam?: ReturncamHook;
  }
}

/** Width of the staff page's backup picture (the buyer's lowest layer), 0 before it plays. */
export function backupVideoWidth(page: Page): Promise<number> {
  return page.evaluate(
    () => (document.getElementById('remote-backup') as HTMLVideoElement).videoWidth,
  );
}

/** Packets received so far on the page's WHEP connection, for one kind (from getStats). */
export function inboundPackets(page: Page, kind: 'audio' | 'video'): Promise<number> {
  return page.evaluate(async (k) => {
    const pc = window.returncam?.peerConnections.subscribe;
    if (!pc) return 0;
    const report = await pc.getStats();
    let n = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === k) n += s.packetsReceived ?? 0;
    });
    return n;
  }, kind);
}

/** Writes a PNG under tests/output/screenshots/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  return path;
}

export { sleep } from './wait.ts';

/**
 * A fake camera that looks like a buyer showing a returned parcel (portrait, as a phone held
 * upright sends it), for Chromium's --use-file-for-fake-video-capture. The scene is drawn with
 * HTML in Chromium, then turned into a short Y4M loop with a slight hand shake by ffmpeg.
 * Made once and kept under tests/output/ (git-ignored).
 */

const FAKE_CAMERA_DIR = fileURLToPath(new URL('../output/fake-camera/', import.meta.url));
const SCENE_VERSION = 1;
const WIDTH = 720;
const HEIGHT = 1280;
const MARGIN = 24;
const FPS = 30;
const FRAMES = 30;

const SCENE = `<!doctype html><html><head><style>
* { box-sizing: border-box; margin: 0; }
body { width: ${WIDTH + 2 * MARGIN}px; height: ${HEIGHT + 2 * MARGIN}px; overflow: hidden;
  font-family: "Liberation Sans", Arial, sans-serif;
  background:
    radial-gradient(ellipse at 50% 35%, rgb(255 244 225 / 0.55), transparent 60%),
    repeating-linear-gradient(92deg, #8b5e3c 0 18px, #936543 18px 30px, #7d5334 30px 52px, #8e6240 52px 70px);
}
.shadow { position: absolute; left: 110px; top: 905px; width: 560px; height: 90px; border-radius: 50%;
  background: rgb(30 16 6 / 0.55); filter: blur(22px); }
.box { position: absolute; left: 96px; top: 300px; width: 580px; height: 640px; }
.top { position: absolute; left: 0; top: 0; width: 580px; height: 150px;
  background: linear-gradient(180deg, #d9b382, #c99d67); transform: skewX(-14deg); transform-origin: bottom;
  border-radius: 6px 6px 0 0; }
.front { position: absolute; left: 0; top: 150px; width: 580px; height: 490px;
  background: linear-gradient(180deg, #c79a62, #b98b55 70%, #a97c48); border-radius: 0 0 8px 8px;
  box-shadow: inset 0 -30px 60px rgb(80 50 20 / 0.25); }
.tape { position: absolute; left: 255px; top: 0; width: 70px; height: 150px;
  background: linear-gradient(90deg, rgb(210 180 130 / 0.9), rgb(235 215 175 / 0.95), rgb(210 180 130 / 0.9));
  transform: skewX(-14deg); transform-origin: bottom; }
.tape2 { position: absolute; left: 255px; top: 150px; width: 70px; height: 120px;
  background: linear-gradient(90deg, rgb(210 180 130 / 0.9), rgb(235 215 175 / 0.95), rgb(210 180 130 / 0.9)); }
.label { position: absolute; left: 70px; top: 290px; width: 330px; height: 300px; padding: 18px 20px;
  background: #fbfaf6; border-radius: 4px; transform: rotate(-2.5deg);
  box-shadow: 0 2px 6px rgb(0 0 0 / 0.25); color: #111; }
.label .head { display: flex; justify-content: space-between; font-weight: 800; font-size: 26px;
  border-bottom: 3px solid #111; padding-bottom: 8px; letter-spacing: 0.04em; }
.label .row { margin-top: 12px; font-size: 17px; color: #333; }
.label .big { font-size: 25px; font-weight: 700; color: #111; margin-top: 2px; font-family: "Liberation Mono", monospace; }
.barcode { margin-top: 16px; height: 62px;
  background: repeating-linear-gradient(90deg, #111 0 3px, transparent 3px 5px, #111 5px 6px, transparent 6px 9px,
    #111 9px 13px, transparent 13px 15px, #111 15px 16px, transparent 16px 20px); }
.digits { font-family: "Liberation Mono", monospace; font-size: 16px; letter-spacing: 0.3em; margin-top: 4px; }
.fragile { position: absolute; left: 418px; top: 300px; width: 136px; padding: 10px 8px; text-align: center;
  background: #c62828; color: #fff; font-weight: 800; font-size: 21px; border-radius: 6px; transform: rotate(4deg);
  letter-spacing: 0.06em; box-shadow: 0 2px 5px rgb(0 0 0 / 0.3); }
.fragile small { display: block; font-size: 12px; font-weight: 600; letter-spacing: 0.02em; margin-top: 4px; }
.dent { position: absolute; left: 470px; top: 470px; width: 110px; height: 170px;
  background: linear-gradient(200deg, #8d6538, #a47848 45%, #b88a54);
  clip-path: polygon(100% 0, 100% 100%, 52% 100%, 70% 74%, 40% 58%, 76% 38%, 58% 20%); }
.crease { position: absolute; left: 500px; top: 560px; width: 90px; height: 3px; background: rgb(70 45 20 / 0.6);
  transform: rotate(-32deg); }
.vignette { position: absolute; inset: 0; background: radial-gradient(ellipse at 50% 45%, transparent 55%, rgb(0 0 0 / 0.45)); }
</style></head><body>
<div class="shadow"></div>
<div class="box">
  <div class="top"></div><div class="tape"></div>
  <div class="front"></div><div class="tape2"></div>
  <div class="label">
    <div class="head"><span>RETURN</span><span>RMA 7731</span></div>
    <div class="row">Order</div><div class="big">ORD-48213</div>
    <div class="row">Item</div><div class="big">KETTLE-GLASS-1.7L</div>
    <div class="barcode"></div><div class="digits">4006381333931</div>
  </div>
  <div class="fragile">FRAGILE<small>glass · handle with care</small></div>
  <div class="dent"></div><div class="crease"></div>
</div>
<div class="vignette"></div>
</body></html>`;

/** Path of the Y4M file, made on first use (needs Chromium and ffmpeg). */
export async function fakeCameraFile(): Promise<string> {
  const file = join(FAKE_CAMERA_DIR, `parcel-v${SCENE_VERSION}-${WIDTH}x${HEIGHT}.y4m`);
  if (existsSync(file)) return file;
  mkdirSync(FAKE_CAMERA_DIR, { recursive: true });
  const png = join(FAKE_CAMERA_DIR, `parcel-v${SCENE_VERSION}.png`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox'],
  });
  try {
    const page = await browser.newPage({
      viewport: { width: WIDTH + 2 * MARGIN, height: HEIGHT + 2 * MARGIN },
    });
    await page.setContent(SCENE);
    await page.screenshot({ path: png });
  } finally {
    await browser.close();
  }
  const tmp = `${file}.tmp.y4m`;
  // a slow hand shake of a few pixels, so the video is alive and the encoder has work to do
  const crop = `crop=${WIDTH}:${HEIGHT}:${MARGIN}+6*sin(2*PI*n/${FRAMES}):${MARGIN}+4*cos(2*PI*n/${FRAMES})`;
  execFileSync(
    ffmpegPath(),
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-loop',
      '1',
      '-framerate',
      String(FPS),
      '-i',
      png,
      '-frames:v',
      String(FRAMES),
      '-vf',
      `${crop},format=yuv420p`,
      '-f',
      'yuv4mpegpipe',
      tmp,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  renameSync(tmp, file);
  return file;
}
