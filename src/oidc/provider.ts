/**
 * The single place where oidc-provider is configured. Everything protocol-level
 * (endpoints, grant types, token formats, TTLs, PKCE policy, logout) is decided here;
 * pages live in `interactions/`, storage behind the adapter in `adapter.ts`.
 */
import Provider, { errors, type Configuration, type KoaContextWithOIDC, type ClientMetadata } from 'oidc-provider';
import type { JWK } from 'jose';
import type { Config } from '../config/schema.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import type { UserStore } from '../storage/user-store.ts';
import { errorPage, logoutConfirmPage, signedOutPage } from '../views/pages.ts';
import { raw } from '../views/html.ts';
import { createAdapterFactory } from './adapter.ts';
import { accountClaims } from './claims.ts';
import { describeOAuthError } from './errors.ts';
import type { Entitlements } from '../admin/entitlements.ts';
import { isAdminScope } from '../admin/scopes.ts';

export const SUPPORTED_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'] as const;

/** Sallyport's own client metadata, validated by the provider's client schema. */
export const EXTRA_CLIENT_METADATA = ['first_party', 'require_pkce', 'allowed_idps', 'roles'] as const;

export interface ProviderDeps {
  /** Admin API as a resource server: its indicator and who holds which admin scopes. */
  admin: { indicator: string; entitlements: Entitlements };
  config: Config;
  store: KeyValueStore;
  keys: Keys;
  users: UserStore;
  signingKeys: JWK[];
}

export function createProvider(deps: ProviderDeps): Provider {
  const { config, store, keys, users, signingKeys, admin } = deps;
  const privateOrigins = new Set(config.backchannelLogout.allowPrivateNetworkOrigins);
  const resourceServers = new Map(config.resourceServers.map((rs) => [rs.indicator, rs]));

  const configuration: Configuration = {
    adapter: createAdapterFactory(store, keys),
    jwks: { keys: signingKeys as Configuration['jwks'] extends { keys: infer K } ? K : never },
    cookies: {
      // The same list as the Koa app's keys (asserted in app.ts): some provider cookies
      // are written through the parent app's context, some through the provider's.
      keys: config.cookies.keys as string[],
      names: { session: 'sp_session', interaction: 'sp_interaction', resume: 'sp_interaction_resume' },
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes: [...SUPPORTED_SCOPES],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'updated_at'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    responseTypes: ['code'],
    // Upstream IdP selection hints (ours and Keycloak's name for it).
    extraParams: ['idp_hint', 'kc_idp_hint'],
    clockTolerance: 30,
    async findAccount(_ctx, sub) {
      const user = await users.getUser(sub);
      if (!user || user.disabled) return undefined;
      return { accountId: user.id, claims: async () => accountClaims(user) };
    },
    pkce: {
      // S256 only (oidc-provider 9 supports nothing else). Every client must use it,
      // except confidential clients registered with `require_pkce: false`.
      required: (_ctx, client) => client.clientAuthMethod === 'none' || client['require_pkce'] !== false,
    },
    extraClientMetadata: {
      properties: [...EXTRA_CLIENT_METADATA],
      validator(_ctx, key, value, metadata) {
        if (value === undefined) return;
        if (key === 'roles') {
          if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v in admin.entitlements.roles)) {
            throw new errors.InvalidClientMetadata(`roles must be an array of known roles (${Object.keys(admin.entitlements.roles).join(', ')})`);
          }
          return;
        }
        if (key === 'allowed_idps') {
          if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && /^[a-z0-9][a-z0-9-]{0,62}$/.test(v))) {
            throw new errors.InvalidClientMetadata('allowed_idps must be an array of identity provider ids (or "local")');
          }
          return;
        }
        if (typeof value !== 'boolean') throw new errors.InvalidClientMetadata(`${key} must be a boolean`);
        if (key === 'require_pkce' && value === false && metadata['token_endpoint_auth_method'] === 'none') {
          throw new errors.InvalidClientMetadata('public clients always require PKCE');
        }
      },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.tokens.accessToken,
      AuthorizationCode: config.tokens.authorizationCode,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.tokens.clientCredentials,
      IdToken: config.tokens.idToken,
      RefreshToken: config.tokens.refreshToken,
      Interaction: config.tokens.interaction,
      Grant: config.tokens.grant,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      // Sessions slide with use (the library re-saves them on every request) but never
      // outlive maxLifetime from sign-in.
      Session: (_ctx, session) => {
        const idle = config.session.idleTimeout;
        if (!session.loginTs) return idle;
        const remaining = session.loginTs + config.session.maxLifetime - Math.floor(Date.now() / 1000);
        return Math.max(1, Math.min(idle, remaining));
      },
    },
    rotateRefreshToken(ctx) {
      const { RefreshToken: refreshToken, Client: client } = ctx.oidc.entities;
      if (!refreshToken || !client) return false;
      // Public clients cannot keep a secret, so every refresh token they use is
      // replaced, and reuse of an old one revokes the grant (OAuth 2.0 Security BCP §4.14).
      if (client.clientAuthMethod === 'none') return true;
      return refreshToken.ttlPercentagePassed() >= 70;
    },
    clientBasedCORS(ctx, origin, client) {
      if (origin === 'null') return false;
      // Browser-based (public) clients and userinfo calls may come from the origins of
      // the client's own redirect URIs, nothing else.
      if (ctx.oidc.route === 'userinfo' || client.clientAuthMethod === 'none') {
        return (client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin);
      }
      return false;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 §2.1 leaves the caller's authorization to the server: a public
        // client may only introspect its own tokens; confidential clients (resource
        // servers) may introspect any.
        allowedPolicy: async (ctx, client, token) => !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client?.clientId),
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client may only revoke tokens issued to it.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          const session = ctx.oidc.session;
          const hint = ctx.oidc.entities.IdTokenHint as { payload: { sub?: string; sid?: string; aud?: string | string[] } } | undefined;
          const client = ctx.oidc.entities.Client;
          // The library does not bind id_token_hint to the current session. Logging out
          // without a question is only safe when the hint names this very session;
          // anything else gets a confirmation page (logout CSRF protection).
          const hintMatchesSession =
            !!hint && !!session?.accountId && hint.payload.sub === session.accountId &&
            (hint.payload.sid === undefined || (client !== undefined && session.sidFor(client.clientId) === hint.payload.sid));
          const user = session?.accountId ? await users.getUser(session.accountId) : undefined;
          ctx.type = 'html';
          ctx.body = logoutConfirmPage({
            ...(client?.clientName ? { clientName: client.clientName } : {}),
            ...(user ? { userName: user.name ?? user.username } : {}),
            formHtml: raw(form),
            formId: 'op.logoutForm',
            autoSubmit: hintMatchesSession,
            nonce: cspNonce(ctx),
          });
        },
        postLogoutSuccessSource: async (ctx) => {
          const clientName = ctx.oidc.client?.clientName;
          ctx.type = 'html';
          ctx.body = signedOutPage(clientName ? { clientName } : {});
        },
      },
      resourceIndicators: {
        enabled: true,
        // No resource requested: an opaque token for userinfo (session-bound, revocable,
        // introspectable). A JWT access token only for a configured resource server.
        // A request for admin scopes without a resource is for the admin API (so plain
        // `scope=clients.read` works, as in UAA).
        defaultResource: async (ctx, _client, oneOf) => {
          if (oneOf) return oneOf;
          const requested = String(ctx.oidc.params?.['scope'] ?? '').split(' ');
          return requested.some(isAdminScope) ? admin.indicator : (undefined as unknown as string);
        },
        getResourceServerInfo: async (ctx, indicator, client) => {
          if (indicator === admin.indicator) {
            // Tokens carry only the admin scopes their holder has: the client's roles
            // for client credentials; for a person, the roles of their groups, and only
            // through a first-party client.
            const accountId =
              ctx.oidc.entities.AuthorizationCode?.accountId ??
              ctx.oidc.entities.RefreshToken?.accountId ??
              ctx.oidc.session?.accountId;
            let held: Set<string>;
            if (ctx.oidc.params?.['grant_type'] === 'client_credentials' || !accountId) {
              held = admin.entitlements.forClientRoles(client['roles'] as string[] | undefined);
            } else {
              held = client['first_party'] === true ? await admin.entitlements.forAccount(accountId) : new Set();
            }
            return { scope: [...held].join(' '), audience: admin.indicator, accessTokenFormat: 'opaque', accessTokenTTL: config.tokens.clientCredentials };
          }
          const rs = resourceServers.get(indicator);
          if (!rs) throw new errors.InvalidTarget('the requested resource is not known to this server');
          return {
            scope: rs.scopes.join(' '),
            audience: rs.indicator,
            accessTokenTTL: rs.accessTokenTtl ?? config.tokens.accessToken,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: rs.signingAlg } },
          };
        },
      },
    },
    async renderError(ctx, out, error) {
      const { title, message } = describeOAuthError(out);
      ctx.type = 'html';
      ctx.body = errorPage({ status: ctx.status, title, message, ...(ctx.state['requestId'] ? { requestId: String(ctx.state['requestId']) } : {}) });
      if (ctx.status >= 500) ctx.state['logger']?.error?.({ err: error }, 'provider error');
    },
    async fetch(url, options) {
      // oidc-provider refuses special-use addresses (SSRF protection). Relying parties
      // on loopback or private networks that the operator listed may still receive
      // back-channel logout tokens.
      if (privateOrigins.has(new URL(url instanceof Request ? url.url : url).origin)) delete (options as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, options);
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  // Every ID token carries `sid` (OIDC Back-Channel Logout 1.0 §2.1 defines it for any
  // RP), not only for clients registered for back-channel logout: an RP's
  // id_token_hint then names the session, and logout finds the authentication record
  // through it even after the session itself is gone.
  provider.Client.prototype.includeSid = () => true;
  return provider;
}

/** The per-request CSP nonce set by the security-headers middleware. */
export function cspNonce(ctx: KoaContextWithOIDC | { state: Record<string, unknown> }): string {
  return String(ctx.state['cspNonce'] ?? '');
}

export type { ClientMetadata };
