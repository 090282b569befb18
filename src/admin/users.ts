/**
 * /admin/v1/users: accounts. Local accounts are created here (or declared in the config
 * file); accounts from upstream IdPs are provisioned just in time and can be edited,
 * disabled and deleted here too. Password hashes are written, never read back: every
 * response says only `hasPassword`.
 *
 * Optimistic concurrency rides on the record's own version (ETag `"<version>"`): the
 * user store compares the whole record when it writes, so of N writers holding the same
 * If-Match exactly one succeeds and the others get 412.
 */
import { z } from 'zod';
import { hashPassword } from '../accounts/passwords.ts';
import { AppError, badRequest, notFound, preconditionFailed } from '../errors.ts';
import type { NewUser, User } from '../storage/user-store.ts';
import type { Principal } from './auth.ts';
import { etagOf, ifMatchVersion, listQuery, pageSchema, actorOf } from './common.ts';
import { route, type Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';
import { satisfies, scopesOfRoles, type AdminScope } from './scopes.ts';

/** As in the config file's user declarations. */
const USERNAME = /^[\w.@+-]+$/;
/**
 * Accounts provisioned from an IdP are named `<idp>:<name>`; a new or renamed local
 * account cannot take that form, so it cannot pose as (or block) a federated one.
 */
const STORED_USERNAME = /^[\w.@+:-]+$/;
export const groupName = z.string().min(1).max(100).regex(/^[\w.:@-]+$/, 'letters, digits and . _ : @ - only');

/** An array whose items are unique; a duplicate is reported at its own index. */
export function uniqueArray<T extends z.ZodType<string>>(item: T, max: number) {
  return z
    .array(item)
    .max(max)
    .superRefine((values, ctx) => {
      values.forEach((v, i) => {
        if (values.indexOf(v) !== i) ctx.addIssue({ code: 'custom', message: `"${v}" is listed twice`, path: [i] });
      });
    });
}

const profileFields = {
  email: z.email().max(254).optional(),
  emailVerified: z.boolean().default(false),
  name: z.string().min(1).max(200).optional(),
  givenName: z.string().min(1).max(100).optional(),
  familyName: z.string().min(1).max(100).optional(),
  groups: uniqueArray(groupName, 100).default([]).describe('names of existing groups'),
};

const password = z.string().min(8, 'must be at least 8 characters').max(1024);

const userCreate = z
  .strictObject({
    username: z.string().min(1).max(100).regex(USERNAME, 'letters, digits and . _ @ + - only'),
    ...profileFields,
    password: password.optional().describe('stored as an scrypt hash; without one the account can sign in only through an IdP'),
    disabled: z.boolean().default(false),
  })
  .meta({ id: 'UserInput' });

const userReplace = z
  .strictObject({
    username: z.string().min(1).max(100).regex(STORED_USERNAME, 'letters, digits and . _ @ + : - only'),
    ...profileFields,
    disabled: z.boolean().optional().describe('absent: unchanged; true ends the account\'s sessions'),
  })
  .meta({ id: 'UserReplace' });

const userOutput = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string().optional(),
    emailVerified: z.boolean(),
    name: z.string().optional(),
    givenName: z.string().optional(),
    familyName: z.string().optional(),
    groups: z.array(z.string()),
    disabled: z.boolean(),
    hasPassword: z.boolean(),
    source: z.enum(['config', 'admin', 'federation']).describe('config: declared in the config file (read-only here except password and enabled state)'),
    createdAt: z.string(),
    updatedAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'User' });

const identityOutput = z.object({ idp: z.string(), sub: z.string() }).meta({ id: 'LinkedIdentity' });

const userQuery = listQuery.extend({
  username: z.string().min(1).max(100).optional().describe('exact username (case-insensitive)'),
  email: z.string().min(1).max(254).optional().describe('exact email address (case-insensitive)'),
});

const idParams = z.object({ id: z.string().min(1).max(200) });

export function userOf(u: User): z.infer<typeof userOutput> {
  // Field by field, so nothing added to the record later (a hash, a secret) leaks.
  return {
    id: u.id,
    username: u.username,
    ...(u.email !== undefined ? { email: u.email } : {}),
    emailVerified: u.emailVerified,
    ...(u.name !== undefined ? { name: u.name } : {}),
    ...(u.givenName !== undefined ? { givenName: u.givenName } : {}),
    ...(u.familyName !== undefined ? { familyName: u.familyName } : {}),
    groups: u.groups,
    disabled: u.disabled,
    hasPassword: !!u.passwordHash,
    source: u.source,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
    version: u.version,
  };
}


const insufficientScope = (scope: AdminScope, message: string) => new AppError({ code: 'insufficient_scope', status: 403, message, field: scope });

/**
 * Group membership and group roles hand out admin scopes, so changing them must not be
 * a way to gain more than one holds: granting a role needs every scope the role brings
 * (a token with groups.write but not sallyport.admin cannot make anyone an admin, itself
 * included).
 */
export function assertMayGrant(principal: Principal, roles: Readonly<Record<string, readonly string[]>>, granted: readonly string[]): void {
  for (const name of granted) {
    for (const scope of scopesOfRoles(roles, [name])) {
      if (!satisfies(principal.scopes, scope)) throw insufficientScope(scope, `granting the role "${name}" needs the scope ${scope}, which this token does not hold`);
    }
  }
}

export const managedByConfig = (what: string, field: string) =>
  new AppError({ code: 'managed_by_config', status: 409, message: `this ${what} is declared in the config file; change it there`, field });

/**
 * `users.updateUser` with If-Match semantics: with an expected version, a stale one is
 * 412 at once; without one, a write that lost a race to an unrelated change is applied
 * again on the fresh record (the change function re-runs, so its checks do too).
 */
export async function updateUser(deps: Pick<AdminApiDeps, 'users'>, id: string, change: (current: User) => Partial<NewUser>, expected?: number): Promise<User> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await deps.users.updateUser(id, change, expected);
    } catch (err) {
      if (expected !== undefined || attempt >= 5 || !(err instanceof AppError) || err.status !== 412) throw err;
    }
  }
}

export function userRoutes(deps: AdminApiDeps): Route<never, never, never>[] {
  const { users, groups, audit, sessions, store, keys } = deps;

  async function load(id: string): Promise<User> {
    const user = await users.getUser(id);
    if (!user) throw notFound('user', 'id');
    return user;
  }

  /**
   * A change of groups through /users is a membership change: it needs groups.write as
   * the /groups/:name/members routes do, and new groups must exist and grant no more
   * than the caller holds. `already` (the record's current groups) are kept as they are,
   * existing or not.
   */
  async function assertGroupsChange(principal: Principal, names: readonly string[], already: readonly string[] = []): Promise<void> {
    const added = names.filter((g) => !already.includes(g));
    const removed = already.filter((g) => !names.includes(g));
    if ((added.length > 0 || removed.length > 0) && !satisfies(principal.scopes, 'groups.write')) {
      throw insufficientScope('groups.write', 'changing group membership needs the scope groups.write');
    }
    const found = await Promise.all(names.map((g) => (already.includes(g) ? null : groups.getGroup(g))));
    for (const [i, group] of found.entries()) {
      if (group === null) continue;
      if (!group) throw badRequest(`group "${names[i]!}" does not exist`, `groups[${i}]`);
      assertMayGrant(principal, deps.entitlements.roles, group.roles);
    }
  }

  const respond = (ctx: { set(k: string, v: string): void }, user: User) => {
    ctx.set('etag', etagOf(user.version));
    return userOf(user);
  };

  /** Profile fields of a create or replace body, with absent optional fields removed from the record. */
  const profileOf = (body: z.infer<typeof userReplace>) => ({
    username: body.username,
    email: body.email,
    emailVerified: body.emailVerified,
    name: body.name,
    givenName: body.givenName,
    familyName: body.familyName,
    groups: body.groups,
  });

  return [
    route({
      method: 'get',
      path: '/users',
      scope: 'users.read',
      tag: 'users',
      summary: 'List users (filter: substring of username or email)',
      query: userQuery,
      success: { status: 200, schema: pageSchema(userOutput), description: 'a page of users, ordered by id' },
      async handler({ query }) {
        let ids: string[];
        if (query.username !== undefined) {
          const byName = await users.getUserByUsername(query.username);
          ids = byName ? [byName.id] : [];
        } else if (query.email !== undefined) {
          ids = await users.listUserIdsByEmail(query.email);
        } else {
          ids = await users.listUserIds();
        }
        ids = [...new Set(ids)].sort();
        const needle = query.filter?.toLowerCase();
        const matches = (u: User) =>
          (query.username === undefined || u.username.toLowerCase() === query.username.toLowerCase()) &&
          (query.email === undefined || u.email?.toLowerCase() === query.email.toLowerCase()) &&
          (needle === undefined || u.username.toLowerCase().includes(needle) || !!u.email?.toLowerCase().includes(needle));
        // Keyset pagination over the matching records (not over all ids), so a filtered
        // page is full unless it is the last, and `next` is absent exactly on the last.
        const start = query.cursor === undefined ? 0 : ids.findIndex((id) => id > query.cursor!);
        const items: User[] = [];
        let next: string | undefined;
        const BATCH = 100;
        for (let i = start < 0 ? ids.length : start; i < ids.length && next === undefined; i += BATCH) {
          const batch = await Promise.all(ids.slice(i, i + BATCH).map((id) => users.getUser(id)));
          for (const u of batch) {
            if (!u || !matches(u)) continue;
            if (items.length === query.limit) {
              next = items.at(-1)!.id;
              break;
            }
            items.push(u);
          }
        }
        return { items: items.map(userOf), ...(next ? { next } : {}) };
      },
    }),
    route({
      method: 'post',
      path: '/users',
      scope: 'users.write',
      tag: 'users',
      summary: 'Create a user (with groups: also needs groups.write, and the scopes of the roles those groups grant)',
      body: userCreate,
      success: { status: 201, schema: userOutput, description: 'the user' },
      errors: [409, 413, 415],
      async handler({ body, principal, ctx }) {
        await assertGroupsChange(principal, body.groups);
        const passwordHash = body.password ? await hashPassword(body.password) : undefined;
        // The store writes the record, then claims the username (409 `username` when
        // taken) and rolls everything back on failure: nothing half-written.
        const user = await users.createUser(
          withoutUndefined({ ...profileOf(body), disabled: body.disabled, source: 'admin' as const, passwordHash }) as NewUser,
        );
        await audit.record({
          type: 'user.created',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'user', id: user.id },
          ip: ctx.ip,
          details: { username: user.username, groups: user.groups, disabled: user.disabled },
        });
        ctx.set('location', `/admin/v1/users/${encodeURIComponent(user.id)}`);
        return respond(ctx, user);
      },
    }),
    route({
      method: 'get',
      path: '/users/:id',
      scope: 'users.read',
      tag: 'users',
      summary: 'Read a user',
      params: idParams,
      success: { status: 200, schema: userOutput, description: 'the user' },
      errors: [404],
      async handler({ params, ctx }) {
        return respond(ctx, await load(params.id));
      },
    }),
    route({
      method: 'put',
      path: '/users/:id',
      scope: 'users.write',
      tag: 'users',
      summary: 'Replace a user\'s profile and groups (password and linked identities are kept; changing groups also needs groups.write); If-Match for optimistic concurrency',
      params: idParams,
      body: userReplace,
      success: { status: 200, schema: userOutput, description: 'the updated user' },
      errors: [404, 409, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        const expected = ifMatchVersion(ctx);
        const current = await load(params.id);
        if (current.source === 'config') throw managedByConfig('user', 'id');
        if (body.username.toLowerCase() !== current.username.toLowerCase() && !USERNAME.test(body.username)) {
          throw badRequest('a new username may use letters, digits and . _ @ + - only (":" marks accounts from identity providers)', 'username');
        }
        await assertGroupsChange(principal, body.groups, current.groups);
        let before: User | undefined;
        const updated = await updateUser(
          deps,
          params.id,
          (fresh) => {
            // Checked again on the record being replaced: the checks above read an
            // earlier copy.
            if (fresh.source === 'config') throw managedByConfig('user', 'id');
            before = fresh;
            return { ...profileOf(body), disabled: body.disabled ?? fresh.disabled };
          },
          expected,
        );
        const changed = (['username', 'email', 'emailVerified', 'name', 'givenName', 'familyName', 'groups', 'disabled'] as const).filter(
          (k) => JSON.stringify(before?.[k]) !== JSON.stringify(updated[k]),
        );
        let sessionsEnded = 0;
        if (updated.disabled && !before?.disabled) sessionsEnded = await sessions.endAccountSessions(params.id, 'user disabled');
        await audit.record({
          type: 'user.updated',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'user', id: params.id },
          ip: ctx.ip,
          details: { changed, ...(sessionsEnded ? { sessionsEnded } : {}) },
        });
        return respond(ctx, updated);
      },
    }),
    route({
      method: 'delete',
      path: '/users/:id',
      scope: 'users.write',
      tag: 'users',
      summary: 'Delete a user and end their sessions',
      params: idParams,
      success: { status: 204, description: 'deleted' },
      errors: [404, 409, 412],
      async handler({ params, principal, ctx }) {
        const expected = ifMatchVersion(ctx);
        const claimed = await load(params.id);
        if (claimed.source === 'config') throw managedByConfig('user', 'id');
        // Compare-and-delete on the record: of a racing PUT and DELETE holding the same
        // ETag, one gets 412.
        await users.deleteUser(params.id, expected ?? claimed.version);
        // Links from upstream identities would otherwise point at nothing (federation
        // tolerates that, but the keyspace should not keep them).
        for (const identity of claimed.identities ?? []) await store.delIfEquals(keys.fedLink(identity.idp, identity.sub), params.id);
        const sessionsEnded = await sessions.endAccountSessions(params.id, 'user deleted');
        await audit.record({
          type: 'user.deleted',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'user', id: params.id },
          ip: ctx.ip,
          details: { username: claimed.username, sessionsEnded },
        });
      },
    }),
    route({
      method: 'post',
      path: '/users/:id/password',
      scope: 'users.write',
      tag: 'users',
      summary: 'Set or reset a user\'s password (also clears a sign-in lockout)',
      params: idParams,
      body: z.strictObject({ password }).meta({ id: 'PasswordInput' }),
      success: { status: 200, schema: userOutput, description: 'the user' },
      errors: [404, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        const expected = ifMatchVersion(ctx);
        await load(params.id);
        const passwordHash = await hashPassword(body.password);
        let replaced = false;
        const updated = await updateUser(
          deps,
          params.id,
          (fresh) => {
            replaced = !!fresh.passwordHash;
            return { passwordHash };
          },
          expected,
        );
        // A reset is how a locked-out person gets back in: the failure counter goes too.
        await store.del(keys.loginFailures(updated.username));
        await audit.record({
          type: replaced ? 'user.password_reset' : 'user.password_set',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'user', id: params.id },
          ip: ctx.ip,
          details: { lockoutCleared: true },
        });
        return respond(ctx, updated);
      },
    }),
    ...(['disable', 'enable'] as const).map((action) =>
      route({
        method: 'post',
        path: `/users/:id/${action}`,
        scope: 'users.write',
        tag: 'users',
        summary: action === 'disable' ? 'Disable a user: sign-in is refused and every session of theirs ends' : 'Enable a disabled user',
        params: idParams,
        success: { status: 200, schema: userOutput, description: 'the user' },
        errors: [404, 412],
        async handler({ params, principal, ctx }) {
          const expected = ifMatchVersion(ctx);
          const disabled = action === 'disable';
          const current = await load(params.id);
          // Checked here too, because an unchanged record is not written.
          if (expected !== undefined && expected !== current.version) throw preconditionFailed();
          const user = current.disabled === disabled ? current : await updateUser(deps, params.id, () => ({ disabled }), expected);
          // Sessions end after the flag is stored, so no sign-in can slip in between;
          // and on every disable, also a repeated one.
          const sessionsEnded = disabled ? await sessions.endAccountSessions(params.id, 'user disabled') : 0;
          if (user !== current || sessionsEnded > 0) {
            await audit.record({
              type: disabled ? 'user.disabled' : 'user.enabled',
              outcome: 'success',
              actor: actorOf(principal),
              target: { kind: 'user', id: params.id },
              ip: ctx.ip,
              ...(disabled ? { details: { sessionsEnded } } : {}),
            });
          }
          return respond(ctx, user);
        },
      }),
    ),
    route({
      method: 'get',
      path: '/users/:id/identities',
      scope: 'users.read',
      tag: 'users',
      summary: 'The upstream identities linked to a user',
      params: idParams,
      success: { status: 200, schema: z.object({ items: z.array(identityOutput) }), description: 'linked identities' },
      errors: [404],
      async handler({ params, ctx }) {
        const user = await load(params.id);
        ctx.set('etag', etagOf(user.version));
        return { items: (user.identities ?? []).map((i) => ({ idp: i.idp, sub: i.sub })) };
      },
    }),
  ] as unknown as Route<never, never, never>[];
}

/** Drop undefined values (optional fields that were not given are not stored). */
function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
