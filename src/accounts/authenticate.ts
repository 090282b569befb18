/**
 * Local username/password sign-in with lockout.
 *
 * Failures are counted per submitted username (known or not, so the lock cannot be
 * used to discover which accounts exist) in a fixed window held by the store, which
 * every instance shares. A locked username is refused without checking the password.
 */
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import type { User, UserStore } from '../storage/user-store.ts';
import { dummyPasswordHash, verifyPassword } from './passwords.ts';

export type AuthenticationResult =
  | { ok: true; user: User }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; retryAfterSeconds: number };

export interface LockoutPolicy {
  maxFailures: number;
  window: number;
}

export function createPasswordAuthenticator(deps: { store: KeyValueStore; keys: Keys; users: UserStore; lockout: LockoutPolicy }) {
  const { store, keys, users, lockout } = deps;

  return async function authenticate(username: string, password: string): Promise<AuthenticationResult> {
    const failuresKey = keys.loginFailures(username);
    const failures = Number((await store.get(failuresKey)) ?? 0);
    if (failures >= lockout.maxFailures) {
      const ttl = await store.ttl(failuresKey);
      return { ok: false, reason: 'locked', retryAfterSeconds: ttl > 0 ? ttl : lockout.window };
    }

    const user = await users.getUserByUsername(username);
    // Always run the KDF, so the response time does not reveal whether the user exists.
    const hash = user?.passwordHash ?? (await dummyPasswordHash());
    const valid = (await verifyPassword(password, hash)) && !!user?.passwordHash && !user.disabled;

    if (!valid || !user) {
      const count = await store.incr(failuresKey, lockout.window);
      if (count >= lockout.maxFailures) {
        const ttl = await store.ttl(failuresKey);
        return { ok: false, reason: 'locked', retryAfterSeconds: ttl > 0 ? ttl : lockout.window };
      }
      return { ok: false, reason: 'invalid' };
    }
    await store.del(failuresKey);
    return { ok: true, user };
  };
}

export type PasswordAuthenticator = ReturnType<typeof createPasswordAuthenticator>;
