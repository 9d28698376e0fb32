/**
 * WHIP (publish) and WHEP (subscribe) sessions against the node, each on its own
 * RTCPeerConnection, that reconnect by themselves: on a network change or a connection that drops,
 * ICE restarts on the same session (PATCH, RFC 9725 section 4.3); when that is not possible (an
 * older node, the session is gone) or does not help, the connection is replaced by a new POST
 * with the same token (the node drops the old session).
 */
import { ApiError, classifyError, FATAL_KINDS } from './api.js';
import { answerWithIce, parseFragment, restartFragment, SDPFRAG_TYPE } from './ice.js';
import { DecodeStallWatch } from './stall.js';

const ICE_GATHER_TIMEOUT_MS = 3000;
/** A session that has not connected this long after the answer is replaced. */
const CONNECT_TIMEOUT_MS = 10_000;
/** `disconnected` this long, with no ICE restart possible, is treated as lost. */
const DISCONNECTED_GRACE_MS = 2500;
/** `disconnected` this long: restart ICE on the same session. */
const ICE_RESTART_AFTER_MS = 1500;
/** Still not connected this long after an ICE restart: replace the session. */
const RESTART_GRACE_MS = 6000;
/**
 * A connection that was receiving and then gets nothing for this long has lost its path: restart
 * ICE without waiting for the browser to call it `disconnected` (8-10 s: it waits for several
 * unanswered checks).
 */
const SILENT_PATH_MS = 2000;
/** Packets a second that count as receiving (the node's feedback alone is 20 a second). */
const RECEIVING_PACKETS_PER_S = 10;
/**
 * How often the connection's receive counters are read: often enough that a WHEP video that
 * stands still is noticed within ~1.25 s (`DecodeStallWatch`).
 */
const RECEIVE_READ_MS = 250;
/** Network changes closer together than this share one ICE restart. */
const NETWORK_CHANGE_MIN_GAP_MS = 1000;
/** A WHIP/WHEP POST that takes longer is abandoned and retried. */
const POST_TIMEOUT_MS = 15_000;
const BACKOFF_MS = [200, 1000, 2000, 4000, 8000];

/** What {@link MediaSession.watchReceive} knows of a connection's incoming packets. */
function newReceiveWatch() {
  return { packets: 0, readAt: 0, lastPacketAt: 0, armed: false, reading: false };
}

/** The node's JSON error (or just the status) as an ApiError. */
async function apiError(res) {
  let code = `http_${res.status}`;
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? message;
  } catch {
    // keep the status
  }
  return new ApiError(res.status, code, message);
}

/** Resolves once ICE gathering is complete (or after a timeout, with what was gathered). */
export function iceGatheringDone(pc, timeoutMs = ICE_GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/**
 * One WHIP or WHEP session.
 * - `setup(pc)` adds transceivers/tracks to a fresh connection (called on every (re)connect);
 * - `onState(state)` hears `connecting`, `connected`, `reconnecting`, `stopped`;
 * - `onFatal(kind, err)` hears errors retrying cannot fix (expired link, closed case…);
 * - `onTrouble(err, attempt)` hears each failed attempt (the page may fall back to chat).
 */
export class MediaSession {
  constructor({
    kind,
    caseId,
    token,
    iceServers,
    setup,
    onState,
    onFatal,
    onTrouble,
    onConnection,
  }) {
    this.kind = kind;
    this.caseId = caseId;
    this.token = token;
    this.iceServers = iceServers ?? [];
    this.setup = setup;
    this.onState = onState ?? (() => {});
    this.onFatal = onFatal ?? (() => {});
    this.onTrouble = onTrouble ?? (() => {});
    this.onConnection = onConnection ?? (() => {});
    /** @type {RTCPeerConnection | undefined} */
    this.pc = undefined;
    this.location = undefined;
    this.state = 'idle';
    this.failures = 0;
    this.reconnects = 0;
    this.stopped = true;
    this.timer = undefined;
    this.watch = undefined;
    this.answeredAt = 0;
    this.disconnectedSince = 0;
    /** The session's entity-tag (ETag), which every ICE restart changes. */
    this.etag = undefined;
    this.iceRestarts = 0;
    /** ICE restarts whose PATCH failed while the old path still worked: taken back, session kept. */
    this.iceRestartsRolledBack = 0;
    this.iceRestarting = false;
    /** An ICE restart was tried since the connection last worked. */
    this.iceRestartTried = false;
    this.restartedAt = 0;
    /** The node answered PATCH with 405/501 (an older node): reconnect with POST only. */
    this.patchUnsupported = false;
    this.receive = newReceiveWatch();
    /** WHEP: the received video stands still while its packets arrive (`stall.js`). */
    this.stall = new DecodeStallWatch();
    /** WHEP: keyframes asked of the node because the video stood still. */
    this.keyframeRequests = 0;
  }

  /** The node's id for the current session (last segment of its Location). */
  get sessionId() {
    return this.location?.split('/').pop();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  start() {
    this.stopped = false;
    this.failures = 0;
    this.connect();
    clearInterval(this.watch);
    this.watch = setInterval(() => this.check(), 250);
  }

  /** Replace the connection now (network back, or the page saw the media stall). */
  restart() {
    if (this.stopped) return;
    this.failures = 0;
    this.connect();
  }

  async connect() {
    clearTimeout(this.timer);
    const old = this.pc;
    const oldLocation = this.location;
    this.pc = undefined;
    this.location = undefined;
    if (old) {
      old.onconnectionstatechange = null;
      old.close();
      // the new POST replaces the old session anyway; ending it explicitly frees it sooner
      if (oldLocation) this.deleteSession(oldLocation);
    }
    this.setState(this.reconnects > 0 || this.failures > 0 ? 'reconnecting' : 'connecting');
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.answeredAt = 0;
    this.disconnectedSince = 0;
    this.iceRestarting = false;
    this.iceRestartTried = false;
    this.etag = undefined;
    this.receive = newReceiveWatch();
    this.stall.reset();
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      this.onConnection(pc.connectionState);
      if (pc.connectionState === 'connected') {
        this.failures = 0;
        this.disconnectedSince = 0;
        this.setState('connected');
      }
    };
    try {
      this.setup(pc);
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await iceGatheringDone(pc);
      if (pc !== this.pc) return;
      const abort = new AbortController();
      const timeout = setTimeout(() => abort.abort(), POST_TIMEOUT_MS);
      const res = await fetch(`/${this.kind}/${encodeURIComponent(this.caseId)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${this.token}` },
        body: pc.localDescription.sdp,
        signal: abort.signal,
      })
        .catch((err) => {
          throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
        })
        .finally(() => clearTimeout(timeout));
      if (!res.ok) throw await apiError(res);
      const answer = await res.text();
      const location = res.headers.get('Location');
      if (pc !== this.pc) {
        if (location) this.deleteSession(new URL(location, window.location.href).pathname);
        return;
      }
      this.location = location ? new URL(location, window.location.href).pathname : undefined;
      this.etag = res.headers.get('ETag') ?? undefined;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      this.answeredAt = performance.now();
    } catch (err) {
      if (pc !== this.pc || this.stopped) return;
      const kind = classifyError(err);
      if (FATAL_KINDS.has(kind)) {
        this.stop({ quiet: true });
        this.onFatal(kind, err);
        return;
      }
      this.fail(err);
    }
  }

  fail(err) {
    this.failures += 1;
    this.onTrouble(err, this.failures);
    this.setState('reconnecting');
    const delay = BACKOFF_MS[Math.min(this.failures - 1, BACKOFF_MS.length - 1)];
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.stopped) {
        this.reconnects += 1;
        this.connect();
      }
    }, delay);
  }

  /**
   * Runs four times a second: restarts ICE on a connection that dropped, and replaces connections
   * that failed even so, were closed under us or never came up.
   */
  check() {
    const pc = this.pc;
    if (this.stopped || !pc) return;
    const state = pc.connectionState;
    const ice = pc.iceConnectionState;
    const now = performance.now();
    if (state === 'connected' && (ice === 'connected' || ice === 'completed')) {
      this.disconnectedSince = 0;
      if (!this.iceRestarting) {
        this.iceRestartTried = false;
        this.failures = 0;
        this.setState('connected');
        this.watchReceive(pc, now);
      }
      return;
    }
    if (this.iceRestarting) return;
    if (state === 'closed' || (state === 'failed' && !this.canRestartIce())) {
      this.dropAndRetry(new Error(`connection ${state}`));
      return;
    }
    if (state === 'failed') {
      this.restartIce('connection failed');
      return;
    }
    if (state === 'disconnected' || ice === 'disconnected') {
      this.setState('reconnecting');
      if (!this.disconnectedSince) this.disconnectedSince = now;
      if (now - this.disconnectedSince > ICE_RESTART_AFTER_MS && this.canRestartIce()) {
        this.restartIce('connection lost');
      } else if (
        now - Math.max(this.disconnectedSince, this.restartedAt) >
        (this.iceRestartTried ? RESTART_GRACE_MS : DISCONNECTED_GRACE_MS)
      ) {
        this.dropAndRetry(new Error('connection lost'));
      }
      return;
    }
    if (this.answeredAt && now - this.answeredAt > CONNECT_TIMEOUT_MS) {
      this.dropAndRetry(new Error('connection timed out'));
    }
  }

  /**
   * Reads what the connection has received, four times a second. Once it has received steadily,
   * a silence of {@link SILENT_PATH_MS} restarts ICE; the watch is armed again only by packets
   * arriving (so a silence that lasts, or a peer that stopped sending, costs one restart).
   * WHEP: video that stands still while its packets arrive asks the node for a keyframe.
   */
  async watchReceive(pc, now) {
    const watch = this.receive;
    if (watch.reading || now - watch.readAt < RECEIVE_READ_MS) return;
    watch.reading = true;
    let packets;
    let video;
    try {
      const main = mainVideoTrackId(pc);
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'transport' && typeof s.packetsReceived === 'number') {
          packets = s.packetsReceived;
        }
        if (isMainVideo(s, main)) video = s;
      });
    } catch {
      // a closed connection has no stats: nothing to watch
    } finally {
      watch.reading = false;
    }
    if (packets === undefined || pc !== this.pc || watch !== this.receive) return;
    const at = performance.now();
    if (
      this.kind === 'whep' &&
      video &&
      this.stall.update({
        at,
        framesDecoded: video.framesDecoded ?? 0,
        videoPackets: video.packetsReceived ?? 0,
      })
    ) {
      this.requestKeyframe();
    }
    if (watch.readAt > 0 && packets > watch.packets) {
      const rate = ((packets - watch.packets) * 1000) / (at - watch.readAt);
      if (rate >= RECEIVING_PACKETS_PER_S) watch.armed = true;
      watch.lastPacketAt = at;
    }
    if (watch.readAt === 0) watch.lastPacketAt = at;
    watch.packets = packets;
    watch.readAt = at;
    if (
      watch.armed &&
      at - watch.lastPacketAt >= SILENT_PATH_MS &&
      this.canRestartIce() &&
      !this.iceRestarting
    ) {
      watch.armed = false;
      this.restartIce(`nothing received for ${Math.round(at - watch.lastPacketAt)} ms`);
    }
  }

  /** An ICE restart is worth trying: the session is answered, the node takes PATCH, none tried yet. */
  canRestartIce() {
    return !!this.pc && !!this.location && !this.patchUnsupported && !this.iceRestartTried;
  }

  /**
   * The network changed (another Wi-Fi, mobile data, back online): the current path may be gone
   * even if the connection does not know it yet, so restart ICE now (or connect again when there
   * is no answered session to restart).
   */
  networkChanged() {
    // going offline is a change too: wait for the network that comes next ('online')
    if (this.stopped || navigator.onLine === false) return;
    if (!this.pc || !this.location) {
      if (this.state !== 'connected') this.restart();
      return;
    }
    if (this.iceRestarting || performance.now() - this.restartedAt < NETWORK_CHANGE_MIN_GAP_MS)
      return;
    if (this.patchUnsupported) {
      if (this.pc.connectionState !== 'connected') this.dropAndRetry(new Error('network changed'));
      return;
    }
    this.iceRestartTried = false;
    this.restartIce('network changed');
  }

  /**
   * ICE restart on the same session (RFC 9725 section 4.3): new local credentials and candidates
   * go to the node in a PATCH, its new ones come back and are applied to the answer already held.
   * Media, recording and the session id carry on. If the PATCH cannot reach the node (no network,
   * a timeout, a 5xx) while the current path still carries media, the restart's offer is taken
   * back and the session kept; otherwise (405 from an older node, the session is gone, the path is
   * down too) the connection is replaced by a new session as before.
   */
  async restartIce(reason) {
    const pc = this.pc;
    const location = this.location;
    if (this.stopped || !pc || !location || this.iceRestarting) return;
    // the answer to the POST is still being applied: nothing to restart yet
    if (pc.signalingState !== 'stable' || !pc.currentRemoteDescription) return;
    this.iceRestarting = true;
    this.iceRestartTried = true;
    this.restartedAt = performance.now();
    this.setState('reconnecting');
    try {
      pc.restartIce();
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc);
      if (pc !== this.pc) return;
      const abort = new AbortController();
      const timeout = setTimeout(() => abort.abort(), POST_TIMEOUT_MS);
      const res = await fetch(location, {
        method: 'PATCH',
        headers: {
          'Content-Type': SDPFRAG_TYPE,
          Authorization: `Bearer ${this.token}`,
          'If-Match': '*',
        },
        body: restartFragment(pc.localDescription.sdp),
        signal: abort.signal,
      })
        .catch((err) => {
          throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
        })
        .finally(() => clearTimeout(timeout));
      if (!res.ok) throw await apiError(res);
      const ice = parseFragment(await res.text());
      if (pc !== this.pc) return;
      this.etag = res.headers.get('ETag') ?? this.etag;
      const previous = pc.currentRemoteDescription.sdp;
      await pc.setRemoteDescription({ type: 'answer', sdp: answerWithIce(previous, ice) });
      this.iceRestarts += 1;
      this.restartedAt = performance.now();
      this.answeredAt = this.restartedAt;
      this.disconnectedSince = 0;
      console.info(`ICE restarted on the same session (${reason})`);
    } catch (err) {
      if (pc !== this.pc || this.stopped) return;
      if (err instanceof ApiError && (err.status === 405 || err.status === 501)) {
        this.patchUnsupported = true;
      }
      const kind = classifyError(err);
      if (FATAL_KINDS.has(kind)) {
        this.stop({ quiet: true });
        this.onFatal(kind, err);
        return;
      }
      if (kind === 'network' || kind === 'server') {
        const kept = await this.rollBack(pc);
        // the connection may have been replaced or stopped while the rollback ran
        if (pc !== this.pc || this.stopped) return;
        if (kept) {
          // The node could not be reached (a network change often takes HTTP down for a
          // moment) but the current path still carries media: keep the session and its path.
          // A lost path or the next network change tries the restart again.
          console.warn(`ICE restart failed (${err?.message ?? err}); kept the current path`);
          this.iceRestartTried = false;
          this.iceRestartsRolledBack += 1;
          return;
        }
      }
      console.warn(`ICE restart failed (${err?.message ?? err}); reconnecting with a new session`);
      this.iceRestarting = false;
      this.dropAndRetry(err);
    } finally {
      if (pc === this.pc) this.iceRestarting = false;
    }
  }

  /**
   * Takes back the restart's offer (the previous ICE credentials stay in use) when the connection
   * is still up. True when it was taken back.
   */
  async rollBack(pc) {
    if (pc.connectionState !== 'connected' || pc.signalingState !== 'have-local-offer')
      return false;
    try {
      await pc.setLocalDescription({ type: 'rollback' });
    } catch {
      return false;
    }
    return pc.connectionState === 'connected';
  }

  dropAndRetry(err) {
    const pc = this.pc;
    if (pc) {
      pc.onconnectionstatechange = null;
      if (pc.connectionState !== 'closed') pc.close();
    }
    // keep the pc reference out of the way so connect() does not close it twice
    this.pc = undefined;
    const loc = this.location;
    this.location = undefined;
    if (loc) this.deleteSession(loc);
    this.fail(err);
  }

  /**
   * Asks the node for a keyframe for this WHEP session's video (its picture stands still while
   * packets arrive). Best effort: a session that has just been replaced is simply not found.
   */
  requestKeyframe() {
    if (!this.location) return;
    this.keyframeRequests += 1;
    fetch(`${this.location}/keyframe`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.token}` },
    }).catch(() => {});
  }

  deleteSession(path) {
    fetch(path, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${this.token}` },
      keepalive: true,
    }).catch(() => {});
  }

  /** Ends the session: DELETE on its Location, then closes the connection. */
  stop({ quiet = false } = {}) {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watch);
    const pc = this.pc;
    this.pc = undefined;
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.close();
    }
    if (this.location && !quiet) this.deleteSession(this.location);
    this.location = undefined;
    this.setState('stopped');
  }
}

export function selectedPair(report) {
  let transport;
  for (const s of report.values()) if (s.type === 'transport') transport = s;
  if (transport?.selectedCandidatePairId) return report.get(transport.selectedCandidatePairId);
  for (const s of report.values()) {
    if (s.type === 'candidate-pair' && (s.nominated || s.selected) && s.state === 'succeeded')
      return s;
  }
  return undefined;
}

/**
 * The track id of a WHEP connection's main video: its first video transceiver's. The staff page
 * also receives a backup picture (a second video), so figures about "the" video are this one's.
 */
export function mainVideoTrackId(pc) {
  for (const t of pc.getTransceivers()) {
    const track = t.receiver.track;
    if (track?.kind === 'video') return track.id;
  }
  return undefined;
}

/** A stats entry that is the connection's main inbound video (see {@link mainVideoTrackId}). */
export function isMainVideo(s, mainId) {
  return (
    s.type === 'inbound-rtp' &&
    s.kind === 'video' &&
    (mainId === undefined || s.trackIdentifier === mainId)
  );
}

const round = (v, d = 0) =>
  v === undefined || Number.isNaN(v) ? undefined : Math.round(v * 10 ** d) / 10 ** d;

/**
 * Receive-side numbers from a WHEP connection. `prev` is the previous result (for rates).
 */
export async function inboundStats(pc, prev) {
  const report = await pc.getStats();
  const now = performance.now();
  const out = { at: now, video: undefined, audio: undefined, rttMs: undefined };
  const main = mainVideoTrackId(pc);
  for (const s of report.values()) {
    if (s.type !== 'inbound-rtp') continue;
    if (s.kind === 'video') {
      if (!isMainVideo(s, main)) continue; // the backup picture
      const p = prev?.video;
      const dt = p ? (now - prev.at) / 1000 : 0;
      const lostDelta = p ? s.packetsLost - p.packetsLost : s.packetsLost;
      const recvDelta = p ? s.packetsReceived - p.packetsReceived : s.packetsReceived;
      out.video = {
        width: s.frameWidth ?? 0,
        height: s.frameHeight ?? 0,
        fps: round(
          s.framesPerSecond ?? (p && dt > 0 ? (s.framesDecoded - p.framesDecoded) / dt : 0),
        ),
        framesDecoded: s.framesDecoded ?? 0,
        framesDropped: s.framesDropped ?? 0,
        freezeCount: s.freezeCount ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        nackCount: s.nackCount ?? 0,
        pliCount: s.pliCount ?? 0,
        bitrateKbps: p && dt > 0 ? round(((s.bytesReceived - p.bytesReceived) * 8) / dt / 1000) : 0,
        lossPct:
          recvDelta + lostDelta > 0
            ? round((Math.max(lostDelta, 0) / (recvDelta + Math.max(lostDelta, 0))) * 100, 1)
            : 0,
        jitterBufferMs:
          s.jitterBufferEmittedCount > 0
            ? round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000)
            : undefined,
        jitterMs: round((s.jitter ?? 0) * 1000),
        codec: report.get(s.codecId)?.mimeType,
      };
    } else if (s.kind === 'audio') {
      out.audio = {
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        audioLevel: s.audioLevel,
        jitterMs: round((s.jitter ?? 0) * 1000),
      };
    }
  }
  const pair = selectedPair(report);
  if (pair?.currentRoundTripTime !== undefined) out.rttMs = round(pair.currentRoundTripTime * 1000);
  return out;
}

/** Send-side numbers from a WHIP connection: RTT, loss reported by the node, bandwidth estimate. */
export async function outboundStats(pc, prev) {
  const report = await pc.getStats();
  const now = performance.now();
  const out = {
    at: now,
    rttMs: undefined,
    lossPct: 0,
    availableOutgoingKbps: undefined,
    bitrateKbps: 0,
    bytesSent: 0,
    packetsSent: 0,
    frameWidth: undefined,
    frameHeight: undefined,
    fps: undefined,
    remoteLost: 0,
    qualityLimitation: undefined,
  };
  let fractionLost;
  for (const s of report.values()) {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.bytesSent += s.bytesSent ?? 0;
      out.packetsSent += s.packetsSent ?? 0;
      out.frameWidth = s.frameWidth;
      out.frameHeight = s.frameHeight;
      out.fps = s.framesPerSecond;
      out.qualityLimitation = s.qualityLimitationReason;
    } else if (s.type === 'remote-inbound-rtp' && s.kind === 'video') {
      out.remoteLost = s.packetsLost ?? 0;
      if (s.fractionLost !== undefined) fractionLost = s.fractionLost;
      if (s.roundTripTime !== undefined && out.rttMs === undefined)
        out.rttMs = round(s.roundTripTime * 1000);
    }
  }
  const pair = selectedPair(report);
  if (pair?.currentRoundTripTime !== undefined) out.rttMs = round(pair.currentRoundTripTime * 1000);
  if (pair?.availableOutgoingBitrate !== undefined)
    out.availableOutgoingKbps = round(pair.availableOutgoingBitrate / 1000);
  if (prev && now > prev.at)
    out.bitrateKbps = round(
      ((out.bytesSent - prev.bytesSent) * 8) / ((now - prev.at) / 1000) / 1000,
    );
  if (fractionLost !== undefined) out.lossPct = round(fractionLost * 100, 1);
  else if (prev) {
    const sent = out.packetsSent - prev.packetsSent;
    const lost = out.remoteLost - prev.remoteLost;
    out.lossPct = sent > 0 ? round((Math.max(lost, 0) / sent) * 100, 1) : 0;
  }
  return out;
}

/**
 * good / weak from what the sender sees: loss above 5 %, RTT above 400 ms or an estimate
 * under 150 kbit/s make a weak link (video will be blurry or stall).
 */
export function linkQuality({ rttMs, lossPct, availableOutgoingKbps }) {
  if ((lossPct ?? 0) > 5) return 'weak';
  if ((rttMs ?? 0) > 400) return 'weak';
  if (availableOutgoingKbps !== undefined && availableOutgoingKbps < 150) return 'weak';
  return 'good';
}

export function formatBitrate(kbps) {
  if (kbps === undefined) return '–';
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`;
}

/**
 * A read-only `window.returncam` for tests and benchmarks: copies of the page's state and stats,
 * and its live connections (tests close them to simulate a network failure).
 */
export function exposeTestHook(state, stats, peerConnections) {
  Object.defineProperty(window, 'returncam', {
    value: Object.freeze({
      get state() {
        return structuredClone(state());
      },
      get stats() {
        return structuredClone(stats());
      },
      get peerConnections() {
        return peerConnections();
      },
    }),
  });
}
