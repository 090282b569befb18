/**
 * A whole federated setup on loopback: an RP (openid-client plus a back-channel
 * receiver), Sallyport, and two real upstream OPs, one like Okta and one like Keycloak,
 * each with Sallyport registered as a client.
 */
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { expect } from 'vitest';
import { startTestRp, type TestRp } from './rp.ts';
import { PASSWORD, SECRET, freePort, startSallyport, type Backend, type RunningSallyport } from './sallyport.ts';
import { startUpstreamOp, type UpstreamOp } from './upstream-op.ts';
import { UserAgent, parseForms, type Page } from './user-agent.ts';

export const UPSTREAM_PASSWORD = 'upstream password 123';

export interface FederationEnv {
  sp: RunningSallyport;
  rp: TestRp;
  okta: UpstreamOp;
  keycloak: UpstreamOp;
  web: oidc.Configuration;
  stop(): Promise<void>;
}

export interface FederationEnvOptions {
  backend: Backend;
  /** Seconds the upstream id_tokens live (logout tests use a short one to get expired hints). */
  upstreamIdTokenTtl?: number;
  /** Override parts of the IdP declarations, by id. */
  idpOverrides?: Record<string, Record<string, unknown>>;
  /** Extra Sallyport clients. */
  extraClients?: Array<Record<string, unknown>>;
  /** Extra top-level Sallyport config. */
  config?: Record<string, unknown>;
  /** A Redis of the test's own (for tests that break it). */
  redisUrl?: string;
  prefix?: string;
  /** Where Sallyport logs. */
  logger?: Logger;
}

export async function startFederationEnv(options: FederationEnvOptions): Promise<FederationEnv> {
  const rp = await startTestRp();
  const spPort = await freePort();
  const spOrigin = `http://127.0.0.1:${spPort}`;
  const upstreamClient = (idp: string) => ({
    client_id: 'sallyport',
    client_secret: SECRET,
    redirect_uris: [`${spOrigin}/federation/${idp}/callback`, `${spOrigin}/federation/${idp}-manual/callback`],
    post_logout_redirect_uris: [`${spOrigin}/federation/logout-callback`],
    backchannel_logout_uri: `${spOrigin}/federation/${idp}/backchannel-logout`,
  });
  const ttl = options.upstreamIdTokenTtl ? { idTokenTtl: options.upstreamIdTokenTtl } : {};
  const okta = await startUpstreamOp({
    flavor: 'okta',
    clients: [upstreamClient('okta')],
    users: [
      {
        username: 'olivia',
        password: UPSTREAM_PASSWORD,
        sub: 'okta-olivia-0001',
        email: 'olivia@okta.example',
        email_verified: true,
        name: 'Olivia Okta',
        preferred_username: 'olivia',
        groups: ['Everyone', 'okta-admins', 'unmapped-group'],
      },
      { username: 'alice', password: UPSTREAM_PASSWORD, sub: 'okta-alice', email: 'alice@example.com', email_verified: true, name: 'Alice at Okta', groups: ['Everyone'] },
    ],
    ...ttl,
  });
  const keycloak = await startUpstreamOp({
    flavor: 'keycloak',
    clients: [upstreamClient('keycloak')],
    users: [{ username: 'kim', password: UPSTREAM_PASSWORD, sub: 'kc-kim-0001', email: 'kim@lab.example', email_verified: true, name: 'Kim Keycloak', preferred_username: 'kim', groups: ['devs'] }],
    ...ttl,
  });
  const idp = (id: string, type: string, issuer: string, extra: Record<string, unknown>) => ({
    id,
    type,
    displayName: id.startsWith('okta') ? 'Okta' : 'Keycloak',
    issuer,
    clientId: 'sallyport',
    clientSecret: SECRET,
    jwksCooldown: 0,
    timeoutMs: 1500,
    ...extra,
    ...options.idpOverrides?.[id],
  });
  const sp = await startSallyport({
    backend: options.backend,
    port: spPort,
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
    ...(options.prefix ? { prefix: options.prefix } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    rpOrigin: rp.origin,
    config: {
      identityProviders: [
        idp('okta', 'okta', okta.issuer, { emailDomains: ['okta.example'], groupMappings: { Everyone: ['staff'], 'okta-admins': ['admins'] } }),
        // The same Okta-like upstream, configured without discovery: explicit endpoints.
        idp('okta-manual', 'oidc', okta.issuer, {
          displayName: 'Okta (manual)',
          endpoints: { authorization: `${okta.issuer}/auth`, token: `${okta.issuer}/token`, jwks: `${okta.issuer}/jwks` },
          logout: { url: `${okta.issuer}/session/end` },
        }),
        // A Keycloak realm exposes group membership through a client scope with a group
        // mapper; here that scope is called "groups".
        idp('keycloak', 'keycloak', keycloak.issuer, { emailDomains: ['lab.example'], groupMappings: { devs: ['developers'] }, scopes: ['openid', 'profile', 'email', 'groups'] }),
      ],
      ...options.config,
    },
    extraClients: options.extraClients ?? [],
  });
  const web = await sp.rp('web');
  return {
    sp,
    rp,
    okta,
    keycloak,
    web,
    async stop() {
      await sp.stop();
      await okta.close();
      await keycloak.close();
      await rp.stop();
    },
  };
}

export interface FederatedSignIn {
  ua: UserAgent;
  tokens?: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  callback?: URL;
  /** Set when the flow stopped on a page (an error page, say). */
  page?: Page;
  askedUpstreamPassword: boolean;
  codeVerifier: string;
  state: string;
}

/** What a sign-in needs of an environment: Sallyport's public origin, the RP, its client. */
export interface SignInEnv {
  sp: { issuer: string };
  rp: { origin: string };
  web: oidc.Configuration;
}

/**
 * A person signing in to an RP through Sallyport and an upstream: clicks the IdP's
 * button when Sallyport shows its page, types the password when the upstream asks.
 */
export async function federatedSignIn(
  env: SignInEnv,
  opts: { idp?: string; username?: string; ua?: UserAgent; params?: Record<string, string>; client?: oidc.Configuration; redirectUri?: string; stopAtUpstreamCallback?: boolean },
): Promise<FederatedSignIn> {
  const ua = opts.ua ?? new UserAgent();
  const config = opts.client ?? env.web;
  const redirectUri = opts.redirectUri ?? `${env.rp.origin}/callback`;
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email groups',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    ...opts.params,
  });
  const stopAt = [redirectUri, ...(opts.stopAtUpstreamCallback ? [`${env.sp.issuer}/federation/`] : [])];
  let step = await ua.follow(url, { stopAt });
  let askedUpstreamPassword = false;
  for (let i = 0; i < 3 && !step.stoppedAt; i++) {
    const body = step.page.body;
    const button = opts.idp && new RegExp(`href="(/interaction/[^"]+/idp/${opts.idp})"`).exec(body);
    if (button && step.page.url.startsWith(env.sp.issuer)) {
      step = await ua.follow(new URL(button[1]!, env.sp.issuer), { stopAt });
    } else if (/<form[^>]*id="login"/.test(body)) {
      askedUpstreamPassword = true;
      step = await ua.submit(step.page, { id: 'login' }, { username: opts.username ?? 'olivia', password: UPSTREAM_PASSWORD }, stopAt);
    } else {
      break;
    }
  }
  const result: FederatedSignIn = { ua, askedUpstreamPassword, codeVerifier, state };
  if (!step.stoppedAt) return { ...result, page: step.page };
  result.callback = step.stoppedAt;
  if (step.stoppedAt.href.startsWith(redirectUri) && step.stoppedAt.searchParams.has('code')) {
    result.tokens = await oidc.authorizationCodeGrant(config, step.stoppedAt, { pkceCodeVerifier: codeVerifier, expectedState: state });
  }
  return result;
}

/**
 * Submit whatever logout form the current page shows, as a browser running the page's
 * auto-submit script (or a person clicking "Sign out") would: Sallyport's confirmation
 * form, oidc-provider's own self-posting form, or the upstream-logout POST form.
 */
export async function submitLogoutForm(ua: UserAgent, page: Page, stopAt: string[]) {
  if (/id="op\.logoutForm"/.test(page.body)) return ua.submit(page, { id: 'op.logoutForm' }, { logout: 'yes' }, stopAt);
  if (/id="upstream-logout"/.test(page.body)) return ua.submit(page, { id: 'upstream-logout' }, {}, stopAt);
  const selfPosting = /document\.forms\[0\]\.submit\(\)/.test(page.body) && parseForms(page.body).length > 0;
  expect(selfPosting, `no logout form on ${page.url}: ${page.body.slice(0, 300)}`).toBe(true);
  return ua.submit(page, {}, {}, stopAt);
}

export { PASSWORD };
