/**
 * Admin API access for tests: clients declared with admin roles, tokens from the real
 * token endpoint via openid-client, and a small JSON caller.
 */
import * as oidc from 'openid-client';
import type { RunningSallyport } from './sallyport.ts';

export const ADMIN_SECRET = 'admin-cli-secret-0123456789abcdef0123456789';

/** Clients to declare: `admin-cli` (role admin) and `auditor-cli` (role auditor). */
export const ADMIN_CLIENTS = [
  { client_id: 'admin-cli', client_secret: ADMIN_SECRET, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], roles: ['admin'] },
  { client_id: 'auditor-cli', client_secret: ADMIN_SECRET, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], roles: ['auditor'] },
];

export async function adminToken(sp: RunningSallyport, clientId = 'admin-cli', scope = 'sallyport.admin'): Promise<string> {
  const client = await sp.rp(clientId, { secret: ADMIN_SECRET });
  return (await oidc.clientCredentialsGrant(client, { scope })).access_token;
}

export interface ApiResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

export type Api = (path: string, init?: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string }) => Promise<ApiResponse>;

/** A caller for `${issuer}${base}` (default /admin/v1) with `token` as the default bearer. */
export function apiClient(sp: RunningSallyport, token: string, base = '/admin/v1'): Api {
  return async (path, init = {}) => {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    const bearer = init.token === undefined ? token : init.token;
    if (bearer) headers['authorization'] = `Bearer ${bearer}`;
    let body: string | undefined = init.raw;
    if (init.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(init.body);
    }
    const res = await fetch(`${sp.issuer}${base}${path}`, { method: init.method ?? 'GET', headers, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}
