import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../core/errors.ts';

/**
 * A small router over node:http: exact segments and `:params`, per-route methods, and helpers
 * that read bodies under a size limit and answer errors as JSON. No framework: the surface is
 * small and every byte read from the network is bounded here.
 */

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** Finds the handler; a path that exists with another method is a 405 naming the allowed ones. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const segs = pathname.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length; i++) {
        const p = r.parts[i]!;
        const s = segs[i]!;
        if (p.startsWith(':')) {
          try {
            params[p.slice(1)] = decodeURIComponent(s);
          } catch {
            ok = false;
            break;
          }
        } else if (p !== s) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (r.method === method) return { handler: r.handler, params };
      allowed.push(r.method);
    }
    if (allowed.length) {
      throw new HttpError(
        405,
        'method_not_allowed',
        `${method} is not allowed on ${pathname}; use ${allowed.join(', ')}`,
        {
          Allow: allowed.join(', '),
        },
      );
    }
    throw new HttpError(404, 'not_found', `nothing at ${pathname}`);
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, { error: { code: err.code, message: err.message } }, err.headers);
}

/** The media type without parameters, lower-cased: `application/json; charset=utf-8` → `application/json`. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Reads the whole body, refusing (413) past `limit` bytes and (415) other content types. */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  types?: readonly string[],
): Promise<Buffer> {
  if (types) {
    const t = mediaType(req);
    if (!types.includes(t)) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `send Content-Type: ${types.join(' or ')} (got ${t || 'none'})`,
      );
    }
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw new HttpError(
      413,
      'body_too_large',
      `the body is ${declared} bytes; the limit is ${limit}`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new HttpError(413, 'body_too_large', `the body exceeds the limit of ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, limit, ['application/json']);
  if (body.length === 0)
    throw new HttpError(400, 'bad_json', 'the request body is empty; send a JSON object');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, 'bad_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

export function bearerToken(req: IncomingMessage, url?: URL): string | undefined {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m)
      throw new HttpError(401, 'token_malformed', 'use the header Authorization: Bearer <token>');
    return m[1];
  }
  return url?.searchParams.get('access_token') ?? undefined;
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
