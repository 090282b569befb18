/**
 * The keyspace: every key Sallyport writes is built here, so it can be read in one
 * place. Each key is used by single-key operations only (Redis Cluster safe); related
 * keys are linked by index sets, written before the records they point to.
 */
export type Keys = ReturnType<typeof createKeys>;

export function createKeys(prefix: string) {
  return {
    prefix,
    /** oidc-provider model record (hash: v, p = JSON payload, c = consumed-at). */
    oidcModel: (model: string, id: string) => `${prefix}oidc:${model}:${id}`,
    /** Set of model keys issued under one grant, for revokeByGrantId. */
    oidcGrantIndex: (grantId: string) => `${prefix}oidc:grant:${grantId}`,
    /** Session uid → current session id (the cookie value changes on every sign-in). */
    oidcSessionByUid: (uid: string) => `${prefix}oidc:Session:uid:${uid}`,
    /** Device flow user code → DeviceCode id. */
    oidcDeviceUserCode: (userCode: string) => `${prefix}oidc:DeviceCode:userCode:${userCode}`,
    /** Set of session uids of one account ("end this user's sessions"). */
    accountSessions: (accountId: string) => `${prefix}account:${accountId}:sessions`,
    /** Set of all client ids stored in the Client model. */
    clientIndex: () => `${prefix}clients`,
    /** Set of client ids declared in the config file (removed from the store when dropped from it). */
    declaredClients: () => `${prefix}clients:declared`,

    /** User record (versioned JSON envelope). */
    user: (id: string) => `${prefix}user:${id}`,
    /** Lower-cased username → user id (uniqueness). */
    userByName: (username: string) => `${prefix}user-name:${username.toLowerCase()}`,
    /** Lower-cased email → set of user ids (emails are not unique across identity providers). */
    usersByEmail: (email: string) => `${prefix}user-email:${email.toLowerCase()}`,
    /** Set of all user ids. */
    userIndex: () => `${prefix}users`,

    /** Failed sign-ins for a (lower-cased) username in the current window. */
    loginFailures: (username: string) => `${prefix}login-failures:${username.toLowerCase()}`,

    /** The provider's private signing keys (JWKS JSON), shared by every instance. */
    signingKeys: () => `${prefix}keys:signing`,
  };
}
