/**
 * Interactions: the pages a person sees between an authorization request and the
 * redirect back to the application — sign-in and consent. oidc-provider decides which
 * prompt is due; these routes render it, check the submission and hand the result back
 * with `interactionResult`.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { PasswordAuthenticator } from '../accounts/authenticate.ts';
import type { Config } from '../config/schema.ts';
import { AppError } from '../errors.ts';
import { readForm } from '../http/form.ts';
import type { UserStore } from '../storage/user-store.ts';
import { consentPage, loginPage } from '../views/pages.ts';
import type { Csrf } from './csrf.ts';

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionDeps {
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
  const { provider, config, users, authenticate, csrf } = deps;
  const router = new Router({ prefix: '/interaction/:uid' });

  router.use(async (ctx, next) => {
    // Pages with CSRF tokens and personal data are never cached.
    ctx.set('cache-control', 'no-store');
    await next();
  });

  /** The interaction bound to this browser, checked against the uid in the path. */
  async function details(ctx: Context): Promise<InteractionDetails> {
    let found: InteractionDetails;
    try {
      found = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      if (err instanceof errors.SessionNotFound) throw interactionExpired(err);
      throw err;
    }
    // The library reads the interaction from its cookie and ignores the path; a
    // mismatch means a stale tab or a crafted link.
    if (found.uid !== ctx.params['uid']) throw interactionExpired();
    return found;
  }

  async function clientName(interaction: InteractionDetails): Promise<string> {
    const client = await provider.Client.find(String(interaction.params['client_id']));
    return client?.clientName ?? String(interaction.params['client_id']);
  }

  async function renderLogin(ctx: Context, interaction: InteractionDetails, extra: { username?: string; error?: string } = {}) {
    ctx.type = 'html';
    ctx.body = loginPage({
      clientName: await clientName(interaction),
      action: `/interaction/${interaction.uid}/login`,
      cancelAction: `/interaction/${interaction.uid}/abort`,
      csrfToken: csrf.issue(ctx, interaction.uid),
      localLogin: config.login.local,
      providers: [],
      ...extra,
    });
  }

  async function finish(ctx: Context, result: Parameters<Provider['interactionResult']>[2], merge: boolean) {
    const location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(location);
  }

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
      case 'login':
        return renderLogin(ctx, interaction);
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
    if (interaction.prompt.name !== 'login' || !config.login.local) {
      throw new AppError({ code: 'unexpected_step', status: 400, message: 'This sign-in step is not expected now. Return to the application and start again.' });
    }
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    if (!username || !password || username.length > 100 || password.length > 1024) {
      ctx.status = 400;
      return renderLogin(ctx, interaction, { username: username.slice(0, 100), error: INVALID_CREDENTIALS });
    }
    const outcome = await authenticate(username, password);
    if (!outcome.ok) {
      ctx.status = 401;
      const error =
        outcome.reason === 'locked'
          ? `Too many failed sign-in attempts. Try again in ${Math.ceil(outcome.retryAfterSeconds / 60)} minute(s).`
          : INVALID_CREDENTIALS;
      return renderLogin(ctx, interaction, { username, error });
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
      throw new AppError({ code: 'unexpected_step', status: 400, message: 'This sign-in step is not expected now. Return to the application and start again.' });
    }
    if (form.get('decision') === 'allow') {
      return finish(ctx, { consent: { grantId: await saveGrant(interaction) } }, true);
    }
    return finish(ctx, { error: 'access_denied', error_description: 'End-User denied the request' }, false);
  });

  router.post('/abort', async (ctx) => {
    const interaction = await details(ctx);
    await readCheckedForm(ctx, interaction);
    return finish(ctx, { error: 'access_denied', error_description: 'End-User aborted the sign-in' }, false);
  });

  return router;
}

function interactionExpired(cause?: unknown): AppError {
  return new AppError({
    code: 'interaction_expired',
    status: 400,
    message: 'This sign-in page has expired or was opened in another browser. Return to the application and start again.',
    ...(cause ? { cause } : {}),
  });
}

export { SCOPE_DESCRIPTIONS };
