/**
 * Interactions: the pages a person sees between an authorization request and the
 * redirect back to the application — sign-in and consent. oidc-provider decides which
 * prompt is due; these routes render it, check the submission and hand the result back
 * with `interactionResult`.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { PasswordAuthenticator } from '../accounts/authenticate.ts';
import type { Config } from '../config/schema.ts';
import { AppError } from '../errors.ts';
import { readForm } from '../http/form.ts';
import type { UserStore } from '../storage/user-store.ts';
import { consentPage, loginPage } from '../views/pages.ts';
import type { Csrf } from './csrf.ts';
import type { AuditLog } from '../admin/audit.ts';
import type { Federation } from './federation.ts';
import { plainLoginHint } from './sign-in-choice.ts';
import { finishInteraction, interactionExpired, loadInteraction, unexpectedStep, type InteractionDetails, type InteractionResult } from './interaction.ts';


export interface InteractionDeps {
  audit: AuditLog;
  federation: Federation;
  provider: Provider;
  config: Config;
  users: UserStore;
  authenticate: PasswordAuthenticator;
  csrf: Csrf;
}

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Sign you in with your account',
  profile: 'See your name and username',
  email: 'See your email address',
  groups: 'See the groups you belong to',
  offline_access: 'Keep access while you are not using it',
};

const INVALID_CREDENTIALS = 'Invalid username or password.';

export function createInteractionRoutes(deps: InteractionDeps): Router {
  const { provider, config, users, authenticate, csrf, federation, audit } = deps;
  const router = new Router({ prefix: '/interaction/:uid' });

  router.use(async (ctx, next) => {
    // Pages with CSRF tokens and personal data are never cached.
    ctx.set('cache-control', 'no-store');
    await next();
  });

  const details = (ctx: Context) => loadInteraction(provider, ctx);

  async function clientName(interaction: InteractionDetails): Promise<string> {
    const client = await provider.Client.find(String(interaction.params['client_id']));
    return client?.clientName ?? String(interaction.params['client_id']);
  }

  type Ways = Awaited<ReturnType<Federation['choose']>>;

  /** The sign-in page; `ways` is the choice the caller already made for this interaction. */
  async function renderLogin(ctx: Context, interaction: InteractionDetails, ways: Ways, extra: { username?: string; error?: string } = {}) {
    const { offered, local } = ways;
    const hint = plainLoginHint(interaction.params);
    ctx.type = 'html';
    ctx.body = loginPage({
      clientName: await clientName(interaction),
      action: `/interaction/${interaction.uid}/login`,
      cancelAction: `/interaction/${interaction.uid}/abort`,
      csrfToken: csrf.issue(ctx, interaction.uid),
      localLogin: local,
      providers: offered.map((i) => ({ id: i.id, displayName: i.displayName, href: `/interaction/${interaction.uid}/idp/${i.id}` })),
      ...(hint && !hint.startsWith('{') ? { username: hint } : {}),
      ...extra,
    });
  }

  const finish = (ctx: Context, result: InteractionResult, merge: boolean) => finishInteraction(provider, ctx, result, merge);

  async function readCheckedForm(ctx: Context, interaction: InteractionDetails): Promise<URLSearchParams> {
    const form = await readForm(ctx);
    if (!csrf.verify(ctx, interaction.uid, form.get('csrf'))) {
      throw new AppError({
        code: 'csrf_failed',
        status: 403,
        message: 'This form has expired or did not come from this site. Go back, reload the page and try again.',
      });
    }
    return form;
  }

  router.get('/', async (ctx) => {
    const interaction = await details(ctx);
    switch (interaction.prompt.name) {
      case 'login': {
        const ways = await federation.choose(interaction);
        const { choice } = ways;
        // Hints, the client's allowed list and the configured ways decide; the page
        // is shown only when the person has a choice to make.
        if (choice.kind === 'idp') return federation.start(ctx, interaction, choice.idp);
        if (choice.kind === 'none') {
          throw new AppError({ code: 'no_sign_in_method', status: 400, message: 'No way to sign in is available for this application. Contact your administrator.' });
        }
        return renderLogin(ctx, interaction, ways);
      }
      case 'consent': {
        const client = await provider.Client.find(String(interaction.params['client_id']));
        // First-party applications are trusted by the operator: grant what they ask for.
        if (client?.['first_party'] === true) return finish(ctx, { consent: { grantId: await saveGrant(interaction) } }, true);
        return renderConsent(ctx, interaction);
      }
      default:
        throw new AppError({ code: 'unsupported_prompt', status: 400, message: 'This sign-in step is not supported.', detail: interaction.prompt.name });
    }
  });

  router.post('/login', async (ctx) => {
    const interaction = await details(ctx);
    const form = await readCheckedForm(ctx, interaction);
    const ways = await federation.choose(interaction);
    if (interaction.prompt.name !== 'login' || !ways.local) {
      throw unexpectedStep();
    }
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    if (!username || !password || username.length > 100 || password.length > 1024) {
      ctx.status = 400;
      return renderLogin(ctx, interaction, ways, { username: username.slice(0, 100), error: INVALID_CREDENTIALS });
    }
    const outcome = await authenticate(username, password);
    const clientId = String(interaction.params['client_id']);
    await audit.record(
      outcome.ok
        ? { type: 'signin.succeeded', outcome: 'success', actor: { accountId: outcome.user.id }, clientId, ip: ctx.ip, details: { method: 'password', username } }
        : { type: 'signin.failed', outcome: 'failure', clientId, ip: ctx.ip, details: { method: 'password', username, reason: outcome.reason } },
    );
    if (!outcome.ok) {
      ctx.status = 401;
      const error =
        outcome.reason === 'locked'
          ? `Too many failed sign-in attempts. Try again in ${Math.ceil(outcome.retryAfterSeconds / 60)} minute(s).`
          : INVALID_CREDENTIALS;
      return renderLogin(ctx, interaction, ways, { username, error });
    }
    return finish(
      ctx,
      { login: { accountId: outcome.user.id, amr: ['pwd'], remember: true, ts: Math.floor(Date.now() / 1000) } },
      false,
    );
  });

  async function renderConsent(ctx: Context, interaction: InteractionDetails) {
    const client = await provider.Client.find(String(interaction.params['client_id']));
    const accountId = interaction.session?.accountId;
    const user = accountId ? await users.getUser(accountId) : undefined;
    const promptDetails = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    ctx.type = 'html';
    ctx.body = consentPage({
      clientName: client?.clientName ?? String(interaction.params['client_id']),
      ...(client?.clientUri ? { clientUri: client.clientUri } : {}),
      ...(client?.policyUri ? { policyUri: client.policyUri } : {}),
      ...(client?.tosUri ? { tosUri: client.tosUri } : {}),
      userName: user?.name ?? user?.username ?? '',
      action: `/interaction/${interaction.uid}/consent`,
      csrfToken: csrf.issue(ctx, interaction.uid),
      scopes: (promptDetails.missingOIDCScope ?? []).map((name) => ({ name, description: SCOPE_DESCRIPTIONS[name] ?? name })),
      resources: Object.entries(promptDetails.missingResourceScopes ?? {}).map(([indicator, scopes]) => ({ indicator, scopes })),
    });
  }

  /** Record consent for everything the prompt says is missing; returns the grant id. */
  async function saveGrant(interaction: InteractionDetails): Promise<string> {
    const accountId = interaction.session?.accountId;
    if (!accountId) throw interactionExpired();
    const promptDetails = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    // The grant the session already holds may have been revoked (e.g. after a replayed
    // code); then a new one is created rather than failing the sign-in.
    let grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
    grant ??= new provider.Grant({ accountId, clientId: String(interaction.params['client_id']) });
    if (promptDetails.missingOIDCScope?.length) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    if (promptDetails.missingOIDCClaims?.length) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    return grant.save();
  }

  router.post('/consent', async (ctx) => {
    const interaction = await details(ctx);
    const form = await readCheckedForm(ctx, interaction);
    if (interaction.prompt.name !== 'consent') {
      throw unexpectedStep();
    }
    if (form.get('decision') === 'allow') {
      return finish(ctx, { consent: { grantId: await saveGrant(interaction) } }, true);
    }
    return finish(ctx, { error: 'access_denied', error_description: 'End-User denied the request' }, false);
  });

  router.post('/abort', async (ctx) => {
    const interaction = await details(ctx);
    const form = await readCheckedForm(ctx, interaction);
    // The reason only picks among fixed outcomes for the person's own sign-in.
    const reason = form.get('reason');
    const result =
      reason === 'upstream_unavailable'
        ? { error: 'temporarily_unavailable', error_description: 'The identity provider could not be reached' }
        : reason === 'upstream_failed'
          ? { error: 'access_denied', error_description: 'Sign-in at the identity provider failed' }
          : { error: 'access_denied', error_description: 'End-User aborted the sign-in' };
    return finish(ctx, result, false);
  });

  return router;
}

export { SCOPE_DESCRIPTIONS };
