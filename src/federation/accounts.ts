/**
 * Upstream identity → Sallyport account. One (idp, upstream sub) maps to one account,
 * through a link key claimed with SET NX; the first sign-in provisions the account just
 * in time. Linking to an existing local account by email happens only when the IdP's
 * config allows it and both sides have verified the address.
 */
import type { IdpSettings, UpstreamLogin } from '../connectors/types.ts';
import { AppError } from '../errors.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import type { NewUser, User, UserStore } from '../storage/user-store.ts';

/** Read a claim by name or dot path (`realm_access.roles`). */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= 500 ? v : undefined);

/** Map upstream groups through the IdP's group mappings. */
export function mapGroups(settings: IdpSettings, claims: Record<string, unknown>): string[] {
  const raw = claimAt(claims, settings.claims.groups);
  const upstream = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : typeof raw === 'string' ? [raw] : [];
  const out = new Set<string>();
  for (const group of upstream) {
    const mapped = settings.groupMappings[group];
    if (mapped) mapped.forEach((g) => out.add(g));
    else if (settings.passUnmappedGroups && /^[\w.:@-]{1,100}$/.test(group)) out.add(group);
  }
  return [...out].sort();
}

export function createFederatedAccounts(deps: { store: KeyValueStore; keys: Keys; users: UserStore }) {
  const { store, keys, users } = deps;

  function attributes(settings: IdpSettings, login: UpstreamLogin) {
    const c = login.claims;
    const email = str(claimAt(c, settings.claims.email));
    return {
      email,
      emailVerified: !!email && claimAt(c, settings.claims.emailVerified) === true,
      name: str(claimAt(c, settings.claims.name)),
      preferredUsername: str(claimAt(c, settings.claims.preferredUsername)),
      groups: mapGroups(settings, c),
    };
  }

  /** Refresh what the upstream is the source of truth for. */
  async function refresh(user: User, settings: IdpSettings, login: UpstreamLogin): Promise<User> {
    const a = attributes(settings, login);
    const identities = user.identities ?? [];
    const linked = identities.some((i) => i.idp === settings.id && i.sub === login.sub);
    const fromUpstream = user.source === 'federation';
    // Accounts created by this IdP take every attribute from it; linked local accounts
    // only gain the mapped groups.
    const groups = fromUpstream ? a.groups : [...new Set([...user.groups, ...a.groups])].sort();
    const changed =
      !linked ||
      JSON.stringify(groups) !== JSON.stringify(user.groups) ||
      (fromUpstream && (a.email !== user.email || a.emailVerified !== user.emailVerified || a.name !== user.name));
    if (!changed) return user;
    return users.updateUser(user.id, (current) => ({
      groups,
      identities: linked ? current.identities ?? [] : [...(current.identities ?? []), { idp: settings.id, sub: login.sub }],
      ...(fromUpstream ? { email: a.email, emailVerified: a.emailVerified, name: a.name } : {}),
    }));
  }

  return {
    async resolve(settings: IdpSettings, login: UpstreamLogin): Promise<User> {
      const linkKey = keys.fedLink(settings.id, login.sub);
      const linkedId = await store.get(linkKey);
      if (linkedId) {
        const user = await users.getUser(linkedId);
        if (user) return assertEnabled(await refresh(user, settings, login));
        // The account was deleted: the identity provisions a fresh one below.
        await store.delIfEquals(linkKey, linkedId);
      }

      const a = attributes(settings, login);
      if (settings.linkByVerifiedEmail && a.email && a.emailVerified) {
        const candidates = (await Promise.all((await users.listUserIdsByEmail(a.email)).map((id) => users.getUser(id)))).filter(
          (u): u is User => !!u && u.emailVerified && u.source !== 'federation',
        );
        // Ambiguity is never resolved by guessing: only a single verified match links.
        if (candidates.length === 1) {
          const target = candidates[0]!;
          if (await store.set(linkKey, target.id, { ifAbsent: true })) return assertEnabled(await refresh(target, settings, login));
          return this.resolve(settings, login);
        }
      }

      const base = (a.preferredUsername ?? a.email ?? login.sub).replace(/[^\w.@+-]/g, '_').slice(0, 80);
      const fresh: NewUser = {
        username: `${settings.id}:${base}`,
        emailVerified: a.emailVerified,
        groups: a.groups,
        disabled: false,
        source: 'federation',
        identities: [{ idp: settings.id, sub: login.sub }],
        ...(a.email ? { email: a.email } : {}),
        ...(a.name ? { name: a.name } : {}),
      };
      let user: User;
      try {
        user = await users.createUser(fresh);
      } catch (err) {
        // Two upstream subjects with one preferred_username: fall back to the sub,
        // which the IdP guarantees unique.
        if ((err as { status?: number }).status !== 409) throw err;
        user = await users.createUser({ ...fresh, username: `${settings.id}:${login.sub.replace(/[^\w.@+-]/g, '_').slice(0, 90)}` });
      }
      if (!(await store.set(linkKey, user.id, { ifAbsent: true }))) {
        // Another sign-in of the same identity won the race: use its account.
        await users.deleteUser(user.id);
        return this.resolve(settings, login);
      }
      return user;
    },
  };
}

function assertEnabled(user: User): User {
  if (user.disabled) throw new AppError({ code: 'account_disabled', status: 403, message: 'This account is disabled. Contact your administrator.' });
  return user;
}

export type FederatedAccounts = ReturnType<typeof createFederatedAccounts>;
