/**
 * Standard claims of a Sallyport account. The provider filters them by the granted
 * scopes (profile, email, groups) and by where they go (ID token or userinfo).
 */
import type { User } from '../storage/user-store.ts';

export function accountClaims(user: User): { sub: string } & Record<string, unknown> {
  return {
    sub: user.id,
    preferred_username: user.username,
    name: user.name,
    given_name: user.givenName,
    family_name: user.familyName,
    updated_at: Math.floor(Date.parse(user.updatedAt) / 1000),
    email: user.email,
    email_verified: user.email ? user.emailVerified : undefined,
    groups: [...user.groups],
  };
}
