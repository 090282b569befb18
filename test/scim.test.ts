/**
 * SCIM 2.0 at /scim/v2 (RFC 7643 / RFC 7644), on memory and Redis, driven the way Okta
 * and Entra ID provisioning drive it: look a user up by userName, create it, patch and
 * replace it, deactivate it (its sessions end and the real login page refuses it), push
 * groups and their members; every error with its scimType, every scope check, ETags.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { ADMIN_CLIENTS, ADMIN_SECRET, adminToken, apiClient, type ApiResponse } from './support/admin.ts';
import { signIn, startTestRp, type TestRp } from './support/rp.ts';
import { BACKENDS, PASSWORD, startSallyport, type RunningSallyport } from './support/sallyport.ts';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

/** A provisioning client, as an operator would declare Okta's: a role with exactly the SCIM scopes. */
const PROVISIONER = { client_id: 'okta', client_secret: ADMIN_SECRET, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], roles: ['provisioner'] };
const SCIM_SCOPES = 'users.read users.write groups.read groups.write';

type Scim = (path: string, init?: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string }) => Promise<ApiResponse>;

const patchOp = (...operations: object[]) => ({ schemas: [PATCH], Operations: operations });

/** The body of a SCIM error, checked in full (RFC 7644 §3.12). */
function expectError(res: ApiResponse, status: number, scimType?: string, detail?: RegExp): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
  expect(res.body['schemas']).toEqual([ERROR]);
  expect(res.body['status']).toBe(String(status));
  if (scimType) expect(res.body['scimType']).toBe(scimType);
  else expect(res.body['scimType']).toBeUndefined();
  expect(typeof res.body['detail']).toBe('string');
  if (detail) expect(res.body['detail']).toMatch(detail);
}

const resources = (res: ApiResponse) => res.body['Resources'] as Array<Record<string, unknown>>;

describe.each(BACKENDS)('SCIM 2.0 on %s', (backend) => {
  let sp: RunningSallyport;
  let rp: TestRp;
  let web: oidc.Configuration;
  let scim: Scim;
  let as: (token: string) => Scim;
  let tokens: { admin: string; reader: string; usersOnly: string; clientsOnly: string };

  beforeAll(async () => {
    rp = await startTestRp();
    sp = await startSallyport({
      backend,
      rpOrigin: rp.origin,
      extraClients: [...ADMIN_CLIENTS, PROVISIONER],
      config: {
        roles: { provisioner: ['users.read', 'users.write', 'groups.read', 'groups.write'] },
        // Declared in the file: alice (see support/sallyport.ts) is a member.
        groups: [{ name: 'admins', roles: ['admin'] }],
      },
    });
    web = await sp.rp('web');
    as = (token) => {
      const api = apiClient(sp, token, '/scim/v2');
      return (path, init = {}) => api(path, { ...init, headers: { accept: 'application/scim+json', 'content-type': 'application/scim+json', ...init.headers } });
    };
    scim = as(await adminToken(sp, 'okta', SCIM_SCOPES));
    tokens = {
      admin: await adminToken(sp),
      reader: await adminToken(sp, 'auditor-cli', 'users.read groups.read'),
      usersOnly: await adminToken(sp, 'okta', 'users.read users.write'),
      clientsOnly: await adminToken(sp, 'auditor-cli', 'clients.read'),
    };
  });
  afterAll(async () => {
    await sp?.stop();
    await rp?.stop();
  });

  const createUser = async (userName: string, extra: Record<string, unknown> = {}) => {
    const res = await scim('/Users', { method: 'POST', body: { schemas: [USER], userName, ...extra } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; meta: { version: string; location: string } } & Record<string, unknown>;
  };
  const signInAs = (username: string, password: string, ua?: Parameters<typeof signIn>[1]['ua']) =>
    signIn(web, { redirectUri: `${rp.origin}/callback`, username, password, ...(ua ? { ua } : {}) });

  describe('discovery (RFC 7644 §4)', () => {
    it('ServiceProviderConfig: patch, filter (maxResults 200), ETags and bearer tokens; no bulk, no sort', async () => {
      const res = await scim('/ServiceProviderConfig', { token: null });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
      expect(res.body).toMatchObject({
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
        patch: { supported: true },
        bulk: { supported: false },
        filter: { supported: true, maxResults: 200 },
        changePassword: { supported: true },
        sort: { supported: false },
        etag: { supported: true },
        authenticationSchemes: [{ type: 'oauthbearertoken', primary: true }],
      });
    });

    it('ResourceTypes and Schemas describe User and Group; the password is write-only and never returned', async () => {
      const types = await scim('/ResourceTypes', { token: null });
      expect(types.body['schemas']).toEqual([LIST]);
      expect(resources(types).map((t) => [t['id'], t['endpoint'], t['schema']])).toEqual([
        ['User', '/Users', USER],
        ['Group', '/Groups', GROUP],
      ]);
      expect((await scim('/ResourceTypes/Group', { token: null })).body).toMatchObject({ id: 'Group', endpoint: '/Groups' });

      const schemas = await scim('/Schemas', { token: null });
      expect(resources(schemas).map((s) => s['id'])).toEqual([USER, GROUP]);
      const user = await scim(`/Schemas/${USER}`, { token: null });
      const attributes = user.body['attributes'] as Array<Record<string, unknown>>;
      expect(attributes.find((a) => a['name'] === 'password')).toMatchObject({ mutability: 'writeOnly', returned: 'never' });
      expect(attributes.find((a) => a['name'] === 'userName')).toMatchObject({ required: true, uniqueness: 'server', caseExact: false });
      expect(attributes.find((a) => a['name'] === 'groups')).toMatchObject({ mutability: 'readOnly', multiValued: true });
      expectError(await scim('/Schemas/urn:nope', { token: null }), 404);
      // §4: a filter on these endpoints is refused rather than ignored.
      expectError(await scim('/Schemas?filter=id%20eq%20%22x%22', { token: null }), 403);
    });

    it('unknown endpoints, bulk and /Me answer as SCIM errors', async () => {
      expectError(await scim('/Nope'), 404);
      expectError(await scim('/Bulk', { method: 'POST', body: {} }), 501);
      expectError(await scim('/Me'), 501);
      const wrongMethod = await scim('/Users', { method: 'DELETE' });
      expectError(wrongMethod, 405);
      expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD, POST');
    });
  });

  describe('authorization', () => {
    it('401 with WWW-Authenticate: Bearer without a token or with a bad one', async () => {
      for (const token of [null, 'not-a-token']) {
        const res = await scim('/Users', { token });
        expectError(res, 401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
      // A session cookie is no substitute.
      const res = await fetch(`${sp.issuer}/scim/v2/Users`, { headers: { cookie: 'sp_session=x' } });
      expect(res.status).toBe(401);
    });

    it('403 naming the scope each route needs', async () => {
      const user = await createUser('scope-check');
      const group = await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'scope-check' } });
      expect(group.status).toBe(201);
      const cases: Array<[string, string, string, unknown?]> = [
        ['GET', '/Users', 'users.read'],
        ['GET', `/Users/${user.id}`, 'users.read'],
        ['POST', '/Users/.search', 'users.read', { schemas: [SEARCH] }],
        ['POST', '/Users', 'users.write', { schemas: [USER], userName: 'never' }],
        ['PUT', `/Users/${user.id}`, 'users.write', { schemas: [USER], userName: 'scope-check' }],
        ['PATCH', `/Users/${user.id}`, 'users.write', patchOp({ op: 'replace', path: 'active', value: false })],
        ['DELETE', `/Users/${user.id}`, 'users.write'],
        ['GET', '/Groups', 'groups.read'],
        ['GET', '/Groups/scope-check', 'groups.read'],
        ['POST', '/Groups/.search', 'groups.read', { schemas: [SEARCH] }],
        ['POST', '/Groups', 'groups.write', { schemas: [GROUP], displayName: 'never' }],
        ['PUT', '/Groups/scope-check', 'groups.write', { schemas: [GROUP], displayName: 'scope-check' }],
        ['PATCH', '/Groups/scope-check', 'groups.write', patchOp({ op: 'add', path: 'members', value: [{ value: user.id }] })],
        ['DELETE', '/Groups/scope-check', 'groups.write'],
      ];
      for (const [method, path, scope, body] of cases) {
        // The reader holds users.read and groups.read; the other token holds users.* only.
        const token = scope.endsWith('.write') ? tokens.reader : scope.startsWith('users') ? tokens.clientsOnly : tokens.usersOnly;
        const res = await as(token)(path, { method, ...(body ? { body } : {}) });
        expectError(res, 403, undefined, new RegExp(scope.replace('.', '\\.')));
        expect(res.headers.get('www-authenticate')).toContain(`scope="${scope}"`);
      }
      // Nothing was changed by the refused requests.
      expect((await scim(`/Users/${user.id}`)).body['active']).toBe(true);
      expect((await scim('/Groups/scope-check')).body['members']).toBeUndefined();
      // And the same reads with the scope succeed.
      expect((await as(tokens.reader)('/Users')).status).toBe(200);
      expect((await as(tokens.reader)('/Groups')).status).toBe(200);
    });

    it('answers with SCIM errors whatever the case of the path', async () => {
      for (const path of ['/SCIM/V2/Users', '/Scim/v2/Groups', '/scim/V2/Users/no-such-user']) {
        const res = await fetch(`${sp.issuer}${path}`);
        expectError({ status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> }, 401);
      }
    });

    it('adding members to a group that grants admin roles needs every scope the roles grant', async () => {
      await sp.groups.createGroup({ name: 'auditors', roles: ['auditor'], source: 'admin' });
      const user = await createUser('would-be-auditor');
      const body = patchOp({ op: 'add', path: 'members', value: [{ value: user.id }] });
      const refused = await scim('/Groups/auditors', { method: 'PATCH', body });
      expectError(refused, 403, undefined, /scope (clients|idps|sessions|events)\.read/);
      expect((await sp.users.getUser(user.id))!.groups).toEqual([]);
      expect((await as(tokens.admin)('/Groups/auditors', { method: 'PATCH', body })).status).toBe(200);
      expect((await sp.users.getUser(user.id))!.groups).toEqual(['auditors']);
    });
  });

  describe('an Okta/Entra provisioning lifecycle', () => {
    const userName = 'jdoe@example.com';
    const password = 'initial password 1';
    let id: string;
    const versions: string[] = [];

    it('looks the user up first: not found is an empty ListResponse', async () => {
      const res = await scim(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}&startIndex=1&count=100`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
      expect(res.body).toEqual({ schemas: [LIST], totalResults: 0, itemsPerPage: 0, startIndex: 1, Resources: [] });
    });

    it('creates the user: 201, Location, ETag = meta.version, no password in the answer or the audit log', async () => {
      const res = await scim('/Users', {
        method: 'POST',
        body: {
          schemas: [USER, 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
          userName,
          externalId: '00u1abcd',
          name: { givenName: 'Jane', familyName: 'Doe' },
          displayName: 'Jane Doe',
          emails: [{ primary: true, value: 'Jane.Doe@Example.com', type: 'work' }],
          locale: 'en-US',
          password,
          active: true,
          groups: [{ value: 'admins' }],
          'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'R&D' },
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      id = res.body['id'] as string;
      expect(res.body).toMatchObject({
        schemas: [USER],
        userName,
        name: { givenName: 'Jane', familyName: 'Doe', formatted: 'Jane Doe' },
        displayName: 'Jane Doe',
        emails: [{ value: 'Jane.Doe@Example.com', primary: true, type: 'work' }],
        active: true,
        meta: { resourceType: 'User', version: 'W/"1"', location: `${sp.issuer}/scim/v2/Users/${id}` },
      });
      // Read-only groups in a POST are ignored (RFC 7644 §3.3), as are attributes not kept.
      expect(res.body['groups']).toBeUndefined();
      expect(res.body['password']).toBeUndefined();
      expect(res.body['externalId']).toBeUndefined();
      expect(res.headers.get('location')).toBe(`${sp.issuer}/scim/v2/Users/${id}`);
      expect(res.headers.get('etag')).toBe('W/"1"');
      versions.push(res.headers.get('etag')!);
      const stored = (await sp.users.getUser(id))!;
      expect(stored).toMatchObject({ username: userName, email: 'Jane.Doe@Example.com', emailVerified: false, name: 'Jane Doe', groups: [], source: 'admin' });
      expect(stored.passwordHash).toMatch(/^\$scrypt\$/);

      const { events } = await sp.audit.query({ limit: 1000 });
      const created = events.find((e) => e.type === 'user.created' && e.target?.id === id);
      expect(created?.actor).toMatchObject({ clientId: 'okta' });
      expect(JSON.stringify(events)).not.toContain(password);
      expect(JSON.stringify(events)).not.toContain('$scrypt$');
    });

    it('finds the user by userName (case-insensitively), by email, and with and/or', async () => {
      const found = await scim(`/Users?filter=${encodeURIComponent(`userName eq "JDOE@example.COM"`)}`);
      expect(found.body).toMatchObject({ totalResults: 1, itemsPerPage: 1, startIndex: 1 });
      expect(resources(found)[0]).toMatchObject({ id, userName });
      for (const filter of [
        'emails.value eq "jane.doe@example.com"',
        'emails[type eq "work" and value eq "JANE.DOE@EXAMPLE.COM"]',
        `userName eq "${userName}" and active eq true`,
        `userName eq "nobody" or id eq "${id}"`,
        'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "jdoe@"',
        'name.familyName co "oe" and not (displayName eq "someone else")',
        'meta.created gt "2000-01-01T00:00:00Z" and userName ew "@example.com" and emails pr and displayName eq "jane doe"',
      ]) {
        const res = await scim(`/Users?filter=${encodeURIComponent(filter)}`);
        expect(res.status, `${filter}: ${JSON.stringify(res.body)}`).toBe(200);
        expect(resources(res).map((r) => r['id']), filter).toContain(id);
      }
      const none = await scim(`/Users?filter=${encodeURIComponent('userName eq "jdoe@example.com" and active eq false')}`);
      expect(none.body['totalResults']).toBe(0);
      // POST …/.search (RFC 7644 §3.4.3) takes the same query in a body.
      const search = await scim('/Users/.search', { method: 'POST', body: { schemas: [SEARCH], filter: `userName eq "${userName}"`, attributes: ['userName'] } });
      expect(search.status).toBe(200);
      expect(resources(search)).toEqual([{ schemas: [USER], id, userName }]);
    });

    it('the password set through SCIM works at the real login page', async () => {
      const result = await signInAs(userName, password);
      const claims = result.tokens!.claims()!;
      expect(claims.sub).toBe(id);
      const userinfo = await oidc.fetchUserInfo(web, result.tokens!.access_token, id);
      expect(userinfo).toMatchObject({ preferred_username: userName, name: 'Jane Doe', given_name: 'Jane', family_name: 'Doe', email: 'Jane.Doe@Example.com' });
    });

    it('GET returns the ETag; If-None-Match with it is 304; attributes and excludedAttributes project', async () => {
      const res = await scim(`/Users/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe('W/"1"');
      expect(res.body['meta']).toMatchObject({ version: 'W/"1"' });
      expect((await scim(`/Users/${id}`, { headers: { 'if-none-match': 'W/"1"' } })).status).toBe(304);
      expect((await scim(`/Users/${id}?attributes=userName,name.givenName`)).body).toEqual({ schemas: [USER], id, userName, name: { givenName: 'Jane' } });
      const trimmed = await scim(`/Users/${id}?excludedAttributes=emails,meta,name.familyName`);
      expect(trimmed.body['emails']).toBeUndefined();
      expect(trimmed.body['meta']).toBeUndefined();
      expect(trimmed.body['name']).toEqual({ givenName: 'Jane', formatted: 'Jane Doe' });
      expect(trimmed.body['id']).toBe(id);
    });

    it('PATCH replaces name parts (with a path, and Entra-style without one); each write moves meta.version', async () => {
      const withPath = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'name.givenName', value: 'Janet' }) });
      expect(withPath.status, JSON.stringify(withPath.body)).toBe(200);
      expect(withPath.body['name']).toMatchObject({ givenName: 'Janet', familyName: 'Doe' });
      expect(withPath.headers.get('etag')).toBe('W/"2"');
      expect(withPath.body['meta']).toMatchObject({ version: 'W/"2"' });
      // Entra ID: capitalised op, dotted attribute names in the value, extension attributes.
      const entra = await scim(`/Users/${id}`, {
        method: 'PATCH',
        body: patchOp(
          { op: 'Replace', value: { 'name.familyName': 'Dough', displayName: 'Janet Dough', title: 'Engineer' } },
          { op: 'Add', path: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department', value: 'R&D' },
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'janet@example.com' },
        ),
      });
      expect(entra.status, JSON.stringify(entra.body)).toBe(200);
      expect(entra.body).toMatchObject({ name: { givenName: 'Janet', familyName: 'Dough', formatted: 'Janet Dough' }, displayName: 'Janet Dough', emails: [{ value: 'janet@example.com', primary: true }] });
      expect(entra.headers.get('etag')).toBe('W/"3"');
      expect((await sp.users.getUser(id))!).toMatchObject({ givenName: 'Janet', familyName: 'Dough', name: 'Janet Dough', email: 'janet@example.com', emailVerified: false });
      // remove with a path.
      const removed = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'remove', path: 'name.givenName' }) });
      expect(removed.body['name']).toEqual({ familyName: 'Dough', formatted: 'Janet Dough' });
      expect(removed.headers.get('etag')).toBe('W/"4"');
      // add to emails with a new primary: the old one stops being primary, one address is kept.
      const added = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'add', path: 'emails', value: [{ value: 'jd@example.org', type: 'home', primary: true }] }) });
      expect(added.status, JSON.stringify(added.body)).toBe(200);
      expect((await sp.users.getUser(id))!.email).toBe('jd@example.org');
      versions.push('W/"2"', 'W/"3"', 'W/"4"', added.headers.get('etag')!);
      expect(new Set(versions).size).toBe(versions.length);
    });

    it('PUT replaces the user; `verified` (UAA) sets emailVerified, its absence leaves it', async () => {
      const before = await scim(`/Users/${id}`);
      const body = {
        schemas: [USER],
        id: 'ignored-read-only',
        userName,
        name: { givenName: 'Jane', familyName: 'Doe' },
        emails: [{ value: 'jane@example.com', type: 'work', primary: true }],
        active: true,
        verified: true,
      };
      const res = await scim(`/Users/${id}`, { method: 'PUT', body, headers: { 'if-match': before.headers.get('etag')! } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body['id']).toBe(id);
      // Replaced: displayName was not sent, so it is gone.
      expect(res.body['displayName']).toBeUndefined();
      expect(res.body['name']).toEqual({ givenName: 'Jane', familyName: 'Doe' });
      expect(res.body['verified']).toBe(true);
      expect(res.headers.get('etag')).not.toBe(before.headers.get('etag'));
      const stored = (await sp.users.getUser(id))!;
      expect(stored).toMatchObject({ email: 'jane@example.com', emailVerified: true, givenName: 'Jane' });
      expect(stored.name).toBeUndefined();
      // Changing the email without `verified` keeps the flag as it is.
      const { verified: _v, ...withoutVerified } = body;
      void _v;
      await scim(`/Users/${id}`, { method: 'PUT', body: { ...withoutVerified, displayName: 'Jane Doe', emails: [{ value: 'jane.doe@example.com' }] } });
      expect((await sp.users.getUser(id))!).toMatchObject({ email: 'jane.doe@example.com', emailVerified: true, name: 'Jane Doe' });
    });

    it('a stale If-Match is 412 on PUT, PATCH and DELETE, and nothing changes', async () => {
      const current = await scim(`/Users/${id}`);
      const version = current.headers.get('etag')!;
      const stale = 'W/"1"';
      const body = { schemas: [USER], userName, displayName: 'Stale' };
      expectError(await scim(`/Users/${id}`, { method: 'PUT', body, headers: { 'if-match': stale } }), 412);
      expectError(await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'displayName', value: 'Stale' }), headers: { 'if-match': stale } }), 412);
      expectError(await scim(`/Users/${id}`, { method: 'DELETE', headers: { 'if-match': stale } }), 412);
      expectError(await scim(`/Users/${id}`, { method: 'DELETE', headers: { 'if-match': 'not-an-etag' } }), 412);
      const after = await scim(`/Users/${id}`);
      expect(after.headers.get('etag')).toBe(version);
      expect(after.body['displayName']).toBe('Jane Doe');
      // The current one (weak or strong form, or in a list) is accepted.
      const ok = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'displayName', value: 'Jane D.' }), headers: { 'if-match': `"999", ${version.slice(2)}` } });
      expect(ok.status).toBe(200);
    });

    it('a password set by PATCH works at the login page and is never returned', async () => {
      const res = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', value: { password: 'second password 2' } }) });
      expect(res.status).toBe(200);
      expect(JSON.stringify(res.body)).not.toMatch(/password|\$scrypt\$/);
      await expect(signInAs(userName, password)).rejects.toThrow(/last page 401/);
      expect((await signInAs(userName, 'second password 2')).tokens?.claims()?.sub).toBe(id);
      const list = await scim('/Users?count=200');
      expect(JSON.stringify(list.body)).not.toMatch(/"password"|\$scrypt\$/);
      const { events } = await sp.audit.query({ limit: 1000 });
      expect(JSON.stringify(events)).not.toContain('second password 2');
      expect(events.find((e) => e.type === 'user.updated' && e.target?.id === id)?.details?.['changed']).toEqual(['password']);
    });

    it('PATCH active false ends the user\'s sessions and the login page refuses them; true lets them back', async () => {
      const session = await signInAs(userName, 'second password 2');
      const logoutTokens = rp.logoutTokens.length;
      const res = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'active', value: false }) });
      expect(res.status).toBe(200);
      expect(res.body['active']).toBe(false);
      expect((await sp.users.getUser(id))!.disabled).toBe(true);
      // The RP was told (back-channel logout), the session's tokens are revoked, and the
      // browser's session is gone: the next sign-in needs the password, which is refused.
      expect(rp.logoutTokens.length).toBeGreaterThan(logoutTokens);
      await expect(oidc.fetchUserInfo(web, session.tokens!.access_token, id)).rejects.toThrow();
      await expect(signInAs(userName, 'second password 2', session.ua)).rejects.toThrow(/last page 401/);
      const { events } = await sp.audit.query({ type: 'user.updated', target: id, limit: 1 });
      expect(events[0]?.details).toMatchObject({ via: 'scim', changed: ['active'] });
      // This session and the two earlier ones of this user.
      expect(events[0]?.details?.['sessionsEnded']).toBe(3);

      const back = await scim(`/Users/${id}`, { method: 'PATCH', body: patchOp({ op: 'replace', value: { active: true } }) });
      expect(back.body['active']).toBe(true);
      expect((await signInAs(userName, 'second password 2')).tokens).toBeDefined();
    });

    it('deletes the user: 204, then 404; sessions end; the username is free again', async () => {
      const session = await signInAs(userName, 'second password 2');
      const res = await scim(`/Users/${id}`, { method: 'DELETE' });
      expect(res.status).toBe(204);
      expectError(await scim(`/Users/${id}`), 404);
      expectError(await scim(`/Users/${id}`, { method: 'DELETE' }), 404);
      await expect(oidc.fetchUserInfo(web, session.tokens!.access_token, id)).rejects.toThrow();
      expect((await scim(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`)).body['totalResults']).toBe(0);
      expect((await sp.audit.query({ type: 'user.deleted', target: id, limit: 1 })).events[0]?.actor).toMatchObject({ clientId: 'okta' });
      await createUser(userName);
    });
  });

  describe('groups', () => {
    let a: string;
    let b: string;
    let c: string;

    beforeAll(async () => {
      a = (await createUser('member-a')).id;
      b = (await createUser('member-b')).id;
      c = (await createUser('member-c')).id;
    });

    it('creates a group with members; the users list it (read-only)', async () => {
      const res = await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'engineering', members: [{ value: a, display: 'whatever' }] } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({
        schemas: [GROUP],
        id: 'engineering',
        displayName: 'engineering',
        members: [{ value: a, display: 'member-a', type: 'User', $ref: `${sp.issuer}/scim/v2/Users/${a}` }],
        meta: { resourceType: 'Group', version: 'W/"1"', location: `${sp.issuer}/scim/v2/Groups/engineering` },
      });
      expect(res.headers.get('location')).toBe(`${sp.issuer}/scim/v2/Groups/engineering`);
      expect(res.headers.get('etag')).toBe('W/"1"');
      expect((await scim(`/Users/${a}`)).body['groups']).toEqual([{ value: 'engineering', display: 'engineering', type: 'direct', $ref: `${sp.issuer}/scim/v2/Groups/engineering` }]);
      expect((await sp.audit.query({ type: 'group.created', target: 'engineering', limit: 1 })).events[0]?.actor).toMatchObject({ clientId: 'okta' });
    });

    it('PATCH add members, then remove one with a value filter path (Okta) and one by value (Entra)', async () => {
      const added = await scim('/Groups/engineering', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value: b }, { value: c }, { value: a }] }) });
      expect(added.status, JSON.stringify(added.body)).toBe(200);
      expect((added.body['members'] as Array<{ value: string }>).map((m) => m.value).sort()).toEqual([a, b, c].sort());
      expect(added.headers.get('etag')).toBe('W/"2"');
      expect((await sp.users.getUser(b))!.groups).toEqual(['engineering']);
      expect((await sp.audit.query({ type: 'group.member_added', target: c, limit: 1 })).events[0]?.details).toMatchObject({ group: 'engineering', via: 'scim' });

      const okta = await scim('/Groups/engineering', { method: 'PATCH', body: patchOp({ op: 'remove', path: `members[value eq "${b}"]` }) });
      expect(okta.status, JSON.stringify(okta.body)).toBe(200);
      expect((okta.body['members'] as Array<{ value: string }>).map((m) => m.value).sort()).toEqual([a, c].sort());
      expect(okta.headers.get('etag')).toBe('W/"3"');
      expect((await sp.users.getUser(b))!.groups).toEqual([]);
      expect((await scim(`/Users/${b}`)).body['groups']).toBeUndefined();

      const entra = await scim('/Groups/engineering', { method: 'PATCH', body: patchOp({ op: 'Remove', path: 'members', value: [{ value: c }] }) });
      expect((entra.body['members'] as Array<{ value: string }>).map((m) => m.value)).toEqual([a]);
      // Removing one that is not a member changes no one.
      const again = await scim('/Groups/engineering', { method: 'PATCH', body: patchOp({ op: 'remove', path: `members[value eq "${c}"]` }) });
      expect(again.status).toBe(200);
      expect((await sp.users.getUser(a))!.groups).toEqual(['engineering']);
    });

    it('lists groups filtered by displayName (case-insensitively), with or without members', async () => {
      const found = await scim(`/Groups?filter=${encodeURIComponent('displayName eq "ENGINEERING"')}`);
      expect(found.body).toMatchObject({ schemas: [LIST], totalResults: 1, itemsPerPage: 1, startIndex: 1 });
      expect(resources(found)[0]).toMatchObject({ id: 'engineering', members: [{ value: a }] });
      const lean = await scim(`/Groups?filter=${encodeURIComponent('displayName eq "engineering"')}&excludedAttributes=members`);
      expect(resources(lean)[0]!['members']).toBeUndefined();
      expect(resources(lean)[0]!['displayName']).toBe('engineering');
      const byMember = await scim(`/Groups?filter=${encodeURIComponent(`members[value eq "${a}"] and displayName sw "eng"`)}&attributes=displayName`);
      expect(resources(byMember)).toEqual([{ schemas: [GROUP], id: 'engineering', displayName: 'engineering' }]);
      expect((await scim(`/Groups?filter=${encodeURIComponent('displayName eq "nope"')}`)).body['totalResults']).toBe(0);
      const search = await scim('/Groups/.search', { method: 'POST', body: { schemas: [SEARCH], filter: 'id eq "engineering"', excludedAttributes: ['members'] } });
      expect(resources(search).map((g) => g['id'])).toEqual(['engineering']);
    });

    it('PUT replaces the members; a stale If-Match is 412', async () => {
      const current = await scim('/Groups/engineering');
      const body = { schemas: [GROUP], displayName: 'engineering', members: [{ value: b }, { value: c }] };
      expectError(await scim('/Groups/engineering', { method: 'PUT', body, headers: { 'if-match': 'W/"1"' } }), 412);
      expectError(await scim('/Groups/engineering', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value: b }] }), headers: { 'if-match': 'W/"1"' } }), 412);
      expect((await sp.users.getUser(b))!.groups).toEqual([]);
      const res = await scim('/Groups/engineering', { method: 'PUT', body, headers: { 'if-match': current.headers.get('etag')! } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect((res.body['members'] as Array<{ value: string }>).map((m) => m.value).sort()).toEqual([b, c].sort());
      expect(res.headers.get('etag')).not.toBe(current.headers.get('etag'));
      expect((await sp.users.getUser(a))!.groups).toEqual([]);
      // PUT without members leaves them (not asserted, RFC 7644 §3.5.1).
      const kept = await scim('/Groups/engineering', { method: 'PUT', body: { schemas: [GROUP], displayName: 'engineering' } });
      expect((kept.body['members'] as unknown[]).length).toBe(2);
    });

    it('deletes the group: 204; its members lose it; then 404', async () => {
      expectError(await scim('/Groups/engineering', { method: 'DELETE', headers: { 'if-match': 'W/"1"' } }), 412);
      const res = await scim('/Groups/engineering', { method: 'DELETE' });
      expect(res.status).toBe(204);
      expectError(await scim('/Groups/engineering'), 404);
      expect((await sp.users.getUser(b))!.groups).toEqual([]);
      expect((await sp.users.getUser(c))!.groups).toEqual([]);
      expect((await sp.audit.query({ type: 'group.deleted', target: 'engineering', limit: 1 })).events[0]?.details).toMatchObject({ via: 'scim' });
    });

    it('paginates with startIndex and count over more items than a page', async () => {
      const names = ['page-g1', 'page-g2', 'page-g3', 'page-g4', 'page-g5'];
      for (const displayName of names) expect((await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName } })).status).toBe(201);
      const seen: string[] = [];
      for (let start = 1; start <= 5; start += 2) {
        const res = await scim(`/Groups?filter=${encodeURIComponent('displayName sw "page-"')}&startIndex=${start}&count=2`);
        expect(res.body).toMatchObject({ totalResults: 5, startIndex: start, itemsPerPage: start === 5 ? 1 : 2 });
        seen.push(...resources(res).map((g) => g['id'] as string));
      }
      expect(seen).toEqual(names);
      // Unfiltered pages cover every group once.
      const all = await scim('/Groups?count=0');
      expect(all.body).toMatchObject({ totalResults: expect.any(Number), itemsPerPage: 0, Resources: [] });
      const total = all.body['totalResults'] as number;
      const ids: string[] = [];
      for (let start = 1; start <= total; start += 3) ids.push(...resources(await scim(`/Groups?startIndex=${start}&count=3&attributes=id`)).map((g) => g['id'] as string));
      expect(new Set(ids).size).toBe(total);
      expect(ids.length).toBe(total);
    });
  });

  describe('pagination of users', () => {
    it('startIndex (1-based) and count, filtered and not, with totalResults', async () => {
      const made: string[] = [];
      for (let i = 1; i <= 7; i++) made.push((await createUser(`pager-${i}`, { displayName: `Pager ${i}` })).id);
      const seen: string[] = [];
      for (const start of [1, 4, 7]) {
        const res = await scim(`/Users?filter=${encodeURIComponent('userName sw "pager-"')}&startIndex=${start}&count=3`);
        expect(res.body).toMatchObject({ totalResults: 7, startIndex: start, itemsPerPage: start === 7 ? 1 : 3 });
        seen.push(...resources(res).map((u) => u['id'] as string));
      }
      expect(seen.sort()).toEqual([...made].sort());
      // Past the end: an empty page. Below 1: treated as 1. Negative count: 0.
      expect((await scim(`/Users?filter=${encodeURIComponent('userName sw "pager-"')}&startIndex=8`)).body).toMatchObject({ totalResults: 7, itemsPerPage: 0 });
      expect((await scim(`/Users?filter=${encodeURIComponent('userName sw "pager-"')}&startIndex=-3&count=1`)).body).toMatchObject({ startIndex: 1, itemsPerPage: 1 });
      expect((await scim('/Users?count=-1')).body).toMatchObject({ itemsPerPage: 0 });
      const total = (await scim('/Users?count=0')).body['totalResults'] as number;
      const ids: string[] = [];
      for (let start = 1; start <= total; start += 4) ids.push(...resources(await scim(`/Users?startIndex=${start}&count=4`)).map((u) => u['id'] as string));
      expect(ids.length).toBe(total);
      expect(new Set(ids).size).toBe(total);
      expect(ids).toEqual(expect.arrayContaining(made));
    });
  });

  describe('errors', () => {
    let victim: { id: string };
    let alice: string;

    beforeAll(async () => {
      victim = await createUser('victim', { emails: [{ value: 'victim@example.com', type: 'work', primary: true }] });
      alice = (await sp.users.getUserByUsername('alice'))!.id;
    });

    it('409 uniqueness for a taken userName (any case) or group name', async () => {
      expectError(await scim('/Users', { method: 'POST', body: { schemas: [USER], userName: 'VICTIM' } }), 409, 'uniqueness', /taken/);
      const other = await createUser('other-user');
      expectError(await scim(`/Users/${other.id}`, { method: 'PUT', body: { schemas: [USER], userName: 'Victim' } }), 409, 'uniqueness');
      expectError(await scim(`/Users/${other.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'userName', value: 'victim' }) }), 409, 'uniqueness');
      expect((await sp.users.getUser(other.id))!.username).toBe('other-user');
      expectError(await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'admins' } }), 409, 'uniqueness');
    });

    it('400 invalidSyntax: malformed JSON, no schemas, a PatchOp without operations or with a bad op', async () => {
      expectError(await scim('/Users', { method: 'POST', raw: '{"schemas": [' }), 400, 'invalidSyntax');
      expectError(await scim('/Users', { method: 'POST', raw: '[1]' }), 400, 'invalidSyntax');
      expectError(await scim('/Users', { method: 'POST', body: { userName: 'no-schemas' } }), 400, 'invalidSyntax', /schemas/);
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: { schemas: [PATCH] } }), 400, 'invalidSyntax', /Operations/);
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: { Operations: [{ op: 'add', path: 'displayName', value: 'x' }] } }), 400, 'invalidSyntax');
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'move', path: 'displayName' }) }), 400, 'invalidSyntax', /op/);
      expectError(await scim('/Users/.search', { method: 'POST', body: { filter: 'id pr' } }), 400, 'invalidSyntax');
    });

    it('413 beyond 64 KiB, 415 for a body that is not JSON', async () => {
      expectError(await scim('/Users', { method: 'POST', body: { schemas: [USER], userName: 'big', displayName: 'x'.repeat(70_000) } }), 413);
      expectError(await scim('/Users', { method: 'POST', raw: 'userName=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
      // application/json is as good as application/scim+json.
      expect((await scim('/Users', { method: 'POST', body: { schemas: [USER], userName: 'plain-json' }, headers: { 'content-type': 'application/json' } })).status).toBe(201);
    });

    it('400 invalidFilter for what the filter grammar or this server does not support', async () => {
      for (const filter of [
        'userName xx "a"',
        'userName eq',
        'userName eq "unterminated',
        'title eq "Engineer"',
        'externalId eq "00u1"',
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"',
        'password eq "guess"',
        'active gt true',
        'userName eq 1',
        'name eq "x"',
        '(userName eq "a"',
        'userName eq "a" and',
        'emails[type eq "work"',
        'meta.created gt "yesterday"',
      ]) {
        expectError(await scim(`/Users?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
      }
      expectError(await scim(`/Groups?filter=${encodeURIComponent('members.display co')}`), 400, 'invalidFilter');
      expectError(await scim(`/Users?filter=${encodeURIComponent('not (userName eq "a")'.repeat(2))}`), 400, 'invalidFilter');
    });

    it('400 invalidValue for values the schema refuses', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{}, /userName/],
        [{ userName: 'has space' }, /userName/],
        [{ userName: 'v1', emails: [{ value: 'not-an-email' }] }, /emails\[0\]\.value/],
        [{ userName: 'v2', emails: [{ value: 'a@example.com', primary: true }, { value: 'b@example.com', primary: true }] }, /primary/],
        [{ userName: 'v3', password: 'short' }, /password/],
        [{ userName: 'v4', active: 'false' }, /active/],
        [{ userName: 'v5', name: 'Jane' }, /name/],
      ];
      for (const [fields, detail] of cases) {
        expectError(await scim('/Users', { method: 'POST', body: { schemas: [USER], ...fields } }), 400, 'invalidValue', detail);
      }
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'active', value: 'False' }) }), 400, 'invalidValue');
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'displayName' }) }), 400, 'invalidValue');
      expectError(await scim('/Users?startIndex=abc'), 400, 'invalidValue');
      expectError(await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'has space' } }), 400, 'invalidValue', /displayName/);
      expectError(await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'ghosts', members: [{ value: 'no-such-user' }] } }), 400, 'invalidValue', /no-such-user/);
      // Nothing half-written: the group was not created.
      expectError(await scim('/Groups/ghosts'), 404);
      const nested = await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'nested', members: [{ value: 'admins', type: 'Group' }] } });
      expectError(nested, 400, 'invalidValue', /nest/);
      expect((await sp.users.getUser(victim.id))!.version).toBe(1);
    });

    it('400 invalidPath for a malformed PATCH path', async () => {
      for (const path of ['name..givenName', 'emails[type eq "work"', 'emails[type eq].value', 'displayName[value eq "x"]', 'userName.sub']) {
        expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path, value: 'x' }) }), 400, 'invalidPath');
      }
    });

    it('400 noTarget: remove without a path; replace through a filter that selects nothing', async () => {
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'remove' }) }), 400, 'noTarget');
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'emails[type eq "home"].value', value: 'h@example.com' }) }), 400, 'noTarget');
      const group = await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'targets' } });
      expect(group.status).toBe(201);
      expectError(await scim('/Groups/targets', { method: 'PATCH', body: patchOp({ op: 'replace', path: 'members[value eq "nobody"]', value: { value: victim.id } }) }), 400, 'noTarget');
      expect((await sp.users.getUser(victim.id))!.version).toBe(1);
      expect((await scim('/Groups/targets')).headers.get('etag')).toBe('W/"1"');
    });

    it('400 mutability: read-only attributes, renaming a group', async () => {
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'add', path: 'groups', value: [{ value: 'admins' }] }) }), 400, 'mutability', /Group/);
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'id', value: 'other' }) }), 400, 'mutability', /id/);
      expectError(await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'meta.created', value: '2000-01-01T00:00:00Z' }) }), 400, 'mutability');
      // The same value is no change (Okta sends the id back in replace values).
      const same = await scim(`/Users/${victim.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', value: { id: victim.id, displayName: 'Victim' } }) });
      expect(same.status, JSON.stringify(same.body)).toBe(200);
      await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'renamable' } });
      expectError(await scim('/Groups/renamable', { method: 'PATCH', body: patchOp({ op: 'replace', path: 'displayName', value: 'renamed' }) }), 400, 'mutability', /id/);
      expectError(await scim('/Groups/renamable', { method: 'PUT', body: { schemas: [GROUP], displayName: 'renamed' } }), 400, 'mutability');
      expectError(await scim('/Groups/renamable', { method: 'PUT', body: { schemas: [GROUP] } }), 400, 'invalidValue', /displayName/);
    });

    it('400 mutability for users and groups declared in the config file, except active and password', async () => {
      const managed = /managed by the config file/;
      expectError(await scim(`/Users/${alice}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'name.givenName', value: 'Eve' }) }), 400, 'mutability', managed);
      expectError(await scim(`/Users/${alice}`, { method: 'PUT', body: { schemas: [USER], userName: 'alice', emails: [{ value: 'eve@example.com' }] } }), 400, 'mutability', managed);
      expectError(await scim(`/Users/${alice}`, { method: 'DELETE' }), 400, 'mutability', managed);
      expectError(await scim('/Groups/admins', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value: victim.id }] }) }), 400, 'mutability', managed);
      expectError(await scim('/Groups/admins', { method: 'PUT', body: { schemas: [GROUP], displayName: 'admins', members: [] } }), 400, 'mutability', managed);
      expectError(await scim('/Groups/admins', { method: 'DELETE' }), 400, 'mutability', managed);
      // alice's groups are the file's, so no group can take or drop her.
      await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'alices' } });
      expectError(await scim('/Groups/alices', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value: alice }] }) }), 400, 'mutability', managed);
      const untouched = (await sp.users.getUser(alice))!;
      expect(untouched).toMatchObject({ email: 'alice@example.com', groups: ['admins', 'developers'], version: 1 });
      expect(untouched.givenName).toBeUndefined();
      expect((await sp.users.getUser(victim.id))!.groups).toEqual([]);

      // active and password may change: deactivating alice ends her sessions too.
      const session = await signInAs('alice', PASSWORD);
      const off = await scim(`/Users/${alice}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'active', value: false }) });
      expect(off.status, JSON.stringify(off.body)).toBe(200);
      await expect(oidc.fetchUserInfo(web, session.tokens!.access_token, alice)).rejects.toThrow();
      const current = (await scim(`/Users/${alice}`)).body;
      // A PUT of the user as it is, with a new password and active again, is allowed.
      const { meta: _meta, groups: _groups, ...asIs } = current;
      void _meta;
      void _groups;
      const put = await scim(`/Users/${alice}`, { method: 'PUT', body: { ...asIs, active: true, password: 'alice new password' } });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      expect((await signInAs('alice', 'alice new password')).tokens?.claims()?.sub).toBe(alice);
      expect((await sp.users.getUser(alice))!).toMatchObject({ disabled: false, source: 'config', name: 'Alice Example' });
    });
  });

  describe('concurrency', () => {
    it('of two writes holding one ETag exactly one wins; the other gets 412', async () => {
      const user = await createUser('racer');
      const etag = user.meta.version;
      const results = await Promise.all(
        ['One', 'Two', 'Three'].map((displayName) =>
          scim(`/Users/${user.id}`, { method: 'PATCH', body: patchOp({ op: 'replace', path: 'displayName', value: displayName }), headers: { 'if-match': etag } }),
        ),
      );
      expect(results.map((r) => r.status).sort()).toEqual([200, 412, 412]);
      const group = await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'race-etag' } });
      const groupResults = await Promise.all(
        [1, 2].map(() => scim('/Groups/race-etag', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value: user.id }] }), headers: { 'if-match': group.headers.get('etag')! } })),
      );
      expect(groupResults.map((r) => r.status).sort()).toEqual([200, 412]);
    });

    it('racing member additions without If-Match all land', async () => {
      const ids = await Promise.all(['race-1', 'race-2', 'race-3', 'race-4'].map(async (n) => (await createUser(n)).id));
      await scim('/Groups', { method: 'POST', body: { schemas: [GROUP], displayName: 'race-members' } });
      const results = await Promise.all(ids.map((value) => scim('/Groups/race-members', { method: 'PATCH', body: patchOp({ op: 'add', path: 'members', value: [{ value }] }) })));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      const members = (await scim('/Groups/race-members')).body['members'] as Array<{ value: string }>;
      expect(members.map((m) => m.value).sort()).toEqual([...ids].sort());
      expect((await scim('/Groups/race-members')).headers.get('etag')).toBe('W/"5"');
    });

    it('racing creates of one userName: one 201, the others 409 uniqueness', async () => {
      const results = await Promise.all([1, 2, 3].map(() => scim('/Users', { method: 'POST', body: { schemas: [USER], userName: 'same-name' } })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
      for (const r of results.filter((x) => x.status === 409)) expectError(r, 409, 'uniqueness');
      expect((await scim(`/Users?filter=${encodeURIComponent('userName eq "same-name"')}`)).body['totalResults']).toBe(1);
    });
  });

  describe('limits', () => {
    it('count above 200 is lowered to 200; a filter that would scan over 5000 users is 400 tooMany', async () => {
      const existing = (await sp.users.listUserIds()).length;
      const needed = 5001 - existing;
      for (let i = 0; i < needed; i += 250) {
        await Promise.all(
          Array.from({ length: Math.min(250, needed - i) }, (_, j) =>
            sp.users.createUser({ username: `bulk-${i + j}`, emailVerified: false, groups: [], disabled: false, source: 'admin' }),
          ),
        );
      }
      const page = await scim('/Users?count=500&attributes=userName');
      expect(page.body).toMatchObject({ totalResults: 5001, itemsPerPage: 200 });
      expectError(await scim(`/Users?filter=${encodeURIComponent('displayName co "x"')}`), 400, 'tooMany');
      // Indexed lookups still work, alone or narrowing a combination.
      expect((await scim(`/Users?filter=${encodeURIComponent('userName eq "bulk-7"')}`)).body['totalResults']).toBe(1);
      expect((await scim(`/Users?filter=${encodeURIComponent('userName eq "bulk-7" and displayName co "x"')}`)).body['totalResults']).toBe(0);
    });
  });
});
