/**
 * Reports the network quality a media session measured (getStats) to the node, which stores it
 * on the session for the case-data export: every ~10 s while connected, and once more when the
 * session ends or is replaced (from the last sample, so it also works while the page unloads).
 */
import { isMainVideo, mainVideoTrackId, selectedPair } from './rtc.js';

const SAMPLE_EVERY_MS = 2000;
const REPORT_EVERY_MS = 10_000;

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const finite = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function pairRttMs(report) {
  const rtt = selectedPair(report)?.currentRoundTripTime;
  return rtt === undefined ? null : finite(rtt * 1000);
}

/**
 * A viewer (WHEP) connection: RTT of the selected candidate pair, loss as
 * packetsLost / (packetsReceived + packetsLost), freeze ratio as the video's
 * totalFreezesDuration over the time since its first decoded frame.
 * `memo` keeps what the ratio needs between samples of one connection.
 */
export async function viewerQuality(pc, memo) {
  const report = await pc.getStats();
  let lost = 0;
  let received = 0;
  let frozenS = 0;
  let decoded = 0;
  const main = mainVideoTrackId(pc);
  for (const s of report.values()) {
    if (s.type !== 'inbound-rtp') continue;
    lost += Math.max(s.packetsLost ?? 0, 0);
    received += s.packetsReceived ?? 0;
    if (isMainVideo(s, main)) {
      frozenS += s.totalFreezesDuration ?? 0;
      decoded += s.framesDecoded ?? 0;
    }
  }
  const now = performance.now();
  if (decoded > 0 && memo.videoSince === undefined) memo.videoSince = now;
  const elapsedS = memo.videoSince === undefined ? 0 : (now - memo.videoSince) / 1000;
  return {
    rttMs: pairRttMs(report),
    lossRatio: received + lost > 0 ? clamp01(lost / (received + lost)) : null,
    freezeRatio: elapsedS > 0 ? clamp01(frozenS / elapsedS) : null,
  };
}

/**
 * A publisher (WHIP) connection: RTT of the selected candidate pair (else the RTCP round trip),
 * loss as the node reports it (remote-inbound-rtp fractionLost, video first), no freeze ratio.
 */
export async function publisherQuality(pc) {
  const report = await pc.getStats();
  let videoLoss = null;
  let audioLoss = null;
  let rtcpRttMs = null;
  for (const s of report.values()) {
    if (s.type !== 'remote-inbound-rtp') continue;
    const loss = finite(s.fractionLost);
    if (s.kind === 'video') videoLoss = loss ?? videoLoss;
    else audioLoss = loss ?? audioLoss;
    if (rtcpRttMs === null && s.roundTripTime !== undefined)
      rtcpRttMs = finite(s.roundTripTime * 1000);
  }
  const loss = videoLoss ?? audioLoss;
  return {
    rttMs: pairRttMs(report) ?? rtcpRttMs,
    lossRatio: loss === null ? null : clamp01(loss),
    freezeRatio: null,
  };
}

const round = (v, digits) => (v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits);

export class QualityReporter {
  /**
   * @param {{ caseId: string, token: string, session: () => any,
   *   measure: (pc: RTCPeerConnection, memo: object) => Promise<{rttMs: number|null, lossRatio: number|null, freezeRatio: number|null}> }} opts
   *   `session` returns the MediaSession to report on (or undefined).
   */
  constructor(opts) {
    this.opts = opts;
    this.timer = undefined;
    /** The connection being measured: { pc, sessionId, sentAt, last, unsent }. */
    this.current = undefined;
  }

  start() {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
  }

  async sample() {
    const s = this.opts.session();
    const pc = s?.pc;
    const sessionId = s?.location?.split('/').pop();
    if (this.current && (this.current.pc !== pc || this.current.sessionId !== sessionId)) {
      this.flush();
    }
    if (!pc || !sessionId || s.state !== 'connected') return;
    if (!this.current) {
      this.current = { pc, sessionId, sentAt: performance.now(), last: undefined, unsent: false };
    }
    const cur = this.current;
    let q;
    try {
      q = await this.opts.measure(pc, cur);
    } catch {
      return; // a connection closed mid-read: the next sample will do
    }
    if (this.current !== cur || (q.rttMs ?? q.lossRatio ?? q.freezeRatio) === null) return;
    cur.last = q;
    cur.unsent = true;
    if (performance.now() - cur.sentAt >= REPORT_EVERY_MS) this.send(cur);
  }

  /** Sends the last sample of the current connection (if not yet sent) and forgets it. */
  flush() {
    const cur = this.current;
    this.current = undefined;
    if (cur?.unsent) this.send(cur);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  send(cur) {
    cur.sentAt = performance.now();
    cur.unsent = false;
    const { caseId, token } = this.opts;
    const body = {
      sessionId: cur.sessionId,
      rttMs: round(cur.last.rttMs, 1),
      lossRatio: round(cur.last.lossRatio, 6),
      freezeRatio: round(cur.last.freezeRatio, 6),
    };
    // keepalive lets the last report out while the page unloads (sendBeacon cannot authenticate)
    fetch(`/api/cases/${encodeURIComponent(caseId)}/quality`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      keepalive: true,
    }).catch(() => {});
  }
}
