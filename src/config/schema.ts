/**
 * Configuration schema: the one place where every setting, its default and its meaning
 * are declared. The loader (`load.ts`) parses the YAML file, applies the environment
 * overrides, validates against this schema and freezes the result; nothing else in the
 * code base reads configuration from anywhere else.
 */
import { z } from 'zod';
import { ADMIN_SCOPES } from '../admin/scopes.ts';

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * A duration in whole seconds: a number (seconds) or a string such as `90s`, `15m`,
 * `8h`, `14d`. Always > 0.
 */
export const duration = z
  .union([z.number(), z.string()])
  .transform((value, ctx) => {
    if (typeof value === 'number') {
      if (Number.isInteger(value) && value > 0) return value;
    } else {
      const m = /^(\d+)\s*([smhd])$/.exec(value.trim());
      if (m) {
        const seconds = Number(m[1]) * (DURATION_UNITS[m[2]!] ?? 0);
        if (seconds > 0) return seconds;
      }
    }
    ctx.addIssue({ code: 'custom', message: 'expected a positive duration such as 30, "90s", "15m", "8h" or "14d"' });
    return z.NEVER;
  });

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' });

/** Secrets (cookie keys, client secrets) must be long enough to resist guessing. */
const secret = z.string().min(32, 'must be at least 32 characters');

/** Prefix of every key (all storage types accept it, so switching type keeps it). */
const storagePrefix = {
  /**
   * Prefix of every key Sallyport writes, so several deployments (or test runs) can
   * share one Redis. Default `sp:`.
   */
  prefix: z.string().min(1).max(64).default('sp:'),
};

/**
 * A server address `host:port` (`[v6addr]:port` for IPv6); the port defaults to
 * `defaultPort`. Never echoes the input in an error (it could be a mistyped secret).
 */
const hostPort = (defaultPort: number) =>
  z.string().transform((value, ctx) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(value.trim());
    const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
    if (!m || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected host:port (port defaults to ${defaultPort})` });
      return z.NEVER;
    }
    return { host: m[1] ?? m[2]!, port };
  });

/**
 * A cluster startup node: `host:port` or a `redis://host:port` / `rediss://host:port`
 * URL (no credentials, path or query: those are separate fields). The scheme, when
 * given, says whether the node speaks TLS; checked against `tls` below.
 */
const clusterNode = z.string().transform((value, ctx) => {
  const scheme = /^(rediss?):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    const parsed = hostPort(6379).safeParse(value);
    if (parsed.success) return parsed.data;
    ctx.addIssue({ code: 'custom', message: 'expected host:port or a redis:// or rediss:// URL' });
    return z.NEVER;
  }
  const url = URL.parse(value);
  if (!url || url.username || url.password || (url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected redis[s]://host:port without credentials, database, query or fragment (use storage.username and storage.password)',
    });
    return z.NEVER;
  }
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 6379 : Number(url.port), tls: scheme === 'rediss' };
});

/** ACL credentials of the data nodes (Sentinel and Cluster; standalone has them in its URL). */
const redisCredentials = {
  /** ACL user name. Default: the `default` user. */
  username: z.string().min(1).optional(),
  /** Password (requirepass or the ACL user's). REDIS_PASSWORD overrides. Never logged. */
  password: z.string().min(1).optional(),
};

/**
 * Where the data lives. `type: redis` has three topologies, chosen by `topology`:
 *
 * - `standalone` (the default): one server at `url`.
 * - `sentinel`: the master currently named by Redis Sentinel (failover without a config
 *   change). All commands go to the master.
 * - `cluster`: a Redis Cluster; keys are spread over its masters. Every operation touches
 *   one key, so no hash tags are needed. All commands go to masters.
 *
 * Each topology's fields are accepted only with that topology.
 */
const storage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('memory'),
    ...storagePrefix,
  }),
  z.discriminatedUnion(
    'topology',
    [
      z.strictObject({
        type: z.literal('redis'),
        /** `standalone` (default), `sentinel` or `cluster`. */
        topology: z.literal('standalone').optional(),
        /**
         * redis:// or rediss:// URL, with credentials and database number if needed. The
         * REDIS_URL environment variable overrides the whole storage section with it.
         */
        url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
        ...storagePrefix,
      }),
      z.strictObject({
        type: z.literal('redis'),
        topology: z.literal('sentinel'),
        /** Sentinels to ask for the master, `host:port` (port default 26379); one answering is enough. */
        sentinels: z.array(hostPort(26379)).min(1, 'at least one sentinel is required'),
        /** The name the sentinels monitor the master under (`sentinel monitor <name> ...`). */
        masterName: z.string().min(1),
        ...redisCredentials,
        /** ACL user name on the sentinels. Default: the `default` user. */
        sentinelUsername: z.string().min(1).optional(),
        /** The sentinels' own password (their requirepass). REDIS_SENTINEL_PASSWORD overrides. Never logged. */
        sentinelPassword: z.string().min(1).optional(),
        /** Database number on the master. Default 0. */
        db: z.number().int().min(0).default(0),
        /** TLS to the sentinels and to the master (system CAs; NODE_EXTRA_CA_CERTS adds one). Default false. */
        tls: z.boolean().default(false),
        ...storagePrefix,
      }),
      z
        .strictObject({
          type: z.literal('redis'),
          topology: z.literal('cluster'),
          /**
           * Some of the cluster's nodes, `host:port` (port default 6379) or
           * `redis://host:port` / `rediss://host:port`; the others are discovered. List
           * more than one so that start-up does not depend on a single node.
           */
          nodes: z.array(clusterNode).min(1, 'at least one node is required'),
          ...redisCredentials,
          /**
           * TLS to every node (system CAs; NODE_EXTRA_CA_CERTS adds one). Default: true when
           * the nodes are given as rediss:// URLs, else false.
           */
          tls: z.boolean().optional(),
          ...storagePrefix,
        })
        .superRefine((cluster, ctx) => {
          const schemes = new Set(cluster.nodes.map((n) => ('tls' in n ? n.tls : undefined)).filter((t) => t !== undefined));
          if (schemes.size > 1) ctx.addIssue({ code: 'custom', path: ['nodes'], message: 'mixes redis:// and rediss:// nodes' });
          const [scheme] = schemes;
          if (cluster.tls !== undefined && scheme !== undefined && scheme !== cluster.tls) {
            ctx.addIssue({ code: 'custom', path: ['tls'], message: `contradicts the ${scheme ? 'rediss' : 'redis'}:// node URLs` });
          }
        })
        // One TLS setting for the whole cluster, the nodes as plain addresses.
        .transform(({ nodes, tls, ...rest }) => ({
          ...rest,
          nodes: nodes.map(({ host, port }) => ({ host, port })),
          tls: tls ?? nodes.some((n) => 'tls' in n && n.tls),
        })),
    ],
    { error: (issue) => (issue.code === 'invalid_union' ? 'expected topology standalone, sentinel or cluster' : undefined) },
  ),
]);

const session = z.strictObject({
  /** A session not used for this long ends (each request slides it). Default 2h. */
  idleTimeout: duration.default(7200),
  /** Hard cap from sign-in, however active the session is. Default 12h. */
  maxLifetime: duration.default(43200),
});

const tokens = z.strictObject({
  /** Opaque and JWT access tokens. Default 1h. */
  accessToken: duration.default(3600),
  /** Authorization codes: single use, short-lived. Default 60s. */
  authorizationCode: duration.default(60),
  /** ID tokens. Default 1h. */
  idToken: duration.default(3600),
  /** Refresh tokens. Default 14d. */
  refreshToken: duration.default(14 * 86400),
  /** Access tokens from the client_credentials grant. Default 10m. */
  clientCredentials: duration.default(600),
  /** How long a person has to finish signing in (login, consent, upstream IdP). Default 1h. */
  interaction: duration.default(3600),
  /** Consent grants. Default 14d. */
  grant: duration.default(14 * 86400),
});

const lockout = z.strictObject({
  /** Failed sign-ins for one username within `window` before it is locked. Default 5. */
  maxFailures: z.number().int().min(1).max(1000).default(5),
  /** Window in which failures are counted, and how long the lock lasts. Default 15m. */
  window: duration.default(900),
});

const login = z.strictObject({
  /** Offer the local username/password form. Default true. */
  local: z.boolean().default(true),
  lockout: lockout.prefault({}),
});

const resourceServer = z.strictObject({
  /** The resource indicator (RFC 8707) clients send as `resource`; also the JWT `aud`. */
  indicator: httpUrl,
  /** Scopes this resource server understands. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'invalid scope token')).default([]),
  /** Lifetime of access tokens for it. Defaults to `tokens.accessToken`. */
  accessTokenTtl: duration.optional(),
  /** Signing algorithm of its JWT access tokens. Default ES256. */
  signingAlg: z.enum(['ES256', 'RS256']).default('ES256'),
});

/**
 * A client, as OpenID Connect Dynamic Client Registration metadata (snake_case), plus
 * Sallyport's own fields. The provider's client schema validates the standard fields
 * at start-up; here we only check what Sallyport itself relies on.
 */
export const clientMetadata = z
  .looseObject({
    client_id: z.string().min(1).max(200).regex(/^[\x21-\x7E]+$/, 'printable ASCII without spaces'),
    client_secret: secret.optional(),
    client_name: z.string().max(200).optional(),
    redirect_uris: z.array(z.string()).optional(),
    post_logout_redirect_uris: z.array(z.string()).optional(),
    /** Trusted first-party application: consent is not asked. Default false. */
    first_party: z.boolean().optional(),
    /**
     * PKCE (S256) is required for every client unless a confidential client opts out
     * with `require_pkce: false` (public clients can never opt out).
     */
    require_pkce: z.boolean().optional(),
    /**
     * Ways this client's users may sign in: identity provider ids, and `local` for the
     * password form. Default: every enabled one.
     */
    allowed_idps: z.array(z.string().min(1).max(63)).optional(),
    /** Admin roles granted to this client (its client-credentials tokens). */
    roles: z.array(z.string().min(1).max(63)).optional(),
  })
  .superRefine((client, ctx) => {
    const method = client['token_endpoint_auth_method'];
    if (method === 'none' && client.client_secret) {
      ctx.addIssue({ code: 'custom', path: ['client_secret'], message: 'a public client (token_endpoint_auth_method: none) must not have a secret' });
    }
    if (method === 'none' && client.require_pkce === false) {
      ctx.addIssue({ code: 'custom', path: ['require_pkce'], message: 'public clients always require PKCE' });
    }
  });


const groupName = z.string().min(1).max(100).regex(/^[\w.:@-]+$/, 'letters, digits and . _ : @ - only');

export const userDeclaration = z
  .strictObject({
    /** Sign-in name; unique, compared case-insensitively. */
    username: z.string().min(1).max(100).regex(/^[\w.@+-]+$/, 'letters, digits and . _ @ + - only'),
    email: z.email().optional(),
    emailVerified: z.boolean().default(false),
    name: z.string().max(200).optional(),
    givenName: z.string().max(100).optional(),
    familyName: z.string().max(100).optional(),
    groups: z.array(groupName).default([]),
    /** Plain-text password, hashed at start-up. Refused in production: use `passwordHash`. */
    password: z.string().min(8, 'must be at least 8 characters').max(1024).optional(),
    /** A hash from `npm run hash-password`. */
    passwordHash: z.string().startsWith('$scrypt$', 'expected a hash from `npm run hash-password`').optional(),
  })
  .refine((u) => !(u.password && u.passwordHash), { message: 'give password or passwordHash, not both', path: ['password'] });


const claimPath = z.string().min(1).max(200).regex(/^[\w:-]+(\.[\w:-]+)*$/, 'a claim name or dot-separated path');

/**
 * An upstream OpenID provider. `type` picks a connector from the registry
 * (`src/connectors/registry.ts`); presets (okta, keycloak) fill in that provider's
 * defaults for every field left out here.
 */
export const identityProviderSchema = z.strictObject({
  /** Used in URLs (`/federation/<id>/callback`) and hints (`idp_hint=<id>`). */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and - (max 63)').refine((id) => id !== 'local', '"local" is reserved for the password form'),
  type: z.string().min(1).default('oidc'),
  displayName: z.string().min(1).max(100),
  enabled: z.boolean().default(true),
  /** The upstream issuer; discovery is fetched from `<issuer>/.well-known/openid-configuration` unless `endpoints` are given. */
  issuer: httpUrl,
  /** Explicit endpoints for providers without discovery metadata. */
  endpoints: z
    .strictObject({
      authorization: httpUrl,
      token: httpUrl,
      jwks: httpUrl,
      endSession: httpUrl.optional(),
    })
    .optional(),
  clientId: z.string().min(1).max(500),
  /** Required for client_secret_* authentication. */
  clientSecret: z.string().min(1).max(1000).optional(),
  clientAuth: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt']).optional(),
  /** Private JWK (with `alg` and `kid`) for private_key_jwt. */
  privateKeyJwk: z.looseObject({ kty: z.string(), alg: z.string().optional(), kid: z.string().optional() }).optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/)).optional(),
  /** id_token signature algorithms accepted. `none` and HMAC are never accepted. */
  idTokenAlgs: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).optional(),
  /** Clock skew tolerated on exp/iat, seconds. Default 60. */
  clockSkew: z.number().int().min(0).max(600).optional(),
  /** Timeout of every call to the provider, milliseconds. Default 5000. */
  timeoutMs: z.number().int().min(100).max(60000).optional(),
  /** Minimum seconds between JWKS refetches when an unknown key id appears. Default 30. */
  jwksCooldown: z.number().int().min(0).max(3600).optional(),
  /** Email domains routed to this provider when the login_hint is an address. */
  emailDomains: z.array(z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, 'a domain name')).default([]),
  /** Where to read each attribute in the upstream id_token (claim names or dot paths). */
  claims: z
    .strictObject({
      email: claimPath.optional(),
      emailVerified: claimPath.optional(),
      name: claimPath.optional(),
      preferredUsername: claimPath.optional(),
      groups: claimPath.optional(),
    })
    .default({}),
  /** Upstream group → Sallyport groups. */
  groupMappings: z.record(z.string(), z.array(groupName)).default({}),
  /** Also keep upstream groups that have no mapping (under their own name). Default false. */
  passUnmappedGroups: z.boolean().default(false),
  /** Link to an existing local account with the same verified email. Default false. */
  linkByVerifiedEmail: z.boolean().default(false),
  /** Upstream logout (RP-initiated logout at the provider). */
  logout: z
    .strictObject({
      /** `redirect` (GET), `post` (auto-submitted form) or `none`. */
      method: z.enum(['redirect', 'post', 'none']).optional(),
      /** Which parameters to send. Default: the preset's (generic: id_token_hint). */
      params: z.array(z.enum(['id_token_hint', 'client_id', 'logout_hint'])).optional(),
      /** Explicit end-session URL (providers without discovery metadata). */
      url: httpUrl.optional(),
    })
    .default({}),
});

const federation = z.strictObject({
  /**
   * How long the server-side authentication record (with the upstream id_token) is
   * kept; longer than any session, so logout can find it after the session is gone.
   * Default 7d.
   */
  recordLifetime: duration.default(7 * 86400),
  /**
   * Keys (base64url, 32 bytes) encrypting upstream id_tokens at rest, newest first.
   * Without any, tokens are stored as received.
   */
  recordEncryptionKeys: z.array(z.string().regex(/^[\w-]{43}$/, 'expected 32 bytes, base64url')).default([]),
});

const backchannelLogout = z.strictObject({
  /**
   * Origins (scheme://host:port) of relying parties on loopback or private networks that
   * may receive back-channel logout tokens. Requests to special-use addresses are
   * otherwise refused (SSRF protection). Default none.
   */
  allowPrivateNetworkOrigins: z.array(httpUrl.transform((u) => new URL(u).origin)).default([]),
});

/** One fixed-window limit: at most `limit` requests per `window`, or `false` for none. */
const rateLimit = z.union([
  z.literal(false),
  z.strictObject({
    limit: z.number().int().min(1).max(1_000_000),
    window: duration,
  }),
]);

const rateLimits = z.strictObject({
  /**
   * Posts of the sign-in form (username/password) per client IP. Complements the
   * per-account lockout, which does not stop one address trying many accounts. Raise
   * it where many people share one address (an office behind NAT). Default 60 per minute.
   */
  login: rateLimit.default({ limit: 60, window: 60 }),
  /**
   * Token endpoint requests per client (the client_id named by the request, counted
   * before authentication). Default 3000 per 10s.
   */
  token: rateLimit.default({ limit: 3000, window: 10 }),
  /** end_session requests (GET and the confirmation POST) per client IP. Default 60 per minute. */
  endSession: rateLimit.default({ limit: 60, window: 60 }),
});

const metrics = z.strictObject({
  /** Serve Prometheus metrics at /metrics. Default true. */
  enabled: z.boolean().default(true),
  /**
   * When set, /metrics requires `Authorization: Bearer <token>`. Without it the
   * endpoint is open: keep it off the public edge (or set a token).
   */
  bearerToken: secret.optional(),
});

const adminScope = z.enum(ADMIN_SCOPES);

const groupDeclaration = z.strictObject({
  name: groupName,
  description: z.string().max(500).optional(),
  /** Admin roles granted to every member. */
  roles: z.array(z.string().min(1).max(63)).default([]),
});

export const configSchema = z.strictObject({
  /** Issuer identifier: the public base URL, no path, query or fragment. ISSUER overrides. */
  issuer: httpUrl.refine((u) => {
    const url = new URL(u);
    return (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash;
  }, 'the issuer must be an origin without path, query or fragment'),
  listen: z
    .strictObject({
      /** TCP port. PORT overrides. Default 3000. */
      port: z.number().int().min(0).max(65535).default(3000),
      /** Interface to bind. Default all interfaces. */
      host: z.string().default('0.0.0.0'),
    })
    .prefault({}),
  /** Trust X-Forwarded-Proto/Host/For from a TLS-terminating proxy. Default true. */
  trustProxy: z.boolean().default(true),
  storage: storage.prefault({ type: 'memory' }),
  cookies: z.strictObject({
    /**
     * Keys signing every cookie, newest first. Rotate by prepending a new key and
     * dropping the oldest later. SALLYPORT_COOKIE_KEYS (comma separated) overrides.
     */
    keys: z.array(secret).min(1, 'at least one cookie key is required'),
  }),
  session: session.prefault({}),
  tokens: tokens.prefault({}),
  login: login.prefault({}),
  backchannelLogout: backchannelLogout.prefault({}),
  resourceServers: z.array(resourceServer).default([]),
  clients: z.array(clientMetadata).default([]),
  users: z.array(userDeclaration).default([]),
  identityProviders: z.array(identityProviderSchema).default([]),
  /**
   * Admin roles: name → admin API scopes. Built in: admin (sallyport.admin) and auditor
   * (every *.read scope); entries here add roles or redefine those.
   */
  roles: z.record(z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lower-case letters, digits and . _ -'), z.array(adminScope)).default({}),
  /** Groups with a description and the admin roles they grant. Membership lives on users. */
  groups: z.array(groupDeclaration).default([]),
  federation: federation.prefault({}),
  /** Abuse limits, counted in the store (so shared by every instance). */
  rateLimits: rateLimits.prefault({}),
  metrics: metrics.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ClientDeclaration = z.infer<typeof clientMetadata>;
export type UserDeclaration = z.infer<typeof userDeclaration>;
export type ResourceServerConfig = z.infer<typeof resourceServer>;
export type IdentityProviderDeclaration = z.infer<typeof identityProviderSchema>;
export type GroupDeclaration = z.infer<typeof groupDeclaration>;
export type RateLimitRule = Exclude<z.infer<typeof rateLimit>, false>;
