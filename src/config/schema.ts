/**
 * Configuration schema: the one place where every setting, its default and its meaning
 * are declared. The loader (`load.ts`) parses the YAML file, applies the environment
 * overrides, validates against this schema and freezes the result; nothing else in the
 * code base reads configuration from anywhere else.
 */
import { z } from 'zod';

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

const storage = z
  .discriminatedUnion('type', [
    z.object({
      type: z.literal('memory'),
    }),
    z.object({
      type: z.literal('redis'),
      /** redis:// or rediss:// URL. The REDIS_URL environment variable overrides it. */
      url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
    }),
  ])
  .and(
    z.object({
      /**
       * Prefix of every key Sallyport writes, so several deployments (or test runs) can
       * share one Redis. Default `sp:`.
       */
      prefix: z.string().min(1).max(64).default('sp:'),
    }),
  );

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

const backchannelLogout = z.strictObject({
  /**
   * Origins (scheme://host:port) of relying parties on loopback or private networks that
   * may receive back-channel logout tokens. Requests to special-use addresses are
   * otherwise refused (SSRF protection). Default none.
   */
  allowPrivateNetworkOrigins: z.array(httpUrl.transform((u) => new URL(u).origin)).default([]),
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
});

export type Config = z.infer<typeof configSchema>;
export type ClientDeclaration = z.infer<typeof clientMetadata>;
export type UserDeclaration = z.infer<typeof userDeclaration>;
export type ResourceServerConfig = z.infer<typeof resourceServer>;
