/**
 * The one routine for server-side logout: end a session without a browser. Used by
 * inbound back-channel logout from an upstream IdP, by logout requests whose hint names
 * a session in another browser, and by the admin API.
 *
 * It does what oidc-provider's own end_session_confirm does for a browser (OIDC
 * RP-Initiated Logout + Back-Channel Logout 1.0): notify each RP of the session that
 * registered a back-channel logout URI, revoke the grants that do not outlive the
 * session, destroy the session; then drop our authentication record.
 */
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { AuditLog } from '../admin/audit.ts';
import type { AuthRecordStore } from '../federation/auth-records.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';

interface SessionAuthorization {
  sid?: string;
  grantId?: string;
  persistsLogout?: boolean;
}

export interface SessionTerminator {
  /** End one session by uid; returns whether a live session was found. */
  endSession(sessionUid: string, reason: string): Promise<boolean>;
  /** End every session of an account ("log out everywhere"). */
  endAccountSessions(accountId: string, reason: string): Promise<number>;
}

export function createSessionTerminator(deps: { provider: Provider; store: KeyValueStore; keys: Keys; authRecords: AuthRecordStore; logger: Logger; audit: AuditLog }): SessionTerminator {
  const { provider, store, keys, authRecords, logger, audit } = deps;

  async function endSession(sessionUid: string, reason: string): Promise<boolean> {
    const session = await provider.Session.findByUid(sessionUid);
    if (session) {
      const authorizations = (session.authorizations ?? {}) as Record<string, SessionAuthorization>;
      // 1. Tell the RPs first, as the browser logout does, so they drop their own
      //    sessions even if a later step fails.
      await Promise.all(
        Object.entries(authorizations).map(async ([clientId, authorization]) => {
          const client = await provider.Client.find(clientId);
          const notify = client as unknown as { backchannelLogoutUri?: string; backchannelLogout?: (sub: string, sid?: string) => Promise<void> } | undefined;
          if (!notify?.backchannelLogoutUri || !notify.backchannelLogout || !session.accountId) return;
          try {
            await notify.backchannelLogout(session.accountId, authorization.sid);
          } catch (err) {
            logger.warn({ err, clientId, reason }, 'back-channel logout to a client failed');
          }
        }),
      );
      // 2. Revoke what was bound to the session (offline_access grants persist, as in
      //    the browser logout).
      for (const authorization of Object.values(authorizations)) {
        if (authorization.persistsLogout || !authorization.grantId) continue;
        await provider.AccessToken.adapter.revokeByGrantId(authorization.grantId);
        await provider.Grant.adapter.destroy(authorization.grantId);
      }
      // 3. The session itself.
      await session.destroy();
      if (session.accountId) await store.sRem(keys.accountSessions(session.accountId), sessionUid);
    }
    await authRecords.remove(sessionUid);
    logger.info({ sessionUid, reason, live: !!session }, 'session ended server-side');
    if (session) {
      await audit.record({ type: 'signout', outcome: 'success', actor: session.accountId ? { accountId: session.accountId } : undefined, target: { kind: 'session', id: sessionUid }, details: { method: 'server-side', reason } });
    }
    return !!session;
  }

  return {
    endSession,
    async endAccountSessions(accountId, reason) {
      let ended = 0;
      for (const uid of await store.sMembers(keys.accountSessions(accountId))) {
        if (await endSession(uid, reason)) ended++;
        await store.sRem(keys.accountSessions(accountId), uid);
      }
      return ended;
    },
  };
}
