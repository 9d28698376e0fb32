/**
 * The two bench-only pages the harness serves to headless Chromium (not the product pages):
 * a buyer whose "camera" is a canvas stamped with the wall-clock time of each frame, publishing
 * over WHIP, and a staff viewer over WHEP that reads the stamp back from every frame it shows.
 * Both talk to the node's WHIP/WHEP endpoints; the harness rewrites the SDP on the way so the
 * media goes through the impairment relays.
 */
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

function page(title: string, body: string, script: string, config: PageConfig): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{margin:0;background:#111}video,canvas{display:block}</style></head><body>${body}
<script>
const CONFIG = ${JSON.stringify(config)};
${codeScript()}
// Both pages read the system clock directly, on the edge of a millisecond tick, instead of
// performance.timeOrigin: Chromium derives timeOrigin per renderer process from an offset taken
// at process start, and two processes can disagree by several ms on a loaded machine.
const EPOCH_OFFSET = (() => {
  const t0 = Date.now();
  let t = t0;
  while (t === t0) t = Date.now();
  return t - performance.now();
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
}
async function summary(pc, want) {
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (want.includes(s.type + ':' + (s.kind || ''))) out[s.type + ':' + (s.kind || '')] = s;
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out.pair = s;
  });
  return out;
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
}
draw();
const stream = canvas.captureStream(CONFIG.fps);
const pc = new RTCPeerConnection({ iceServers: [] });
const video = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream] });
if (CONFIG.audio) {
  const audio = new AudioContext();
  const osc = audio.createOscillator();
  const dest = audio.createMediaStreamDestination();
  osc.frequency.value = 440;
  osc.connect(dest);
  osc.start();
  pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
}
const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => /VP8|rtx/i.test(c.mimeType));
video.setCodecPreferences(vp8);
window.bench = {
  drawn,
  async start() {
    timer = setInterval(draw, 1000 / CONFIG.fps);
    await pc.setLocalDescription(await pc.createOffer());
    await whip('whip', pc);
    const p = video.sender.getParameters();
    p.encodings = (p.encodings && p.encodings.length ? p.encodings : [{}]).map((e) => ({ ...e, maxBitrate: CONFIG.bitrateKbps * 1000 }));
    await video.sender.setParameters(p);
  },
  stop() { clearInterval(timer); },
  takeDrawn() { return drawn.splice(0); },
  state() { return pc.connectionState; },
  async stats() { return summary(pc, ['outbound-rtp:video', 'outbound-rtp:audio', 'remote-inbound-rtp:video']); },
};
`,
    config,
  );
}

export function staffPage(config: PageConfig): string {
  return page(
    'bench staff',
    `<video id="v" autoplay muted playsinline width="${CODE_LAYOUT.width}" height="${CODE_LAYOUT.height}"></video>
<canvas id="c" width="${CODE_LAYOUT.width}" height="${CODE_LAYOUT.height}" style="display:none"></canvas>`,
    `
const videoEl = document.getElementById('v');
const ctx = document.getElementById('c').getContext('2d', { willReadFrequently: true });
const shown = [];
let unreadable = 0;
const pc = new RTCPeerConnection({ iceServers: [] });
pc.addTransceiver('video', { direction: 'recvonly' });
pc.addTransceiver('audio', { direction: 'recvonly' });
pc.ontrack = (e) => {
  if (e.track.kind !== 'video') return;
  videoEl.srcObject = e.streams[0] || new MediaStream([e.track]);
  videoEl.play().catch(() => {});
};
function onFrame(now, md) {
  ctx.drawImage(videoEl, 0, 0, CODE.width, CODE.height);
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
  videoEl.requestVideoFrameCallback(onFrame);
}
videoEl.requestVideoFrameCallback(onFrame);
window.bench = {
  async start() {
    await pc.setLocalDescription(await pc.createOffer());
    await whip('whep', pc);
  },
  take() { return { frames: shown.splice(0), unreadable }; },
  state() { return pc.connectionState; },
  async stats() { return summary(pc, ['inbound-rtp:video', 'inbound-rtp:audio']); },
};
`,
    config,
  );
}
