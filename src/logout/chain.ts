/**
 * Logout that really logs out: RP-initiated logout at our end_session endpoint is
 * chained to the upstream IdP, from the server-side authentication record (never the
 * HTTP session, which is gone by then).
 *
 * oidc-provider runs the local part; this post-middleware runs after it, in the same
 * request, in this order:
 *  1. GET /session/end: when the id_token_hint names a session this browser does not
 *     hold (ours expired, was deleted, or lives in another browser), find that
 *     session's record through the hint's `sid` and remember it for the confirmation.
 *  2. POST /session/end/confirm, session destroyed: the library has already notified
 *     our RPs over back-channel, revoked the session's grants, destroyed the session and
 *     cleared its cookie (all in this response), and set Location to the RP's
 *     post_logout_redirect_uri with its state. We take the record, and unless this
 *     was the library's internal logout for an account switch, store that Location
 *     under a one-time transaction and send the browser to the upstream
 *     end_session_endpoint with the upstream id_token as id_token_hint — expired or
 *     not: RP-Initiated Logout 1.0 §2 lets an OP accept an expired hint, and Okta
 *     requires one.
 *  3. The upstream returns to our fixed logout callback; it consumes the transaction
 *     and continues to the RP (or to our signed-out page).
 * Any failure in 1–2 keeps the library's redirect: the local logout has completed and
 * the person still reaches the RP (fail open).
 */
import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { LogoutChainStep } from '../observability/metrics.ts';
import type { AuthRecord, AuthRecordStore } from '../federation/auth-records.ts';
import type { IdentityProviders } from '../federation/identity-providers.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { upstreamLogoutFormPage } from '../views/pages.ts';
import type { SessionTerminator } from './end-sessions.ts';

export const LOGOUT_CALLBACK_PATH = '/federation/logout-callback';
const LOGOUT_TX_TTL_SECONDS = 600;

interface LogoutTransaction {
  /** Where oidc-provider would have sent the browser: the RP's registered URI + state, or our success page. */
  finalLocation: string;
  idp: string;
}

export interface LogoutChainDeps {
  provider: Provider;
  config: Config;
  store: KeyValueStore;
  keys: Keys;
  authRecords: AuthRecordStore;
  idps: IdentityProviders;
  sessions: SessionTerminator;
  /** Told each step a logout takes (metrics). */
  onStep?: (step: LogoutChainStep, labels?: { idp?: string | undefined; hint?: boolean | undefined }) => void;
}

export function installLogoutChain(deps: LogoutChainDeps): void {
  const { provider, config, store, keys, authRecords, idps, sessions } = deps;
  const issuerOrigin = new URL(config.issuer).origin;
  const onStep = deps.onStep ?? (() => undefined);
  const returnsToApplication = applicationReturnCheck(provider, config);

  /** The local logout ends here: at the application, or on our signed-out page. */
  function finishedLocally(location: string, idp?: string): void {
    onStep('local_only', { idp });
    if (returnsToApplication(location)) onStep('returned_to_rp', { idp });
  }

  /** oidc-provider's internal logout before an account switch redirects to our own resume URL. */
  function isResumeUrl(location: string): boolean {
    const url = URL.parse(location, config.issuer);
    return !!url && url.origin === issuerOrigin && url.pathname.startsWith('/auth/');
  }

  provider.use(async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const oidc = ctx.oidc;
    if (!oidc) return;
    const log = (ctx.state['logger'] as Logger | undefined) ?? undefined;
    try {
      if (oidc.route === 'end_session') await rememberHintedSession(ctx);
      else if (oidc.route === 'end_session_confirm') await chainUpstream(ctx, log);
    } catch (err) {
      if (oidc.route === 'end_session_confirm') onStep('failed');
      log?.error({ err, route: oidc.route }, 'upstream logout chaining failed; continuing with the local logout result');
    }
  });

  // Step 1.
  async function rememberHintedSession(ctx: KoaContextWithOIDC): Promise<void> {
    const hint = ctx.oidc.entities.IdTokenHint as { payload: { sub?: string; sid?: string } } | undefined;
    const session = ctx.oidc.session;
    if (!hint?.payload.sid || !session || session.accountId) return;
    const record = await authRecords.findBySid(hint.payload.sid);
    if (!record || record.accountId !== hint.payload.sub) return;
    await store.set(keys.logoutHintedSession(session.uid), record.sessionUid, { ttl: LOGOUT_TX_TTL_SECONDS });
  }

  // Step 2.
  async function chainUpstream(ctx: KoaContextWithOIDC, log: Logger | undefined): Promise<void> {
    const session = ctx.oidc.session as (KoaContextWithOIDC['oidc']['session'] & { destroyed?: boolean }) | undefined;
    if (!session) return;
    if (!session.destroyed) {
      // Two tabs logging out at once: the first destroyed the session, the second
      // finds no logout details. The person is signed out; say so instead of an error.
      // With the session still alive, the other tab's request replaced the logout
      // token; ask again rather than fail (the question needs no hint, so no loop).
      if (ctx.status === 400 && ctx.method === 'POST') {
        // The URL first: should building it fail, the library's answer stands instead
        // of a 303 without a Location.
        const target = ctx.oidc.urlFor(session.accountId ? 'end_session' : 'end_session_success');
        ctx.status = 303;
        ctx.redirect(target);
      }
      return;
    }
    const finalLocation = ctx.response.get('location');
    if (!finalLocation) return;

    let record: AuthRecord | undefined = await authRecords.remove(session.uid);
    if (isResumeUrl(finalLocation)) {
      // The upstream session now belongs to the account signing in; the old record's
      // hint would end it. Only drop the old record.
      return;
    }
    if (!record) {
      const hinted = await store.getDel(keys.logoutHintedSession(session.uid));
      if (hinted) {
        record = await authRecords.get(hinted);
        // The hinted session may still be alive in another browser: end it too.
        await sessions.endSession(hinted, 'rp-initiated logout with a hint for another session');
      }
    }
    if (!record) return finishedLocally(finalLocation);

    const txn = randomBytes(32).toString('base64url');
    const removed = record;
    let connector;
    let request;
    try {
      connector = await idps.getForLogout(record.idp);
      if (!connector) return finishedLocally(finalLocation, record.idp);
      request = await connector.logoutRequest({
        idToken: await authRecords.idToken(record),
        sub: record.sub,
        postLogoutRedirectUri: `${config.issuer}${LOGOUT_CALLBACK_PATH}`,
        state: txn,
      });
    } catch (err) {
      // The upstream IdP cannot be reached (discovery down, say): the local logout
      // stands, and the record goes back so that logging out again with the same hint
      // can still end the upstream session.
      await authRecords.restore(removed).catch(() => undefined);
      throw err;
    }
    if (!request) {
      log?.info({ idp: record.idp }, 'upstream has no end-session endpoint; local logout only');
      return finishedLocally(finalLocation, record.idp);
    }
    await store.set(keys.logoutTx(txn), JSON.stringify({ finalLocation, idp: record.idp } satisfies LogoutTransaction), { ttl: LOGOUT_TX_TTL_SECONDS });
    const hint = 'id_token_hint' in request.params;
    log?.info({ idp: record.idp, hint, method: request.method }, 'chaining logout to the upstream IdP');
    onStep('upstream_redirect', { idp: record.idp, hint });
    if (request.method === 'GET') {
      const url = new URL(request.url);
      for (const [k, v] of Object.entries(request.params)) url.searchParams.set(k, v);
      ctx.redirect(url.href);
      return;
    }
    ctx.remove('location');
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = upstreamLogoutFormPage({ idpName: connector.settings.displayName, action: request.url, params: request.params, nonce: String(ctx.state['cspNonce'] ?? '') });
  }
}

/** Step 3, and inbound back-channel logout from upstream IdPs. */
export function createLogoutRoutes(deps: LogoutChainDeps & { logger: Logger }): Router {
  const { store, keys, idps, authRecords, sessions } = deps;
  const router = new Router();
  const returnsToApplication = applicationReturnCheck(deps.provider, deps.config);

  router.get(LOGOUT_CALLBACK_PATH, async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const state = typeof ctx.query['state'] === 'string' && ctx.query['state'].length <= 100 ? ctx.query['state'] : undefined;
    const raw = state ? await store.getDel(keys.logoutTx(state)) : null;
    // The target was stored server-side by step 2; nothing from the query is ever
    // used as a redirect. Unknown or replayed: our signed-out page (no loop).
    const tx = raw ? (JSON.parse(raw) as LogoutTransaction) : undefined;
    const target = tx ? tx.finalLocation : '/session/end/success';
    if (tx) {
      deps.onStep?.('upstream_returned', { idp: tx.idp });
      if (returnsToApplication(target)) deps.onStep?.('returned_to_rp', { idp: tx.idp });
    }
    ctx.status = 303;
    ctx.redirect(target);
  });

  // OIDC Back-Channel Logout 1.0 §2.5–2.8, one endpoint per upstream IdP.
  router.post('/federation/:idp/backchannel-logout', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const respond = (status: number, error?: string) => {
      ctx.status = status;
      ctx.body = error ? { error: 'invalid_request', error_description: error } : '';
    };
    const idp = ctx.params['idp']!;
    const connector = await idps.getForLogout(idp);
    if (!connector) return respond(404, 'unknown identity provider');
    if (!ctx.is('application/x-www-form-urlencoded')) return respond(400, 'expected application/x-www-form-urlencoded');
    let body = '';
    for await (const chunk of ctx.req) {
      body += String(chunk);
      if (body.length > 16384) return respond(413, 'request too large');
    }
    const token = new URLSearchParams(body).get('logout_token');
    if (!token) return respond(400, 'logout_token is required');
    let claims;
    try {
      claims = await connector.verifyLogoutToken(token);
    } catch (err) {
      deps.logger.warn({ idp, detail: (err as Error).message }, 'logout token rejected');
      return respond(400, 'the logout token is invalid');
    }
    // §2.6 step 10: a jti is accepted once (kept until the token could no longer pass).
    const ttl = Math.max(60, claims.exp - Math.floor(Date.now() / 1000) + 300);
    if (!(await store.set(keys.backchannelJti(idp, claims.jti), '1', { ttl, ifAbsent: true }))) {
      return respond(400, 'the logout token was already used');
    }
    const uids = claims.sid ? await authRecords.sessionUidsByUpstreamSid(idp, claims.sid) : await authRecords.sessionUidsByUpstreamSub(idp, claims.sub!);
    // With both sid and sub, only sessions of that subject in that upstream session.
    for (const uid of uids) {
      const record = await authRecords.get(uid);
      if (claims.sid && claims.sub && record && record.sub !== claims.sub) continue;
      await sessions.endSession(uid, `back-channel logout from ${idp}`);
    }
    deps.logger.info({ idp, sessions: uids.length }, 'inbound back-channel logout');
    respond(200);
  });
  // A machine endpoint: any other method gets a JSON 405 naming POST (RFC 9110 §15.5.6),
  // not the site's HTML "Not found" page.
  router.all('/federation/:idp/backchannel-logout', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.set('allow', 'POST');
    ctx.status = 405;
    ctx.body = { error: 'invalid_request', error_description: 'back-channel logout takes a POST' };
  });

  return router;
}

/** Whether a logout's final location is the application's (rather than our signed-out page). */
function applicationReturnCheck(provider: Provider, config: Config): (location: string) => boolean {
  const signedOutPage = new URL(provider.pathFor('end_session_success'), config.issuer).href;
  return (location) => {
    const url = URL.parse(location, config.issuer);
    return !!url && `${url.origin}${url.pathname}` !== signedOutPage;
  };
}
