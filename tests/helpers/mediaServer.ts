import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, HttpError } from '../../src/core/errors.ts';
import { type Logger, silentLogger } from '../../src/core/log.ts';
import { RoomManager } from '../../src/node/media/RoomManager.ts';
import { isRole, type MediaOptions } from '../../src/node/media/types.ts';

export interface MediaTestServer {
  url: string;
  rooms: RoomManager;
  /** Closes the rooms (every peer connection) and the HTTP listener. */
  close: () => Promise<void>;
}

const MAX_SDP_BYTES = 64 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SDP_BYTES) {
        reject(new HttpError(413, 'too_large', 'SDP offer is too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendError(res: ServerResponse, err: unknown): void {
  const status = err instanceof HttpError ? err.status : 500;
  const code = err instanceof HttpError ? err.code : 'internal';
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message: errorMessage(err) } }));
}

/**
 * Just enough WHIP/WHEP over real HTTP to drive the bench clients against a {@link RoomManager}:
 * `POST /whip/:caseId`, `POST /whep/:caseId` (role from `X-Test-Role`, no auth) and `DELETE` on
 * the returned Location. Listens on 127.0.0.1, port 0.
 */
export async function startMediaTestServer(
  options: { media?: Partial<MediaOptions>; log?: Logger } = {},
): Promise<MediaTestServer> {
  const rooms = new RoomManager({
    media: { iceServers: [], loopbackCandidate: true, ...options.media },
    log: options.log ?? silentLogger,
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://test');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const [kind, caseId, sessionId] = parts;
    const handle = async () => {
      if ((kind !== 'whip' && kind !== 'whep') || !caseId) {
        throw new HttpError(404, 'not_found', `no route for ${req.method} ${url.pathname}`);
      }
      if (req.method === 'POST' && parts.length === 2) {
        const role = req.headers['x-test-role'];
        if (!isRole(role))
          throw new HttpError(400, 'bad_request', 'X-Test-Role must be buyer or staff');
        const sdp = await readBody(req);
        const { sessionId: id, answerSdp } =
          kind === 'whip'
            ? await rooms.publish(caseId, role, sdp)
            : await rooms.subscribe(caseId, role, sdp);
        res.writeHead(201, {
          'Content-Type': 'application/sdp',
          Location: `/${kind}/${encodeURIComponent(caseId)}/${id}`,
        });
        res.end(answerSdp);
        return;
      }
      if (req.method === 'DELETE' && sessionId) {
        if (!rooms.endSession(caseId, sessionId)) {
          throw new HttpError(
            404,
            'session_not_found',
            `no live session ${sessionId} in case ${caseId}`,
          );
        }
        res.writeHead(200);
        res.end();
        return;
      }
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here`);
    };
    handle().catch((err: unknown) => sendError(res, err));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    rooms,
    close: async () => {
      await rooms.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
