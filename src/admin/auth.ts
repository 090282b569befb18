/**
 * Bearer-token authentication of the admin API (RFC 6750). Tokens are Sallyport's own
 * opaque access tokens issued for the admin API resource; cookies are never looked at,
 * so a browser session cannot be ridden into the API (no CSRF surface).
 */
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { AppError } from '../errors.ts';
import type { Entitlements } from './entitlements.ts';
import type { AdminScope } from './scopes.ts';

export interface Principal {
  clientId: string;
  /** Set when the token was issued to a person (authorization code). */
  accountId?: string | undefined;
  /** Effective scopes: those in the token that the principal still holds. */
  scopes: Set<AdminScope>;
}

interface StoredToken {
  isExpired: boolean;
  scope?: string;
  aud?: string | string[];
  clientId: string;
  accountId?: string;
  expiresWithSession?: boolean;
  sessionUid?: string;
}

function unauthorized(message: string, ctx: Context, error = 'invalid_token'): AppError {
  ctx.set('www-authenticate', error === 'invalid_token' ? `Bearer realm="sallyport-admin", error="invalid_token"` : 'Bearer realm="sallyport-admin"');
  return new AppError({ code: error, status: 401, message });
}

export type Authenticate = (ctx: Context) => Promise<Principal>;

export function createAdminAuthenticator(deps: { provider: Provider; entitlements: Entitlements; audience: string }) {
  const { provider, entitlements, audience } = deps;
  return async function authenticate(ctx: Context): Promise<Principal> {
    const header = ctx.get('authorization');
    if (!header) throw unauthorized('a bearer access token is required (Authorization: Bearer …)', ctx, 'unauthorized');
    const match = /^Bearer ([\x21-\x7E]{1,2048})$/i.exec(header);
    if (!match) throw unauthorized('the Authorization header must be "Bearer <token>"', ctx);
    const value = match[1]!;
    const token = ((await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value))) as unknown as StoredToken | undefined;
    if (!token || token.isExpired) throw unauthorized('the access token is invalid, expired or revoked', ctx);
    // Only tokens issued for this API: a token meant for another resource server must
    // not be replayable here.
    const audiences = Array.isArray(token.aud) ? token.aud : [token.aud];
    if (!audiences.includes(audience)) throw unauthorized('the access token was not issued for the admin API', ctx);
    if (token.expiresWithSession && token.sessionUid && !(await provider.Session.findByUid(token.sessionUid))) {
      throw unauthorized('the session this token belonged to has ended', ctx);
    }
    const held = token.accountId
      ? await entitlements.forAccount(token.accountId)
      : entitlements.forClientRoles(((await provider.Client.find(token.clientId)) as unknown as { roles?: string[] } | undefined)?.roles);
    const scopes = new Set<AdminScope>();
    for (const s of (token.scope ?? '').split(' ')) if (held.has(s as AdminScope)) scopes.add(s as AdminScope);
    return { clientId: token.clientId, accountId: token.accountId, scopes };
  };
}
