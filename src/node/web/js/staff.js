/**
 * The staff page (desktop): the buyer's live video (WHEP), the staff microphone and optional
 * camera (WHIP), prompts, chat, snapshots at full received resolution, the decision, live stats.
 */
import {
  CaseEvents,
  caseIdFromPath,
  classifyError,
  FATAL_KINDS,
  requestJson,
  tokenFromHash,
} from './api.js';
import { Chat } from './chat.js';
import { PictureFallback } from './fallback.js';
import { english, formatTime, initI18n, onLanguageChange, t, timeZoneName } from './i18n.js';
import { QualityReporter, viewerQuality } from './quality.js';
import { exposeTestHook, formatBitrate, inboundStats, MediaSession, outboundStats } from './rtc.js';
import { WeakVideoDetector } from './weak.js';

const $ = (id) => document.getElementById(id);

const PROMPTS = [
  'prompt.rotate',
  'prompt.label',
  'prompt.closer',
  'prompt.damage',
  'prompt.still',
  'prompt.light',
  'prompt.packaging',
  'prompt.serial',
];
const OUTCOMES = ['refund', 'replacement', 'partial_refund', 'rejected'];
const DISPOSITIONS = ['restock', 'refurbish', 'dispose', 'return_to_sender'];
/** The buyer is publishing but no frame arrived for this long: subscribe again. */
const STALL_RESUBSCRIBE_MS = 4000;
const SNAPSHOT_QUALITY = 0.92;

const caseId = caseIdFromPath();
const token = tokenFromHash();

const state = {
  role: 'staff',
  caseId,
  phase: 'loading', // loading | live | fatal
  fatal: undefined,
  notice: undefined,
  online: navigator.onLine,
  publish: 'idle',
  subscribe: 'idle',
  connection: { publish: 'new', subscribe: 'new' },
  buyerLive: false,
  buyerConsented: false,
  caseStatus: undefined,
  outcome: undefined,
  disposition: undefined,
  micOn: false,
  micAvailable: false,
  camOn: false,
  soundBlocked: false,
  videoWidth: 0,
  videoHeight: 0,
  framesDecoded: 0,
  snapshots: 0,
  resubscribes: 0,
  /** The buyer's video runs on still frames while the audio carries on. */
  weakVideo: false,
  iceRestarts: { publish: 0, subscribe: 0 },
  /** ICE restarts taken back because the node could not be reached while the path still worked. */
  iceRestartsRolledBack: { publish: 0, subscribe: 0 },
  /** Keyframes asked of the node because the buyer's video stood still while packets came. */
  keyframeRequests: 0,
  /**
   * The picture on screen: 'main', or 'backup' (the buyer's lowest layer, shown while the main
   * picture stands still; `fallback.js`).
   */
  picture: 'main',
  /** Times the page went over to the backup picture. */
  fallbacks: 0,
  sessionIds: { publish: undefined, subscribe: undefined },
  lang: 'en',
};
const stats = { inbound: undefined, outbound: undefined };
/** @type {any} */
let info = {};
/** @type {MediaSession | undefined} */
let publisher;
/** @type {MediaSession | undefined} */
let subscriber;
/** @type {CaseEvents | undefined} */
let events;
/** @type {Chat | undefined} */
let chat;
/** @type {MediaStreamTrack | undefined} */
let micTrack;
/** @type {MediaStreamTrack | undefined} */
let camTrack;
const buyerSessions = new Set();
/** @type {Map<string, any>} */
const snapshots = new Map();
let lastFrames = 0;
let lastFrameAt = 0;
let lastResubscribeAt = 0;
let toastTimer;
const weakVideo = new WeakVideoDetector();
const pictures = new PictureFallback();
/** Browsers with frame callbacks receive the backup picture too (without them it cannot be timed). */
const BACKUP_PICTURE = 'requestVideoFrameCallback' in HTMLVideoElement.prototype;
/** The subscription's measured network quality goes to the node (case-data export). */
const quality = new QualityReporter({
  caseId,
  token,
  session: () => subscriber,
  measure: viewerQuality,
});

exposeTestHook(
  () => state,
  () => stats,
  () => ({ publish: publisher?.pc, subscribe: subscriber?.pc }),
);

// ---- rendering ----

function showNotice(key, vars) {
  state.notice = key ? { key, vars } : undefined;
  renderNotice();
}

function renderNotice() {
  const box = $('notice');
  box.hidden = !state.notice;
  if (!state.notice) return;
  box.className = `notice ${state.notice.key === 'error.network' ? 'notice-warn' : 'notice-error'}`;
  box.dataset.key = state.notice.key;
  $('notice-text').textContent = t(state.notice.key, state.notice.vars);
}

function toast(text, kind = 'ok') {
  const el = $('toast');
  el.textContent = text;
  el.className = `toast toast-${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 3500);
}

function showFatal(kind) {
  state.phase = 'fatal';
  state.fatal = kind;
  publisher?.stop();
  subscriber?.stop();
  micTrack?.stop();
  camTrack?.stop();
  events?.close();
  $('main').hidden = true;
  $('presence').hidden = true;
  const box = $('fatal');
  box.dataset.kind = kind;
  box.hidden = false;
  renderFatal();
}

function renderFatal() {
  if (!state.fatal) return;
  const kind = FATAL_KINDS.has(state.fatal) ? state.fatal : 'badLink';
  $('fatal-title').textContent = t(`error.${kind}.title`);
  $('fatal-body').textContent = t(`error.${kind}.body`);
}

function renderHeading() {
  const c = info.case;
  if (!c) return;
  $('heading-order').textContent = `${t('field.order')} ${c.orderId}`;
  const pill = $('status-pill');
  pill.hidden = false;
  pill.className = `status status-${c.status}`;
  pill.dataset.status = c.status;
  pill.textContent = t(`status.${c.status}`);
}

function renderPresence() {
  const pill = $('presence');
  const live = state.buyerLive;
  pill.className = `pill ${live ? 'pill-good' : 'pill-idle'}`;
  pill.dataset.live = String(live);
  $('presence-text').textContent = t(live ? 'staff.buyer.online' : 'staff.buyer.offline');
}

function row(dl, label, value, opts = {}) {
  const dt = document.createElement('dt');
  dt.textContent = label;
  const dd = document.createElement('dd');
  dd.textContent = value ?? '–';
  if (opts.mono) dd.classList.add('mono');
  if (opts.key) dd.dataset.field = opts.key;
  dl.append(dt, dd);
}

function renderDetails() {
  const c = info.case;
  if (!c) return;
  const dl = $('details');
  dl.replaceChildren();
  row(dl, t('field.order'), c.orderId, { mono: true, key: 'order' });
  row(dl, t('field.sku'), c.sku, { mono: true, key: 'sku' });
  row(dl, t('field.reason'), t(`reason.${c.reason}`), { key: 'reason' });
  row(dl, t('field.marketplace'), c.marketplace, { key: 'marketplace' });
  row(dl, t('field.status'), t(`status.${c.status}`), { key: 'status' });
  if (c.outcome) {
    const d = c.disposition ? ` · ${t(`disposition.${c.disposition}`)}` : '';
    row(dl, t('field.decided'), `${t(`outcome.${c.outcome}`)}${d}`, { key: 'outcome' });
  }
  row(dl, t('field.created'), formatTime(c.createdAt, { date: true }), { key: 'created' });
  row(
    dl,
    t('field.consent'),
    t(state.buyerConsented ? 'staff.consent.given' : 'staff.consent.none'),
    {
      key: 'consent',
    },
  );
  if (c.note) row(dl, t('field.note'), c.note, { key: 'note' });
  $('timezone').textContent = t('staff.timezone', { zone: timeZoneName() });
}

function fillSelect(select, values, prefix, withEmpty) {
  const current = select.value;
  select.replaceChildren();
  if (withEmpty) {
    const opt = document.createElement('option');
    opt.value = '';
    opt.textContent = t('staff.choose');
    select.append(opt);
  }
  for (const v of values) {
    const opt = document.createElement('option');
    opt.value = v;
    opt.textContent = t(`${prefix}.${v}`);
    select.append(opt);
  }
  select.value = current;
}

function renderDecisionForm() {
  fillSelect($('outcome'), OUTCOMES, 'outcome', true);
  fillSelect($('disposition'), DISPOSITIONS, 'disposition', true);
  const closed = info.case?.status === 'closed';
  for (const el of $('decision-form').elements) el.disabled = closed;
}

function renderPrompts() {
  const box = $('prompt-buttons');
  if (!box.childElementCount) {
    for (const key of PROMPTS) {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'chip';
      btn.dataset.prompt = key;
      btn.addEventListener('click', () => sendPrompt(key, btn));
      box.append(btn);
    }
  }
  for (const btn of box.children) btn.textContent = t(btn.dataset.prompt);
}

function renderTools() {
  const mic = $('mic');
  mic.setAttribute('aria-pressed', String(state.micOn));
  mic.classList.toggle('is-off', !state.micOn);
  mic.disabled = !state.micAvailable;
  $('mic-text').textContent = t(state.micOn ? 'staff.mic.on' : 'staff.mic.off');
  mic.title = $('mic-text').textContent;
  const cam = $('cam');
  cam.setAttribute('aria-pressed', String(state.camOn));
  cam.classList.toggle('is-off', !state.camOn);
  $('cam-text').textContent = t(state.camOn ? 'staff.cam.on' : 'staff.cam.off');
  cam.title = $('cam-text').textContent;
  $('sound').hidden = !state.soundBlocked;
}

function renderStage() {
  // a weak link still shows its last frame: the banner explains why it does not move
  const hasVideo = state.videoWidth > 0 && (Date.now() - lastFrameAt < 2000 || state.weakVideo);
  $('weak').hidden = !state.weakVideo;
  $('stage-empty').hidden = hasVideo;
  $('snapshot').disabled = !hasVideo;
  let key = 'staff.waiting';
  if (state.subscribe !== 'connected') key = 'staff.connecting';
  else if (state.framesDecoded > 0 && !hasVideo) key = 'staff.buyerLeft';
  $('stage-empty-text').textContent = t(key);
  $('stage-empty').dataset.key = key;
}

function renderStats() {
  const v = stats.inbound?.video;
  const el = $('stats');
  if (!v?.width) {
    el.textContent = t('staff.stats.waiting');
    return;
  }
  const ms = (x) => (x === undefined ? '–' : `${x} ms`);
  el.textContent = t('staff.stats.line', {
    width: v.width,
    height: v.height,
    fps: v.fps ?? '–',
    bitrate: formatBitrate(v.bitrateKbps),
    rtt: ms(stats.inbound.rttMs),
    loss: `${(v.lossPct ?? 0).toFixed(1)}%`,
    jitter: ms(v.jitterBufferMs),
  });
}

function renderSnapshotCount() {
  $('snapshot-count').textContent = snapshots.size ? String(snapshots.size) : '';
  $('strip-empty').hidden = snapshots.size > 0;
}

function renderAll() {
  state.lang = document.documentElement.lang;
  renderFatal();
  renderNotice();
  renderHeading();
  renderPresence();
  renderDetails();
  renderDecisionForm();
  renderPrompts();
  renderTools();
  renderStage();
  renderStats();
  renderSnapshotCount();
  for (const s of snapshots.values()) renderSnapshot(s);
}

// ---- media ----

async function openMic() {
  try {
    const s = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    micTrack = s.getAudioTracks()[0];
    state.micAvailable = true;
    state.micOn = true;
    // A page capturing the microphone may play sound without a click: if the buyer's audio
    // arrived first and had to start muted, unmute it now rather than wait for the button.
    if (state.soundBlocked) playRemote();
  } catch (err) {
    console.warn('microphone unavailable:', err?.name ?? err);
    state.micAvailable = false;
    state.micOn = false;
    showNotice('staff.micDenied');
  }
  renderTools();
}

function startPublisher() {
  publisher = new MediaSession({
    kind: 'whip',
    caseId,
    token,
    iceServers: info.iceServers,
    setup: (pc) => {
      // both transceivers always exist, so the camera can be switched with replaceTrack alone
      pc.addTransceiver(micTrack ?? 'audio', { direction: 'sendonly' });
      pc.addTransceiver(camTrack ?? 'video', { direction: 'sendonly' });
    },
    onState: (s) => {
      state.publish = s;
      noteSessions();
    },
    onConnection: (c) => {
      state.connection.publish = c;
    },
    onFatal: (kind) => showFatal(kind),
    onTrouble: (err) => {
      if (err?.code === 'insufficient_storage') showNotice('error.storage');
      console.warn('microphone publish attempt failed:', err?.message ?? err);
    },
  });
  publisher.start();
}

async function playRemote() {
  const video = $('remote');
  video.muted = false;
  try {
    await video.play();
    state.soundBlocked = false;
  } catch {
    // autoplay with sound needs a click first: play muted and offer a button
    video.muted = true;
    state.soundBlocked = true;
    video.play().catch(() => {});
  }
  renderTools();
}

/** A phone held upright sends portrait video: the layout puts the tools beside it. */
function updateOrientation() {
  const v = $('remote');
  const portrait = v.videoHeight > v.videoWidth * 1.05;
  $('video-area').classList.toggle('is-portrait', portrait);
}

/** Shows the main picture, or the backup beneath it while the main one stands still. */
function showPicture(which) {
  $('remote').classList.toggle('is-behind', which === 'backup');
  state.picture = which;
  state.fallbacks = pictures.fallbacks;
}

/** Feeds every frame either picture presents to the fallback rule. */
function watchPictures() {
  if (!BACKUP_PICTURE) return;
  for (const [which, el] of [
    ['main', $('remote')],
    ['backup', $('remote-backup')],
  ]) {
    const onFrame = (now) => {
      showPicture(pictures.frame(which, now));
      el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
  }
}

function startSubscriber() {
  const video = $('remote');
  const backupVideo = $('remote-backup');
  const stream = new MediaStream();
  video.srcObject = stream;
  subscriber = new MediaSession({
    kind: 'whep',
    caseId,
    token,
    iceServers: info.iceServers,
    setup: (pc) => {
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      // the buyer's lowest layer as well, shown while the main picture stands still
      const backup = BACKUP_PICTURE
        ? pc.addTransceiver('video', { direction: 'recvonly' })
        : undefined;
      pictures.reset();
      pc.ontrack = (ev) => {
        if (ev.transceiver === backup) {
          backupVideo.srcObject = new MediaStream([ev.track]);
          backupVideo.play().catch(() => {});
          return;
        }
        for (const old of stream.getTracks())
          if (old.kind === ev.track.kind) stream.removeTrack(old);
        stream.addTrack(ev.track);
        playRemote();
      };
    },
    onState: (s) => {
      state.subscribe = s;
      noteSessions();
      if (s === 'connected' && state.notice?.key === 'error.storage') showNotice(undefined);
      renderStage();
    },
    onConnection: (c) => {
      state.connection.subscribe = c;
    },
    onFatal: (kind) => showFatal(kind),
    onTrouble: (err) => {
      if (err?.code === 'insufficient_storage') showNotice('error.storage');
      console.warn('subscribe attempt failed:', err?.message ?? err);
    },
  });
  subscriber.start();
  lastResubscribeAt = performance.now();
}

function videoSender() {
  return publisher?.pc?.getTransceivers().find((tr) => tr.receiver.track?.kind === 'video')?.sender;
}

async function toggleCamera() {
  if (state.camOn) {
    camTrack?.stop();
    camTrack = undefined;
    state.camOn = false;
    await videoSender()?.replaceTrack(null);
    $('self').srcObject = null;
    $('self').hidden = true;
  } else {
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } },
      });
      camTrack = s.getVideoTracks()[0];
    } catch (err) {
      toast(`${t('staff.camDenied')} (${err?.name ?? err})`, 'error');
      return;
    }
    state.camOn = true;
    const sender = videoSender();
    if (sender) await sender.replaceTrack(camTrack);
    else publisher?.restart();
    $('self').srcObject = new MediaStream([camTrack]);
    $('self').hidden = false;
  }
  renderTools();
}

function toggleMic() {
  if (!micTrack) return;
  state.micOn = !state.micOn;
  micTrack.enabled = state.micOn;
  renderTools();
}

// ---- snapshots ----

function snapshotSrc(s) {
  const url = new URL(
    s.url ?? `/api/cases/${encodeURIComponent(caseId)}/snapshots/${s.id}`,
    location.href,
  );
  url.searchParams.set('access_token', token);
  return url.pathname + url.search;
}

function renderSnapshot(s) {
  let li = s.el;
  if (!li) {
    li = document.createElement('li');
    li.className = 'strip-item';
    li.dataset.snapshotId = s.id;
    const btn = document.createElement('button');
    btn.type = 'button';
    const img = document.createElement('img');
    img.src = snapshotSrc(s);
    img.alt = '';
    img.loading = 'lazy';
    img.width = 160;
    img.height = 90;
    const cap = document.createElement('span');
    cap.className = 'strip-caption';
    btn.append(img, cap);
    btn.addEventListener('click', () => {
      $('viewer-img').src = snapshotSrc(s);
      $('viewer').showModal();
    });
    li.append(btn);
    s.el = li;
    const strip = $('snapshot-strip');
    strip.append(li);
    strip.scrollLeft = strip.scrollWidth;
  }
  li.querySelector('.strip-caption').textContent = `${formatTime(s.at)} · ${s.width}×${s.height}`;
  li.querySelector('img').alt = `${t('staff.snapshot')} ${formatTime(s.at)}`;
}

function addSnapshot(s) {
  if (!s?.id || snapshots.has(s.id)) return;
  snapshots.set(s.id, s);
  state.snapshots = snapshots.size;
  renderSnapshot(s);
  renderSnapshotCount();
}

async function loadSnapshots() {
  try {
    const body = await requestJson(`/api/cases/${encodeURIComponent(caseId)}/snapshots`, token);
    for (const s of body.snapshots ?? []) addSnapshot(s);
  } catch (err) {
    console.warn('could not list snapshots:', err?.message ?? err);
  }
}

async function takeSnapshot() {
  const video = $('remote');
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) {
    toast(t('staff.snapshot.noVideo'), 'error');
    return;
  }
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d').drawImage(video, 0, 0, w, h);
  const blob = await new Promise((resolve) =>
    canvas.toBlob(resolve, 'image/jpeg', SNAPSHOT_QUALITY),
  );
  if (!blob) {
    toast(t('error.snapshot', { detail: 'encoding failed' }), 'error');
    return;
  }
  const btn = $('snapshot');
  btn.classList.add('is-busy');
  try {
    const body = await requestJson(`/api/cases/${encodeURIComponent(caseId)}/snapshots`, token, {
      method: 'POST',
      body: blob,
      contentType: 'image/jpeg',
    });
    addSnapshot(body.snapshot);
    toast(t('staff.snapshot.saved', { width: body.snapshot.width, height: body.snapshot.height }));
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind) && kind !== 'closed') return showFatal(kind);
    toast(t('error.snapshot', { detail: err.message }), 'error');
  } finally {
    btn.classList.remove('is-busy');
  }
}

// ---- prompts, decision ----

function sendPrompt(key, btn) {
  chat?.send(english(key), 'prompt');
  btn.classList.add('is-sent');
  setTimeout(() => btn.classList.remove('is-sent'), 1200);
}

async function decide(ev) {
  ev.preventDefault();
  const outcome = $('outcome').value;
  if (!outcome) {
    $('outcome').focus();
    return;
  }
  const disposition = $('disposition').value;
  const note = $('decision-note').value.trim();
  const body = { outcome };
  if (disposition) body.disposition = disposition;
  if (note) body.note = note;
  $('decide').disabled = true;
  const result = $('decision-result');
  try {
    const res = await requestJson(`/api/cases/${encodeURIComponent(caseId)}/decision`, token, {
      method: 'POST',
      body,
    });
    info.case = res.case;
    result.className = 'form-result is-ok';
    result.textContent = t('staff.decided', {
      outcome: t(`outcome.${res.case.outcome}`),
      disposition: res.case.disposition ? t(`disposition.${res.case.disposition}`) : '–',
    });
    renderHeading();
    renderDetails();
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind) && kind !== 'closed') return showFatal(kind);
    result.className = 'form-result is-error';
    result.textContent = t('error.decision', { detail: err.message });
  } finally {
    $('decide').disabled = info.case?.status === 'closed';
  }
}

// ---- events ----

function onCaseEvent(e) {
  switch (e.type) {
    case 'message.posted':
      chat?.receive(e);
      break;
    case 'case.status':
      if (info.case) {
        info.case.status = e.data.status;
        info.case.outcome = e.data.outcome ?? info.case.outcome;
        info.case.disposition = e.data.disposition ?? info.case.disposition;
      }
      state.caseStatus = e.data.status;
      state.outcome = e.data.outcome ?? undefined;
      state.disposition = e.data.disposition ?? undefined;
      renderHeading();
      renderDetails();
      if (e.data.status === 'closed') {
        renderDecisionForm();
        publisher?.stop();
        subscriber?.stop();
      }
      break;
    case 'participant.joined':
      if (e.data.role === 'buyer' && e.data.direction === 'publish') {
        buyerSessions.add(e.data.sessionId);
        state.buyerLive = true;
        // a new publisher: give its video a moment before the stall check counts
        lastFrameAt = Math.max(lastFrameAt, Date.now() - 1000);
        renderPresence();
      }
      break;
    case 'participant.left':
      if (buyerSessions.delete(e.data.sessionId)) {
        state.buyerLive = buyerSessions.size > 0;
        renderPresence();
      }
      break;
    case 'consent.given':
      state.buyerConsented = true;
      renderDetails();
      break;
    case 'snapshot.taken':
      addSnapshot({ ...e.data, at: e.at });
      break;
    default:
      break;
  }
}

async function onEventsBroken() {
  try {
    await requestJson(`/api/cases/${encodeURIComponent(caseId)}`, token);
    setTimeout(() => events?.open(), 1000);
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind) && kind !== 'closed') return showFatal(kind);
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
  state.keyframeRequests = subscriber?.keyframeRequests ?? 0;
}

async function sampleStats() {
  if (state.phase !== 'live') return;
  try {
    if (subscriber?.pc) {
      stats.inbound = await inboundStats(subscriber.pc, stats.inbound);
      const v = stats.inbound.video;
      if (state.subscribe === 'connected') {
        state.weakVideo = weakVideo.update({
          at: stats.inbound.at,
          framesDecoded: v?.framesDecoded ?? 0,
          videoPackets: v?.packetsReceived ?? 0,
          audioPackets: stats.inbound.audio?.packetsReceived ?? 0,
        });
      }
      if (v) {
        if (v.framesDecoded < lastFrames) lastFrames = 0;
        if (v.framesDecoded > lastFrames) lastFrameAt = Date.now();
        state.framesDecoded += v.framesDecoded - lastFrames;
        lastFrames = v.framesDecoded;
        state.videoWidth = $('remote').videoWidth;
        state.videoHeight = $('remote').videoHeight;
      }
    }
    if (publisher?.pc) stats.outbound = await outboundStats(publisher.pc, stats.outbound);
  } catch {
    // a connection replaced mid-read: the next sample will do
  }
  if (state.subscribe !== 'connected' || !state.buyerLive) {
    weakVideo.reset();
    state.weakVideo = false;
  }
  noteSessions();
  checkStall();
  renderStage();
  renderStats();
}

/**
 * The buyer is publishing, our subscription is up, yet no frame for a while (e.g. the node
 * could not hand the new publisher to this subscription): subscribe again.
 */
function checkStall() {
  if (!subscriber || !state.buyerLive || state.subscribe !== 'connected') return;
  // audio still arrives: the subscription works, the buyer's link is what is short
  if (state.weakVideo) return;
  const now = performance.now();
  if (Date.now() - lastFrameAt < STALL_RESUBSCRIBE_MS) return;
  if (now - lastResubscribeAt < STALL_RESUBSCRIBE_MS * 2) return;
  lastResubscribeAt = now;
  state.resubscribes += 1;
  lastFrames = 0;
  stats.inbound = undefined;
  subscriber.restart();
}

// ---- start-up ----

async function load() {
  try {
    info = await requestJson(`/api/cases/${encodeURIComponent(caseId)}`, token);
  } catch (err) {
    const kind = classifyError(err);
    if (FATAL_KINDS.has(kind)) return showFatal(kind);
    $('main').hidden = false;
    showNotice(kind === 'network' ? 'error.network' : 'error.server', { detail: err.message });
    setTimeout(load, 3000);
    return;
  }
  if (info.role !== 'staff') return showFatal('badLink');
  showNotice(undefined);
  state.phase = 'live';
  state.caseStatus = info.case.status;
  state.outcome = info.case.outcome ?? undefined;
  state.disposition = info.case.disposition ?? undefined;
  $('main').hidden = false;
  $('main').setAttribute('aria-busy', 'false');
  renderAll();
  if (info.case.outcome) $('outcome').value = info.case.outcome;
  if (info.case.disposition) $('disposition').value = info.case.disposition;
  if (info.case.decisionNote) $('decision-note').value = info.case.decisionNote;

  chat = new Chat({
    caseId,
    token,
    role: 'staff',
    list: $('messages'),
    form: $('chat-form'),
    input: $('chat-input'),
    onFatal: (kind) => (kind === 'closed' ? undefined : showFatal(kind)),
  });
  events = new CaseEvents({ caseId, token, onEvent: onCaseEvent, onBroken: onEventsBroken });
  events.open();
  loadSnapshots();
  if (info.case.status === 'closed') return;
  startSubscriber();
  await openMic();
  startPublisher();
}

/** The network changed: both connections restart ICE (or reconnect) on the new path. */
function networkChanged() {
  if (state.phase !== 'live') return;
  publisher?.networkChanged();
  subscriber?.networkChanged();
}

async function main() {
  await initI18n($('lang'));
  onLanguageChange(renderAll);
  renderAll();
  if (!caseId || !token) return showFatal('badLink');
  $('mic').addEventListener('click', toggleMic);
  $('cam').addEventListener('click', toggleCamera);
  $('snapshot').addEventListener('click', takeSnapshot);
  $('decision-form').addEventListener('submit', decide);
  $('sound').addEventListener('click', playRemote);
  $('remote').addEventListener('resize', updateOrientation);
  $('remote').addEventListener('loadedmetadata', updateOrientation);
  watchPictures();
  window.addEventListener('offline', () => {
    state.online = false;
    showNotice('error.network');
  });
  window.addEventListener('online', () => {
    state.online = true;
    if (state.notice?.key === 'error.network') showNotice(undefined);
    networkChanged();
    if (events && !events.connected) events.open();
  });
  // another network (Wi-Fi to wired, VPN on): restart ICE on both sessions
  navigator.connection?.addEventListener?.('change', networkChanged);
  window.addEventListener('pagehide', () => {
    quality.stop();
    publisher?.stop();
    subscriber?.stop();
  });
  setInterval(sampleStats, 500);
  quality.start();
  await load();
}

main();
