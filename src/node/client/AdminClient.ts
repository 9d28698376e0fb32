import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errorMessage, UserError } from '../../core/errors.ts';
import type { CaseDetails, IssuedLink } from '../cases/CaseService.ts';
import type { CaseRecord, CaseStatus, Disposition, Outcome, Reason, Role } from '../store/Store.ts';

export interface AdminClientOptions {
  /** Node base URL, e.g. http://127.0.0.1:8080 */
  node: string;
  /** Admin token; when absent it is read from DATA/admin.token (run on the node host). */
  token?: string;
  dataDir?: string;
}

/** Typed client for a node's admin API: what the CLI uses to manage cases. */
export class AdminClient {
  private readonly base: string;
  private readonly token: string;

  constructor(opts: AdminClientOptions) {
    this.base = opts.node.replace(/\/$/, '');
    this.token = opts.token ?? AdminClient.tokenFromDataDir(opts.dataDir ?? './data');
  }

  static tokenFromDataDir(dataDir: string): string {
    const file = join(resolve(dataDir), 'admin.token');
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      throw new UserError(
        `no admin token: pass --token, set RETURNCAM_ADMIN_TOKEN, or run where the node's data directory is (looked for ${file})`,
      );
    }
  }

  /** One admin API request; a refusal or an unreachable node becomes a UserError saying so. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err);
      throw new UserError(
        `cannot reach the node at ${this.base} (${cause}); is it running? (returncam node start, or --node URL)`,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new UserError(
        `the node at ${this.base} answered ${res.status} with something that is not JSON`,
      );
    }
    if (!res.ok) {
      const msg = (json as { error?: { message?: string } }).error?.message ?? res.statusText;
      throw new UserError(`node: ${msg}`);
    }
    return json as T;
  }

  createCase(input: {
    orderId: string;
    sku: string;
    reason: Reason;
    marketplace?: string;
    warehouseId?: string;
    note?: string;
  }): Promise<{ case: CaseRecord; links: Record<Role, IssuedLink> }> {
    return this.request('POST', '/api/admin/cases', input);
  }

  listCases(status?: CaseStatus): Promise<{ cases: CaseRecord[] }> {
    return this.request('GET', `/api/admin/cases${status ? `?status=${status}` : ''}`);
  }

  showCase(id: string): Promise<CaseDetails> {
    return this.request('GET', `/api/admin/cases/${encodeURIComponent(id)}`);
  }

  decide(
    id: string,
    d: { outcome: Outcome; disposition?: Disposition; note?: string },
  ): Promise<{ case: CaseRecord }> {
    return this.request('POST', `/api/admin/cases/${encodeURIComponent(id)}/decision`, d);
  }

  close(id: string): Promise<{ case: CaseRecord }> {
    return this.request('POST', `/api/admin/cases/${encodeURIComponent(id)}/close`);
  }

  issueLink(id: string, role: Role, ttl?: string): Promise<{ link: IssuedLink }> {
    return this.request('POST', `/api/admin/cases/${encodeURIComponent(id)}/links`, {
      role,
      ...(ttl ? { ttl } : {}),
    });
  }

  revoke(id: string, role: Role): Promise<{ revoked: number }> {
    return this.request('POST', `/api/admin/cases/${encodeURIComponent(id)}/revoke`, { role });
  }
}
