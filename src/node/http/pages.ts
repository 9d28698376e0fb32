import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { HttpError } from '../../core/errors.ts';
import { SOURCE_DIR } from '../../core/paths.ts';
import type { Ctx } from './router.ts';

/** The buyer and staff pages and their assets, served from `src/node/web`. */

export const WEB_DIR = join(SOURCE_DIR, 'node', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'Permissions-Policy': 'camera=(self), microphone=(self)',
};

async function sendFile(ctx: Ctx, rel: string, cache: string): Promise<void> {
  if (rel.split('/').some((p) => p === '..' || p.startsWith('.') || p === '')) {
    throw new HttpError(404, 'not_found', `no asset ${rel}`);
  }
  const type = TYPES[extname(rel)];
  if (!type) throw new HttpError(404, 'not_found', `no asset ${rel}`);
  let body: Buffer;
  try {
    body = await readFile(join(WEB_DIR, rel));
  } catch {
    throw new HttpError(404, 'not_found', `no asset ${rel}`);
  }
  ctx.res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Cache-Control': cache,
    ...SECURITY_HEADERS,
  });
  ctx.res.end(body);
}

export function servePage(ctx: Ctx, role: 'buyer' | 'staff'): Promise<void> {
  return sendFile(ctx, `${role}.html`, 'no-store');
}

export function serveStatic(ctx: Ctx, rel: string): Promise<void> {
  return sendFile(ctx, rel, 'no-cache');
}
