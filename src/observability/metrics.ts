/**
 * Prometheus metrics, one registry per app (several apps can live in one process).
 *
 * - `sallyport_http_requests_total{method,route,status}` and
 *   `sallyport_http_request_duration_seconds{method,route}`: `route` is the provider's
 *   endpoint name (`token`, `authorization`, `end_session`, …) or our router's path
 *   pattern (`/interaction/:uid/login`), never the raw path, so labels stay bounded.
 * - `sallyport_signins_total{method,idp,outcome}`: password and federated sign-ins.
 * - `sallyport_logout_chain_total{step,idp,id_token_hint}`: what each RP-initiated
 *   logout did after the local teardown (see `LogoutChainStep`).
 * - `sallyport_tokens_issued_total{grant_type}`: successful token endpoint responses.
 * - `sallyport_store_errors_total{kind}`: store operations that failed (`unavailable`
 *   when the store could not be reached in time, `other` otherwise).
 * - `sallyport_rate_limited_total{limit}`: requests refused by an abuse limit.
 * - Node.js process metrics (CPU, memory, event loop lag, GC) when asked for.
 */
import type { Context, Next } from 'koa';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isStoreOutage, type KeyValueStore } from '../storage/contract.ts';

/**
 * Steps of the logout chain:
 * - `upstream_redirect`: the browser was sent to the upstream IdP's end-session endpoint
 *   (`id_token_hint` says whether the hint went with it);
 * - `upstream_returned`: the browser came back from the upstream IdP to our callback;
 * - `returned_to_rp`: the browser was sent to the application's post_logout_redirect_uri;
 * - `local_only`: no upstream logout applied (local account, IdP without end-session);
 * - `failed`: chaining failed; the local logout stood.
 */
export type LogoutChainStep = 'upstream_redirect' | 'upstream_returned' | 'returned_to_rp' | 'local_only' | 'failed';

export interface Metrics {
  readonly registry: Registry;
  /** Koa middleware counting and timing every request. */
  http(): (ctx: Context, next: Next) => Promise<void>;
  signIn(method: 'password' | 'federated', idp: string, outcome: 'success' | 'failure'): void;
  logoutChain(step: LogoutChainStep, labels?: { idp?: string | undefined; hint?: boolean | undefined }): void;
  tokenIssued(grantType: string): void;
  rateLimited(limit: string): void;
  /** The store with every failed operation counted. */
  instrumentStore<S extends KeyValueStore>(store: S): S;
}

const LATENCY_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const KNOWN_GRANT_TYPES = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:openid:params:grant-type:ciba',
  'urn:ietf:params:oauth:grant-type:token-exchange',
]);

export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'sallyport_http_requests_total',
    help: 'HTTP requests served, by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'sallyport_http_request_duration_seconds',
    help: 'Time to serve an HTTP request, by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const signIns = new Counter({
    name: 'sallyport_signins_total',
    help: 'Sign-ins by method (password, federated), identity provider (local for password) and outcome.',
    labelNames: ['method', 'idp', 'outcome'] as const,
    registers: [registry],
  });
  const logoutChain = new Counter({
    name: 'sallyport_logout_chain_total',
    help: 'Steps of RP-initiated logouts: upstream_redirect, upstream_returned, returned_to_rp, local_only, failed.',
    labelNames: ['step', 'idp', 'id_token_hint'] as const,
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'sallyport_tokens_issued_total',
    help: 'Successful token endpoint responses, by grant type.',
    labelNames: ['grant_type'] as const,
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'sallyport_store_errors_total',
    help: 'Store operations that failed: unavailable (not reachable in time) or other.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'sallyport_rate_limited_total',
    help: 'Requests refused with 429 by an abuse limit (login, token, endSession).',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  // Every label combination exists from the start, so rate() works from the first scrape.
  for (const kind of ['unavailable', 'other']) storeErrors.labels(kind).inc(0);

  return {
    registry,
    http() {
      return async (ctx, next) => {
        const start = process.hrtime.bigint();
        try {
          await next();
        } finally {
          const route = routeOf(ctx);
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          requests.labels(ctx.method.length <= 7 ? ctx.method : 'OTHER', route, String(ctx.status)).inc();
          latency.labels(ctx.method.length <= 7 ? ctx.method : 'OTHER', route).observe(seconds);
        }
      };
    },
    signIn(method, idp, outcome) {
      signIns.labels(method, idp, outcome).inc();
    },
    logoutChain(step, labels = {}) {
      logoutChain.labels(step, labels.idp ?? '', labels.hint === undefined ? '' : labels.hint ? 'sent' : 'absent').inc();
    },
    tokenIssued(grantType) {
      tokens.labels(KNOWN_GRANT_TYPES.has(grantType) ? grantType : 'other').inc();
    },
    rateLimited(limit) {
      rateLimited.labels(limit).inc();
    },
    instrumentStore(store) {
      const wrapped = new Map<PropertyKey, unknown>();
      const count = (err: unknown): never => {
        storeErrors.labels(isStoreOutage(err) ? 'unavailable' : 'other').inc();
        throw err;
      };
      return new Proxy(store, {
        get(target, property, receiver) {
          const value: unknown = Reflect.get(target, property, receiver);
          if (typeof value !== 'function' || property === 'close') return value;
          let fn = wrapped.get(property);
          if (!fn) {
            const original = value as (...args: unknown[]) => unknown;
            fn = (...args: unknown[]) => {
              const result = original.apply(target, args);
              return result instanceof Promise ? result.catch(count) : result;
            };
            wrapped.set(property, fn);
          }
          return fn;
        },
      });
    },
  };
}

/** A bounded route label: the provider's endpoint name, our route pattern, or `unmatched`. */
export function routeOf(ctx: Context): string {
  const oidcRoute = (ctx as unknown as { oidc?: { route?: string } }).oidc?.route;
  if (oidcRoute) return oidcRoute;
  const pattern = (ctx as unknown as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof pattern === 'string') return pattern;
  return 'unmatched';
}
