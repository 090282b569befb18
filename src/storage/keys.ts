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
    /** Lock serializing admin changes of one identity provider. */
    idpLock: (id: string) => `${prefix}lock:idp:${id}`,
    /** Lock serializing admin changes of one client. */
    clientLock: (clientId: string) => `${prefix}lock:client:${clientId}`,
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

    /** Group record (versioned JSON envelope). */
    group: (name: string) => `${prefix}group:${name}`,
    /** Set of all group names. */
    groupIndex: () => `${prefix}groups`,
    /** Set of user ids in a group (maintained with the user records). */
    groupMembers: (name: string) => `${prefix}group-members:${name}`,
    /** Set of group names declared in the config file. */
    declaredGroups: () => `${prefix}groups:declared`,
    /** Audit event log (capped list, newest first). */
    auditEvents: () => `${prefix}audit:events`,
    /** Set of grant ids of one account ("revoke this user's tokens"). */
    accountGrants: (accountId: string) => `${prefix}account:${accountId}:grants`,

    /** Failed sign-ins for a (lower-cased) username in the current window. */
    loginFailures: (username: string) => `${prefix}login-failures:${username.toLowerCase()}`,
    /** Fixed-window request counter of one rate limit, subject and window (expires with it). */
    rateLimit: (rule: string, subject: string, window: number) => `${prefix}rate:${rule}:${window}:${subject}`,

    /** The provider's private signing keys (JWKS JSON), shared by every instance. */
    signingKeys: () => `${prefix}keys:signing`,

    /** Upstream identity provider configuration (versioned JSON envelope). */
    idp: (id: string) => `${prefix}idp:${id}`,
    /** Set of all identity provider ids. */
    idpIndex: () => `${prefix}idps`,
    /** Set of identity provider ids declared in the config file. */
    declaredIdps: () => `${prefix}idps:declared`,

    /** Upstream login transaction (state, nonce, PKCE verifier), keyed by its state; read once. */
    fedLoginTx: (state: string) => `${prefix}fed:tx:${state}`,
    /** Upstream callback parameters handed to the interaction; read once. */
    fedCallback: (ref: string) => `${prefix}fed:callback:${ref}`,
    /** A validated upstream login waiting to be bound to the session; read once. */
    fedPending: (ref: string) => `${prefix}fed:pending:${ref}`,
    /** (idp, upstream sub) → Sallyport account id. */
    fedLink: (idp: string, sub: string) => `${prefix}fed:link:${idp}:${sub}`,

    /** The server-side authentication record of one session (by session uid). */
    authRecord: (sessionUid: string) => `${prefix}fed:auth:${sessionUid}`,
    /** One of our per-client `sid` values → session uid. */
    authRecordBySid: (sid: string) => `${prefix}fed:auth-sid:${sid}`,
    /** Set of session uids signed in through one upstream session. */
    authRecordsByUpstreamSid: (idp: string, sid: string) => `${prefix}fed:auth-upstream-sid:${idp}:${sid}`,
    /** Upstream logout transaction (where to send the browser afterwards); read once. */
    logoutTx: (txn: string) => `${prefix}fed:logout:${txn}`,
    /**
     * For a logout request whose id_token_hint names a session other than the
     * browser's own (gone or elsewhere): our session uid → the hinted session uid.
     */
    logoutHintedSession: (sessionUid: string) => `${prefix}fed:logout-hint:${sessionUid}`,
    /** A logout token jti already accepted from an upstream IdP (replay protection). */
    backchannelJti: (idp: string, jti: string) => `${prefix}fed:bcl-jti:${idp}:${jti}`,
    /** Set of session uids of one upstream subject. */
    authRecordsByUpstreamSub: (idp: string, sub: string) => `${prefix}fed:auth-upstream-sub:${idp}:${sub}`,
  };
}
