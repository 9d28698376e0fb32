/**
 * Janus (Debian's `janus` package) as a comparison server for `bench capacity --server janus`:
 * started here with a minimal generated configuration in a temporary directory (VideoRoom plugin,
 * HTTP transport on a free loopback port, loopback ICE only, no STUN/TURN, nothing else loaded),
 * driven through its HTTP API, measured from its PID like the node.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage, UserError } from '../../core/errors.ts';
import { type BenchCase, type BenchNode, procResources } from '../BenchNode.ts';
import { JanusApi, JanusError, type PluginReply } from './JanusApi.ts';
import { answerForJanus, offerForViewer } from './sdpMids.ts';

export const JANUS_INSTALL_HINT =
  'Janus is not installed: on Debian or Ubuntu run `sudo apt-get install -y janus` (or scripts/install-test-deps.sh), or set RETURNCAM_JANUS to the janus binary';

const LIB_DIRS = [
  '/usr/lib/x86_64-linux-gnu/janus',
  '/usr/lib/aarch64-linux-gnu/janus',
  '/usr/lib/janus',
];

export interface JanusInstall {
  binary: string;
  /** Folder holding plugins/ and transports/. */
  libDir: string;
  version: string;
}

/** Finds the janus binary and its plugin folders; undefined when Janus is not installed. */
export function findJanus(): JanusInstall | undefined {
  const candidates = [process.env.RETURNCAM_JANUS, '/usr/bin/janus', '/usr/local/bin/janus'];
  const binary = candidates.find((c): c is string => !!c && existsSync(c));
  if (!binary) return undefined;
  const libDir = LIB_DIRS.find((d) => existsSync(join(d, 'plugins', 'libjanus_videoroom.so')));
  if (!libDir) return undefined;
  let version = 'unknown';
  try {
    const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 5000 });
    const text = `${r.stdout}${r.stderr}`;
    version = /Janus version: \d+ \(([^)]+)\)/.exec(text)?.[1] ?? version;
  } catch {
    // version stays unknown
  }
  return { binary, libDir, version };
}

/** A free TCP port on loopback (closed again before Janus binds it). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * The address Janus gathers its ICE candidate on: libnice leaves loopback interfaces out, so
 * Janus uses this machine's first non-loopback IPv4 address (traffic between two local addresses
 * still never leaves the machine).
 */
export function janusIceAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new UserError(
    'Janus needs a non-loopback IPv4 address for its ICE candidate (libnice ignores loopback), and this machine has none',
  );
}

/** The configuration files, in Janus's libconfig (`.jcfg`) syntax. */
export function janusConfigFiles(
  dir: string,
  httpPort: number,
  iceAddress: string,
): Record<string, string> {
  return {
    'janus.jcfg': `general: {
  configs_folder = "${dir}"
  plugins_folder = "${join(dir, 'plugins')}"
  transports_folder = "${join(dir, 'transports')}"
  events_folder = "${join(dir, 'events')}"
  loggers_folder = "${join(dir, 'loggers')}"
  debug_level = 3
  session_timeout = 60
  server_name = "returncam-bench"
}
media: {
  ipv6 = false
  rtp_port_range = "20000-40000"
}
nat: {
  ice_enforce_list = "${iceAddress}"
  ignore_mdns = true
}
`,
    'janus.transport.http.jcfg': `general: {
  json = "compact"
  base_path = "/janus"
  http = true
  port = ${httpPort}
  ip = "127.0.0.1"
  https = false
}
admin: {
  admin_http = false
  admin_https = false
}
`,
    'janus.plugin.videoroom.jcfg': `general: {
}
`,
  };
}

export interface JanusServerOptions {
  install?: JanusInstall;
  startTimeoutMs?: number;
}

/**
 * Starts Janus and returns it as a {@link BenchNode}: each case is a VideoRoom room; publishers
 * join and configure with their offer, viewers join the room's feed and answer Janus's offer.
 */
export async function startJanus(options: JanusServerOptions = {}): Promise<BenchNode> {
  const install = options.install ?? findJanus();
  if (!install) throw new UserError(JANUS_INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), 'returncam-janus-'));
  const port = await freePort();
  const iceAddress = janusIceAddress();
  for (const sub of ['plugins', 'transports', 'events', 'loggers']) mkdirSync(join(dir, sub));
  symlinkSync(
    join(install.libDir, 'plugins', 'libjanus_videoroom.so'),
    join(dir, 'plugins', 'libjanus_videoroom.so'),
  );
  symlinkSync(
    join(install.libDir, 'transports', 'libjanus_http.so'),
    join(dir, 'transports', 'libjanus_http.so'),
  );
  for (const [name, text] of Object.entries(janusConfigFiles(dir, port, iceAddress)))
    writeFileSync(join(dir, name), text);

  const child: ChildProcess = spawn(
    install.binary,
    ['-C', join(dir, 'janus.jcfg'), '-F', dir, '-o'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // a harness that dies (an uncaught error, process.exit) takes its Janus with it
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    child.kill('SIGINT');
    const forced = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(forced);
    rmSync(dir, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${port}/janus`;
  const deadline = performance.now() + (options.startTimeoutMs ?? 15_000);
  let exitCode: number | null | undefined;
  child.once('exit', (code) => {
    exitCode = code;
  });
  for (;;) {
    if (exitCode !== undefined) {
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`Janus exited (${exitCode}) while starting:\n${log.trim()}`);
    }
    try {
      const res = await fetch(`${baseUrl}/info`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`Janus did not answer on ${baseUrl} in time:\n${log.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let api: JanusApi;
  try {
    api = await JanusApi.connect(baseUrl);
  } catch (err) {
    await stop();
    throw err;
  }
  const rooms = new Map<string, { room: number; handle: number; feed?: number }>();
  const viewerHandles = new Map<string, number[]>();
  let nextRoom = 1000;

  const roomOf = (bench: BenchCase) => {
    const r = rooms.get(bench.caseId);
    if (!r) throw new Error(`Janus: no room for ${bench.caseId}`);
    return r;
  };

  let closing: Promise<void> | undefined;
  return {
    kind: 'janus',
    url: baseUrl,
    host: iceAddress,
    pid: child.pid,
    label: `Janus ${install.version} VideoRoom`,
    async createCase(label) {
      const room = nextRoom++;
      const handle = await api.attach('janus.plugin.videoroom');
      await api.message(handle, {
        request: 'create',
        room,
        description: label,
        publishers: 1,
        bitrate: 0,
        fir_freq: 0,
        videocodec: 'vp8',
        audiocodec: 'opus',
        notify_joining: false,
      });
      const caseId = `janus-room-${room}`;
      rooms.set(caseId, { room, handle });
      return { caseId, buyerToken: '', staffToken: '' };
    },
    async closeCase(caseId) {
      const r = rooms.get(caseId);
      if (!r) return;
      rooms.delete(caseId);
      for (const h of viewerHandles.get(caseId) ?? []) await api.detach(h);
      viewerHandles.delete(caseId);
      await api.message(r.handle, { request: 'destroy', room: r.room }).catch(() => {});
      await api.detach(r.handle);
    },
    signalling: {
      rewritesTimestamps: true,
      async publish(bench, offerSdp) {
        const r = roomOf(bench);
        const reply = await api.message(
          r.handle,
          {
            request: 'joinandconfigure',
            room: r.room,
            ptype: 'publisher',
            audio: true,
            video: true,
          },
          { type: 'offer', sdp: offerSdp, trickle: false },
        );
        if (typeof reply.data.id !== 'number' || !reply.jsep)
          throw new Error(`Janus publisher join: no answer (${JSON.stringify(reply.data)})`);
        r.feed = reply.data.id;
        return reply.jsep.sdp;
      },
      async subscribe(bench, answer) {
        const r = roomOf(bench);
        if (r.feed === undefined)
          throw new Error(`Janus room ${r.room}: a viewer joined before the publisher`);
        const handle = await api.attach('janus.plugin.videoroom');
        const list = viewerHandles.get(bench.caseId) ?? [];
        list.push(handle);
        viewerHandles.set(bench.caseId, list);
        // Janus lists a feed once its own side of the publisher's connection is up, which can
        // be a moment after the publisher's side: retry "no such feed" for a few seconds
        const until = performance.now() + 5000;
        let joined: PluginReply;
        for (;;) {
          try {
            joined = await api.message(handle, {
              request: 'join',
              room: r.room,
              ptype: 'subscriber',
              streams: [{ feed: r.feed }],
            });
            break;
          } catch (err) {
            if (!(err instanceof JanusError) || err.code !== 428 || performance.now() > until)
              throw err;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
        if (!joined.jsep)
          throw new Error(`Janus viewer join: no offer (${JSON.stringify(joined.data)})`);
        const { sdp, names } = offerForViewer(joined.jsep.sdp);
        const answerSdp = answerForJanus(await answer(sdp), names);
        await api.message(
          handle,
          { request: 'start' },
          { type: 'answer', sdp: answerSdp, trickle: false },
        );
      },
    },
    counters: async () => undefined,
    resources: () => (child.pid ? procResources(child.pid) : undefined),
    close() {
      closing ??= (async () => {
        try {
          await api.close();
        } catch (err) {
          log += `\nclosing the Janus session: ${errorMessage(err)}`;
        }
        await stop();
      })();
      return closing;
    },
  };
}
