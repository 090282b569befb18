/**
 * The baseline: a bare oidc-provider 9 server with the library's defaults, changed only
 * where the benchmark scenarios need it:
 *
 * - the same clients, users and kinds of signing keys as Sallyport (fixtures.ts), and
 *   the same scopes and claims, so tokens carry the same things;
 * - client_credentials and introspection enabled (off by default);
 * - refresh tokens come from the library's default policy (offline_access with
 *   prompt=consent), and are rotated for public clients by its default rotation rule;
 * - findAccount, and a minimal sign-in page doing the same password work as Sallyport
 *   (its scrypt verification, same parameters); consent is a page, or granted without
 *   one for the first-party client, as Sallyport does;
 * - storage: the library's default in-memory adapter, or a plain ioredis adapter.
 *
 * Access tokens stay opaque (the default). Usage: node bare-provider.ts <settings.json>;
 * prints "listening" once it accepts connections.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Context, Next } from 'koa';
import { verifyPassword } from '../src/accounts/passwords.ts';
import type { BareSettings } from './fixtures.ts';
import { createRedisAdapterFactory } from './bare-redis-adapter.ts';

const settingsPath = process.argv[2];
if (!settingsPath) throw new Error('usage: bare-provider.ts <settings.json>');
const settings = JSON.parse(readFileSync(settingsPath, 'utf8')) as BareSettings;

const usersByName = new Map(settings.users.map((u) => [u.username, u]));
const firstParty = new Set(settings.firstParty);
const redis = settings.redisUrl ? createRedisAdapterFactory(settings.redisUrl) : undefined;

const configuration: Configuration = {
  ...(redis ? { adapter: redis.factory } : {}),
  clients: settings.clients as unknown as Configuration['clients'],
  jwks: { keys: settings.jwks as NonNullable<Configuration['jwks']>['keys'] },
  cookies: { keys: settings.cookieKeys },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  async findAccount(_ctx, sub) {
    const user = usersByName.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      claims: () => ({ sub, preferred_username: user.username, name: user.name, email: user.email, email_verified: true, groups: user.groups }),
    };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
  },
};

const provider = new Provider(settings.issuer, configuration);

// --- interactions: a minimal sign-in page and consent -----------------------------------

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid: string, error?: string): string {
  return page('Sign in', `<h1>Sign in</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${uid}/login">
<input name="username" autocomplete="username"> <input name="password" type="password">
<button type="submit">Sign in</button></form>`);
}

function consentPage(uid: string, clientId: string, scopes: string[]): string {
  return page('Allow access?', `<h1>Allow ${escapeHtml(clientId)} access?</h1><ul>${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
<form id="consent" method="post" action="/interaction/${uid}/consent">
<button type="submit" name="decision" value="allow">Allow</button></form>`);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += (chunk as Buffer).toString();
    if (body.length > 16 * 1024) throw new errors.InvalidRequest('request body too large');
  }
  return new URLSearchParams(body);
}

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

async function grantConsent(details: Details): Promise<string> {
  const accountId = details.session?.accountId;
  if (!accountId) throw new errors.SessionNotFound('no account');
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId: String(details.params['client_id']) });
  if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  return grant.save();
}

const INTERACTION = /^\/interaction\/([\w-]+)(?:\/(login|consent))?$/;

provider.use(async (ctx: Context, next: Next) => {
  const match = INTERACTION.exec(ctx.path);
  if (!match) return next();
  const [, uid, action] = match;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  ctx.set('cache-control', 'no-store');
  const finish = async (result: Parameters<Provider['interactionResult']>[2], merge: boolean) => {
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge }));
  };

  if (ctx.method === 'GET' && action === undefined) {
    if (details.prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage(details.uid);
      return;
    }
    if (details.prompt.name === 'consent') {
      const clientId = String(details.params['client_id']);
      if (firstParty.has(clientId)) return finish({ consent: { grantId: await grantConsent(details) } }, true);
      ctx.type = 'html';
      ctx.body = consentPage(details.uid, clientId, (details.prompt.details as { missingOIDCScope?: string[] }).missingOIDCScope ?? []);
      return;
    }
    throw new errors.InvalidRequest(`unsupported prompt ${details.prompt.name}`);
  }
  if (ctx.method === 'POST' && action === 'login' && details.prompt.name === 'login') {
    const form = await readForm(ctx.req);
    const user = usersByName.get(form.get('username') ?? '');
    if (!user || !(await verifyPassword(form.get('password') ?? '', user.passwordHash))) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, 'Invalid username or password.');
      return;
    }
    return finish({ login: { accountId: user.username } }, false);
  }
  if (ctx.method === 'POST' && action === 'consent' && details.prompt.name === 'consent') {
    const form = await readForm(ctx.req);
    if (form.get('decision') !== 'allow') return finish({ error: 'access_denied' }, false);
    return finish({ consent: { grantId: await grantConsent(details) } }, true);
  }
  throw new errors.InvalidRequest('unexpected interaction step');
});

provider.on('server_error', (_ctx: KoaContextWithOIDC, err: Error) => {
  process.stderr.write(`server_error: ${err.stack ?? err.message}\n`);
});

const server = provider.listen(settings.port, '127.0.0.1', () => {
  process.stdout.write('listening\n');
});

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  void (redis?.close() ?? Promise.resolve()).finally(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
