/**
 * End-to-end protocol flows over HTTP, with openid-client as the relying party and the
 * real sign-in and consent pages, on the memory store and on a real Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { pkceAuthorizationUrl } from './support/rp.ts';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { BACKENDS, PASSWORD, SECRET, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { signIn, startTestRp, type TestRp } from './support/rp.ts';
import { UserAgent, parseForms } from './support/user-agent.ts';

describe.each(BACKENDS)('protocol flows on %s', (backend) => {
  let sp: RunningSallyport;
  let rp: TestRp;
  let web: oidc.Configuration;
  let spa: oidc.Configuration;
  let service: oidc.Configuration;

  beforeAll(async () => {
    rp = await startTestRp();
    sp = await startSallyport({ backend, rpOrigin: rp.origin });
    web = await sp.rp('web');
    spa = await sp.rp('spa');
    service = await sp.rp('service');
  });
  afterAll(async () => {
    await sp?.stop();
    await rp?.stop();
  });

  it('publishes discovery and a JWKS with ES256 and RS256 keys from the store', async () => {
    const meta = web.serverMetadata();
    expect(meta.issuer).toBe(sp.issuer);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'groups', 'offline_access']));
    expect(meta.response_types_supported).toEqual(['code']);
    expect(meta.backchannel_logout_supported).toBe(true);
    for (const endpoint of ['introspection_endpoint', 'revocation_endpoint', 'userinfo_endpoint', 'end_session_endpoint'] as const) {
      expect(meta[endpoint]).toMatch(new RegExp(`^${sp.issuer}/`));
    }
    const jwks = (await (await fetch(meta.jwks_uri!)).json()) as { keys: Array<{ alg: string; d?: string }> };
    expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
  });

  it('signs in a third-party public client with code + PKCE through the login form and consent', async () => {
    const result = await signIn(spa, {
      redirectUri: `${rp.origin}/spa/callback`,
      scope: 'openid profile email groups',
      password: PASSWORD,
      consent: 'allow',
    });
    expect(result.loginPage?.status).toBe(200);
    expect(result.consentPage?.body).toContain('Third-Party SPA');
    expect(result.consentPage?.body).toContain('See the groups you belong to');
    const tokens = result.tokens!;
    const claims = tokens.claims()!;
    expect(claims.iss).toBe(sp.issuer);
    expect(claims.aud).toBe('spa');
    const alice = await sp.users.getUserByUsername('alice');
    expect(claims.sub).toBe(alice!.id);

    const userinfo = await oidc.fetchUserInfo(spa, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({
      sub: alice!.id,
      preferred_username: 'alice',
      name: 'Alice Example',
      email: 'alice@example.com',
      email_verified: true,
      groups: ['admins', 'developers'],
    });

    // The grant is remembered: a second sign-in in the same browser asks nothing.
    const again = await signIn(spa, { redirectUri: `${rp.origin}/spa/callback`, scope: 'openid profile email groups', ua: result.ua });
    expect(again.loginPage).toBeUndefined();
    expect(again.consentPage).toBeUndefined();
    expect(again.tokens?.claims()?.sub).toBe(alice!.id);
  });

  it('skips consent for a first-party client', async () => {
    const result = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
    expect(result.loginPage).toBeDefined();
    expect(result.consentPage).toBeUndefined();
    expect(result.tokens?.id_token).toBeTruthy();
  });

  it('returns access_denied to the RP when consent is denied', async () => {
    const result = await signIn(spa, { redirectUri: `${rp.origin}/spa/callback`, password: PASSWORD, consent: 'deny' });
    expect(result.callback.searchParams.get('error')).toBe('access_denied');
    expect(result.callback.searchParams.get('state')).toBe(result.state);
  });

  it('rotates refresh tokens for public clients and revokes the grant when an old one is reused', async () => {
    const { tokens } = await signIn(spa, {
      redirectUri: `${rp.origin}/spa/callback`,
      scope: 'openid offline_access',
      password: PASSWORD,
      consent: 'allow',
      extraParams: { prompt: 'consent' },
    });
    const first = tokens!.refresh_token!;
    expect(first).toBeTruthy();
    const refreshed = await oidc.refreshTokenGrant(spa, first);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(first);
    expect(refreshed.access_token).not.toBe(tokens!.access_token);

    await expect(oidc.refreshTokenGrant(spa, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    // Reuse of a rotated token revokes the whole grant, including the newest token.
    await expect(oidc.refreshTokenGrant(spa, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('issues opaque client-credentials tokens that introspect and revoke', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, {});
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.access_token.split('.')).toHaveLength(1);

    const active = await oidc.tokenIntrospection(service, tokens.access_token);
    expect(active).toMatchObject({ active: true, client_id: 'service', token_type: 'Bearer' });

    await oidc.tokenRevocation(service, tokens.access_token);
    const revoked = await oidc.tokenIntrospection(service, tokens.access_token);
    expect(revoked.active).toBe(false);
  });

  it('issues a JWT access token for a resource indicator, verifiable with the JWKS', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://api.test', scope: 'read' });
    const jwks = createRemoteJWKSet(new URL(service.serverMetadata().jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer: sp.issuer, audience: 'https://api.test', typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload['scope']).toBe('read');
    expect(payload['client_id']).toBe('service');

    await expect(oidc.clientCredentialsGrant(service, { resource: 'https://unknown.test' })).rejects.toMatchObject({ error: 'invalid_target' });
  });

  it('logs out through end_session, notifies the RP over back-channel, and returns with the RP state', async () => {
    const before = rp.logoutTokens.length;
    const { ua, tokens } = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
    const idToken = tokens!.id_token!;
    const sid = decodeJwt(idToken)['sid'];
    expect(sid).toBeTruthy();

    const endSession = oidc.buildEndSessionUrl(web, {
      id_token_hint: idToken,
      post_logout_redirect_uri: `${rp.origin}/logged-out`,
      state: 'rp-state-123',
    });
    const confirm = await ua.follow(endSession);
    // The hint names this very session: the page submits itself (a browser runs the
    // nonce'd script); here the person's browser does the same submission.
    expect(confirm.page.body).toContain('Signing you out');
    const form = parseForms(confirm.page.body).find((f) => f.id === 'op.logoutForm')!;
    expect(form.fields['xsrf']).toBeTruthy();
    const done = await ua.submit(confirm.page, { id: 'op.logoutForm' }, { logout: 'yes' }, [`${rp.origin}/logged-out`]);
    expect(done.stoppedAt?.href).toBe(`${rp.origin}/logged-out?state=rp-state-123`);

    // Back-channel logout token: signed by us, for this client and session.
    expect(rp.logoutTokens.length).toBe(before + 1);
    const jwks = createRemoteJWKSet(new URL(web.serverMetadata().jwks_uri!));
    const { payload } = await jwtVerify(rp.logoutTokens.at(-1)!, jwks, { issuer: sp.issuer, audience: 'web', typ: 'logout+jwt' });
    expect(payload['sid']).toBe(sid);
    expect(payload['sub']).toBe(tokens!.claims()!.sub);
    expect(payload['events']).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    expect(payload['nonce']).toBeUndefined();

    // The session and its session-bound tokens are gone.
    await expect(oidc.fetchUserInfo(web, tokens!.access_token, tokens!.claims()!.sub)).rejects.toThrow();
    const fresh = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD, ua });
    expect(fresh.loginPage).toBeDefined();
  });

  it('asks for confirmation when end_session carries no hint for the current session', async () => {
    const { ua } = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
    const url = new URL(web.serverMetadata().end_session_endpoint!);
    url.searchParams.set('client_id', 'web');
    url.searchParams.set('post_logout_redirect_uri', `${rp.origin}/logged-out`);
    url.searchParams.set('state', 'xyz');
    const confirm = await ua.follow(url);
    expect(confirm.page.body).toContain('Sign out?');
    expect(confirm.page.body).not.toContain('<script');
    // "Stay signed in" keeps the Sallyport session.
    const stay = await ua.submit(confirm.page, { id: 'op.logoutForm' }, {}, [`${rp.origin}/logged-out`]);
    expect(stay.stoppedAt?.searchParams.get('state')).toBe('xyz');
    const again = await signIn(web, { redirectUri: `${rp.origin}/callback`, ua });
    expect(again.loginPage).toBeUndefined();
  });

  it('records sign-ins, failed sign-ins and sign-outs in the audit trail, without passwords', async () => {
    const ua = new UserAgent();
    const url = await pkceAuthorizationUrl(web, `${rp.origin}/callback`);
    const { page } = await ua.follow(url);
    const failed = await ua.submit(page, { action: /\/login$/ }, { username: 'alice', password: 'not-the-password-xyz' });
    const ok = await ua.submit(failed.page, { action: /\/login$/ }, { username: 'alice', password: PASSWORD }, [`${rp.origin}/callback`]);
    expect(ok.stoppedAt).toBeDefined();
    const alice = (await sp.users.getUserByUsername('alice'))!;
    const { events } = await sp.audit.query({ type: 'signin', limit: 20 });
    expect(events.find((e) => e.type === 'signin.failed' && e.details?.['username'] === 'alice')).toMatchObject({ outcome: 'failure', clientId: 'web', details: { reason: 'invalid' } });
    expect(events.find((e) => e.type === 'signin.succeeded' && e.actor?.accountId === alice.id)).toMatchObject({ outcome: 'success', clientId: 'web' });
    const endSession = new URL(web.serverMetadata().end_session_endpoint!);
    endSession.searchParams.set('client_id', 'web');
    const confirm = await ua.follow(endSession);
    await ua.submit(confirm.page, { id: 'op.logoutForm' }, { logout: 'yes' });
    const signouts = await sp.audit.query({ type: 'signout', limit: 5 });
    expect(signouts.events[0]).toMatchObject({ type: 'signout', actor: { accountId: alice.id } });
    const all = JSON.stringify((await sp.audit.query({ limit: 500 })).events);
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('not-the-password-xyz');
  });

  describe('bad input', () => {
    it('wrong password: only "invalid username or password", for unknown users too', async () => {
      for (const username of ['bob', 'nobody-at-all']) {
        const ua = new UserAgent();
        const url = await pkceAuthorizationUrl(web, `${rp.origin}/callback`);
        const { page } = await ua.follow(url);
        const failed = await ua.submit(page, { action: /\/login$/ }, { username, password: 'wrong password!' });
        expect(failed.page.status).toBe(401);
        expect(failed.page.body).toContain('Invalid username or password.');
        expect(failed.page.body).not.toMatch(/not found|unknown user|does not exist/i);
      }
    });

    it('locks a username after repeated failures, even for the right password, and keeps the message generic', async () => {
      const ua = new UserAgent();
      const url = await pkceAuthorizationUrl(web, `${rp.origin}/callback`);
      let { page } = await ua.follow(url);
      for (let i = 0; i < 3; i++) {
        ({ page } = await ua.submit(page, { action: /\/login$/ }, { username: 'bob', password: `wrong-${i}-password` }));
      }
      expect(page.body).toContain('Too many failed sign-in attempts');
      const locked = await ua.submit(page, { action: /\/login$/ }, { username: 'bob', password: PASSWORD });
      expect(locked.page.status).toBe(401);
      expect(locked.page.body).toContain('Too many failed sign-in attempts');
      const failures = await sp.store.get(sp.keys.loginFailures('bob'));
      expect(Number(failures)).toBeGreaterThanOrEqual(3);
      expect(await sp.store.ttl(sp.keys.loginFailures('bob'))).toBeGreaterThan(0);
    });

    it('unknown client: an error page, no redirect', async () => {
      const url = new URL(web.serverMetadata().authorization_endpoint!);
      url.search = new URLSearchParams({ client_id: 'no-such-client', response_type: 'code', scope: 'openid', redirect_uri: `${rp.origin}/callback` }).toString();
      const page = await new UserAgent().request(url);
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
      expect(page.body).toContain('invalid_client');
      expect(page.body).not.toMatch(/at \w+ \(|node_modules/);
    });

    it('redirect_uri not registered: an error page, never a redirect to it', async () => {
      const url = oidc.buildAuthorizationUrl(web, {
        redirect_uri: 'https://attacker.example/callback',
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const page = await new UserAgent().request(url);
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
      expect(page.body).toContain('invalid_redirect_uri');
    });

    it('public client without PKCE: invalid_request back at the RP', async () => {
      const url = oidc.buildAuthorizationUrl(spa, { redirect_uri: `${rp.origin}/spa/callback`, scope: 'openid', state: 's1' });
      const { stoppedAt } = await new UserAgent().follow(url, { stopAt: [`${rp.origin}/spa/callback`] });
      expect(stoppedAt?.searchParams.get('error')).toBe('invalid_request');
      expect(stoppedAt?.searchParams.get('error_description')).toMatch(/PKCE/);
      expect(stoppedAt?.searchParams.get('state')).toBe('s1');
    });

    it('replayed authorization code: invalid_grant, and the tokens from the first exchange are revoked', async () => {
      const result = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
      const tokens = result.tokens!;
      await oidc.fetchUserInfo(web, tokens.access_token, tokens.claims()!.sub);
      await expect(
        oidc.authorizationCodeGrant(web, result.callback, { pkceCodeVerifier: result.codeVerifier, expectedState: result.state }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(oidc.fetchUserInfo(web, tokens.access_token, tokens.claims()!.sub)).rejects.toMatchObject({ status: 401 });
    });

    it('login form with a missing or tampered CSRF token: 403, nothing signed in', async () => {
      const ua = new UserAgent();
      const url = await pkceAuthorizationUrl(web, `${rp.origin}/callback`);
      const { page } = await ua.follow(url);
      const form = parseForms(page.body).find((f) => f.action.endsWith('/login'))!;
      const action = new URL(form.action, page.url);
      const missing = await ua.request(action, { form: { username: 'alice', password: PASSWORD } });
      expect(missing.status).toBe(403);
      expect(missing.body).toContain('This form has expired or did not come from this site');
      const tampered = await ua.request(action, { form: { ...form.fields, csrf: `${form.fields['csrf']!.slice(0, -2)}AA`, username: 'alice', password: PASSWORD } });
      expect(tampered.status).toBe(403);
      // A token from another browser is useless here.
      const other = new UserAgent();
      const otherPage = await other.follow(url);
      const otherToken = parseForms(otherPage.page.body).find((f) => f.action.endsWith('/login'))!.fields['csrf']!;
      const foreign = await ua.request(action, { form: { csrf: otherToken, username: 'alice', password: PASSWORD } });
      expect(foreign.status).toBe(403);
      // The form still works with its own token.
      const ok = await ua.submit(page, { action: /\/login$/ }, { username: 'alice', password: PASSWORD }, [`${rp.origin}/callback`]);
      expect(ok.stoppedAt?.searchParams.get('code')).toBeTruthy();
    });

    it('malformed token requests get the OAuth error the spec names', async () => {
      const tokenEndpoint = web.serverMetadata().token_endpoint!;
      const basic = `Basic ${Buffer.from(`web:${SECRET}`).toString('base64')}`;
      const post = (body: string, headers: Record<string, string> = {}) =>
        fetch(tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, ...headers }, body });

      const noGrant = await post('code=abc');
      expect(noGrant.status).toBe(400);
      expect(await noGrant.json()).toMatchObject({ error: 'invalid_request' });

      const unsupported = await post('grant_type=password&username=alice&password=x');
      expect(await unsupported.json()).toMatchObject({ error: 'unsupported_grant_type' });

      const badCode = await post(`grant_type=authorization_code&code=not-a-code&redirect_uri=${encodeURIComponent(`${rp.origin}/callback`)}&code_verifier=${'a'.repeat(43)}`);
      expect(badCode.status).toBe(400);
      expect(await badCode.json()).toMatchObject({ error: 'invalid_grant' });

      const badSecret = await post('grant_type=client_credentials', { authorization: `Basic ${Buffer.from('service:wrong').toString('base64')}` });
      expect(badSecret.status).toBe(401);
      expect(await badSecret.json()).toMatchObject({ error: 'invalid_client' });

      const json = await post('{"grant_type":"client_credentials"}', { 'content-type': 'application/json' });
      expect(json.status).toBe(400);
      expect(await json.json()).toMatchObject({ error: 'invalid_request' });
    });

    it('an expired or foreign interaction gives a readable page, not a stack trace', async () => {
      const page = await new UserAgent().request(`${sp.issuer}/interaction/does-not-exist`);
      expect(page.status).toBe(400);
      expect(page.body).toContain('This sign-in page has expired');
      expect(page.body).not.toMatch(/at \w+ \(|node_modules|Error:/);
    });
  });
});
