/**
 * A minimal client for a Node.js process's inspector (the Chrome DevTools protocol over a
 * WebSocket), for what a benchmark must ask a node child process from outside: a full garbage
 * collection and the heap left after it. The child is started with `--inspect=127.0.0.1:0`
 * (which prints `Debugger listening on ws://…` on its stderr) and `--expose-gc`.
 */
import WebSocket from 'ws';

/** The inspector's WebSocket URL in a process's stderr, or undefined if not printed yet. */
export function inspectorUrl(stderr: string): string | undefined {
  return /^Debugger listening on (ws:\/\/\S+)$/m.exec(stderr)?.[1];
}

interface Reply {
  id?: number;
  result?: unknown;
  error?: { message?: string };
}

export class InspectorClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      let reply: Reply;
      try {
        reply = JSON.parse(String(data)) as Reply;
      } catch {
        return;
      }
      if (reply.id === undefined) return; // an event: none is enabled, but ignore any
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.error) waiter.reject(new Error(`inspector: ${reply.error.message ?? 'error'}`));
      else waiter.resolve(reply.result);
    });
    socket.on('close', () => {
      for (const w of this.pending.values()) w.reject(new Error('inspector: connection closed'));
      this.pending.clear();
    });
  }

  static connect(url: string, timeoutMs = 10_000): Promise<InspectorClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { handshakeTimeout: timeoutMs });
      socket.once('open', () => {
        socket.removeAllListeners('error');
        socket.on('error', () => {}); // a dying child: 'close' rejects what is pending
        resolve(new InspectorClient(socket));
      });
      socket.once('error', (err) =>
        reject(new Error(`inspector: cannot connect to ${url}: ${err.message}`)),
      );
    });
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.socket.readyState !== WebSocket.OPEN)
      return Promise.reject(new Error('inspector: connection closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * One full collection, then the V8 heap in use: what is live. The process must run with
   * `--expose-gc`: the inspector's own `HeapProfiler.collectGarbage` is V8's low-memory
   * notification, several collections that also shrink the young generation, which took ~16 MB
   * off a bench node's RSS and so would change what a soak measures next.
   */
  async liveHeapBytes(): Promise<number> {
    const r = await this.call<{ result: { value?: unknown }; exceptionDetails?: unknown }>(
      'Runtime.evaluate',
      {
        expression: "typeof gc === 'function' ? (gc(), process.memoryUsage().heapUsed) : -1",
        returnByValue: true,
      },
    );
    const value = r.result.value;
    if (r.exceptionDetails !== undefined || typeof value !== 'number')
      throw new Error('inspector: the heap reading failed');
    if (value < 0) throw new Error('inspector: the process runs without --expose-gc');
    return value;
  }

  close(): void {
    this.socket.close();
  }
}
