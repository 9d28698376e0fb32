import { randomBytes } from 'node:crypto';
import { RTCPeerConnection } from 'werift';
import type { NodeConfig } from '../../core/config.ts';
import { errorMessage, HttpError } from '../../core/errors.ts';
import type { CaseService } from '../cases/CaseService.ts';
import { answerAsDtlsServer, peerConfig, verifyIceRequests } from '../media/werift.ts';
import type { MediaBackend } from '../workers/MediaBackend.ts';
import { bearerToken, type Router, readBody } from './router.ts';
import { checkAdmin } from './routes.ts';

/**
 * `POST /probe`: a network probe for `returncam bench probe`. The body is an SDP offer with one
 * data channel; the node answers with its own werift peer (same ICE configuration as media
 * sessions, so the probe takes the path media would) and echoes every message on the channel.
 * The client measures round trip, jitter and loss from the echoes.
 *
 * Authorisation: the admin token (`checkAdmin`: loopback only unless admin.allowRemote), or a
 * case link token with `?case=ID`, so a probe can be run from where buyers or staff are.
 * At most `MAX_PROBES` at once; each ends after `PROBE_LIFETIME_MS`, on DELETE, or when its
 * connection fails.
 */

export interface ProbeDeps {
  config: NodeConfig;
  cases: CaseService;
  /** Probes end when the media layer closes. */
  media: Pick<MediaBackend, 'closed'>;
  adminToken: string;
}

const MAX_PROBES = 8;
const PROBE_LIFETIME_MS = 120_000;
const GATHER_TIMEOUT_MS = 5_000;

interface Probe {
  pc: RTCPeerConnection;
  timer: NodeJS.Timeout;
}

export function registerProbeRoutes(router: Router, deps: ProbeDeps): void {
  const probes = new Map<string, Probe>();
  let watch: NodeJS.Timeout | undefined;

  const end = (id: string) => {
    const probe = probes.get(id);
    if (!probe) return;
    probes.delete(id);
    clearTimeout(probe.timer);
    probe.pc.close().catch(() => {});
    if (probes.size === 0 && watch) {
      clearInterval(watch);
      watch = undefined;
    }
  };

  const authorize = (ctx: Parameters<Parameters<Router['on']>[2]>[0]) => {
    const caseId = ctx.url.searchParams.get('case');
    if (caseId) deps.cases.authorize(caseId, bearerToken(ctx.req));
    else checkAdmin(ctx, deps);
  };

  router.on('POST', '/probe', async (ctx) => {
    authorize(ctx);
    if (deps.media.closed)
      throw new HttpError(503, 'node_closing', 'the media node is shutting down');
    if (probes.size >= MAX_PROBES) {
      throw new HttpError(
        503,
        'probe_busy',
        `${MAX_PROBES} probes are running; try again in a minute`,
        {
          'Retry-After': '60',
        },
      );
    }
    const offer = (
      await readBody(ctx.req, deps.config.limits.sdpBytes, ['application/sdp'])
    ).toString('utf8');
    if (!offer.startsWith('v=0') || !/^m=application /m.test(offer)) {
      throw new HttpError(
        400,
        'bad_sdp',
        'the body must be an SDP offer with one data channel (m=application)',
      );
    }
    const id = randomBytes(9).toString('base64url');
    const pc = new RTCPeerConnection(peerConfig(deps.config.media));
    const timer = setTimeout(() => end(id), PROBE_LIFETIME_MS);
    timer.unref();
    probes.set(id, { pc, timer });
    // a stopping node ends its probes too (the media layer is closed first on shutdown)
    watch ??= setInterval(() => {
      if (deps.media.closed) for (const key of [...probes.keys()]) end(key);
    }, 1000);
    watch.unref();
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'failed' || state === 'closed' || state === 'disconnected') end(id);
    });
    pc.onDataChannel.subscribe((channel) => {
      channel.onMessage.subscribe((message) => {
        try {
          channel.send(message);
        } catch {
          // the channel closed under us; the connection state ends the probe
        }
      });
    });
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: offer });
      answerAsDtlsServer(pc, offer);
      await pc.setLocalDescription(await pc.createAnswer());
      if (pc.iceGatheringState !== 'complete') {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(
            () => reject(new Error('ICE gathering timed out')),
            GATHER_TIMEOUT_MS,
          );
          pc.iceGatheringStateChange.subscribe((s) => {
            if (s === 'complete') {
              clearTimeout(t);
              resolve();
            }
          });
        });
      }
    } catch (err) {
      end(id);
      throw new HttpError(400, 'bad_sdp', `probe offer was rejected: ${errorMessage(err)}`);
    }
    // only checks signed with the probe's ICE password get an answer
    verifyIceRequests(pc);
    const answer = pc.localDescription?.sdp;
    if (!answer) {
      end(id);
      throw new Error('probe: werift produced no local description');
    }
    ctx.res.writeHead(201, {
      'Content-Type': 'application/sdp',
      Location: `/probe/${id}`,
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Expose-Headers': 'Location',
    });
    ctx.res.end(answer);
  });

  router.on('DELETE', '/probe/:id', (ctx) => {
    authorize(ctx);
    if (!probes.has(ctx.params.id!)) {
      throw new HttpError(404, 'probe_not_found', `no running probe ${ctx.params.id}`);
    }
    end(ctx.params.id!);
    ctx.res.writeHead(200);
    ctx.res.end();
  });
}
