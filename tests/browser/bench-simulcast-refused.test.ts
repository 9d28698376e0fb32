import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/bench/profiles.ts';
import { runBench } from '../../src/bench/runBench.ts';
import { hasChromium, warnIfNoChromium } from '../helpers/browser.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

warnIfNoChromium();

/**
 * A node that cannot take simulcast, as an older node or another WHIP server would be: a proxy
 * in front of a real node answers a WHIP offer with simulcast in it with a 500, and passes
 * everything else through.
 */
async function simulcastRefusingProxy(target: string): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (req.method === 'POST' && req.url?.startsWith('/whip/') && /a=simulcast/.test(`${body}`)) {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end('{"error":"internal error"}');
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
    }
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers,
      ...(body.length > 0 ? { body } : {}),
    });
    const out: Record<string, string> = {};
    answer.headers.forEach((v, k) => {
      if (k !== 'content-encoding' && k !== 'content-length' && k !== 'transfer-encoding') {
        out[k] = v;
      }
    });
    // Locations the node gives are its own: point them at the proxy.
    if (out.location) out.location = out.location.replace(target, '');
    res.writeHead(answer.status, out);
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe.skipIf(!hasChromium)('bench run --browser against a node without simulcast', () => {
  let node: TestNode;
  let proxy: { url: string; server: Server };

  beforeAll(async () => {
    node = await startTestNode();
    proxy = await simulcastRefusingProxy(node.url);
  });

  afterAll(async () => {
    proxy?.server.close();
    await node?.close();
  });

  const profile = parseProfile({ name: 'plain', description: 'no impairment' }, 'test');
  const run = (simulcast: boolean, durationMs = 3_000) =>
    runBench({
      profile,
      sessions: 1,
      durationMs,
      warmupMs: 500,
      node: { kind: 'remote', url: proxy.url, token: node.node.adminToken },
      browser: true,
      browserAudio: false,
      browserSimulcast: simulcast,
    });

  it('says the node refused the simulcast offer and to use --no-simulcast, and measures with it', {
    timeout: 60_000,
  }, async () => {
    await expect(run(true)).rejects.toThrow(
      /the node refused the buyer's simulcast offer \(HTTP 500: \{"error":"internal error"\}\); measure it with --no-simulcast/,
    );
    // 5 s, so that a busy machine's slow start (~10 fps in the first seconds, seen in CI) still
    // leaves more than a second of frames in the measured window
    const r = await run(false, 5_000);
    expect(r.sessions[0]!.framesReceived).toBeGreaterThan(30);
  });
});
