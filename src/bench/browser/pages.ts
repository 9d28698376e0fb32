/**
 * The two bench-only pages the harness serves to headless Chromium (not the product pages):
 * a buyer whose "camera" is a canvas stamped with the wall-clock time of each frame, publishing
 * over WHIP, and a staff viewer over WHEP that reads the stamp back from every frame it shows.
 * Both talk to the node's WHIP/WHEP endpoints; the harness rewrites the SDP on the way so the
 * media goes through the impairment relays.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SOURCE_DIR } from '../../core/paths.ts';
import {
  CODE_LAYOUT,
  crc16,
  decodeTimestamp,
  encodeTimestamp,
  readCodeBits,
} from './timestampCode.ts';

export interface PageConfig {
  nodeUrl: string;
  caseId: string;
  token: string;
  bitrateKbps: number;
  fps: number;
  /** The buyer also sends a tone (Opus), as a phone call would; false: video only. */
  audio: boolean;
  /** Buyer: send these simulcast layers (as the product's buyer page does); absent: one layer. */
  layers?: SimulcastLayer[];
  /**
   * Staff: also receive the backup picture (the lowest layer) and show it while the main one
   * stands still, as the product's staff page does (`PictureFallback`).
   */
  backup?: boolean;
}

export interface SimulcastLayer {
  rid: string;
  scaleResolutionDownBy: number;
  /** bit/s. */
  maxBitrate: number;
}

/** One row of the product buyer page's simulcast table: the layers for cameras this big. */
export interface SimulcastSet {
  /** Fewest lines (the camera's short side) these layers are sent from. */
  minLines: number;
  layers: readonly SimulcastLayer[];
}

/**
 * The simulcast layers of the product's buyer page by camera size (`SIMULCAST` in
 * src/node/web/js/buyer.js, which a test keeps equal to this), each set lowest first: three
 * layers from 540 lines, two from 360, one below.
 */
export const PRODUCT_SIMULCAST: readonly SimulcastSet[] = [
  {
    minLines: 540,
    layers: [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 100_000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 350_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_050_000 },
    ],
  },
  {
    minLines: 360,
    layers: [
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 200_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_300_000 },
    ],
  },
];

/** The layers the product's buyer page sends from a camera with `lines` lines; [] = one layer. */
export function productLayers(lines: number): readonly SimulcastLayer[] {
  return PRODUCT_SIMULCAST.find((s) => lines >= s.minLines)?.layers ?? [];
}

/**
 * The bench buyer's layers for a cap of `capKbps`: the product's for the bench camera
 * (640x360: two layers), the top one held to the cap; and the most they let Chrome send,
 * kbit/s (the sum of their maxima).
 */
export function benchLayers(
  capKbps: number,
  lines: number = CODE_LAYOUT.height,
): { layers: SimulcastLayer[]; totalKbps: number } {
  const product = productLayers(lines);
  const layers = product.map((l, i) =>
    i === product.length - 1
      ? { ...l, maxBitrate: Math.min(l.maxBitrate, capKbps * 1000) }
      : { ...l },
  );
  return { layers, totalKbps: layers.reduce((sum, l) => sum + l.maxBitrate, 0) / 1000 };
}

/** The shared code, as page script (esbuild's keepNames helper made harmless). */
function codeScript(): string {
  return [
    'var __name = (f) => f;',
    `const CODE = ${JSON.stringify(CODE_LAYOUT)};`,
    crc16.toString(),
    encodeTimestamp.toString(),
    decodeTimestamp.toString(),
    readCodeBits.toString(),
  ].join('\n');
}

let stallWatch: string | undefined;
let fallback: string | undefined;

/** A product page module's one exported class, as page script. */
function pageClassSource(file: string): string {
  return readFileSync(join(SOURCE_DIR, 'node', 'web', 'js', file), 'utf8').replace(
    /^export class /m,
    'class ',
  );
}

/**
 * The product pages' `DecodeStallWatch` (src/node/web/js/stall.js) as page script, so the bench
 * viewer asks for a keyframe exactly when the staff page would.
 */
export function stallWatchSource(): string {
  stallWatch ??= pageClassSource('stall.js');
  return stallWatch;
}

/**
 * The product staff page's `PictureFallback` (src/node/web/js/fallback.js) as page script, so the
 * bench viewer shows the backup picture exactly when the staff page would.
 */
export function fallbackSource(): string {
  fallback ??= pageClassSource('fallback.js');
  return fallback;
}

function page(title: string, body: string, script: string, config: PageConfig): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{margin:0;background:#111}video,canvas{display:block}</style></head><body>${body}
<script>
const CONFIG = ${JSON.stringify(config)};
${codeScript()}
// Both pages read the system clock directly, on the edge of a millisecond tick, instead of
// performance.timeOrigin: Chromium derives timeOrigin per renderer process from an offset taken
// at process start, and two processes can disagree by several ms on a loaded machine. The edge
// is bracketed by two performance.now() readings; a bracket widened by the thread being
// descheduled (which would put this page's clock behind by as much) is thrown away, and the
// narrowest of several is kept.
const EPOCH_OFFSET = (() => {
  let best, width = Infinity;
  for (let i = 0; i < 8 && width > 0.1; i++) {
    // the tick falls after \`lo\` (read just before the last Date.now() that still gave t0)
    // and before \`hi\`
    let lo = performance.now(), hi;
    const t0 = Date.now();
    for (;;) {
      const p = performance.now();
      const t = Date.now();
      hi = performance.now();
      if (t !== t0) { if (hi - lo < width) { width = hi - lo; best = t - (lo + hi) / 2; } break; }
      lo = p;
    }
  }
  return best;
})();
const clock = () => EPOCH_OFFSET + performance.now();
async function whip(kind, pc) {
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 2000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
  const res = await fetch(CONFIG.nodeUrl + '/' + kind + '/' + encodeURIComponent(CONFIG.caseId), {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + CONFIG.token },
    body: pc.localDescription.sdp,
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(kind + ' ' + res.status + ': ' + text);
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
  return new URL(res.headers.get('Location'), CONFIG.nodeUrl).href;
}
async function summary(pc, want) {
  const out = {};
  (await pc.getStats()).forEach((s) => {
    const key = s.type + ':' + (s.kind || '');
    // simulcast: the top layer (widest picture) stands for the sender
    if (want.includes(key) && (!out[key] || (s.frameWidth || 0) > (out[key].frameWidth || 0))) out[key] = s;
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out.pair = s;
  });
  return out;
}
// about once a second, a getStats reading for the harness (it keeps the series)
const samples = [];
let sampler;
function startSampling(read) {
  const take = async () => {
    const at = clock();
    try {
      const sample = await read(await pc.getStats());
      samples.push({ at, ...sample });
    } catch (err) {
      console.error('getStats: ' + err);
    }
  };
  take();
  sampler = setInterval(take, 1000);
}
${script}
</script></body></html>`;
}

export function buyerPage(config: PageConfig): string {
  return page(
    'bench buyer',
    `<canvas id="c" width="${CODE_LAYOUT.width}" height="${CODE_LAYOUT.height}"></canvas>`,
    `
const canvas = document.getElementById('c');
const ctx = canvas.getContext('2d');
const drawn = [];
let frame = 0;
let timer;
function draw() {
  const ts = Math.round(clock());
  frame++;
  // something that moves, so the encoder has work like a hand-held camera would give it
  const g = ctx.createLinearGradient(0, 0, CODE.width, CODE.height);
  g.addColorStop(0, 'hsl(' + ((frame * 2) % 360) + ',60%,45%)');
  g.addColorStop(1, 'hsl(' + ((frame * 2 + 160) % 360) + ',60%,35%)');
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, CODE.width, CODE.height);
  for (let i = 0; i < 6; i++) {
    ctx.fillStyle = 'hsl(' + ((i * 60 + frame) % 360) + ',70%,60%)';
    const x = (frame * (3 + i) + i * 97) % (CODE.width + 80) - 80;
    ctx.fillRect(x, 150 + i * 30, 80, 26);
  }
  const bits = encodeTimestamp(ts);
  ctx.fillStyle = '#fff';
  ctx.fillRect(CODE.x - 8, CODE.y - 8, CODE.cols * CODE.cell + 16, CODE.rows * CODE.cell + 16);
  ctx.fillStyle = '#000';
  for (let i = 0; i < bits.length; i++) {
    if (bits[i]) continue;
    const r = Math.floor(i / CODE.cols), c = i % CODE.cols;
    ctx.fillRect(CODE.x + c * CODE.cell, CODE.y + r * CODE.cell, CODE.cell, CODE.cell);
  }
  drawn.push(ts);
  // the frame is captured now, as a camera's would be at exposure, not at the capture
  // stream's own cadence up to a frame later: that wait is not part of the path, and it
  // would blur the stamp-to-frame check on the staff side by a whole frame interval
  if (track) track.requestFrame();
}
let track;
draw();
const stream = canvas.captureStream(0);
track = stream.getVideoTracks()[0];
const pc = new RTCPeerConnection({ iceServers: [] });
let connectedAt;
pc.addEventListener('connectionstatechange', () => {
  if (pc.connectionState === 'connected' && connectedAt === undefined) connectedAt = clock();
});
function readSender(report) {
  let bytesSent = 0, target = 0, hasTarget = false, layers = 0, pairId;
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      layers++;
      bytesSent += s.bytesSent || 0;
      if (typeof s.targetBitrate === 'number') { target += s.targetBitrate; hasTarget = true; }
    }
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId ? report.get(pairId) : undefined;
  return {
    bytesSent,
    targetBitrate: hasTarget ? target : undefined,
    availableOutgoingBitrate: pair && typeof pair.availableOutgoingBitrate === 'number' ? pair.availableOutgoingBitrate : undefined,
    layers,
  };
}
const video = pc.addTransceiver(stream.getVideoTracks()[0], {
  direction: 'sendonly',
  streams: [stream],
  ...(CONFIG.layers ? { sendEncodings: CONFIG.layers.map((l) => ({ ...l })) } : {}),
});
if (CONFIG.audio) {
  const audio = new AudioContext();
  const osc = audio.createOscillator();
  const dest = audio.createMediaStreamDestination();
  osc.frequency.value = 440;
  osc.connect(dest);
  osc.start();
  pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
}
// VP8, with what the buyer page's default offer carries along with it (RTX, RED, ULPFEC)
const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => /VP8|rtx|red|ulpfec/i.test(c.mimeType));
video.setCodecPreferences(vp8);
window.bench = {
  drawn,
  async start() {
    timer = setInterval(draw, 1000 / CONFIG.fps);
    await pc.setLocalDescription(await pc.createOffer());
    await whip('whip', pc);
    if (!CONFIG.layers) {
      const p = video.sender.getParameters();
      p.encodings = (p.encodings && p.encodings.length ? p.encodings : [{}]).map((e) => ({ ...e, maxBitrate: CONFIG.bitrateKbps * 1000 }));
      await video.sender.setParameters(p);
    }
    startSampling(readSender);
  },
  stop() { clearInterval(timer); },
  takeDrawn() { return drawn.splice(0); },
  takeSamples() { return { connectedAt, samples: samples.splice(0) }; },
  state() { return pc.connectionState; },
  async stats() { return summary(pc, ['outbound-rtp:video', 'outbound-rtp:audio', 'remote-inbound-rtp:video']); },
};
`,
    config,
  );
}

export function staffPage(config: PageConfig): string {
  const size = `width="${CODE_LAYOUT.width}" height="${CODE_LAYOUT.height}"`;
  return page(
    'bench staff',
    `<div style="position:relative">
<video id="b" autoplay muted playsinline ${size} style="position:absolute;left:0;top:0"></video>
<video id="v" autoplay muted playsinline ${size} style="position:relative"></video></div>
<canvas id="c" ${size} style="display:none"></canvas>`,
    `
const videoEl = document.getElementById('v');
const backupEl = document.getElementById('b');
const ctx = document.getElementById('c').getContext('2d', { willReadFrequently: true });
const shown = [];
// every picture the viewer saw (main or backup), wall clock ms: the freezes of what was shown
const presented = [];
let unreadable = 0;
let presentedFrames;
let mainTrackId;
const pc = new RTCPeerConnection({ iceServers: [] });
function mainInbound(report) {
  let inbound;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && (!mainTrackId || s.trackIdentifier === mainTrackId)) inbound = s;
  });
  return inbound;
}
function readViewer(report) {
  const inbound = mainInbound(report);
  return {
    framesPresented: presentedFrames,
    framesDecoded: (inbound && inbound.framesDecoded) || 0,
    freezeCount: (inbound && inbound.freezeCount) || 0,
    totalFreezesDuration: (inbound && inbound.totalFreezesDuration) || 0,
    jitterBufferDelay: (inbound && inbound.jitterBufferDelay) || 0,
    jitterBufferEmittedCount: (inbound && inbound.jitterBufferEmittedCount) || 0,
    keyFramesDecoded: (inbound && inbound.keyFramesDecoded) || 0,
    frameWidth: (inbound && inbound.frameWidth) || 0,
    fallbacks: fallback ? fallback.fallbacks : 0,
    backupMs: backupMs + (backupSince === undefined ? 0 : performance.now() - backupSince),
  };
}
pc.addTransceiver('video', { direction: 'recvonly' });
pc.addTransceiver('audio', { direction: 'recvonly' });
const backupTransceiver = CONFIG.backup ? pc.addTransceiver('video', { direction: 'recvonly' }) : undefined;
pc.ontrack = (e) => {
  if (e.track.kind !== 'video') return;
  const el = e.transceiver === backupTransceiver ? backupEl : videoEl;
  if (el === videoEl) mainTrackId = e.track.id;
  el.srcObject = new MediaStream([e.track]);
  el.play().catch(() => {});
};
// As the product's staff page: the backup picture shows while the main one stands still.
${fallbackSource()}
const fallback = CONFIG.backup ? new PictureFallback() : undefined;
// how long the backup was on screen after the main picture's first frame, ms
let backupMs = 0;
let backupSince;
let mainStarted = false;
function onFrame(which, el, now, md) {
  const showing = fallback ? fallback.frame(which, now) : 'main';
  if (fallback) videoEl.style.opacity = showing === 'main' ? '1' : '0';
  if (which === 'main') mainStarted = true;
  if (showing === 'backup' && mainStarted && backupSince === undefined) backupSince = now;
  if (showing === 'main' && backupSince !== undefined) {
    backupMs += now - backupSince;
    backupSince = undefined;
  }
  el.requestVideoFrameCallback((n, m) => onFrame(which, el, n, m));
  if (showing !== which) return;
  if (which === 'main') presentedFrames = md.presentedFrames;
  presented.push(EPOCH_OFFSET + md.expectedDisplayTime);
  ctx.drawImage(el, 0, 0, CODE.width, CODE.height);
  const w = CODE.cols * CODE.cell, h = CODE.rows * CODE.cell;
  const img = ctx.getImageData(CODE.x, CODE.y, w, h);
  const ts = decodeTimestamp(readCodeBits(img.data, w, CODE.cell, CODE.cols, CODE.rows));
  if (ts === undefined) unreadable++;
  else shown.push({
    ts,
    rtp: md.rtpTimestamp,
    received: md.receiveTime !== undefined ? EPOCH_OFFSET + md.receiveTime : undefined,
    shown: EPOCH_OFFSET + md.expectedDisplayTime,
    width: md.width,
    height: md.height,
  });
}
videoEl.requestVideoFrameCallback((n, m) => onFrame('main', videoEl, n, m));
if (CONFIG.backup) backupEl.requestVideoFrameCallback((n, m) => onFrame('backup', backupEl, n, m));
// As the product's staff page: video that stands still while its packets arrive asks the node
// for a keyframe (DecodeStallWatch, read four times a second).
${stallWatchSource()}
const stall = new DecodeStallWatch();
function watchStall(location) {
  setInterval(async () => {
    let inbound;
    try {
      inbound = mainInbound(await pc.getStats());
    } catch {
      return;
    }
    if (!inbound) return;
    const ask = stall.update({
      at: performance.now(),
      framesDecoded: inbound.framesDecoded || 0,
      videoPackets: inbound.packetsReceived || 0,
    });
    if (!ask) return;
    fetch(location + '/keyframe', { method: 'POST', headers: { Authorization: 'Bearer ' + CONFIG.token } }).catch(() => {});
  }, 250);
}
window.bench = {
  async start() {
    await pc.setLocalDescription(await pc.createOffer());
    watchStall(await whip('whep', pc));
    startSampling(readViewer);
  },
  take() { return { frames: shown.splice(0), presented: presented.splice(0), unreadable }; },
  takeSamples() { return { samples: samples.splice(0) }; },
  state() { return pc.connectionState; },
  async stats() { return summary(pc, ['inbound-rtp:video', 'inbound-rtp:audio']); },
};
`,
    config,
  );
}
