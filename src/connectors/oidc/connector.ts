/**
 * Generic OpenID Connect connector: discovery (or explicit endpoints), authorization
 * code + PKCE S256 with response_mode=query, client_secret_basic/_post or
 * private_key_jwt, and strict id_token validation with jose. Presets (okta, keycloak)
 * are this connector with different defaults.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, customFetch, errors as joseErrors, importJWK, jwtVerify, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { Connector, ConnectorDeps, ConnectorType, IdpSettings, UpstreamLogin, UpstreamLogoutRequest } from '../types.ts';
import { UpstreamError } from '../types.ts';

/** OIDC Discovery 1.0 §3: the fields we rely on. Unknown fields are ignored. */
const discoverySchema = z.looseObject({
  issuer: z.string(),
  authorization_endpoint: z.url(),
  token_endpoint: z.url(),
  jwks_uri: z.url(),
  end_session_endpoint: z.url().optional(),
  code_challenge_methods_supported: z.array(z.string()).optional(),
});

const tokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string(),
  id_token: z.string().min(1, 'the provider returned no id_token'),
});

const tokenErrorSchema = z.looseObject({ error: z.string(), error_description: z.string().optional() });

interface Endpoints {
  authorization: string;
  token: string;
  jwks: string;
  endSession?: string | undefined;
}

/** Discovery documents are cached this long (they change rarely; a restart is not needed to pick up a change). */
const DISCOVERY_TTL_MS = 60 * 60 * 1000;

export function createOidcConnector(settings: IdpSettings, deps: ConnectorDeps): Connector {
  const fail = (kind: 'unavailable' | 'rejected' | 'invalid', message: string, cause?: unknown) =>
    new UpstreamError(settings.id, kind, message, cause === undefined ? undefined : { cause });

  let discovery: { at: number; endpoints: Endpoints; metadata: Record<string, unknown> } | undefined;
  let jwks: { uri: string; set: ReturnType<typeof createRemoteJWKSet> } | undefined;

  async function request(url: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await deps.fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(settings.timeoutMs) });
    } catch (err) {
      throw fail('unavailable', `${settings.displayName} did not answer within ${settings.timeoutMs} ms`, err);
    }
  }

  /**
   * The whole body. The timeout of `request` covers it too; a body that stops arriving
   * (timeout, connection cut) means the provider is unavailable, not that its answer
   * is invalid.
   */
  async function readBody(response: Response, what: string): Promise<string> {
    try {
      return await response.text();
    } catch (err) {
      throw fail('unavailable', `${what}: the answer broke off or did not finish within ${settings.timeoutMs} ms`, err);
    }
  }

  async function fetchDiscovery(): Promise<{ endpoints: Endpoints; metadata: Record<string, unknown> }> {
    const url = `${settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await request(url, { headers: { accept: 'application/json' } });
    if (!response.ok) throw fail(response.status >= 500 ? 'unavailable' : 'invalid', `discovery at ${url} answered HTTP ${response.status}`);
    const text = await readBody(response, `discovery at ${url}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw fail('invalid', `discovery at ${url} is not JSON`, err);
    }
    const parsed = discoverySchema.safeParse(body);
    if (!parsed.success) {
      throw fail('invalid', `discovery at ${url} is missing ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
    }
    // OIDC Discovery §4.3: the issuer in the document must be exactly the one configured.
    if (parsed.data.issuer !== settings.issuer) {
      throw fail('invalid', `discovery issuer "${parsed.data.issuer}" does not match the configured issuer "${settings.issuer}"`);
    }
    if (parsed.data.code_challenge_methods_supported && !parsed.data.code_challenge_methods_supported.includes('S256')) {
      throw fail('invalid', 'the provider does not support PKCE S256');
    }
    return {
      metadata: parsed.data,
      endpoints: {
        authorization: parsed.data.authorization_endpoint,
        token: parsed.data.token_endpoint,
        jwks: parsed.data.jwks_uri,
        endSession: settings.logout.url ?? parsed.data.end_session_endpoint,
      },
    };
  }

  async function endpoints(): Promise<Endpoints> {
    if (settings.endpoints) return { ...settings.endpoints, endSession: settings.logout.url ?? settings.endpoints.endSession };
    if (!discovery || Date.now() - discovery.at > DISCOVERY_TTL_MS) {
      discovery = { at: Date.now(), ...(await fetchDiscovery()) };
    }
    return discovery.endpoints;
  }

  function keySet(uri: string) {
    if (!jwks || jwks.uri !== uri) {
      jwks = {
        uri,
        // jose refetches the JWKS when a token names a kid it does not have (key
        // rotation), at most once per cooldown, with a bounded timeout.
        set: createRemoteJWKSet(new URL(uri), {
          timeoutDuration: settings.timeoutMs,
          cooldownDuration: settings.jwksCooldown * 1000,
          cacheMaxAge: 10 * 60 * 1000,
          [customFetch]: deps.fetch,
        }),
      };
    }
    return jwks.set;
  }

  async function clientAuthentication(tokenEndpoint: string): Promise<{ headers: Record<string, string>; body: Record<string, string> }> {
    switch (settings.clientAuth) {
      case 'client_secret_basic': {
        // RFC 6749 §2.3.1: form-encode id and secret before base64.
        const id = encodeURIComponent(settings.clientId);
        const secret = encodeURIComponent(settings.clientSecret ?? '');
        return { headers: { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` }, body: {} };
      }
      case 'client_secret_post':
        return { headers: {}, body: { client_id: settings.clientId, client_secret: settings.clientSecret ?? '' } };
      case 'private_key_jwt': {
        const jwk = settings.privateKeyJwk!;
        const alg = String(jwk['alg'] ?? 'RS256');
        const key = await importJWK(jwk as Parameters<typeof importJWK>[0], alg);
        // RFC 7523 §3: iss = sub = client_id, aud = the token endpoint, short-lived, unique jti.
        const assertion = await new SignJWT({})
          .setProtectedHeader({ alg, ...(jwk['kid'] ? { kid: String(jwk['kid']) } : {}) })
          .setIssuer(settings.clientId)
          .setSubject(settings.clientId)
          .setAudience(tokenEndpoint)
          .setJti(randomUUID())
          .setIssuedAt()
          .setExpirationTime('60s')
          .sign(key);
        return {
          headers: {},
          body: {
            client_id: settings.clientId,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: assertion,
          },
        };
      }
    }
  }

  async function validateIdToken(idToken: string, nonce: string, jwksUri: string): Promise<JWTPayload> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, keySet(jwksUri), {
        issuer: settings.issuer,
        audience: settings.clientId,
        algorithms: settings.idTokenAlgs,
        clockTolerance: settings.clockSkew,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout) throw fail('unavailable', 'the provider\'s signing keys could not be fetched in time', err);
      throw fail('invalid', `the id_token was rejected: ${describeJoseError(err)}`, err);
    }
    // OIDC Core §3.1.3.7.
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat !== 'number' || payload.iat > now + settings.clockSkew) throw fail('invalid', 'the id_token was issued in the future');
    if (payload['nonce'] !== nonce) throw fail('invalid', 'the id_token nonce does not match this sign-in');
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if ((audiences.length > 1 || payload['azp'] !== undefined) && payload['azp'] !== settings.clientId) {
      throw fail('invalid', 'the id_token azp is not this client');
    }
    return payload;
  }

  return {
    settings,

    async authorizationUrl(req) {
      const url = new URL((await endpoints()).authorization);
      const params: Record<string, string> = {
        response_type: 'code',
        response_mode: 'query',
        client_id: settings.clientId,
        redirect_uri: req.redirectUri,
        scope: settings.scopes.join(' '),
        state: req.state,
        nonce: req.nonce,
        code_challenge: req.codeChallenge,
        code_challenge_method: 'S256',
      };
      // Without these, upstream SSO would silently satisfy an RP that demanded a
      // fresh sign-in.
      if (req.prompt) params['prompt'] = req.prompt;
      if (req.maxAge !== undefined) params['max_age'] = String(req.maxAge);
      if (req.loginHint) params['login_hint'] = req.loginHint;
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      return url;
    },

    async exchangeCode(exchange): Promise<UpstreamLogin> {
      // RFC 9207: a provider that names itself in the response must name the right one
      // (mix-up attack defence).
      if (exchange.iss !== undefined && exchange.iss !== settings.issuer) throw fail('invalid', 'the authorization response came from another issuer');
      const ep = await endpoints();
      const auth = await clientAuthentication(ep.token);
      const response = await request(ep.token, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...auth.headers },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: exchange.code,
          redirect_uri: exchange.redirectUri,
          code_verifier: exchange.codeVerifier,
          ...auth.body,
        }),
      });
      const text = await readBody(response, 'the token endpoint');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw fail(response.status >= 500 ? 'unavailable' : 'invalid', `the token endpoint answered HTTP ${response.status} without JSON`, err);
      }
      if (!response.ok) {
        if (response.status >= 500) throw fail('unavailable', `the token endpoint answered HTTP ${response.status}`);
        const error = tokenErrorSchema.safeParse(body);
        throw fail('rejected', `the token endpoint refused the code: ${error.success ? error.data.error : `HTTP ${response.status}`}`);
      }
      const tokens = tokenResponseSchema.safeParse(body);
      if (!tokens.success) throw fail('invalid', `the token response is invalid: ${tokens.error.issues[0]?.message ?? 'unknown'}`);
      const claims = await validateIdToken(tokens.data.id_token, exchange.nonce, ep.jwks);
      return {
        issuer: settings.issuer,
        sub: claims.sub!,
        sid: typeof claims['sid'] === 'string' ? claims['sid'] : undefined,
        idToken: tokens.data.id_token,
        claims,
        authTime: typeof claims['auth_time'] === 'number' ? claims['auth_time'] : undefined,
        amr: Array.isArray(claims['amr']) ? claims['amr'].filter((v): v is string => typeof v === 'string') : undefined,
        acr: typeof claims['acr'] === 'string' ? claims['acr'] : undefined,
      };
    },

    async logoutRequest(input): Promise<UpstreamLogoutRequest | undefined> {
      if (settings.logout.method === 'none') return undefined;
      const endSession = (await endpoints()).endSession;
      if (!endSession) return undefined;
      const params: Record<string, string> = { post_logout_redirect_uri: input.postLogoutRedirectUri, state: input.state };
      for (const name of settings.logout.params) {
        if (name === 'id_token_hint' && input.idToken) params['id_token_hint'] = input.idToken;
        if (name === 'client_id') params['client_id'] = settings.clientId;
        if (name === 'logout_hint' && (input.loginHint ?? input.sub)) params['logout_hint'] = (input.loginHint ?? input.sub)!;
      }
      return { method: settings.logout.method === 'post' ? 'POST' : 'GET', url: endSession, params };
    },

    async verifyLogoutToken(token) {
      const ep = await endpoints();
      let payload: JWTPayload;
      let header: { typ?: string | undefined };
      try {
        ({ payload, protectedHeader: header } = await jwtVerify(token, keySet(ep.jwks), {
          issuer: settings.issuer,
          audience: settings.clientId,
          algorithms: settings.idTokenAlgs,
          clockTolerance: settings.clockSkew,
          requiredClaims: ['iss', 'aud', 'iat', 'jti'],
          // §2.6 step 7: reject tokens issued too long ago.
          maxTokenAge: settings.clockSkew + 120,
        }));
      } catch (err) {
        if (err instanceof joseErrors.JWKSTimeout) throw fail('unavailable', 'the provider\'s signing keys could not be fetched in time', err);
        throw fail('invalid', `the logout token was rejected: ${describeJoseError(err)}`, err);
      }
      // §2.4: explicit typing is recommended; providers that predate it send no typ,
      // but a token typed as something else (an id_token) is never a logout token.
      if (header.typ !== undefined && header.typ.toLowerCase() !== 'logout+jwt' && header.typ.toLowerCase() !== 'application/logout+jwt') {
        throw fail('invalid', 'the logout token has the wrong type');
      }
      const events = payload['events'];
      const event = typeof events === 'object' && events !== null ? (events as Record<string, unknown>)['http://schemas.openid.net/event/backchannel-logout'] : undefined;
      if (typeof event !== 'object' || event === null) throw fail('invalid', 'the logout token has no back-channel logout event');
      // §2.6 step 5: a nonce means someone is replaying an id_token as a logout token.
      if ('nonce' in payload) throw fail('invalid', 'the logout token carries a nonce');
      const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
      const sid = typeof payload['sid'] === 'string' ? payload['sid'] : undefined;
      if (!sub && !sid) throw fail('invalid', 'the logout token names neither sub nor sid');
      return { sub, sid, jti: String(payload.jti), exp: typeof payload.exp === 'number' ? payload.exp : Math.floor(Date.now() / 1000) + 600 };
    },

    async check() {
      if (settings.endpoints) return { ok: true, metadata: { ...settings.endpoints } };
      const result = await fetchDiscovery();
      return { ok: true, metadata: result.metadata };
    },
  };
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'it has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim "${err.claim}" is invalid (${err.reason})`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'its signature algorithm is not allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'it is signed by a key the provider does not publish';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature is invalid';
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return 'it is malformed';
  return err instanceof Error ? err.message : String(err);
}

export const oidcConnectorType: ConnectorType = {
  defaults: {
    scopes: ['openid', 'profile', 'email'],
    clientAuth: 'client_secret_basic',
    idTokenAlgs: ['RS256', 'ES256', 'PS256'],
    clockSkew: 60,
    timeoutMs: 5000,
    jwksCooldown: 30,
    claims: { email: 'email', emailVerified: 'email_verified', name: 'name', preferredUsername: 'preferred_username', groups: 'groups' },
    logout: { method: 'redirect', params: ['id_token_hint'] },
  },
  create: createOidcConnector,
};
