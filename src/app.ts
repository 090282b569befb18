/**
 * Builds the Sallyport Koa application from its parts. No I/O happens at import time;
 * `createApp` connects to the store, loads (or creates) signing keys, applies the
 * declarative config and returns the app with a `close()` for graceful shutdown.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import { createPasswordAuthenticator } from './accounts/authenticate.ts';
import { applyDeclaredClients, applyDeclaredUsers } from './config/apply.ts';
import type { Config } from './config/schema.ts';
import { AppError } from './errors.ts';
import { createCsrf } from './interactions/csrf.ts';
import { createInteractionRoutes } from './interactions/routes.ts';
import { createFederation } from './interactions/federation.ts';
import { applyDeclaredGroups, applyDeclaredIdps } from './config/apply.ts';
import { createFederatedAccounts } from './federation/accounts.ts';
import { createAuthRecordStore, type AuthRecordStore } from './federation/auth-records.ts';
import { createIdentityProviders, type IdentityProviders } from './federation/identity-providers.ts';
import { installSessionHooks } from './oidc/session-hooks.ts';
import { createAdminApi, adminIndicator } from './admin/index.ts';
import { createAuditLog, type AuditLog } from './admin/audit.ts';
import { createEntitlements } from './admin/entitlements.ts';
import { createGroupStore, type GroupStore } from './storage/group-store.ts';
import { createSessionTerminator, type SessionTerminator } from './logout/end-sessions.ts';
import { createLogoutRoutes, installLogoutChain } from './logout/chain.ts';
import { createIdpStore, type IdpStore } from './storage/idp-store.ts';
import { createRateLimiter } from './http/rate-limit.ts';
import { createMetrics, routeOf, type Metrics } from './observability/metrics.ts';
import { createProvider } from './oidc/provider.ts';
import { loadOrCreateSigningKeys } from './oidc/signing-keys.ts';
import { isStoreOutage, type KeyValueStore } from './storage/contract.ts';
import { createStore } from './storage/index.ts';
import { createKeys, type Keys } from './storage/keys.ts';
import { createUserStore, type UserStore } from './storage/user-store.ts';
import { html } from './views/html.ts';
import { renderPage } from './views/layout.ts';
import { errorPage } from './views/pages.ts';

export interface SallyportApp {
  app: Koa;
  provider: Provider;
  store: KeyValueStore;
  keys: Keys;
  users: UserStore;
  idpStore: IdpStore;
  identityProviders: IdentityProviders;
  authRecords: AuthRecordStore;
  sessions: SessionTerminator;
  groups: GroupStore;
  audit: AuditLog;
  metrics: Metrics;
  config: Config;
  /** Release the store (the HTTP server is closed by its owner first). */
  close(): Promise<void>;
}

export interface AppOptions {
  logger: Logger;
  /** An existing store (tests share one); otherwise created from `config.storage`. */
  store?: KeyValueStore;
  /** HTTP client for calls to upstream identity providers. */
  fetch?: typeof globalThis.fetch;
  /** Also export Node.js process metrics (CPU, memory, event loop, GC). One app per process should. */
  processMetrics?: boolean;
}

const STYLESHEET = new URL('./views/static/sallyport.css', import.meta.url);

export async function createApp(config: Config, options: AppOptions): Promise<SallyportApp> {
  const { logger } = options;
  const ownStore = options.store ?? (await createStore(config.storage));
  const metrics = createMetrics({ processMetrics: options.processMetrics ?? false });
  const store = metrics.instrumentStore(ownStore);
  try {
    const keys = createKeys(config.storage.prefix);
    const users = createUserStore(store, keys);
    const signingKeys = await loadOrCreateSigningKeys(store, keys);
    const groups = createGroupStore(store, keys);
    const entitlements = createEntitlements({ config, users, groups });
    const audit = createAuditLog({
      store,
      keys,
      onError: (err) => logger.error({ err }, 'could not write an audit event'),
      observe: (event) => {
        if (event.type !== 'signin.succeeded' && event.type !== 'signin.failed') return;
        const method = event.details?.['method'] === 'federated' ? 'federated' : 'password';
        metrics.signIn(method, method === 'federated' ? String(event.details?.['idp'] ?? '') : 'local', event.outcome);
      },
    });
    const provider = createProvider({ config, store, keys, users, signingKeys, admin: { indicator: adminIndicator(config.issuer), entitlements } });
    const idpStore = createIdpStore(store, keys);
    await applyDeclaredClients(config, provider, store, keys);
    await applyDeclaredUsers(config, users);
    await applyDeclaredIdps(config, idpStore, store, keys);
    await applyDeclaredGroups(config, groups, store, keys);
    const identityProviders = createIdentityProviders({ idps: idpStore, fetch: options.fetch ?? globalThis.fetch });
    const authRecords = createAuthRecordStore({
      store,
      keys,
      lifetime: config.federation.recordLifetime,
      encryptionKeys: config.federation.recordEncryptionKeys,
    });
    installSessionHooks(provider, { store, keys, authRecords });
    // RFC 9110 §10.2.3: a 503 says when to come back.
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.status === 503) ctx.set('retry-after', '5');
    });
    const sessions = createSessionTerminator({ provider, store, keys, authRecords, logger, audit });
    const logoutDeps = { provider, config, store, keys, authRecords, idps: identityProviders, sessions, onStep: metrics.logoutChain };
    installLogoutChain(logoutDeps);

    const app = new Koa({ proxy: config.trustProxy });
    app.keys = config.cookies.keys as string[];
    assertSameCookieKeys(app, provider);
    app.silent = true;

    app.use(requestContext(logger));
    app.use(publicOrigin(config));
    app.use(metrics.http());
    app.use(accessLog);
    app.use(securityHeaders);
    app.use(errorHandler);
    app.use(methodNotAllowed);
    app.use(
      createRateLimiter({
        config,
        store,
        keys,
        paths: { token: provider.pathFor('token'), endSession: provider.pathFor('end_session'), endSessionConfirm: provider.pathFor('end_session_confirm') },
        onLimited: metrics.rateLimited,
      }),
    );

    const csrf = createCsrf(config.cookies.keys);
    const authenticate = createPasswordAuthenticator({ store, keys, users, lockout: config.login.lockout });
    const accounts = createFederatedAccounts({ store, keys, users });
    const federation = createFederation({ provider, config, store, keys, idps: identityProviders, accounts, csrf, audit });
    const interactions = createInteractionRoutes({ provider, config, users, authenticate, csrf, federation, audit });
    const logoutRoutes = createLogoutRoutes({ ...logoutDeps, logger });
    const adminApi = createAdminApi({
      issuer: config.issuer,
      config,
      provider,
      store,
      keys,
      audit,
      entitlements,
      users,
      groups,
      idpStore,
      identityProviders,
      authRecords,
      sessions,
    });
    // Each router is only asked about the paths it can hold: the provider's endpoints (the
    // bulk of the traffic) skip matching against every route of ours. Case-insensitive,
    // as the routers match.
    app.use(routedBelow(/^\/interaction\//i, federation.interactionRouter, interactions));
    app.use(routedBelow(/^\/federation\//i, federation.callbackRouter, logoutRoutes));
    app.use(routedBelow(/^\/admin(?:\/|$)/i, adminApi.admin));
    app.use(routedBelow(/^\/scim(?:\/|$)/i, adminApi.scim));
    app.use(routedBelow(/^\/(?:$|metrics$|static\/|healthz$|readyz$)/i, createSiteRoutes(config, store, metrics)));

    // RP-initiated (and the library's internal) logout, after the local teardown.
    provider.on('end_session.success', (ctx: Context) => {
      const oidc = (ctx as unknown as { oidc?: { session?: { accountId?: string; uid?: string }; client?: { clientId: string } } }).oidc;
      void audit.record({
        type: 'signout',
        outcome: 'success',
        ...(oidc?.session?.accountId ? { actor: { accountId: oidc.session.accountId } } : {}),
        ...(oidc?.session?.uid ? { target: { kind: 'session', id: oidc.session.uid } } : {}),
        clientId: oidc?.client?.clientId,
        ip: ctx.ip,
        details: { method: 'rp-initiated' },
      });
    });
    provider.on('grant.success', (ctx: Context) => {
      const params = (ctx as unknown as { oidc?: { params?: { grant_type?: unknown } } }).oidc?.params;
      metrics.tokenIssued(String(params?.grant_type ?? ''));
    });
    provider.on('server_error', (ctx: Context, err: Error) => {
      (ctx.state['logger'] as Logger | undefined ?? logger).error({ err }, 'provider server_error');
    });
    // koa-mount's behaviour without the dependency: the provider's middleware runs in
    // our context, so our middleware above sees ctx.oidc after the provider handled a
    // request, and paths the provider does not route fall through to the 404 below.
    app.use(composeProvider(provider));
    app.use(notFound);

    return {
      app,
      provider,
      store,
      keys,
      users,
      idpStore,
      identityProviders,
      authRecords,
      sessions,
      groups,
      audit,
      metrics,
      config,
      close: async () => {
        if (!options.store) await ownStore.close();
      },
    };
  } catch (err) {
    if (!options.store) await ownStore.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Some provider cookies are signed with the Koa app's keys and others with the
 * provider's; if they differ, interactions fail with "interaction session id cookie
 * not found" long after start-up. Refuse to start instead.
 */
export function assertSameCookieKeys(app: Koa, provider: Provider): void {
  const providerKeys = (provider as unknown as { keys?: string[] }).keys ?? [];
  const appKeys = (app.keys as string[] | undefined) ?? [];
  if (providerKeys.length === 0 || providerKeys.length !== appKeys.length || providerKeys.some((k, i) => k !== appKeys[i])) {
    throw new Error('cookie keys of the application and of the OpenID provider differ; they must be one list');
  }
}

function composeProvider(provider: Provider) {
  const middleware = provider.middleware as Array<(ctx: Context, next: Next) => Promise<unknown>>;
  return (ctx: Context, next: Next) => {
    const dispatch = (i: number): Promise<unknown> => {
      const fn = i === middleware.length ? next : middleware[i]!;
      return Promise.resolve(fn(ctx, () => dispatch(i + 1)));
    };
    return dispatch(0);
  };
}

/**
 * Routers (in this order) for the paths `below` matches; other requests go straight on.
 * Same semantics as `app.use(r.routes()); app.use(r.allowedMethods())` for each.
 */
function routedBelow(below: RegExp, ...routers: Router[]) {
  const chain = routers.flatMap((r) => [r.routes(), r.allowedMethods()]) as Array<(ctx: Context, next: Next) => Promise<unknown>>;
  return (ctx: Context, next: Next): Promise<unknown> => {
    if (!below.test(ctx.path)) return next();
    const dispatch = (i: number): Promise<unknown> => (i === chain.length ? next() : chain[i]!(ctx, () => dispatch(i + 1)));
    return dispatch(0);
  };
}

function requestContext(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.state['requestId'] = requestId;
    ctx.state['baseLogger'] = logger;
    // Most requests log nothing beyond the request line: the child is made on first use.
    let child: Logger | undefined;
    Object.defineProperty(ctx.state, 'logger', {
      configurable: true,
      enumerable: true,
      get: () => (child ??= logger.child({ requestId })),
    });
    ctx.set('x-request-id', requestId);
    await next();
  };
}

/** Paths probed every few seconds by orchestrators and scrapers: not worth a log line each. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * One line per request: method, route, status and duration. The route is the endpoint's
 * name or pattern, never the raw path or query: those carry codes, hints and interaction
 * ids. Paths are logged only for requests no route matched. Never headers or bodies.
 */
async function accessLog(ctx: Context, next: Next) {
  const start = process.hrtime.bigint();
  try {
    await next();
  } finally {
    if (!QUIET_PATHS.has(ctx.path)) {
      const ms = Math.round(Number(process.hrtime.bigint() - start) / 1e4) / 100;
      const route = routeOf(ctx);
      const where = route === 'unmatched' ? { route, path: ctx.path.slice(0, 200) } : { route };
      (ctx.state['baseLogger'] as Logger).info({ requestId: ctx.state['requestId'], method: ctx.method, ...where, status: ctx.status, ms }, 'request');
    }
  }
}

/**
 * Headers for every response. The CSP carries a per-request nonce for the one inline
 * script we emit (logout auto-submit); oidc-provider appends hashes of its own inline
 * scripts to `script-src`. There is deliberately no `form-action`: browsers apply it to
 * the redirects after a form post, which would break logout chaining to other origins.
 */
/**
 * 128-bit CSP nonces, cut from a buffer of random bytes refilled every 256 nonces (one
 * randomBytes call per request costs more than the rest of this middleware).
 */
const NONCE_BYTES = 16;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;
function cspNonce(): string {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 256);
    nonceOffset = 0;
  }
  const nonce = noncePool.toString('base64', nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

async function securityHeaders(ctx: Context, next: Next) {
  const nonce = cspNonce();
  ctx.state['cspNonce'] = nonce;
  ctx.set('content-security-policy', `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'self'; img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'`);
  ctx.set('x-content-type-options', 'nosniff');
  ctx.set('referrer-policy', 'no-referrer');
  ctx.set('x-frame-options', 'DENY');
  ctx.set('cross-origin-opener-policy', 'same-origin');
  if (ctx.secure) ctx.set('strict-transport-security', 'max-age=31536000');
  await next();
}

const TITLES: Record<number, string> = { 403: 'Request refused', 404: 'Not found', 405: 'Not allowed', 413: 'Too large' };

/**
 * A known path asked with a method it does not take: the routers' allowedMethods() set
 * 405 and `Allow` on the way back, after the not-found page was rendered; render the
 * right page (or JSON) for it. Routers that answer 405 themselves (the admin API) are left
 * as they are.
 */
async function methodNotAllowed(ctx: Context, next: Next) {
  await next();
  if (ctx.status !== 405 || !ctx.response.get('allow') || !ctx.response.is('html')) return;
  const message = 'This address does not take this kind of request.';
  if (ctx.accepts('html', 'json') === 'json') {
    ctx.body = { error: 'method_not_allowed', message };
  } else {
    ctx.body = errorPage({ status: 405, title: 'Not allowed', message, requestId: String(ctx.state['requestId']) });
  }
  ctx.status = 405;
}

/**
 * The issuer is the public origin. Every URL Sallyport builds (redirects, discovery,
 * the provider's return addresses) comes from the request's host and scheme, so those are
 * set from the issuer here: neither a Host nor an X-Forwarded-Host header can make
 * Sallyport build a URL on another origin. From a trusted proxy only X-Forwarded-For
 * (the client address) and, for an https issuer, the scheme are taken. An absolute-form
 * target is reduced to its path and query (RFC 9112 §3.2.2: accept it, and here the
 * authority it names is ignored like Host); anything else that is not a path (`*`, an
 * unparsable URL) is refused here, before any other middleware parses the path.
 */
function publicOrigin(config: Config) {
  const issuer = new URL(config.issuer);
  const scheme = issuer.protocol.slice(0, -1);
  return async (ctx: Context, next: Next) => {
    const headers = ctx.req.headers;
    headers.host = issuer.host;
    delete headers['x-forwarded-host'];
    if (config.trustProxy) headers['x-forwarded-proto'] = scheme;
    let target = ctx.originalUrl;
    const absolute = /^https?:\/\//i.test(target) ? URL.parse(target) : null;
    if (absolute) {
      target = `${absolute.pathname}${absolute.search}`;
      ctx.req.url = target;
      ctx.originalUrl = target;
      ctx.request.originalUrl = target;
    }
    if (!target.startsWith('/') || URL.parse(target, issuer) === null) {
      const message = 'The address of this request is not valid.';
      ctx.status = 400;
      const type = ctx.accepts('html', 'json', 'application/scim+json');
      if (type === 'application/scim+json') {
        ctx.type = 'application/scim+json';
        ctx.body = { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '400', scimType: 'invalidSyntax', detail: message };
      } else if (type === 'json') {
        ctx.body = { error: 'invalid_request', message };
      } else {
        ctx.type = 'html';
        ctx.body = errorPage({ status: 400, title: 'Bad request', message, requestId: String(ctx.state['requestId']) });
      }
      return;
    }
    await next();
  };
}

/** Errors from our own routes: a readable page (or JSON for API callers), never a stack trace. */
async function errorHandler(ctx: Context, next: Next) {
  try {
    await next();
  } catch (err) {
    const log = ctx.state['logger'] as Logger;
    let status = 500;
    let title = 'Something went wrong';
    let message = 'An unexpected error occurred. Please try again later.';
    let code = 'server_error';
    if (err instanceof AppError) {
      ({ status, code } = err);
      message = err.publicMessage;
      title = TITLES[status] ?? 'Sign-in could not continue';
      if (err.detail || status >= 500) log.warn({ code, detail: err.detail }, message);
    } else if (isStoreOutage(err)) {
      status = 503;
      code = 'temporarily_unavailable';
      title = 'Temporarily unavailable';
      message = 'Sallyport cannot reach its storage right now. Please try again in a moment.';
      ctx.set('retry-after', '5');
      log.error({ err }, 'store unavailable');
    } else {
      log.error({ err }, 'unhandled error');
    }
    ctx.status = status;
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = { error: code, message };
    } else {
      ctx.type = 'html';
      ctx.body = errorPage({ status, title, message, requestId: String(ctx.state['requestId']) });
    }
  }
}

async function notFound(ctx: Context) {
  ctx.status = 404;
  ctx.type = 'html';
  ctx.body = errorPage({ status: 404, title: 'Not found', message: 'There is nothing at this address.', requestId: String(ctx.state['requestId']) });
}

function createSiteRoutes(config: Config, store: KeyValueStore, metrics: Metrics): Router {
  const router = new Router();
  if (config.metrics.enabled) {
    const expected = config.metrics.bearerToken ? Buffer.from(`Bearer ${config.metrics.bearerToken}`) : undefined;
    router.get('/metrics', async (ctx) => {
      if (expected) {
        const given = Buffer.from(ctx.get('authorization'));
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          ctx.status = 401;
          ctx.set('www-authenticate', 'Bearer realm="metrics"');
          ctx.body = { error: 'unauthorized', message: 'a bearer token is required for /metrics' };
          return;
        }
      }
      ctx.set('cache-control', 'no-store');
      ctx.type = metrics.registry.contentType;
      ctx.body = await metrics.registry.metrics();
    });
  }
  let stylesheet: Promise<Buffer> | undefined;
  router.get('/static/sallyport.css', async (ctx) => {
    stylesheet ??= readFile(STYLESHEET);
    ctx.type = 'text/css';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = await stylesheet;
  });
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      await store.ping();
      ctx.body = { status: 'ready', store: store.kind };
    } catch {
      ctx.status = 503;
      ctx.set('retry-after', '5');
      ctx.body = { status: 'unavailable', store: store.kind };
    }
  });
  router.get('/', (ctx) => {
    const discovery = `${config.issuer}/.well-known/openid-configuration`;
    ctx.type = 'html';
    ctx.body = renderPage({
      title: 'Sallyport',
      main: html`<h1>Sallyport</h1><p>This is an OpenID Connect provider. Applications find its configuration at <a href="${discovery}">${discovery}</a>.</p>`,
    });
  });
  return router;
}
