/**
 * Admin API: bearer tokens with admin scopes (from roles), the clients resource, audit
 * events and the OpenAPI document, on memory and Redis. Tokens come from Sallyport's
 * token endpoint through openid-client, as an operator's script would get them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { BACKENDS, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { ADMIN_CLIENTS, ADMIN_SECRET, adminToken as getAdminToken, apiClient, type Api } from './support/admin.ts';

describe.each(BACKENDS)('admin API: clients on %s', (backend) => {
  let sp: RunningSallyport;
  let adminToken: string;
  let readerToken: string;
  let api: Api;

  beforeAll(async () => {
    sp = await startSallyport({ backend, extraClients: ADMIN_CLIENTS });
    adminToken = await getAdminToken(sp);
    readerToken = await getAdminToken(sp, 'auditor-cli', 'clients.read events.read clients.write');
    api = apiClient(sp, adminToken);
  });
  afterAll(async () => sp?.stop());

  describe('authorization', () => {
    it('401 without a token, with a malformed header, or with an unknown token', async () => {
      const none = await api('/clients', { token: null });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(none.body).toMatchObject({ error: 'unauthorized' });
      expect((await api('/clients', { token: null, headers: { authorization: 'Basic abc' } })).status).toBe(401);
      const bogus = await api('/clients', { token: 'not-a-token' });
      expect(bogus.status).toBe(401);
      expect(bogus.body).toMatchObject({ error: 'invalid_token' });
    });

    it('answers in the API\'s error format whatever the case of the path', async () => {
      const eventsOnly = await getAdminToken(sp, 'auditor-cli', 'events.read');
      const res = await apiClient(sp, eventsOnly, '/ADMIN/V1')('/Clients');
      expect(res.status).toBe(403);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({ error: 'insufficient_scope', scope: 'clients.read' });
    });

    it('never accepts cookies instead of a token', async () => {
      const res = await fetch(`${sp.issuer}/admin/v1/clients`, { headers: { cookie: 'sp_session=whatever' } });
      expect(res.status).toBe(401);
    });

    it('tokens carry only the admin scopes the client\'s roles grant', async () => {
      const auditor = await sp.rp('auditor-cli', { secret: ADMIN_SECRET });
      const token = await oidc.clientCredentialsGrant(auditor, { scope: 'clients.read clients.write sallyport.admin' });
      expect(token.scope?.split(' ').sort()).toEqual(['clients.read']);
      // A client without roles gets no admin scope at all.
      const service = await sp.rp('service');
      const none = await oidc.clientCredentialsGrant(service, { scope: 'sallyport.admin' });
      expect(none.scope ?? '').toBe('');
      expect((await api('/clients', { token: none.access_token })).status).toBe(403);
    });

    it('403 insufficient_scope names the scope that was needed', async () => {
      const res = await api('/clients', { method: 'POST', token: readerToken, body: { client_name: 'x', redirect_uris: ['https://x.example/cb'] } });
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: 'insufficient_scope', scope: 'clients.write' });
      expect(res.headers.get('www-authenticate')).toContain('scope="clients.write"');
      expect((await api('/clients', { token: readerToken })).status).toBe(200);
    });

    it('refuses tokens issued for another audience (a resource server\'s JWT, a userinfo token)', async () => {
      const service = await sp.rp('service');
      const jwt = await oidc.clientCredentialsGrant(service, { resource: 'https://api.test', scope: 'read' });
      const res = await api('/clients', { token: jwt.access_token });
      expect(res.status).toBe(401);
      const opaque = await oidc.clientCredentialsGrant(service, {});
      expect((await api('/clients', { token: opaque.access_token })).status).toBe(401);
    });

    it('a revoked token stops working at once', async () => {
      const admin = await sp.rp('admin-cli', { secret: ADMIN_SECRET });
      const token = await oidc.clientCredentialsGrant(admin, { scope: 'clients.read' });
      expect((await api('/clients', { token: token.access_token })).status).toBe(200);
      await oidc.tokenRevocation(admin, token.access_token);
      expect((await api('/clients', { token: token.access_token })).status).toBe(401);
    });
  });

  describe('clients', () => {
    it('creates a client with a generated secret shown once, and the secret works at the token endpoint', async () => {
      const created = await api('/clients', {
        method: 'POST',
        body: { client_id: 'reports', client_name: 'Reports', grant_types: ['client_credentials'] },
      });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      expect(created.headers.get('location')).toBe('/admin/v1/clients/reports');
      const secret = created.body['client_secret'] as string;
      expect(secret).toMatch(/^[\w-]{43}$/);
      const reports = await sp.rp('reports', { secret });
      expect((await oidc.clientCredentialsGrant(reports, {})).access_token).toBeTruthy();

      const read = await api('/clients/reports');
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ client_id: 'reports', client_name: 'Reports', version: 1, source: 'admin' });
      expect(read.body['client_secret']).toBeUndefined();
      const list = await api('/clients?limit=200');
      expect(JSON.stringify(list.body)).not.toContain(secret);
    });

    it('applies updates on the next request, with optimistic concurrency', async () => {
      await api('/clients', { method: 'POST', body: { client_id: 'editable', redirect_uris: ['https://app.example/cb'] } });
      const put = (etag: string | undefined, name: string) =>
        api('/clients/editable', { method: 'PUT', headers: etag ? { 'if-match': etag } : {}, body: { client_name: name, redirect_uris: ['https://app.example/cb', 'https://app.example/cb2'] } });
      const first = await put('"1"', 'First');
      expect(first.status).toBe(200);
      expect(first.headers.get('etag')).toBe('"2"');
      const stale = await put('"1"', 'Stale');
      expect(stale.status).toBe(412);
      expect(stale.body).toMatchObject({ error: 'precondition_failed' });
      // Concurrent writers with the same version: exactly one wins.
      const results = await Promise.all([put('"2"', 'A'), put('"2"', 'B'), put('"2"', 'C')]);
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status === 412 || r.status === 409)).toHaveLength(2);
      // The provider sees the change immediately.
      const client = await sp.provider.Client.find('editable');
      expect(client?.redirectUris).toEqual(['https://app.example/cb', 'https://app.example/cb2']);
    });

    it('rotates a secret: the new one works, the old one does not', async () => {
      const created = await api('/clients', { method: 'POST', body: { client_id: 'rotating', grant_types: ['client_credentials'] } });
      const old = created.body['client_secret'] as string;
      const rotated = await api('/clients/rotating/secret', { method: 'POST' });
      expect(rotated.status).toBe(200);
      const fresh = rotated.body['client_secret'] as string;
      expect(fresh).not.toBe(old);
      await expect(oidc.clientCredentialsGrant(await sp.rp('rotating', { secret: old }), {})).rejects.toMatchObject({ error: 'invalid_client' });
      expect((await oidc.clientCredentialsGrant(await sp.rp('rotating', { secret: fresh }), {})).access_token).toBeTruthy();
    });

    it('deletes a client: it can no longer get tokens', async () => {
      const created = await api('/clients', { method: 'POST', body: { client_id: 'doomed', grant_types: ['client_credentials'] } });
      const doomed = await sp.rp('doomed', { secret: created.body['client_secret'] as string });
      expect((await api('/clients/doomed', { method: 'DELETE', headers: { 'if-match': '"1"' } })).status).toBe(204);
      expect((await api('/clients/doomed')).status).toBe(404);
      await expect(oidc.clientCredentialsGrant(doomed, {})).rejects.toMatchObject({ error: 'invalid_client' });
    });

    it('lists with keyset pagination and a filter', async () => {
      for (const n of [1, 2, 3]) await api('/clients', { method: 'POST', body: { client_id: `page-${n}`, client_name: `Paged ${n}`, grant_types: ['client_credentials'] } });
      const first = await api('/clients?limit=2&filter=page-');
      const all: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await api(`/clients?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        all.push(...(res.body['items'] as Array<{ client_id: string }>).map((c) => c.client_id));
        cursor = res.body['next'] as string | undefined;
      } while (cursor);
      expect(all).toEqual([...all].sort());
      expect(all).toEqual(expect.arrayContaining(['page-1', 'page-2', 'page-3', 'web', 'spa']));
      expect(new Set(all).size).toBe(all.length);
      expect(first.status).toBe(200);
    });

    it('rejects bad input with the offending field, and writes nothing', async () => {
      const cases: Array<[unknown, string | undefined, string]> = [
        [{ client_id: 'bad1', redirect_uris: ['not a url'] }, 'redirect_uris', 'invalid redirect URI'],
        [{ client_id: 'bad2', surprise: true }, 'surprise', 'unknown field'],
        [{ client_id: 'bad3', grant_types: ['password'] }, 'grant_types[0]', 'unsupported grant type'],
        [{ client_id: 'bad4', token_endpoint_auth_method: 'none', grant_types: ['client_credentials'] }, 'grant_types', 'public client_credentials'],
        [{ client_id: 'bad5', roles: ['emperor'] }, 'roles', 'unknown role'],
      ];
      for (const [body, field, why] of cases) {
        const res = await api('/clients', { method: 'POST', body });
        expect(res.status, why).toBe(400);
        expect(res.body['error'], why).toMatch(/invalid_request|invalid_client_metadata/);
        if (field) expect(res.body['field'], why).toBe(field);
        expect((await api(`/clients/${(body as { client_id: string }).client_id}`)).status, why).toBe(404);
      }
      const malformed = await api('/clients', { method: 'POST', raw: '{"client_id": ', headers: { 'content-type': 'application/json' } });
      expect(malformed.status).toBe(400);
      expect(malformed.body).toMatchObject({ error: 'invalid_request', field: 'body' });
      const wrongType = await api('/clients', { method: 'POST', raw: 'client_id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(wrongType.status).toBe(415);
      const huge = await api('/clients', { method: 'POST', raw: JSON.stringify({ client_name: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
      expect(huge.status).toBe(413);
      const badQuery = await api('/clients?limit=0');
      expect(badQuery.status).toBe(400);
      expect(badQuery.body['field']).toBe('limit');
    });

    it('409 on a duplicate client_id, and on changing a client declared in the config file', async () => {
      await api('/clients', { method: 'POST', body: { client_id: 'dupe', grant_types: ['client_credentials'] } });
      const dupe = await api('/clients', { method: 'POST', body: { client_id: 'dupe', grant_types: ['client_credentials'] } });
      expect(dupe.status).toBe(409);
      expect(dupe.body).toMatchObject({ error: 'conflict', field: 'client_id' });
      const declared = await api('/clients/web', { method: 'PUT', body: { redirect_uris: ['https://elsewhere.example/cb'] } });
      expect(declared.status).toBe(409);
      expect(declared.body).toMatchObject({ error: 'managed_by_config' });
      expect((await api('/clients/web')).body['source']).toBe('config');
    });
  });

  it('records admin changes in the audit trail, without secrets', async () => {
    const created = await api('/clients', { method: 'POST', body: { client_id: 'audited', grant_types: ['client_credentials'] } });
    await api('/clients/audited/secret', { method: 'POST' });
    const events = await api('/events?type=client&target=audited', { token: readerToken });
    expect(events.status).toBe(200);
    const items = events.body['items'] as Array<{ type: string; actor: { clientId: string }; target: { id: string } }>;
    expect(items.map((e) => e.type)).toEqual(['client.secret_rotated', 'client.created']);
    expect(items[0]!.actor.clientId).toBe('admin-cli');
    expect(JSON.stringify(events.body)).not.toContain(created.body['client_secret'] as string);
    const limited = await api('/events?limit=1&type=client', { token: readerToken });
    expect((limited.body['items'] as unknown[]).length).toBe(1);
    expect(limited.body['next']).toBeTruthy();
    const nextPage = await api(`/events?limit=1&type=client&cursor=${limited.body['next'] as string}`, { token: readerToken });
    expect((nextPage.body['items'] as Array<{ id: string }>)[0]!.id).not.toBe((limited.body['items'] as Array<{ id: string }>)[0]!.id);
  });

  it('serves an OpenAPI 3.1 document generated from the route schemas', async () => {
    const res = await fetch(`${sp.issuer}/admin/v1/openapi.json`);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { security: unknown; requestBody?: { content: Record<string, { schema: { $ref: string } }> } }>>;
      components: { schemas: Record<string, { properties: Record<string, unknown>; additionalProperties?: boolean }> };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/admin/v1/clients', '/admin/v1/clients/{id}', '/admin/v1/clients/{id}/secret', '/admin/v1/events']));
    const create = doc.paths['/admin/v1/clients']!['post']!;
    expect(create.security).toEqual([{ bearer: ['clients.write'] }]);
    const ref = create.requestBody!.content['application/json']!.schema.$ref;
    expect(ref).toBe('#/components/schemas/ClientInput');
    const schema = doc.components.schemas['ClientInput']!;
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['client_id', 'redirect_uris', 'first_party', 'roles']));
    expect(schema.additionalProperties).toBe(false);
  });

  it('answers unknown paths and wrong methods below /admin/v1 in JSON, with Allow on a 405', async () => {
    const unknown = await api('/no-such-resource');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^application\/json/);
    expect(unknown.body).toEqual({ error: 'not_found', message: 'no such resource' });

    const wrong = await api('/groups', { method: 'PATCH', body: { name: 'x' } });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
    expect(wrong.body).toMatchObject({ error: 'method_not_allowed' });

    const options = await fetch(`${sp.issuer}/admin/v1/clients/web`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')?.split(', ').sort()).toEqual(['DELETE', 'GET', 'HEAD', 'PUT']);
  });
});
