/**
 * Admin API: users and groups, on memory and Redis. Accounts created here sign in
 * through the real login page; disabling and deleting end their sessions; membership in
 * a group with an admin role gives a person's token admin scopes, and taking it away
 * withdraws them on the next request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { identityProviderSchema } from '../src/config/schema.ts';
import { ADMIN_CLIENTS, adminToken, apiClient, type Api } from './support/admin.ts';
import { signIn, startTestRp, type TestRp } from './support/rp.ts';
import { BACKENDS, PASSWORD, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { UserAgent } from './support/user-agent.ts';

type Json = Record<string, unknown>;

describe.each(BACKENDS)('admin API: users and groups on %s', (backend) => {
  let sp: RunningSallyport;
  let rp: TestRp;
  let api: Api;
  /** users.read groups.read events.read (the auditor role). */
  let readerToken: string;
  /** events.read only. */
  let eventsToken: string;
  let web: oidc.Configuration;
  let callback: string;

  beforeAll(async () => {
    rp = await startTestRp();
    sp = await startSallyport({
      backend,
      rpOrigin: rp.origin,
      extraClients: ADMIN_CLIENTS,
      config: { groups: [{ name: 'staff', description: 'declared in the file', roles: ['auditor'] }] },
    });
    api = apiClient(sp, await adminToken(sp));
    readerToken = await adminToken(sp, 'auditor-cli', 'users.read groups.read events.read');
    eventsToken = await adminToken(sp, 'auditor-cli', 'events.read');
    web = await sp.rp('web');
    callback = `${rp.origin}/callback`;
  });
  afterAll(async () => {
    await sp?.stop();
    await rp?.stop();
  });

  const createUser = async (body: Json): Promise<Json> => {
    const res = await api('/users', { method: 'POST', body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  const createGroup = async (body: Json): Promise<Json> => {
    const res = await api('/groups', { method: 'POST', body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  const idOf = async (username: string) => ((await api(`/users?username=${username}`)).body['items'] as Json[])[0]!['id'] as string;
  const eventTypes = async (target: string) =>
    ((await api(`/events?target=${encodeURIComponent(target)}`, { token: readerToken })).body['items'] as Array<{ type: string }>).map((e) => e.type);

  describe('authorization', () => {
    const uid = 'no-such-user';
    const routes: Array<[string, string, string, Json?]> = [
      ['GET', '/users', 'users.read'],
      ['POST', '/users', 'users.write', { username: 'never' }],
      ['GET', `/users/${uid}`, 'users.read'],
      ['PUT', `/users/${uid}`, 'users.write', { username: 'never' }],
      ['DELETE', `/users/${uid}`, 'users.write'],
      ['POST', `/users/${uid}/password`, 'users.write', { password: 'long enough password' }],
      ['POST', `/users/${uid}/disable`, 'users.write'],
      ['POST', `/users/${uid}/enable`, 'users.write'],
      ['GET', `/users/${uid}/identities`, 'users.read'],
      ['GET', '/groups', 'groups.read'],
      ['POST', '/groups', 'groups.write', { name: 'never' }],
      ['GET', '/groups/staff', 'groups.read'],
      ['PUT', '/groups/staff', 'groups.write', {}],
      ['DELETE', '/groups/staff', 'groups.write'],
      ['GET', '/groups/staff/members', 'groups.read'],
      ['PUT', `/groups/staff/members/${uid}`, 'groups.write'],
      ['DELETE', `/groups/staff/members/${uid}`, 'groups.write'],
    ];

    it('every route answers 401 without a token and 403 naming its scope with a token lacking it', async () => {
      for (const [method, path, scope, body] of routes) {
        const what = `${method} ${path}`;
        const none = await api(path, { method, token: null, ...(body ? { body } : {}) });
        expect(none.status, what).toBe(401);
        expect(none.headers.get('www-authenticate'), what).toMatch(/^Bearer/);
        // Reads: a token with events.read only; writes: the auditor's read-only token.
        const token = scope.endsWith('.read') ? eventsToken : readerToken;
        const denied = await api(path, { method, token, ...(body ? { body } : {}) });
        expect(denied.status, what).toBe(403);
        expect(denied.body, what).toMatchObject({ error: 'insufficient_scope', scope });
        expect(denied.headers.get('www-authenticate'), what).toContain(`scope="${scope}"`);
      }
      // Nothing was written by the refused requests.
      expect((await api('/users?username=never')).body['items']).toEqual([]);
      expect((await api('/groups/never')).status).toBe(404);
      expect((await api('/groups/staff')).status).toBe(200);
    });

    it('group membership and roles grant no more than the caller holds', async () => {
      await createGroup({ name: 'wardens', roles: ['admin'] });
      await createGroup({ name: 'watchers', roles: ['auditor'] });
      await createGroup({ name: 'plain' });
      const target = (await createUser({ username: 'grant-target' }))['id'] as string;
      // users.write alone: profile changes yes, membership changes no (they are groups.write's).
      const usersOnly = await adminToken(sp, 'admin-cli', 'users.read users.write');
      const viaCreate = await api('/users', { method: 'POST', token: usersOnly, body: { username: 'grant-new', groups: ['plain'] } });
      expect(viaCreate.status).toBe(403);
      expect(viaCreate.body).toMatchObject({ error: 'insufficient_scope', scope: 'groups.write' });
      expect((await api('/users?username=grant-new')).body['items']).toEqual([]);
      const viaPut = await api(`/users/${target}`, { method: 'PUT', token: usersOnly, body: { username: 'grant-target', groups: ['plain'] } });
      expect(viaPut.body).toMatchObject({ error: 'insufficient_scope', scope: 'groups.write' });
      expect((await api(`/users/${target}`, { method: 'PUT', token: usersOnly, body: { username: 'grant-target', name: 'T' } })).status).toBe(200);

      // groups.write without the scopes a role brings: cannot hand that role out.
      const groupsWriter = await adminToken(sp, 'admin-cli', 'users.read users.write groups.read groups.write');
      const refusals: Array<[string, string, Json | undefined, string]> = [
        ['PUT', `/groups/wardens/members/${target}`, undefined, 'sallyport.admin'],
        ['PUT', `/groups/watchers/members/${target}`, undefined, 'clients.read'],
        ['PUT', `/users/${target}`, { username: 'grant-target', groups: ['wardens'] }, 'sallyport.admin'],
        ['POST', '/users', { username: 'grant-new', groups: ['wardens'] }, 'sallyport.admin'],
        ['POST', '/groups', { name: 'grant-new', roles: ['admin'] }, 'sallyport.admin'],
        ['PUT', '/groups/plain', { roles: ['auditor'] }, 'clients.read'],
      ];
      for (const [method, path, body, scope] of refusals) {
        const res = await api(path, { method, token: groupsWriter, ...(body ? { body } : {}) });
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(res.body, `${method} ${path}`).toMatchObject({ error: 'insufficient_scope', scope });
      }
      expect((await api(`/users/${target}`)).body).toMatchObject({ groups: [] });
      expect((await api('/groups/plain')).body).toMatchObject({ roles: [] });
      expect((await api('/groups/grant-new')).status).toBe(404);
      // What grants nothing new is allowed.
      expect((await api(`/groups/plain/members/${target}`, { method: 'PUT', token: groupsWriter })).status).toBe(204);
      expect((await api('/groups/watchers', { method: 'PUT', token: groupsWriter, body: { description: 'kept roles', roles: ['auditor'] } })).status).toBe(200);
      expect((await api(`/users/${target}`, { method: 'PUT', token: groupsWriter, body: { username: 'grant-target', groups: [] } })).status).toBe(200);
    });

    it('read scopes are enough to read', async () => {
      for (const path of ['/users', '/groups', '/groups/staff', '/groups/staff/members', `/users/${await idOf('alice')}`, `/users/${await idOf('alice')}/identities`]) {
        expect((await api(path, { token: readerToken })).status, path).toBe(200);
      }
    });
  });

  describe('users', () => {
    it('creates a user who signs in through the real login page; the hash is never returned', async () => {
      await createGroup({ name: 'readers' });
      const created = await api('/users', {
        method: 'POST',
        body: { username: 'dora', email: 'Dora@Example.com', emailVerified: true, name: 'Dora Explorer', givenName: 'Dora', familyName: 'Explorer', groups: ['readers'], password: 'dora-password-123' },
      });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      const id = created.body['id'] as string;
      expect(created.headers.get('location')).toBe(`/admin/v1/users/${id}`);
      expect(created.body).toMatchObject({ username: 'dora', email: 'Dora@Example.com', emailVerified: true, groups: ['readers'], disabled: false, hasPassword: true, source: 'admin', version: 1 });
      expect(created.body).not.toHaveProperty('passwordHash');

      const read = await api(`/users/${id}`);
      expect(read.headers.get('etag')).toBe('"1"');
      expect(read.body).toEqual(created.body);
      const stored = await sp.users.getUser(id);
      expect(stored?.passwordHash).toMatch(/^\$scrypt\$/);
      const list = await api('/users?limit=200');
      for (const body of [created.body, read.body, list.body]) expect(JSON.stringify(body)).not.toContain(stored!.passwordHash!);

      const { tokens } = await signIn(web, { redirectUri: callback, username: 'dora', password: 'dora-password-123' });
      expect(tokens!.claims()!.sub).toBe(id);
      await expect(signIn(web, { redirectUri: callback, username: 'dora', password: 'not-doras-password' })).rejects.toThrow(/did not return/);
      // Members of the group are indexed.
      const members = await api('/groups/readers/members');
      expect(members.body['items']).toEqual([{ id, username: 'dora' }]);
    });

    it('creates a user without a password (hasPassword false), who cannot sign in with one', async () => {
      const body = await createUser({ username: 'nopass' });
      expect(body).toMatchObject({ hasPassword: false, emailVerified: false, groups: [], disabled: false });
      expect(body).not.toHaveProperty('email');
    });

    it('rejects bad input with the offending field, and writes nothing', async () => {
      const cases: Array<[Json, string, string]> = [
        [{ username: 'bad1', surprise: true }, 'surprise', 'unknown field'],
        [{ username: 'bad 2' }, 'username', 'space in username'],
        [{ username: 'okta:bad3' }, 'username', 'federated form'],
        [{ username: 'bad4', password: 'short' }, 'password', 'short password'],
        [{ username: 'bad5', email: 'not-an-email' }, 'email', 'invalid email'],
        [{ username: 'bad6', groups: ['staff', 'no-such-group'] }, 'groups[1]', 'unknown group'],
        [{ username: 'bad7', groups: ['staff', 'staff'] }, 'groups[1]', 'duplicate group'],
        [{ username: 'bad8', groups: ['bad group'] }, 'groups[0]', 'invalid group name'],
        [{ username: 'bad9', emailVerified: 'yes' }, 'emailVerified', 'wrong type'],
        [{ username: 'bad10', disabled: 1 }, 'disabled', 'wrong type'],
        [{ username: 'bad11', name: 'x'.repeat(201) }, 'name', 'too long'],
        [{ email: 'x@example.com' }, 'username', 'missing username'],
      ];
      for (const [body, field, why] of cases) {
        const res = await api('/users', { method: 'POST', body });
        expect(res.status, why).toBe(400);
        expect(res.body, why).toMatchObject({ error: 'invalid_request', field });
        expect(res.body['message'], why).toBeTruthy();
        if (body['username']) expect((await api(`/users?username=${encodeURIComponent(body['username'] as string)}`)).body['items'], why).toEqual([]);
      }
      const malformed = await api('/users', { method: 'POST', raw: '{"username": ', headers: { 'content-type': 'application/json' } });
      expect(malformed.status).toBe(400);
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
      const wrongType = await api('/users', { method: 'POST', raw: 'username=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(wrongType.status).toBe(415);
      const huge = await api('/users', { method: 'POST', raw: JSON.stringify({ username: 'huge', name: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
      expect(huge.status).toBe(413);
      expect(huge.body).toMatchObject({ error: 'payload_too_large' });
      expect((await api('/users?username=huge')).body['items']).toEqual([]);
    });

    it('409 on a duplicate username (case-insensitive), leaving the existing account alone', async () => {
      const before = await sp.users.getUserByUsername('alice');
      for (const username of ['alice', 'ALICE']) {
        const res = await api('/users', { method: 'POST', body: { username, password: 'another-password' } });
        expect(res.status, username).toBe(409);
        expect(res.body, username).toMatchObject({ error: 'conflict', field: 'username' });
      }
      expect(await sp.users.getUserByUsername('alice')).toEqual(before);
      const ids = await sp.users.listUserIds();
      const users = await Promise.all(ids.map((id) => sp.users.getUser(id)));
      expect(users.filter((u) => u?.username.toLowerCase() === 'alice')).toHaveLength(1);
    });

    it('lists with keyset pagination, a substring filter and exact username/email filters', async () => {
      for (const n of [1, 2, 3, 4, 5]) await createUser({ username: `paged-${n}`, email: `paged-${n}@list.example` });
      await createUser({ username: 'other-list', email: 'Needle@List.Example' });

      const walk = async (query: string) => {
        const ids: string[] = [];
        const names: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const res = await api(`/users?limit=2${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
          expect(res.status).toBe(200);
          const items = res.body['items'] as Array<{ id: string; username: string }>;
          cursor = res.body['next'] as string | undefined;
          // Every page but the last is full.
          if (cursor) expect(items).toHaveLength(2);
          ids.push(...items.map((u) => u.id));
          names.push(...items.map((u) => u.username));
          pages++;
        } while (cursor && pages < 100);
        return { ids, names };
      };
      const all = await walk('');
      expect(all.ids).toEqual([...all.ids].sort());
      expect(new Set(all.ids).size).toBe(all.ids.length);
      expect(all.names).toEqual(expect.arrayContaining(['alice', 'bob', 'paged-1', 'paged-5', 'other-list']));

      const paged = await walk('&filter=PAGED-');
      expect(paged.names.sort()).toEqual(['paged-1', 'paged-2', 'paged-3', 'paged-4', 'paged-5']);
      // The filter matches the email too.
      expect((await walk('&filter=needle@')).names).toEqual(['other-list']);
      expect((await api('/users?username=PAGED-3')).body['items']).toMatchObject([{ username: 'paged-3' }]);
      expect((await api('/users?email=needle@list.example')).body['items']).toMatchObject([{ username: 'other-list' }]);
      expect((await api('/users?email=paged-2@list.example&filter=paged-3')).body['items']).toEqual([]);
      expect((await api('/users?username=nobody-at-all')).body['items']).toEqual([]);

      const zero = await api('/users?limit=0');
      expect(zero.status).toBe(400);
      expect(zero.body['field']).toBe('limit');
      const unknown = await api('/users?sort=name');
      expect(unknown.status).toBe(400);
      expect(unknown.body['field']).toBe('sort');
      const past = await api('/users?cursor=~~~~');
      expect(past.body).toEqual({ items: [] });
    });

    it('replaces a user with If-Match; 412 on a stale ETag, 400 on a malformed one; password and identities are kept', async () => {
      await createGroup({ name: 'editors' });
      const created = await createUser({ username: 'eddie', email: 'eddie@example.com', name: 'Eddie', password: 'eddie-password-1' });
      const id = created['id'] as string;
      await sp.users.updateUser(id, () => ({ identities: [{ idp: 'corp', sub: 'eddie-upstream' }] }));
      const put = (etag: string | undefined, body: Json) => api(`/users/${id}`, { method: 'PUT', headers: etag ? { 'if-match': etag } : {}, body });

      const stale = await put('"1"', { username: 'eddie', name: 'Stale' });
      expect(stale.status).toBe(412);
      expect(stale.body).toMatchObject({ error: 'precondition_failed' });
      const bad = await put('3', { username: 'eddie' });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ field: 'If-Match' });

      const ok = await put('"2"', { username: 'edward', givenName: 'Edward', groups: ['editors'] });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('etag')).toBe('"3"');
      // Replaced, not merged: fields left out are gone.
      expect(ok.body).toMatchObject({ username: 'edward', givenName: 'Edward', groups: ['editors'], hasPassword: true, emailVerified: false, version: 3 });
      expect(ok.body).not.toHaveProperty('email');
      expect(ok.body).not.toHaveProperty('name');
      expect((await api(`/users/${id}/identities`)).body).toEqual({ items: [{ idp: 'corp', sub: 'eddie-upstream' }] });
      // The old username is free again, the new one signs in with the kept password.
      expect((await api('/users?username=eddie')).body['items']).toEqual([]);
      expect((await signIn(web, { redirectUri: callback, username: 'edward', password: 'eddie-password-1' })).tokens!.claims()!.sub).toBe(id);
      // Without If-Match: last writer wins.
      expect((await put(undefined, { username: 'edward', name: 'Ed' })).status).toBe(200);
    });

    it('PUT errors: 404, unknown fields, unknown new groups, taken or federated-looking usernames', async () => {
      const created = await createUser({ username: 'frank' });
      const id = created['id'] as string;
      const put = (body: Json) => api(`/users/${id}`, { method: 'PUT', body });
      expect((await api('/users/no-such-id', { method: 'PUT', body: { username: 'x' } })).body).toMatchObject({ error: 'not_found', field: 'id' });
      expect((await api('/users/no-such-id', { method: 'PUT', body: { username: 'x' } })).status).toBe(404);
      const cases: Array<[Json, number, string]> = [
        [{ username: 'frank', password: 'a-new-password' }, 400, 'password'],
        [{ username: 'frank', hasPassword: true }, 400, 'hasPassword'],
        [{ username: 'frank', groups: ['no-such-group'] }, 400, 'groups[0]'],
        [{ username: 'okta:frank' }, 400, 'username'],
        [{ username: 'Bob' }, 409, 'username'],
        [{}, 400, 'username'],
      ];
      for (const [body, status, field] of cases) {
        const res = await put(body);
        expect(res.status, JSON.stringify(body)).toBe(status);
        expect(res.body['field'], JSON.stringify(body)).toBe(field);
      }
      const unchanged = await api(`/users/${id}`);
      expect(unchanged.body).toMatchObject({ username: 'frank', version: 1 });
      expect((await api('/users?username=bob')).body['items']).toMatchObject([{ username: 'bob', source: 'config' }]);
      const malformed = await api(`/users/${id}`, { method: 'PUT', raw: '[', headers: { 'content-type': 'application/json' } });
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
    });

    it('of concurrent PUTs holding the same ETag exactly one wins', async () => {
      const created = await createUser({ username: 'racer' });
      const id = created['id'] as string;
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => api(`/users/${id}`, { method: 'PUT', headers: { 'if-match': '"1"' }, body: { username: 'racer', name: `Writer ${i}` } })),
      );
      const winners = results.filter((r) => r.status === 200);
      expect(winners).toHaveLength(1);
      expect(results.filter((r) => r.status === 412)).toHaveLength(5);
      const final = await api(`/users/${id}`);
      expect(final.body).toMatchObject({ version: 2, name: winners[0]!.body['name'] });
    });

    it('users declared in the config file: readable, password/enable/disable allowed, PUT and DELETE 409', async () => {
      const bobId = await idOf('bob');
      const bob = await api(`/users/${bobId}`);
      expect(bob.body).toMatchObject({ username: 'bob', source: 'config', hasPassword: true });
      for (const method of ['PUT', 'DELETE']) {
        const res = await api(`/users/${bobId}`, { method, ...(method === 'PUT' ? { body: { username: 'bob', name: 'Robert' } } : {}) });
        expect(res.status, method).toBe(409);
        expect(res.body, method).toMatchObject({ error: 'managed_by_config', field: 'id' });
      }
      expect((await api(`/users/${bobId}/disable`, { method: 'POST' })).body).toMatchObject({ disabled: true });
      expect((await api(`/users/${bobId}/enable`, { method: 'POST' })).body).toMatchObject({ disabled: false });
      const reset = await api(`/users/${bobId}/password`, { method: 'POST', body: { password: 'bobs-new-password' } });
      expect(reset.status).toBe(200);
      expect((await signIn(web, { redirectUri: callback, username: 'bob', password: 'bobs-new-password' })).tokens).toBeDefined();
      expect(await sp.users.getUser(bobId)).toMatchObject({ name: 'Bob', source: 'config' });
    });

    it('deletes a user: their sessions end, the record and its links go, and the name is free', async () => {
      const created = await createUser({ username: 'gone', email: 'gone@example.com', password: 'gone-password-1' });
      const id = created['id'] as string;
      await sp.users.updateUser(id, () => ({ identities: [{ idp: 'corp', sub: 'gone-sub' }] }));
      await sp.store.set(sp.keys.fedLink('corp', 'gone-sub'), id);
      const { tokens } = await signIn(web, { redirectUri: callback, username: 'gone', password: 'gone-password-1' });
      expect((await oidc.fetchUserInfo(web, tokens!.access_token, id)).sub).toBe(id);
      const [uid] = await sp.store.sMembers(sp.keys.accountSessions(id));
      expect(await sp.provider.Session.findByUid(uid!)).toBeDefined();
      const logoutTokens = rp.logoutTokens.length;

      expect((await api(`/users/${id}`, { method: 'DELETE', headers: { 'if-match': '"1"' } })).status).toBe(412);
      expect((await api(`/users/${id}`, { method: 'DELETE', headers: { 'if-match': '"2"' } })).status).toBe(204);
      expect((await api(`/users/${id}`)).status).toBe(404);
      expect((await api(`/users/${id}`, { method: 'DELETE' })).body).toMatchObject({ error: 'not_found', field: 'id' });
      expect(await sp.store.get(sp.keys.fedLink('corp', 'gone-sub'))).toBeNull();
      expect(await sp.users.listUserIdsByEmail('gone@example.com')).toEqual([]);
      // The session is gone, and the RP was told over back-channel logout.
      expect(await sp.provider.Session.findByUid(uid!)).toBeUndefined();
      expect(rp.logoutTokens.length).toBe(logoutTokens + 1);
      await expect(oidc.fetchUserInfo(web, tokens!.access_token, id)).rejects.toThrow();
      expect((await api('/users', { method: 'POST', body: { username: 'gone' } })).status).toBe(201);
    });

    it('disabling refuses sign-in and ends the sessions of the user; enabling lets them back in', async () => {
      const created = await createUser({ username: 'hank', password: 'hank-password-1' });
      const id = created['id'] as string;
      const { ua, tokens } = await signIn(web, { redirectUri: callback, username: 'hank', password: 'hank-password-1' });
      // While signed in, the browser goes straight through.
      expect((await signIn(web, { redirectUri: callback, ua })).loginPage).toBeUndefined();
      const uids = await sp.store.sMembers(sp.keys.accountSessions(id));
      expect(uids).toHaveLength(1);
      const logoutTokens = rp.logoutTokens.length;

      const stale = await api(`/users/${id}/disable`, { method: 'POST', headers: { 'if-match': '"7"' } });
      expect(stale.status).toBe(412);
      const disabled = await api(`/users/${id}/disable`, { method: 'POST', headers: { 'if-match': '"1"' } });
      expect(disabled.status).toBe(200);
      expect(disabled.body).toMatchObject({ disabled: true, version: 2 });
      expect(disabled.headers.get('etag')).toBe('"2"');
      // The existing session ended (the RP was told), its tokens stopped working, and the
      // same browser meets the login page again.
      expect(await sp.provider.Session.findByUid(uids[0]!)).toBeUndefined();
      expect(rp.logoutTokens.length).toBeGreaterThan(logoutTokens);
      await expect(oidc.fetchUserInfo(web, tokens!.access_token, id)).rejects.toThrow();
      const sessionCheck = await signIn(web, { redirectUri: callback, ua }).catch((err: Error) => err);
      expect(String(sessionCheck)).toMatch(/did not return/);
      // The right password no longer signs in.
      await expect(signIn(web, { redirectUri: callback, username: 'hank', password: 'hank-password-1' })).rejects.toThrow(/did not return/);
      // Idempotent.
      expect((await api(`/users/${id}/disable`, { method: 'POST' })).body).toMatchObject({ disabled: true, version: 2 });

      const enabled = await api(`/users/${id}/enable`, { method: 'POST' });
      expect(enabled.body).toMatchObject({ disabled: false, version: 3 });
      expect((await signIn(web, { redirectUri: callback, username: 'hank', password: 'hank-password-1' })).tokens).toBeDefined();
      expect((await api('/users/no-such-id/disable', { method: 'POST' })).status).toBe(404);
      expect((await api('/users/no-such-id/enable', { method: 'POST' })).status).toBe(404);
    });

    it('PUT with disabled: true also ends the user\'s sessions', async () => {
      const created = await createUser({ username: 'ivy', password: 'ivy-password-12' });
      const id = created['id'] as string;
      await signIn(web, { redirectUri: callback, username: 'ivy', password: 'ivy-password-12' });
      const [uid] = await sp.store.sMembers(sp.keys.accountSessions(id));
      expect(await sp.provider.Session.findByUid(uid!)).toBeDefined();
      const res = await api(`/users/${id}`, { method: 'PUT', body: { username: 'ivy', disabled: true } });
      expect(res.body).toMatchObject({ disabled: true });
      expect(await sp.provider.Session.findByUid(uid!)).toBeUndefined();
      // Leaving `disabled` out keeps it as it is.
      expect((await api(`/users/${id}`, { method: 'PUT', body: { username: 'ivy', name: 'Ivy' } })).body).toMatchObject({ disabled: true, name: 'Ivy' });
    });

    it('a password reset replaces the password and clears a lockout', async () => {
      const created = await createUser({ username: 'jill', password: 'jill-password-1' });
      const id = created['id'] as string;
      // The test config locks after 3 failures.
      for (let i = 0; i < 3; i++) {
        await expect(signIn(web, { redirectUri: callback, username: 'jill', password: `wrong-${i}-password` })).rejects.toThrow();
      }
      expect(Number(await sp.store.get(sp.keys.loginFailures('jill')))).toBe(3);
      const short = await api(`/users/${id}/password`, { method: 'POST', body: { password: 'short' } });
      expect(short.status).toBe(400);
      expect(short.body).toMatchObject({ field: 'password' });
      expect((await api(`/users/${id}/password`, { method: 'POST', body: { password: 'long-enough', extra: 1 } })).body).toMatchObject({ field: 'extra' });
      expect((await api(`/users/${id}/password`, { method: 'POST', body: {} })).body).toMatchObject({ field: 'password' });
      expect((await api(`/users/${id}/password`, { method: 'POST', headers: { 'if-match': '"9"' }, body: { password: 'jill-new-password' } })).status).toBe(412);
      expect((await api('/users/no-such-id/password', { method: 'POST', body: { password: 'jill-new-password' } })).status).toBe(404);

      const reset = await api(`/users/${id}/password`, { method: 'POST', body: { password: 'jill-new-password' } });
      expect(reset.status).toBe(200);
      expect(reset.body).toMatchObject({ hasPassword: true, version: 2 });
      expect(reset.body).not.toHaveProperty('passwordHash');
      expect(JSON.stringify(reset.body)).not.toContain('$scrypt$');
      expect(await sp.store.get(sp.keys.loginFailures('jill'))).toBeNull();
      expect((await signIn(web, { redirectUri: callback, username: 'jill', password: 'jill-new-password' })).tokens).toBeDefined();
      await expect(signIn(web, { redirectUri: callback, username: 'jill', password: 'jill-password-1' })).rejects.toThrow();
    });

    it('lists linked upstream identities', async () => {
      const created = await createUser({ username: 'kate' });
      const id = created['id'] as string;
      expect((await api(`/users/${id}/identities`)).body).toEqual({ items: [] });
      await sp.users.updateUser(id, () => ({ identities: [{ idp: 'corp', sub: 'k1' }, { idp: 'partner', sub: 'k2' }] }));
      const res = await api(`/users/${id}/identities`, { token: readerToken });
      expect(res.body).toEqual({ items: [{ idp: 'corp', sub: 'k1' }, { idp: 'partner', sub: 'k2' }] });
      expect(res.headers.get('etag')).toBe('"2"');
      expect((await api('/users/no-such-id/identities')).status).toBe(404);
    });
  });

  describe('groups', () => {
    it('creates, reads, replaces and deletes a group with ETags; lists IdP mappings that point at it', async () => {
      const created = await api('/groups', { method: 'POST', body: { name: 'ops', description: 'Operations', roles: ['auditor'] } });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      expect(created.headers.get('location')).toBe('/admin/v1/groups/ops');
      expect(created.body).toMatchObject({ name: 'ops', description: 'Operations', roles: ['auditor'], source: 'admin', version: 1 });

      const declaration = identityProviderSchema.parse({
        id: 'corp',
        displayName: 'Corp',
        issuer: 'https://corp.example',
        clientId: 'sallyport',
        clientSecret: 'x',
        groupMappings: { 'corp-ops': ['ops'], 'corp-dev': ['developers'] },
      });
      await sp.idpStore.putIdp(declaration, 'admin');
      const read = await api('/groups/ops');
      expect(read.headers.get('etag')).toBe('"1"');
      expect(read.body).toMatchObject({ name: 'ops', mappedFrom: [{ idp: 'corp', upstreamGroup: 'corp-ops' }] });
      await sp.idpStore.deleteIdp('corp');

      const put = (etag: string | undefined, body: Json) => api('/groups/ops', { method: 'PUT', headers: etag ? { 'if-match': etag } : {}, body });
      const replaced = await put('"1"', { roles: ['admin', 'auditor'] });
      expect(replaced.status).toBe(200);
      expect(replaced.headers.get('etag')).toBe('"2"');
      expect(replaced.body).toMatchObject({ roles: ['admin', 'auditor'], version: 2 });
      expect(replaced.body).not.toHaveProperty('description');
      expect((await put('"1"', { roles: [] })).status).toBe(412);
      expect((await put(undefined, { name: 'ops', description: 'Ops again' })).body).toMatchObject({ description: 'Ops again', roles: [], version: 3 });
      const rename = await put(undefined, { name: 'ops2' });
      expect(rename.status).toBe(400);
      expect(rename.body).toMatchObject({ field: 'name' });

      expect((await api('/groups/ops', { method: 'DELETE', headers: { 'if-match': '"2"' } })).status).toBe(412);
      expect((await api('/groups/ops', { method: 'DELETE', headers: { 'if-match': '"3"' } })).status).toBe(204);
      expect((await api('/groups/ops')).status).toBe(404);
      expect((await api('/groups/ops', { method: 'DELETE' })).body).toMatchObject({ error: 'not_found', field: 'name' });
      expect((await api('/groups/ops', { method: 'PUT', body: {} })).status).toBe(404);
    });

    it('of concurrent PUTs holding the same ETag exactly one wins', async () => {
      await createGroup({ name: 'contested' });
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => api('/groups/contested', { method: 'PUT', headers: { 'if-match': '"1"' }, body: { description: `writer ${i}` } })),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status === 412)).toHaveLength(4);
    });

    it('rejects bad input with the field; 409 on a duplicate; nothing written', async () => {
      await createGroup({ name: 'twice' });
      const dupe = await api('/groups', { method: 'POST', body: { name: 'twice', description: 'again' } });
      expect(dupe.status).toBe(409);
      expect(dupe.body).toMatchObject({ error: 'conflict', field: 'name' });
      expect((await api('/groups/twice')).body).not.toHaveProperty('description');

      const cases: Array<[Json, string]> = [
        [{ name: 'r1', roles: ['emperor'] }, 'roles[0]'],
        [{ name: 'r2', roles: ['auditor', 'auditor'] }, 'roles[1]'],
        [{ name: 'r3', surprise: 1 }, 'surprise'],
        [{ name: 'bad name' }, 'name'],
        [{ name: '' }, 'name'],
        [{ name: 'r4', description: 'x'.repeat(501) }, 'description'],
        [{ description: 'no name' }, 'name'],
      ];
      for (const [body, field] of cases) {
        const res = await api('/groups', { method: 'POST', body });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body, JSON.stringify(body)).toMatchObject({ error: 'invalid_request', field });
      }
      for (const name of ['r1', 'r2', 'r3', 'r4']) expect((await api(`/groups/${name}`)).status).toBe(404);
      expect((await api('/groups/twice', { method: 'PUT', body: { roles: ['emperor'] } })).body).toMatchObject({ field: 'roles[0]' });
      const malformed = await api('/groups', { method: 'POST', raw: '{', headers: { 'content-type': 'application/json' } });
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
      const huge = await api('/groups', { method: 'POST', raw: JSON.stringify({ name: 'huge', description: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
      expect(huge.status).toBe(413);
      expect((await api('/groups/twice', { method: 'PUT', raw: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      expect((await api('/groups/twice?force=maybe', { method: 'DELETE' })).body).toMatchObject({ field: 'force' });
      expect((await api('/groups/twice', { method: 'DELETE', headers: { 'if-match': 'nope' } })).body).toMatchObject({ field: 'If-Match' });
    });

    it('lists groups with pagination and a filter', async () => {
      for (const n of [1, 2, 3]) await createGroup({ name: `team-${n}`, description: n === 2 ? 'The Blue Team' : undefined });
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await api(`/groups?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: readerToken });
        names.push(...(res.body['items'] as Array<{ name: string }>).map((g) => g.name));
        cursor = res.body['next'] as string | undefined;
      } while (cursor);
      expect(names).toEqual([...names].sort());
      expect(names).toEqual(expect.arrayContaining(['staff', 'team-1', 'team-2', 'team-3']));
      expect(new Set(names).size).toBe(names.length);
      const filtered = await api('/groups?filter=TEAM-&limit=2');
      expect((filtered.body['items'] as Json[]).map((g) => g['name'])).toEqual(['team-1', 'team-2']);
      expect(filtered.body['next']).toBe('team-2');
      expect((await api('/groups?filter=blue')).body['items']).toMatchObject([{ name: 'team-2' }]);
      expect((await api('/groups?limit=500')).body).toMatchObject({ field: 'limit' });
    });

    it('groups declared in the config file are read-only here', async () => {
      const staff = await api('/groups/staff');
      expect(staff.body).toMatchObject({ name: 'staff', source: 'config', roles: ['auditor'] });
      for (const method of ['PUT', 'DELETE']) {
        const res = await api('/groups/staff', { method, ...(method === 'PUT' ? { body: { roles: ['admin'] } } : {}) });
        expect(res.status, method).toBe(409);
        expect(res.body, method).toMatchObject({ error: 'managed_by_config', field: 'name' });
      }
      expect((await api('/groups/staff')).body).toMatchObject({ roles: ['auditor'], version: staff.body['version'] });
    });

    it('manages members on the user records: idempotent add/remove, 404s, config users refused', async () => {
      await createGroup({ name: 'crew' });
      const created = await createUser({ username: 'liam' });
      const id = created['id'] as string;
      const add = () => api(`/groups/crew/members/${id}`, { method: 'PUT' });
      const remove = () => api(`/groups/crew/members/${id}`, { method: 'DELETE' });

      expect((await add()).status).toBe(204);
      expect((await add()).status).toBe(204);
      expect((await api(`/users/${id}`)).body).toMatchObject({ groups: ['crew'], version: 2 });
      const members = await api('/groups/crew/members', { token: readerToken });
      expect(members.body).toEqual({ items: [{ id, username: 'liam' }] });
      expect((await api('/groups/crew/members?filter=LI')).body['items']).toHaveLength(1);
      expect((await api('/groups/crew/members?filter=zz')).body['items']).toHaveLength(0);

      expect((await remove()).status).toBe(204);
      expect((await remove()).status).toBe(204);
      expect((await api(`/users/${id}`)).body).toMatchObject({ groups: [], version: 3 });
      expect((await api('/groups/crew/members')).body).toEqual({ items: [] });

      const unknownUser = await api('/groups/crew/members/no-such-user', { method: 'PUT' });
      expect(unknownUser.status).toBe(404);
      expect(unknownUser.body).toMatchObject({ field: 'userId' });
      const unknownGroup = await api(`/groups/no-such-group/members/${id}`, { method: 'PUT' });
      expect(unknownGroup.status).toBe(404);
      expect(unknownGroup.body).toMatchObject({ field: 'name' });
      expect((await api(`/groups/no-such-group/members/${id}`, { method: 'DELETE' })).status).toBe(404);
      expect((await api('/groups/crew/members/no-such-user', { method: 'DELETE' })).status).toBe(404);
      expect((await api('/groups/no-such-group/members')).status).toBe(404);
      expect((await api(`/users/${id}`)).body).toMatchObject({ groups: [], version: 3 });

      const bobId = await idOf('bob');
      const bob = await api(`/groups/crew/members/${bobId}`, { method: 'PUT' });
      expect(bob.status).toBe(409);
      expect(bob.body).toMatchObject({ error: 'managed_by_config', field: 'userId' });
      expect((await api(`/users/${bobId}`)).body['groups']).toEqual([]);
    });

    it('a user can drop a group name that has no group record (declared or mapped)', async () => {
      const created = await createUser({ username: 'mona' });
      const id = created['id'] as string;
      await sp.users.updateUser(id, () => ({ groups: ['phantom'] }));
      expect((await api(`/groups/phantom/members/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect((await api(`/users/${id}`)).body['groups']).toEqual([]);
    });

    it('409 group_not_empty while a group has members; force removes it from every member first', async () => {
      await createGroup({ name: 'doomed', roles: ['auditor'] });
      const a = (await createUser({ username: 'nina', groups: ['doomed'] }))['id'] as string;
      const b = (await createUser({ username: 'otto', groups: ['doomed', 'staff'] }))['id'] as string;
      const refused = await api('/groups/doomed', { method: 'DELETE' });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ error: 'group_not_empty', field: 'name' });
      expect((await api('/groups/doomed')).status).toBe(200);

      expect((await api('/groups/doomed?force=true', { method: 'DELETE' })).status).toBe(204);
      expect((await api('/groups/doomed')).status).toBe(404);
      expect((await api(`/users/${a}`)).body['groups']).toEqual([]);
      expect((await api(`/users/${b}`)).body['groups']).toEqual(['staff']);
      // A new group of the same name inherits nobody.
      await createGroup({ name: 'doomed', roles: ['admin'] });
      expect((await api('/groups/doomed/members')).body).toEqual({ items: [] });
      expect([...(await sp.users.listGroupMemberIds('doomed'))]).toEqual([]);
      expect(await eventTypes(a)).toEqual(expect.arrayContaining(['group.member_removed']));
    });

    it('a member whose addition races the group\'s deletion does not outlive the group', async () => {
      for (let round = 0; round < 3; round++) {
        const name = `racing-${round}`;
        await createGroup({ name });
        const id = (await createUser({ username: `racer-${round}` }))['id'] as string;
        const [added, deleted] = await Promise.all([api(`/groups/${name}/members/${id}`, { method: 'PUT' }), api(`/groups/${name}`, { method: 'DELETE' })]);
        expect([204, 404]).toContain(added.status);
        expect([204, 409]).toContain(deleted.status);
        const groupExists = (await api(`/groups/${name}`)).status === 200;
        const user = (await api(`/users/${id}`)).body;
        // Either the group survived (and may have the member), or no one names it.
        if (!groupExists) expect(user['groups']).toEqual([]);
      }
    });
  });

  describe('admin roles through groups', () => {
    it('a person in a group with the admin role gets admin scopes through the first-party client, and loses them at once when removed', async () => {
      await createGroup({ name: 'operators', roles: ['admin'] });
      const created = await createUser({ username: 'pat', password: 'pat-password-123' });
      const id = created['id'] as string;
      // The web app asks for the admin scope and, at the token endpoint, for the admin
      // API as the resource (RFC 8707 §2.2): with `openid` in the scope and no resource
      // there, the access token would be the one for userinfo.
      const tokenFor = async () => {
        const ua = new UserAgent();
        const codeVerifier = oidc.randomPKCECodeVerifier();
        const state = oidc.randomState();
        const url = oidc.buildAuthorizationUrl(web, {
          redirect_uri: callback,
          scope: 'openid sallyport.admin',
          code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
          code_challenge_method: 'S256',
          state,
        });
        const { page } = await ua.follow(url, { stopAt: [callback] });
        const done = await ua.submit(page, { action: /\/login$/ }, { username: 'pat', password: 'pat-password-123' }, [callback]);
        return oidc.authorizationCodeGrant(web, done.stoppedAt!, { pkceCodeVerifier: codeVerifier, expectedState: state }, { resource: `${sp.issuer}/admin/v1` });
      };

      // Not yet a member: the token carries no admin scope, and the API refuses it.
      const before = await tokenFor();
      expect(before.scope ?? '').not.toContain('sallyport.admin');
      const refused = await api('/users', { token: before.access_token });
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ error: 'insufficient_scope', scope: 'users.read' });

      expect((await api(`/groups/operators/members/${id}`, { method: 'PUT' })).status).toBe(204);
      const person = await tokenFor();
      expect(person.scope?.split(' ')).toContain('sallyport.admin');
      const asPerson = await api('/users', { token: person.access_token });
      expect(asPerson.status).toBe(200);
      // The person's own changes are audited with their account as the actor.
      const made = await api('/groups', { method: 'POST', token: person.access_token, body: { name: 'made-by-pat' } });
      expect(made.status).toBe(201);
      const events = await api('/events?target=made-by-pat', { token: readerToken });
      expect((events.body['items'] as Array<{ actor: Json }>)[0]!.actor).toMatchObject({ clientId: 'web', accountId: id });

      expect((await api(`/groups/operators/members/${id}`, { method: 'DELETE' })).status).toBe(204);
      const after = await api('/users', { token: person.access_token });
      expect(after.status).toBe(403);
      expect(after.body).toMatchObject({ error: 'insufficient_scope', scope: 'users.read' });

      // Back in the group, the same token works again; the group losing its role withdraws it.
      await api(`/groups/operators/members/${id}`, { method: 'PUT' });
      expect((await api('/users', { token: person.access_token })).status).toBe(200);
      await api('/groups/operators', { method: 'PUT', body: { roles: [] } });
      expect((await api('/users', { token: person.access_token })).status).toBe(403);
      // And a disabled person holds nothing.
      await api('/groups/operators', { method: 'PUT', body: { roles: ['admin'] } });
      expect((await api('/users', { token: person.access_token })).status).toBe(200);
      await api(`/users/${id}/disable`, { method: 'POST' });
      expect([401, 403]).toContain((await api('/users', { token: person.access_token })).status);
    });
  });

  it('records every change in the audit trail, without passwords or hashes', async () => {
    await createGroup({ name: 'audited' });
    const created = await createUser({ username: 'quinn', password: 'quinn-password-1' });
    const id = created['id'] as string;
    await api(`/users/${id}`, { method: 'PUT', body: { username: 'quinn', name: 'Quinn' } });
    await api(`/users/${id}/password`, { method: 'POST', body: { password: 'quinn-password-2' } });
    await api(`/users/${id}/disable`, { method: 'POST' });
    await api(`/users/${id}/enable`, { method: 'POST' });
    await api(`/groups/audited/members/${id}`, { method: 'PUT' });
    await api(`/groups/audited/members/${id}`, { method: 'DELETE' });
    await api('/groups/audited', { method: 'PUT', body: { description: 'changed' } });
    await api(`/users/${id}`, { method: 'DELETE' });
    await api('/groups/audited', { method: 'DELETE' });

    expect(await eventTypes(id)).toEqual([
      'user.deleted',
      'group.member_removed',
      'group.member_added',
      'user.enabled',
      'user.disabled',
      'user.password_reset',
      'user.updated',
      'user.created',
    ]);
    expect(await eventTypes('audited')).toEqual(['group.deleted', 'group.updated', 'group.created']);
    const all = await api(`/events?target=${id}`, { token: readerToken });
    const items = all.body['items'] as Array<{ actor: Json; details?: Json }>;
    expect(items.every((e) => e.actor['clientId'] === 'admin-cli')).toBe(true);
    expect(items.find((e) => e.details?.['changed'])?.details).toMatchObject({ changed: ['name'] });
    const text = JSON.stringify(all.body);
    for (const secret of ['quinn-password-1', 'quinn-password-2', '$scrypt$']) expect(text).not.toContain(secret);
  });

  it('describes every route in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${sp.issuer}/admin/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security: unknown }>>;
      components: { schemas: Record<string, { properties?: Record<string, { items?: { enum?: string[] } }> }> };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/admin/v1/users',
        '/admin/v1/users/{id}',
        '/admin/v1/users/{id}/password',
        '/admin/v1/users/{id}/disable',
        '/admin/v1/users/{id}/enable',
        '/admin/v1/users/{id}/identities',
        '/admin/v1/groups',
        '/admin/v1/groups/{name}',
        '/admin/v1/groups/{name}/members',
        '/admin/v1/groups/{name}/members/{userId}',
      ]),
    );
    expect(doc.paths['/admin/v1/users/{id}/password']!['post']!.security).toEqual([{ bearer: ['users.write'] }]);
    expect(doc.paths['/admin/v1/groups/{name}/members']!['get']!.security).toEqual([{ bearer: ['groups.read'] }]);
    expect(Object.keys(doc.components.schemas['UserInput']!.properties!)).toEqual(expect.arrayContaining(['username', 'password', 'groups']));
    expect(doc.components.schemas['User']!.properties).not.toHaveProperty('passwordHash');
    expect(doc.components.schemas['GroupInput']!.properties!['roles']!.items!.enum).toEqual(expect.arrayContaining(['admin', 'auditor']));
  });

  void PASSWORD;
});
