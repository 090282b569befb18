/**
 * Fake upstream identity providers for federation tests: real oidc-provider instances on
 * loopback that behave like Okta (issuer `<origin>/oauth2/default`) or Keycloak (issuer
 * `<origin>/realms/test`) where Sallyport can tell the difference — claims in the ID
 * token, what the logout endpoint demands, back-channel logout. Tests can also make them
 * misbehave (forged ID tokens), rotate their signing key, and take them down and up again.
 *
 * Everything here is a fake, not a mock: discovery, authorization, token, userinfo, JWKS
 * and end_session are the library's real endpoints; only the login page and the logout
 * gate in front of end_session are ours.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa, { type Context, type Middleware, type Next } from 'koa';
import Router from '@koa/router';
import Provider, {
  errors,
  type Adapter,
  type AdapterPayload,
  type ClientAuthMethod,
  type ClientMetadata,
  type Configuration,
  type JWKS,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import {
  compactVerify,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type JWK,
  type JWTPayload,
} from 'jose';

export type UpstreamFlavor = 'okta' | 'keycloak';

export interface UpstreamUser {
  username: string;
  password: string;
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
  groups?: string[];
}

export interface UpstreamClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  backchannel_logout_uri?: string;
  token_endpoint_auth_method?: string;
  jwks?: { keys: object[] };
}

export type Misbehaviour =
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'expired'
  | 'alg-none'
  | 'unknown-key'
  | 'nonce-mismatch'
  | 'missing-nonce'
  | 'bad-signature';

/**
 * How an upstream endpoint can be slow: `hang` sends nothing at all; `trickle` sends
 * the status and headers at once and then no body.
 */
export type Stall = { endpoint: 'token' | 'discovery'; mode: 'hang' | 'trickle' };

export interface EndSessionRecord {
  method: 'GET' | 'POST';
  params: Record<string, string>;
  idTokenHint?: { valid: boolean; expired: boolean; sub?: string; sid?: string; aud?: string };
  at: number;
}

export interface UpstreamOp {
  flavor: UpstreamFlavor;
  /** okta: http://127.0.0.1:<port>/oauth2/default   keycloak: http://127.0.0.1:<port>/realms/test */
  issuer: string;
  /** http://127.0.0.1:<port> */
  origin: string;
  /** The live user list: tests may push to it or edit entries. */
  users: UpstreamUser[];
  /** Number of successful password logins at this upstream (proves re-authentication happened). */
  passwordLogins: number;
  endSessionRequests: EndSessionRecord[];
  /** Replace the signing key with a new one (new kid); JWKS then publishes only the new key; later ID tokens use it. */
  rotateKeys(): Promise<void>;
  /** Rewrite the id_token of every token response (null: behave again). */
  misbehave(mode: Misbehaviour | null): void;
  /**
   * Make an endpoint stall (null: answer again). Stalled requests are held until
   * stall(null), stop() or close(), then answered 503 (or cut off).
   */
  stall(stall: Stall | null): void;
  /** Requests currently held by stall(). */
  readonly stalledRequests: number;
  /**
   * Sign a logout token with the current key and POST it to that client's
   * backchannel_logout_uri; returns the response status and the token (for replays).
   */
  sendBackchannelLogout(opts: {
    clientId: string;
    sub?: string;
    sid?: string;
    tamper?: 'nonce' | 'no-events' | 'wrong-audience' | 'old-iat';
  }): Promise<{ status: number; token: string }>;
  /** Close the listener (the upstream is down); the port is kept for start(). */
  stop(): Promise<void>;
  /** Listen again on the same port (after stop). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface StartUpstreamOpOptions {
  flavor: UpstreamFlavor;
  clients: UpstreamClient[];
  users: UpstreamUser[];
  /** ttl.IdToken in seconds (default 300). */
  idTokenTtl?: number;
  /** Listening port on 127.0.0.1 (default: any free port). */
  port?: number;
}

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const SIGNING_ALG = 'RS256'; // what Okta and Keycloak sign ID tokens with by default

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  privateJwk: JWK;
  publicJwk: JWK;
}

interface Current {
  provider: Provider;
  key: SigningKey;
  run: Middleware;
}

export async function startUpstreamOp(options: StartUpstreamOpOptions): Promise<UpstreamOp> {
  const { flavor, clients } = options;
  const users = options.users;
  const idTokenTtl = options.idTokenTtl ?? 300;
  const issuerPath = flavor === 'okta' ? '/oauth2/default' : '/realms/test';

  // The issuer carries the port, so the port is taken before the provider is built.
  const listener = createListener();
  const port = await listener.listen(options.port ?? 0);
  const origin = `http://127.0.0.1:${port}`;
  const issuer = `${origin}${issuerPath}`;

  // One key list for the Koa app and every provider generation: some provider cookies are
  // signed through the parent app's context, others through the provider's own
  // (notes §1.3), and sessions must survive rotateKeys().
  const cookieKeys = [randomBytes(32).toString('base64url')];
  // Browsers scope cookies by host, not port: two upstreams on 127.0.0.1 (and Sallyport
  // itself) would overwrite each other's `_session` cookie. The port keeps them apart.
  const cookieNames = {
    session: `up${port}_session`,
    interaction: `up${port}_interaction`,
    resume: `up${port}_interaction_resume`,
  };
  const storage = createMemoryAdapterFactory();
  let misbehaviour: Misbehaviour | null = null;
  let stalling: Stall | null = null;
  const held = new Set<() => void>();
  const releaseHeld = () => {
    for (const release of [...held]) release();
  };

  const op: UpstreamOp = {
    flavor,
    issuer,
    origin,
    users,
    passwordLogins: 0,
    endSessionRequests: [],
    rotateKeys,
    misbehave(mode) {
      misbehaviour = mode;
    },
    sendBackchannelLogout,
    stall(next) {
      stalling = next;
      if (!next) releaseHeld();
    },
    get stalledRequests() {
      return held.size;
    },
    stop: () => {
      releaseHeld();
      return listener.close();
    },
    start: async () => {
      await listener.listen(port);
    },
    close: () => {
      stalling = null;
      releaseHeld();
      return listener.close();
    },
  };

  async function buildGeneration(key: SigningKey): Promise<Current> {
    const provider = new Provider(issuer, providerConfiguration({
      flavor,
      issuerPath,
      clients,
      users,
      idTokenTtl,
      key,
      cookieKeys,
      cookieNames,
      adapter: storage,
    }));
    // Keycloak puts `sid` in every ID token; oidc-provider only does so for clients
    // registered with backchannel_logout_session_required. Sallyport matches inbound
    // logout tokens by `sid`, so both flavors include it for every client (whether a
    // given Okta org does is a matter of its configuration; not verified here).
    provider.Client.prototype.includeSid = () => true;
    provider.use(async (ctx, next) => {
      await next();
      const oidc = (ctx as unknown as KoaContextWithOIDC).oidc as KoaContextWithOIDC['oidc'] | undefined;
      if (!misbehaviour || oidc?.route !== 'token' || ctx.status !== 200) return;
      const body = ctx.body as Record<string, unknown> | undefined;
      if (typeof body?.['id_token'] !== 'string') return;
      ctx.body = { ...body, id_token: await forgeIdToken(body['id_token'], misbehaviour, current.key) };
    });
    return { provider, key, run: mount(issuerPath, provider) };
  }

  let current = await buildGeneration(await createSigningKey());

  async function rotateKeys(): Promise<void> {
    // oidc-provider fixes its keystore at construction, so a rotation is a new Provider
    // with the same issuer, clients, users and storage (sessions and grants survive).
    current = await buildGeneration(await createSigningKey());
  }

  async function forgeIdToken(idToken: string, mode: Misbehaviour, key: SigningKey): Promise<string> {
    const header = decodeProtectedHeader(idToken);
    const claims = decodeJwt(idToken);
    const now = Math.floor(Date.now() / 1000);
    const sign = (payload: JWTPayload, with_: SigningKey = key) =>
      new SignJWT(payload).setProtectedHeader({ ...header, alg: SIGNING_ALG, kid: with_.kid }).sign(with_.privateKey);
    switch (mode) {
      case 'wrong-issuer':
        // Another tenant of the same vendor: same host, different issuer.
        return sign({ ...claims, iss: flavor === 'okta' ? `${origin}/oauth2/other` : `${origin}/realms/other` });
      case 'wrong-audience':
        return sign({ ...claims, aud: 'some-other-client' });
      case 'expired': {
        // An hour old: far beyond any sane clock skew allowance.
        const iat = now - 7200;
        const authTime = typeof claims['auth_time'] === 'number' ? Math.min(claims['auth_time'], iat) : undefined;
        return sign({ ...claims, iat, exp: now - 3600, ...(authTime !== undefined ? { auth_time: authTime } : {}) });
      }
      case 'alg-none':
        return new UnsecuredJWT(claims).encode();
      case 'unknown-key':
        return sign(claims, await createSigningKey('unpublished'));
      case 'nonce-mismatch':
        return sign({ ...claims, nonce: `${claims['nonce'] ?? ''}tampered-${randomBytes(4).toString('hex')}` });
      case 'missing-nonce': {
        const { nonce: _dropped, ...rest } = claims;
        return sign(rest);
      }
      case 'bad-signature': {
        // A valid signature over the real claims, then the payload is swapped for one
        // granting an extra group: only signature verification can notice.
        const [h, , s] = (await sign(claims)).split('.');
        const groups = Array.isArray(claims['groups']) ? claims['groups'] : [];
        const altered = Buffer.from(JSON.stringify({ ...claims, groups: [...groups, 'admins'] })).toString('base64url');
        return `${h}.${altered}.${s}`;
      }
    }
  }

  async function sendBackchannelLogout(opts: Parameters<UpstreamOp['sendBackchannelLogout']>[0]): Promise<{ status: number; token: string }> {
    const client = clients.find((c) => c.client_id === opts.clientId);
    if (!client?.backchannel_logout_uri) throw new Error(`client ${opts.clientId} has no backchannel_logout_uri`);
    const now = Math.floor(Date.now() / 1000);
    // OIDC Back-Channel Logout 1.0 §2.4. `exp` stays in the future even for `old-iat`, so
    // a receiver must check the token's age (iat) itself to reject it.
    const payload: JWTPayload = {
      iss: issuer,
      aud: opts.tamper === 'wrong-audience' ? 'some-other-client' : opts.clientId,
      iat: opts.tamper === 'old-iat' ? now - 3600 : now,
      exp: now + 120,
      jti: randomUUID(),
      ...(opts.tamper === 'no-events' ? {} : { events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }),
      ...(opts.tamper === 'nonce' ? { nonce: randomBytes(8).toString('hex') } : {}), // §2.4: a logout token MUST NOT contain a nonce
      ...(opts.sub !== undefined ? { sub: opts.sub } : {}),
      ...(opts.sid !== undefined ? { sid: opts.sid } : {}),
    };
    const { key } = current;
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: 'logout+jwt' })
      .sign(key.privateKey);
    const response = await fetch(client.backchannel_logout_uri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }).toString(),
      redirect: 'manual',
    });
    await response.arrayBuffer();
    return { status: response.status, token };
  }

  // --- the HTTP app -------------------------------------------------------------------
  const app = new Koa();
  app.keys = cookieKeys;
  app.use(notFoundPage);
  app.use(createStaller({
    paths: { token: `${issuerPath}/token`, discovery: `${issuerPath}/.well-known/openid-configuration` },
    current: () => stalling,
    held,
  }));
  app.use(createInteractionRoutes({ issuerPath, users, provider: () => current.provider, onPasswordLogin: () => op.passwordLogins++ }).routes());
  app.use(createEndSessionGate({
    flavor,
    issuer,
    endSessionPath: `${issuerPath}/session/end`,
    records: op.endSessionRequests,
    publicKeys: () => [current.key.publicJwk],
  }));
  app.use((ctx, next) => current.run(ctx, next));
  listener.setHandler(app.callback());

  return op;
}

// --- provider configuration -----------------------------------------------------------

interface ProviderParts {
  flavor: UpstreamFlavor;
  issuerPath: string;
  clients: UpstreamClient[];
  users: UpstreamUser[];
  idTokenTtl: number;
  key: SigningKey;
  cookieKeys: string[];
  cookieNames: { session: string; interaction: string; resume: string };
  adapter: (name: string) => Adapter;
}

function providerConfiguration(parts: ProviderParts): Configuration {
  const { flavor, issuerPath, users, key } = parts;
  return {
    adapter: parts.adapter,
    clients: parts.clients.map(clientMetadata),
    jwks: { keys: [key.privateJwk] },
    cookies: {
      keys: parts.cookieKeys,
      names: parts.cookieNames,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    claims: {
      // Keycloak's default "roles" client scope adds realm_access whatever the request
      // asked for, so it rides on `openid`.
      openid: flavor === 'keycloak' ? ['sub', 'realm_access'] : ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // Okta (with a groups claim configured) and Keycloak put profile, email and group
    // claims into the ID token itself, not only behind userinfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    findAccount(_ctx, sub) {
      const user = users.find((u) => u.sub === sub);
      if (!user) return undefined;
      return {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          ...(user.email !== undefined ? { email: user.email } : {}),
          ...(user.email_verified !== undefined ? { email_verified: user.email_verified } : {}),
          ...(user.name !== undefined ? { name: user.name } : {}),
          preferred_username: user.preferred_username ?? user.username,
          groups: user.groups ?? [],
          ...(flavor === 'keycloak' ? { realm_access: { roles: user.groups ?? [] } } : {}),
        }),
      };
    },
    interactions: {
      url: (_ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      IdToken: parts.idTokenTtl,
      RefreshToken: 86400,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    clientBasedCORS: () => false,
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource,
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<h1>You are signed out</h1>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? '')}</p>`);
    },
    async fetch(url, init) {
      // oidc-provider ≥ 9.7 refuses special-use addresses (SSRF protection); the relying
      // parties of these tests receive back-channel logout tokens on loopback.
      const target = new URL(url instanceof Request ? url.url : url);
      if (target.hostname === '127.0.0.1' || target.hostname === 'localhost' || target.hostname === '[::1]') {
        delete (init as { dispatcher?: unknown } | undefined)?.dispatcher;
      }
      return globalThis.fetch(url, init);
    },
  };
}

function clientMetadata(client: UpstreamClient): ClientMetadata {
  return {
    client_id: client.client_id,
    ...(client.client_secret !== undefined ? { client_secret: client.client_secret } : {}),
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    // Okta and Keycloak put auth_time in every ID token, not only when max_age is sent.
    require_auth_time: true,
    token_endpoint_auth_method: (client.token_endpoint_auth_method ?? (client.client_secret !== undefined ? 'client_secret_basic' : 'none')) as ClientAuthMethod,
    ...(client.jwks ? { jwks: client.jwks as JWKS } : {}),
    ...(client.backchannel_logout_uri
      ? { backchannel_logout_uri: client.backchannel_logout_uri, backchannel_logout_session_required: true }
      : {}),
  };
}

/**
 * The page between end_session and its confirmation. Okta never asks, and Keycloak
 * (18+) does not ask when the id_token_hint is valid — the library has verified its
 * signature by the time this runs, so the form submits itself. Without a hint (Keycloak
 * with `client_id` only) a person has to confirm.
 */
async function logoutSource(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  const hinted = ctx.oidc.entities.IdTokenHint !== undefined;
  ctx.type = 'html';
  ctx.body = hinted
    ? page('Signing out', `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
<p>Signing you out…</p>
<script>document.getElementById('op.logoutForm').submit()</script>`)
    : page('Sign out', `<h1>Do you want to sign out?</h1>
${form.replace('</form>', '<button type="submit" name="logout" value="yes">Yes, sign me out</button></form>')}`);
}

// --- login and consent ------------------------------------------------------------------

function createInteractionRoutes(deps: {
  issuerPath: string;
  users: UpstreamUser[];
  provider: () => Provider;
  onPasswordLogin: () => void;
}): Router {
  const router = new Router({ prefix: `${deps.issuerPath}/interaction/:uid` });

  async function details(ctx: Context) {
    const interaction = await deps.provider().interactionDetails(ctx.req, ctx.res);
    // The library reads the interaction from its cookie and ignores the path.
    if (interaction.uid !== ctx.params['uid']) throw new errors.SessionNotFound('interaction mismatch');
    return interaction;
  }

  router.get('/', async (ctx) => {
    const interaction = await details(ctx);
    ctx.set('cache-control', 'no-store');
    if (interaction.prompt.name === 'login') {
      const hint = interaction.params['login_hint'];
      ctx.type = 'html';
      ctx.body = loginPage(ctx.path, typeof hint === 'string' ? hint : '');
      return;
    }
    if (interaction.prompt.name === 'consent') {
      // Consent is pre-approved (an admin-consented app in Okta, "Consent required: off"
      // in Keycloak): grant whatever the prompt says is missing, as the official
      // oidc-provider example does.
      const provider = deps.provider();
      const accountId = interaction.session?.accountId;
      const clientId = interaction.params['client_id'];
      if (!accountId || typeof clientId !== 'string') throw new errors.SessionNotFound('no account for consent');
      const grant = (interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
      const missing = interaction.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      ctx.status = 303;
      ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { consent: interaction.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true }));
      return;
    }
    throw new errors.InvalidRequest(`unsupported prompt ${interaction.prompt.name}`);
  });

  router.post('/login', async (ctx) => {
    await details(ctx);
    const form = new URLSearchParams(await readBody(ctx.req));
    const username = form.get('username') ?? '';
    const user = deps.users.find((u) => u.username === username && u.password === form.get('password'));
    ctx.set('cache-control', 'no-store');
    if (!user) {
      // The form again with a message, as a vendor's sign-in page does (no redirect).
      ctx.type = 'html';
      ctx.body = loginPage(ctx.path.replace(/\/login$/, ''), username, 'Invalid username or password.');
      return;
    }
    deps.onPasswordLogin();
    // prompt=login and max_age are enforced by the provider's own policy; finishing
    // the login here records a fresh auth_time.
    ctx.status = 303;
    ctx.redirect(await deps.provider().interactionResult(ctx.req, ctx.res, { login: { accountId: user.sub, amr: ['pwd'] } }, { mergeWithLastSubmission: false }));
  });

  return router;
}

function loginPage(interactionPath: string, username: string, error?: string): string {
  return page('Sign in', `<h1>Sign in</h1>
${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form id="login" method="post" action="${escapeHtml(interactionPath.replace(/\/$/, ''))}/login">
  <label>Username <input type="text" name="username" value="${escapeHtml(username)}" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>`);
}

// --- a slow upstream ---------------------------------------------------------------------

function createStaller(deps: { paths: Record<Stall['endpoint'], string>; current: () => Stall | null; held: Set<() => void> }): Middleware {
  return async (ctx, next) => {
    const stall = deps.current();
    if (!stall || ctx.path !== deps.paths[stall.endpoint]) return next();
    const released = new Promise<void>((resolve) => {
      const release = () => {
        deps.held.delete(release);
        resolve();
      };
      deps.held.add(release);
      // A caller that gives up (its timeout) frees the request too.
      ctx.req.socket.once('close', release);
    });
    if (stall.mode === 'trickle') {
      // Status and headers now, then a body that never completes.
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      ctx.res.write('{"access_token":"');
      await released;
      ctx.res.destroy();
      return;
    }
    await released;
    ctx.status = 503;
    ctx.body = { error: 'temporarily_unavailable' };
  };
}

// --- end_session: what each vendor requires before it logs anyone out -------------------

function createEndSessionGate(deps: {
  flavor: UpstreamFlavor;
  issuer: string;
  endSessionPath: string;
  records: EndSessionRecord[];
  publicKeys: () => JWK[];
}): Middleware {
  return async (ctx, next) => {
    if (ctx.path !== deps.endSessionPath || (ctx.method !== 'GET' && ctx.method !== 'POST')) return next();
    const method = ctx.method;
    let query = ctx.querystring;
    if (method === 'POST') {
      // RP-Initiated Logout 1.0 §2: the OP must accept GET and POST; Okta and Keycloak
      // both do. oidc-provider only routes POST with enableHttpPostMethods, which demands
      // SameSite=None cookies, so the form post is replayed to the library as a GET.
      query = ctx.is('application/x-www-form-urlencoded') ? await readBody(ctx.req) : '';
      delete ctx.req.headers['content-type'];
      delete ctx.req.headers['content-length'];
      ctx.method = 'GET';
      ctx.querystring = query;
    }
    const params = Object.fromEntries(new URLSearchParams(query));
    const record: EndSessionRecord = { method, params, at: Date.now() };
    if (params['id_token_hint']) record.idTokenHint = await inspectHint(params['id_token_hint'], deps.issuer, deps.publicKeys());
    deps.records.push(record);

    if (deps.flavor === 'okta' && !params['id_token_hint']) {
      // Okta's /v1/logout requires id_token_hint and answers 400 without it, leaving the
      // session in place (the cause of keycloak#10164 and uaa#3037).
      return badRequest(ctx, "The 'id_token_hint' parameter is required.");
    }
    if (deps.flavor === 'keycloak' && params['post_logout_redirect_uri'] && !params['id_token_hint'] && !params['client_id']) {
      // Keycloak 18+: a post_logout_redirect_uri needs id_token_hint or client_id.
      return badRequest(ctx, 'Missing parameters: id_token_hint');
    }
    // Okta accepts an expired id_token_hint (RP-Initiated Logout 1.0 §2: the OP SHOULD);
    // so does the library, which verifies the hint but ignores exp.
    return next();
  };
}

async function inspectHint(hint: string, issuer: string, keys: JWK[]): Promise<NonNullable<EndSessionRecord['idTokenHint']>> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(hint);
  } catch {
    return { valid: false, expired: false };
  }
  const now = Math.floor(Date.now() / 1000);
  const expired = typeof claims.exp === 'number' && claims.exp <= now;
  let valid = false;
  try {
    // Signature and issuer only: expiry is recorded, not enforced.
    await compactVerify(hint, createLocalJWKSet({ keys }), { algorithms: [SIGNING_ALG] });
    valid = claims.iss === issuer;
  } catch {
    valid = false;
  }
  const aud = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
  return {
    valid,
    expired,
    ...(typeof claims.sub === 'string' ? { sub: claims.sub } : {}),
    ...(typeof claims['sid'] === 'string' ? { sid: claims['sid'] } : {}),
    ...(aud !== undefined ? { aud } : {}),
  };
}

function badRequest(ctx: Context, message: string): void {
  ctx.status = 400;
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  ctx.body = page('Bad request', `<h1>Bad request</h1><p id="error">${escapeHtml(message)}</p>`);
}

// --- plumbing -------------------------------------------------------------------------------

/**
 * Runs the provider's middleware under `prefix` in this app's context (what koa-mount
 * does; it is not a dependency). The provider finds the prefix through ctx.mountPath
 * when it builds URLs (oidc_context.js urlFor).
 */
function mount(prefix: string, provider: Provider): Middleware {
  const run = compose(provider.middleware);
  return async (ctx, next) => {
    const original = ctx.path;
    if (original !== prefix && !original.startsWith(`${prefix}/`)) return next();
    const inner = original.slice(prefix.length) || '/';
    ctx.mountPath = prefix;
    ctx.path = inner;
    try {
      await run(ctx, async () => {
        ctx.path = original;
        await next();
        ctx.path = inner;
      });
    } finally {
      ctx.path = original;
    }
  };
}

function compose(middleware: Middleware[]): (ctx: Context, next: Next) => Promise<void> {
  return (ctx, next) => {
    let last = -1;
    const dispatch = async (i: number): Promise<void> => {
      if (i <= last) throw new Error('next() called multiple times');
      last = i;
      const fn = i === middleware.length ? next : middleware[i];
      if (fn) await fn(ctx, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

async function notFoundPage(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.status === 404 && ctx.body === undefined) {
    ctx.type = 'html';
    ctx.body = page('Not found', '<h1>Not found</h1>');
    ctx.status = 404;
  }
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new errors.InvalidRequest('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function createSigningKey(prefix = 'key'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const kid = `${prefix}-${randomBytes(6).toString('hex')}`;
  const meta = { kid, alg: SIGNING_ALG, use: 'sig' };
  return {
    kid,
    privateKey,
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...(await exportJWK(publicKey)), ...meta },
  };
}

/** A restartable HTTP listener: stop() frees the socket, listen() takes the same port again. */
function createListener() {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let server: Server | undefined;
  return {
    setHandler(fn: NonNullable<typeof handler>) {
      handler = fn;
    },
    async listen(port: number): Promise<number> {
      if (server) return (server.address() as AddressInfo).port;
      const next = createServer((req, res) => {
        if (handler) return handler(req, res);
        res.writeHead(503).end();
      });
      await new Promise<void>((resolve, reject) => {
        next.once('error', reject);
        next.listen(port, '127.0.0.1', () => {
          next.off('error', reject);
          resolve();
        });
      });
      server = next;
      return (next.address() as AddressInfo).port;
    },
    async close(): Promise<void> {
      const closing = server;
      server = undefined;
      if (!closing) return;
      await new Promise<void>((resolve) => {
        closing.close(() => resolve());
        // Keep-alive sockets would otherwise keep answering as if the upstream were up.
        closing.closeAllConnections();
      });
    },
  };
}

/**
 * A Map-backed adapter shared by every provider generation of one upstream, so that
 * sessions, grants and codes survive rotateKeys(). Expired entries read as absent.
 */
function createMemoryAdapterFactory(): (name: string) => Adapter {
  const entries = new Map<string, { payload: AdapterPayload; expiresAt?: number }>();
  const sessionsByUid = new Map<string, string>();
  const byUserCode = new Map<string, string>();
  const grantMembers = new Map<string, Set<string>>();
  const adapters = new Map<string, Adapter>();

  const read = (key: string): AdapterPayload | undefined => {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return structuredClone(entry.payload);
  };

  return (name: string) => {
    let adapter = adapters.get(name);
    if (adapter) return adapter;
    const keyOf = (id: string) => `${name}:${id}`;
    adapter = {
      async upsert(id, payload, expiresIn) {
        const key = keyOf(id);
        // Like the library's memory adapter: keep entries a little past exp so "expired"
        // is reported rather than "not found".
        entries.set(key, { payload: structuredClone(payload), ...(expiresIn ? { expiresAt: Date.now() + (expiresIn + 60) * 1000 } : {}) });
        if (name === 'Session' && payload.uid) sessionsByUid.set(payload.uid, id);
        if (payload.userCode) byUserCode.set(payload.userCode, id);
        if (payload.grantId) {
          const members = grantMembers.get(payload.grantId) ?? new Set<string>();
          members.add(key);
          grantMembers.set(payload.grantId, members);
        }
      },
      async find(id) {
        return read(keyOf(id));
      },
      async findByUid(uid) {
        const id = sessionsByUid.get(uid);
        return id === undefined ? undefined : read(keyOf(id));
      },
      async findByUserCode(userCode) {
        const id = byUserCode.get(userCode);
        return id === undefined ? undefined : read(keyOf(id));
      },
      async consume(id) {
        const entry = entries.get(keyOf(id));
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        entries.delete(keyOf(id));
      },
      async revokeByGrantId(grantId) {
        for (const key of grantMembers.get(grantId) ?? []) entries.delete(key);
        grantMembers.delete(grantId);
      },
    };
    adapters.set(name, adapter);
    return adapter;
  };
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
