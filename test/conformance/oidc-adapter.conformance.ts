/**
 * The oidc-provider adapter and the user store, on a given backend. Both are written
 * once on the key/value contract; this suite proves they behave on every backend.
 */
import { describe, expect, it } from 'vitest';
import type { KeyValueStore } from '../../src/storage/contract.ts';
import { createKeys } from '../../src/storage/keys.ts';
import { createAdapterFactory } from '../../src/oidc/adapter.ts';
import { createUserStore, type NewUser } from '../../src/storage/user-store.ts';
import { createAuthRecordStore } from '../../src/federation/auth-records.ts';

export function describeDomainStoreConformance(name: string, makeStore: () => Promise<{ store: KeyValueStore; prefix: string }>) {
  describe(`oidc adapter on ${name}`, () => {
    async function setup() {
      const { store, prefix } = await makeStore();
      const keys = createKeys(prefix);
      return { store, keys, adapter: createAdapterFactory(store, keys) };
    }

    it('upserts and finds a payload, with a TTL on every key it writes', async () => {
      const { store, keys, adapter } = await setup();
      await adapter('AccessToken').upsert('at1', { jti: 'at1', grantId: 'g1', kind: 'AccessToken', exp: 1 }, 3600);
      expect(await adapter('AccessToken').find('at1')).toMatchObject({ jti: 'at1', grantId: 'g1' });
      expect(await adapter('AccessToken').find('missing')).toBeUndefined();
      const ttl = await store.ttl(keys.oidcModel('AccessToken', 'at1'));
      expect(ttl).toBeGreaterThan(3600);
      expect(ttl).toBeLessThanOrEqual(3660);
      expect(await store.ttl(keys.oidcGrantIndex('g1'))).toBeGreaterThan(3600);
      // Records are versioned.
      expect((await store.hGetAll(keys.oidcModel('AccessToken', 'at1')))?.['v']).toBe('1');
    });

    it('consume is atomic: exactly one of many concurrent consumers wins, the rest get invalid_grant', async () => {
      const { adapter } = await setup();
      const codes = adapter('AuthorizationCode');
      await codes.upsert('c1', { jti: 'c1', grantId: 'g2', kind: 'AuthorizationCode' }, 60);
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => codes.consume('c1')));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes.filter((o) => o.status === 'rejected')) {
        expect((o as PromiseRejectedResult).reason).toMatchObject({ error: 'invalid_grant' });
      }
      expect((await codes.find('c1'))?.consumed).toBeTruthy();
    });

    it('consume of a missing record fails and creates nothing', async () => {
      const { store, keys, adapter } = await setup();
      await expect(adapter('PushedAuthorizationRequest').consume('nope')).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(await store.ttl(keys.oidcModel('PushedAuthorizationRequest', 'nope'))).toBe(-2);
    });

    it('revokeByGrantId removes every token of the grant and nothing else', async () => {
      const { adapter } = await setup();
      await adapter('AccessToken').upsert('a1', { jti: 'a1', grantId: 'gx' }, 600);
      await adapter('RefreshToken').upsert('r1', { jti: 'r1', grantId: 'gx' }, 600);
      await adapter('AuthorizationCode').upsert('c1', { jti: 'c1', grantId: 'gx' }, 60);
      await adapter('AccessToken').upsert('other', { jti: 'other', grantId: 'gy' }, 600);
      await adapter('AccessToken').revokeByGrantId('gx');
      expect(await adapter('AccessToken').find('a1')).toBeUndefined();
      expect(await adapter('RefreshToken').find('r1')).toBeUndefined();
      expect(await adapter('AuthorizationCode').find('c1')).toBeUndefined();
      expect(await adapter('AccessToken').find('other')).toBeDefined();
      // Called again for another model (as oidc-provider does): harmless.
      await adapter('RefreshToken').revokeByGrantId('gx');
    });

    it('finds sessions by uid, follows re-keying on sign-in, and indexes them by account', async () => {
      const { store, keys, adapter } = await setup();
      const sessions = adapter('Session');
      await sessions.upsert('jti-1', { jti: 'jti-1', uid: 'uid-1', kind: 'Session' }, 600);
      expect(await sessions.findByUid!('uid-1')).toMatchObject({ jti: 'jti-1' });
      // Sign-in gives the session a new id (cookie value) but keeps its uid.
      await sessions.upsert('jti-2', { jti: 'jti-2', uid: 'uid-1', accountId: 'acc-1', kind: 'Session' }, 600);
      await sessions.destroy('jti-1');
      expect(await sessions.findByUid!('uid-1')).toMatchObject({ jti: 'jti-2', accountId: 'acc-1' });
      expect(await store.sMembers(keys.accountSessions('acc-1'))).toEqual(['uid-1']);
      await sessions.destroy('jti-2');
      expect(await sessions.findByUid!('uid-1')).toBeUndefined();
    });

    it('stores clients without expiry and indexes them for listing', async () => {
      const { store, keys, adapter } = await setup();
      await adapter('Client').upsert('cl1', { client_id: 'cl1', client_secret: 'x' });
      expect(await store.ttl(keys.oidcModel('Client', 'cl1'))).toBe(-1);
      expect(await store.sMembers(keys.clientIndex())).toContain('cl1');
      await adapter('Client').destroy('cl1');
      expect(await adapter('Client').find('cl1')).toBeUndefined();
      expect(await store.sMembers(keys.clientIndex())).not.toContain('cl1');
    });
  });

  describe(`user store on ${name}`, () => {
    async function setup() {
      const { store, prefix } = await makeStore();
      const keys = createKeys(prefix);
      return { store, keys, users: createUserStore(store, keys) };
    }
    const alice = (overrides: Partial<NewUser> = {}): NewUser => ({
      username: 'Alice',
      email: 'alice@example.com',
      emailVerified: true,
      groups: ['g'],
      disabled: false,
      source: 'admin',
      ...overrides,
    });

    it('creates, finds case-insensitively by username and by email', async () => {
      const { users } = await setup();
      const created = await users.createUser(alice());
      expect(created.version).toBe(1);
      expect((await users.getUserByUsername('alice'))?.id).toBe(created.id);
      expect(await users.listUserIdsByEmail('ALICE@example.com')).toEqual([created.id]);
      expect(await users.listUserIds()).toEqual([created.id]);
    });

    it('refuses a duplicate username with 409 on the username field, leaving nothing behind', async () => {
      const { users } = await setup();
      await users.createUser(alice());
      await expect(users.createUser(alice({ email: 'other@example.com' }))).rejects.toMatchObject({ status: 409, field: 'username' });
      expect(await users.listUserIds()).toHaveLength(1);
      expect(await users.listUserIdsByEmail('other@example.com')).toEqual([]);
    });

    it('concurrent creates of one username: exactly one wins', async () => {
      const { users } = await setup();
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => users.createUser(alice({ email: `a${i}@example.com` }))));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect(await users.listUserIds()).toHaveLength(1);
    });

    it('takes over a username whose record was never written (crash between index and record)', async () => {
      const { store, keys, users } = await setup();
      await store.set(keys.userByName('alice'), 'ghost-id');
      const created = await users.createUser(alice());
      expect((await users.getUserByUsername('alice'))?.id).toBe(created.id);
    });

    it('updates with optimistic concurrency: a stale version gets 412', async () => {
      const { users } = await setup();
      const created = await users.createUser(alice());
      const updated = await users.updateUser(created.id, () => ({ name: 'Alice A.' }), 1);
      expect(updated.version).toBe(2);
      await expect(users.updateUser(created.id, () => ({ name: 'stale' }), 1)).rejects.toMatchObject({ status: 412 });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => users.updateUser(created.id, () => ({ name: `n${i}` }), 2)),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    });

    it('keeps group membership indexes in step with the records', async () => {
      const { users } = await setup();
      const a = await users.createUser(alice({ groups: ['g1', 'g2'] }));
      expect(await users.listGroupMemberIds('g1')).toEqual([a.id]);
      await users.updateUser(a.id, () => ({ groups: ['g2', 'g3'] }));
      expect(await users.listGroupMemberIds('g1')).toEqual([]);
      expect(await users.listGroupMemberIds('g3')).toEqual([a.id]);
      await users.deleteUser(a.id);
      expect(await users.listGroupMemberIds('g2')).toEqual([]);
    });

    it('renames move the username index; deletes remove every index', async () => {
      const { users } = await setup();
      const created = await users.createUser(alice());
      await users.updateUser(created.id, () => ({ username: 'alicia', email: 'alicia@example.com' }));
      expect(await users.getUserByUsername('alice')).toBeUndefined();
      expect((await users.getUserByUsername('alicia'))?.id).toBe(created.id);
      expect(await users.listUserIdsByEmail('alice@example.com')).toEqual([]);
      await users.deleteUser(created.id);
      expect(await users.getUserByUsername('alicia')).toBeUndefined();
      expect(await users.listUserIds()).toEqual([]);
      expect(await users.listUserIdsByEmail('alicia@example.com')).toEqual([]);
    });
  });

  describe(`authentication records on ${name}`, () => {
    const KEY = Buffer.alloc(32, 7).toString('base64url');
    async function setup(encryptionKeys: string[] = []) {
      const { store, prefix } = await makeStore();
      const keys = createKeys(prefix);
      return { store, keys, records: createAuthRecordStore({ store, keys, lifetime: 7 * 86400, encryptionKeys }) };
    }
    const input = (over: Record<string, unknown> = {}) => ({
      idp: 'okta',
      issuer: 'https://okta.example',
      sub: 'up-sub',
      sid: 'up-sid',
      idToken: 'header.payload.signature',
      authTime: 1_700_000_000,
      sessionUid: 'uid-1',
      accountId: 'acc-1',
      ...over,
    });

    it('saves a record with the lifetime as TTL and finds it through every index', async () => {
      const { store, keys, records } = await setup();
      await records.save(input());
      await records.addClientSid('uid-1', 'rp-a', 'our-sid-a');
      await records.addClientSid('uid-1', 'rp-b', 'our-sid-b');
      expect((await records.get('uid-1'))?.clientSids).toEqual({ 'rp-a': 'our-sid-a', 'rp-b': 'our-sid-b' });
      expect((await records.findBySid('our-sid-b'))?.sessionUid).toBe('uid-1');
      expect(await records.sessionUidsByUpstreamSid('okta', 'up-sid')).toEqual(['uid-1']);
      expect(await records.sessionUidsByUpstreamSub('okta', 'up-sub')).toEqual(['uid-1']);
      const ttl = await store.ttl(keys.authRecord('uid-1'));
      expect(ttl).toBeGreaterThan(7 * 86400 - 10);
      expect(await store.ttl(keys.authRecordBySid('our-sid-a'))).toBeGreaterThan(7 * 86400 - 10);
      expect(await records.idToken((await records.get('uid-1'))!)).toBe('header.payload.signature');
    });

    it('concurrent client sids in one session all land', async () => {
      const { records } = await setup();
      await records.save(input());
      await Promise.all(Array.from({ length: 5 }, (_, i) => records.addClientSid('uid-1', `rp-${i}`, `sid-${i}`)));
      expect(Object.keys((await records.get('uid-1'))!.clientSids).sort()).toEqual(['rp-0', 'rp-1', 'rp-2', 'rp-3', 'rp-4']);
    });

    it('a client sid without a record is ignored (local sessions have none)', async () => {
      const { records } = await setup();
      await records.addClientSid('no-record', 'rp', 'sid');
      expect(await records.findBySid('sid')).toBeUndefined();
    });

    it('replacing a record drops the indexes that no longer apply; remove drops all', async () => {
      const { records } = await setup();
      await records.save(input());
      await records.addClientSid('uid-1', 'rp-a', 'our-sid-a');
      await records.save(input({ sub: 'other-sub', sid: 'other-sid' }));
      expect(await records.sessionUidsByUpstreamSid('okta', 'up-sid')).toEqual([]);
      expect(await records.sessionUidsByUpstreamSub('okta', 'up-sub')).toEqual([]);
      expect(await records.findBySid('our-sid-a')).toBeUndefined();
      const removed = await records.remove('uid-1');
      expect(removed?.sub).toBe('other-sub');
      expect(await records.get('uid-1')).toBeUndefined();
      expect(await records.sessionUidsByUpstreamSub('okta', 'other-sub')).toEqual([]);
      expect(await records.remove('uid-1')).toBeUndefined();
    });

    it('restore puts a removed record back with every index and its original expiry, but never over a newer one', async () => {
      const { store, keys, records } = await setup();
      await records.save(input());
      await records.addClientSid('uid-1', 'rp-a', 'our-sid-a');
      const ttlBefore = await store.ttl(keys.authRecord('uid-1'));
      const removed = (await records.remove('uid-1'))!;
      await records.restore(removed);
      expect(await records.get('uid-1')).toEqual(removed);
      expect((await records.findBySid('our-sid-a'))?.sessionUid).toBe('uid-1');
      expect(await records.sessionUidsByUpstreamSid('okta', 'up-sid')).toEqual(['uid-1']);
      expect(await records.sessionUidsByUpstreamSub('okta', 'up-sub')).toEqual(['uid-1']);
      expect(await store.ttl(keys.authRecord('uid-1'))).toBeLessThanOrEqual(ttlBefore);
      // A sign-in in the same session since then wrote a newer record: it stays.
      await records.remove('uid-1');
      await records.save(input({ sub: 'newer-sub' }));
      await records.restore(removed);
      expect((await records.get('uid-1'))?.sub).toBe('newer-sub');
      expect(await records.sessionUidsByUpstreamSub('okta', 'up-sub')).toEqual([]);
    });

    it('encrypts the upstream id_token at rest when a key is configured, and decrypts after key rotation', async () => {
      const { store, keys, records } = await setup([KEY]);
      await records.save(input({ idToken: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig' }));
      const raw = await store.get(keys.authRecord('uid-1'));
      expect(raw).not.toContain('eyJzdWIiOiJ4In0');
      const saved = (await records.get('uid-1'))!;
      expect(saved.idTokenEncrypted).toBe(true);
      const rotated = createAuthRecordStore({ store, keys, lifetime: 7 * 86400, encryptionKeys: [Buffer.alloc(32, 9).toString('base64url'), KEY] });
      expect(await rotated.idToken(saved)).toBe('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig');
      const dropped = createAuthRecordStore({ store, keys, lifetime: 7 * 86400, encryptionKeys: [Buffer.alloc(32, 9).toString('base64url')] });
      await expect(dropped.idToken(saved)).rejects.toThrow(/no longer configured/);
    });
  });
}
