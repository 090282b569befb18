/**
 * Which admin scopes a client or a person holds right now: the scopes of the roles
 * granted to the client, or to the person's groups. Read at token issuance (so a token
 * never carries more) and again on every admin request (so removing a role takes effect
 * at once, not when the token expires).
 */
import type { Config } from '../config/schema.ts';
import type { GroupStore } from '../storage/group-store.ts';
import type { UserStore } from '../storage/user-store.ts';
import { DEFAULT_ROLES, scopesOfRoles, type AdminScope } from './scopes.ts';

export interface Entitlements {
  roles: Readonly<Record<string, readonly string[]>>;
  forClientRoles(roles: readonly string[] | undefined): Set<AdminScope>;
  forAccount(accountId: string): Promise<Set<AdminScope>>;
}

export function createEntitlements(deps: { config: Config; users: UserStore; groups: GroupStore }): Entitlements {
  const roles = { ...DEFAULT_ROLES, ...deps.config.roles };
  return {
    roles,
    forClientRoles: (names) => scopesOfRoles(roles, names ?? []),
    async forAccount(accountId) {
      const user = await deps.users.getUser(accountId);
      if (!user || user.disabled) return new Set();
      const groups = await Promise.all(user.groups.map((g) => deps.groups.getGroup(g)));
      return scopesOfRoles(roles, groups.flatMap((g) => g?.roles ?? []));
    },
  };
}
