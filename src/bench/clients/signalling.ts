/**
 * Shared WHIP/WHEP signalling for the synthetic clients: gather every candidate, POST the offer,
 * return the answer and the session URL.
 */
import type { PeerConnection, Track } from 'node-datachannel';

export class SignallingError extends Error {
  override name = 'SignallingError';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface SignallingOptions {
  /** Node base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  caseId: string;
  /** Case token sent as `Authorization: Bearer`. */
  token?: string;
  /** Extra request headers (tests use `X-Test-Role`). */
  headers?: Record<string, string>;
  /** Rewrites the offer before it is sent (the bench relay puts its own candidate in). */
  transformOffer?: (sdp: string) => string | Promise<string>;
  /** Rewrites the answer before it is applied. */
  transformAnswer?: (sdp: string) => string | Promise<string>;
  /**
   * Replaces the HTTP exchange: gets the (transformed) offer, returns the answer. The bench uses
   * it to connect two clients to each other with no node in between.
   */
  exchange?: (endpoint: 'whip' | 'whep', offerSdp: string) => Promise<SignallingResult>;
}

export interface SignallingResult {
  answerSdp: string;
  /** Absolute URL of the session (from `Location`), for DELETE. */
  sessionUrl: string;
}

/** Resolves once the connection has gathered every local candidate. */
export function gathered(pc: PeerConnection, timeoutMs: number): Promise<void> {
  if (pc.gatheringState() === 'complete') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`ICE gathering did not complete within ${timeoutMs} ms`)),
      timeoutMs,
    );
    pc.onGatheringStateChange((state) => {
      if (state !== 'complete') return;
      clearTimeout(timer);
      resolve();
    });
    if (pc.gatheringState() === 'complete') {
      clearTimeout(timer);
      resolve();
    }
  });
}

function headers(options: SignallingOptions, extra: Record<string, string> = {}) {
  const out: Record<string, string> = { ...options.headers, ...extra };
  if (options.token) out.Authorization = `Bearer ${options.token}`;
  return out;
}

/**
 * POSTs the offer to `{baseUrl}/{endpoint}/{caseId}` (or hands it to `exchange`) and returns the
 * answer, applying `transformOffer` and `transformAnswer` on the way.
 */
export async function postOffer(
  endpoint: 'whip' | 'whep',
  options: SignallingOptions,
  originalOffer: string,
): Promise<SignallingResult> {
  const offerSdp = options.transformOffer
    ? await options.transformOffer(originalOffer)
    : originalOffer;
  const result = options.exchange
    ? await options.exchange(endpoint, offerSdp)
    : await httpExchange(endpoint, options, offerSdp);
  if (!options.transformAnswer) return result;
  return { ...result, answerSdp: await options.transformAnswer(result.answerSdp) };
}

async function httpExchange(
  endpoint: 'whip' | 'whep',
  options: SignallingOptions,
  offerSdp: string,
): Promise<SignallingResult> {
  const url = `${options.baseUrl.replace(/\/$/, '')}/${endpoint}/${encodeURIComponent(options.caseId)}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: headers(options, { 'Content-Type': 'application/sdp' }),
    body: offerSdp,
  });
  const body = await res.text();
  if (res.status !== 201) {
    let code: string | undefined;
    let message = body;
    try {
      const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code;
      message = parsed.error?.message ?? body;
    } catch {
      // not JSON: keep the raw body
    }
    throw new SignallingError(
      res.status,
      code,
      `${endpoint.toUpperCase()} ${url}: ${res.status} ${message}`,
    );
  }
  const location = res.headers.get('location');
  if (!location)
    throw new SignallingError(res.status, undefined, `${endpoint} ${url}: 201 without Location`);
  return { answerSdp: body, sessionUrl: new URL(location, url).toString() };
}

/** DELETEs a session URL; resolves with the HTTP status (0 when the node is unreachable). */
export async function deleteSession(
  sessionUrl: string,
  options: SignallingOptions,
): Promise<number> {
  if (!/^https?:/.test(sessionUrl)) return 0;
  try {
    const res = await fetch(sessionUrl, { method: 'DELETE', headers: headers(options) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** A random 32-bit SSRC (never 0). */
export function randomSsrc(): number {
  return (Math.floor(Math.random() * 0xfffffffe) + 1) >>> 0;
}

/**
 * Resolves when `track` opens (media connected); rejects when the connection fails or closes
 * first, or after `timeoutMs`. The rejection is pre-handled, so an unawaited result never
 * crashes the process.
 */
export function mediaOpened(
  pc: PeerConnection,
  track: Track,
  who: string,
  timeoutMs: number,
): Promise<void> {
  const opened = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${who}: media did not connect in time`)),
      timeoutMs,
    );
    track.onOpen(() => {
      clearTimeout(timer);
      resolve();
    });
    pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') {
        clearTimeout(timer);
        reject(new Error(`${who}: connection ${state} before media started`));
      }
    });
  });
  opened.catch(() => {});
  return opened;
}
