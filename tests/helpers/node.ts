import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNodeConfig, type NodeConfigInput } from '../../src/core/config.ts';
import { MediaNode } from '../../src/node/MediaNode.ts';

export interface TestNode {
  node: MediaNode;
  url: string;
  dataDir: string;
  admin: (path: string, init?: RequestInit) => Promise<Response>;
  close: () => Promise<void>;
}

/** A real node on 127.0.0.1, port 0, in a temp data directory that is removed on close. */
export async function startTestNode(overrides: NodeConfigInput = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'returncam-test-'));
  const config = loadNodeConfig({
    env: {},
    overrides: {
      ...overrides,
      node: { dataDir, ...overrides.node },
      http: { port: 0, ...overrides.http },
      log: { level: (process.env.TEST_LOG_LEVEL as 'warn') ?? 'warn', ...overrides.log },
    },
  });
  const node = await MediaNode.start({ config });
  const url = node.url;
  return {
    node,
    url,
    dataDir,
    admin: (path, init = {}) =>
      fetch(`${url}${path}`, {
        ...init,
        headers: {
          Authorization: `Bearer ${node.adminToken}`,
          ...(init.body ? { 'Content-Type': 'application/json' } : {}),
          ...(init.headers as Record<string, string> | undefined),
        },
      }),
    close: async () => {
      await node.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads a server-sent event stream until `until` says stop or the time runs out. */
export async function readSse(
  url: string,
  opts: {
    headers?: Record<string, string>;
    until: (events: SseEvent[]) => boolean;
    timeoutMs?: number;
  },
): Promise<SseEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 5000);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { headers: opts.headers, signal: ac.signal });
    if (!res.ok || !res.body) throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let idx = buf.indexOf('\n\n');
      while (idx >= 0) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        const ev: SseEvent = { id: undefined, event: 'message', data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) ev.id = Number(line.slice(4));
          else if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('data: ')) ev.data += line.slice(6);
        }
        if (ev.data) events.push(ev);
        idx = buf.indexOf('\n\n');
      }
      if (opts.until(events)) break;
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return events;
}

export interface SseEvent {
  id: number | undefined;
  event: string;
  data: string;
}
