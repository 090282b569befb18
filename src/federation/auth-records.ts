/**
 * The server-side authentication record: what Sallyport knows about an upstream
 * sign-in, kept outside the HTTP session and outliving it, so that logout can still
 * hand the upstream IdP its id_token_hint after our session expired or was destroyed.
 *
 * Keyed by our session uid; indexed by each per-client `sid` we issue (an RP's
 * id_token_hint names one), by (idp, upstream sid) and by (idp, upstream sub) (inbound
 * back-channel logout names one of those). Indexes are written before the record and
 * carry the record's lifetime, so a reader may meet an index whose record is gone
 * (treated as absent) but never a record its indexes miss.
 */
import { createHash } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { decodeRecord, encodeRecord } from '../storage/records.ts';

export interface AuthRecord {
  idp: string;
  /** Upstream issuer and subject. */
  issuer: string;
  sub: string;
  /** Upstream session id, when the IdP issues one. */
  sid?: string | undefined;
  /** The upstream id_token, as received or encrypted at rest (compact JWE). */
  idToken: string;
  idTokenEncrypted: boolean;
  /** Upstream auth_time, else when we received the login (seconds). */
  authTime: number;
  sessionUid: string;
  accountId: string;
  /** Our per-client `sid` values in this session: client_id → sid. */
  clientSids: Record<string, string>;
  createdAt: number;
}

export type NewAuthRecord = Omit<AuthRecord, 'idTokenEncrypted' | 'clientSids' | 'createdAt' | 'idToken'> & { idToken: string };

export interface AuthRecordStore {
  /** Store (or replace) the record of a session. */
  save(record: NewAuthRecord): Promise<AuthRecord>;
  get(sessionUid: string): Promise<AuthRecord | undefined>;
  /** Through one of our per-client `sid`s (the sid in an id_token_hint). */
  findBySid(sid: string): Promise<AuthRecord | undefined>;
  /** Session uids signed in through an upstream session / subject. */
  sessionUidsByUpstreamSid(idp: string, sid: string): Promise<string[]>;
  sessionUidsByUpstreamSub(idp: string, sub: string): Promise<string[]>;
  /** Remember that `clientId` got `sid` in this session; no-op when the session has no record. */
  addClientSid(sessionUid: string, clientId: string, sid: string): Promise<void>;
  /** Delete the record and its indexes; returns what was there. */
  remove(sessionUid: string): Promise<AuthRecord | undefined>;
  /**
   * Put back a record `remove` returned (indexes first, its original expiry), unless the
   * session has a newer one: for a logout that could not reach the upstream IdP, so a
   * later logout with the same hint can still end the upstream session.
   */
  restore(record: AuthRecord): Promise<void>;
  /** The upstream id_token in clear, for the logout hint. */
  idToken(record: AuthRecord): Promise<string>;
}

export function createAuthRecordStore(deps: {
  store: KeyValueStore;
  keys: Keys;
  /** Seconds the record (and its indexes) live from the sign-in. */
  lifetime: number;
  /** base64url 32-byte keys, newest first; empty = store the token as received. */
  encryptionKeys: readonly string[];
}): AuthRecordStore {
  const { store, keys, lifetime } = deps;
  // The kid is derived from the key itself, so it stays stable however the list is rotated.
  const encKeys = deps.encryptionKeys.map((k) => ({ kid: createHash('sha256').update(k).digest('base64url').slice(0, 12), key: Buffer.from(k, 'base64url') }));

  async function encrypt(idToken: string): Promise<{ idToken: string; idTokenEncrypted: boolean }> {
    const current = encKeys[0];
    if (!current) return { idToken, idTokenEncrypted: false };
    const jwe = await new CompactEncrypt(new TextEncoder().encode(idToken))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: current.kid })
      .encrypt(current.key);
    return { idToken: jwe, idTokenEncrypted: true };
  }

  async function read(sessionUid: string): Promise<{ raw: string; record: AuthRecord } | undefined> {
    const raw = await store.get(keys.authRecord(sessionUid));
    const record = decodeRecord<AuthRecord>(raw);
    return raw && record ? { raw, record } : undefined;
  }

  /** Seconds left of the record's lifetime, for its indexes. */
  const remaining = (record: AuthRecord) => Math.max(1, record.createdAt + lifetime - Math.floor(Date.now() / 1000));

  async function removeIndexes(record: AuthRecord): Promise<void> {
    for (const sid of Object.values(record.clientSids)) await store.delIfEquals(keys.authRecordBySid(sid), record.sessionUid);
    if (record.sid) await store.sRem(keys.authRecordsByUpstreamSid(record.idp, record.sid), record.sessionUid);
    await store.sRem(keys.authRecordsByUpstreamSub(record.idp, record.sub), record.sessionUid);
  }

  return {
    async save(input) {
      const previous = await read(input.sessionUid);
      const record: AuthRecord = {
        ...input,
        ...(await encrypt(input.idToken)),
        clientSids: {},
        createdAt: Math.floor(Date.now() / 1000),
      };
      const ttl = { ttl: lifetime };
      if (record.sid) await store.sAdd(keys.authRecordsByUpstreamSid(record.idp, record.sid), record.sessionUid, ttl);
      await store.sAdd(keys.authRecordsByUpstreamSub(record.idp, record.sub), record.sessionUid, ttl);
      await store.set(keys.authRecord(record.sessionUid), encodeRecord(record), ttl);
      // A re-authentication in the same session replaces the record; indexes of the
      // old one that no longer apply go.
      if (previous) {
        const old = previous.record;
        if (old.sid && (old.sid !== record.sid || old.idp !== record.idp)) await store.sRem(keys.authRecordsByUpstreamSid(old.idp, old.sid), old.sessionUid);
        if (old.sub !== record.sub || old.idp !== record.idp) await store.sRem(keys.authRecordsByUpstreamSub(old.idp, old.sub), old.sessionUid);
        for (const sid of Object.values(old.clientSids)) await store.delIfEquals(keys.authRecordBySid(sid), old.sessionUid);
      }
      return record;
    },

    async get(sessionUid) {
      return (await read(sessionUid))?.record;
    },

    async findBySid(sid) {
      const uid = await store.get(keys.authRecordBySid(sid));
      if (!uid) return undefined;
      const record = (await read(uid))?.record;
      return record && Object.values(record.clientSids).includes(sid) ? record : undefined;
    },

    sessionUidsByUpstreamSid: (idp, sid) => store.sMembers(keys.authRecordsByUpstreamSid(idp, sid)),
    sessionUidsByUpstreamSub: (idp, sub) => store.sMembers(keys.authRecordsByUpstreamSub(idp, sub)),

    async addClientSid(sessionUid, clientId, sid) {
      // Compare-and-set so that two RPs signing in at once in one session both land.
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = await read(sessionUid);
        if (!current || current.record.clientSids[clientId] === sid) return;
        const next: AuthRecord = { ...current.record, clientSids: { ...current.record.clientSids, [clientId]: sid } };
        await store.set(keys.authRecordBySid(sid), sessionUid, { ttl: remaining(next) });
        if (await store.setIfEquals(keys.authRecord(sessionUid), current.raw, encodeRecord(next), { ttl: remaining(next) })) return;
      }
      throw new Error('could not record the client sid: too much contention');
    },

    async remove(sessionUid) {
      const current = await read(sessionUid);
      if (!current) return undefined;
      await store.del(keys.authRecord(sessionUid));
      await removeIndexes(current.record);
      return current.record;
    },

    async restore(record) {
      const ttl = { ttl: remaining(record) };
      if (record.createdAt + lifetime <= Math.floor(Date.now() / 1000)) return;
      // A newer sign-in in this session owns the key and the indexes now.
      if ((await store.get(keys.authRecord(record.sessionUid))) !== null) return;
      if (record.sid) await store.sAdd(keys.authRecordsByUpstreamSid(record.idp, record.sid), record.sessionUid, ttl);
      await store.sAdd(keys.authRecordsByUpstreamSub(record.idp, record.sub), record.sessionUid, ttl);
      for (const sid of Object.values(record.clientSids)) await store.set(keys.authRecordBySid(sid), record.sessionUid, ttl);
      await store.setIfEquals(keys.authRecord(record.sessionUid), null, encodeRecord(record), ttl);
    },

    async idToken(record) {
      if (!record.idTokenEncrypted) return record.idToken;
      const { kid } = JSON.parse(Buffer.from(record.idToken.split('.')[0]!, 'base64url').toString()) as { kid?: string };
      const key = encKeys.find((k) => k.kid === kid);
      if (!key) throw new Error(`the key that encrypted this record (${kid}) is no longer configured`);
      const { plaintext } = await compactDecrypt(record.idToken, key.key);
      return new TextDecoder().decode(plaintext);
    },
  };
}
