/**
 * Browser flows at HTTP level, as a person with a fresh browser walks them: the cookie
 * jar and form handling of the test support's UserAgent, PKCE, and a raw token request
 * at the end (the relying party's part). Any unexpected page or status throws, so a
 * flow either completes entirely or counts as one error.
 */
import { createHash, randomBytes } from 'node:crypto';
import { UserAgent, type Page } from '../test/support/user-agent.ts';
import { CLIENTS, PASSWORD, UPSTREAM_PASSWORD, upstreamUsername, username } from './fixtures.ts';

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

type AppClient = { id: string; secret?: string; redirectUri: string };

export class FlowError extends Error {
  override readonly name = 'FlowError';
}

const random = () => randomBytes(32).toString('base64url');

function authorizationUrl(issuer: string, client: AppClient, params: Record<string, string>) {
  const verifier = random();
  const state = random();
  const url = new URL('/auth', issuer);
  url.search = new URLSearchParams({
    client_id: client.id,
    response_type: 'code',
    redirect_uri: client.redirectUri,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    nonce: random(),
    ...params,
  }).toString();
  return { url, verifier, state };
}

async function exchangeCode(issuer: string, client: AppClient, callback: URL, verifier: string, state: string): Promise<TokenSet> {
  if (callback.searchParams.get('state') !== state) throw new FlowError(`state mismatch at ${callback.href}`);
  const code = callback.searchParams.get('code');
  if (!code) throw new FlowError(`no code: ${callback.search}`);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier });
  if (client.secret) headers['authorization'] = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
  else body.set('client_id', client.id);
  const response = await fetch(new URL('/token', issuer), { method: 'POST', headers, body: body.toString() });
  const json = (await response.json()) as TokenSet & { error?: string };
  if (!response.ok || !json.access_token) throw new FlowError(`token endpoint ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

const sameOrigin = (a: string, b: string) => new URL(a).origin === new URL(b).origin;

function unexpected(page: Page): FlowError {
  return new FlowError(`unexpected page ${page.status} ${page.url}: ${page.body.replace(/\s+/g, ' ').slice(0, 300)}`);
}

/**
 * Authorization code + PKCE with a local account: authorize → sign-in page (username,
 * password, and the CSRF field when the page has one) → consent page when one is shown →
 * code → token.
 */
export async function localSignIn(issuer: string, options: { client?: AppClient; user: number; scope?: string; prompt?: string }): Promise<TokenSet> {
  const client = options.client ?? CLIENTS.web;
  const ua = new UserAgent();
  const { url, verifier, state } = authorizationUrl(issuer, client, {
    scope: options.scope ?? 'openid profile email',
    ...(options.prompt ? { prompt: options.prompt } : {}),
  });
  const stopAt = [client.redirectUri];
  let step = await ua.follow(url, { stopAt });
  for (let i = 0; i < 3 && !step.stoppedAt; i++) {
    const body = step.page.body;
    if (step.page.status === 200 && /name="password"/.test(body)) {
      step = await ua.submit(step.page, { action: /\/login$/ }, { username: username(options.user), password: PASSWORD }, stopAt);
    } else if (step.page.status === 200 && /name="decision"/.test(body)) {
      step = await ua.submit(step.page, { action: /\/consent$/ }, { decision: 'allow' }, stopAt);
    } else {
      throw unexpected(step.page);
    }
  }
  if (!step.stoppedAt) throw unexpected(step.page);
  return exchangeCode(issuer, client, step.stoppedAt, verifier, state);
}

/**
 * Federated sign-in through the upstream (idp_hint, password at the upstream), then
 * RP-initiated logout with the ID token as hint: Sallyport's local teardown, the
 * upstream's end_session with the stored upstream id_token, Sallyport's logout callback,
 * and back at the client's post-logout redirect URI with its state.
 */
export async function federatedSignInAndLogout(issuer: string, options: { user: number }): Promise<void> {
  const client = CLIENTS.web;
  const ua = new UserAgent();
  const { url, verifier, state } = authorizationUrl(issuer, client, { scope: 'openid profile email', idp_hint: 'okta' });
  const stopAt = [client.redirectUri];
  let step = await ua.follow(url, { stopAt });
  for (let i = 0; i < 2 && !step.stoppedAt; i++) {
    if (step.page.status === 200 && /<form[^>]*id="login"/.test(step.page.body) && !sameOrigin(step.page.url, issuer)) {
      step = await ua.submit(step.page, { id: 'login' }, { username: upstreamUsername(options.user), password: UPSTREAM_PASSWORD }, stopAt);
    } else {
      throw unexpected(step.page);
    }
  }
  if (!step.stoppedAt) throw unexpected(step.page);
  const tokens = await exchangeCode(issuer, client, step.stoppedAt, verifier, state);
  if (!tokens.id_token) throw new FlowError('no id_token');

  const logoutState = random();
  const endSession = new URL('/session/end', issuer);
  endSession.search = new URLSearchParams({ id_token_hint: tokens.id_token, post_logout_redirect_uri: client.postLogoutRedirectUri, state: logoutState }).toString();
  const logoutStop = [client.postLogoutRedirectUri];
  let out = await ua.follow(endSession, { stopAt: logoutStop });
  let upstreamVisited = false;
  for (let i = 0; i < 4 && !out.stoppedAt; i++) {
    const body = out.page.body;
    if (!sameOrigin(out.page.url, issuer)) upstreamVisited = true;
    // Sallyport's and the upstream's confirmation forms submit themselves (the hint
    // names the session); a browser runs that script, here the form is posted.
    if (out.page.status === 200 && /id="op\.logoutForm"/.test(body)) {
      out = await ua.submit(out.page, { id: 'op.logoutForm' }, { logout: 'yes' }, logoutStop);
    } else if (out.page.status === 200 && /id="upstream-logout"/.test(body)) {
      upstreamVisited = true;
      out = await ua.submit(out.page, { id: 'upstream-logout' }, {}, logoutStop);
    } else {
      throw unexpected(out.page);
    }
  }
  if (!out.stoppedAt) throw unexpected(out.page);
  if (!upstreamVisited) throw new FlowError('logout did not reach the upstream');
  if (out.stoppedAt.searchParams.get('state') !== logoutState) throw new FlowError(`logout returned without the RP's state: ${out.stoppedAt.href}`);
}
