/**
 * /admin/v1/users/:id/sessions and /admin/v1/users/:id/tokens: a person's live sessions
 * (with what we know of the upstream sign-in behind each), ending them, and revoking
 * every grant they gave. Sessions are ended through the same routine as a back-channel
 * logout (src/logout/end-sessions.ts), so RPs are notified the same way.
 *
 * The authentication record is shown without its upstream id_token, raw or encrypted:
 * that token is a bearer credential at the upstream's logout endpoint.
 */
import type { Session } from 'oidc-provider';
import { z } from 'zod';
import { notFound } from '../errors.ts';
import type { AuthRecord } from '../federation/auth-records.ts';
import { actorOf } from './common.ts';
import { route, type Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

const userParams = z.object({ id: z.string().min(1).max(200) });
const sessionParams = userParams.extend({ uid: z.string().min(1).max(100) });

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

const authenticationSchema = z
  .object({
    idp: z.string().describe('the identity provider the person signed in through'),
    issuer: z.string().describe('upstream issuer'),
    sub: z.string().describe('upstream subject'),
    sid: z.string().optional().describe('upstream session id, when the provider issues one'),
    authTime: z.string().describe('when the person authenticated upstream'),
    clientSids: z.record(z.string(), z.string()).describe('client_id → the sid we issued that client in this session'),
    recordedAt: z.string(),
  })
  .meta({ id: 'SessionAuthentication' });

const sessionSchema = z
  .object({
    uid: z.string(),
    accountId: z.string(),
    loginAt: z.string().optional(),
    lastActiveAt: z.string().optional().describe('derived from the sliding idle expiry; absent once the maximum lifetime caps the session'),
    expiresAt: z.string().optional(),
    amr: z.array(z.string()).optional(),
    acr: z.string().optional(),
    clients: z.array(z.string()).describe('clients that were signed in with this session'),
    authentication: authenticationSchema.optional().describe('present when the person signed in through an upstream identity provider'),
  })
  .meta({ id: 'Session' });

type SessionOutput = z.infer<typeof sessionSchema>;

export function sessionRoutes(deps: AdminApiDeps): Route<never, never, never>[] {
  const { provider, store, keys, users, authRecords, sessions, audit, config } = deps;

  /**
   * 404 unless the account exists — or is gone but still has sessions or grants indexed
   * (ending those must stay possible after its record was deleted).
   */
  async function assertAccount(id: string, leftovers: string): Promise<void> {
    if (await users.getUser(id)) return;
    if ((await store.sMembers(leftovers)).length > 0) return;
    throw notFound('user', 'id');
  }

  /** A live session of this account, or undefined (expired, ended, or someone else's). */
  async function liveSession(accountId: string, uid: string): Promise<Session | undefined> {
    const session = await provider.Session.findByUid(uid);
    return session?.accountId === accountId ? session : undefined;
  }

  function authentication(record: AuthRecord): z.infer<typeof authenticationSchema> {
    // Field by field, so nothing added to the record later (or the id_token) leaks here.
    return {
      idp: record.idp,
      issuer: record.issuer,
      sub: record.sub,
      ...(record.sid ? { sid: record.sid } : {}),
      authTime: iso(record.authTime),
      clientSids: { ...record.clientSids },
      recordedAt: iso(record.createdAt),
    };
  }

  async function describe(session: Session, accountId: string): Promise<SessionOutput> {
    const record = await authRecords.get(session.uid);
    const exp = typeof session.exp === 'number' ? session.exp : undefined;
    // The session's expiry slides to "last use + idleTimeout" until the maximum lifetime
    // caps it (src/oidc/provider.ts, ttl.Session); below the cap, the last use follows.
    const capped = session.loginTs !== undefined && exp !== undefined && exp >= session.loginTs + config.session.maxLifetime;
    const lastActive = exp !== undefined && !capped ? exp - config.session.idleTimeout : undefined;
    return {
      uid: session.uid,
      accountId,
      ...(session.loginTs ? { loginAt: iso(session.loginTs) } : {}),
      ...(lastActive !== undefined ? { lastActiveAt: iso(Math.max(lastActive, session.loginTs ?? lastActive)) } : {}),
      ...(exp !== undefined ? { expiresAt: iso(exp) } : {}),
      ...(session.amr ? { amr: [...session.amr] } : {}),
      ...(session.acr ? { acr: session.acr } : {}),
      clients: Object.keys(session.authorizations ?? {}).sort(),
      ...(record && record.accountId === accountId ? { authentication: authentication(record) } : {}),
    };
  }


  return [
    route({
      method: 'get',
      path: '/users/:id/sessions',
      scope: 'sessions.read',
      tag: 'sessions',
      summary: 'A user\'s live sessions, with the upstream sign-in behind each (never its tokens)',
      params: userParams,
      success: { status: 200, schema: z.object({ items: z.array(sessionSchema) }), description: 'live sessions, newest sign-in first' },
      errors: [404],
      async handler({ params }) {
        await assertAccount(params.id, keys.accountSessions(params.id));
        const uids = await store.sMembers(keys.accountSessions(params.id));
        // The index outlives sessions that expired; only live ones are listed.
        const found = await Promise.all(uids.map((uid) => liveSession(params.id, uid)));
        const items = await Promise.all(found.filter((s): s is Session => !!s).map((s) => describe(s, params.id)));
        items.sort((a, b) => (b.loginAt ?? '').localeCompare(a.loginAt ?? '') || a.uid.localeCompare(b.uid));
        return { items };
      },
    }),
    route({
      method: 'delete',
      path: '/users/:id/sessions/:uid',
      scope: 'sessions.write',
      tag: 'sessions',
      summary: 'End one session (its RPs are notified by back-channel logout; tokens bound to it are revoked)',
      params: sessionParams,
      success: { status: 204, description: 'ended' },
      errors: [404],
      async handler({ params, principal, ctx }) {
        if (!(await liveSession(params.id, params.uid))) throw notFound('session', 'uid');
        const ended = await sessions.endSession(params.uid, 'admin');
        // Ended meanwhile by someone else (logout, another admin): the outcome is the same.
        await audit.record({
          type: 'session.ended',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'session', id: params.uid },
          ip: ctx.ip,
          details: { accountId: params.id, live: ended },
        });
      },
    }),
    route({
      method: 'delete',
      path: '/users/:id/sessions',
      scope: 'sessions.write',
      tag: 'sessions',
      summary: 'End every session of a user ("sign out everywhere"); offline (refresh) tokens survive — revoke them with /tokens/revoke',
      params: userParams,
      success: { status: 200, schema: z.object({ ended: z.number().int().describe('live sessions ended') }), description: 'how many sessions were ended' },
      errors: [404],
      async handler({ params, principal, ctx }) {
        await assertAccount(params.id, keys.accountSessions(params.id));
        const ended = await sessions.endAccountSessions(params.id, 'admin');
        await audit.record({ type: 'user.sessions_ended', outcome: 'success', actor: actorOf(principal), target: { kind: 'user', id: params.id }, ip: ctx.ip, details: { ended } });
        return { ended };
      },
    }),
    route({
      method: 'post',
      path: '/users/:id/tokens/revoke',
      scope: 'sessions.write',
      tag: 'sessions',
      summary: 'Revoke every grant of a user: all their access, refresh (offline) and other tokens, for every client',
      params: userParams,
      success: { status: 200, schema: z.object({ revoked: z.number().int().describe('grants revoked') }), description: 'how many grants were revoked' },
      errors: [404],
      async handler({ params, principal, ctx }) {
        const index = keys.accountGrants(params.id);
        await assertAccount(params.id, index);
        let revoked = 0;
        for (const grantId of await store.sMembers(index)) {
          const live = !!(await provider.Grant.adapter.find(grantId));
          // Tokens, then the grant, then the index entry: a failure midway leaves the
          // grant id indexed, so retrying the request finishes the job.
          await provider.AccessToken.adapter.revokeByGrantId(grantId);
          await provider.Grant.adapter.destroy(grantId);
          await store.sRem(index, grantId);
          if (live) revoked++;
        }
        await audit.record({ type: 'user.grants_revoked', outcome: 'success', actor: actorOf(principal), target: { kind: 'user', id: params.id }, ip: ctx.ip, details: { grants: revoked } });
        return { revoked };
      },
    }),
  ] as unknown as Route<never, never, never>[];
}
