/**
 * A small client of Janus's HTTP API (https://janus.conf.meetecho.com/docs/rest.html): one Janus
 * session, its plugin handles, and a long poll that receives the asynchronous plugin events (which
 * also keeps the session alive). Requests are matched to their events by transaction id.
 */
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../../core/errors.ts';

export interface Jsep {
  type: 'offer' | 'answer';
  sdp: string;
  /** false: every candidate is in the SDP (no trickle to wait for). */
  trickle?: boolean;
}

/** A plugin's reply: its data (e.g. `{ videoroom: 'joined', id }`) and an SDP when it sends one. */
export interface PluginReply {
  data: Record<string, unknown>;
  jsep?: Jsep;
}

interface JanusMessage {
  janus: string;
  transaction?: string;
  sender?: number;
  session_id?: number;
  data?: { id?: number };
  error?: { code: number; reason: string };
  plugindata?: { plugin: string; data: Record<string, unknown> };
  jsep?: Jsep;
}

interface Pending {
  resolve: (r: PluginReply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function transaction(): string {
  return randomBytes(8).toString('hex');
}

/** An error a Janus plugin replied with; `code` is the plugin's (e.g. 428: no such feed). */
export class JanusError extends Error {
  override name = 'JanusError';
  constructor(
    readonly code: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

function pluginError(where: string, data: Record<string, unknown>): Error | undefined {
  if (data.error === undefined && data.error_code === undefined) return undefined;
  const code = typeof data.error_code === 'number' ? data.error_code : undefined;
  return new JanusError(code, `Janus ${where}: ${String(data.error)} (code ${String(code)})`);
}

export class JanusApi {
  private readonly pending = new Map<string, Pending>();
  private polling: Promise<void> | undefined;
  private closed = false;
  private readonly abort = new AbortController();

  private constructor(
    /** e.g. `http://127.0.0.1:8088/janus` */
    readonly baseUrl: string,
    readonly sessionId: number,
    private readonly timeoutMs: number,
  ) {}

  /** Creates a Janus session and starts its long poll. */
  static async connect(baseUrl: string, timeoutMs = 15_000): Promise<JanusApi> {
    const reply = await post(baseUrl, { janus: 'create', transaction: transaction() });
    if (reply.janus !== 'success' || typeof reply.data?.id !== 'number')
      throw new Error(`Janus at ${baseUrl}: cannot create a session (${JSON.stringify(reply)})`);
    const api = new JanusApi(baseUrl, reply.data.id, timeoutMs);
    api.polling = api.poll();
    return api;
  }

  /** Attaches a handle to `plugin` (e.g. `janus.plugin.videoroom`); returns its id. */
  async attach(plugin: string): Promise<number> {
    const reply = await post(`${this.baseUrl}/${this.sessionId}`, {
      janus: 'attach',
      plugin,
      transaction: transaction(),
    });
    if (reply.janus !== 'success' || typeof reply.data?.id !== 'number')
      throw new Error(`Janus: cannot attach ${plugin}: ${reply.error?.reason ?? reply.janus}`);
    return reply.data.id;
  }

  /**
   * Sends a plugin request and returns the plugin's reply: at once for synchronous requests
   * (`create`), or the event that answers it for asynchronous ones (`join`, `configure`, `start`).
   */
  async message(handle: number, body: Record<string, unknown>, jsep?: Jsep): Promise<PluginReply> {
    if (this.closed) throw new Error('Janus session closed');
    const tx = transaction();
    const event = new Promise<PluginReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tx);
        reject(
          new Error(`Janus: no answer to ${String(body.request)} within ${this.timeoutMs} ms`),
        );
      }, this.timeoutMs);
      this.pending.set(tx, { resolve, reject, timer });
    });
    event.catch(() => {});
    const reply = await post(`${this.baseUrl}/${this.sessionId}/${handle}`, {
      janus: 'message',
      transaction: tx,
      body,
      ...(jsep ? { jsep } : {}),
    }).catch((err: unknown) => {
      this.settle(tx, undefined, err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    if (reply.janus === 'success' && reply.plugindata) {
      const err = pluginError(String(body.request), reply.plugindata.data);
      this.settle(tx, err ? undefined : { data: reply.plugindata.data, jsep: reply.jsep }, err);
    } else if (reply.janus === 'error') {
      this.settle(
        tx,
        undefined,
        new Error(`Janus ${String(body.request)}: ${reply.error?.reason ?? 'error'}`),
      );
    }
    return event;
  }

  /** Detaches a handle (the viewer or publisher it carried leaves). */
  async detach(handle: number): Promise<void> {
    if (this.closed) return;
    await post(`${this.baseUrl}/${this.sessionId}/${handle}`, {
      janus: 'detach',
      transaction: transaction(),
    }).catch(() => {});
  }

  /** Destroys the session (every handle with it) and stops polling. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await post(`${this.baseUrl}/${this.sessionId}`, {
      janus: 'destroy',
      transaction: transaction(),
    }).catch(() => {});
    this.abort.abort();
    for (const tx of [...this.pending.keys()])
      this.settle(tx, undefined, new Error('Janus session closed'));
    await this.polling;
  }

  private settle(tx: string, reply: PluginReply | undefined, err?: Error): void {
    const p = this.pending.get(tx);
    if (!p) return;
    this.pending.delete(tx);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(reply!);
  }

  private async poll(): Promise<void> {
    while (!this.closed) {
      let events: JanusMessage[];
      try {
        const res = await fetch(`${this.baseUrl}/${this.sessionId}?maxev=10&rid=${Date.now()}`, {
          signal: this.abort.signal,
        });
        const body = (await res.json()) as JanusMessage | JanusMessage[];
        events = Array.isArray(body) ? body : [body];
      } catch (err) {
        if (this.closed) return;
        for (const tx of [...this.pending.keys()])
          this.settle(tx, undefined, new Error(`Janus long poll failed: ${errorMessage(err)}`));
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      for (const e of events) {
        if (e.janus !== 'event' || !e.transaction || !e.plugindata) continue;
        const data = e.plugindata.data;
        const err = pluginError(String(data.videoroom ?? 'event'), data);
        this.settle(e.transaction, err ? undefined : { data, jsep: e.jsep }, err);
      }
    }
  }
}

async function post(url: string, body: Record<string, unknown>): Promise<JanusMessage> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`Janus ${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as JanusMessage;
}
