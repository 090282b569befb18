/**
 * Self-test of the fake upstream OPs (test/support/upstream-op.ts): what federation
 * tests rely on must hold — real code flow with openid-client as the RP, vendor-shaped
 * claims, SSO and forced re-authentication, key rotation, forged ID tokens that a
 * careful RP rejects, vendor-specific logout rules, back-channel logout, and downtime.
 */
import * as oidc from 'openid-client';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRp, type TestRp } from './support/rp.ts';
import { UserAgent, parseForms, type Page } from './support/user-agent.ts';
import { startUpstreamOp, type Misbehaviour, type UpstreamClient, type UpstreamFlavor, type UpstreamOp, type UpstreamUser } from './support/upstream-op.ts';

// --- the person's browser and the RP's back-channel receiver: the shared test support ------

/** The shared user agent, with the call shape this file uses (one stop prefix, a form by id). */
class Browser {
  readonly ua = new UserAgent();
  request(url: string | URL, init?: Parameters<UserAgent['request']>[1]) {
    return this.ua.request(url, init);
  }
  follow(url: string | URL, stopAt?: string, init?: Parameters<UserAgent['request']>[1]) {
    return this.ua.follow(url, { ...(stopAt ? { stopAt: [stopAt] } : {}), ...(init ? { init } : {}) });
  }
  submit(page: Page, formId: string, values: Record<string, string>, stopAt?: string) {
    return this.ua.submit(page, { id: formId }, values, stopAt ? [stopAt] : undefined);
  }
}

type Receiver = TestRp;
const startReceiver = startTestRp;

// --- fixtures -------------------------------------------------------------------------------------

const alice: UpstreamUser = {
  username: 'alice',
  password: 'correct horse',
  sub: '00u-alice',
  email: 'alice@example.com',
  email_verified: true,
  name: 'Alice Example',
  groups: ['staff', 'engineering'],
};

const CLIENT_ID = 'sallyport';
const CLIENT_SECRET = 'upstream-client-secret';
const SCOPE = 'openid profile email groups';

let receiver: Receiver;
const redirectUri = () => `${receiver.origin}/callback`;
const postLogoutUri = () => `${receiver.origin}/logged-out`;

function sallyportClient(flavor: UpstreamFlavor): UpstreamClient {
  return {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [redirectUri()],
    post_logout_redirect_uris: [postLogoutUri()],
    backchannel_logout_uri: `${receiver.origin}/backchannel-logout`,
    // Okta's default is client_secret_basic; Keycloak's "Client Id and Secret" takes either.
    token_endpoint_auth_method: flavor === 'okta' ? 'client_secret_basic' : 'client_secret_post',
  };
}

async function discover(op: UpstreamOp): Promise<oidc.Configuration> {
  const auth = op.flavor === 'okta' ? oidc.ClientSecretBasic(CLIENT_SECRET) : undefined; // undefined → client_secret_post
  return oidc.discovery(new URL(op.issuer), CLIENT_ID, { client_secret: CLIENT_SECRET }, auth, { execute: [oidc.allowInsecureRequests] });
}

interface Authorization {
  callback: URL;
  codeVerifier: string;
  state: string;
  nonce: string;
  askedPassword: boolean;
}

/** One authorization request through the browser; signs in with the password when asked. */
async function authorize(config: oidc.Configuration, browser: Browser, extra: Record<string, string> = {}, user = alice): Promise<Authorization> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri(),
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    response_mode: 'query',
    state,
    nonce,
    ...extra,
  });
  let { page, stoppedAt } = await browser.follow(url, redirectUri());
  let askedPassword = false;
  if (!stoppedAt) {
    askedPassword = true;
    ({ page, stoppedAt } = await browser.submit(page, 'login', { username: user.username, password: user.password }, redirectUri()));
  }
  if (!stoppedAt) throw new Error(`authorization did not return to the client: ${page.status} ${page.body.slice(0, 400)}`);
  return { callback: stoppedAt, codeVerifier, state, nonce, askedPassword };
}

async function redeem(config: oidc.Configuration, a: Authorization) {
  return oidc.authorizationCodeGrant(config, a.callback, { pkceCodeVerifier: a.codeVerifier, expectedState: a.state, expectedNonce: a.nonce, idTokenExpected: true });
}

/** The token request without any ID token validation, to look at what the upstream sent. */
async function redeemRaw(config: oidc.Configuration, a: Authorization): Promise<{ id_token: string }> {
  const response = await fetch(config.serverMetadata().token_endpoint!, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: a.callback.searchParams.get('code')!, redirect_uri: redirectUri(), code_verifier: a.codeVerifier }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { id_token: string };
}

/** What a careful RP checks: signature against the published JWKS, iss, aud, exp, nonce. */
async function verifyIdToken(op: UpstreamOp, token: string, nonce: string): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
  const { payload } = await jwtVerify(token, jwks, { issuer: op.issuer, audience: CLIENT_ID, algorithms: ['RS256'] });
  if (payload['nonce'] !== nonce) throw new Error('nonce mismatch');
  return payload;
}

async function publishedJwks(op: UpstreamOp): Promise<{ keys: JWK[] }> {
  const config = await discover(op);
  return (await (await fetch(config.serverMetadata().jwks_uri!)).json()) as { keys: JWK[] };
}

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver.stop();
});

describe.each(['okta', 'keycloak'] as const)('%s upstream', (flavor) => {
  let op: UpstreamOp;
  let config: oidc.Configuration;

  beforeAll(async () => {
    op = await startUpstreamOp({ flavor, clients: [sallyportClient(flavor)], users: [{ ...alice }] });
    config = await discover(op);
  });

  afterAll(async () => {
    await op.close();
  });

  it('serves discovery under the vendor-shaped issuer path', () => {
    const meta = config.serverMetadata();
    expect(op.issuer).toBe(`${op.origin}${flavor === 'okta' ? '/oauth2/default' : '/realms/test'}`);
    expect(meta.issuer).toBe(op.issuer);
    expect(meta.authorization_endpoint).toBe(`${op.issuer}/auth`);
    expect(meta.token_endpoint).toBe(`${op.issuer}/token`);
    expect(meta.end_session_endpoint).toBe(`${op.issuer}/session/end`);
    expect(meta.backchannel_logout_supported).toBe(true);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
  });

  it('signs in with the password, returns a code and ID token claims as the vendor does', async () => {
    const browser = new Browser();
    const before = op.passwordLogins;
    const a = await authorize(config, browser);
    expect(a.askedPassword).toBe(true);
    expect(op.passwordLogins).toBe(before + 1);

    const tokens = await redeem(config, a);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({
      iss: op.issuer,
      aud: CLIENT_ID,
      sub: alice.sub,
      email: alice.email,
      email_verified: true,
      name: alice.name,
      preferred_username: alice.username,
      groups: alice.groups,
      nonce: a.nonce,
    });
    expect(typeof claims['sid']).toBe('string');
    if (flavor === 'keycloak') expect(claims['realm_access']).toEqual({ roles: alice.groups });
    else expect(claims['realm_access']).toBeUndefined();
    await expect(verifyIdToken(op, tokens.id_token!, a.nonce)).resolves.toMatchObject({ sub: alice.sub });

    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, alice.sub);
    expect(userinfo.email).toBe(alice.email);
  });

  it('rejects a wrong password and shows the form again', async () => {
    const browser = new Browser();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri(), scope: SCOPE, code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
    const { page } = await browser.follow(url, redirectUri());
    const before = op.passwordLogins;
    const { page: again, stoppedAt } = await browser.submit(page, 'login', { username: alice.username, password: 'wrong' }, redirectUri());
    expect(stoppedAt).toBeUndefined();
    expect(again.body).toContain('Invalid username or password.');
    expect(parseForms(again.body).some((f) => f.id === 'login')).toBe(true);
    expect(op.passwordLogins).toBe(before);
  });

  it('keeps an SSO session: the second authorization asks for no password; prompt=login does', async () => {
    const browser = new Browser();
    await redeem(config, await authorize(config, browser));
    const before = op.passwordLogins;

    const sso = await authorize(config, browser);
    expect(sso.askedPassword).toBe(false);
    expect(op.passwordLogins).toBe(before);
    const first = (await redeem(config, sso)).claims()!;

    const forced = await authorize(config, browser, { prompt: 'login' });
    expect(forced.askedPassword).toBe(true);
    expect(op.passwordLogins).toBe(before + 1);
    const second = (await redeem(config, forced)).claims()!;
    expect(second.sid).toBe(first.sid); // same upstream session, re-authenticated
    expect(second.auth_time).toBeGreaterThanOrEqual(first.auth_time!);
  });

  it('honours max_age: an older login asks for the password again', async () => {
    const browser = new Browser();
    const first = (await redeem(config, await authorize(config, browser))).claims()!;
    await new Promise((resolve) => setTimeout(resolve, 2100)); // auth_time has one-second resolution
    const before = op.passwordLogins;
    const a = await authorize(config, browser, { max_age: '1' });
    expect(a.askedPassword).toBe(true);
    expect(op.passwordLogins).toBe(before + 1);
    const second = (await oidc.authorizationCodeGrant(config, a.callback, { pkceCodeVerifier: a.codeVerifier, expectedState: a.state, expectedNonce: a.nonce, maxAge: 1, idTokenExpected: true })).claims()!;
    expect(second.auth_time).toBeGreaterThan(first.auth_time!);
  });

  it('rotates its signing key: JWKS publishes only the new kid and new tokens verify against it', async () => {
    const browser = new Browser();
    const old = await redeem(config, await authorize(config, browser));
    const oldKid = decodeProtectedHeader(old.id_token!).kid;
    expect((await publishedJwks(op)).keys.map((k) => k.kid)).toEqual([oldKid]);

    await op.rotateKeys();
    const jwks = await publishedJwks(op);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]!.kid).not.toBe(oldKid);
    expect(jwks.keys[0]!.d).toBeUndefined();

    // Sessions survive the rotation (shared storage): no password this time.
    const a = await authorize(config, browser);
    expect(a.askedPassword).toBe(false);
    const fresh = await redeem(config, a);
    expect(decodeProtectedHeader(fresh.id_token!).kid).toBe(jwks.keys[0]!.kid);
    await expect(jwtVerify(fresh.id_token!, createLocalJWKSet(jwks), { issuer: op.issuer, audience: CLIENT_ID })).resolves.toBeDefined();
    await expect(jwtVerify(old.id_token!, createLocalJWKSet(jwks))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  describe('misbehaving', () => {
    const expectations: Record<Misbehaviour, (payload: JWTPayload, header: Record<string, unknown>, nonce: string, published: string[]) => void> = {
      'wrong-issuer': (p) => expect(p.iss).not.toBe(op.issuer),
      'wrong-audience': (p) => expect(p.aud).not.toBe(CLIENT_ID),
      expired: (p) => expect(p.exp!).toBeLessThan(Date.now() / 1000 - 600),
      'alg-none': (_p, h) => expect(h['alg']).toBe('none'),
      'unknown-key': (_p, h, _n, published) => expect(published).not.toContain(h['kid']),
      'nonce-mismatch': (p, _h, nonce) => expect(p['nonce']).not.toBe(nonce),
      'missing-nonce': (p) => expect(p).not.toHaveProperty('nonce'),
      'bad-signature': (p) => expect(p['groups']).toContain('admins'),
    };

    it.each(Object.keys(expectations) as Misbehaviour[])('%s: the forged ID token fails verification', async (mode) => {
      const browser = new Browser();
      const published = (await publishedJwks(op)).keys.map((k) => k.kid!);
      op.misbehave(mode);
      try {
        const a = await authorize(config, browser);
        const { id_token } = await redeemRaw(config, a);
        await expect(verifyIdToken(op, id_token, a.nonce)).rejects.toThrow();
        expectations[mode](decodeJwt(id_token), decodeProtectedHeader(id_token) as Record<string, unknown>, a.nonce, published);
      } finally {
        op.misbehave(null);
      }
      // Behaving again: the same checks pass.
      const a = await authorize(config, browser);
      const { id_token } = await redeemRaw(config, a);
      await expect(verifyIdToken(op, id_token, a.nonce)).resolves.toMatchObject({ sub: alice.sub });
    });

    it.each(Object.keys(expectations) as Misbehaviour[])('%s: openid-client rejects it once non-repudiation checks are on', async (mode) => {
      const browser = new Browser();
      const careful = await discover(op);
      oidc.enableNonRepudiationChecks(careful);
      op.misbehave(mode);
      try {
        await expect(redeem(careful, await authorize(careful, browser))).rejects.toThrow();
        // By default openid-client does not verify the signature of an ID token that
        // came straight from the token endpoint over TLS (OIDC Core §3.1.3.7 allows
        // that), so a forged signature goes unnoticed: an RP must opt in.
        if (mode === 'unknown-key' || mode === 'bad-signature') {
          await expect(redeem(config, await authorize(config, browser))).resolves.toBeDefined();
        }
      } finally {
        op.misbehave(null);
      }
    });
  });

  it('sends signed back-channel logout tokens, and invalid variants on request', async () => {
    const browser = new Browser();
    const claims = (await redeem(config, await authorize(config, browser))).claims()!;
    const sid = claims['sid'] as string;
    const received = receiver.logoutTokens.length;

    const sent = await op.sendBackchannelLogout({ clientId: CLIENT_ID, sub: alice.sub, sid });
    expect(sent.status).toBe(200);
    expect(receiver.logoutTokens.slice(received)).toEqual([sent.token]);
    const { payload, protectedHeader } = await jwtVerify(sent.token, createRemoteJWKSet(new URL(`${op.issuer}/jwks`)), {
      issuer: op.issuer,
      audience: CLIENT_ID,
      typ: 'logout+jwt',
      maxTokenAge: '2m',
      requiredClaims: ['iat', 'jti', 'events'],
    });
    expect(protectedHeader.typ).toBe('logout+jwt');
    expect(payload).toMatchObject({ sub: alice.sub, sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } });
    expect(payload).not.toHaveProperty('nonce');

    const now = Date.now() / 1000;
    const nonce = decodeJwt((await op.sendBackchannelLogout({ clientId: CLIENT_ID, sid, tamper: 'nonce' })).token);
    expect(nonce).toHaveProperty('nonce');
    const noEvents = decodeJwt((await op.sendBackchannelLogout({ clientId: CLIENT_ID, sid, tamper: 'no-events' })).token);
    expect(noEvents).not.toHaveProperty('events');
    const wrongAud = decodeJwt((await op.sendBackchannelLogout({ clientId: CLIENT_ID, sid, tamper: 'wrong-audience' })).token);
    expect(wrongAud.aud).not.toBe(CLIENT_ID);
    const old = await op.sendBackchannelLogout({ clientId: CLIENT_ID, sid, tamper: 'old-iat' });
    expect(decodeJwt(old.token).iat!).toBeLessThan(now - 3000);
    await expect(jwtVerify(old.token, createRemoteJWKSet(new URL(`${op.issuer}/jwks`)), { maxTokenAge: '5m' })).rejects.toMatchObject({ claim: 'iat' });
    expect(receiver.logoutTokens.length).toBe(received + 5);
  });

  it('goes down on stop() and comes back on the same port with start(), sessions intact', async () => {
    const browser = new Browser();
    await redeem(config, await authorize(config, browser));
    const port = new URL(op.origin).port;

    await op.stop();
    await expect(discover(op)).rejects.toThrow();
    await op.start();
    const again = await discover(op);
    expect(new URL(again.serverMetadata().issuer).port).toBe(port);
    expect((await authorize(again, browser)).askedPassword).toBe(false);
  });
});

describe('okta end_session', () => {
  it('answers 400 without id_token_hint and keeps the session', async () => {
    const op = await startUpstreamOp({ flavor: 'okta', clients: [sallyportClient('okta')], users: [alice] });
    try {
      const config = await discover(op);
      const browser = new Browser();
      await authorize(config, browser);
      // openid-client adds client_id by itself; Okta still insists on the hint.
      const logout = oidc.buildEndSessionUrl(config, { post_logout_redirect_uri: postLogoutUri(), state: 'xyz' });
      const { page } = await browser.follow(logout, receiver.origin);
      expect(page.status).toBe(400);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.body).toContain('id_token_hint');
      expect(op.endSessionRequests).toEqual([
        { method: 'GET', params: { client_id: CLIENT_ID, post_logout_redirect_uri: postLogoutUri(), state: 'xyz' }, at: expect.any(Number) },
      ]);
      expect((await authorize(config, browser)).askedPassword).toBe(false);
    } finally {
      await op.close();
    }
  });

  it('accepts an expired id_token_hint, records it, and really ends the session', async () => {
    const op = await startUpstreamOp({ flavor: 'okta', clients: [sallyportClient('okta')], users: [alice], idTokenTtl: 1 });
    try {
      const config = await discover(op);
      const browser = new Browser();
      const tokens = await redeem(config, await authorize(config, browser));
      const claims = tokens.claims()!;
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect(decodeJwt(tokens.id_token!).exp!).toBeLessThan(Date.now() / 1000);

      const logout = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: postLogoutUri(), state: 'rp-state' });
      const { page } = await browser.follow(logout, receiver.origin);
      expect(page.status).toBe(200);
      expect(page.body).toContain('.submit()'); // auto-submits in a real browser
      const { stoppedAt } = await browser.submit(page, 'op.logoutForm', {}, receiver.origin);
      expect(stoppedAt?.href).toBe(`${postLogoutUri()}?state=rp-state`);

      expect(op.endSessionRequests).toHaveLength(1);
      expect(op.endSessionRequests[0]).toMatchObject({
        method: 'GET',
        params: { id_token_hint: tokens.id_token, post_logout_redirect_uri: postLogoutUri(), state: 'rp-state' },
        idTokenHint: { valid: true, expired: true, sub: alice.sub, sid: claims['sid'], aud: CLIENT_ID },
      });

      const before = op.passwordLogins;
      expect((await authorize(config, browser)).askedPassword).toBe(true);
      expect(op.passwordLogins).toBe(before + 1);
    } finally {
      await op.close();
    }
  });
});

describe('keycloak end_session', () => {
  let op: UpstreamOp;
  let config: oidc.Configuration;

  beforeAll(async () => {
    op = await startUpstreamOp({ flavor: 'keycloak', clients: [sallyportClient('keycloak')], users: [alice] });
    config = await discover(op);
  });

  afterAll(async () => {
    await op.close();
  });

  it('answers 400 to post_logout_redirect_uri without id_token_hint or client_id', async () => {
    const browser = new Browser();
    await authorize(config, browser);
    // Built by hand: openid-client's buildEndSessionUrl always adds client_id.
    const logout = new URL(config.serverMetadata().end_session_endpoint!);
    logout.searchParams.set('post_logout_redirect_uri', postLogoutUri());
    const { page } = await browser.follow(logout, receiver.origin);
    expect(page.status).toBe(400);
    expect(page.body).toContain('Missing parameters: id_token_hint');
    expect((await authorize(config, browser)).askedPassword).toBe(false);
  });

  it('asks for confirmation with client_id only, then logs out and notifies the client back-channel', async () => {
    const browser = new Browser();
    const claims = (await redeem(config, await authorize(config, browser))).claims()!;
    const received = receiver.logoutTokens.length;
    const { page } = await browser.follow(oidc.buildEndSessionUrl(config, { client_id: CLIENT_ID, post_logout_redirect_uri: postLogoutUri(), state: 's1' }), receiver.origin);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Yes, sign me out');
    expect(page.body).not.toContain('.submit()');
    const { stoppedAt } = await browser.submit(page, 'op.logoutForm', { logout: 'yes' }, receiver.origin);
    expect(stoppedAt?.href).toBe(`${postLogoutUri()}?state=s1`);
    expect(op.endSessionRequests.at(-1)).toMatchObject({ method: 'GET', params: { client_id: CLIENT_ID } });
    expect(op.endSessionRequests.at(-1)).not.toHaveProperty('idTokenHint');

    // Keycloak notifies its clients' back-channel logout URLs when a session ends.
    const tokens = receiver.logoutTokens.slice(received);
    expect(tokens).toHaveLength(1);
    expect(decodeJwt(tokens[0]!)).toMatchObject({ iss: op.issuer, aud: CLIENT_ID, sub: alice.sub, sid: claims['sid'] });
    expect((await authorize(config, browser)).askedPassword).toBe(true);
  });

  it('logs out without asking on a POSTed, valid id_token_hint', async () => {
    const browser = new Browser();
    const tokens = await redeem(config, await authorize(config, browser));
    const { page } = await browser.follow(config.serverMetadata().end_session_endpoint!, receiver.origin, {
      method: 'POST',
      form: { id_token_hint: tokens.id_token!, post_logout_redirect_uri: postLogoutUri() },
    });
    expect(page.status).toBe(200);
    expect(page.body).toContain('.submit()');
    const { stoppedAt } = await browser.submit(page, 'op.logoutForm', {}, receiver.origin);
    expect(stoppedAt?.href).toBe(postLogoutUri());
    expect(op.endSessionRequests.at(-1)).toMatchObject({ method: 'POST', idTokenHint: { valid: true, expired: false, sub: alice.sub } });
    expect((await authorize(config, browser)).askedPassword).toBe(true);
  });
});

describe('client authentication', () => {
  it('accepts private_key_jwt for clients registered with it', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'rp-key', alg: 'ES256', use: 'sig' };
    const op = await startUpstreamOp({
      flavor: 'keycloak',
      users: [alice],
      clients: [{ client_id: 'pkjwt', redirect_uris: [redirectUri()], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } }],
    });
    try {
      const config = await oidc.discovery(new URL(op.issuer), 'pkjwt', {}, oidc.PrivateKeyJwt({ key: privateKey, kid: 'rp-key' }), { execute: [oidc.allowInsecureRequests] });
      const browser = new Browser();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri(), scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256' });
      const { page } = await browser.follow(url, redirectUri());
      const { stoppedAt } = await browser.submit(page, 'login', { username: alice.username, password: alice.password }, redirectUri());
      const tokens = await oidc.authorizationCodeGrant(config, stoppedAt!, { pkceCodeVerifier: codeVerifier, idTokenExpected: true });
      expect(tokens.claims()?.sub).toBe(alice.sub);
    } finally {
      await op.close();
    }
  });
});
