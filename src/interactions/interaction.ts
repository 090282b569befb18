/**
 * Shared handling of one oidc-provider interaction for our routes: load it (bound to
 * this browser by the provider's cookie, checked against the uid in the path), and
 * finish it with a result.
 */
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { AppError } from '../errors.ts';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;
export type InteractionResult = Parameters<Provider['interactionResult']>[2];

export async function loadInteraction(provider: Provider, ctx: Context): Promise<InteractionDetails> {
  let found: InteractionDetails;
  try {
    found = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    if (err instanceof errors.SessionNotFound) throw interactionExpired(err);
    throw err;
  }
  // The library reads the interaction from its cookie and ignores the path; a mismatch
  // means a stale tab or a crafted link.
  if (found.uid !== ctx.params['uid']) throw interactionExpired();
  return found;
}

export async function finishInteraction(provider: Provider, ctx: Context, result: InteractionResult, merge: boolean): Promise<void> {
  const location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
  ctx.status = 303;
  ctx.redirect(location);
}

export function interactionExpired(cause?: unknown): AppError {
  return new AppError({
    code: 'interaction_expired',
    status: 400,
    message: 'This sign-in page has expired or was opened in another browser. Return to the application and start again.',
    ...(cause ? { cause } : {}),
  });
}

export function unexpectedStep(): AppError {
  return new AppError({ code: 'unexpected_step', status: 400, message: 'This sign-in step is not expected now. Return to the application and start again.' });
}

export async function clientOf(provider: Provider, interaction: InteractionDetails) {
  return provider.Client.find(String(interaction.params['client_id']));
}
