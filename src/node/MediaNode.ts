import { mkdirSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { NodeConfig } from '../core/config.ts';
import { errorMessage, HttpError, UserError } from '../core/errors.ts';
import { Logger } from '../core/log.ts';
import { VERSION } from '../core/version.ts';
import { CaseService } from './cases/CaseService.ts';
import { EvidenceKey } from './evidence/EvidenceKey.ts';
import { EvidenceStore } from './evidence/EvidenceStore.ts';
import { registerRecRoutes } from './http/recRoutes.ts';
import { Router, sendError } from './http/router.ts';
import { checkAdmin, registerRoutes } from './http/routes.ts';
import { RoomManager } from './media/RoomManager.ts';
import { hotPathStatus } from './media/weriftHotPath.ts';
import { createMetrics } from './metrics.ts';
import { Recorder } from './recording/Recorder.ts';
import { RecordingLibrary } from './recording/RecordingLibrary.ts';
import { decodeKey, randomHexKey, randomToken, readOrCreateSecret } from './secrets.ts';
import { Store } from './store/Store.ts';
import { InProcessMedia, type MediaBackend } from './workers/MediaBackend.ts';
import { MediaWorkerPool } from './workers/MediaWorkerPool.ts';

export interface MediaNodeOptions {
  config: NodeConfig;
  log?: Logger;
}

/**
 * One media node: the store, cases, media rooms and the HTTP listener that fronts them.
 * `MediaNode.start()` returns once it listens; `close()` ends sessions, flushes and closes the
 * database. `close()` is idempotent.
 */
export class MediaNode {
  readonly store: Store;
  readonly cases: CaseService;
  /** The media layer: rooms on this thread (`media.workers: 0`) or spread over worker threads. */
  readonly media: MediaBackend;
  readonly recordings: RecordingLibrary;
  readonly recorder: Recorder;
  readonly metrics: Registry;
  readonly adminToken: string;
  /** Signs evidence bundles: DATA/evidence.key + evidence.pub, made at first start if absent. */
  readonly evidenceKey: EvidenceKey;
  readonly log: Logger;
  private readonly localRooms: RoomManager | undefined;
  private readonly server: Server;
  private readonly sse = new Set<ServerResponse>();
  private closing: Promise<void> | undefined;
  private listeningUrl = '';

  private constructor(
    readonly config: NodeConfig,
    log: Logger,
  ) {
    this.log = log;
    const dataDir = config.node.dataDir;
    try {
      mkdirSync(join(dataDir, 'recordings'), { recursive: true });
    } catch (err) {
      throw new UserError(`cannot create the data directory ${dataDir}: ${errorMessage(err)}`);
    }
    this.adminToken =
      config.admin.token ?? readOrCreateSecret(dataDir, 'admin.token', randomToken()).value;
    this.evidenceKey = EvidenceKey.readOrCreate(dataDir);
    const tokenSecret = decodeKey(
      config.tokens.secret ?? readOrCreateSecret(dataDir, 'token.key', randomHexKey()).value,
      config.tokens.secret ? 'tokens.secret' : `${dataDir}/token.key`,
    );
    this.store = new Store(join(dataDir, 'returncam.db'));
    this.cases = new CaseService({
      store: this.store,
      dataDir,
      tokenSecret,
      publicUrl: () => config.node.publicUrl?.replace(/\/$/, '') ?? this.listeningUrl,
      ttl: { buyer: config.tokens.buyerTtl, staff: config.tokens.staffTtl },
    });
    const stale = this.cases.endOpenSessions('node stopped without closing them');
    if (stale) log.info('marked sessions left open by the last run as ended', { count: stale });
    // A packet-path patch that could not be applied (a werift upgrade changed its shape, or the
    // native addon was not built) leaves the node working but slower: say so once, at start.
    for (const p of hotPathStatus()) {
      if (!p.applied && !p.chosen) {
        log.warn('media packet path: a speed-up is not in effect', {
          part: p.name,
          reason: p.reason,
        });
      }
    }
    const workers = mediaWorkerCount(config.media.workers);
    if (workers > 0) {
      this.media = new MediaWorkerPool({
        workers,
        media: config.media,
        record: config.recording.enabled,
        log: log.child({ part: 'media' }),
        logLevel: config.log.level,
        logJson: config.log.json,
      });
    } else {
      const mediaLog = log.child({ part: 'media' });
      this.localRooms = new RoomManager({ media: config.media, log: mediaLog });
      this.media = new InProcessMedia(this.localRooms, mediaLog);
    }
    this.media.onSessionEnded.subscribe((s) => {
      try {
        this.cases.sessionEnded(
          { id: s.sessionId, caseId: s.caseId, role: s.role, direction: s.direction },
          s.reason,
        );
      } catch (err) {
        log.warn('could not record the end of a session', {
          sessionId: s.sessionId,
          error: errorMessage(err),
        });
      }
    });
    this.metrics = createMetrics({
      counters: () => this.media.counters,
      rooms: () => this.media.stats(),
      // per-worker series only when there are workers: the in-process /metrics stays as it was
      workers: workers > 0 ? (fresh) => this.media.status(fresh) : undefined,
      sseClients: () => this.sse.size,
    });
    this.recordings = new RecordingLibrary({
      store: this.store,
      dataDir,
      retentionDays: config.recording.retentionDays,
      log: log.child({ part: 'recording' }),
    });
    this.recorder = new Recorder({
      library: this.recordings,
      config: config.recording,
      app: `returncam ${VERSION}`,
      log: log.child({ part: 'recording' }),
      metrics: this.metrics,
      requestKeyframe: (ref) => this.media.requestKeyframe(ref),
    });
    this.media.onTrackPublished.subscribe((t) => this.recorder.trackPublished(t));
    this.media.onSessionEnded.subscribe((s) => {
      if (s.direction === 'publish') void this.recorder.sessionEnded(s.sessionId);
    });
    const router = new Router();
    registerRoutes(router, {
      config,
      cases: this.cases,
      media: this.media,
      metrics: this.metrics,
      adminToken: this.adminToken,
      version: VERSION,
      startedAt: Date.now(),
      sse: this.sse,
      evidence: new EvidenceStore(this.store),
      admitPublisher: () => this.recorder.admitPublisher(),
    });
    registerRecRoutes(router, {
      library: this.recordings,
      recorder: this.recorder,
      checkAdmin: (ctx) => checkAdmin(ctx, { config, adminToken: this.adminToken }),
      jsonBytes: config.limits.jsonBytes,
    });
    this.server = createServer(
      { maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 },
      (req, res) => {
        let url: URL;
        try {
          url = new URL(req.url ?? '/', 'http://node');
        } catch {
          sendError(res, new HttpError(400, 'bad_url', 'the request URL cannot be parsed'));
          return;
        }
        const method = req.method ?? 'GET';
        Promise.resolve()
          .then(() => {
            const { handler, params } = router.match(method, url.pathname);
            return handler({ req, res, url, params });
          })
          .catch((err: unknown) => {
            if (err instanceof HttpError) {
              sendError(res, err);
              return;
            }
            log.error('request failed', {
              method,
              path: url.pathname,
              error: errorMessage(err),
              stack: (err as Error)?.stack,
            });
            sendError(
              res,
              new HttpError(
                500,
                'internal',
                'the node hit an unexpected error; it has been logged',
              ),
            );
          });
      },
    );
    this.server.on('clientError', (err, socket) => {
      if (!socket.writable) return socket.destroy();
      const code = (err as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({
        error: { code: 'bad_request', message: `malformed HTTP request: ${err.message}` },
      });
      socket.end(
        `HTTP/1.1 ${code} Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }

  static async start(opts: MediaNodeOptions): Promise<MediaNode> {
    const log =
      opts.log ?? new Logger(opts.config.log.level, {}, process.stderr, opts.config.log.json);
    const node = new MediaNode(opts.config, log);
    try {
      // recordings a crash left unfinished are repaired before anything new is recorded
      await node.recordings.repairUnfinished();
    } catch (err) {
      log.error('could not repair unfinished recordings', { error: errorMessage(err) });
    }
    try {
      await new Promise<void>((resolve, reject) => {
        node.server.once('error', reject);
        node.server.listen(opts.config.http.port, opts.config.http.host, () => {
          node.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await node.media.close();
      await node.recorder.close();
      node.store.closeDb();
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') {
        throw new UserError(
          `port ${opts.config.http.port} on ${opts.config.http.host} is in use; pick another with --port`,
        );
      }
      if (e.code === 'EADDRNOTAVAIL')
        throw new UserError(`this machine has no address ${opts.config.http.host}; check --host`);
      throw err;
    }
    const addr = node.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    node.listeningUrl = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`;
    return node;
  }

  /**
   * The in-process room manager (`media.workers: 0`): tests and tools that reach into live
   * sessions. With worker threads the rooms live in the workers: use {@link media}.
   */
  get rooms(): RoomManager {
    if (!this.localRooms) {
      throw new Error(
        'MediaNode.rooms: media rooms run in worker threads (media.workers > 0); use MediaNode.media',
      );
    }
    return this.localRooms;
  }

  /** Where the node listens, e.g. http://127.0.0.1:8080 */
  get url(): string {
    return this.listeningUrl;
  }

  /** Ends media sessions and event streams, stops listening, flushes and closes the database. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.media.close();
      // recordings are finished (files finalised, rows and events stored) before the database closes
      await this.recorder.close();
      for (const res of this.sse) res.end();
      this.sse.clear();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      this.cases.endOpenSessions('node stopped');
      this.store.closeDb();
    })();
    return this.closing;
  }
}

/** Worker threads for `media.workers`: `auto` is one per core, none on a one-core machine. */
export function mediaWorkerCount(setting: NodeConfig['media']['workers']): number {
  if (setting !== 'auto') return setting;
  const cores = availableParallelism();
  return cores > 1 ? cores : 0;
}
