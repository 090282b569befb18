/**
 * Faults around Sallyport. Store outages: requests fail fast with 503 and Retry-After
 * (no hang, no crash), and the service recovers by itself when Redis returns (a Redis
 * of the test's own, since the test stops it). A slow upstream IdP: the person gets a
 * readable page, or is returned to the RP, within the IdP's timeout.
 * (Outages under concurrent load on real processes, and a Redis restart between
 * sign-in and logout, are in multi-instance.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { describeRedis } from './support/redis.ts';
import { startRedisServer, type RedisServer } from './support/redis-server.ts';
import { becomesReady, SECRET, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { federatedSignIn, startFederationEnv, submitLogoutForm, type FederationEnv } from './support/federation-env.ts';
import type { Stall } from './support/upstream-op.ts';

describeRedis('Redis outage', () => {
  let redis: RedisServer;
  let sp: RunningSallyport;

  beforeAll(async () => {
    // AOF on, as in production: a restart keeps clients, keys and sessions.
    redis = await startRedisServer({ appendonly: true });
    sp = await startSallyport({ backend: 'redis', redisUrl: redis.url });
  });
  afterAll(async () => {
    await sp?.stop();
    await redis?.stop();
  });

  it('answers 503 with Retry-After while Redis is down, on provider and own routes, and recovers', async () => {
    const service = await sp.rp('service');
    expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
    await redis.stop();
    try {
      const started = Date.now();
      const token = await fetch(`${sp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`service:${SECRET}`).toString('base64')}` },
        body: 'grant_type=client_credentials',
      });
      expect(token.status).toBe(503);
      expect(token.headers.get('retry-after')).toBe('5');
      expect(await token.json()).toMatchObject({ error: 'temporarily_unavailable' });
      const ready = await fetch(`${sp.issuer}/readyz`);
      expect(ready.status).toBe(503);
      const admin = await fetch(`${sp.issuer}/admin/v1/clients`, { headers: { authorization: 'Bearer some-token' } });
      expect(admin.status).toBe(503);
      expect(admin.headers.get('retry-after')).toBe('5');
      expect(await admin.json()).toMatchObject({ error: 'temporarily_unavailable' });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect((await fetch(`${sp.issuer}/healthz`)).status).toBe(200);
    } finally {
      await redis.restart();
    }
    // ioredis reconnects by itself; the next requests work again.
    expect(await becomesReady(sp.issuer)).toBe(true);
    expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
  });
});

describe('a slow upstream IdP', () => {
  // The IdPs of this environment time out after 1500 ms (timeoutMs).
  const BOUND_MS = 10_000;
  let env: FederationEnv;

  beforeAll(async () => {
    env = await startFederationEnv({ backend: 'memory' });
  });
  afterAll(async () => env?.stop());

  for (const mode of ['hang', 'trickle'] as const) {
    it(`whose token endpoint ${mode === 'hang' ? 'never answers' : 'sends headers and then no body'}: a readable page, and the RP gets temporarily_unavailable`, async () => {
      const first = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true });
      env.okta.stall({ endpoint: 'token', mode });
      try {
        const started = Date.now();
        const step = await first.ua.follow(first.callback!);
        expect(Date.now() - started).toBeLessThan(BOUND_MS);
        expect(step.page.status).toBe(504);
        expect(step.page.body).toContain('Okta could not be reached');
        expect(step.page.body).not.toMatch(/at \w+ \(|node_modules|AbortError|TimeoutError/);
        const back = await first.ua.submit(step.page, { action: /\/abort$/ }, {}, [`${env.rp.origin}/callback`]);
        expect(back.stoppedAt?.searchParams.get('error')).toBe('temporarily_unavailable');
      } finally {
        env.okta.stall(null);
      }
      // Answering again, it signs people in again.
      expect((await federatedSignIn(env, { idp: 'okta' })).tokens).toBeDefined();
    });
  }

  it('whose discovery never answers when sign-in starts: a readable page', async () => {
    // Keycloak has not been used in this environment: its discovery is not cached yet.
    env.keycloak.stall({ endpoint: 'discovery', mode: 'hang' } satisfies Stall);
    try {
      const started = Date.now();
      const result = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      expect(Date.now() - started).toBeLessThan(BOUND_MS);
      expect(result.tokens).toBeUndefined();
      expect(result.page?.status).toBe(504);
      expect(result.page?.body).toContain('Keycloak could not be reached');
    } finally {
      env.keycloak.stall(null);
    }
  });

  it('whose discovery never answers at logout: the local logout completes, the person returns to the RP, and a later logout with the same hint still reaches the upstream', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    expect(signedIn.tokens).toBeDefined();
    // Another instance, or this one after a configuration change, has no discovery
    // document cached when the logout comes.
    const current = (await env.sp.idpStore.getIdp('keycloak'))!.record;
    await env.sp.idpStore.putIdp({ ...current.declaration, displayName: 'Lab Keycloak' }, 'admin', current.version);
    env.keycloak.stall({ endpoint: 'discovery', mode: 'hang' });
    const loggedOut = `${env.rp.origin}/logged-out`;
    try {
      const started = Date.now();
      const endSession = oidc.buildEndSessionUrl(env.web, { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'slow' });
      let step = await signedIn.ua.follow(endSession, { stopAt: [loggedOut] });
      for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(signedIn.ua, step.page, [loggedOut]);
      expect(Date.now() - started).toBeLessThan(BOUND_MS);
      expect(step.stoppedAt?.href).toBe(`${loggedOut}?state=slow`);
      await expect(oidc.fetchUserInfo(env.web, signedIn.tokens!.access_token, signedIn.tokens!.claims()!.sub)).rejects.toThrow();
    } finally {
      env.keycloak.stall(null);
      const changed = (await env.sp.idpStore.getIdp('keycloak'))!.record;
      await env.sp.idpStore.putIdp(current.declaration, 'config', changed.version);
    }
    // The upstream id_token was kept: the RP (or the person) logging out again with the
    // same hint, once Keycloak answers, ends the upstream session too.
    const before = env.keycloak.endSessionRequests.length;
    const retry = oidc.buildEndSessionUrl(env.web, { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'again' });
    let step = await signedIn.ua.follow(retry, { stopAt: [loggedOut] });
    for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(signedIn.ua, step.page, [loggedOut]);
    expect(step.stoppedAt?.href).toBe(`${loggedOut}?state=again`);
    expect(env.keycloak.endSessionRequests.length).toBe(before + 1);
    expect(env.keycloak.endSessionRequests.at(-1)!.idTokenHint).toMatchObject({ valid: true, sub: 'kc-kim-0001' });
  });
});
