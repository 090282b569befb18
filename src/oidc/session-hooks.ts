/**
 * Provider post-middleware that ties upstream sign-ins to our sessions.
 *
 * - On `resume` after an upstream login: the parked login becomes the session's
 *   authentication record, keyed by the session uid (the uid survives the re-keying
 *   of the session cookie on every sign-in). Only when the session really belongs to
 *   that account: when another account was signed in, oidc-provider first runs its
 *   internal logout and comes back to resume later, and the parked login waits.
 * - On every authorization that ends in a redirect to a client: the per-client `sid`
 *   of this session is added to the record, so a later id_token_hint (which carries
 *   that sid) finds the record even after the session is gone.
 *
 * Failures here are logged and do not fail the sign-in: the person is signed in
 * either way; what is lost is only the upstream part of a later logout.
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { AuthRecordStore } from '../federation/auth-records.ts';
import type { PendingUpstreamLogin } from '../federation/pending.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';

export function installSessionHooks(provider: Provider, deps: { store: KeyValueStore; keys: Keys; authRecords: AuthRecordStore }): void {
  const { store, keys, authRecords } = deps;
  provider.use(async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const oidc = ctx.oidc;
    if (!oidc || (oidc.route !== 'resume' && oidc.route !== 'authorization')) return;
    const session = oidc.session;
    if (!session?.accountId || (session as unknown as { destroyed?: boolean }).destroyed) return;
    try {
      const result = oidc.result as { fed?: { ref?: unknown }; login?: { accountId?: string } } | undefined;
      const ref = oidc.route === 'resume' ? result?.fed?.ref : undefined;
      if (typeof ref === 'string' && result?.login?.accountId === session.accountId) {
        const raw = await store.getDel(keys.fedPending(ref));
        if (raw) {
          const pending = JSON.parse(raw) as PendingUpstreamLogin;
          if (pending.accountId === session.accountId) {
            await authRecords.save({ ...pending, sessionUid: session.uid });
          }
        }
      }
      const clientId = oidc.client?.clientId;
      const sid = clientId ? session.sidFor(clientId) : undefined;
      if (clientId && sid && ctx.status >= 300 && ctx.status < 400) {
        await authRecords.addClientSid(session.uid, clientId, sid);
      }
    } catch (err) {
      (ctx.state['logger'] as Logger | undefined)?.error({ err }, 'could not update the authentication record');
    }
  });
}
