/**
 * Admin API: identity providers (CRUD, group mappings, the discovery check) and a
 * person's sessions and grants, on memory and Redis. An operator adds an IdP through the
 * API pointing at a real upstream OP (oidc-provider on loopback), a person signs in
 * through it, and the operator then sees, ends and revokes what that sign-in created.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { ADMIN_CLIENTS, adminToken, apiClient, type Api } from './support/admin.ts';
import { UPSTREAM_PASSWORD, federatedSignIn, type FederationEnv } from './support/federation-env.ts';
import { uniquePrefix } from './support/redis.ts';
import { pkceAuthorizationUrl, signIn, startTestRp, type TestRp } from './support/rp.ts';
import { BACKENDS, PASSWORD, SECRET, freePort, startSallyport, type RunningSallyport, type StartOptions } from './support/sallyport.ts';
import { startUpstreamOp, type UpstreamOp } from './support/upstream-op.ts';
import { UserAgent } from './support/user-agent.ts';

/** IdP ids that the upstream knows Sallyport's callback for. */
const CALLBACK_IDS = ['declared', 'corp', 'people', 'racy'];

/**
 * Discovery documents with one thing wrong each, from a real HTTP server (what a broken
 * or unusual provider would serve): `<origin>/<name>/.well-known/openid-configuration`.
 */
async function startDiscoveryServer(): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    const name = /^\/([\w-]+)\/\.well-known\/openid-configuration$/.exec(req.url ?? '')?.[1];
    const issuer = `${origin}/${name}`;
    const complete = {
      issuer,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      end_session_endpoint: `${issuer}/logout`,
      code_challenge_methods_supported: ['S256'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
      scopes_supported: ['openid', 'profile', 'email'],
    };
    const documents: Record<string, object> = {
      'missing-fields': { issuer, authorization_endpoint: `${issuer}/auth` },
      'no-s256': { ...complete, code_challenge_methods_supported: ['plain'] },
      'no-logout': { ...complete, end_session_endpoint: undefined },
      'es512-only': { ...complete, id_token_signing_alg_values_supported: ['ES512'] },
    };
    const document = name ? documents[name] : undefined;
    if (!document) return void res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>no</h1>');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, server };
}

describe.each(BACKENDS)('admin API: identity providers and sessions on %s', (backend) => {
  let sp: RunningSallyport;
  /** A second instance on the same store (Redis only): changes must show there too. */
  let other: RunningSallyport | undefined;
  let rp: TestRp;
  let upstream: UpstreamOp;
  let discovery: { origin: string; server: Server };
  let api: Api;
  /** idps.read sessions.read only. */
  let reader: string;
  /** events.read only: no idps or sessions scope at all. */
  let eventsOnly: string;

  const idp = (over: Record<string, unknown> = {}) => ({
    id: 'corp',
    type: 'okta',
    displayName: 'Corp SSO',
    issuer: upstream.issuer,
    clientId: 'sallyport',
    clientSecret: SECRET,
    timeoutMs: 1500,
    jwksCooldown: 0,
    groupMappings: { Everyone: ['staff'] },
    ...over,
  });

  beforeAll(async () => {
    rp = await startTestRp();
    discovery = await startDiscoveryServer();
    // Sallyport's port first: the upstream must know its callback URLs.
    const port = await freePort();
    const spOrigin = `http://127.0.0.1:${port}`;
    upstream = await startUpstreamOp({
      flavor: 'okta',
      clients: [
        {
          client_id: 'sallyport',
          client_secret: SECRET,
          redirect_uris: CALLBACK_IDS.map((id) => `${spOrigin}/federation/${id}/callback`),
          post_logout_redirect_uris: [`${spOrigin}/federation/logout-callback`],
        },
      ],
      users: [
        { username: 'olivia', password: UPSTREAM_PASSWORD, sub: 'up-olivia', email: 'olivia@up.example', email_verified: true, name: 'Olivia', groups: ['Everyone'] },
        { username: 'gina', password: UPSTREAM_PASSWORD, sub: 'up-gina', email: 'gina@up.example', email_verified: true, name: 'Gina', groups: ['Everyone', 'Ops'] },
      ],
    });
    const options: StartOptions = {
      backend,
      rpOrigin: rp.origin,
      prefix: uniquePrefix('admin-idps'),
      extraClients: ADMIN_CLIENTS,
      config: {
        groups: [{ name: 'staff' }, { name: 'operators' }],
        identityProviders: [{ id: 'declared', type: 'okta', displayName: 'Declared SSO', issuer: upstream.issuer, clientId: 'sallyport', clientSecret: SECRET }],
        // Encrypted at rest on one backend, as received on the other: neither form may
        // ever appear in an answer.
        ...(backend === 'redis' ? { federation: { recordEncryptionKeys: [Buffer.alloc(32, 7).toString('base64url')] } } : {}),
      },
    };
    sp = await startSallyport({ ...options, port });
    if (backend === 'redis') other = await startSallyport(options);
    api = apiClient(sp, await adminToken(sp));
    reader = await adminToken(sp, 'auditor-cli', 'idps.read sessions.read');
    eventsOnly = await adminToken(sp, 'auditor-cli', 'events.read');
  });
  afterAll(async () => {
    await other?.stop();
    await sp?.stop();
    await upstream?.close();
    await rp?.stop();
    await new Promise((resolve) => discovery?.server.close(resolve));
  });

  /** The sign-in page an RP's redirect lands on, at one instance. */
  async function signInPage(instance: RunningSallyport): Promise<string> {
    const url = await pkceAuthorizationUrl(await instance.rp('web'), `${rp.origin}/callback`);
    return (await new UserAgent().follow(url)).page.body;
  }

  /** federatedSignIn reads only sp, rp and web of its environment. */
  const env = async (): Promise<FederationEnv> => ({ sp, rp, web: await sp.rp('web') }) as unknown as FederationEnv;

  describe('authorization', () => {
    const ROUTES: Array<[method: string, path: string, scope: string]> = [
      ['GET', '/identity-providers', 'idps.read'],
      ['POST', '/identity-providers', 'idps.write'],
      ['GET', '/identity-providers/declared', 'idps.read'],
      ['PUT', '/identity-providers/declared', 'idps.write'],
      ['DELETE', '/identity-providers/declared', 'idps.write'],
      ['PUT', '/identity-providers/declared/group-mappings', 'idps.write'],
      ['POST', '/identity-providers/declared/check', 'idps.read'],
      ['GET', '/users/someone/sessions', 'sessions.read'],
      ['DELETE', '/users/someone/sessions/some-uid', 'sessions.write'],
      ['DELETE', '/users/someone/sessions', 'sessions.write'],
      ['POST', '/users/someone/tokens/revoke', 'sessions.write'],
    ];

    it.each(ROUTES)('%s %s: 401 without a token, 403 naming %s without the scope', async (method, path, scope) => {
      const none = await api(path, { method, token: null });
      expect(none.status).toBe(401);
      // A read scope does not imply the write scope; an unrelated scope gives neither.
      const lacking = await api(path, { method, token: scope.endsWith('.write') ? reader : eventsOnly, ...(method === 'POST' || method === 'PUT' ? { body: {} } : {}) });
      expect(lacking.status).toBe(403);
      expect(lacking.body).toMatchObject({ error: 'insufficient_scope', scope });
      expect(lacking.headers.get('www-authenticate')).toContain(`scope="${scope}"`);
    });

    it('read scopes are enough to read', async () => {
      expect((await api('/identity-providers', { token: reader })).status).toBe(200);
      expect((await api('/identity-providers/declared/check', { method: 'POST', token: reader })).status).toBe(200);
      const alice = (await sp.users.getUserByUsername('alice'))!;
      expect((await api(`/users/${alice.id}/sessions`, { token: reader })).status).toBe(200);
    });
  });

  describe('identity providers', () => {
    it('creates an IdP that the sign-in page offers at once, on every instance, and never shows its secret', async () => {
      expect(await signInPage(sp)).not.toContain('Sign in with Corp SSO');
      const created = await api('/identity-providers', { method: 'POST', body: idp() });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      expect(created.headers.get('location')).toBe('/admin/v1/identity-providers/corp');
      expect(created.body).toMatchObject({ id: 'corp', type: 'okta', displayName: 'Corp SSO', issuer: upstream.issuer, hasClientSecret: true, hasPrivateKeyJwk: false, version: 1, source: 'admin', enabled: true });
      expect(created.body['clientSecret']).toBeUndefined();

      const read = await api('/identity-providers/corp', { token: reader });
      expect(read.status).toBe(200);
      expect(read.headers.get('etag')).toBe('"1"');
      expect(read.body).toEqual(created.body);
      const list = await api('/identity-providers?limit=200');
      expect((list.body['items'] as Array<{ id: string }>).map((i) => i.id)).toEqual(expect.arrayContaining(['corp', 'declared']));
      const declared = await api('/identity-providers/declared');
      expect(declared.body).toMatchObject({ source: 'config', hasClientSecret: true });
      for (const text of [JSON.stringify(created.body), JSON.stringify(read.body), JSON.stringify(list.body), JSON.stringify(declared.body)]) expect(text).not.toContain(SECRET);

      expect(await signInPage(sp)).toContain('Sign in with Corp SSO');
      if (other) expect(await signInPage(other)).toContain('Sign in with Corp SSO');
      const events = await api('/events?target=corp');
      expect(events.body['items']).toEqual([expect.objectContaining({ type: 'idp.created', outcome: 'success', actor: { clientId: 'admin-cli' } })]);
      expect(JSON.stringify(events.body)).not.toContain(SECRET);
    });

    it('refuses duplicates, including ids declared in the config file; concurrent creates: one wins', async () => {
      const dup = await api('/identity-providers', { method: 'POST', body: idp({ id: 'declared' }) });
      expect(dup.status).toBe(409);
      expect(dup.body).toMatchObject({ field: 'id' });
      const results = await Promise.all([1, 2, 3].map((n) => api('/identity-providers', { method: 'POST', body: idp({ id: 'racy', displayName: `Racy ${n}` }) })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
      const winner = results.find((r) => r.status === 201)!.body['displayName'];
      expect((await api('/identity-providers/racy')).body).toMatchObject({ displayName: winner, version: 1 });
      expect((await api('/identity-providers/racy', { method: 'DELETE' })).status).toBe(204);
    });

    it('refuses invalid declarations with the offending field, writing nothing', async () => {
      const cases: Array<[body: unknown, field: string]> = [
        [idp({ id: 'bad', issuer: 'not a url' }), 'issuer'],
        [idp({ id: 'bad', issuer: 'ftp://idp.example' }), 'issuer'],
        [idp({ id: 'bad', endpoints: { authorization: 'https://x.example/a', token: 'nope', jwks: 'https://x.example/j' } }), 'endpoints.token'],
        [idp({ id: 'bad', colour: 'blue' }), 'colour'],
        [idp({ id: 'bad', claims: { email: 'mail', shoeSize: 'x' } }), 'claims'],
        [idp({ id: 'local' }), 'id'],
        [idp({ id: 'Bad Id' }), 'id'],
        [idp({ id: 'bad', displayName: undefined }), 'displayName'],
        [idp({ id: 'bad', timeoutMs: 10 }), 'timeoutMs'],
        [idp({ id: 'bad', groupMappings: { Everyone: ['staff', 'no such group!'] } }), 'groupMappings.Everyone[1]'],
        // Valid in shape, unusable for the connector (src/connectors/registry.ts).
        [idp({ id: 'bad', clientSecret: undefined }), 'clientSecret'],
        [idp({ id: 'bad', type: 'saml' }), 'type'],
        [idp({ id: 'bad', scopes: ['profile'] }), 'scopes'],
        [idp({ id: 'bad', clientAuth: 'private_key_jwt' }), 'privateKeyJwk'],
        // Well-formed group names that are not groups here.
        [idp({ id: 'bad', groupMappings: { Everyone: ['staff'], Ops: ['ghosts'] } }), 'groupMappings.Ops[0]'],
      ];
      for (const [body, field] of cases) {
        const res = await api('/identity-providers', { method: 'POST', body });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body, JSON.stringify(body)).toMatchObject({ error: 'invalid_request', field });
        expect(res.body['message']).toEqual(expect.any(String));
      }
      const malformed = await api('/identity-providers', { method: 'POST', raw: '{"id": "bad",', headers: { 'content-type': 'application/json' } });
      expect(malformed.status).toBe(400);
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
      const notJson = await api('/identity-providers', { method: 'POST', raw: 'id=bad', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(notJson.status).toBe(415);
      expect((await api('/identity-providers/bad')).status).toBe(404);
      expect((await api('/identity-providers/local')).status).toBe(404);
    });

    it('replaces an IdP with If-Match, keeping the stored secret unless told otherwise', async () => {
      await api('/identity-providers', { method: 'POST', body: idp({ id: 'edit', displayName: 'Edit' }) });
      const { clientSecret: _omitted, ...withoutSecret } = idp({ id: 'edit' });
      void _omitted;
      const put = (etag: string | undefined, body: Record<string, unknown>) => api('/identity-providers/edit', { method: 'PUT', headers: etag ? { 'if-match': etag } : {}, body });

      const renamed = await put('"1"', { ...withoutSecret, id: undefined, displayName: 'Edited' });
      expect(renamed.status).toBe(200);
      expect(renamed.headers.get('etag')).toBe('"2"');
      expect(renamed.body).toMatchObject({ displayName: 'Edited', hasClientSecret: true, version: 2 });
      expect((await sp.idpStore.getIdp('edit'))!.record.declaration.clientSecret).toBe(SECRET);
      // The live connector uses the new settings on the next request.
      expect((await sp.identityProviders.get('edit'))!.settings.displayName).toBe('Edited');

      const stale = await put('"1"', { ...withoutSecret, displayName: 'Stale' });
      expect(stale.status).toBe(412);
      expect(stale.body).toMatchObject({ error: 'precondition_failed' });
      expect((await put('yesterday', withoutSecret)).body).toMatchObject({ error: 'invalid_request', field: 'If-Match' });
      // Concurrent writers with the same version: exactly one wins.
      const results = await Promise.all(['A', 'B', 'C'].map((n) => put('"2"', { ...withoutSecret, displayName: n })));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status === 412)).toHaveLength(2);

      // Errors with the field; nothing changes.
      const errors: Array<[body: Record<string, unknown>, field: string]> = [
        [{ ...withoutSecret, id: 'other' }, 'id'],
        [{ ...withoutSecret, issuer: 'no-url' }, 'issuer'],
        [{ ...withoutSecret, unknown: true }, 'unknown'],
        // Removing the secret leaves client_secret_basic without one.
        [{ ...withoutSecret, clientSecret: null }, 'clientSecret'],
        [{ ...withoutSecret, groupMappings: { Everyone: ['nobody'] } }, 'groupMappings.Everyone[0]'],
      ];
      for (const [body, field] of errors) {
        const res = await put(undefined, body);
        expect(res.status, field).toBe(400);
        expect(res.body).toMatchObject({ error: 'invalid_request', field });
      }
      const malformed = await api('/identity-providers/edit', { method: 'PUT', raw: '{', headers: { 'content-type': 'application/json' } });
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
      expect((await api('/identity-providers/edit')).body).toMatchObject({ version: 3, hasClientSecret: true });

      // A new secret replaces the old one, and is not shown either.
      const displayName = (await api('/identity-providers/edit')).body['displayName'];
      const rotated = await put(undefined, { ...withoutSecret, displayName, clientSecret: 'a-new-upstream-secret' });
      expect(rotated.status).toBe(200);
      expect(JSON.stringify(rotated.body)).not.toContain('a-new-upstream-secret');
      expect((await sp.idpStore.getIdp('edit'))!.record.declaration.clientSecret).toBe('a-new-upstream-secret');
      const events = await api('/events?target=edit&type=idp.updated');
      expect(JSON.stringify(events.body)).not.toContain('a-new-upstream-secret');
      expect((events.body['items'] as Array<{ details: { changed: string[] } }>)[0]!.details.changed).toEqual(['clientSecret']);

      expect((await api('/identity-providers/nope', { method: 'PUT', body: { ...withoutSecret, id: undefined } })).status).toBe(404);
    });

    it('replaces group mappings alone, checking that the groups exist', async () => {
      await api('/identity-providers', { method: 'POST', body: idp({ id: 'mapped' }) });
      const put = (body: unknown, headers: Record<string, string> = {}) => api('/identity-providers/mapped/group-mappings', { method: 'PUT', body, headers });
      const ok = await put({ groupMappings: { Everyone: ['staff'], Ops: ['operators', 'staff'] } }, { 'if-match': '"1"' });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('etag')).toBe('"2"');
      expect(ok.body).toMatchObject({ groupMappings: { Everyone: ['staff'], Ops: ['operators', 'staff'] }, displayName: 'Corp SSO', hasClientSecret: true, version: 2 });
      expect((await sp.idpStore.getIdp('mapped'))!.record.declaration.clientSecret).toBe(SECRET);

      expect((await put({ groupMappings: { Ops: ['staff', 'ghosts'] } })).body).toMatchObject({ error: 'invalid_request', field: 'groupMappings.Ops[1]' });
      expect((await put({ groupMappings: { Ops: ['bad name!'] } })).body).toMatchObject({ error: 'invalid_request', field: 'groupMappings.Ops[0]' });
      expect((await put({ groupMappings: {}, displayName: 'x' })).body).toMatchObject({ error: 'invalid_request', field: 'displayName' });
      expect((await put({ groupMappings: { Ops: ['staff'] } }, { 'if-match': '"1"' })).status).toBe(412);
      expect((await api('/identity-providers/nope/group-mappings', { method: 'PUT', body: { groupMappings: {} } })).status).toBe(404);
      expect((await api('/identity-providers/mapped')).body).toMatchObject({ version: 2 });
      const events = await api('/events?target=mapped&type=idp.group_mappings_updated');
      expect(events.body['items']).toEqual([expect.objectContaining({ details: { upstreamGroups: ['Everyone', 'Ops'] } })]);
    });

    it('leaves IdPs declared in the config file to the file (409 managed_by_config)', async () => {
      const { clientSecret: _s, ...body } = idp({ id: 'declared', displayName: 'Hijacked' });
      void _s;
      for (const res of [
        await api('/identity-providers/declared', { method: 'PUT', body }),
        await api('/identity-providers/declared', { method: 'DELETE' }),
        await api('/identity-providers/declared/group-mappings', { method: 'PUT', body: { groupMappings: {} } }),
      ]) {
        expect(res.status).toBe(409);
        expect(res.body).toMatchObject({ error: 'managed_by_config', field: 'id' });
      }
      expect((await api('/identity-providers/declared')).body).toMatchObject({ displayName: 'Declared SSO', version: 1 });
    });

    it('deletes with If-Match; the sign-in page stops offering it at once, on every instance', async () => {
      await api('/identity-providers', { method: 'POST', body: idp({ id: 'doomed', displayName: 'Doomed SSO' }) });
      expect(await signInPage(sp)).toContain('Sign in with Doomed SSO');
      expect((await api('/identity-providers/doomed', { method: 'DELETE', headers: { 'if-match': '"7"' } })).status).toBe(412);
      expect((await api('/identity-providers/doomed', { method: 'DELETE', token: reader })).status).toBe(403);
      expect((await api('/identity-providers/doomed', { method: 'DELETE', headers: { 'if-match': '"1"' } })).status).toBe(204);
      expect((await api('/identity-providers/doomed')).status).toBe(404);
      expect((await api('/identity-providers/doomed', { method: 'DELETE' })).status).toBe(404);
      expect((await api('/identity-providers/doomed/check', { method: 'POST' })).status).toBe(404);
      expect(await signInPage(sp)).not.toContain('Doomed SSO');
      if (other) expect(await signInPage(other)).not.toContain('Doomed SSO');
      const events = await api('/events?target=doomed');
      expect((events.body['items'] as Array<{ type: string }>).map((e) => e.type)).toEqual(['idp.deleted', 'idp.created']);
    });

    it('describes itself in the OpenAPI document without secrets in the output', async () => {
      const doc = (await (await fetch(`${sp.issuer}/admin/v1/openapi.json`)).json()) as {
        paths: Record<string, Record<string, { security: Array<{ bearer: string[] }> }>>;
        components: { schemas: Record<string, { properties: Record<string, unknown> }> };
      };
      expect(doc.paths['/admin/v1/identity-providers/{id}/check']!['post']!.security).toEqual([{ bearer: ['idps.read'] }]);
      expect(doc.paths['/admin/v1/users/{id}/tokens/revoke']!['post']!.security).toEqual([{ bearer: ['sessions.write'] }]);
      expect(Object.keys(doc.components.schemas['IdentityProvider']!.properties)).not.toContain('clientSecret');
      expect(Object.keys(doc.components.schemas['IdentityProvider']!.properties)).toContain('hasClientSecret');
      expect(Object.keys(doc.components.schemas['Session']!.properties)).not.toContain('idToken');
    });
  });

  describe('the check action', () => {
    const check = async (body: Record<string, unknown>) => {
      const created = await api('/identity-providers', { method: 'POST', body: idp(body) });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const res = await api(`/identity-providers/${String(body['id'])}/check`, { method: 'POST', token: reader });
      expect(res.status).toBe(200);
      return res.body as { ok: boolean; problems: string[]; warnings: string[]; metadata?: Record<string, unknown> };
    };

    it('reads a real upstream\'s discovery document', async () => {
      const report = await api('/identity-providers/declared/check', { method: 'POST' });
      expect(report.status).toBe(200);
      expect(report.body).toMatchObject({
        ok: true,
        problems: [],
        metadata: {
          issuer: upstream.issuer,
          authorization_endpoint: expect.stringContaining(upstream.origin),
          token_endpoint: expect.stringContaining(upstream.origin),
          jwks_uri: expect.stringContaining(upstream.origin),
          end_session_endpoint: expect.stringContaining(upstream.origin),
        },
      });
      expect((report.body['metadata'] as { code_challenge_methods_supported: string[] }).code_challenge_methods_supported).toContain('S256');
      expect(report.body['warnings']).toEqual([]);
    });

    it('reports a dead port as unreachable, within the timeout', async () => {
      const dead = await freePort();
      const started = Date.now();
      const report = await check({ id: 'dead', type: 'oidc', issuer: `http://127.0.0.1:${dead}/oauth2`, timeoutMs: 1000 });
      expect(Date.now() - started).toBeLessThan(3000);
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual([expect.stringMatching(/unreachable: the connection was refused|did not answer within 1000 ms/)]);
      expect(report.metadata).toBeUndefined();
    });

    it('reports a document that is not JSON, an issuer mismatch, missing fields and no S256', async () => {
      // The test RP answers every path with text/plain.
      expect((await check({ id: 'not-json', type: 'oidc', issuer: rp.origin })).problems).toEqual([expect.stringContaining('is not JSON')]);
      expect((await check({ id: 'http-404', type: 'oidc', issuer: `${discovery.origin}/nothing-here` })).problems).toEqual([expect.stringContaining('HTTP 404')]);
      // The upstream's real document, reached through an issuer spelled differently.
      const mismatch = await check({ id: 'mismatch', issuer: `${upstream.issuer}/` });
      expect(mismatch.ok).toBe(false);
      expect(mismatch.problems).toEqual([expect.stringMatching(/issuer ".*" does not match the configured issuer/)]);
      const missing = await check({ id: 'missing', type: 'oidc', issuer: `${discovery.origin}/missing-fields` });
      expect(missing.problems).toEqual([expect.stringMatching(/missing .*token_endpoint.*jwks_uri/)]);
      expect((await check({ id: 'no-s256', type: 'oidc', issuer: `${discovery.origin}/no-s256` })).problems).toEqual([expect.stringContaining('PKCE S256')]);
      const algs = await check({ id: 'es512', type: 'oidc', issuer: `${discovery.origin}/es512-only` });
      expect(algs.ok).toBe(false);
      expect(algs.problems).toEqual([expect.stringContaining('ES512')]);
    });

    it('warns when logout cannot be chained (no end_session_endpoint), and reports explicit endpoints as configured', async () => {
      const noLogout = await check({ id: 'no-logout', type: 'oidc', issuer: `${discovery.origin}/no-logout` });
      expect(noLogout).toMatchObject({ ok: true, problems: [], metadata: { issuer: `${discovery.origin}/no-logout` } });
      expect(noLogout.warnings).toEqual([expect.stringContaining('no end_session_endpoint')]);
      expect(noLogout.metadata!['end_session_endpoint']).toBeUndefined();

      const manual = await check({ id: 'manual', type: 'oidc', endpoints: { authorization: `${upstream.issuer}/auth`, token: `${upstream.issuer}/token`, jwks: `${upstream.issuer}/jwks` } });
      expect(manual).toMatchObject({ ok: true, metadata: { issuer: upstream.issuer, authorization_endpoint: `${upstream.issuer}/auth`, token_endpoint: `${upstream.issuer}/token`, jwks_uri: `${upstream.issuer}/jwks` } });
      expect(manual.warnings).toEqual([expect.stringContaining('explicit endpoints'), expect.stringContaining('no end_session_endpoint')]);
    });
  });

  describe('sessions and grants of a person signed in through an IdP the operator added', () => {
    let accountId: string;
    let web: oidc.Configuration;

    beforeAll(async () => {
      const created = await api('/identity-providers', { method: 'POST', body: idp({ id: 'people', displayName: 'People SSO' }) });
      expect(created.status).toBe(201);
      web = await sp.rp('web');
    });

    it('signs in through it, with its group mappings, which apply from the next sign-in when changed', async () => {
      const first = await federatedSignIn(await env(), { idp: 'people', username: 'gina' });
      expect(first.askedUpstreamPassword).toBe(true);
      const sub = first.tokens!.claims()!.sub;
      expect((await oidc.fetchUserInfo(web, first.tokens!.access_token, sub))['groups']).toEqual(['staff']);
      expect((await api('/identity-providers/people/group-mappings', { method: 'PUT', body: { groupMappings: { Everyone: ['staff'], Ops: ['operators'] } } })).status).toBe(200);
      const second = await federatedSignIn(await env(), { idp: 'people', username: 'gina' });
      expect((await oidc.fetchUserInfo(web, second.tokens!.access_token, sub))['groups']).toEqual(['operators', 'staff']);
    });

    it('lists, ends one, revokes every grant, and ends all', async () => {
      // Two sessions in two browsers: one plain, one with an offline (refresh) token.
      const plain = await federatedSignIn(await env(), { idp: 'people', username: 'olivia' });
      const offline = await federatedSignIn(await env(), { idp: 'people', username: 'olivia', params: { scope: 'openid offline_access', prompt: 'consent' } });
      accountId = plain.tokens!.claims()!.sub;
      expect(offline.tokens!.claims()!.sub).toBe(accountId);
      expect(offline.tokens!.refresh_token).toBeTruthy();
      const recordOf = async (idToken: string) => (await sp.authRecords.findBySid(decodeJwt(idToken)['sid'] as string))!;
      const plainRecord = await recordOf(plain.tokens!.id_token!);
      const offlineRecord = await recordOf(offline.tokens!.id_token!);

      const listed = await api(`/users/${accountId}/sessions`, { token: reader });
      expect(listed.status).toBe(200);
      const items = listed.body['items'] as Array<Record<string, unknown>>;
      expect(items.map((s) => s['uid']).sort()).toEqual([plainRecord.sessionUid, offlineRecord.sessionUid].sort());
      const shown = items.find((s) => s['uid'] === plainRecord.sessionUid)!;
      expect(shown).toMatchObject({
        accountId,
        clients: ['web'],
        loginAt: expect.any(String),
        expiresAt: expect.any(String),
        authentication: {
          idp: 'people',
          issuer: upstream.issuer,
          sub: 'up-olivia',
          sid: plainRecord.sid,
          authTime: new Date(plainRecord.authTime * 1000).toISOString(),
          clientSids: { web: plain.tokens!.claims()!['sid'] },
        },
      });
      expect(plainRecord.sid).toBeTruthy();
      expect(Date.parse(shown['expiresAt'] as string)).toBeGreaterThan(Date.now());
      // Last use = the sliding expiry minus the idle timeout: just now.
      expect(Math.abs(Date.now() - Date.parse(shown['lastActiveAt'] as string))).toBeLessThan(30_000);
      // The upstream id_token, neither as received nor as stored (encrypted on Redis).
      const text = JSON.stringify(listed.body);
      expect(plainRecord.idTokenEncrypted).toBe(backend === 'redis');
      for (const record of [plainRecord, offlineRecord]) {
        expect(text).not.toContain(record.idToken);
        expect(text).not.toContain((await sp.authRecords.idToken(record)).split('.')[2]);
      }
      expect(text).not.toMatch(/idToken|id_token/);

      // Another user's session is not this user's to end.
      const alice = (await sp.users.getUserByUsername('alice'))!;
      expect((await api(`/users/${alice.id}/sessions/${plainRecord.sessionUid}`, { method: 'DELETE' })).status).toBe(404);
      expect((await api(`/users/${accountId}/sessions/no-such-session`, { method: 'DELETE' })).status).toBe(404);
      expect((await api(`/users/${accountId}/sessions/${plainRecord.sessionUid}`, { method: 'DELETE', token: reader })).status).toBe(403);
      expect((await oidc.fetchUserInfo(web, plain.tokens!.access_token, accountId))['sub']).toBe(accountId);

      // End one: its access token stops working, the other session's does not.
      expect((await api(`/users/${accountId}/sessions/${plainRecord.sessionUid}`, { method: 'DELETE' })).status).toBe(204);
      await expect(oidc.fetchUserInfo(web, plain.tokens!.access_token, accountId)).rejects.toThrow();
      expect((await oidc.fetchUserInfo(web, offline.tokens!.access_token, accountId))['sub']).toBe(accountId);
      expect(await sp.authRecords.get(plainRecord.sessionUid)).toBeUndefined();
      const after = await api(`/users/${accountId}/sessions`);
      expect((after.body['items'] as Array<{ uid: string }>).map((s) => s.uid)).toEqual([offlineRecord.sessionUid]);
      expect((await api(`/users/${accountId}/sessions/${plainRecord.sessionUid}`, { method: 'DELETE' })).status).toBe(404);

      // Revoke every grant: the refresh token dies although its session lives on.
      const revoked = await api(`/users/${accountId}/tokens/revoke`, { method: 'POST' });
      expect(revoked.status).toBe(200);
      expect(revoked.body).toEqual({ revoked: 1 });
      await expect(oidc.refreshTokenGrant(web, offline.tokens!.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(oidc.fetchUserInfo(web, offline.tokens!.access_token, accountId)).rejects.toThrow();
      expect((await api(`/users/${accountId}/tokens/revoke`, { method: 'POST' })).body).toEqual({ revoked: 0 });

      // End all.
      const all = await api(`/users/${accountId}/sessions`, { method: 'DELETE' });
      expect(all.status).toBe(200);
      expect(all.body).toEqual({ ended: 1 });
      expect((await api(`/users/${accountId}/sessions`)).body).toEqual({ items: [] });
      expect(await sp.provider.Session.findByUid(offlineRecord.sessionUid)).toBeUndefined();

      const types = async (target: string) => ((await api(`/events?target=${encodeURIComponent(target)}`)).body['items'] as Array<{ type: string; details?: object }>);
      expect((await types(plainRecord.sessionUid)).filter((e) => e.type === 'session.ended')).toEqual([
        expect.objectContaining({ type: 'session.ended', actor: { clientId: 'admin-cli' }, details: { accountId, live: true } }),
      ]);
      expect((await types(accountId)).filter((e) => e.type.startsWith('user.'))).toEqual([
        expect.objectContaining({ type: 'user.sessions_ended', details: { ended: 1 } }),
        expect.objectContaining({ type: 'user.grants_revoked', details: { grants: 0 } }),
        expect.objectContaining({ type: 'user.grants_revoked', details: { grants: 1 } }),
      ]);
    });

    it('a refresh token survives ending the sessions, and dies with the grants', async () => {
      const offline = await federatedSignIn(await env(), { idp: 'people', username: 'olivia', params: { scope: 'openid offline_access', prompt: 'consent' } });
      expect((await api(`/users/${accountId}/sessions`, { method: 'DELETE' })).body).toEqual({ ended: 1 });
      const refreshed = await oidc.refreshTokenGrant(web, offline.tokens!.refresh_token!);
      expect(refreshed.access_token).toBeTruthy();
      expect((await api(`/users/${accountId}/tokens/revoke`, { method: 'POST' })).body).toEqual({ revoked: 1 });
      await expect(oidc.refreshTokenGrant(web, refreshed.refresh_token ?? offline.tokens!.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('shows local sessions without an authentication record', async () => {
      const alice = (await sp.users.getUserByUsername('alice'))!;
      await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
      const listed = await api(`/users/${alice.id}/sessions`);
      const items = listed.body['items'] as Array<Record<string, unknown>>;
      expect(items.length).toBeGreaterThanOrEqual(1);
      expect(items[0]).toMatchObject({ accountId: alice.id, clients: ['web'], amr: ['pwd'] });
      expect(items[0]!['authentication']).toBeUndefined();
    });

    it('404 for a user that does not exist', async () => {
      for (const [method, path] of [
        ['GET', '/users/nobody/sessions'],
        ['DELETE', '/users/nobody/sessions'],
        ['DELETE', '/users/nobody/sessions/some-uid'],
        ['POST', '/users/nobody/tokens/revoke'],
      ] as const) {
        const res = await api(path, { method });
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body).toMatchObject({ error: 'not_found' });
      }
    });
  });
});
