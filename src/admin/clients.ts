/**
 * /admin/v1/clients: OAuth clients. Metadata is validated by oidc-provider's own client
 * schema before anything is written; changes go through the Client model's store, which
 * every instance reads on the next request. Secrets are generated here, shown once at
 * creation or rotation, and never returned again.
 */
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import { AppError, conflict, notFound, preconditionFailed } from '../errors.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { withLock } from '../storage/lock.ts';
import type { AuditLog } from './audit.ts';
import { etagOf, ifMatchVersion, listQuery, page, pageSchema, actorOf } from './common.ts';
import { route, type Route } from './http.ts';

const uri = z.url({ protocol: /^https?$/ });
const redirectUri = z.string().min(1).max(2000);

/** Writable client metadata. Unknown fields are refused (400 with the field). */
const clientFields = z.strictObject({
    client_id: z.string().regex(/^[\x21-\x7E]{1,200}$/).optional().describe('generated when absent'),
    client_name: z.string().min(1).max(200).optional(),
    redirect_uris: z.array(redirectUri).max(50).default([]),
    post_logout_redirect_uris: z.array(redirectUri).max(50).optional(),
    grant_types: z.array(z.enum(['authorization_code', 'refresh_token', 'client_credentials'])).min(1).default(['authorization_code']),
    response_types: z.array(z.literal('code')).optional(),
    token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']).default('client_secret_basic'),
    jwks_uri: uri.optional(),
    scope: z.string().max(1000).optional(),
    backchannel_logout_uri: uri.optional(),
    backchannel_logout_session_required: z.boolean().optional(),
    client_uri: uri.optional(),
    logo_uri: uri.optional(),
    policy_uri: uri.optional(),
    tos_uri: uri.optional(),
    id_token_signed_response_alg: z.enum(['RS256', 'ES256']).optional(),
    first_party: z.boolean().optional(),
    require_pkce: z.boolean().optional(),
    allowed_idps: z.array(z.string().max(63)).max(50).optional(),
    roles: z.array(z.string().max(63)).max(50).optional(),
  });

const clientInput = clientFields
  // RFC 6749 §4.4: the client credentials grant is for confidential clients only.
  .refine((c) => !(c.token_endpoint_auth_method === 'none' && c.grant_types.includes('client_credentials')), {
    message: 'a public client (token_endpoint_auth_method none) cannot use client_credentials',
    path: ['grant_types'],
  })
  .meta({ id: 'ClientInput' });

type ClientInput = z.infer<typeof clientInput>;

const clientOutput = clientFields
  .extend({
    client_id: z.string(),
    version: z.number().int(),
    source: z.enum(['config', 'admin']),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Client' });

const clientWithSecret = clientOutput.extend({ client_secret: z.string().describe('shown only in this response') }).meta({ id: 'ClientWithSecret' });

const idParams = z.object({ id: z.string().min(1).max(200) });

/** What we keep next to the provider's metadata in the same record. */
interface Bookkeeping {
  sallyport_version: number;
  sallyport_source: 'config' | 'admin';
  sallyport_created_at: string;
  sallyport_updated_at: string;
}

type StoredClient = ClientInput & Bookkeeping & { client_id: string; client_secret?: string };

interface ClientAdapter {
  find(id: string): Promise<Record<string, unknown> | undefined>;
  upsert(id: string, payload: object): Promise<void>;
  destroy(id: string): Promise<void>;
}

export interface ClientRoutesDeps {
  provider: Provider;
  store: KeyValueStore;
  keys: Keys;
  audit: AuditLog;
}

const newSecret = () => randomBytes(32).toString('base64url');

export function clientRoutes(deps: ClientRoutesDeps): Route<never, never, never>[] {
  const { provider, store, keys, audit } = deps;
  const adapter = (provider.Client as unknown as { adapter: ClientAdapter }).adapter;
  const declared = async () => new Set(await store.sMembers(keys.declaredClients()));

  function output(c: StoredClient): z.infer<typeof clientOutput> {
    const { client_secret: _secret, sallyport_version, sallyport_source, sallyport_created_at, sallyport_updated_at, ...metadata } = c;
    void _secret;
    return { ...metadata, version: sallyport_version, source: sallyport_source, created_at: sallyport_created_at, updated_at: sallyport_updated_at };
  }

  async function load(id: string): Promise<StoredClient> {
    const raw = (await adapter.find(id)) as Partial<StoredClient> | undefined;
    if (!raw) throw notFound('client', 'id');
    // Clients written by the config file before bookkeeping existed, or by it now.
    const isDeclared = (await declared()).has(id);
    return {
      sallyport_version: 1,
      sallyport_created_at: '',
      sallyport_updated_at: '',
      ...raw,
      sallyport_source: isDeclared ? 'config' : (raw.sallyport_source ?? 'admin'),
    } as StoredClient;
  }

  /** Validate with the provider's schema; its errors name the field. */
  async function validate(metadata: Record<string, unknown>): Promise<void> {
    try {
      await provider.Client.validate(metadata as never);
    } catch (err) {
      const e = err as { error?: string; error_description?: string; message: string };
      const description = e.error_description ?? e.message;
      const field = /^(\w+)/.exec(description)?.[1];
      throw new AppError({ code: 'invalid_client_metadata', status: 400, message: description, ...(field ? { field } : {}) });
    }
  }

  function assertWritable(client: StoredClient) {
    if (client.sallyport_source === 'config') {
      throw new AppError({ code: 'managed_by_config', status: 409, message: 'this client is declared in the config file; change it there', field: 'client_id' });
    }
  }

  const metadataOf = (input: ClientInput, id: string, secret: string | undefined) => ({
    ...input,
    client_id: id,
    ...(input.token_endpoint_auth_method !== 'none' && input.token_endpoint_auth_method !== 'private_key_jwt' && secret ? { client_secret: secret } : {}),
    ...(input.grant_types.includes('client_credentials') && !input.grant_types.includes('authorization_code') ? { response_types: [] } : {}),
  });


  return [
    route({
      method: 'get',
      path: '/clients',
      scope: 'clients.read',
      tag: 'clients',
      summary: 'List clients',
      query: listQuery,
      success: { status: 200, schema: pageSchema(clientOutput), description: 'a page of clients, ordered by client_id' },
      async handler({ query }) {
        const ids = (await store.sMembers(keys.clientIndex())).sort();
        const selected = page(ids, query);
        const items = (await Promise.all(selected.ids.map((id) => load(id).catch(() => undefined)))).filter((c): c is StoredClient => !!c);
        const filtered = query.filter ? items.filter((c) => c.client_id.includes(query.filter!) || (c.client_name ?? '').toLowerCase().includes(query.filter!.toLowerCase())) : items;
        return { items: filtered.map(output), ...(selected.next ? { next: selected.next } : {}) };
      },
    }),
    route({
      method: 'post',
      path: '/clients',
      scope: 'clients.write',
      tag: 'clients',
      summary: 'Create a client (a generated secret is returned once)',
      body: clientInput,
      success: { status: 201, schema: clientWithSecret, description: 'the client, with its secret' },
      errors: [409, 413, 415],
      async handler({ body, principal, ctx }) {
        const id = body.client_id ?? `c-${randomBytes(12).toString('base64url')}`;
        const confidential = body.token_endpoint_auth_method === 'client_secret_basic' || body.token_endpoint_auth_method === 'client_secret_post';
        const secret = confidential ? newSecret() : undefined;
        const metadata = metadataOf(body, id, secret);
        await validate(metadata);
        return withLock(store, keys.clientLock(id), async () => {
          if (await adapter.find(id)) throw conflict(`client "${id}" exists`, 'client_id');
          const now = new Date().toISOString();
          const stored = { ...metadata, sallyport_version: 1, sallyport_source: 'admin' as const, sallyport_created_at: now, sallyport_updated_at: now };
          await adapter.upsert(id, stored);
          await audit.record({ type: 'client.created', outcome: 'success', actor: actorOf(principal), target: { kind: 'client', id }, ip: ctx.ip });
          ctx.set('etag', etagOf(1));
          ctx.set('location', `/admin/v1/clients/${encodeURIComponent(id)}`);
          return { ...output(stored as StoredClient), ...(secret ? { client_secret: secret } : {}) };
        });
      },
    }),
    route({
      method: 'get',
      path: '/clients/:id',
      scope: 'clients.read',
      tag: 'clients',
      summary: 'Read a client (never its secret)',
      params: idParams,
      success: { status: 200, schema: clientOutput, description: 'the client' },
      errors: [404],
      async handler({ params, ctx }) {
        const client = await load(params.id);
        ctx.set('etag', etagOf(client.sallyport_version));
        return output(client);
      },
    }),
    route({
      method: 'put',
      path: '/clients/:id',
      scope: 'clients.write',
      tag: 'clients',
      summary: 'Replace a client\'s metadata (its secret is kept); If-Match for optimistic concurrency',
      params: idParams,
      body: clientInput,
      success: { status: 200, schema: clientOutput, description: 'the updated client' },
      errors: [404, 409, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        if (body.client_id !== undefined && body.client_id !== params.id) {
          throw new AppError({ code: 'invalid_request', status: 400, message: 'client_id cannot be changed', field: 'client_id' });
        }
        return withLock(store, keys.clientLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          const expected = ifMatchVersion(ctx);
          if (expected !== undefined && expected !== current.sallyport_version) throw preconditionFailed();
          const confidential = body.token_endpoint_auth_method === 'client_secret_basic' || body.token_endpoint_auth_method === 'client_secret_post';
          const metadata = metadataOf(body, params.id, confidential ? (current.client_secret ?? newSecret()) : undefined);
          await validate(metadata);
          const next = {
            ...metadata,
            sallyport_version: current.sallyport_version + 1,
            sallyport_source: 'admin' as const,
            sallyport_created_at: current.sallyport_created_at,
            sallyport_updated_at: new Date().toISOString(),
          };
          await adapter.upsert(params.id, next);
          await audit.record({ type: 'client.updated', outcome: 'success', actor: actorOf(principal), target: { kind: 'client', id: params.id }, ip: ctx.ip });
          ctx.set('etag', etagOf(next.sallyport_version));
          return output(next as StoredClient);
        });
      },
    }),
    route({
      method: 'delete',
      path: '/clients/:id',
      scope: 'clients.write',
      tag: 'clients',
      summary: 'Delete a client',
      params: idParams,
      success: { status: 204, description: 'deleted' },
      errors: [404, 409, 412],
      async handler({ params, principal, ctx }) {
        await withLock(store, keys.clientLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          const expected = ifMatchVersion(ctx);
          if (expected !== undefined && expected !== current.sallyport_version) throw preconditionFailed();
          await adapter.destroy(params.id);
          await audit.record({ type: 'client.deleted', outcome: 'success', actor: actorOf(principal), target: { kind: 'client', id: params.id }, ip: ctx.ip });
        });
      },
    }),
    route({
      method: 'post',
      path: '/clients/:id/secret',
      scope: 'clients.write',
      tag: 'clients',
      summary: 'Rotate a client\'s secret (the new one is returned once; the old one stops working)',
      params: idParams,
      success: { status: 200, schema: z.object({ client_id: z.string(), client_secret: z.string(), version: z.number() }), description: 'the new secret' },
      errors: [404, 409, 412],
      async handler({ params, principal, ctx }) {
        return withLock(store, keys.clientLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          if (!current.client_secret) {
            throw new AppError({ code: 'invalid_request', status: 400, message: 'this client authenticates without a secret', field: 'token_endpoint_auth_method' });
          }
          const expected = ifMatchVersion(ctx);
          if (expected !== undefined && expected !== current.sallyport_version) throw preconditionFailed();
          const secret = newSecret();
          const next = { ...current, client_secret: secret, sallyport_version: current.sallyport_version + 1, sallyport_updated_at: new Date().toISOString() };
          await adapter.upsert(params.id, next);
          await audit.record({ type: 'client.secret_rotated', outcome: 'success', actor: actorOf(principal), target: { kind: 'client', id: params.id }, ip: ctx.ip });
          ctx.set('etag', etagOf(next.sallyport_version));
          return { client_id: params.id, client_secret: secret, version: next.sallyport_version };
        });
      },
    }),
  ] as unknown as Route<never, never, never>[];
}
