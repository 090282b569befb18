/**
 * Declarative configuration: clients and users listed in the config file are written to
 * the store at start-up (like Dex's static config), so the rest of the server — and
 * later the admin API — sees one source of records. A client removed from the file is
 * removed from the store; records created through other means are never touched.
 */
import type Provider from 'oidc-provider';
import { hashPassword, verifyPassword } from '../accounts/passwords.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import type { UserStore } from '../storage/user-store.ts';
import type { IdpStore } from '../storage/idp-store.ts';
import type { GroupStore } from '../storage/group-store.ts';
import { resolveIdpSettings } from '../connectors/registry.ts';
import { ConfigError } from './load.ts';
import type { Config } from './schema.ts';

export async function applyDeclaredClients(config: Config, provider: Provider, store: KeyValueStore, keys: Keys): Promise<void> {
  const problems: string[] = [];
  const metadata = config.clients.map((c) => {
    const { require_pkce, first_party, ...standard } = structuredClone(c) as Record<string, unknown> & typeof c;
    return {
      ...standard,
      ...(require_pkce === undefined ? {} : { require_pkce }),
      ...(first_party === undefined ? {} : { first_party }),
    };
  });
  // Validate every client before writing any, so a bad file changes nothing.
  for (const [i, m] of metadata.entries()) {
    try {
      await provider.Client.validate(m as never);
    } catch (err) {
      const e = err as { error_description?: string; message: string };
      problems.push(`clients[${i}] (${m.client_id}): ${e.error_description ?? e.message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError('clients', problems);

  // The Client model's adapter is the provider's client lookup: writing through it is
  // what makes a client visible (to every instance, on the next request).
  const adapter = (provider.Client as unknown as {
    adapter: { find(id: string): Promise<Record<string, unknown> | undefined>; upsert(id: string, p: object): Promise<void>; destroy(id: string): Promise<void> };
  }).adapter;

  const managedKey = keys.declaredClients();
  const previous = new Set(await store.sMembers(managedKey));
  for (const m of metadata) {
    // Mark as declared before writing, so a crash never leaves an unmarked copy behind.
    await store.sAdd(managedKey, m.client_id);
    // Bookkeeping the admin API shows (version, timestamps); an unchanged declaration
    // writes nothing.
    const existing = await adapter.find(m.client_id);
    const { sallyport_version, sallyport_created_at, sallyport_updated_at, sallyport_source, ...existingMetadata } = existing ?? {};
    void sallyport_updated_at;
    if (existing && sallyport_source === 'config' && JSON.stringify(existingMetadata) === JSON.stringify(m)) {
      previous.delete(m.client_id);
      continue;
    }
    const now = new Date().toISOString();
    await adapter.upsert(m.client_id, {
      ...m,
      sallyport_version: (typeof sallyport_version === 'number' ? sallyport_version : 0) + 1,
      sallyport_source: 'config',
      sallyport_created_at: typeof sallyport_created_at === 'string' && sallyport_created_at ? sallyport_created_at : now,
      sallyport_updated_at: now,
    });
    previous.delete(m.client_id);
  }
  for (const removed of previous) {
    await adapter.destroy(removed);
    await store.sRem(managedKey, removed);
  }
}

export async function applyDeclaredUsers(config: Config, users: UserStore): Promise<void> {
  for (const declared of config.users) {
    // Instances starting together apply the same file: losing a create or update race
    // to another instance just means reading its result and applying again.
    for (let attempt = 1; ; attempt++) {
      try {
        await applyDeclaredUser(declared, users);
        break;
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (attempt >= 3 || (status !== 409 && status !== 412)) throw err;
      }
    }
  }
}

async function applyDeclaredUser(declared: Config['users'][number], users: UserStore): Promise<void> {
  const existing = await users.getUserByUsername(declared.username);
  // Keep the stored hash when the declared password still matches it: re-hashing on
  // every start would change the record on every instance for nothing.
  let passwordHash = declared.passwordHash;
  if (declared.password) {
    passwordHash =
      existing?.passwordHash && (await verifyPassword(declared.password, existing.passwordHash))
        ? existing.passwordHash
        : await hashPassword(declared.password);
  }
  const fields = {
    username: declared.username,
    emailVerified: declared.emailVerified,
    groups: [...declared.groups],
    disabled: false,
    source: 'config' as const,
    ...(declared.email ? { email: declared.email } : {}),
    ...(declared.name ? { name: declared.name } : {}),
    ...(declared.givenName ? { givenName: declared.givenName } : {}),
    ...(declared.familyName ? { familyName: declared.familyName } : {}),
    ...(passwordHash ? { passwordHash } : {}),
  };
  if (existing) {
    // Unchanged declarations write nothing (no version bump on every restart); the
    // enabled/disabled state belongs to operators, not to the file.
    const unchanged = Object.entries(fields).every(
      ([k, v]) => k === 'disabled' || JSON.stringify(existing[k as keyof typeof existing]) === JSON.stringify(v),
    );
    if (unchanged) return;
    await users.updateUser(existing.id, (current) => ({ ...fields, disabled: current.disabled }), existing.version);
  } else {
    await users.createUser(fields);
  }
}

/** Identity providers from the file; validated all first, so a bad file changes nothing. */
export async function applyDeclaredIdps(config: Config, idps: IdpStore, store: KeyValueStore, keys: Keys): Promise<void> {
  const problems: string[] = [];
  config.identityProviders.forEach((decl, i) => {
    const resolved = resolveIdpSettings(decl);
    if ('problems' in resolved) for (const p of resolved.problems) problems.push(`identityProviders[${i}].${p.path}: ${p.message}`);
  });
  if (problems.length > 0) throw new ConfigError('identityProviders', problems);

  const previous = new Set(await store.sMembers(keys.declaredIdps()));
  for (const decl of config.identityProviders) {
    await store.sAdd(keys.declaredIdps(), decl.id);
    const current = await idps.getIdp(decl.id);
    if (JSON.stringify(current?.record.declaration) !== JSON.stringify(decl)) {
      try {
        await idps.putIdp(decl, 'config', current?.record.version);
      } catch (err) {
        // Another instance applied the same file at the same moment.
        if ((err as { status?: number }).status !== 412) throw err;
      }
    }
    previous.delete(decl.id);
  }
  for (const removed of previous) {
    if (await idps.getIdp(removed)) await idps.deleteIdp(removed).catch(() => undefined);
    await store.sRem(keys.declaredIdps(), removed);
  }
}

/** Groups from the file (description and roles); membership stays on the users. */
export async function applyDeclaredGroups(config: Config, groups: GroupStore, store: KeyValueStore, keys: Keys): Promise<void> {
  const previous = new Set(await store.sMembers(keys.declaredGroups()));
  for (const decl of config.groups) {
    await store.sAdd(keys.declaredGroups(), decl.name);
    const current = await groups.getGroup(decl.name);
    const wanted = { description: decl.description, roles: [...decl.roles], source: 'config' as const };
    try {
      if (!current) await groups.createGroup({ name: decl.name, ...wanted });
      else if (JSON.stringify([current.description, current.roles, current.source]) !== JSON.stringify([wanted.description, wanted.roles, wanted.source])) {
        await groups.updateGroup(decl.name, wanted, current.version);
      }
    } catch (err) {
      // Another instance applied the same file at the same moment.
      const status = (err as { status?: number }).status;
      if (status !== 409 && status !== 412) throw err;
    }
    previous.delete(decl.name);
  }
  for (const removed of previous) {
    await groups.deleteGroup(removed).catch(() => undefined);
    await store.sRem(keys.declaredGroups(), removed);
  }
}
