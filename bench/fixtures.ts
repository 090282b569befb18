/**
 * What both servers under test are given: the same clients, the same local users (with
 * one scrypt hash made with Sallyport's parameters), the same kinds of signing keys,
 * and for Sallyport an upstream identity provider. Sallyport gets them as a config file
 * (what an operator writes); the bare provider as a JSON settings file.
 */
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { hashPassword } from '../src/accounts/passwords.ts';

export const PASSWORD = 'bench password 0123';
export const UPSTREAM_PASSWORD = 'upstream bench password 0123';
export const SECRET = 'bench-client-secret-0123456789abcdef0123';
export const UPSTREAM_CLIENT_SECRET = 'bench-upstream-secret-0123456789abcdef01';

/** The relying party is imaginary: flows stop at its redirect URIs without calling them. */
export const RP_ORIGIN = 'http://127.0.0.1:9';

export const CLIENTS = {
  /** Service calling an API: client_credentials, client_secret_basic. */
  service: { id: 'bench-service', secret: SECRET },
  /** Confidential first-party web app: code + PKCE, no consent page. */
  web: { id: 'bench-web', secret: SECRET, redirectUri: `${RP_ORIGIN}/web/callback`, postLogoutRedirectUri: `${RP_ORIGIN}/web/logged-out` },
  /** Third-party single-page app: public client, consent page, rotated refresh tokens. */
  spa: { id: 'bench-spa', redirectUri: `${RP_ORIGIN}/spa/callback` },
} as const;

/** Client metadata as both servers receive it (Sallyport also reads `first_party`). */
export function clientDeclarations(): Array<Record<string, unknown>> {
  return [
    {
      client_id: CLIENTS.service.id,
      client_secret: CLIENTS.service.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: CLIENTS.web.id,
      client_secret: CLIENTS.web.secret,
      redirect_uris: [CLIENTS.web.redirectUri],
      post_logout_redirect_uris: [CLIENTS.web.postLogoutRedirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      first_party: true,
    },
    {
      client_id: CLIENTS.spa.id,
      token_endpoint_auth_method: 'none',
      redirect_uris: [CLIENTS.spa.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
    },
  ];
}

/** Local users, so flows do not all land on one account (sets of sessions and grants per account stay small). */
export const USER_COUNT = 50;
export const username = (i: number) => `bench${String(i % USER_COUNT).padStart(3, '0')}`;
export const upstreamUsername = (i: number) => `fed${String(i % USER_COUNT).padStart(3, '0')}`;

export interface BenchUser {
  username: string;
  passwordHash: string;
  email: string;
  name: string;
  groups: string[];
}

/**
 * One hash (Sallyport's default scrypt parameters, via its own hashPassword) shared by
 * every user: verifying it costs exactly what verifying a per-user hash costs.
 */
export async function benchUsers(): Promise<BenchUser[]> {
  const passwordHash = await hashPassword(PASSWORD);
  return Array.from({ length: USER_COUNT }, (_, i) => ({
    username: username(i),
    passwordHash,
    email: `${username(i)}@bench.example`,
    name: `Bench User ${i}`,
    groups: ['developers'],
  }));
}

/** RS256 (2048) first, then ES256: the keys Sallyport generates for itself (src/oidc/signing-keys.ts). */
export async function signingJwks(): Promise<JWK[]> {
  const keys: JWK[] = [];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
    const jwk = await exportJWK(privateKey);
    keys.push({ ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) });
  }
  return keys;
}

export function cookieKey(): string {
  return randomBytes(32).toString('base64url');
}

export interface SallyportConfigInput {
  port: number;
  redisUrl: string | null;
  users: BenchUser[];
  upstreamIssuer: string;
}

/** Sallyport's config file (JSON is YAML), as an operator would write it. */
export function sallyportConfig(input: SallyportConfigInput): Record<string, unknown> {
  return {
    issuer: `http://127.0.0.1:${input.port}`,
    listen: { port: input.port, host: '127.0.0.1' },
    storage: input.redisUrl ? { type: 'redis', url: input.redisUrl, prefix: 'bench:' } : { type: 'memory' },
    cookies: { keys: [cookieKey()] },
    // The load comes from one address and one client, far beyond what the default abuse
    // limits allow one of either. The limits stay on, so their counting is measured, but
    // high enough never to refuse.
    rateLimits: {
      login: { limit: 1_000_000, window: 60 },
      token: { limit: 1_000_000, window: 10 },
      endSession: { limit: 1_000_000, window: 60 },
    },
    clients: clientDeclarations(),
    users: input.users.map((u) => ({ username: u.username, passwordHash: u.passwordHash, email: u.email, emailVerified: true, name: u.name, groups: u.groups })),
    identityProviders: [
      {
        id: 'okta',
        type: 'okta',
        displayName: 'Okta',
        issuer: input.upstreamIssuer,
        clientId: 'sallyport',
        clientSecret: UPSTREAM_CLIENT_SECRET,
        emailDomains: ['okta.bench.example'],
        groupMappings: { Everyone: ['developers'] },
      },
    ],
  };
}

export interface BareSettings {
  issuer: string;
  port: number;
  redisUrl: string | null;
  cookieKeys: string[];
  jwks: JWK[];
  clients: Array<Record<string, unknown>>;
  /** Clients whose consent is granted without a page (Sallyport's `first_party`). */
  firstParty: string[];
  users: BenchUser[];
}

export function bareSettings(input: { port: number; redisUrl: string | null; users: BenchUser[]; jwks: JWK[] }): BareSettings {
  const declarations = clientDeclarations();
  return {
    issuer: `http://127.0.0.1:${input.port}`,
    port: input.port,
    redisUrl: input.redisUrl,
    cookieKeys: [cookieKey()],
    jwks: input.jwks,
    // The library knows nothing of first_party: it is kept out of the metadata.
    clients: declarations.map(({ first_party: _firstParty, ...metadata }) => metadata),
    firstParty: declarations.filter((c) => c['first_party'] === true).map((c) => String(c['client_id'])),
    users: input.users,
  };
}
