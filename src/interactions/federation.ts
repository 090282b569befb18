/**
 * Sign-in through an upstream identity provider.
 *
 *  1. Start (`/interaction/:uid/idp/:idp`): a server-side transaction (state, nonce,
 *     PKCE verifier) keyed by an unguessable state, then 303 to the provider.
 *  2. Callback (`/federation/:idp/callback`): a fixed URL registered at the provider.
 *     The transaction is taken (read once) and the response parameters are handed to
 *     step 3 under a one-time reference. The code is not spent here: step 3 runs
 *     under `/interaction/<uid>/`, where the browser's interaction cookie proves it is
 *     the browser that started the sign-in (a callback URL planted in another browser
 *     goes nowhere).
 *  3. Return (`/interaction/:uid/idp/:idp/return`): exchange the code, validate the
 *     id_token, map the account, park the upstream login for the session, and finish
 *     the interaction. The session hook (`oidc/session-hooks.ts`) turns the parked
 *     login into the authentication record once the session exists.
 */
import { createHash, randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Config } from '../config/schema.ts';
import { UpstreamError, type Connector } from '../connectors/types.ts';
import { AppError } from '../errors.ts';
import type { FederatedAccounts } from '../federation/accounts.ts';
import type { IdentityProviders } from '../federation/identity-providers.ts';
import type { PendingUpstreamLogin } from '../federation/pending.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { upstreamErrorPage } from '../views/pages.ts';
import type { Csrf } from './csrf.ts';
import type { AuditLog } from '../admin/audit.ts';
import { clientOf, finishInteraction, interactionExpired, loadInteraction, unexpectedStep, type InteractionDetails } from './interaction.ts';
import { LOCAL, chooseSignIn, plainLoginHint } from './sign-in-choice.ts';

interface LoginTransaction {
  idp: string;
  interactionUid: string;
  nonce: string;
  codeVerifier: string;
}

interface CallbackHandoff {
  tx: LoginTransaction;
  params: { code?: string; error?: string; error_description?: string; iss?: string };
}

const HANDOFF_TTL_SECONDS = 300;
const random = () => randomBytes(32).toString('base64url');

export interface FederationDeps {
  audit: AuditLog;
  provider: Provider;
  config: Config;
  store: KeyValueStore;
  keys: Keys;
  idps: IdentityProviders;
  accounts: FederatedAccounts;
  csrf: Csrf;
}

export function createFederation(deps: FederationDeps) {
  const { provider, config, store, keys, idps, accounts, csrf, audit } = deps;
  const callbackUrl = (idp: string) => `${config.issuer}/federation/${idp}/callback`;

  async function allowedFor(interaction: InteractionDetails, idp: string): Promise<boolean> {
    const client = await clientOf(provider, interaction);
    const allowed = client?.['allowed_idps'] as string[] | undefined;
    return !allowed || allowed.includes(idp);
  }

  async function showUpstreamError(ctx: Context, interaction: InteractionDetails, connector: Connector | undefined, idp: string, err: UpstreamError | AppError) {
    const client = await clientOf(provider, interaction);
    const unavailable = err instanceof UpstreamError && err.kind === 'unavailable';
    const idpName = connector?.settings.displayName ?? idp;
    const message =
      err instanceof AppError
        ? err.publicMessage
        : unavailable
          ? `${idpName} could not be reached. Try again in a moment.`
          : err.kind === 'rejected'
            ? `${idpName} did not sign you in.`
            : `${idpName} answered with something Sallyport cannot accept, so you were not signed in.`;
    const kind = err instanceof UpstreamError ? err.kind : err.code;
    (ctx.state['logger'] as { warn(o: object, m: string): void }).warn({ idp, kind, detail: err.message }, 'upstream sign-in failed');
    await audit.record({ type: 'signin.failed', outcome: 'failure', clientId: String(interaction.params['client_id']), ip: ctx.ip, details: { method: 'federated', idp, reason: kind } });
    ctx.status = unavailable ? 504 : 502;
    ctx.set('cache-control', 'no-store');
    ctx.type = 'html';
    ctx.body = upstreamErrorPage({
      idpName,
      clientName: client?.clientName ?? String(interaction.params['client_id']),
      message,
      csrfToken: csrf.issue(ctx, interaction.uid),
      abortAction: `/interaction/${interaction.uid}/abort`,
      reason: unavailable ? 'upstream_unavailable' : 'upstream_failed',
      retryHref: `/interaction/${interaction.uid}`,
      requestId: String(ctx.state['requestId'] ?? ''),
    });
  }

  /** Step 1: send the browser to the provider. */
  async function start(ctx: Context, interaction: InteractionDetails, idp: string): Promise<void> {
    const connector = await idps.get(idp);
    if (!connector || !(await allowedFor(interaction, idp))) {
      throw new AppError({ code: 'unknown_idp', status: 404, message: 'This identity provider is not available for this application.', detail: idp });
    }
    const state = random();
    const tx: LoginTransaction = { idp, interactionUid: interaction.uid, nonce: random(), codeVerifier: random() };
    const reasons = (interaction.prompt.reasons ?? []) as string[];
    const maxAge = interaction.params['max_age'];
    let url: URL;
    try {
      url = await connector.authorizationUrl({
        redirectUri: callbackUrl(idp),
        state,
        nonce: tx.nonce,
        codeChallenge: createHash('sha256').update(tx.codeVerifier).digest('base64url'),
        ...(reasons.includes('login_prompt') ? { prompt: 'login' as const } : {}),
        ...(maxAge !== undefined && /^\d+$/.test(String(maxAge)) ? { maxAge: Number(maxAge) } : {}),
        ...(plainLoginHint(interaction.params) ? { loginHint: plainLoginHint(interaction.params)! } : {}),
      });
    } catch (err) {
      if (err instanceof UpstreamError) return showUpstreamError(ctx, interaction, connector, idp, err);
      throw err;
    }
    await store.set(keys.fedLoginTx(state), JSON.stringify(tx), { ttl: config.tokens.interaction });
    ctx.set('cache-control', 'no-store');
    ctx.status = 303;
    ctx.redirect(url.href);
  }

  const interactionRouter = new Router({ prefix: '/interaction/:uid/idp/:idp' });

  interactionRouter.get('/', async (ctx) => {
    const interaction = await loadInteraction(provider, ctx);
    if (interaction.prompt.name !== 'login') throw unexpectedStep();
    await start(ctx, interaction, ctx.params['idp']!);
  });

  /** Step 3. */
  interactionRouter.get('/return', async (ctx) => {
    const interaction = await loadInteraction(provider, ctx);
    const ref = typeof ctx.query['ref'] === 'string' ? ctx.query['ref'] : '';
    const raw = ref ? await store.getDel(keys.fedCallback(ref)) : null;
    if (!raw) throw interactionExpired();
    const { tx, params } = JSON.parse(raw) as CallbackHandoff;
    const idp = ctx.params['idp']!;
    if (tx.interactionUid !== interaction.uid || tx.idp !== idp || interaction.prompt.name !== 'login') throw interactionExpired();
    const connector = await idps.get(idp);
    if (!connector) throw new AppError({ code: 'unknown_idp', status: 404, message: 'This identity provider is no longer available.', detail: idp });

    if (params.error || !params.code) {
      return showUpstreamError(ctx, interaction, connector, idp, new UpstreamError(idp, 'rejected', `authorization error ${params.error ?? 'missing code'}: ${params.error_description ?? ''}`));
    }
    let pending: PendingUpstreamLogin;
    let accountId: string;
    let login;
    try {
      login = await connector.exchangeCode({ code: params.code, redirectUri: callbackUrl(idp), codeVerifier: tx.codeVerifier, nonce: tx.nonce, iss: params.iss });
      const user = await accounts.resolve(connector.settings, login);
      accountId = user.id;
      pending = { idp, issuer: login.issuer, sub: login.sub, sid: login.sid, idToken: login.idToken, authTime: login.authTime ?? Math.floor(Date.now() / 1000), accountId };
    } catch (err) {
      if (err instanceof UpstreamError || (err instanceof AppError && err.code === 'account_disabled')) return showUpstreamError(ctx, interaction, connector, idp, err);
      throw err;
    }
    await audit.record({
      type: 'signin.succeeded',
      outcome: 'success',
      actor: { accountId },
      clientId: String(interaction.params['client_id']),
      ip: ctx.ip,
      details: { method: 'federated', idp },
    });
    const pendingRef = random();
    await store.set(keys.fedPending(pendingRef), JSON.stringify(pending), { ttl: config.tokens.interaction });
    await finishInteraction(
      provider,
      ctx,
      {
        login: {
          accountId,
          remember: true,
          ts: pending.authTime,
          ...(login.amr ? { amr: login.amr } : {}),
          ...(login.acr ? { acr: login.acr } : {}),
        },
        fed: { ref: pendingRef },
      },
      false,
    );
  });

  const callbackRouter = new Router();
  /** Step 2. */
  callbackRouter.get('/federation/:idp/callback', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const q = (k: string) => (typeof ctx.query[k] === 'string' && (ctx.query[k] as string).length <= 4096 ? (ctx.query[k] as string) : undefined);
    const state = q('state');
    const raw = state ? await store.getDel(keys.fedLoginTx(state)) : null;
    if (!raw) {
      throw new AppError({
        code: 'login_transaction_expired',
        status: 400,
        message: 'This sign-in attempt has expired or was already completed. Return to the application and start again.',
      });
    }
    const tx = JSON.parse(raw) as LoginTransaction;
    if (tx.idp !== ctx.params['idp']) throw new AppError({ code: 'login_transaction_mismatch', status: 400, message: 'This sign-in response does not belong to this identity provider.' });
    const params: CallbackHandoff['params'] = {};
    for (const k of ['code', 'error', 'error_description', 'iss'] as const) {
      const v = q(k);
      if (v !== undefined) params[k] = v;
    }
    const ref = random();
    await store.set(keys.fedCallback(ref), JSON.stringify({ tx, params } satisfies CallbackHandoff), { ttl: HANDOFF_TTL_SECONDS });
    ctx.status = 303;
    ctx.redirect(`/interaction/${tx.interactionUid}/idp/${encodeURIComponent(tx.idp)}/return?ref=${ref}`);
  });

  return {
    start,
    interactionRouter,
    callbackRouter,
    /** Sign-in choice for the login prompt: where to go without showing the page. */
    async choose(interaction: InteractionDetails) {
      const client = await clientOf(provider, interaction);
      const enabled = await idps.listEnabled();
      const allowed = client?.['allowed_idps'] as string[] | undefined;
      const choice = chooseSignIn({ params: interaction.params, allowed, localEnabled: config.login.local, idps: enabled });
      const offered = enabled.filter((i) => !allowed || allowed.includes(i.id));
      const local = config.login.local && (!allowed || allowed.includes(LOCAL));
      return { choice, offered, local };
    },
  };
}

export type Federation = ReturnType<typeof createFederation>;
