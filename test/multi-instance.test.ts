/**
 * Sallyport scales out as identical, stateless processes: three real `src/main.ts`
 * processes on one Redis (AOF on, as in production) behind a plain round-robin proxy
 * without sticky sessions, a real upstream OP behaving like Okta, and openid-client as
 * the RP. The steps of one person's flow are pinned to different instances; what an
 * operator changes through one instance is in force on the others at once; and the
 * service lives through a Redis restart, a Redis outage under load, and an instance
 * killed in the middle of a sign-in.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { ADMIN_CLIENTS, ADMIN_SECRET } from './support/admin.ts';
import { UPSTREAM_PASSWORD, federatedSignIn, submitLogoutForm, type SignInEnv } from './support/federation-env.ts';
import { redisServerAvailable, startRedisServer, type RedisServer } from './support/redis-server.ts';
import { startRoundRobinProxy, type ProxiedRequest, type RequestMatch, type RoundRobinProxy } from './support/round-robin-proxy.ts';
import { startTestRp, type TestRp } from './support/rp.ts';
import { SECRET, becomesReady, freePort } from './support/sallyport.ts';
import { startSallyportProcess, writeConfigFile, type SallyportProcess } from './support/sallyport-process.ts';
import { startUpstreamOp, type UpstreamOp } from './support/upstream-op.ts';
import { UserAgent, type Page } from './support/user-agent.ts';

const NAMES = ['A', 'B', 'C'] as const;
type Name = (typeof NAMES)[number];
const APP = 'app';
const FULL_SCOPE = 'openid profile email groups offline_access';

describe.runIf(redisServerAvailable())('three Sallyport processes behind a round-robin proxy, one Redis', () => {
  let redis: RedisServer;
  let proxy: RoundRobinProxy;
  let rp: TestRp;
  let okta: UpstreamOp;
  let config: Awaited<ReturnType<typeof writeConfigFile>>;
  const instances = {} as Record<Name, SallyportProcess>;
  let env: SignInEnv;
  let app: oidc.Configuration;
  let adminToken: string;
  let loggedOut: string;
  let paths: { token: string; userinfo: string; endSession: string };

  beforeAll(async () => {
    [redis, proxy, rp] = await Promise.all([startRedisServer({ appendonly: true }), startRoundRobinProxy(), startTestRp()]);
    const issuer = proxy.url;
    loggedOut = `${rp.origin}/logged-out`;
    okta = await startUpstreamOp({
      flavor: 'okta',
      clients: [
        {
          client_id: 'sallyport',
          client_secret: SECRET,
          // `corp` is the same upstream added later through the admin API.
          redirect_uris: [`${issuer}/federation/okta/callback`, `${issuer}/federation/corp/callback`],
          post_logout_redirect_uris: [`${issuer}/federation/logout-callback`],
        },
      ],
      users: [
        { username: 'olivia', password: UPSTREAM_PASSWORD, sub: 'okta-olivia-0001', email: 'olivia@okta.example', email_verified: true, name: 'Olivia Okta', preferred_username: 'olivia', groups: ['Everyone'] },
      ],
    });
    config = await writeConfigFile({
      issuer,
      listen: { host: '127.0.0.1' },
      trustProxy: true,
      storage: { type: 'redis', url: redis.url, prefix: 'sp-multi:' },
      cookies: { keys: ['multi-instance-cookie-key-0123456789abcdef'] },
      groups: [{ name: 'staff' }, { name: 'corp-staff' }],
      clients: [
        {
          // A public client: refresh tokens rotate on every use.
          client_id: APP,
          client_name: 'Multi-instance app',
          token_endpoint_auth_method: 'none',
          redirect_uris: [`${rp.origin}/callback`],
          post_logout_redirect_uris: [loggedOut],
          grant_types: ['authorization_code', 'refresh_token'],
          first_party: true,
        },
        ...ADMIN_CLIENTS,
      ],
      identityProviders: [
        {
          id: 'okta',
          type: 'okta',
          displayName: 'Okta',
          issuer: okta.issuer,
          clientId: 'sallyport',
          clientSecret: SECRET,
          jwksCooldown: 0,
          timeoutMs: 2000,
          groupMappings: { Everyone: ['staff'] },
        },
      ],
    });
    // Started together on an empty Redis: they race to create the signing keys and to
    // apply the same declarations, as replicas of one deployment do.
    const started = await Promise.all(
      NAMES.map(async (name) => startSallyportProcess({ name, configFile: config.path, port: await freePort(), env: { ISSUER: issuer } })),
    );
    for (const p of started) {
      instances[p.name as Name] = p;
      proxy.addBackend({ name: p.name, origin: p.origin });
    }
    app = await oidc.discovery(new URL(issuer), APP, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    env = { sp: { issuer }, rp, web: app };
    const meta = app.serverMetadata();
    paths = {
      token: new URL(meta.token_endpoint!).pathname,
      userinfo: new URL(meta.userinfo_endpoint!).pathname,
      endSession: new URL(meta.end_session_endpoint!).pathname,
    };
    const adminCli = await oidc.discovery(new URL(issuer), 'admin-cli', { client_secret: ADMIN_SECRET }, undefined, { execute: [oidc.allowInsecureRequests] });
    adminToken = (await oidc.clientCredentialsGrant(adminCli, { scope: 'sallyport.admin' })).access_token;
  });

  afterAll(async () => {
    await Promise.all(Object.values(instances).map((p) => p.stop()));
    await okta?.close();
    await rp?.stop();
    await proxy?.close();
    await redis?.stop();
    await config?.remove();
  });

  // A test that failed half-way must not leave its pins to the next one.
  afterEach(() => proxy?.clearPins());

  // --- helpers ------------------------------------------------------------------------

  const on = (backend: Name, match: RequestMatch) => proxy.pin(match, backend);

  /** The log entries since `from` that match. */
  function served(from: number, method: string, path: string | RegExp): ProxiedRequest[] {
    return proxy.log.slice(from).filter((e) => e.method === method && (typeof path === 'string' ? e.url.split('?')[0] === path : path.test(e.url.split('?')[0]!)));
  }

  /** Exactly one such request since `from`, answered by `backend` without an error. */
  function expectServed(from: number, method: string, path: string | RegExp, backend: Name) {
    const entries = served(from, method, path);
    expect(entries, `${method} ${String(path)}`).toHaveLength(1);
    expect(entries[0], `${method} ${String(path)}`).toMatchObject({ backend, pinned: true });
    expect(entries[0]!.status, `${method} ${String(path)}`).toBeLessThan(400);
  }

  async function adminApi(backend: Name, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
    const method = init.method ?? 'GET';
    on(backend, { method, path: `/admin/v1${path.split('?')[0]}` });
    const res = await fetch(`${proxy.url}/admin/v1${path}`, {
      method,
      headers: { accept: 'application/json', authorization: `Bearer ${adminToken}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  }

  function signIn(opts: { ua?: UserAgent; idp?: string } = {}) {
    return federatedSignIn(env, { idp: opts.idp ?? 'okta', ...(opts.ua ? { ua: opts.ua } : {}), params: { scope: FULL_SCOPE, prompt: 'consent' } });
  }

  /** RP-initiated logout with the RP's id_token_hint, walked through every page a browser would submit. */
  async function logout(ua: UserAgent, idToken: string, state: string) {
    const url = oidc.buildEndSessionUrl(app, { id_token_hint: idToken, post_logout_redirect_uri: loggedOut, state });
    let step: { page: Page; stoppedAt?: URL } = await ua.follow(url, { stopAt: [loggedOut] });
    const pages = [step.page];
    for (let i = 0; i < 4 && !step.stoppedAt; i++) {
      step = await submitLogoutForm(ua, step.page, [loggedOut]);
      pages.push(step.page);
    }
    return { ...step, pages };
  }

  async function jwksOf(p: SallyportProcess): Promise<JSONWebKeySet> {
    return (await (await fetch(`${p.origin}/jwks`)).json()) as JSONWebKeySet;
  }

  async function sessionsOf(accountId: string, backend: Name) {
    const res = await adminApi(backend, `/users/${accountId}/sessions`);
    expect(res.status).toBe(200);
    return res.body['items'] as Array<{ uid: string; clients: string[]; authentication?: { idp: string; sub: string } }>;
  }

  /** Until every process answers /readyz (after Redis came back). */
  async function allReady(): Promise<void> {
    for (const p of Object.values(instances).filter((i) => i.running())) {
      expect(await becomesReady(p.origin, 10_000), `${p.name} ready again`).toBe(true);
    }
  }

  // --- the tests ----------------------------------------------------------------------

  it('publish one JWKS and one discovery document on the public origin from every instance', async () => {
    const [a, b, c] = await Promise.all(NAMES.map((n) => jwksOf(instances[n])));
    expect(a!.keys.length).toBeGreaterThanOrEqual(2);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const documents = [];
    for (const name of NAMES) {
      on(name, { path: '/.well-known/openid-configuration' });
      documents.push(await (await fetch(`${proxy.url}/.well-known/openid-configuration`)).json());
    }
    expect(documents[1]).toEqual(documents[0]);
    expect(documents[2]).toEqual(documents[0]);
    // Behind the proxy every endpoint is on the public origin, not on a backend's.
    const discovery = documents[0] as Record<string, unknown>;
    expect(discovery['issuer']).toBe(proxy.url);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint']) {
      expect(String(discovery[key]), key).toMatch(new RegExp(`^${proxy.url}/`));
    }
  });

  it('sends each request to the next instance in turn, and a whole sign-in and logout work that way', async () => {
    const from = proxy.log.length;
    for (let i = 0; i < 6; i++) expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
    const spread = proxy.log.slice(from).map((e) => e.backend);
    expect(new Set(spread.slice(0, 3)).size).toBe(3);
    expect(spread.slice(3)).toEqual(spread.slice(0, 3));

    const flowFrom = proxy.log.length;
    const signedIn = await signIn();
    expect(signedIn.tokens, signedIn.page?.body.slice(0, 400)).toBeDefined();
    const done = await logout(signedIn.ua, signedIn.tokens!.id_token!, 'plain');
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=plain`);
    // No stickiness: one browser's consecutive requests never stayed on one instance.
    const flow = proxy.log.slice(flowFrom);
    expect(flow.every((e) => !e.pinned && e.status < 500)).toBe(true);
    for (let i = 1; i < flow.length; i++) expect(flow[i]!.backend).not.toBe(flow[i - 1]!.backend);
    expect(new Set(flow.map((e) => e.backend))).toEqual(new Set(NAMES));
  });

  it('one person\'s sign-in, refresh and logout, with each step pinned to another instance', async () => {
    const from = proxy.log.length;
    const returnPath = /^\/interaction\/[^/]+\/idp\/okta\/return$/;
    on('A', { method: 'GET', path: '/auth' });
    on('B', { method: 'GET', path: '/federation/okta/callback' });
    on('C', { method: 'GET', path: returnPath });
    on('C', { method: 'POST', path: paths.token });
    const signedIn = await signIn();
    const tokens = signedIn.tokens!;
    expect(tokens, signedIn.page?.body.slice(0, 400)).toBeDefined();
    expect(signedIn.askedUpstreamPassword).toBe(true);
    expectServed(from, 'GET', '/auth', 'A');
    expectServed(from, 'GET', '/federation/okta/callback', 'B');
    expectServed(from, 'GET', returnPath, 'C');
    expectServed(from, 'POST', paths.token, 'C');

    // The ID token verifies against the keys any instance publishes.
    const { payload } = await jwtVerify(tokens.id_token!, createLocalJWKSet(await jwksOf(instances.B)), { issuer: proxy.url, audience: APP });
    const accountId = payload.sub!;
    on('B', { method: 'GET', path: paths.userinfo });
    expect(await oidc.fetchUserInfo(app, tokens.access_token, accountId)).toMatchObject({ sub: accountId, email: 'olivia@okta.example', groups: ['staff'] });

    // Refresh on A: the token rotates, and the new access token works on C.
    const refreshFrom = proxy.log.length;
    on('A', { method: 'POST', path: paths.token });
    const refreshed = await oidc.refreshTokenGrant(app, tokens.refresh_token!);
    expectServed(refreshFrom, 'POST', paths.token, 'A');
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    on('C', { method: 'GET', path: paths.userinfo });
    expect((await oidc.fetchUserInfo(app, refreshed.access_token, accountId))['sub']).toBe(accountId);
    const sessions = await sessionsOf(accountId, 'A');
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.authentication).toMatchObject({ idp: 'okta', sub: 'okta-olivia-0001' });

    // Logout: end_session and its confirmation on B, the upstream's return on C.
    const logoutFrom = proxy.log.length;
    const upstreamBefore = okta.endSessionRequests.length;
    on('B', { method: 'GET', path: paths.endSession });
    on('B', { method: 'POST', path: `${paths.endSession}/confirm` });
    on('C', { method: 'GET', path: '/federation/logout-callback' });
    const done = await logout(signedIn.ua, tokens.id_token!, 'rp-state-42');
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=rp-state-42`);
    expectServed(logoutFrom, 'GET', paths.endSession, 'B');
    expectServed(logoutFrom, 'POST', `${paths.endSession}/confirm`, 'B');
    expectServed(logoutFrom, 'GET', '/federation/logout-callback', 'C');
    expect(proxy.pendingPins()).toEqual([]);

    // The upstream was asked to end its session with the id_token it issued to us.
    expect(okta.endSessionRequests.length).toBe(upstreamBefore + 1);
    const upstream = okta.endSessionRequests.at(-1)!;
    expect(upstream.params['id_token_hint']).toBeTruthy();
    expect(upstream.idTokenHint).toMatchObject({ valid: true, sub: 'okta-olivia-0001', aud: 'sallyport' });
    expect(upstream.params['post_logout_redirect_uri']).toBe(`${proxy.url}/federation/logout-callback`);
    // Nothing is left: no session here, and the upstream asks for the password again.
    expect(await sessionsOf(accountId, 'C')).toEqual([]);
    const again = await signIn({ ua: signedIn.ua });
    expect(again.askedUpstreamPassword).toBe(true);
  });

  it('a code, or a refresh token, redeemed at the same moment on two instances is never honoured twice', async () => {
    /** Both at once, one on each instance: at most one wins, the other gets invalid_grant. */
    const neverTwice = async <T>(pair: [Name, Name], redeem: () => Promise<T>) => {
      const from = proxy.log.length;
      for (const name of pair) on(name, { method: 'POST', path: paths.token });
      const results = await Promise.allSettled([redeem(), redeem()]);
      expect(served(from, 'POST', paths.token).map((e) => e.backend).sort()).toEqual([...pair].sort());
      // When the loser finds the code or token already used, that is a replay
      // (RFC 6749 §4.1.2, OAuth 2.0 Security BCP §4.14): the grant is revoked, and the
      // winner's request may fail too. What must never happen is two issuances.
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeLessThanOrEqual(1);
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(lost.length).toBeGreaterThanOrEqual(1);
      for (const r of lost) expect(r.reason).toMatchObject({ error: 'invalid_grant' });
    };
    const started = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true, params: { scope: FULL_SCOPE, prompt: 'consent' } });
    const back = await started.ua.follow(started.callback!, { stopAt: [`${rp.origin}/callback`] });
    expect(back.stoppedAt?.searchParams.get('code'), back.page.body.slice(0, 400)).toBeTruthy();
    await neverTwice(['A', 'B'], () => oidc.authorizationCodeGrant(app, back.stoppedAt!, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }));

    const signedIn = await signIn();
    await neverTwice(['B', 'C'], () => oidc.refreshTokenGrant(app, signedIn.tokens!.refresh_token!));
  });

  it('a client created, changed and deleted through one instance is in force on the others at once', async () => {
    const created = await adminApi('A', '/clients', { method: 'POST', body: { client_id: 'reports', client_name: 'Reports', grant_types: ['client_credentials'] } });
    expect(created.status).toBe(201);
    const reports = (secret: string) => oidc.discovery(new URL(proxy.url), 'reports', { client_secret: secret }, undefined, { execute: [oidc.allowInsecureRequests] });
    const first = await reports(created.body['client_secret'] as string);
    on('B', { method: 'POST', path: paths.token });
    const token = await oidc.clientCredentialsGrant(first, {});
    on('C', { method: 'POST', path: new URL(app.serverMetadata().introspection_endpoint!).pathname });
    expect(await oidc.tokenIntrospection(first, token.access_token)).toMatchObject({ active: true, client_id: 'reports' });

    // A new secret through B: the old one is refused on C, the new one works on A.
    const rotated = await adminApi('B', '/clients/reports/secret', { method: 'POST' });
    expect(rotated.status).toBe(200);
    on('C', { method: 'POST', path: paths.token });
    await expect(oidc.clientCredentialsGrant(first, {})).rejects.toMatchObject({ error: 'invalid_client' });
    const second = await reports(rotated.body['client_secret'] as string);
    on('A', { method: 'POST', path: paths.token });
    expect((await oidc.clientCredentialsGrant(second, {})).access_token).toBeTruthy();

    // Deleted through C: refused on A and on B.
    const version = (await adminApi('C', '/clients/reports')).headers.get('etag')!;
    expect((await adminApi('C', '/clients/reports', { method: 'DELETE', headers: { 'if-match': version } })).status).toBe(204);
    for (const name of ['A', 'B'] as const) {
      on(name, { method: 'POST', path: paths.token });
      await expect(oidc.clientCredentialsGrant(second, {}), name).rejects.toMatchObject({ error: 'invalid_client' });
    }
  });

  it('an identity provider added, renamed and removed through one instance is in force on the others at once', async () => {
    const signInPage = async (backend: Name) => {
      const ua = new UserAgent();
      const url = oidc.buildAuthorizationUrl(app, {
        redirect_uri: `${rp.origin}/callback`,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      on(backend, { method: 'GET', path: /^\/interaction\/[^/]+$/ });
      const { page } = await ua.follow(url);
      return { ua, page };
    };

    const added = await adminApi('A', '/identity-providers', {
      method: 'POST',
      body: { id: 'corp', type: 'oidc', displayName: 'Corp SSO', issuer: okta.issuer, clientId: 'sallyport', clientSecret: SECRET, scopes: ['openid', 'profile', 'email', 'groups'], groupMappings: { Everyone: ['corp-staff'] } },
    });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect((await signInPage('B')).page.body).toContain('Sign in with Corp SSO');
    // A whole sign-in through it, its callback and code exchange on the other two.
    const from = proxy.log.length;
    on('C', { method: 'GET', path: '/federation/corp/callback' });
    on('B', { method: 'GET', path: /^\/interaction\/[^/]+\/idp\/corp\/return$/ });
    const viaCorp = await federatedSignIn(env, { idp: 'corp' });
    expect(viaCorp.tokens, viaCorp.page?.body.slice(0, 400)).toBeDefined();
    expectServed(from, 'GET', '/federation/corp/callback', 'C');
    on('A', { method: 'GET', path: paths.userinfo });
    const corpUser = await oidc.fetchUserInfo(app, viaCorp.tokens!.access_token, viaCorp.tokens!.claims()!.sub);
    expect(corpUser['groups']).toEqual(['corp-staff']);

    const renamed = await adminApi('C', '/identity-providers/corp', {
      method: 'PUT',
      headers: { 'if-match': added.headers.get('etag')! },
      body: { id: 'corp', type: 'oidc', displayName: 'Corp Login', issuer: okta.issuer, clientId: 'sallyport' },
    });
    expect(renamed.status, JSON.stringify(renamed.body)).toBe(200);
    for (const name of ['A', 'B'] as const) {
      const { page } = await signInPage(name);
      expect(page.body, name).toContain('Sign in with Corp Login');
      expect(page.body, name).not.toContain('Corp SSO');
    }

    expect((await adminApi('B', '/identity-providers/corp', { method: 'DELETE' })).status).toBe(204);
    const { ua, page } = await signInPage('C');
    expect(page.body).not.toContain('Corp Login');
    const interactionPath = new URL(page.url).pathname;
    on('A', { method: 'GET', path: `${interactionPath}/idp/corp` });
    const refused = await ua.request(new URL(`${interactionPath}/idp/corp`, proxy.url));
    expect(refused.status).toBe(404);
  });

  it('a Redis restart (AOF) between sign-in and logout keeps the session, grant, client and authentication record', async () => {
    const signedIn = await signIn();
    const tokens = signedIn.tokens!;
    expect(tokens, signedIn.page?.body.slice(0, 400)).toBeDefined();
    const accountId = tokens.claims()!.sub;
    // Earlier tests left olivia signed in elsewhere: every one of her sessions must survive.
    const before = await sessionsOf(accountId, 'A');
    expect(before.length).toBeGreaterThanOrEqual(1);

    await redis.restart();
    await allReady();

    // Session and authentication record, and the client (read through other instances).
    const after = await sessionsOf(accountId, 'B');
    expect(after).toEqual(before);
    expect((await adminApi('C', `/clients/${APP}`)).body).toMatchObject({ client_id: APP, source: 'config' });
    // Grant and client: the refresh token still works (and rotates).
    on('C', { method: 'POST', path: paths.token });
    const refreshed = await oidc.refreshTokenGrant(app, tokens.refresh_token!);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    // Logout: no question (the hint names the live session), the upstream still gets its hint.
    const upstreamBefore = okta.endSessionRequests.length;
    const done = await logout(signedIn.ua, tokens.id_token!, 'after-restart');
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=after-restart`);
    expect(done.pages.some((p) => p.body.includes('Sign out?'))).toBe(false);
    expect(okta.endSessionRequests.length).toBe(upstreamBefore + 1);
    expect(okta.endSessionRequests.at(-1)!.idTokenHint).toMatchObject({ valid: true, sub: 'okta-olivia-0001' });
    expect(await sessionsOf(accountId, 'A')).toHaveLength(before.length - 1);
  });

  it('while Redis is down, concurrent requests on every instance get 503 with Retry-After within a bounded time, and service resumes when it returns', async () => {
    const signedIn = await signIn();
    const accessToken = signedIn.tokens!.access_token;
    const basic = `Basic ${Buffer.from(`admin-cli:${ADMIN_SECRET}`).toString('base64')}`;
    const authUrl = oidc.buildAuthorizationUrl(app, {
      redirect_uri: `${rp.origin}/callback`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const requests: Array<[string, RequestInit]> = [
      [`${proxy.url}${paths.token}`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' }],
      [`${proxy.url}${paths.userinfo}`, { headers: { authorization: `Bearer ${accessToken}` } }],
      [authUrl.href, { headers: { accept: 'text/html' }, redirect: 'manual' }],
      [`${proxy.url}/admin/v1/clients`, { headers: { authorization: `Bearer ${adminToken}`, accept: 'application/json' } }],
      [`${proxy.url}/readyz`, {}],
    ];

    await redis.stop();
    let results: Array<{ status: number; retryAfter: string | null; url: string }>;
    const from = proxy.log.length;
    try {
      // Each kind of request twice on each instance, all at once.
      const batch = requests.flatMap((request) => NAMES.flatMap((name) => [name, name].map(() => ({ name, request }))));
      for (const { name, request } of batch) on(name, { path: new URL(request[0]).pathname });
      results = await Promise.all(
        batch.map(async ({ request: [url, init] }) => {
          // A hang fails here, well before the test's own timeout.
          const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
          await res.arrayBuffer();
          return { status: res.status, retryAfter: res.headers.get('retry-after'), url };
        }),
      );
    } finally {
      await redis.restart();
    }
    expect(results).toHaveLength(30);
    for (const r of results) {
      expect(r, r.url).toMatchObject({ status: 503, retryAfter: '5' });
    }
    for (const name of NAMES) expect(proxy.log.slice(from).filter((e) => e.backend === name && e.status === 503), name).toHaveLength(10);
    await allReady();
    for (const p of Object.values(instances)) {
      expect(p.running(), `${p.name} still running`).toBe(true);
      expect(p.stderr(), p.name).not.toMatch(/unhandled|uncaught/i);
    }
    // Every instance serves again.
    for (const name of NAMES) {
      on(name, { method: 'GET', path: paths.userinfo });
      expect((await oidc.fetchUserInfo(app, accessToken, signedIn.tokens!.claims()!.sub))['sub']).toBeTruthy();
    }
  });

  it('a person\'s sign-in completes on the others when the instance that served a step is killed', async () => {
    const from = proxy.log.length;
    on('A', { method: 'GET', path: '/auth' });
    on('B', { method: 'GET', path: '/federation/okta/callback' });
    const started = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true, params: { scope: FULL_SCOPE, prompt: 'consent' } });
    // The upstream sent the browser back; B takes the callback, stores the hand-off and dies.
    const handedOff = await started.ua.request(started.callback!);
    expect(handedOff.status).toBe(303);
    expectServed(from, 'GET', '/federation/okta/callback', 'B');
    const killedAt = proxy.log.length;
    instances.B.child.kill('SIGKILL');
    expect((await instances.B.exited).signal).toBe('SIGKILL');

    const rest = await started.ua.follow(new URL(handedOff.headers.get('location')!, proxy.url), { stopAt: [`${rp.origin}/callback`] });
    expect(rest.stoppedAt?.searchParams.get('code'), rest.page.body.slice(0, 400)).toBeTruthy();
    const tokens = await oidc.authorizationCodeGrant(app, rest.stoppedAt!, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state });
    const refreshed = await oidc.refreshTokenGrant(app, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    const done = await logout(started.ua, tokens.id_token!, 'after-kill');
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=after-kill`);
    expect(decodeJwt(okta.endSessionRequests.at(-1)!.params['id_token_hint']!)['sub']).toBe('okta-olivia-0001');

    // The proxy found B gone on its turn and skipped it; A and C served the rest.
    const after = proxy.log.slice(killedAt);
    expect(after.some((e) => e.refusedBy.includes('B'))).toBe(true);
    expect(after.every((e) => e.backend === 'A' || e.backend === 'C')).toBe(true);
    expect(proxy.backends()).toEqual(['A', 'C']);
  });

  it('the instances left stop gracefully on SIGTERM, having logged no unhandled error', async () => {
    for (const name of ['A', 'C'] as const) {
      expect(await instances[name].stop(), name).toBe(0);
      expect(instances[name].stderr(), name).not.toMatch(/unhandled|uncaught/i);
    }
  });
});
