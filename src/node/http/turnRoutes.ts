import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeConfig } from '../../core/config.ts';
import type { CaseService } from '../cases/CaseService.ts';
import { bearerToken, type Router, sendJson } from './router.ts';

/**
 * TURN credentials for peers, minted per request with the TURN REST API scheme coturn implements
 * (`use-auth-secret` + `static-auth-secret`): username `<expiry unix seconds>:<user>`, password
 * `base64(HMAC-SHA1(sharedSecret, username))`. coturn checks the HMAC and refuses the username
 * once its expiry has passed, so nothing has to be stored on either side.
 */

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface TurnCredential {
  username: string;
  credential: string;
  /** When coturn stops accepting it, ms since the epoch. */
  expiresAt: number;
}

export function turnRestCredential(
  sharedSecret: string,
  user: string,
  expiresAt: number,
): TurnCredential {
  const username = `${Math.floor(expiresAt / 1000)}:${user}`;
  const credential = createHmac('sha1', sharedSecret).update(username).digest('base64');
  return { username, credential, expiresAt: Math.floor(expiresAt / 1000) * 1000 };
}

const fileSecrets = new Map<string, string | undefined>();

/** `turn.sharedSecret`, else DATA/turn.secret (read once), else undefined: no TURN. */
export function turnSharedSecret(config: NodeConfig): string | undefined {
  if (config.turn.sharedSecret) return config.turn.sharedSecret;
  const file = join(config.node.dataDir, 'turn.secret');
  if (!fileSecrets.has(file)) {
    let value: string | undefined;
    try {
      value = readFileSync(file, 'utf8').trim() || undefined;
    } catch {
      value = undefined;
    }
    fileSecrets.set(file, value);
  }
  return fileSecrets.get(file);
}

/**
 * The ICE servers a case participant gets: the configured `media.iceServers`, then the TURN URLs
 * with a credential for this case and role that expires after `turn.ttl`, or with the link.
 */
export function iceServersFor(
  config: NodeConfig,
  caseId: string,
  who: { role: string; expiresAt: number },
  now = Date.now(),
): IceServer[] {
  const servers: IceServer[] = [...config.media.iceServers];
  const secret = turnSharedSecret(config);
  if (config.turn.urls.length && secret) {
    const expiresAt = Math.min(now + config.turn.ttl, who.expiresAt);
    const { username, credential } = turnRestCredential(secret, `${caseId}-${who.role}`, expiresAt);
    servers.push({ urls: config.turn.urls, username, credential });
  }
  return servers;
}

export interface TurnRouteDeps {
  config: NodeConfig;
  cases: CaseService;
}

export function registerTurnRoutes(router: Router, deps: TurnRouteDeps): void {
  // fresh ICE servers for a page that has been open longer than its TURN credential lives
  router.on('GET', '/api/cases/:id/ice', (ctx) => {
    const id = ctx.params.id!;
    const who = deps.cases.authorize(id, bearerToken(ctx.req, ctx.url));
    sendJson(
      ctx.res,
      200,
      { iceServers: iceServersFor(deps.config, id, who) },
      { 'Cache-Control': 'no-store' },
    );
  });
}
