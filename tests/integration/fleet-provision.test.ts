import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadNodeConfig } from '../../src/core/config.ts';
import { UserError } from '../../src/core/errors.ts';
import { findWarehouse, loadFleet, parseFleet } from '../../src/node/fleet/fleetConfig.ts';
import { provisionWarehouse } from '../../src/node/fleet/provision.ts';
import { stunBinding, turnAllocate } from '../../src/node/fleet/stun.ts';
import { turnRestCredential } from '../../src/node/http/turnRoutes.ts';
import { MediaNode } from '../../src/node/MediaNode.ts';
import { freePort, type RunningProcess, startTurnserver } from '../helpers/fleet.ts';

const tmp = mkdtempSync(join(tmpdir(), 'returncam-provision-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const example = () => loadFleet('configs/fleet.example.yaml');
const mode = (p: string) => statSync(p).mode & 0o777;

describe('fleet file', () => {
  it('every fleet file in configs/ loads', () => {
    const files = readdirSync('configs').filter((f) => /^fleet.*\.ya?ml$/.test(f));
    expect(files).toContain('fleet.example.yaml');
    for (const f of files) {
      const fleet = loadFleet(join('configs', f));
      expect(fleet.warehouses.length).toBeGreaterThan(0);
    }
    const [fra1, lax1] = example().warehouses;
    // defaults merge under each warehouse; its own keys win
    expect(fra1).toMatchObject({ id: 'fra1', country: 'DE', ports: { http: 8080, turn: 3478 } });
    expect(lax1!.recording.floor).toBe(20 * 1024 ** 3);
    expect(fra1!.recording.floor).toBe(5 * 1024 ** 3);
    expect(fra1!.turn.ttl).toBe(12 * 3_600_000);
  });

  const base = {
    warehouses: [{ id: 'w1', region: 'r', country: 'DE', host: 'h', publicHost: '192.0.2.1' }],
  };
  it.each([
    [
      'an unknown key in a warehouse',
      { warehouses: [{ ...base.warehouses[0], ports: { htp: 1 } }] },
      'warehouses.0.ports.htp: unknown key',
    ],
    [
      'an unknown key in defaults',
      { ...base, defaults: { turn: { relm: 'x' } } },
      'defaults.turn.relm: unknown key',
    ],
    ['an unknown top-level key', { ...base, warehouse: [] }, 'warehouse: unknown key'],
    [
      'a bad duration',
      { ...base, defaults: { turn: { ttl: 'soon' } } },
      'defaults.turn.ttl: "soon" is not a duration',
    ],
    [
      'a bad size',
      { warehouses: [{ ...base.warehouses[0], recording: { floor: 'lots' } }] },
      'warehouses.0.recording.floor: "lots" is not a size',
    ],
    [
      'a bad country',
      { warehouses: [{ ...base.warehouses[0], country: 'Germany' }] },
      'warehouses.0.country: use an ISO 3166-1 alpha-2 code',
    ],
    [
      'a missing host',
      { warehouses: [{ ...base.warehouses[0], host: undefined }] },
      'warehouses.0.host',
    ],
    [
      'a duplicate id',
      { warehouses: [base.warehouses[0], base.warehouses[0]] },
      'warehouses: the id w1 is used twice',
    ],
    ['no warehouses', { warehouses: [] }, 'warehouses: list at least one warehouse'],
  ])('rejects %s, naming the path', (_name, doc, message) => {
    expect(() => parseFleet(doc, 'fleet.yaml')).toThrow(UserError);
    expect(() => parseFleet(doc, 'fleet.yaml')).toThrow(message);
  });
});

describe('node provision', () => {
  const out = join(tmp, 'out');

  it('renders a node config that loads with the node schema, and secrets with mode 0600', () => {
    const w = findWarehouse(example(), 'fra1');
    const r = provisionWarehouse({ warehouse: w, outDir: out });
    expect(r.dir).toBe(join(out, 'fra1'));
    expect(r.files.every((f) => f.action === 'created')).toBe(true);

    const cfg = loadNodeConfig({ file: join(r.dir, 'node.yaml'), env: {} });
    expect(cfg.node).toMatchObject({
      id: 'fra1',
      dataDir: '/var/lib/returncam',
      publicUrl: 'https://fra1.returns.example.com',
    });
    expect(cfg.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(cfg.media.announcedIp).toBe('203.0.113.11');
    expect(cfg.media.portRange).toEqual([40000, 40999]);
    expect(cfg.turn.urls).toEqual([
      'turn:fra1.returns.example.com:3478?transport=udp',
      'turn:fra1.returns.example.com:3478?transport=tcp',
      'turns:fra1.returns.example.com:443?transport=tcp',
    ]);
    expect(cfg.turn.sharedSecret).toBeUndefined(); // it stays in DATA/turn.secret, mode 0600
    expect(cfg.admin.allowRemote).toBe(false);

    for (const name of ['admin.token', 'token.key', 'turn.secret', 'evidence.key'])
      expect(mode(join(r.dir, 'secrets', name)), name).toBe(0o600);
    expect(mode(join(r.dir, 'turnserver.conf'))).toBe(0o600);
    expect(mode(join(r.dir, 'secrets'))).toBe(0o700);
    const turnSecret = readFileSync(join(r.dir, 'secrets/turn.secret'), 'utf8').trim();
    expect(readFileSync(join(r.dir, 'turnserver.conf'), 'utf8')).toContain(
      `static-auth-secret=${turnSecret}\n`,
    );

    // the evidence key pair is a working Ed25519 pair
    const priv = createPrivateKey(readFileSync(join(r.dir, 'secrets/evidence.key')));
    const pub = createPublicKey(readFileSync(join(r.dir, 'secrets/evidence.pub')));
    expect(priv.asymmetricKeyType).toBe('ed25519');
    const sig = sign(null, Buffer.from('manifest'), priv);
    expect(verify(null, Buffer.from('manifest'), pub, sig)).toBe(true);
  });

  it('keeps secrets on a re-run and replaces them with --rotate', () => {
    const w = findWarehouse(example(), 'fra1');
    const dir = join(out, 'fra1');
    const read = () =>
      Object.fromEntries(
        ['admin.token', 'token.key', 'turn.secret', 'evidence.key', 'evidence.pub'].map((n) => [
          n,
          readFileSync(join(dir, 'secrets', n), 'utf8'),
        ]),
      );
    const before = read();
    const again = provisionWarehouse({ warehouse: w, outDir: out });
    expect(read()).toEqual(before);
    expect(new Set(again.files.map((f) => f.action))).toEqual(new Set(['kept', 'unchanged']));

    const rotated = provisionWarehouse({ warehouse: w, outDir: out, rotate: true });
    const after = read();
    for (const k of Object.keys(before)) expect(after[k], k).not.toBe(before[k]);
    expect(rotated.files.find((f) => f.name === 'turnserver.conf')?.action).toBe('updated');
    // the old public key stays, so evidence signed before the rotation still verifies
    const kept = readdirSync(join(dir, 'secrets')).filter((f) =>
      /^evidence\.\d{8}T\d{6}Z\.pub$/.test(f),
    );
    expect(kept).toHaveLength(1);
    expect(readFileSync(join(dir, 'secrets', kept[0]!), 'utf8')).toBe(before['evidence.pub']);
  });

  const analyze = existsSync('/usr/bin/systemd-analyze');
  it.skipIf(!analyze)('renders systemd units that systemd-analyze verifies, hardened', async () => {
    const dir = join(out, 'fra1');
    const units = ['returncam-node.service', 'returncam-turn.service'].map((u) => join(dir, u));
    const node = readFileSync(units[0]!, 'utf8');
    for (const line of [
      'User=returncam',
      'Restart=on-failure',
      'MemoryMax=2G',
      'LimitNOFILE=65536',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/returncam',
      'ExecStart=/usr/bin/node --max-semi-space-size=4 /opt/returncam/current/bin/returncam node start --config /etc/returncam/node.yaml',
    ])
      expect(node).toContain(`\n${line}\n`);
    // verify checks every key and that ExecStart's binary exists (/usr/bin/node, /usr/bin/turnserver here)
    const r = await execa('systemd-analyze', ['verify', ...units], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const sec = await execa('systemd-analyze', ['security', '--offline=true', units[0]!], {
      reject: false,
    });
    const level = Number(
      /Overall exposure level for returncam-node\.service: ([\d.]+)/.exec(sec.stdout)?.[1],
    );
    expect(level).toBeLessThan(2.5);
  });
});

const hasCoturn = existsSync('/usr/bin/turnserver');
if (!hasCoturn)
  console.warn('coturn tests skipped: turnserver is missing (scripts/install-test-deps.sh)');

describe.skipIf(!hasCoturn)('TURN: provisioned coturn with credentials the node mints', () => {
  let turn: RunningProcess | undefined;
  let node: MediaNode | undefined;
  let turnPort = 0;
  const dir = join(tmp, 'turn');

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const w = findWarehouse(example(), 'fra1');
    const r = provisionWarehouse({ warehouse: w, outDir: join(dir, 'out') });
    turnPort = await freePort();
    // the production config (port 3478, TLS on 443 with Let's Encrypt paths, NAT mapping) run
    // on loopback: a high port, no TLS (no certificate here), relays from 127.0.0.1
    turn = await startTurnserver(
      join(r.dir, 'turnserver.conf'),
      [
        '--listening-port',
        String(turnPort),
        '--listening-ip',
        '127.0.0.1',
        '--relay-ip',
        '127.0.0.1',
        '--no-tls',
        '--no-dtls',
        '--min-port',
        '62000',
        '--max-port',
        '62999',
        '--db',
        join(dir, 'turndb'),
        '--pidfile=',
      ],
      () => stunBinding({ host: '127.0.0.1', port: turnPort, timeoutMs: 300 }),
    );

    // a node whose data directory holds the provisioned secrets, its config the provisioned one
    // with loopback addresses for the test
    const data = join(dir, 'data');
    mkdirSync(data);
    for (const s of ['admin.token', 'token.key', 'turn.secret'])
      copyFileSync(join(r.dir, 'secrets', s), join(data, s));
    const rendered = parseYaml(readFileSync(join(r.dir, 'node.yaml'), 'utf8')) as {
      turn: { urls: string[]; ttl: string };
    };
    writeFileSync(
      join(dir, 'node.yaml'),
      `turn:\n  urls: ['turn:127.0.0.1:${turnPort}?transport=udp']\n  ttl: ${rendered.turn.ttl}\n`,
    );
    const config = loadNodeConfig({
      file: join(dir, 'node.yaml'),
      env: {},
      overrides: { node: { dataDir: data }, http: { port: 0 }, log: { level: 'warn' } },
    });
    node = await MediaNode.start({ config });
  });
  afterAll(async () => {
    await node?.close();
    await turn?.stop();
  });

  it('coturn accepts the rendered config without complaint', () => {
    const log = turn!.output();
    expect(log).not.toMatch(/Bad configuration format|CONFIG ERROR|ERROR:/);
    // what it read from the file
    expect(log).toContain('Default realm: fra1.returns.example.com');
    expect(log).toContain('Black listing: 10.0.0.0-10.255.255.255');
    expect(log).toContain('White listing: 10.20.0.11');
    expect(log).toContain('TCP relay endpoints are not allowed');
  });

  it('a case token gets TURN credentials that coturn accepts for an allocation', async () => {
    const created = (await (
      await fetch(`${node!.url}/api/admin/cases`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${node!.adminToken}`,
          'Content-Type': 'application/json',
        },
        body: JSON.stringify({ orderId: 'T-1', sku: 'S', reason: 'damaged' }),
      })
    ).json()) as { case: { id: string }; links: { buyer: { token: string; expiresAt: number } } };
    const id = created.case.id;
    const auth = { Authorization: `Bearer ${created.links.buyer.token}` };

    const ice = await fetch(`${node!.url}/api/cases/${id}/ice`, { headers: auth });
    expect(ice.status).toBe(200);
    expect(ice.headers.get('cache-control')).toBe('no-store');
    const { iceServers } = (await ice.json()) as {
      iceServers: { urls: string[]; username: string; credential: string }[];
    };
    expect(iceServers).toHaveLength(1);
    const server = iceServers[0]!;
    expect(server.urls).toEqual([`turn:127.0.0.1:${turnPort}?transport=udp`]);
    const [expiry, user] = server.username.split(':');
    expect(user).toBe(`${id}-buyer`);
    const ttl = Number(expiry) * 1000 - Date.now();
    expect(ttl).toBeGreaterThan(11.9 * 3_600_000);
    expect(ttl).toBeLessThanOrEqual(12 * 3_600_000);

    // the page's case endpoint hands out the same kind of credential
    const page = (await (
      await fetch(`${node!.url}/api/cases/${id}`, { headers: auth })
    ).json()) as {
      iceServers: { username: string }[];
    };
    expect(page.iceServers[0]!.username).toMatch(new RegExp(`^\\d+:${id}-buyer$`));

    const a = await turnAllocate({
      host: '127.0.0.1',
      port: turnPort,
      username: server.username,
      password: server.credential,
    });
    expect(a.relayed.address).toBe('127.0.0.1');
    expect(a.relayed.port).toBeGreaterThanOrEqual(62000);
    expect(a.realm).toBe('fra1.returns.example.com');

    // no token, no credentials
    expect((await fetch(`${node!.url}/api/cases/${id}/ice`)).status).toBe(401);
  });

  it('coturn refuses a tampered or expired credential', async () => {
    const secret = readFileSync(join(dir, 'data', 'turn.secret'), 'utf8').trim();
    const good = turnRestCredential(secret, 'c_x-staff', Date.now() + 60_000);
    const opts = { host: '127.0.0.1', port: turnPort, timeoutMs: 2000 };
    // change the first character to one it is not (a fixed 'x' is no change one time in 64)
    const tampered = `${good.credential.startsWith('A') ? 'B' : 'A'}${good.credential.slice(1)}`;
    expect(tampered).not.toBe(good.credential);
    await expect(
      turnAllocate({ ...opts, username: good.username, password: tampered }),
    ).rejects.toThrow('401');
    const expired = turnRestCredential(secret, 'c_x-staff', Date.now() - 60_000);
    await expect(
      turnAllocate({ ...opts, username: expired.username, password: expired.credential }),
    ).rejects.toThrow('401');
    const other = turnRestCredential('another-secret-entirely', 'c_x-staff', Date.now() + 60_000);
    await expect(
      turnAllocate({ ...opts, username: other.username, password: other.credential }),
    ).rejects.toThrow('401');
  });
});
