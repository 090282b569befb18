/**
 * Logout that really logs out, over HTTP, on memory and Redis: RP-initiated logout at
 * Sallyport chained to the upstream IdP with the stored id_token_hint, back to the RP
 * with its state; the edge cases around it; inbound back-channel logout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { BACKENDS, PASSWORD } from './support/sallyport.ts';
import { federatedSignIn, startFederationEnv, submitLogoutForm, type FederationEnv } from './support/federation-env.ts';
import { UserAgent, type Page } from './support/user-agent.ts';
import { Redis } from 'ioredis';
import { describeRedis, uniquePrefix } from './support/redis.ts';
import { startRedisServer, type RedisServer } from './support/redis-server.ts';

describe.each(BACKENDS)('logout chain on %s', (backend) => {
  let env: FederationEnv;
  let loggedOut: string;

  beforeAll(async () => {
    env = await startFederationEnv({
      backend,
      upstreamIdTokenTtl: 2,
      extraClients: [
        {
          // JupyterHub's GenericOAuthenticator: confidential, sends no id_token_hint at logout.
          client_id: 'jupyterhub',
          client_secret: 'jupyterhub-client-secret-0123456789abcdef',
          redirect_uris: ['http://127.0.0.1:9/hub/oauth_callback'],
          post_logout_redirect_uris: ['http://127.0.0.1:9/hub/logout-done'],
          first_party: true,
        },
      ],
    });
    loggedOut = `${env.rp.origin}/logged-out`;
  });
  afterAll(async () => env?.stop());

  /** RP-initiated logout as the RP sends it, walked through every page a browser would submit. */
  async function rpLogout(ua: UserAgent, params: Record<string, string>, stopAt = [loggedOut]) {
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    for (const [k, v] of Object.entries(params)) endSession.searchParams.set(k, v);
    let step = await ua.follow(endSession, { stopAt });
    const pages: Page[] = [step.page];
    for (let i = 0; i < 4 && !step.stoppedAt; i++) {
      step = await submitLogoutForm(ua, step.page, stopAt);
      pages.push(step.page);
    }
    return { ...step, pages };
  }

  const recordOf = (idToken: string) => env.sp.authRecords.findBySid(decodeJwt(idToken)['sid'] as string);

  it('tears down locally, then logs out upstream with the stored id_token_hint, then returns to the RP with its state', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const idToken = signedIn.tokens!.id_token!;
    const record = (await recordOf(idToken))!;
    const upstreamToken = await env.sp.authRecords.idToken(record);
    const bclBefore = env.rp.logoutTokens.length;
    const requestsBefore = env.okta.endSessionRequests.length;

    const done = await rpLogout(signedIn.ua, { id_token_hint: idToken, post_logout_redirect_uri: loggedOut, state: 'rp-state-1' });
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=rp-state-1`);

    // Local teardown happened: back-channel to our RP, session gone, record gone.
    expect(env.rp.logoutTokens.length).toBe(bclBefore + 1);
    expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
    expect(await env.sp.authRecords.get(record.sessionUid)).toBeUndefined();
    await expect(oidc.fetchUserInfo(env.web, signedIn.tokens!.access_token, record.accountId)).rejects.toThrow();

    // Upstream got exactly our stored hint, our callback and a one-time state.
    expect(env.okta.endSessionRequests.length).toBe(requestsBefore + 1);
    const upstream = env.okta.endSessionRequests.at(-1)!;
    expect(upstream.params['id_token_hint']).toBe(upstreamToken);
    expect(upstream.idTokenHint).toMatchObject({ valid: true, sub: 'okta-olivia-0001' });
    expect(upstream.params['post_logout_redirect_uri']).toBe(`${env.sp.issuer}/federation/logout-callback`);
    expect(upstream.params['state']).toMatch(/^[\w-]{43}$/);

    // The upstream session is really gone: signing in again asks for the password there.
    const logins = env.okta.passwordLogins;
    const again = await federatedSignIn(env, { idp: 'okta', ua: signedIn.ua });
    expect(again.askedUpstreamPassword).toBe(true);
    expect(env.okta.passwordLogins).toBe(logins + 1);
  });

  it('sends the upstream hint even when it has expired', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    await new Promise((r) => setTimeout(r, 3000));
    const done = await rpLogout(signedIn.ua, { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'expired-hint' });
    expect(done.stoppedAt?.searchParams.get('state')).toBe('expired-hint');
    expect(env.okta.endSessionRequests.at(-1)!.idTokenHint).toMatchObject({ valid: true, expired: true });
  });

  it('when our session is already gone, finds the record through the hint\'s sid and still chains (no login loop)', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const idToken = signedIn.tokens!.id_token!;
    const record = (await recordOf(idToken))!;
    // Our session expires (or is deleted) before the RP logs out.
    await (await env.sp.provider.Session.findByUid(record.sessionUid))!.destroy();
    const requestsBefore = env.okta.endSessionRequests.length;
    // From another browser, too: nothing of ours in its cookies.
    const other = new UserAgent();
    const done = await rpLogout(other, { id_token_hint: idToken, post_logout_redirect_uri: loggedOut, state: 'gone' });
    expect(done.stoppedAt?.href).toBe(`${loggedOut}?state=gone`);
    expect(env.okta.endSessionRequests.length).toBe(requestsBefore + 1);
    expect(env.okta.endSessionRequests.at(-1)!.idTokenHint).toMatchObject({ valid: true, sub: 'okta-olivia-0001' });
    expect(done.pages.some((p) => /name="password"/.test(p.body))).toBe(false);
    expect(await env.sp.authRecords.get(record.sessionUid)).toBeUndefined();
  });

  it('a hint for a session alive in another browser ends that session too', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const record = (await recordOf(signedIn.tokens!.id_token!))!;
    const done = await rpLogout(new UserAgent(), { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 's' });
    expect(done.stoppedAt?.searchParams.get('state')).toBe('s');
    expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
  });

  it('asks before logging out when the hint does not name the current session (logout CSRF)', async () => {
    const victim = await federatedSignIn(env, { idp: 'okta' });
    const stranger = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('id_token_hint', stranger.tokens!.id_token!);
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut);
    const page = await victim.ua.follow(endSession);
    expect(page.page.body).toContain('Sign out?');
    expect(page.page.body).not.toContain('<script');
    // Nothing happened without the person's click.
    const record = (await recordOf(victim.tokens!.id_token!))!;
    expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeDefined();
  });

  it('"stay signed in" keeps the session and its record and calls no upstream', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const record = (await recordOf(signedIn.tokens!.id_token!))!;
    const before = env.okta.endSessionRequests.length;
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('client_id', 'web');
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut);
    const confirm = await signedIn.ua.follow(endSession);
    const stay = await signedIn.ua.submit(confirm.page, { id: 'op.logoutForm' }, {}, [loggedOut]);
    expect(stay.stoppedAt).toBeDefined();
    expect(env.okta.endSessionRequests.length).toBe(before);
    expect(await env.sp.authRecords.get(record.sessionUid)).toBeDefined();
  });

  it('an account switch in the same browser drops the old record without logging out upstream', async () => {
    const first = await federatedSignIn(env, { idp: 'okta' });
    const oldRecord = (await recordOf(first.tokens!.id_token!))!;
    const before = env.okta.endSessionRequests.length;
    // Same browser, the RP forces a new sign-in; this time with a local account.
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(env.web, {
      redirect_uri: `${env.rp.origin}/callback`,
      scope: 'openid',
      prompt: 'login',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    const { page } = await first.ua.follow(url);
    let step = await first.ua.submit(page, { action: /\/login$/ }, { username: 'alice', password: PASSWORD }, [`${env.rp.origin}/callback`]);
    // oidc-provider's internal logout form (a self-submitting form to end_session_confirm).
    for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(first.ua, step.page, [`${env.rp.origin}/callback`]);
    expect(step.stoppedAt?.searchParams.get('code')).toBeTruthy();
    expect(env.okta.endSessionRequests.length).toBe(before);
    expect(await env.sp.authRecords.get(oldRecord.sessionUid)).toBeUndefined();
  });

  it('an upstream without end_session support: local logout, straight back to the RP', async () => {
    const current = (await env.sp.idpStore.getIdp('keycloak'))!.record;
    await env.sp.idpStore.putIdp({ ...current.declaration, logout: { method: 'none' } }, 'admin', current.version);
    try {
      const signedIn = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      const before = env.keycloak.endSessionRequests.length;
      const done = await rpLogout(signedIn.ua, { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'none' });
      expect(done.stoppedAt?.searchParams.get('state')).toBe('none');
      expect(env.keycloak.endSessionRequests.length).toBe(before);
    } finally {
      const changed = (await env.sp.idpStore.getIdp('keycloak'))!.record;
      await env.sp.idpStore.putIdp(current.declaration, 'config', changed.version);
    }
  });

  it('sends Keycloak both id_token_hint and client_id, and can POST instead of redirecting', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    const done = await rpLogout(signedIn.ua, { id_token_hint: signedIn.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'kc' });
    expect(done.stoppedAt?.searchParams.get('state')).toBe('kc');
    const request = env.keycloak.endSessionRequests.at(-1)!;
    expect(request.method).toBe('GET');
    expect(request.params['client_id']).toBe('sallyport');
    expect(request.idTokenHint?.valid).toBe(true);

    const current = (await env.sp.idpStore.getIdp('keycloak'))!.record;
    await env.sp.idpStore.putIdp({ ...current.declaration, logout: { method: 'post' } }, 'admin', current.version);
    try {
      const again = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      const posted = await rpLogout(again.ua, { id_token_hint: again.tokens!.id_token!, post_logout_redirect_uri: loggedOut, state: 'kc-post' });
      expect(posted.pages.some((p) => p.body.includes('id="upstream-logout"'))).toBe(true);
      expect(posted.stoppedAt?.searchParams.get('state')).toBe('kc-post');
      expect(env.keycloak.endSessionRequests.at(-1)!.method).toBe('POST');
    } finally {
      const changed = (await env.sp.idpStore.getIdp('keycloak'))!.record;
      await env.sp.idpStore.putIdp(current.declaration, 'config', changed.version);
    }
  });

  it('the logout callback never redirects anywhere it did not store, and consumes its transaction once', async () => {
    const ua = new UserAgent();
    const evil = await ua.request(`${env.sp.issuer}/federation/logout-callback?state=forged&post_logout_redirect_uri=https://evil.example/`);
    expect(evil.status).toBe(303);
    expect(evil.headers.get('location')).toBe('/session/end/success');
    const none = await ua.request(`${env.sp.issuer}/federation/logout-callback`);
    expect(none.headers.get('location')).toBe('/session/end/success');

    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('id_token_hint', signedIn.tokens!.id_token!);
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut);
    endSession.searchParams.set('state', 'once');
    const confirm = await signedIn.ua.follow(endSession);
    const toUpstream = await signedIn.ua.submit(confirm.page, { id: 'op.logoutForm' }, { logout: 'yes' }, [env.okta.origin]);
    const txn = toUpstream.stoppedAt!.searchParams.get('state')!;
    const first = await ua.request(`${env.sp.issuer}/federation/logout-callback?state=${txn}`);
    expect(first.headers.get('location')).toBe(`${loggedOut}?state=once`);
    const replay = await ua.request(`${env.sp.issuer}/federation/logout-callback?state=${txn}`);
    expect(replay.headers.get('location')).toBe('/session/end/success');
    const success = await ua.follow(new URL('/session/end/success', env.sp.issuer));
    expect(success.page.body).toContain('You are signed out');
  });

  it('two tabs logging out at once both end signed out, without an error page', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const idToken = signedIn.tokens!.id_token!;
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('id_token_hint', idToken);
    endSession.searchParams.set('post_logout_redirect_uri', loggedOut);
    const tab1 = await signedIn.ua.follow(endSession);
    const tab2 = await signedIn.ua.follow(endSession);
    const stopAt = [loggedOut, `${env.sp.issuer}/session/end/success`];
    const [a, b] = await Promise.all([
      signedIn.ua.submit(tab1.page, { id: 'op.logoutForm' }, { logout: 'yes' }, [...stopAt, env.okta.origin]),
      signedIn.ua.submit(tab2.page, { id: 'op.logoutForm' }, { logout: 'yes' }, [...stopAt, env.okta.origin]),
    ]);
    // One tab completes the logout; the other either follows it to the signed-out
    // page or, if it raced ahead with a replaced logout token, is asked again. Never
    // an error page.
    for (const outcome of [a, b]) {
      expect(outcome.page.status).toBeLessThan(400);
      expect(outcome.page.body).not.toMatch(/xsrf token invalid|could not find logout details/i);
      if (!outcome.stoppedAt) expect(outcome.page.body).toContain('Sign out?');
    }
    expect([a, b].some((o) => o.stoppedAt?.origin === env.okta.origin)).toBe(true);
    expect(await recordOf(idToken)).toBeUndefined();
  });

  it('JupyterHub\'s logout (client_id, post_logout_redirect_uri, no hint) ends signed out upstream', async () => {
    const hubRedirect = 'http://127.0.0.1:9/hub/oauth_callback';
    const hub = await env.sp.rp('jupyterhub', { secret: 'jupyterhub-client-secret-0123456789abcdef' });
    const signedIn = await federatedSignIn(env, { idp: 'okta', client: hub, redirectUri: hubRedirect });
    expect(signedIn.tokens).toBeDefined();
    const before = env.okta.endSessionRequests.length;
    // JupyterHub's logout_redirect_url: our end_session with client_id and a fixed return URL.
    const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('client_id', 'jupyterhub');
    endSession.searchParams.set('post_logout_redirect_uri', 'http://127.0.0.1:9/hub/logout-done');
    const confirm = await signedIn.ua.follow(endSession);
    expect(confirm.page.body).toContain('Sign out?');
    let step = await signedIn.ua.submit(confirm.page, { id: 'op.logoutForm' }, { logout: 'yes' }, ['http://127.0.0.1:9/hub/logout-done']);
    for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(signedIn.ua, step.page, ['http://127.0.0.1:9/hub/logout-done']);
    expect(step.stoppedAt?.href).toBe('http://127.0.0.1:9/hub/logout-done');
    expect(env.okta.endSessionRequests.length).toBe(before + 1);
    expect(env.okta.endSessionRequests.at(-1)!.idTokenHint?.valid).toBe(true);
    const again = await federatedSignIn(env, { idp: 'okta', client: hub, redirectUri: hubRedirect, ua: signedIn.ua });
    expect(again.askedUpstreamPassword).toBe(true);
  });

  describe('inbound back-channel logout', () => {
    it('ends every Sallyport session of the upstream sid, notifies our RPs, and refuses replays and bad tokens', async () => {
      const signedIn = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      const record = (await recordOf(signedIn.tokens!.id_token!))!;
      const bclBefore = env.rp.logoutTokens.length;
      const sent = await env.keycloak.sendBackchannelLogout({ clientId: 'sallyport', sid: record.sid! });
      expect(sent.status).toBe(200);
      expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
      expect(await env.sp.authRecords.get(record.sessionUid)).toBeUndefined();
      expect(env.rp.logoutTokens.length).toBe(bclBefore + 1);
      expect(decodeJwt(env.rp.logoutTokens.at(-1)!)['sid']).toBe(decodeJwt(signedIn.tokens!.id_token!)['sid']);
      await expect(oidc.fetchUserInfo(env.web, signedIn.tokens!.access_token, record.accountId)).rejects.toThrow();

      // Replay of the same token.
      const replay = await fetch(`${env.sp.issuer}/federation/keycloak/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: sent.token }),
      });
      expect(replay.status).toBe(400);
      expect(await replay.json()).toMatchObject({ error: 'invalid_request' });
      for (const tamper of ['nonce', 'no-events', 'wrong-audience', 'old-iat'] as const) {
        const bad = await env.keycloak.sendBackchannelLogout({ clientId: 'sallyport', sid: 'whatever', tamper });
        expect(bad.status, tamper).toBe(400);
      }
      // A valid token from the other IdP, posted at this IdP's endpoint: wrong issuer
      // and keys, refused.
      const oktaToken = await env.okta.sendBackchannelLogout({ clientId: 'sallyport', sub: 'nobody' });
      expect(oktaToken.status).toBe(200);
      const foreign = await fetch(`${env.sp.issuer}/federation/keycloak/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: oktaToken.token }),
      });
      expect(foreign.status).toBe(400);
    });

    it('by sub ends every session of that upstream subject', async () => {
      const a = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      const b = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
      const ra = (await recordOf(a.tokens!.id_token!))!;
      const rb = (await recordOf(b.tokens!.id_token!))!;
      const sent = await env.keycloak.sendBackchannelLogout({ clientId: 'sallyport', sub: 'kc-kim-0001' });
      expect(sent.status).toBe(200);
      expect(await env.sp.provider.Session.findByUid(ra.sessionUid)).toBeUndefined();
      expect(await env.sp.provider.Session.findByUid(rb.sessionUid)).toBeUndefined();
    });

    it('rejects malformed requests clearly', async () => {
      const url = `${env.sp.issuer}/federation/keycloak/backchannel-logout`;
      const noToken = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
      expect(noToken.status).toBe(400);
      const json = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(json.status).toBe(400);
      const unknown = await fetch(`${env.sp.issuer}/federation/nope/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout_token=x' });
      expect(unknown.status).toBe(404);
      const garbage = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout_token=not.a.jwt' });
      expect(garbage.status).toBe(400);
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
        const wrong = await fetch(url, { method });
        expect(wrong.status, method).toBe(405);
        expect(wrong.headers.get('allow')).toBe('POST');
        expect(await wrong.json()).toMatchObject({ error: 'invalid_request' });
      }
    });
  });

  it('the server-side logout routine ends all of an account\'s sessions', async () => {
    const a = await federatedSignIn(env, { idp: 'okta' });
    const b = await federatedSignIn(env, { idp: 'okta' });
    const accountId = a.tokens!.claims()!.sub;
    expect(b.tokens!.claims()!.sub).toBe(accountId);
    const ended = await env.sp.sessions.endAccountSessions(accountId, 'test');
    expect(ended).toBeGreaterThanOrEqual(2);
    for (const t of [a, b]) {
      const r = await recordOf(t.tokens!.id_token!);
      expect(r).toBeUndefined();
      await expect(oidc.fetchUserInfo(env.web, t.tokens!.access_token, accountId)).rejects.toThrow();
    }
  });
});

describeRedis('logout while Redis fails part-way', () => {
  let redis: RedisServer;
  let env: FederationEnv;
  let admin: Redis;
  const prefix = uniquePrefix('acl');

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    env = await startFederationEnv({ backend: 'redis', redisUrl: redis.url, prefix });
  });
  afterAll(async () => {
    await env?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it('completes the local logout and returns to the RP when the authentication records cannot be reached', async () => {
    const signedIn = await federatedSignIn(env, { idp: 'okta' });
    const idToken = signedIn.tokens!.id_token!;
    const record = (await env.sp.authRecords.findBySid(decodeJwt(idToken)['sid'] as string))!;
    const before = env.okta.endSessionRequests.length;
    // A real Redis refusing part of the keyspace (as a failing shard would): everything
    // the library needs still works, every authentication-record key fails with NOPERM.
    await admin.call('ACL', 'SETUSER', 'default', 'resetkeys', `~${prefix}oidc:*`, `~${prefix}account:*`, `~${prefix}user:*`, `~${prefix}user-*`, `~${prefix}clients*`, `~${prefix}idp*`);
    try {
      const loggedOut = `${env.rp.origin}/logged-out`;
      const endSession = new URL(env.web.serverMetadata().end_session_endpoint!);
      endSession.searchParams.set('id_token_hint', idToken);
      endSession.searchParams.set('post_logout_redirect_uri', loggedOut);
      endSession.searchParams.set('state', 'redis-down');
      let step = await signedIn.ua.follow(endSession, { stopAt: [loggedOut] });
      for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(signedIn.ua, step.page, [loggedOut]);
      expect(step.stoppedAt?.href).toBe(`${loggedOut}?state=redis-down`);
      expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
      expect(env.okta.endSessionRequests.length).toBe(before);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allkeys');
    }
  });
});
