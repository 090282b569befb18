/**
 * Sign-in through upstream OIDC IdPs (real oidc-provider instances configured like Okta
 * and Keycloak), with openid-client as the RP, on memory and on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { pkceAuthorizationUrl } from './support/rp.ts';
import { decodeJwt } from 'jose';
import { BACKENDS, PASSWORD } from './support/sallyport.ts';
import { federatedSignIn, startFederationEnv, submitLogoutForm, type FederationEnv } from './support/federation-env.ts';
import { UserAgent } from './support/user-agent.ts';

describe.each(BACKENDS)('federated sign-in on %s', (backend) => {
  let env: FederationEnv;

  beforeAll(async () => {
    env = await startFederationEnv({
      backend,
      extraClients: [
        {
          client_id: 'okta-only',
          client_secret: 'okta-only-client-secret-0123456789abcdef',
          redirect_uris: ['http://127.0.0.1:9/okta-only/callback'],
          allowed_idps: ['okta'],
          first_party: true,
        },
      ],
    });
  });
  afterAll(async () => env?.stop());

  async function recordFor(idToken: string) {
    const sid = decodeJwt(idToken)['sid'] as string;
    return env.sp.authRecords.findBySid(sid);
  }

  it('offers both upstream IdPs and the local form on the sign-in page', async () => {
    const url = await pkceAuthorizationUrl(env.web, `${env.rp.origin}/callback`);
    const { page } = await new UserAgent().follow(url);
    expect(page.body).toContain('Sign in with Okta');
    expect(page.body).toContain('Sign in with Keycloak');
    expect(page.body).toContain('Sign in with Okta (manual)');
    expect(page.body).toMatch(/name="password"/);
  });

  it('signs in through the Okta-like upstream by button, provisions the account and keeps the authentication record', async () => {
    const result = await federatedSignIn(env, { idp: 'okta' });
    expect(result.askedUpstreamPassword).toBe(true);
    const claims = result.tokens!.claims()!;
    const user = await env.sp.users.getUser(claims.sub);
    expect(user).toMatchObject({ username: 'okta:olivia', source: 'federation', email: 'olivia@okta.example', emailVerified: true, identities: [{ idp: 'okta', sub: 'okta-olivia-0001' }] });
    // Groups flow through the mappings into our groups claim; unmapped ones are dropped.
    const info = await oidc.fetchUserInfo(env.web, result.tokens!.access_token, claims.sub);
    expect(info['groups']).toEqual(['admins', 'staff']);

    // The record holds the raw upstream id_token and is found through every index.
    const record = (await recordFor(result.tokens!.id_token!))!;
    expect(record).toMatchObject({ idp: 'okta', issuer: env.okta.issuer, sub: 'okta-olivia-0001', accountId: claims.sub });
    const upstreamToken = await env.sp.authRecords.idToken(record);
    expect(decodeJwt(upstreamToken)).toMatchObject({ iss: env.okta.issuer, aud: 'sallyport', sub: 'okta-olivia-0001', sid: record.sid });
    expect(record.clientSids['web']).toBe(claims['sid']);
    expect(await env.sp.authRecords.sessionUidsByUpstreamSid('okta', record.sid!)).toEqual([record.sessionUid]);
    expect(await env.sp.authRecords.sessionUidsByUpstreamSub('okta', 'okta-olivia-0001')).toContain(record.sessionUid);
    // Nothing of it in our cookies.
    const cookies = result.ua.cookies.filter((c) => c.host === new URL(env.sp.issuer).hostname).map((c) => c.value).join(';');
    expect(cookies).not.toContain(upstreamToken.split('.')[1]);
  });

  it('signs in through the Keycloak-like upstream by kc_idp_hint, without showing our page', async () => {
    const result = await federatedSignIn(env, { username: 'kim', params: { kc_idp_hint: 'keycloak' } });
    expect(result.tokens).toBeDefined();
    const user = await env.sp.users.getUser(result.tokens!.claims()!.sub);
    expect(user).toMatchObject({ username: 'keycloak:kim', groups: ['developers'] });
    expect((await recordFor(result.tokens!.id_token!))?.idp).toBe('keycloak');
  });

  it('routes by idp_hint, by UAA\'s login_hint origin and by email domain', async () => {
    for (const params of [{ idp_hint: 'okta' }, { login_hint: '{"origin":"okta"}' }, { login_hint: 'olivia@okta.example' }] as Array<Record<string, string>>) {
      const result = await federatedSignIn(env, { params });
      expect(result.tokens, JSON.stringify(params)).toBeDefined();
      expect((await recordFor(result.tokens!.id_token!))?.idp).toBe('okta');
    }
    const byDomain = await federatedSignIn(env, { username: 'kim', params: { login_hint: 'kim@lab.example' } });
    expect((await recordFor(byDomain.tokens!.id_token!))?.idp).toBe('keycloak');
  });

  it('goes straight to the only IdP a client allows, and ignores hints for others', async () => {
    const client = await env.sp.rp('okta-only', { secret: 'okta-only-client-secret-0123456789abcdef' });
    const result = await federatedSignIn(env, { client, redirectUri: 'http://127.0.0.1:9/okta-only/callback', params: { idp_hint: 'keycloak' } });
    expect(result.askedUpstreamPassword).toBe(true);
    expect(result.callback?.searchParams.get('code')).toBeTruthy();
  });

  it('still signs in local accounts through the form on the same page', async () => {
    const ua = new UserAgent();
    const url = await pkceAuthorizationUrl(env.web, `${env.rp.origin}/callback`);
    const { page } = await ua.follow(url);
    const done = await ua.submit(page, { action: /\/login$/ }, { username: 'alice', password: PASSWORD }, [`${env.rp.origin}/callback`]);
    expect(done.stoppedAt?.searchParams.get('code')).toBeTruthy();
  });

  it('uses upstream SSO on a second sign-in, and forwards prompt=login so the upstream asks again', async () => {
    const first = await federatedSignIn(env, { idp: 'okta' });
    // Our session covers a second RP request: no upstream round trip at all.
    const second = await federatedSignIn(env, { ua: first.ua });
    expect(second.tokens).toBeDefined();
    expect(second.askedUpstreamPassword).toBe(false);
    const before = env.okta.passwordLogins;
    const forced = await federatedSignIn(env, { ua: first.ua, idp: 'okta', params: { prompt: 'login' } });
    expect(forced.askedUpstreamPassword).toBe(true);
    expect(env.okta.passwordLogins).toBe(before + 1);
    expect(forced.tokens!.claims()!.sub).toBe(first.tokens!.claims()!.sub);
  });

  it('forwards max_age so the upstream re-authenticates', async () => {
    const first = await federatedSignIn(env, { idp: 'okta' });
    // Whole seconds on both sides: wait until the sign-in is clearly older than max_age.
    await new Promise((r) => setTimeout(r, 2100));
    const before = env.okta.passwordLogins;
    const again = await federatedSignIn(env, { ua: first.ua, idp: 'okta', params: { max_age: '1' } });
    expect(again.askedUpstreamPassword).toBe(true);
    expect(env.okta.passwordLogins).toBe(before + 1);
    // auth_time (present because max_age was asked) is the fresh upstream sign-in.
    expect(again.tokens!.claims()!.auth_time).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) - 5);
  });

  it('signs in and logs out through an IdP configured with explicit endpoints (no discovery)', async () => {
    const result = await federatedSignIn(env, { idp: 'okta-manual' });
    expect(result.tokens, result.page?.body.slice(0, 300)).toBeDefined();
    const record = (await recordFor(result.tokens!.id_token!))!;
    expect(record.idp).toBe('okta-manual');
    const before = env.okta.endSessionRequests.length;
    const endSession = oidc.buildEndSessionUrl(env.web, { id_token_hint: result.tokens!.id_token!, post_logout_redirect_uri: `${env.rp.origin}/logged-out`, state: 'm' });
    let step = await result.ua.follow(endSession, { stopAt: [`${env.rp.origin}/logged-out`] });
    for (let i = 0; i < 3 && !step.stoppedAt; i++) step = await submitLogoutForm(result.ua, step.page, [`${env.rp.origin}/logged-out`]);
    expect(step.stoppedAt?.searchParams.get('state')).toBe('m');
    expect(env.okta.endSessionRequests.length).toBe(before + 1);
  });

  it('the authentication record outlives the session', async () => {
    const result = await federatedSignIn(env, { idp: 'okta' });
    const record = (await recordFor(result.tokens!.id_token!))!;
    const session = await env.sp.provider.Session.findByUid(record.sessionUid);
    expect(session).toBeDefined();
    const sessionTtl = await env.sp.store.ttl(env.sp.keys.oidcModel('Session', session!.jti));
    const recordTtl = await env.sp.store.ttl(env.sp.keys.authRecord(record.sessionUid));
    expect(recordTtl).toBeGreaterThan(sessionTtl);
    await session!.destroy();
    expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
    expect((await recordFor(result.tokens!.id_token!))?.sessionUid).toBe(record.sessionUid);
  });

  describe('rejected with a clear error', () => {
    for (const [mode, why] of [
      ['nonce-mismatch', 'nonce'],
      ['missing-nonce', 'nonce'],
      ['wrong-issuer', 'iss'],
      ['wrong-audience', 'aud'],
      ['expired', 'expired'],
      ['alg-none', 'algorithm'],
      ['unknown-key', 'key'],
      ['bad-signature', 'signature'],
    ] as const) {
      it(`an upstream id_token with ${mode}`, async () => {
        env.okta.misbehave(mode);
        try {
          const result = await federatedSignIn(env, { idp: 'okta' });
          expect(result.tokens).toBeUndefined();
          expect(result.page?.status).toBe(502);
          expect(result.page?.body).toContain('Sign-in with Okta did not work');
          expect(result.page?.body).toContain('Okta answered with something Sallyport cannot accept');
          expect(result.page?.body).not.toMatch(/at \w+ \(|node_modules|ERR_JW|JWTExpired|JWSSignatureVerificationFailed|JWKSNoMatchingKey|JOSEAlgNotAllowed/);
          void why;
          // The person can go back to the application, which gets a proper OAuth error.
          const back = await result.ua.submit(result.page!, { action: /\/abort$/ }, {}, [`${env.rp.origin}/callback`]);
          expect(back.stoppedAt?.searchParams.get('error')).toBe('access_denied');
        } finally {
          env.okta.misbehave(null);
        }
      });
    }

    it('a tampered or replayed state at the callback', async () => {
      const first = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true });
      const callback = first.callback!;
      expect(callback.pathname).toBe('/federation/okta/callback');
      const tampered = new URL(callback);
      tampered.searchParams.set('state', 'x'.repeat(43));
      const bad = await first.ua.request(tampered);
      expect(bad.status).toBe(400);
      expect(bad.body).toContain('This sign-in attempt has expired or was already completed');
      // The genuine callback still works once, and only once.
      const ok = await first.ua.follow(callback, { stopAt: [`${env.rp.origin}/callback`] });
      expect(ok.stoppedAt?.searchParams.get('code')).toBeTruthy();
      const replay = await first.ua.request(callback);
      expect(replay.status).toBe(400);
    });

    it('a callback planted in another browser', async () => {
      const victim = new UserAgent();
      const attacker = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true });
      const step = await victim.follow(attacker.callback!);
      expect(step.page.status).toBe(400);
      expect(step.page.body).toContain('expired or was opened in another browser');
    });

    it('an upstream that refuses (error=access_denied) reaches the RP as access_denied', async () => {
      const first = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true });
      const denied = new URL(first.callback!);
      denied.searchParams.delete('code');
      denied.searchParams.set('error', 'access_denied');
      const page = await first.ua.follow(denied);
      expect(page.page.status).toBe(502);
      expect(page.page.body).toContain('Okta did not sign you in');
      const back = await first.ua.submit(page.page, { action: /\/abort$/ }, {}, [`${env.rp.origin}/callback`]);
      expect(back.stoppedAt?.searchParams.get('error')).toBe('access_denied');
    });
  });

  it('follows an upstream key rotation without a restart', async () => {
    const before = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    expect(before.tokens).toBeDefined();
    await env.keycloak.rotateKeys();
    const after = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    expect(after.tokens, after.page?.body.slice(0, 400)).toBeDefined();
    const kidBefore = JSON.parse(Buffer.from((await env.sp.authRecords.idToken((await recordFor(before.tokens!.id_token!))!)).split('.')[0]!, 'base64url').toString()).kid;
    const kidAfter = JSON.parse(Buffer.from((await env.sp.authRecords.idToken((await recordFor(after.tokens!.id_token!))!)).split('.')[0]!, 'base64url').toString()).kid;
    expect(kidAfter).not.toBe(kidBefore);
  });

  it('an upstream that is down gives a readable error within the timeout, and the RP gets temporarily_unavailable', async () => {
    const first = await federatedSignIn(env, { idp: 'okta', stopAtUpstreamCallback: true });
    await env.okta.stop();
    try {
      const started = Date.now();
      const step = await first.ua.follow(first.callback!);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(step.page.status).toBe(504);
      expect(step.page.body).toContain('Okta could not be reached');
      const back = await first.ua.submit(step.page, { action: /\/abort$/ }, {}, [`${env.rp.origin}/callback`]);
      expect(back.stoppedAt?.searchParams.get('error')).toBe('temporarily_unavailable');
    } finally {
      await env.okta.start();
    }
  });

  it('applies a changed IdP configuration without a restart', async () => {
    const current = (await env.sp.idpStore.getIdp('keycloak'))!.record;
    await env.sp.idpStore.putIdp({ ...current.declaration, displayName: 'Lab Keycloak' }, 'admin', current.version);
    try {
      const url = await pkceAuthorizationUrl(env.web, `${env.rp.origin}/callback`);
      const { page } = await new UserAgent().follow(url);
      expect(page.body).toContain('Sign in with Lab Keycloak');
    } finally {
      const changed = (await env.sp.idpStore.getIdp('keycloak'))!.record;
      await env.sp.idpStore.putIdp(current.declaration, 'config', changed.version);
    }
  });
});

describe.each(BACKENDS)('account linking on %s', (backend) => {
  let env: FederationEnv;
  afterAll(async () => env?.stop());

  it('links to the local account with the same verified email only when the IdP allows it', async () => {
    env = await startFederationEnv({
      backend,
      idpOverrides: { okta: { linkByVerifiedEmail: true } },
      config: {
        users: [
          { username: 'alice', password: PASSWORD, email: 'alice@example.com', emailVerified: true, name: 'Alice Example', groups: ['local-group'] },
          { username: 'kim-local', password: PASSWORD, email: 'kim@lab.example', emailVerified: true },
        ],
      },
    });
    const alice = await env.sp.users.getUserByUsername('alice');
    const linked = await federatedSignIn(env, { idp: 'okta', username: 'alice' });
    expect(linked.tokens!.claims()!.sub).toBe(alice!.id);
    const after = await env.sp.users.getUser(alice!.id);
    expect(after?.identities).toEqual([{ idp: 'okta', sub: 'okta-alice' }]);
    expect(after?.groups).toEqual(['local-group', 'staff']);

    // Keycloak keeps the default (no linking): a separate account despite the same email.
    const kimLocal = await env.sp.users.getUserByUsername('kim-local');
    const separate = await federatedSignIn(env, { idp: 'keycloak', username: 'kim' });
    expect(separate.tokens!.claims()!.sub).not.toBe(kimLocal!.id);
  });
});
