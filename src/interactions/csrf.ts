/**
 * CSRF protection for our HTML forms (synchronizer token, bound to the browser and to
 * the interaction).
 *
 * The browser holds a random secret in a signed, HttpOnly cookie; each form carries
 * HMAC(cookie key, secret + purpose). A cross-site page can neither read the cookie nor
 * compute the token, and a token for one interaction is useless for another.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

const COOKIE = 'sp_csrf';

function mac(key: string, secret: string, purpose: string): Buffer {
  return createHmac('sha256', key).update(`${secret}\u0000${purpose}`).digest();
}

export function createCsrf(cookieKeys: readonly string[]) {
  const cookieOptions = (ctx: Context) => ({
    signed: true,
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: ctx.secure,
    path: '/',
    overwrite: true,
  });

  return {
    /** The token for a form serving `purpose` (e.g. the interaction uid); sets the cookie when missing. */
    issue(ctx: Context, purpose: string): string {
      let secret = ctx.cookies.get(COOKIE, { signed: true });
      if (!secret || !/^[\w-]{43}$/.test(secret)) {
        secret = randomBytes(32).toString('base64url');
        ctx.cookies.set(COOKIE, secret, cookieOptions(ctx));
      }
      return mac(cookieKeys[0]!, secret, purpose).toString('base64url');
    },

    /** Whether `token` is valid for `purpose` in this browser (any current cookie key). */
    verify(ctx: Context, purpose: string, token: unknown): boolean {
      const secret = ctx.cookies.get(COOKIE, { signed: true });
      if (!secret || typeof token !== 'string' || token.length > 100) return false;
      const presented = Buffer.from(token, 'base64url');
      return cookieKeys.some((key) => {
        const expected = mac(key, secret, purpose);
        return presented.length === expected.length && timingSafeEqual(presented, expected);
      });
    },
  };
}

export type Csrf = ReturnType<typeof createCsrf>;
