/**
 * The relying party side of flow tests: openid-client drives the protocol; this module
 * adds what an RP also hosts — a back-channel logout endpoint — and the sign-in walk a
 * person does in between.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { expect } from 'vitest';
import { UserAgent, type Page } from './user-agent.ts';

export interface TestRp {
  origin: string;
  /** logout_token values received at /backchannel-logout. */
  logoutTokens: string[];
  server: Server;
  stop(): Promise<void>;
}

export async function startTestRp(): Promise<TestRp> {
  const logoutTokens: string[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/backchannel-logout') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const token = new URLSearchParams(body).get('logout_token');
        if (token) logoutTokens.push(token);
        res.writeHead(token ? 200 : 400, { 'cache-control': 'no-store' }).end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('rp');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    logoutTokens,
    server,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface SignInOptions {
  redirectUri: string;
  scope?: string;
  username?: string;
  password?: string;
  /** Expect and answer a consent page. */
  consent?: 'allow' | 'deny';
  extraParams?: Record<string, string>;
  ua?: UserAgent;
}

export interface SignInResult {
  ua: UserAgent;
  callback: URL;
  tokens?: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  codeVerifier: string;
  state: string;
  loginPage?: Page;
  consentPage?: Page;
}

/** Walk the authorization code + PKCE flow through the real pages. */
export async function signIn(config: oidc.Configuration, options: SignInOptions): Promise<SignInResult> {
  const ua = options.ua ?? new UserAgent();
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: options.redirectUri,
    scope: options.scope ?? 'openid profile email groups',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    ...options.extraParams,
  });
  const stopAt = [options.redirectUri];
  let step = await ua.follow(url, { stopAt });
  let loginPage: Page | undefined;
  let consentPage: Page | undefined;
  if (!step.stoppedAt && /<h1[^>]*>\s*Sign in/i.test(step.page.body)) {
    loginPage = step.page;
    step = await ua.submit(step.page, { action: /\/login$/ }, { username: options.username ?? 'alice', password: options.password ?? '' }, stopAt);
  }
  if (!step.stoppedAt && options.consent) {
    consentPage = step.page;
    expect(step.page.body).toContain('Allow access?');
    step = await ua.submit(step.page, { action: /\/consent$/ }, { decision: options.consent }, stopAt);
  }
  if (!step.stoppedAt) throw new Error(`sign-in did not return to the RP; last page ${step.page.status} ${step.page.url}\n${step.page.body.slice(0, 800)}`);
  const callback = step.stoppedAt;
  const result: SignInResult = { ua, callback, codeVerifier, state, ...(loginPage ? { loginPage } : {}), ...(consentPage ? { consentPage } : {}) };
  if (callback.searchParams.has('code')) {
    result.tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: codeVerifier, expectedState: state });
  }
  return result;
}

/** An authorization URL with a fresh PKCE challenge (for tests that only walk the pages). */
export async function pkceAuthorizationUrl(config: oidc.Configuration, redirectUri: string, params: Record<string, string> = {}): Promise<URL> {
  return oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    ...params,
  });
}
