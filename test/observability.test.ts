/**
 * Observability: Prometheus metrics at /metrics describe what really happened (sign-ins,
 * tokens, logout chain steps, store errors, requests by route), and no log line ever
 * carries a secret, password, token, code or id_token — checked by running every kind of
 * flow with logging at its most verbose and searching the output for each credential.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { pino } from 'pino';
import { ADMIN_CLIENTS, ADMIN_SECRET, adminToken, apiClient } from './support/admin.ts';
import { UPSTREAM_PASSWORD, federatedSignIn, startFederationEnv, submitLogoutForm, type FederationEnv } from './support/federation-env.ts';
import { describeRedis } from './support/redis.ts';
import { startRedisServer, type RedisServer } from './support/redis-server.ts';
import { signIn } from './support/rp.ts';
import { COOKIE_KEY, PASSWORD, SECRET, startSallyport } from './support/sallyport.ts';

/** One sample of a metric in Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return 0;
}

/** A logger writing every line (trace level and up) into memory. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

describeRedis('metrics and logs', () => {
  let env: FederationEnv;
  let redis: RedisServer;
  const logs = capturingLogger();
  const loggedOut = () => `${env.rp.origin}/logged-out`;
  const metrics = async () => (await fetch(`${env.sp.issuer}/metrics`)).text();

  beforeAll(async () => {
    redis = await startRedisServer({ appendonly: true });
    env = await startFederationEnv({ backend: 'redis', redisUrl: redis.url, logger: logs.logger, extraClients: ADMIN_CLIENTS });
  });
  afterAll(async () => {
    await env?.stop();
    await redis?.stop();
  });

  it('count sign-ins, tokens by grant type, logout chain steps and requests by route', async () => {
    const before = await metrics();

    // A password sign-in (authorization_code + refresh), a failed one, client credentials.
    const { tokens } = await signIn(env.web, { redirectUri: `${env.rp.origin}/callback`, password: PASSWORD, scope: 'openid offline_access', extraParams: { prompt: 'consent' } });
    await oidc.refreshTokenGrant(env.web, tokens!.refresh_token!);
    await signIn(env.web, { redirectUri: `${env.rp.origin}/callback`, password: 'wrong password' }).catch(() => undefined);
    await oidc.clientCredentialsGrant(await env.sp.rp('service'), {});

    // A federated sign-in through Okta, then RP-initiated logout chained upstream.
    const fed = await federatedSignIn(env, { idp: 'okta' });
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('id_token_hint', fed.tokens!.id_token!);
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut());
    endSession.searchParams.set('state', 'metrics');
    let step = await fed.ua.follow(endSession, { stopAt: [loggedOut()] });
    for (let i = 0; i < 4 && !step.stoppedAt; i++) step = await submitLogoutForm(fed.ua, step.page, [loggedOut()]);
    expect(step.stoppedAt?.searchParams.get('state')).toBe('metrics');

    const after = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('sallyport_signins_total', { method: 'password', idp: 'local', outcome: 'success' })).toBe(1);
    expect(delta('sallyport_signins_total', { method: 'password', idp: 'local', outcome: 'failure' })).toBe(1);
    expect(delta('sallyport_signins_total', { method: 'federated', idp: 'okta', outcome: 'success' })).toBe(1);
    expect(delta('sallyport_tokens_issued_total', { grant_type: 'authorization_code' })).toBe(2);
    expect(delta('sallyport_tokens_issued_total', { grant_type: 'refresh_token' })).toBe(1);
    expect(delta('sallyport_tokens_issued_total', { grant_type: 'client_credentials' })).toBe(1);
    expect(delta('sallyport_logout_chain_total', { step: 'upstream_redirect', idp: 'okta', id_token_hint: 'sent' })).toBe(1);
    expect(delta('sallyport_logout_chain_total', { step: 'upstream_returned', idp: 'okta' })).toBe(1);
    expect(delta('sallyport_logout_chain_total', { step: 'returned_to_rp', idp: 'okta' })).toBe(1);
    expect(delta('sallyport_logout_chain_total', { step: 'local_only' })).toBe(0);
    expect(delta('sallyport_http_requests_total', { method: 'POST', route: 'token', status: '200' })).toBe(4);
    expect(delta('sallyport_http_requests_total', { method: 'POST', route: '/interaction/:uid/login', status: '401' })).toBe(1);
    expect(delta('sallyport_http_request_duration_seconds_count', { method: 'POST', route: 'token' })).toBe(4);
    expect(after).toContain('# TYPE sallyport_http_request_duration_seconds histogram');

    // A local account's logout has no upstream step: local only, back at the RP.
    const local = await signIn(env.web, { redirectUri: `${env.rp.origin}/callback`, password: PASSWORD });
    const ua = local.ua;
    const out = new URL(env.web.serverMetadata().end_session_endpoint!);
    out.searchParams.set('id_token_hint', local.tokens!.id_token!);
    out.searchParams.set('post_logout_redirect_uri', loggedOut());
    let s = await ua.follow(out, { stopAt: [loggedOut()] });
    for (let i = 0; i < 3 && !s.stoppedAt; i++) s = await submitLogoutForm(ua, s.page, [loggedOut()]);
    const final = await metrics();
    expect(sample(final, 'sallyport_logout_chain_total', { step: 'local_only', idp: '' }) - sample(after, 'sallyport_logout_chain_total', { step: 'local_only', idp: '' })).toBe(1);
    expect(sample(final, 'sallyport_logout_chain_total', { step: 'returned_to_rp', idp: '' }) - sample(after, 'sallyport_logout_chain_total', { step: 'returned_to_rp', idp: '' })).toBe(1);
  });

  it('count store errors while Redis is down', async () => {
    const before = sample(await metrics(), 'sallyport_store_errors_total', { kind: 'unavailable' });
    await redis.stop();
    try {
      const res = await fetch(`${env.sp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`service:${SECRET}`).toString('base64')}` },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(503);
      const during = await metrics();
      expect(sample(during, 'sallyport_store_errors_total', { kind: 'unavailable' })).toBeGreaterThan(before);
      expect(sample(during, 'sallyport_http_requests_total', { method: 'POST', route: 'token', status: '503' })).toBeGreaterThanOrEqual(1);
    } finally {
      await redis.restart();
    }
  });

  it('never write a password, secret, token, code or id_token to the log', async () => {
    // Every credential that crosses Sallyport in the flows of this file and below.
    const secrets = new Set<string>([PASSWORD, UPSTREAM_PASSWORD, SECRET, COOKIE_KEY, ADMIN_SECRET, 'wrong password']);
    const fed = await federatedSignIn(env, { idp: 'okta' });
    expect(fed.tokens, fed.page?.body.slice(0, 2000)).toBeDefined();
    const t = fed.tokens!;
    for (const v of [t.access_token, t.id_token!, t.refresh_token ?? '', fed.codeVerifier]) if (v) secrets.add(v);
    const code = fed.callback!.searchParams.get('code');
    if (code) secrets.add(code);
    const record = (await env.sp.authRecords.findBySid(decodeJwt(t.id_token!)['sid'] as string))!;
    secrets.add(await env.sp.authRecords.idToken(record));
    for (const cookie of fed.ua.cookies) if (cookie.value.length >= 16) secrets.add(cookie.value);
    await oidc.tokenIntrospection(env.web, t.access_token);
    // Admin API: a client created with a secret, then its secret rotated.
    const token = await adminToken(env.sp);
    secrets.add(token);
    const api = apiClient(env.sp, token);
    const created = await api('/clients', { method: 'POST', body: { client_id: 'logged-client', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] } });
    expect(created.status).toBe(201);
    secrets.add(created.body['client_secret'] as string);
    const rotated = await api('/clients/logged-client/secret', { method: 'POST' });
    secrets.add(rotated.body['client_secret'] as string);
    // Bad input with credentials in it (a wrong secret, a garbage bearer) is logged as refused, not echoed.
    const wrongSecret = 'not-the-secret-0123456789abcdef0123456789';
    secrets.add(wrongSecret);
    await fetch(`${env.sp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&client_id=service&client_secret=${wrongSecret}`,
    });
    // Logout with the hint in the query string.
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('id_token_hint', t.id_token!);
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut());
    let step = await fed.ua.follow(endSession, { stopAt: [loggedOut()] });
    for (let i = 0; i < 4 && !step.stoppedAt; i++) step = await submitLogoutForm(fed.ua, step.page, [loggedOut()]);

    expect(logs.lines.length).toBeGreaterThan(50);
    // The request log is there (so the search below searched something real)…
    expect(logs.lines.some((l) => l.includes('"route":"token"'))).toBe(true);
    // …and holds none of the credentials, in any encoding a logger might use.
    for (const secret of secrets) {
      for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
        const leak = logs.lines.find((line) => line.includes(form));
        expect(leak, `a log line contains a credential (${secret.slice(0, 6)}…)`).toBeUndefined();
      }
    }
  });
});

describe('the metrics endpoint', () => {
  it('requires the configured bearer token, and is absent when disabled', async () => {
    const token = 'metrics-scrape-token-0123456789abcdef0123';
    const guarded = await startSallyport({ backend: 'memory', config: { metrics: { bearerToken: token } } });
    const off = await startSallyport({ backend: 'memory', config: { metrics: { enabled: false } } });
    try {
      expect((await fetch(`${guarded.issuer}/metrics`)).status).toBe(401);
      expect((await fetch(`${guarded.issuer}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      const ok = await fetch(`${guarded.issuer}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await ok.text()).toContain('sallyport_http_requests_total');
      expect((await fetch(`${off.issuer}/metrics`)).status).toBe(404);
    } finally {
      await guarded.stop();
      await off.stop();
    }
  });

  it('labels unknown paths as one route, so scanners cannot blow up the label set', async () => {
    const sp = await startSallyport({ backend: 'memory' });
    try {
      for (let i = 0; i < 5; i++) await fetch(`${sp.issuer}/no-such-page-${i}`);
      const text = await (await fetch(`${sp.issuer}/metrics`)).text();
      expect(sample(text, 'sallyport_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' })).toBe(5);
      expect(text).not.toContain('no-such-page');
    } finally {
      await sp.stop();
    }
  });
});
