import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFleet } from '../../src/node/fleet/fleetConfig.ts';
import { buildRelease } from '../../src/node/fleet/release.ts';
import { parseMetrics, probeNode } from '../../src/node/fleet/status.ts';
import { freePort } from '../helpers/fleet.ts';
import { startTestNode, type TestNode } from '../helpers/node.ts';

const tmp = mkdtempSync(join(tmpdir(), 'returncam-status-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('parseMetrics', () => {
  it.each([
    ['a plain sample', 'returncam_peers 3', 'returncam_peers', [{ labels: '', value: 3 }]],
    [
      'labelled samples',
      'x_total{status="failed"} 2\nx_total{status="finished"} 5',
      'x_total',
      [
        { labels: '{status="failed"}', value: 2 },
        { labels: '{status="finished"}', value: 5 },
      ],
    ],
    ['comments and NaN', '# HELP y help\n# TYPE y gauge\ny NaN\n', 'y', undefined],
    [
      'exponents',
      'process_resident_memory_bytes 8.4e+07',
      'process_resident_memory_bytes',
      [{ labels: '', value: 84_000_000 }],
    ],
  ])('reads %s', (_name, text, name, expected) => {
    expect(parseMetrics(text).get(name)).toEqual(expected);
  });
});

const hasOpenssl = existsSync('/usr/bin/openssl');

describe('probeNode: certificate, TURN and identity checks', () => {
  let node: TestNode;
  let tls: Server;
  let tlsPort = 0;
  const warehouse = (extra: Record<string, unknown>) =>
    parseFleet(
      {
        defaults: { turn: { enabled: false }, recording: { floor: '1MB' } },
        warehouses: [
          {
            id: 'p1',
            region: 'test',
            country: 'NL',
            host: '127.0.0.1',
            publicHost: '127.0.0.1',
            statusUrl: node.url,
            ...extra,
          },
        ],
      },
      join(tmp, 'fleet.yaml'),
    ).warehouses[0]!;

  beforeAll(async () => {
    node = await startTestNode({ node: { id: 'p1' } });
    if (!hasOpenssl) return;
    // a TLS endpoint in front of the node, with a certificate that runs out in 10 days
    await execa('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '10',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      join(tmp, 'key.pem'),
      '-out',
      join(tmp, 'cert.pem'),
    ]);
    tlsPort = await freePort();
    tls = createServer({
      key: readFileSync(join(tmp, 'key.pem')),
      cert: readFileSync(join(tmp, 'cert.pem')),
    });
    tls.on('secureConnection', (s) => s.end());
    await new Promise<void>((r) => tls.listen(tlsPort, '127.0.0.1', r));
  }, 30_000);
  afterAll(async () => {
    tls?.close();
    await node?.close();
  });

  it.skipIf(!hasOpenssl)(
    'reads the expiry of the certificate in front of the node; soon is unhealthy',
    async () => {
      const w = warehouse({ publicUrl: `https://127.0.0.1:${tlsPort}` });
      const s = await probeNode(w, { timeoutMs: 2000 });
      const days = (Date.parse(s.certificateExpiresAt!) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(9);
      expect(days).toBeLessThanOrEqual(10);
      expect(s.state).toBe('unhealthy');
      expect(s.problems).toEqual(['TLS certificate expires in 9 days']);
      const relaxed = await probeNode(w, { timeoutMs: 2000, certWarnDays: 5 });
      expect(relaxed.state).toBe('ok');
      expect(relaxed.problems).toEqual([]);
    },
  );

  it('a TURN server that does not answer STUN makes the node unhealthy', async () => {
    const silent = await freePort();
    const s = await probeNode(warehouse({ turn: { enabled: true }, ports: { turn: silent } }), {
      timeoutMs: 500,
    });
    expect(s.turn).toBe('no answer');
    expect(s.state).toBe('unhealthy');
    expect(s.problems).toEqual([`coturn on 127.0.0.1:${silent} does not answer STUN`]);
  });

  it('a node answering with another id is unhealthy (a wrong address in the fleet file)', async () => {
    const s = await probeNode(warehouse({ id: 'p2' }), { timeoutMs: 2000 });
    expect(s.state).toBe('unhealthy');
    expect(s.problems).toEqual(['answers as node p1, not p2']);
  });
});

describe('release (git)', () => {
  it.skipIf(!existsSync('.git'))(
    'packs what git lists, tracked and new, and never provisioned secrets',
    async () => {
      const r = await buildRelease({ method: 'git', installCommand: 'true', workDir: tmp });
      expect(r.id).toMatch(/^0\.1\.0-\d{8}T\d{6}Z$/);
      expect(r.key).toMatch(/^[0-9a-f]{32}$/);
      const list = (await execa('tar', ['-tzf', r.tarball])).stdout.split('\n');
      for (const f of ['package.json', 'package-lock.json', 'bin/returncam', 'src/cli/main.ts'])
        expect(list).toContain(f);
      expect(list).toContain('src/node/fleet/deploy.ts');
      expect(list.some((f) => f.startsWith('node_modules/'))).toBe(false);
      expect(list.some((f) => /(^|\/)secrets\/(admin\.token|token\.key)$/.test(f))).toBe(false);
      expect(r.files).toBe(list.length);
    },
  );
});
