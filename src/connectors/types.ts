/**
 * Connectors: upstream identity providers. A connector knows one provider's protocol
 * (build the authorization URL, exchange the code, validate what comes back, build the
 * logout request) and nothing else: flow state (state, nonce, PKCE verifier) is owned
 * by the server and passed in, and a connector never touches storage or cookies.
 */
import type { IdentityProviderDeclaration } from '../config/schema.ts';

/** Settings after the preset has filled in every default. */
export interface IdpSettings {
  id: string;
  type: string;
  displayName: string;
  enabled: boolean;
  issuer: string;
  endpoints?: { authorization: string; token: string; jwks: string; endSession?: string | undefined } | undefined;
  clientId: string;
  clientSecret?: string | undefined;
  clientAuth: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  privateKeyJwk?: Record<string, unknown> | undefined;
  scopes: string[];
  idTokenAlgs: string[];
  clockSkew: number;
  timeoutMs: number;
  jwksCooldown: number;
  emailDomains: string[];
  claims: { email: string; emailVerified: string; name: string; preferredUsername: string; groups: string };
  groupMappings: Record<string, string[]>;
  passUnmappedGroups: boolean;
  linkByVerifiedEmail: boolean;
  logout: { method: 'redirect' | 'post' | 'none'; params: Array<'id_token_hint' | 'client_id' | 'logout_hint'>; url?: string | undefined };
}

/** What a preset may default. */
export type IdpDefaults = Partial<Omit<IdpSettings, 'claims' | 'logout'>> & {
  claims?: Partial<IdpSettings['claims']>;
  logout?: Partial<IdpSettings['logout']>;
};

export interface AuthorizationRequest {
  redirectUri: string;
  state: string;
  nonce: string;
  codeChallenge: string;
  /** Forward the RP's demand for a fresh sign-in (prompt=login) upstream. */
  prompt?: 'login';
  maxAge?: number;
  loginHint?: string;
}

export interface CodeExchange {
  code: string;
  redirectUri: string;
  codeVerifier: string;
  nonce: string;
  /** The `iss` authorization response parameter (RFC 9207), when the provider sent one. */
  iss?: string | undefined;
}

/** A validated upstream sign-in. */
export interface UpstreamLogin {
  issuer: string;
  sub: string;
  /** Upstream session id (`sid` claim), when the provider issues one. */
  sid?: string | undefined;
  /** The raw id_token, exactly as received: the logout hint later. */
  idToken: string;
  claims: Record<string, unknown>;
  authTime?: number | undefined;
  amr?: string[] | undefined;
  acr?: string | undefined;
}

export interface UpstreamLogoutRequest {
  method: 'GET' | 'POST';
  url: string;
  params: Record<string, string>;
}

export interface Connector {
  readonly settings: IdpSettings;
  authorizationUrl(request: AuthorizationRequest): Promise<URL>;
  exchangeCode(exchange: CodeExchange): Promise<UpstreamLogin>;
  /**
   * The upstream end-session request, or undefined when the provider has none or the
   * IdP is configured not to log out upstream.
   */
  logoutRequest(input: { idToken?: string; sub?: string; postLogoutRedirectUri: string; state: string; loginHint?: string }): Promise<UpstreamLogoutRequest | undefined>;
  /**
   * Validate an OIDC Back-Channel Logout 1.0 logout token from this provider; returns
   * its subject and/or upstream session id and jti.
   */
  verifyLogoutToken(token: string): Promise<{ sub?: string | undefined; sid?: string | undefined; jti: string; exp: number }>;
  /** Fetch and check the discovery document (admin "check" action, readiness). */
  check(): Promise<{ ok: true; metadata: Record<string, unknown> }>;
}

export interface ConnectorDeps {
  fetch: typeof globalThis.fetch;
}

export interface ConnectorType {
  defaults: IdpDefaults;
  create(settings: IdpSettings, deps: ConnectorDeps): Connector;
}

export type { IdentityProviderDeclaration };

/** Upstream failures, told apart for the person (page) and the RP (OAuth error). */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  /** `unavailable`: unreachable, timed out or 5xx. `rejected`: the provider refused. `invalid`: what it sent failed validation. */
  readonly kind: 'unavailable' | 'rejected' | 'invalid';
  readonly idp: string;
  constructor(idp: string, kind: 'unavailable' | 'rejected' | 'invalid', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.idp = idp;
    this.kind = kind;
  }
}
