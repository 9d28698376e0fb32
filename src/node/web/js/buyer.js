/**
 * The buyer's page (phone first): consent, camera, WHIP publish of the buyer's camera and
 * microphone, WHEP subscribe to hear (and maybe see) support, chat, prompts, connection quality.
 */
import {
  CaseEvents,
  caseIdFromPath,
  classifyError,
  FATAL_KINDS,
  request,
  requestJson,
  tokenFromHash,
} from './api.js';
import { Chat, promptText } from './chat.js';
import { initI18n, onLanguageChange, t, timeZoneName } from './i18n.js';
import { publisherQuality, QualityReporter } from './quality.js';
import { exposeTestHook, inboundStats, linkQuality, MediaSession, outboundStats } from './rtc.js';
import { WeakVideoDetector } from './weak.js';

const $ = (id) => document.getElementById(id);

/** Native camera formats only (no crop): a phone held upright sends portrait video as it is. */
const VIDEO = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30, max: 30 },
  resizeMode: { ideal: 'none' },
};
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
/** Without a connection this long after Start, the page says video cannot connect and points to chat. */
const FALLBACK_AFTER_MS = 12_000;
const PROMPT_SHOW_MS = 15_000;

const caseId = caseIdFromPath();
const token = tokenFromHash();

const state = {
  role: 'buyer',
  caseId,
  phase: 'loading', // loading | intro | starting | nocamera | call | ended | fatal
  fatal: undefined,
  notice: undefined,
  online: navigator.onLine,
  quality: 'idle',
  publish: 'idle',
  subscribe: 'idle',
  connection: { publish: 'new', subscribe: 'new' },
  facingMode: 'environment',
  muted: false,
  fallback: false,
  staffWatching: false,
  caseStatus: undefined,
  outcome: undefined,
  lastPrompt: undefined,
  lang: 'en',
  reconnects: 0,
  /** Support's camera runs on still frames while their voice carries on. */
  weakVideo: false,
  /** The camera goes out in simulcast layers (set when the call starts). */
  simulcast: false,
  iceRestarts: { publish: 0, subscribe: 0 },
  /** ICE restarts taken back because the node could not be reached while the path still worked. */
  iceRestartsRolledBack: { publish: 0, subscribe: 0 },
  sessionIds: { publish: undefined, subscribe: undefined },
};
const stats = { outbound: undefined, inbound: undefined };
/** @type {{ case?: any, iceServers?: RTCIceServer[] }} */
let info = {};
/** @type {MediaStream | undefined} */
let localStream;
/** @type {MediaSession | undefined} */
let publisher;
/** @type {MediaSession | undefined} */
let subscriber;
/** @type {CaseEvents | undefined} */
let events;
/** @type {Chat | undefined} */
let chat;
let clockSkewMs = 0;
let callStartedAt = 0;
let promptTimer;
const staffSessions = new Set();
/** Support may turn their camera off (no video packets at all): only a trickle counts as weak. */
const weakVideo = new WeakVideoDetector({ requireVideoPackets: true });
/** The publication's measured network quality goes to the node (case-data export). */
const quality = new QualityReporter({
  caseId,
  token,
  session: () => publisher,
  measure: publisherQuality,
});

exposeTestHook(
  () => state,
  () => stats,
  () => ({ publish: publisher?.pc, subscribe: subscriber?.pc }),
);

// ---- rendering ----

let noticeKey;
let noticeVars;
let noticeAction;

function showNotice(key, vars, action) {
  noticeKey = key;
  noticeVars = vars;
  noticeAction = action;
  state.notice = key;
  renderNotice();
}

function clearNotice(key) {
  if (key && noticeKey !== key) return;
  noticeKey = undefined;
  noticeAction = undefined;
  state.notice = undefined;
  renderNotice();
}

function renderNotice() {
  const box = $('notice');
  box.hidden = !noticeKey;
  if (!noticeKey) return;
  box.className = `notice ${noticeKey === 'error.network' || noticeKey === 'buyer.fallback' ? 'notice-warn' : 'notice-error'}`;
  box.dataset.key = noticeKey;
  $('notice-text').textContent = t(noticeKey, noticeVars);
  const btn = $('notice-action');
  btn.hidden = !noticeAction;
  if (noticeAction) {
    btn.textContent = t(noticeAction.label);
    btn.onclick = noticeAction.run;
  }
}

function showFatal(kind) {
  state.phase = 'fatal';
  state.fatal = kind;
  stopMedia();
  events?.close();
  for (const id of [
    'intro',
    'call',
    'ended',
    'chat',
    'notice',
    'decision',
    'quality',
    'timezone',
  ]) {
    $(id).hidden = true;
  }
  const box = $('fatal');
  box.dataset.kind = kind;
  box.hidden = false;
  renderFatal();
  $('main').setAttribute('aria-busy', 'false');
}

function renderFatal() {
  if (!state.fatal) return;
  const kind = FATAL_KINDS.has(state.fatal) ? state.fatal : 'badLink';
  $('fatal-title').textContent = t(`error.${kind}.title`);
  $('fatal-body').textContent = t(`error.${kind}.body`);
}

function renderQuality() {
  const pill = $('quality');
  const q = !state.online ? 'offline' : state.quality;
  pill.hidden = state.phase !== 'call' && state.phase !== 'starting';
  pill.className = `pill pill-${q}`;
  pill.dataset.quality = q;
  $('quality-text').textContent = t(`quality.${q}`);
}

function renderStageStatus() {
  const el = $('stage-status');
  let key;
  if (state.publish !== 'connected') key = 'buyer.connecting';
  else if (state.staffWatching) key = 'buyer.staffHere';
  else key = 'buyer.waitingStaff';
  el.textContent = t(key);
  el.dataset.key = key;
  el.classList.toggle('is-live', key === 'buyer.staffHere');
}

function renderIntro() {
  const c = info.case;
  if (!c) return;
  $('intro-order').textContent = `${t('field.order')} ${c.orderId} · ${c.sku}`;
}

function renderDecision() {
  const box = $('decision');
  const decided = state.caseStatus === 'decided';
  box.hidden = !decided || state.phase === 'fatal';
  if (!decided) return;
  box.textContent = state.outcome
    ? t('buyer.decided', { outcome: t(`outcome.${state.outcome}`) })
    : t('buyer.decidedNoOutcome');
}

function renderMute() {
  const btn = $('mute');
  btn.setAttribute('aria-pressed', String(state.muted));
  btn.classList.toggle('is-off', state.muted);
  const key = state.muted ? 'buyer.unmute' : 'buyer.mute';
  btn.dataset.i18nAria = key;
  btn.dataset.i18nTitle = key;
  btn.setAttribute('aria-label', t(key));
  btn.title = t(key);
}

function renderPrompt() {
  const p = state.lastPrompt;
  $('prompt').hidden = !p;
  if (p) $('prompt-text').textContent = promptText(p.text);
}

function renderAll() {
  state.lang = document.documentElement.lang;
  renderNotice();
  renderFatal();
  renderQuality();
  renderStageStatus();
  renderIntro();
  renderDecision();
  renderMute();
  renderPrompt();
  $('timezone').textContent = t('buyer.localTime', { zone: timeZoneName() });
}

function setPhase(phase) {
  state.phase = phase;
  $('intro').hidden = phase !== 'intro' && phase !== 'starting';
  $('call').hidden = phase !== 'call';
  $('ended').hidden = phase !== 'ended';
  const start = $('start');
  start.disabled = phase === 'starting';
  start.textContent = t(phase === 'starting' ? 'buyer.starting' : 'buyer.start');
  start.dataset.i18n = phase === 'starting' ? 'buyer.starting' : 'buyer.start';
  renderQuality();
}

// ---- media ----

function cameraErrorKey(err) {
  const name = err?.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'error.camDenied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'error.camMissing';
  if (name === 'NotReadableError' || name === 'AbortError') return 'error.camBusy';
  return 'error.camOther';
}

async function openCamera(facingMode) {
  return navigator.mediaDevices.getUserMedia({
    audio: AUDIO,
    video: { ...VIDEO, facingMode: { ideal: facingMode } },
  });
}

function videoSender(pc) {
  return pc
    ?.getTransceivers()
    .find((tr) => tr.sender.track?.kind === 'video' || tr.receiver.track?.kind === 'video')?.sender;
}

/**
 * Simulcast layers by camera size, lowest first: the node forwards each viewer the one its link
 * carries. Chrome sends no more layers than the picture is big enough for (three from 960x540,
 * two from 640x360) and leaves the top ones off otherwise, so the page offers only what the
 * camera's lines (the short side, for a portrait camera) allow: three from 540, two from 360, one
 * below. Each set adds up to the node's default ceiling for a buyer (1500 kbit/s); a node
 * configured lower says so in its answer (b=TIAS), which Chrome holds the whole send to.
 */
const SIMULCAST = [
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

/** The simulcast layers for a camera of `width` x `height`, or undefined: one layer. */
function simulcastLayers(width, height) {
  const lines = Math.min(width, height);
  return SIMULCAST.find((s) => lines >= s.minLines)?.layers;
}

/** Sends `track`; video in simulcast layers when the camera is big enough and the browser agrees. */
function addSendTransceiver(pc, track) {
  const init = { direction: 'sendonly', streams: [localStream] };
  const { width = 0, height = 0 } = track.kind === 'video' ? track.getSettings() : {};
  const layers = track.kind === 'video' ? simulcastLayers(width, height) : undefined;
  if (layers) {
    try {
      pc.addTransceiver(track, { ...init, sendEncodings: layers.map((e) => ({ ...e })) });
      state.simulcast = true;
      return;
    } catch (err) {
      console.warn('simulcast refused; sending one layer:', err?.message ?? err);
    }
  }
  if (track.kind === 'video') state.simulcast = false;
  pc.addTransceiver(track, init);
}

function startPublisher() {
  publisher = new MediaSession({
    kind: 'whip',
    caseId,
    token,
    iceServers: info.iceServers,
    setup: (pc) => {
      // No contentHint on the camera: Chrome takes 'detail' (and 'text') for a screen share and
      // encodes it so. On a 3G uplink that held the top simulcast layer at its minimum rate and
      // 6-10 fps, and switched it off for seconds at a time (tests/browser/publisher-bwe.test.ts).
      for (const track of localStream.getTracks()) addSendTransceiver(pc, track);
    },
    onState: (s) => {
      state.publish = s;
      state.reconnects = publisher?.reconnects ?? 0;
      noteSessions();
      if (s === 'connected') {
        state.fallback = false;
        clearNotice('buyer.fallback');
        clearNotice('error.media');
        state.quality = 'good';
      } else if (s === 'reconnecting' || s === 'connecting') {
        state.quality = 'reconnecting';
      }
      renderQuality();
      renderStageStatus();
    },
    onConnection: (c) => {
      state.connection.publish = c;
    },
    onFatal: (kind) => showFatal(kind),
    onTrouble: (err, attempt) => {
      if (attempt >= 2 || performance.now() - callStartedAt > FALLBACK_AFTER_MS) enterFallback();
      else if (!state.online) showNotice('error.network');
      console.warn('video publish attempt failed:', err?.message ?? err);
    },
  });
  publisher.start();
}

/** Support's voice plays from an <audio> element made here (it shows nothing). */
function remoteAudioElement() {
  let el = document.getElementById('remote-audio');
  if (!el) {
    el = document.createElement('audio');
    el.id = 'remote-audio';
    el.autoplay = true;
    el.hidden = true;
    document.body.append(el);
  }
  return el;
}

function startSubscriber() {
  const remoteVideo = $('remote');
  const remoteAudio = remoteAudioElement();
  subscriber = new MediaSession({
    kind: 'whep',
    caseId,
    token,
    iceServers: info.iceServers,
    setup: (pc) => {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.ontrack = (ev) => {
        const stream = new MediaStream([ev.track]);
        if (ev.track.kind === 'audio') {
          remoteAudio.srcObject = stream;
          remoteAudio.muted = false;
          remoteAudio.play().catch(() => {});
        } else {
          remoteVideo.srcObject = stream;
          remoteVideo.play().catch(() => {});
        }
      };
    },
    onState: (s) => {
      state.subscribe = s;
      noteSessions();
    },
    onConnection: (c) => {
      state.connection.subscribe = c;
    },
    onFatal: (kind) => showFatal(kind),
  });
  subscriber.start();
}

function enterFallback() {
  if (state.phase !== 'call') return;
  state.fallback = true;
  showNotice(state.online ? 'buyer.fallback' : 'error.network');
}

function stopMedia() {
  quality.flush();
  publisher?.stop();
  subscriber?.stop();
  publisher = undefined;
  subscriber = undefined;
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = undefined;
  $('local').srcObject = null;
  $('remote').srcObject = null;
  const audio = document.getElementById('remote-audio');
  if (audio) audio.srcObject = null;
  state.publish = 'idle';
  state.subscribe = 'idle';
  state.quality = 'idle';
  weakVideo.reset();
  state.weakVideo = false;
  $('weak').hidden = true;
}

async function start() {
  if (state.phase === 'starting') return;
  setPhase('starting');
  clearNotice();
  try {
    await request(`/api/cases/${encodeURIComponent(caseId)}/consent`, token, {
      method: 'POST',
      body: { accepted: true },
    });
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind)) return showFatal(kind);
    setPhase('intro');
    showNotice(kind === 'network' ? 'error.network' : 'error.server', { detail: err.message });
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    setPhase('intro');
    showNotice('error.insecure');
    return;
  }
  try {
    localStream = await openCamera(state.facingMode);
  } catch (err) {
    setPhase('nocamera');
    showNotice(
      cameraErrorKey(err),
      { detail: err?.message ?? String(err) },
      { label: 'buyer.retry', run: start },
    );
    return;
  }
  const local = $('local');
  local.srcObject = localStream;
  local.classList.toggle('mirror', state.facingMode === 'user');
  local.play().catch(() => {});
  state.muted = false;
  renderMute();
  callStartedAt = performance.now();
  setPhase('call');
  startPublisher();
  startSubscriber();
  updateFlipButton();
}

async function updateFlipButton() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cams = devices.filter((d) => d.kind === 'videoinput').length;
    $('flip').hidden = cams < 2;
  } catch {
    $('flip').hidden = false;
  }
}

async function flipCamera() {
  if (!localStream) return;
  const next = state.facingMode === 'environment' ? 'user' : 'environment';
  const old = localStream.getVideoTracks()[0];
  const sender = videoSender(publisher?.pc);
  // phones cannot open two cameras at once: release the current one first
  old?.stop();
  let fresh;
  try {
    fresh = await navigator.mediaDevices.getUserMedia({
      video: { ...VIDEO, facingMode: { exact: next } },
    });
    state.facingMode = next;
  } catch {
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter(
      (d) => d.kind === 'videoinput',
    );
    const currentId = old?.getSettings().deviceId;
    const other = cams.find((d) => d.deviceId && d.deviceId !== currentId);
    try {
      fresh = await navigator.mediaDevices.getUserMedia({
        video: other
          ? { ...VIDEO, deviceId: { exact: other.deviceId } }
          : { ...VIDEO, facingMode: { ideal: state.facingMode } },
      });
      if (other) state.facingMode = next;
    } catch (err) {
      showNotice(cameraErrorKey(err), { detail: err?.message ?? String(err) });
      return;
    }
  }
  const track = fresh.getVideoTracks()[0];
  if (old) localStream.removeTrack(old);
  localStream.addTrack(track);
  await sender?.replaceTrack(track).catch(() => publisher?.restart());
  const local = $('local');
  local.srcObject = localStream;
  local.classList.toggle('mirror', state.facingMode === 'user');
}

function toggleMute() {
  state.muted = !state.muted;
  for (const track of localStream?.getAudioTracks() ?? []) track.enabled = !state.muted;
  renderMute();
}

function endCall() {
  stopMedia();
  clearNotice();
  setPhase('ended');
}

// ---- events ----

function serverNow() {
  return Date.now() + clockSkewMs;
}

function showPrompt(m, live) {
  if (!live) return;
  state.lastPrompt = { text: m.text, at: m.at };
  renderPrompt();
  navigator.vibrate?.(150);
  clearTimeout(promptTimer);
  promptTimer = setTimeout(() => {
    state.lastPrompt = undefined;
    renderPrompt();
  }, PROMPT_SHOW_MS);
}

function onCaseEvent(e) {
  switch (e.type) {
    case 'message.posted':
      chat?.receive(e, { live: serverNow() - (e.at ?? 0) < 20_000 });
      break;
    case 'case.status':
      state.caseStatus = e.data.status;
      state.outcome = e.data.outcome ?? undefined;
      if (e.data.status === 'closed') showFatal('closed');
      else renderDecision();
      break;
    case 'case.closed':
      showFatal('closed');
      break;
    case 'participant.joined':
      if (e.data.role === 'staff' && e.data.direction === 'subscribe')
        staffSessions.add(e.data.sessionId);
      state.staffWatching = staffSessions.size > 0;
      renderStageStatus();
      break;
    case 'participant.left':
      staffSessions.delete(e.data.sessionId);
      state.staffWatching = staffSessions.size > 0;
      renderStageStatus();
      break;
    default:
      break;
  }
}

/** The stream was refused: ask the node why (expired, revoked, closed) or retry later. */
async function onEventsBroken() {
  try {
    const body = await requestJson(`/api/cases/${encodeURIComponent(caseId)}`, token);
    if (body.case.status === 'closed') return showFatal('closed');
    setTimeout(() => events?.open(), 1000);
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind)) return showFatal(kind);
    setTimeout(() => events?.open(), 3000);
  }
}

// ---- stats ----

/** Session ids and ICE restarts of both connections, for the test hook. */
function noteSessions() {
  state.sessionIds = { publish: publisher?.sessionId, subscribe: subscriber?.sessionId };
  state.iceRestarts = {
    publish: publisher?.iceRestarts ?? 0,
    subscribe: subscriber?.iceRestarts ?? 0,
  };
  state.iceRestartsRolledBack = {
    publish: publisher?.iceRestartsRolledBack ?? 0,
    subscribe: subscriber?.iceRestartsRolledBack ?? 0,
  };
}

async function sampleStats() {
  if (state.phase !== 'call') return;
  try {
    if (publisher?.pc) {
      stats.outbound = await outboundStats(publisher.pc, stats.outbound);
      if (state.publish === 'connected') state.quality = linkQuality(stats.outbound);
    }
    if (subscriber?.pc) {
      stats.inbound = await inboundStats(subscriber.pc, stats.inbound);
      const v = stats.inbound.video;
      state.weakVideo =
        state.subscribe === 'connected' &&
        weakVideo.update({
          at: stats.inbound.at,
          framesDecoded: v?.framesDecoded ?? 0,
          videoPackets: v?.packetsReceived ?? 0,
          audioPackets: stats.inbound.audio?.packetsReceived ?? 0,
        });
      const prev = $('remote').dataset.frames;
      const moving = !!v && v.width > 0 && String(v.framesDecoded) !== prev;
      // a weak link keeps its last frame on screen, with the banner saying why it is still
      $('remote').hidden = !(moving || (state.weakVideo && !!v?.width));
      $('remote').dataset.frames = String(v?.framesDecoded ?? 0);
    }
  } catch {
    // a connection replaced mid-read: the next sample will do
  }
  if (state.subscribe !== 'connected') {
    weakVideo.reset();
    state.weakVideo = false;
  }
  $('weak').hidden = !state.weakVideo;
  noteSessions();
  renderQuality();
}

/** The network changed (another Wi-Fi, mobile data, back online): restart ICE on both sessions. */
function networkChanged() {
  if (state.phase !== 'call') return;
  publisher?.networkChanged();
  subscriber?.networkChanged();
}

// ---- start-up ----

async function load() {
  try {
    const res = await request(`/api/cases/${encodeURIComponent(caseId)}`, token);
    const dateHeader = res.headers.get('Date');
    if (dateHeader) clockSkewMs = Date.parse(dateHeader) - Date.now();
    info = await res.json();
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind)) return showFatal(kind);
    showNotice(kind === 'network' ? 'error.network' : 'error.server', { detail: err.message });
    setTimeout(load, 3000);
    return;
  }
  clearNotice();
  state.caseStatus = info.case.status;
  state.outcome = info.case.outcome ?? undefined;
  if (info.case.status === 'closed') return showFatal('closed');
  renderIntro();
  renderDecision();
  $('chat').hidden = false;
  setPhase('intro');
  $('main').setAttribute('aria-busy', 'false');
  chat = new Chat({
    caseId,
    token,
    role: 'buyer',
    list: $('messages'),
    form: $('chat-form'),
    input: $('chat-input'),
    onFatal: showFatal,
    onPrompt: showPrompt,
  });
  events = new CaseEvents({
    caseId,
    token,
    onEvent: onCaseEvent,
    onBroken: onEventsBroken,
  });
  events.open();
}

async function main() {
  await initI18n($('lang'));
  onLanguageChange(renderAll);
  renderAll();
  if (!caseId || !token) return showFatal('badLink');

  $('start').addEventListener('click', start);
  $('rejoin').addEventListener('click', start);
  $('flip').addEventListener('click', flipCamera);
  $('mute').addEventListener('click', toggleMute);
  $('end').addEventListener('click', endCall);
  $('prompt').addEventListener('click', () => {
    state.lastPrompt = undefined;
    renderPrompt();
  });
  window.addEventListener('offline', () => {
    state.online = false;
    showNotice('error.network');
    renderQuality();
  });
  window.addEventListener('online', () => {
    state.online = true;
    clearNotice('error.network');
    renderQuality();
    networkChanged();
    if (events && !events.connected) events.open();
  });
  // a phone moving from Wi-Fi to mobile data: the old path is gone, restart ICE on the new one
  navigator.connection?.addEventListener?.('change', networkChanged);
  window.addEventListener('pagehide', () => {
    quality.stop();
    publisher?.stop();
    subscriber?.stop();
  });
  setInterval(sampleStats, 1000);
  quality.start();
  if (!state.online) showNotice('error.network');
  await load();
}

main();
