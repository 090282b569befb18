/**
 * Abuse limits on the endpoints that invite guessing or flooding: the sign-in form (per
 * client IP), the token endpoint (per client) and end_session (per client IP).
 *
 * Fixed windows aligned to the clock, one counter key per rule, subject and window in
 * the store, so every instance shares them and they expire by themselves. Over the limit
 * the request is answered 429 with `Retry-After` (the seconds left in the window) before
 * any other work is done. If the store cannot be reached the request is let through: it
 * then fails with 503 where it needs the store, instead of being refused for a limit
 * that could not be counted.
 */
import { createHash } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { Config, RateLimitRule } from '../config/schema.ts';
import { isStoreOutage, type KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { errorPage } from '../views/pages.ts';

export type RateLimitName = 'login' | 'token' | 'endSession';

export interface RateLimitPaths {
  token: string;
  endSession: string;
  endSessionConfirm: string;
}

export interface RateLimiterDeps {
  config: Config;
  store: KeyValueStore;
  keys: Keys;
  paths: RateLimitPaths;
  /** Called once per refused request (metrics). */
  onLimited?: (name: RateLimitName) => void;
  /** Clock, seconds (tests). */
  now?: () => number;
}

/** The token endpoint's own body limit; a longer body is refused by it anyway. */
const TOKEN_BODY_PEEK_LIMIT = 56 * 1024;
const LOGIN_PATH = /^\/interaction\/[^/]+\/login$/;

export function createRateLimiter(deps: RateLimiterDeps) {
  const { config, store, keys, paths } = deps;
  const now = deps.now ?? (() => Date.now() / 1000);
  const rules = config.rateLimits;

  /** Counts one request; the seconds to wait when it is over the limit, else 0. */
  async function hit(name: RateLimitName, rule: RateLimitRule, subject: string): Promise<number> {
    const t = now();
    const window = Math.floor(t / rule.window);
    const retryAfter = Math.max(1, Math.ceil((window + 1) * rule.window - t));
    const key = keys.rateLimit(name, subjectKey(subject), window);
    // The key lives a little longer than its window so that it never outlives it by less
    // than a second of clock difference between instances.
    const count = await store.incr(key, rule.window + 1);
    return count > rule.limit ? retryAfter : 0;
  }

  function ruleFor(ctx: Context): { name: RateLimitName; rule: RateLimitRule } | undefined {
    const { path, method } = ctx;
    if (method === 'POST' && path === paths.token) return rules.token ? { name: 'token', rule: rules.token } : undefined;
    if ((path === paths.endSession && (method === 'GET' || method === 'POST')) || (path === paths.endSessionConfirm && method === 'POST')) {
      return rules.endSession ? { name: 'endSession', rule: rules.endSession } : undefined;
    }
    if (method === 'POST' && LOGIN_PATH.test(path)) return rules.login ? { name: 'login', rule: rules.login } : undefined;
    return undefined;
  }

  return async function rateLimit(ctx: Context, next: Next): Promise<unknown> {
    const match = ruleFor(ctx);
    if (!match) return next();
    let retryAfter = 0;
    try {
      const subject = match.name === 'token' ? await tokenRequestSubject(ctx) : `ip:${ctx.ip}`;
      retryAfter = await hit(match.name, match.rule, subject);
    } catch (err) {
      if (!isStoreOutage(err)) throw err;
      (ctx.state['logger'] as Logger | undefined)?.warn({ limit: match.name }, 'rate limit not counted: store unavailable');
    }
    if (retryAfter === 0) return next();

    deps.onLimited?.(match.name);
    ctx.status = 429;
    ctx.set('retry-after', String(retryAfter));
    ctx.set('cache-control', 'no-store');
    if (match.name === 'token') {
      // RFC 6749 §5.2 has no code for this; temporarily_unavailable carries the meaning
      // ("temporary overloading") and clients treat it as retryable.
      ctx.body = { error: 'temporarily_unavailable', error_description: `too many requests; retry after ${retryAfter} seconds` };
      return undefined;
    }
    const message =
      match.name === 'login'
        ? `Too many sign-in attempts from your network. Try again in ${retryAfter} seconds.`
        : `Too many sign-out requests from your network. Try again in ${retryAfter} seconds.`;
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = { error: 'too_many_requests', message };
    } else {
      ctx.type = 'html';
      ctx.body = errorPage({ status: 429, title: 'Too many requests', message, requestId: String(ctx.state['requestId'] ?? '') });
    }
    return undefined;
  };
}

/** Long or odd subjects (client ids are caller-supplied) become a fixed-length digest. */
function subjectKey(subject: string): string {
  return /^[\w.:@-]{1,100}$/.test(subject) ? subject : `h:${createHash('sha256').update(subject).digest('base64url')}`;
}

/**
 * The client a token request names, found the way the token endpoint will find it:
 * HTTP Basic (RFC 6749 §2.3.1, form-encoded id), else `client_id`, else the subject of a
 * client assertion. Requests naming none are counted per IP. The body is read and put
 * back on the request stream untouched for the provider's own parser.
 */
async function tokenRequestSubject(ctx: Context): Promise<string> {
  const basic = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(ctx.get('authorization'));
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      try {
        return `client:${decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '))}`;
      } catch {
        // Malformed encoding: the token endpoint rejects it; count it by address.
      }
    }
  }
  if (ctx.is('application/x-www-form-urlencoded')) {
    const body = await peekBody(ctx, TOKEN_BODY_PEEK_LIMIT);
    if (body) {
      const params = new URLSearchParams(body.toString('utf8'));
      const clientId = params.get('client_id');
      if (clientId) return `client:${clientId}`;
      const assertionSubject = jwtSubject(params.get('client_assertion'));
      if (assertionSubject) return `client:${assertionSubject}`;
    }
  }
  return `ip:${ctx.ip}`;
}

function jwtSubject(jwt: string | null): string | undefined {
  const payload = jwt?.split('.')[1];
  if (!payload || payload.length > 8192) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a body of a declared length (at most `limit` bytes) and unshifts it back onto
 * the request stream, so the next reader sees the stream as it arrived. Bodies without a
 * length, longer than the limit or cut short are left to the next reader (null).
 */
async function peekBody(ctx: Context, limit: number): Promise<Buffer | null> {
  const req = ctx.req;
  const length = Number(ctx.get('content-length'));
  if (!Number.isInteger(length) || length <= 0 || length > limit || req.readableEnded) return null;
  const chunks: Buffer[] = [];
  let received = 0;
  while (received < length) {
    const chunk = req.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      received += chunk.length;
      continue;
    }
    const more = await new Promise<boolean>((resolve) => {
      const done = (value: boolean) => {
        req.off('readable', onReadable);
        req.off('end', onEnd);
        req.off('error', onEnd);
        req.off('close', onEnd);
        resolve(value);
      };
      const onReadable = () => done(true);
      const onEnd = () => done(false);
      req.on('readable', onReadable);
      req.once('end', onEnd);
      req.once('error', onEnd);
      req.once('close', onEnd);
    });
    if (!more) break;
  }
  const body = Buffer.concat(chunks, received);
  if (received === 0) return null;
  if (req.readableEnded) {
    // Cut short: too late to put it back; the provider answers "request size did not
    // match content length" from what it finds.
    return received === length ? body : null;
  }
  req.unshift(body);
  return body;
}
