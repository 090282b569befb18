/**
 * /admin/v1/identity-providers: upstream OpenID providers. Declarations are validated
 * twice before anything is written — by the config file's own schema (shape, with the
 * offending field) and by the connector registry (settings the chosen type cannot work
 * with) — so a record in the store always resolves to a connector. Every instance reads
 * the record on each use (src/federation/identity-providers.ts), so a change applies on
 * the next request everywhere, without a restart.
 *
 * Secrets (`clientSecret`, `privateKeyJwk`) are write-only: answers say whether one is
 * stored, never what it is, and a PUT without one keeps the stored one.
 */
import { z } from 'zod';
import { identityProviderSchema, type IdentityProviderDeclaration } from '../config/schema.ts';
import { resolveIdpSettings } from '../connectors/registry.ts';
import { UpstreamError } from '../connectors/types.ts';
import { AppError, conflict, notFound, preconditionFailed } from '../errors.ts';
import type { IdpRecord } from '../storage/idp-store.ts';
import { withLock } from '../storage/lock.ts';
import { etagOf, ifMatchVersion, listQuery, page, pageSchema, actorOf } from './common.ts';
import { route, type Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

const idpInput = identityProviderSchema.meta({ id: 'IdentityProviderInput' });

/**
 * A replacement. `id` may be left out (the path names it); a secret left out keeps the
 * stored one, and `null` removes it (e.g. when switching to private_key_jwt).
 */
const idpReplacement = identityProviderSchema
  .extend({
    id: identityProviderSchema.shape.id.optional().describe('must equal the id in the path when given'),
    clientSecret: identityProviderSchema.shape.clientSecret.unwrap().nullable().optional().describe('absent: keep the stored secret; null: remove it'),
    privateKeyJwk: identityProviderSchema.shape.privateKeyJwk.unwrap().nullable().optional().describe('absent: keep the stored key; null: remove it'),
  })
  .meta({ id: 'IdentityProviderReplacement' });

const groupMappingsInput = z
  .strictObject({ groupMappings: identityProviderSchema.shape.groupMappings.unwrap() })
  .meta({ id: 'GroupMappingsInput' });

const idpOutput = identityProviderSchema
  .omit({ clientSecret: true, privateKeyJwk: true })
  .extend({
    hasClientSecret: z.boolean(),
    hasPrivateKeyJwk: z.boolean(),
    version: z.number().int(),
    source: z.enum(['config', 'admin']).describe('config: declared in the config file, read-only here'),
    updatedAt: z.string(),
  })
  .meta({ id: 'IdentityProvider' });

const checkOutput = z
  .object({
    ok: z.boolean().describe('false when sign-in through this provider cannot work as configured'),
    problems: z.array(z.string()).describe('what prevents sign-in'),
    warnings: z.array(z.string()).describe('what works, but not fully (e.g. logout cannot be chained upstream)'),
    metadata: z
      .looseObject({
        issuer: z.string().optional(),
        authorization_endpoint: z.string().optional(),
        token_endpoint: z.string().optional(),
        jwks_uri: z.string().optional(),
        end_session_endpoint: z.string().optional(),
      })
      .optional()
      .describe('what the provider publishes (absent when it could not be read)'),
  })
  .meta({ id: 'IdentityProviderCheck' });

const idParams = z.object({ id: z.string().min(1).max(63) });

/** Discovery fields worth showing an operator (the document can be large). */
const METADATA_FIELDS = [
  'issuer',
  'authorization_endpoint',
  'token_endpoint',
  'jwks_uri',
  'end_session_endpoint',
  'userinfo_endpoint',
  'code_challenge_methods_supported',
  'id_token_signing_alg_values_supported',
  'token_endpoint_auth_methods_supported',
  'scopes_supported',
  'claims_supported',
  'backchannel_logout_supported',
  'backchannel_logout_session_supported',
  'frontchannel_logout_supported',
];

type Output = z.infer<typeof idpOutput>;

export function idpRoutes(deps: AdminApiDeps): Route<never, never, never>[] {
  const { idpStore, identityProviders, groups, store, keys, audit } = deps;
  // Serializes admin writes of one IdP: the store's put is compare-and-set on the
  // record, but "create only if absent" and "delete only this version" need the read
  // and the write to be one step.
  const declared = async () => new Set(await store.sMembers(keys.declaredIdps()));

  function output(record: IdpRecord, isDeclared: boolean): Output {
    const { clientSecret, privateKeyJwk, ...declaration } = record.declaration;
    return {
      ...declaration,
      hasClientSecret: clientSecret !== undefined,
      hasPrivateKeyJwk: privateKeyJwk !== undefined,
      version: record.version,
      source: isDeclared || record.source === 'config' ? 'config' : 'admin',
      updatedAt: record.updatedAt,
    };
  }

  async function load(id: string): Promise<{ record: IdpRecord; declared: boolean }> {
    const found = await idpStore.getIdp(id);
    if (!found) throw notFound('identity provider', 'id');
    return { record: found.record, declared: (await declared()).has(id) };
  }

  function assertWritable(current: { record: IdpRecord; declared: boolean }) {
    if (current.declared || current.record.source === 'config') {
      throw new AppError({ code: 'managed_by_config', status: 409, message: 'this identity provider is declared in the config file; change it there', field: 'id' });
    }
  }

  function assertVersion(ctx: Parameters<typeof ifMatchVersion>[0], record: IdpRecord) {
    const expected = ifMatchVersion(ctx);
    if (expected !== undefined && expected !== record.version) throw preconditionFailed();
  }

  /** Group mapping targets must be groups we have (a typo would silently grant nothing). */
  async function assertGroupsExist(mappings: Record<string, string[]>): Promise<void> {
    const known = new Set(await groups.listGroupNames());
    for (const [upstream, targets] of Object.entries(mappings)) {
      targets.forEach((name, i) => {
        if (!known.has(name)) {
          throw new AppError({ code: 'invalid_request', status: 400, message: `group "${name}" does not exist`, field: `groupMappings.${upstream}[${i}]` });
        }
      });
    }
  }

  /** What the schema cannot see: settings the connector type cannot work with. */
  async function validate(declaration: IdentityProviderDeclaration): Promise<void> {
    const resolved = resolveIdpSettings(declaration);
    if ('problems' in resolved) {
      const first = resolved.problems[0]!;
      const message = resolved.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      throw new AppError({ code: 'invalid_request', status: 400, message, field: first.path });
    }
    await assertGroupsExist(declaration.groupMappings);
  }

  /** Names of the top-level fields that differ (for the audit trail: names, never values). */
  const changedFields = (before: IdentityProviderDeclaration, after: IdentityProviderDeclaration) =>
    [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .filter((k) => JSON.stringify(before[k as keyof IdentityProviderDeclaration]) !== JSON.stringify(after[k as keyof IdentityProviderDeclaration]))
      .sort();


  return [
    route({
      method: 'get',
      path: '/identity-providers',
      scope: 'idps.read',
      tag: 'identity-providers',
      summary: 'List identity providers (never their secrets)',
      query: listQuery,
      success: { status: 200, schema: pageSchema(idpOutput), description: 'a page of identity providers, ordered by id' },
      async handler({ query }) {
        const ids = (await idpStore.listIdpIds()).sort();
        const selected = page(ids, query);
        const isDeclared = await declared();
        const records = await Promise.all(selected.ids.map((id) => idpStore.getIdp(id)));
        const items = records.filter((r) => !!r).map((r) => output(r.record, isDeclared.has(r.record.declaration.id)));
        const needle = query.filter?.toLowerCase();
        const filtered = needle ? items.filter((i) => i.id.includes(needle) || i.displayName.toLowerCase().includes(needle)) : items;
        return { items: filtered, ...(selected.next ? { next: selected.next } : {}) };
      },
    }),
    route({
      method: 'post',
      path: '/identity-providers',
      scope: 'idps.write',
      tag: 'identity-providers',
      summary: 'Add an identity provider (offered on the sign-in page from the next request)',
      body: idpInput,
      success: { status: 201, schema: idpOutput, description: 'the identity provider' },
      errors: [409, 413, 415],
      async handler({ body, principal, ctx }) {
        await validate(body);
        return withLock(store, keys.idpLock(body.id), async () => {
          if (await idpStore.getIdp(body.id)) throw conflict(`identity provider "${body.id}" exists`, 'id');
          if ((await declared()).has(body.id)) {
            throw new AppError({ code: 'managed_by_config', status: 409, message: 'this id is declared in the config file', field: 'id' });
          }
          const record = await idpStore.putIdp(body, 'admin');
          await audit.record({ type: 'idp.created', outcome: 'success', actor: actorOf(principal), target: { kind: 'identity_provider', id: body.id }, ip: ctx.ip, details: { type: body.type, issuer: body.issuer } });
          ctx.set('etag', etagOf(record.version));
          ctx.set('location', `/admin/v1/identity-providers/${encodeURIComponent(body.id)}`);
          return output(record, false);
        });
      },
    }),
    route({
      method: 'get',
      path: '/identity-providers/:id',
      scope: 'idps.read',
      tag: 'identity-providers',
      summary: 'Read an identity provider (never its secrets)',
      params: idParams,
      success: { status: 200, schema: idpOutput, description: 'the identity provider' },
      errors: [404],
      async handler({ params, ctx }) {
        const current = await load(params.id);
        ctx.set('etag', etagOf(current.record.version));
        return output(current.record, current.declared);
      },
    }),
    route({
      method: 'put',
      path: '/identity-providers/:id',
      scope: 'idps.write',
      tag: 'identity-providers',
      summary: 'Replace an identity provider (secrets left out are kept); If-Match for optimistic concurrency',
      params: idParams,
      body: idpReplacement,
      success: { status: 200, schema: idpOutput, description: 'the updated identity provider' },
      errors: [404, 409, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        if (body.id !== undefined && body.id !== params.id) {
          throw new AppError({ code: 'invalid_request', status: 400, message: 'id cannot be changed', field: 'id' });
        }
        return withLock(store, keys.idpLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          assertVersion(ctx, current.record);
          const before = current.record.declaration;
          const { clientSecret, privateKeyJwk, ...fields } = body;
          const clientSecretNext = clientSecret === null ? undefined : (clientSecret ?? before.clientSecret);
          const privateKeyJwkNext = privateKeyJwk === null ? undefined : (privateKeyJwk ?? before.privateKeyJwk);
          const declaration: IdentityProviderDeclaration = {
            ...fields,
            id: params.id,
            ...(clientSecretNext !== undefined ? { clientSecret: clientSecretNext } : {}),
            ...(privateKeyJwkNext !== undefined ? { privateKeyJwk: privateKeyJwkNext } : {}),
          };
          await validate(declaration);
          const record = await idpStore.putIdp(declaration, 'admin', current.record.version);
          await audit.record({
            type: 'idp.updated',
            outcome: 'success',
            actor: actorOf(principal),
            target: { kind: 'identity_provider', id: params.id },
            ip: ctx.ip,
            details: { changed: changedFields(before, declaration) },
          });
          ctx.set('etag', etagOf(record.version));
          return output(record, false);
        });
      },
    }),
    route({
      method: 'delete',
      path: '/identity-providers/:id',
      scope: 'idps.write',
      tag: 'identity-providers',
      summary: 'Remove an identity provider (no longer offered from the next request)',
      params: idParams,
      success: { status: 204, description: 'deleted' },
      errors: [404, 409, 412],
      async handler({ params, principal, ctx }) {
        await withLock(store, keys.idpLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          assertVersion(ctx, current.record);
          await idpStore.deleteIdp(params.id);
          await audit.record({ type: 'idp.deleted', outcome: 'success', actor: actorOf(principal), target: { kind: 'identity_provider', id: params.id }, ip: ctx.ip });
        });
      },
    }),
    route({
      method: 'put',
      path: '/identity-providers/:id/group-mappings',
      scope: 'idps.write',
      tag: 'identity-providers',
      summary: 'Replace only the group mappings (upstream group → our groups); If-Match for optimistic concurrency',
      params: idParams,
      body: groupMappingsInput,
      success: { status: 200, schema: idpOutput, description: 'the updated identity provider' },
      errors: [404, 409, 412, 413, 415],
      async handler({ params, body, principal, ctx }) {
        return withLock(store, keys.idpLock(params.id), async () => {
          const current = await load(params.id);
          assertWritable(current);
          assertVersion(ctx, current.record);
          await assertGroupsExist(body.groupMappings);
          const record = await idpStore.putIdp({ ...current.record.declaration, groupMappings: body.groupMappings }, 'admin', current.record.version);
          await audit.record({
            type: 'idp.group_mappings_updated',
            outcome: 'success',
            actor: actorOf(principal),
            target: { kind: 'identity_provider', id: params.id },
            ip: ctx.ip,
            details: { upstreamGroups: Object.keys(body.groupMappings).sort() },
          });
          ctx.set('etag', etagOf(record.version));
          return output(record, false);
        });
      },
    }),
    route({
      method: 'post',
      path: '/identity-providers/:id/check',
      scope: 'idps.read',
      tag: 'identity-providers',
      summary: 'Fetch the provider\'s discovery document and report what would keep sign-in or logout from working',
      params: idParams,
      success: { status: 200, schema: checkOutput, description: 'a report (ok:false is a finding, not a failure of this request)' },
      errors: [404],
      async handler({ params }) {
        await load(params.id);
        // Also a disabled provider: checking it before enabling it is the point.
        const connector = await identityProviders.getForLogout(params.id);
        if (!connector) {
          return { ok: false, problems: ['the stored configuration no longer resolves to a connector (was its type removed?)'], warnings: [] };
        }
        const settings = connector.settings;
        let raw: Record<string, unknown>;
        try {
          raw = (await connector.check()).metadata;
        } catch (err) {
          return { ok: false, problems: [describeFailure(err, settings.issuer, settings.timeoutMs)], warnings: [] };
        }
        const explicit = settings.endpoints !== undefined;
        const metadata = explicit ? endpointsAsMetadata(settings.issuer, raw) : pick(raw, METADATA_FIELDS);
        const problems: string[] = [];
        const warnings: string[] = [];
        if (explicit) warnings.push('explicit endpoints are configured: there is no discovery document, and the endpoints were not contacted');

        const algs = metadata['id_token_signing_alg_values_supported'];
        if (Array.isArray(algs) && !settings.idTokenAlgs.some((a) => algs.includes(a))) {
          problems.push(`the provider signs id_tokens with ${algs.join(', ')}, none of which is accepted here (idTokenAlgs: ${settings.idTokenAlgs.join(', ')})`);
        }
        // OIDC Discovery 1.0 §3: when omitted, the default is client_secret_basic.
        const authMethods = metadata['token_endpoint_auth_methods_supported'] ?? (explicit ? undefined : ['client_secret_basic']);
        if (Array.isArray(authMethods) && !authMethods.includes(settings.clientAuth)) {
          problems.push(`the token endpoint does not accept ${settings.clientAuth} (it offers ${authMethods.join(', ')})`);
        }
        // RFC 8414 §2: no code_challenge_methods_supported means no PKCE; the connector
        // always sends S256 and many providers accept it without advertising it.
        if (!explicit && metadata['code_challenge_methods_supported'] === undefined) {
          warnings.push('the provider does not advertise code_challenge_methods_supported; PKCE S256 is sent regardless and may be ignored');
        }
        const scopes = metadata['scopes_supported'];
        if (Array.isArray(scopes)) {
          const missing = settings.scopes.filter((s) => !scopes.includes(s));
          if (missing.length > 0) warnings.push(`the provider does not list the scope(s) ${missing.join(', ')}; it may refuse or ignore them`);
        }
        // RP-Initiated Logout 1.0 §2: without end_session_endpoint there is nowhere to
        // send the person, so signing out of Sallyport leaves the upstream session alive.
        if (settings.logout.method !== 'none' && !settings.logout.url && !metadata['end_session_endpoint']) {
          warnings.push('the provider publishes no end_session_endpoint: logout cannot be chained upstream (set logout.url if it has one)');
        }
        return { ok: problems.length === 0, problems, warnings, metadata };
      },
    }),
  ] as unknown as Route<never, never, never>[];
}

function pick(source: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  return Object.fromEntries(fields.filter((f) => source[f] !== undefined).map((f) => [f, source[f]]));
}

/** Explicit endpoints, under the discovery names, so both kinds of report read alike. */
function endpointsAsMetadata(issuer: string, endpoints: Record<string, unknown>): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: endpoints['authorization'],
    token_endpoint: endpoints['token'],
    jwks_uri: endpoints['jwks'],
    ...(endpoints['endSession'] ? { end_session_endpoint: endpoints['endSession'] } : {}),
  };
}

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused',
  ECONNRESET: 'the connection was reset',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another host',
};

/** A sentence for the operator: what went wrong, with the network cause when there is one. */
function describeFailure(err: unknown, issuer: string, timeoutMs: number): string {
  if (!(err instanceof UpstreamError)) return `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  if (err.kind !== 'unavailable') return err.message;
  // fetch wraps the socket error (undici: TypeError "fetch failed" → Error with a code,
  // sometimes an AggregateError of one per address).
  for (let cause: unknown = err.cause, depth = 0; cause && depth < 5; depth++) {
    const c = cause as { name?: string; code?: string; errors?: unknown[]; cause?: unknown };
    if (c.name === 'TimeoutError' || c.name === 'AbortError') return `${issuer} did not answer within ${timeoutMs} ms`;
    if (typeof c.code === 'string' && NETWORK_ERRORS[c.code]) return `${issuer} is unreachable: ${NETWORK_ERRORS[c.code]} (${c.code})`;
    if (typeof c.code === 'string' && c.code !== 'UND_ERR_SOCKET') return `${issuer} is unreachable (${c.code})`;
    cause = c.cause ?? c.errors?.[0];
  }
  return err.message;
}
