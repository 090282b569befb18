/**
 * Admin API authorization: scopes, roles (named sets of scopes) and who holds them.
 * Roles are granted to clients (client metadata `roles`) and to groups (group records);
 * a person's admin scopes come from the roles of their groups.
 */
export const ADMIN_SCOPES = [
  'sallyport.admin',
  'clients.read',
  'clients.write',
  'users.read',
  'users.write',
  'groups.read',
  'groups.write',
  'idps.read',
  'idps.write',
  'sessions.read',
  'sessions.write',
  'events.read',
] as const;

export type AdminScope = (typeof ADMIN_SCOPES)[number];

export const isAdminScope = (s: string): s is AdminScope => (ADMIN_SCOPES as readonly string[]).includes(s);

/** Built-in roles; the config file can add more or redefine these. */
export const DEFAULT_ROLES: Record<string, AdminScope[]> = {
  admin: ['sallyport.admin'],
  auditor: ['clients.read', 'users.read', 'groups.read', 'idps.read', 'sessions.read', 'events.read'],
};

/** `sallyport.admin` holds every admin scope. */
export function satisfies(granted: ReadonlySet<string>, needed: AdminScope): boolean {
  return granted.has(needed) || granted.has('sallyport.admin');
}

/** The admin scopes of some roles; `sallyport.admin` brings every other scope with it. */
export function scopesOfRoles(roles: Readonly<Record<string, readonly string[]>>, names: Iterable<string>): Set<AdminScope> {
  const out = new Set<AdminScope>();
  for (const name of names) for (const scope of roles[name] ?? []) if (isAdminScope(scope)) out.add(scope);
  if (out.has('sallyport.admin')) for (const scope of ADMIN_SCOPES) out.add(scope);
  return out;
}
