/**
 * Abuse limits: the sign-in form per client IP, the token endpoint per client and
 * end_session per client IP answer 429 with Retry-After once over their limit, count in
 * the store (so instances on one Redis share them), and leave everything under the
 * limit working exactly as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { describeRedis, uniquePrefix } from './support/redis.ts';
import { pkceAuthorizationUrl, signIn, startTestRp, type TestRp } from './support/rp.ts';
import { BACKENDS, PASSWORD, SECRET, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { UserAgent } from './support/user-agent.ts';

const LIMITS = {
  rateLimits: {
    login: { limit: 3, window: '1h' },
    token: { limit: 4, window: '1h' },
    endSession: { limit: 2, window: '1h' },
  },
};

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function tokenRequest(sp: RunningSallyport, body: string, headers: Record<string, string> = {}) {
  return fetch(`${sp.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
}

describe.each(BACKENDS)('rate limits on %s', (backend) => {
  let sp: RunningSallyport;
  let rp: TestRp;

  beforeAll(async () => {
    rp = await startTestRp();
    sp = await startSallyport({
      backend,
      rpOrigin: rp.origin,
      config: LIMITS,
      extraClients: [{ client_id: 'other:service', client_secret: SECRET, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }],
    });
  });
  afterAll(async () => {
    await sp?.stop();
    await rp?.stop();
  });

  it('limit token requests per client, however the client authenticates, and leave other clients alone', async () => {
    const service = await sp.rp('service');
    // Under the limit the endpoint works as usual (the body was read and handed on intact).
    expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
    // client_secret_post names the same client in the body: counted together.
    const post = await tokenRequest(sp, `grant_type=client_credentials&client_id=service&client_secret=${SECRET}`);
    expect(post.status).toBe(200);
    // Failed authentication counts too (it is what guessing looks like).
    expect((await tokenRequest(sp, 'grant_type=client_credentials', { authorization: basic('service', 'wrong-secret') })).status).toBe(401);
    expect((await tokenRequest(sp, 'grant_type=client_credentials', { authorization: basic('service', SECRET) })).status).toBe(200);

    const refused = await tokenRequest(sp, 'grant_type=client_credentials', { authorization: basic('service', SECRET) });
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('retry after') });
    // The same client through client_secret_post is refused as well…
    expect((await tokenRequest(sp, `grant_type=client_credentials&client_id=service&client_secret=${SECRET}`)).status).toBe(429);
    // …and openid-client sees a refusal, not a token.
    await expect(oidc.clientCredentialsGrant(service, {})).rejects.toThrow();

    // Another client (with a colon in its id, form-encoded in Basic) is unaffected.
    const other = await tokenRequest(sp, 'grant_type=client_credentials', { authorization: basic('other:service', SECRET) });
    expect(other.status).toBe(200);

    const metrics = await (await fetch(`${sp.issuer}/metrics`)).text();
    expect(metrics).toMatch(/^sallyport_rate_limited_total\{limit="token"\} 3$/m);
  });

  it('limit sign-in form posts per address, before the password is even checked', async () => {
    const web = await sp.rp('web');
    const ua = new UserAgent();
    const attempt = async () => {
      const start = await ua.follow(await pkceAuthorizationUrl(web, `${rp.origin}/callback`), { stopAt: [`${rp.origin}/callback`] });
      return ua.submit(start.page, { action: /\/login$/ }, { username: 'bob', password: 'not his password' }, [`${rp.origin}/callback`]);
    };
    for (let i = 0; i < 3; i++) expect((await attempt()).page.status).toBe(401);
    const refused = await attempt();
    expect(refused.page.status).toBe(429);
    expect(Number(refused.page.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.page.body).toContain('Too many sign-in attempts');
    expect(refused.page.body).not.toMatch(/at \S+ \(/);
    // Even the right password waits: the limit is on the form, not on failures.
    await expect(signIn(web, { redirectUri: `${rp.origin}/callback`, username: 'alice', password: PASSWORD })).rejects.toThrow(/429/);
  });

  it('limit end_session requests per address', async () => {
    const endSession = `${sp.issuer}/session/end`;
    expect((await fetch(endSession)).status).toBe(200);
    expect((await fetch(endSession)).status).toBe(200);
    const refused = await fetch(endSession, { headers: { accept: 'text/html' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await refused.text()).toContain('Too many sign-out requests');
    // The confirmation POST counts under the same limit.
    expect((await fetch(`${endSession}/confirm`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout=yes' })).status).toBe(429);
  });
});

describe('rate limit settings', () => {
  it('turn off one limit with false', async () => {
    const sp = await startSallyport({ backend: 'memory', config: { rateLimits: { token: false, endSession: { limit: 1, window: 60 } } } });
    try {
      const service = await sp.rp('service');
      for (let i = 0; i < 8; i++) await oidc.clientCredentialsGrant(service, {});
      expect((await fetch(`${sp.issuer}/session/end`)).status).toBe(200);
      expect((await fetch(`${sp.issuer}/session/end`)).status).toBe(429);
    } finally {
      await sp.stop();
    }
  });

  it('refuse a malformed rule by its path', async () => {
    await expect(startSallyport({ backend: 'memory', config: { rateLimits: { login: { limit: 0, window: '1m' } } } })).rejects.toThrow(/rateLimits\.login/);
  });
});

describeRedis('rate limits across instances', () => {
  it('are counted once for all instances sharing a Redis', async () => {
    const prefix = uniquePrefix('rate');
    const config = { rateLimits: { token: { limit: 3, window: '1h' } } };
    const [a, b] = await Promise.all([startSallyport({ backend: 'redis', prefix, config }), startSallyport({ backend: 'redis', prefix, config })]);
    try {
      const auth = { authorization: basic('service', SECRET) };
      expect((await tokenRequest(a!, 'grant_type=client_credentials', auth)).status).toBe(200);
      expect((await tokenRequest(b!, 'grant_type=client_credentials', auth)).status).toBe(200);
      expect((await tokenRequest(a!, 'grant_type=client_credentials', auth)).status).toBe(200);
      expect((await tokenRequest(b!, 'grant_type=client_credentials', auth)).status).toBe(429);
      expect((await tokenRequest(a!, 'grant_type=client_credentials', auth)).status).toBe(429);
    } finally {
      await Promise.all([a!.stop(), b!.stop()]);
    }
  });
});
