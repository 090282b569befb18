/**
 * /admin/v1/groups: groups, the admin roles they grant, and their members. Membership
 * is stored on the user records (`user.groups`, indexed per group by the user store),
 * so adding or removing a member is a write of that user; a member's admin scopes
 * follow on their next request (entitlements are read per request).
 *
 * A group name is what memberships point at, so a group never disappears while a
 * membership can still be added to it unnoticed: adding a member re-reads the group
 * after the user write (and undoes the write if the group is gone), and deleting a group
 * strips the members it finds after the delete. One of the two always sees the other,
 * so no membership outlives its group to be inherited by a later group of that name.
 */
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError, badRequest, notFound, preconditionFailed } from '../errors.ts';
import type { Group } from '../storage/group-store.ts';
import type { User } from '../storage/user-store.ts';
import { actorOf, etagOf, ifMatchVersion, listQuery, page, pageSchema } from './common.ts';
import { route, type Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';
import { assertMayGrant, groupName, managedByConfig, uniqueArray, updateUser } from './users.ts';

const groupOutput = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    roles: z.array(z.string()),
    source: z.enum(['config', 'admin']).describe('config: declared in the config file (read-only here)'),
    createdAt: z.string(),
    updatedAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'Group' });

const groupDetail = groupOutput
  .extend({
    mappedFrom: z
      .array(z.object({ idp: z.string(), upstreamGroup: z.string() }))
      .describe('upstream groups that identity providers map to this group (managed on the identity provider)'),
  })
  .meta({ id: 'GroupDetail' });

const memberOutput = z.object({ id: z.string(), username: z.string() }).meta({ id: 'GroupMember' });

const nameParams = z.object({ name: groupName });
const memberParams = z.object({ name: groupName, userId: z.string().min(1).max(200) });

const deleteQuery = z.strictObject({
  force: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe('true: remove the group from every member first (members declared in the config file keep their declaration)'),
});

export function groupRoutes(deps: AdminApiDeps): Route<never, never, never>[] {
  const { users, groups, audit, store, keys, idpStore, entitlements } = deps;
  const roleNames = Object.keys(entitlements.roles);

  // Built here, not at module level: the roles a group may grant are the configured
  // ones, and listing them in the schema puts them in the OpenAPI document too.
  const role = z.enum(roleNames as [string, ...string[]]);
  const groupFields = {
    description: z.string().max(500).optional(),
    roles: uniqueArray(role, 50).default([]).describe('admin roles granted to every member'),
  };
  const groupCreate = z.strictObject({ name: groupName, ...groupFields }).meta({ id: 'GroupInput' });
  const groupReplace = z
    .strictObject({ name: groupName.optional().describe('must equal the name in the path when given'), ...groupFields })
    .meta({ id: 'GroupReplace' });

  const declared = async () => new Set(await store.sMembers(keys.declaredGroups()));

  async function load(name: string): Promise<Group> {
    const group = await groups.getGroup(name);
    if (!group) throw notFound('group', 'name');
    // Declared in the file now, even if the record predates the declaration.
    return (await declared()).has(name) ? { ...group, source: 'config' } : group;
  }

  const groupOf = (g: Group): z.infer<typeof groupOutput> => ({
    name: g.name,
    ...(g.description !== undefined ? { description: g.description } : {}),
    roles: g.roles,
    source: g.source,
    createdAt: g.createdAt,
    updatedAt: g.updatedAt,
    version: g.version,
  });

  /**
   * The members, read from the user records: the per-group index can hold an id whose
   * write lost a race (the store adds index entries before the record), so it is a
   * list of candidates only.
   */
  async function members(name: string): Promise<User[]> {
    const ids = [...new Set(await users.listGroupMemberIds(name))].sort();
    const found = await Promise.all(ids.map((id) => users.getUser(id)));
    return found.filter((u): u is User => !!u && u.groups.includes(name));
  }

  async function mappingsTo(name: string): Promise<Array<{ idp: string; upstreamGroup: string }>> {
    const out: Array<{ idp: string; upstreamGroup: string }> = [];
    for (const id of (await idpStore.listIdpIds()).sort()) {
      const mappings = (await idpStore.getIdp(id))?.record.declaration.groupMappings ?? {};
      for (const [upstreamGroup, targets] of Object.entries(mappings)) if (targets.includes(name)) out.push({ idp: id, upstreamGroup });
    }
    return out;
  }

  function assertWritable(group: Group) {
    if (group.source === 'config') throw managedByConfig('group', 'name');
  }

  async function loadUser(id: string): Promise<User> {
    const user = await users.getUser(id);
    if (!user) throw notFound('user', 'userId');
    return user;
  }

  /** Remove `name` from one user's groups; audited as a membership change. */
  async function removeMember(name: string, userId: string, ctx: Context, actor: ReturnType<typeof actorOf>, reason: string): Promise<boolean> {
    let removed = false;
    await updateUser(deps, userId, (fresh) => {
      removed = fresh.groups.includes(name);
      return { groups: fresh.groups.filter((g) => g !== name) };
    }).catch((err: unknown) => {
      // Deleted meanwhile: nothing left to remove.
      if (!(err instanceof AppError && err.status === 404)) throw err;
    });
    if (removed) {
      await audit.record({
        type: 'group.member_removed',
        outcome: 'success',
        actor,
        target: { kind: 'user', id: userId },
        ip: ctx.ip,
        details: { group: name, reason },
      });
    }
    return removed;
  }

  return [
    route({
      method: 'get',
      path: '/groups',
      scope: 'groups.read',
      tag: 'groups',
      summary: 'List groups (filter: substring of the name or description)',
      query: listQuery,
      success: { status: 200, schema: pageSchema(groupOutput), description: 'a page of groups, ordered by name' },
      async handler({ query }) {
        const names = [...new Set(await groups.listGroupNames())].sort();
        const needle = query.filter?.toLowerCase();
        const isDeclared = await declared();
        // Group records are few and small: filter first, then page, so pages are full.
        const all = (await Promise.all(names.map((n) => groups.getGroup(n)))).filter(
          (g): g is Group => !!g && (!needle || g.name.toLowerCase().includes(needle) || !!g.description?.toLowerCase().includes(needle)),
        );
        const selected = page(
          all.map((g) => g.name),
          query,
        );
        const byName = new Map(all.map((g) => [g.name, g]));
        const items = selected.ids.map((n) => byName.get(n)!).map((g) => groupOf(isDeclared.has(g.name) ? { ...g, source: 'config' } : g));
        return { items, ...(selected.next ? { next: selected.next } : {}) };
      },
    }),
    route({
      method: 'post',
      path: '/groups',
      scope: 'groups.write',
      tag: 'groups',
      summary: 'Create a group (granting a role needs the scopes it brings)',
      body: groupCreate,
      success: { status: 201, schema: groupOutput, description: 'the group' },
      errors: [409, 413, 415],
      async handler({ body, principal, ctx }) {
        assertMayGrant(principal, entitlements.roles, body.roles);
        // 409 `name` when it exists (the store creates with SET NX).
        const group = await groups.createGroup({ name: body.name, description: body.description, roles: body.roles, source: 'admin' });
        await audit.record({
          type: 'group.created',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'group', id: group.name },
          ip: ctx.ip,
          details: { roles: group.roles },
        });
        ctx.set('etag', etagOf(group.version));
        ctx.set('location', `/admin/v1/groups/${encodeURIComponent(group.name)}`);
        return groupOf(group);
      },
    }),
    route({
      method: 'get',
      path: '/groups/:name',
      scope: 'groups.read',
      tag: 'groups',
      summary: 'Read a group (with the IdP group mappings that point at it)',
      params: nameParams,
      success: { status: 200, schema: groupDetail, description: 'the group' },
      errors: [404],
      async handler({ params, ctx }) {
        const group = await load(params.name);
        ctx.set('etag', etagOf(group.version));
        return { ...groupOf(group), mappedFrom: await mappingsTo(params.name) };
      },
    }),
    route({
      method: 'put',
      path: '/groups/:name',
      scope: 'groups.write',
      tag: 'groups',
      summary: 'Replace a group\'s description and roles; If-Match for optimistic concurrency',
      params: nameParams,
      body: groupReplace,
      success: { status: 200, schema: groupOutput, description: 'the updated group' },
      errors: [404, 409, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        if (body.name !== undefined && body.name !== params.name) throw badRequest('a group cannot be renamed', 'name');
        const expected = ifMatchVersion(ctx);
        let updated: Group;
        for (let attempt = 1; ; attempt++) {
          const current = await load(params.name);
          assertWritable(current);
          assertMayGrant(
            principal,
            entitlements.roles,
            body.roles.filter((r) => !current.roles.includes(r)),
          );
          // Written over the version just checked (the store compares the whole
          // record), so a config declaration applied meanwhile is never overwritten:
          // with If-Match that is a 412; without, the checks run again on the new record.
          try {
            updated = await groups.updateGroup(params.name, { description: body.description, roles: body.roles }, expected ?? current.version);
            break;
          } catch (err) {
            if (expected !== undefined || attempt >= 5 || !(err instanceof AppError) || err.status !== 412) throw err;
          }
        }
        await audit.record({
          type: 'group.updated',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'group', id: params.name },
          ip: ctx.ip,
          details: { roles: updated.roles },
        });
        ctx.set('etag', etagOf(updated.version));
        return groupOf(updated);
      },
    }),
    route({
      method: 'delete',
      path: '/groups/:name',
      scope: 'groups.write',
      tag: 'groups',
      summary: 'Delete a group (409 group_not_empty while it has members, unless force=true)',
      params: nameParams,
      query: deleteQuery,
      success: { status: 204, description: 'deleted' },
      errors: [404, 409, 412],
      async handler({ params, query, principal, ctx }) {
        const expected = ifMatchVersion(ctx);
        const current = await load(params.name);
        assertWritable(current);
        if (expected !== undefined && expected !== current.version) throw preconditionFailed();
        const before = await members(params.name);
        if (before.length > 0 && !query.force) {
          throw new AppError({
            code: 'group_not_empty',
            status: 409,
            message: `the group has ${before.length} member(s); remove them first or delete with ?force=true`,
            field: 'name',
          });
        }
        // 1. The group first (compare-and-delete against the version checked): from
        //    here on no member can be added, and no role is granted through it.
        await groups.deleteGroup(params.name, current.version);
        await audit.record({
          type: 'group.deleted',
          outcome: 'success',
          actor: actorOf(principal),
          target: { kind: 'group', id: params.name },
          ip: ctx.ip,
          details: { force: query.force, members: before.length },
        });
        // 2. Then its memberships, read after the delete so a member added meanwhile is
        //    found too. Members declared in the config file keep the name: the file
        //    says they belong, and it is where that changes.
        const actor = actorOf(principal);
        for (const member of await members(params.name)) {
          if (member.source === 'config') continue;
          await removeMember(params.name, member.id, ctx, actor, 'group deleted');
        }
      },
    }),
    route({
      method: 'get',
      path: '/groups/:name/members',
      scope: 'groups.read',
      tag: 'groups',
      summary: 'List the members of a group (filter: substring of the username)',
      params: nameParams,
      query: listQuery,
      success: { status: 200, schema: pageSchema(memberOutput), description: 'a page of members, ordered by user id' },
      errors: [404],
      async handler({ params, query }) {
        await load(params.name);
        const needle = query.filter?.toLowerCase();
        const all = (await members(params.name)).filter((u) => !needle || u.username.toLowerCase().includes(needle));
        const selected = page(
          all.map((u) => u.id),
          query,
        );
        const byId = new Map(all.map((u) => [u.id, u]));
        return { items: selected.ids.map((id) => ({ id, username: byId.get(id)!.username })), ...(selected.next ? { next: selected.next } : {}) };
      },
    }),
    route({
      method: 'put',
      path: '/groups/:name/members/:userId',
      scope: 'groups.write',
      tag: 'groups',
      summary: 'Add a user to a group (idempotent; needs the scopes of the roles the group grants)',
      params: memberParams,
      success: { status: 204, description: 'the user is a member' },
      errors: [404, 409],
      async handler({ params, principal, ctx }) {
        const group = await load(params.name);
        const user = await loadUser(params.userId);
        if (user.source === 'config') throw managedByConfig('user', 'userId');
        assertMayGrant(principal, entitlements.roles, group.roles);
        // Already a member: nothing to write (the record's version stays).
        if (user.groups.includes(params.name)) return;
        let added = false;
        await updateUser(deps, params.userId, (fresh) => {
          if (fresh.source === 'config') throw managedByConfig('user', 'userId');
          added = !fresh.groups.includes(params.name);
          return added ? { groups: [...fresh.groups, params.name] } : {};
        });
        // The group may have been deleted while the user was written; its delete may
        // not have seen this member, so the membership is undone here.
        if (!(await groups.getGroup(params.name))) {
          if (added) {
            await updateUser(deps, params.userId, (fresh) => ({ groups: fresh.groups.filter((g) => g !== params.name) })).catch((err: unknown) => {
              if (!(err instanceof AppError && err.status === 404)) throw err;
            });
          }
          throw notFound('group', 'name');
        }
        if (added) {
          await audit.record({
            type: 'group.member_added',
            outcome: 'success',
            actor: actorOf(principal),
            target: { kind: 'user', id: params.userId },
            ip: ctx.ip,
            details: { group: params.name },
          });
        }
      },
    }),
    route({
      method: 'delete',
      path: '/groups/:name/members/:userId',
      scope: 'groups.write',
      tag: 'groups',
      summary: 'Remove a user from a group (idempotent)',
      params: memberParams,
      success: { status: 204, description: 'the user is not a member' },
      errors: [404, 409],
      async handler({ params, principal, ctx }) {
        const user = await loadUser(params.userId);
        // A user may still name a group that no longer exists (declared in the file,
        // or mapped from an IdP); removing that name is allowed.
        if (!user.groups.includes(params.name)) {
          await load(params.name);
          return;
        }
        if (user.source === 'config') throw managedByConfig('user', 'userId');
        await removeMember(params.name, params.userId, ctx, actorOf(principal), 'removed');
      },
    }),
  ] as unknown as Route<never, never, never>[];
}
