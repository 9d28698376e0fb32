/**
 * Talking to the node: the link token from the URL fragment, JSON requests with the node's
 * error shape, and the case's event stream.
 */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never reached the node
   * @param {string} code the node's error code, or `network`
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The case id from /b/{id} or /s/{id}. */
export function caseIdFromPath(pathname = location.pathname) {
  const parts = pathname.split('/').filter(Boolean);
  return parts.length >= 2 ? decodeURIComponent(parts[1]) : '';
}

/** The token from `#t=TOKEN`. */
export function tokenFromHash(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  return params.get('t') ?? '';
}

/** A client-generated id (letters, digits, `-` and `.` only), usable as a message clientId. */
export function randomId(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${prefix}-${Date.now().toString(36)}-${hex}`;
}

async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(res.status, code, message);
}

/**
 * Calls the node with the link token. `body` objects go as JSON, Blobs as they are.
 * Resolves with the Response (2xx only); rejects with an ApiError.
 */
export async function request(path, token, { method = 'GET', body, contentType, signal } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== 'string') {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (contentType) {
    headers['Content-Type'] = contentType;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store' });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

export async function requestJson(path, token, opts) {
  const res = await request(path, token, opts);
  return res.json();
}

/** How a failed request should be shown: a fatal page state, or a passing problem. */
export function classifyError(err) {
  if (!(err instanceof ApiError)) return 'other';
  switch (err.code) {
    case 'token_expired':
      return 'expired';
    case 'token_revoked':
      return 'revoked';
    case 'token_bad_signature':
    case 'token_wrong_case':
    case 'token_malformed':
    case 'token_missing':
    case 'token_unknown':
    case 'wrong_role':
      return 'badLink';
    case 'case_closed':
      return 'closed';
    case 'case_not_found':
      return 'notFound';
    case 'network':
      return 'network';
    default:
      return err.status >= 500 ? 'server' : 'other';
  }
}

/** Errors after which retrying cannot help: the page shows them and stops. */
export const FATAL_KINDS = new Set(['expired', 'revoked', 'badLink', 'closed', 'notFound']);

/**
 * The case's event stream. EventSource reconnects by itself and sends Last-Event-ID; when the
 * node refuses the stream (token expired, revoked, case gone) EventSource gives up and
 * `onBroken` is called so the page can find out why. `reopen()` starts again from the last seq.
 */
export class CaseEvents {
  /**
   * @param {{ caseId: string, token: string, onEvent: (e: {seq:number, at:number, type:string, data:any}) => void,
   *   onOpen?: () => void, onDown?: () => void, onBroken?: () => void }} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.lastSeq = 0;
    this.source = undefined;
    this.closed = false;
    this.connected = false;
  }

  open() {
    if (this.closed) return;
    this.source?.close();
    const { caseId, token } = this.opts;
    const q = new URLSearchParams({ access_token: token });
    if (this.lastSeq > 0) q.set('since', String(this.lastSeq));
    const es = new EventSource(`/api/cases/${encodeURIComponent(caseId)}/events?${q}`);
    this.source = es;
    es.onopen = () => {
      this.connected = true;
      this.opts.onOpen?.();
    };
    es.onerror = () => {
      this.connected = false;
      if (es.readyState === EventSource.CLOSED) this.opts.onBroken?.();
      else this.opts.onDown?.();
    };
    for (const type of [
      'message.posted',
      'case.status',
      'case.decided',
      'case.closed',
      'participant.joined',
      'participant.left',
      'consent.given',
      'snapshot.taken',
    ]) {
      es.addEventListener(type, (ev) => {
        let parsed;
        try {
          parsed = JSON.parse(ev.data);
        } catch {
          return;
        }
        const seq = Number(ev.lastEventId || parsed.seq || 0);
        if (seq && seq <= this.lastSeq) return;
        if (seq) this.lastSeq = seq;
        this.opts.onEvent({
          seq,
          at: parsed.at,
          type: parsed.type ?? type,
          data: parsed.data ?? {},
        });
      });
    }
  }

  close() {
    this.closed = true;
    this.source?.close();
  }
}
