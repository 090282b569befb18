/**
 * Starts a real Sallyport (the production `createApp`) on a loopback port, on the
 * memory store or a real Redis, with test clients and users declared the way an
 * operator would declare them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import * as oidc from 'openid-client';
import { createApp, type SallyportApp } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { testRedisUrl, uniquePrefix } from './redis.ts';

export type Backend = 'memory' | 'redis';

/** Backends every flow suite runs on; Redis only when a server is available. */
export const BACKENDS: Backend[] = testRedisUrl() ? ['memory', 'redis'] : ['memory'];

export const PASSWORD = 'correct horse battery staple';
export const SECRET = 'test-client-secret-0123456789abcdef0123';
export const COOKIE_KEY = 'test-cookie-key-0123456789abcdef0123456789';

export interface RunningSallyport extends SallyportApp {
  issuer: string;
  server: Server;
  stop(): Promise<void>;
  /** An openid-client Configuration for one of the declared clients. */
  rp(clientId: string, options?: { secret?: string }): Promise<oidc.Configuration>;
}

export interface StartOptions {
  backend: Backend;
  /** Extra config merged over the defaults (top-level keys replace). */
  config?: Record<string, unknown>;
  /** Redirect/back-channel endpoints of the test RP. */
  rpOrigin?: string;
  /** Redis key prefix; instances given the same one share all state. */
  prefix?: string;
  /** Listen on this port (so upstream IdPs can be told our callback URLs first). */
  port?: number;
  /** Clients declared besides the standard test clients. */
  extraClients?: Array<Record<string, unknown>>;
  /** A Redis of the test's own instead of the run's shared one. */
  redisUrl?: string;
  /** Where the app logs (default: silent, or TEST_LOG_LEVEL). */
  logger?: Logger;
  /**
   * A storage section of the test's own (a Sentinel or Cluster set-up, say), used instead
   * of the one `backend` implies; `prefix` defaults as for `backend: 'redis'`.
   */
  storage?: Record<string, unknown>;
}

export async function startSallyport(options: StartOptions): Promise<RunningSallyport> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rpOrigin = options.rpOrigin ?? 'http://127.0.0.1:9';
  const raw = {
    issuer,
    cookies: { keys: [COOKIE_KEY] },
    storage: options.storage
      ? { prefix: options.prefix ?? uniquePrefix('flow'), ...options.storage }
      : options.backend === 'redis'
        ? { type: 'redis', url: options.redisUrl ?? testRedisUrl(), prefix: options.prefix ?? uniquePrefix('flow') }
        : { type: 'memory' },
    login: { lockout: { maxFailures: 3, window: '10m' } },
    backchannelLogout: { allowPrivateNetworkOrigins: [rpOrigin] },
    resourceServers: [{ indicator: 'https://api.test', scopes: ['read', 'write'] }],
    clients: [
      {
        client_id: 'web',
        client_name: 'Web App',
        client_secret: SECRET,
        redirect_uris: [`${rpOrigin}/callback`],
        post_logout_redirect_uris: [`${rpOrigin}/logged-out`],
        grant_types: ['authorization_code', 'refresh_token'],
        backchannel_logout_uri: `${rpOrigin}/backchannel-logout`,
        backchannel_logout_session_required: true,
        first_party: true,
      },
      {
        client_id: 'spa',
        client_name: 'Third-Party SPA',
        token_endpoint_auth_method: 'none',
        redirect_uris: [`${rpOrigin}/spa/callback`],
        post_logout_redirect_uris: [`${rpOrigin}/spa/logged-out`],
        grant_types: ['authorization_code', 'refresh_token'],
      },
      {
        client_id: 'service',
        client_secret: SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      ...(options.extraClients ?? []),
    ],
    users: [
      {
        username: 'alice',
        password: PASSWORD,
        email: 'alice@example.com',
        emailVerified: true,
        name: 'Alice Example',
        groups: ['admins', 'developers'],
      },
      { username: 'bob', password: PASSWORD, name: 'Bob' },
    ],
    ...options.config,
  };
  const config = parseConfig(raw, {});
  const logger = options.logger ?? pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const app = await createApp(config, { logger });
  server.on('request', app.app.callback());

  return {
    ...app,
    issuer,
    server,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
    async rp(clientId, rpOptions = {}) {
      const declared = config.clients.find((c) => c.client_id === clientId);
      const secret = rpOptions.secret ?? declared?.client_secret;
      return oidc.discovery(new URL(issuer), clientId, secret ? { client_secret: secret } : undefined, secret ? undefined : oidc.None(), {
        execute: [oidc.allowInsecureRequests],
      });
    },
  };
}

/** A free loopback port (for a server whose URL others must know before it starts). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Polls `${origin}/readyz` until it answers 200 (true) or `timeoutMs` passes (false). */
export async function becomesReady(origin: string, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await fetch(`${origin}/readyz`)).status === 200) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
