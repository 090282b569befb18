/**
 * The admin REST API under /admin/v1, secured by OAuth scopes on bearer tokens. Each
 * resource is one file declaring its routes; this module mounts them, serves the
 * OpenAPI document generated from the same declarations, and answers errors as JSON.
 */
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from '../config/schema.ts';
import type { AuthRecordStore } from '../federation/auth-records.ts';
import type { IdentityProviders } from '../federation/identity-providers.ts';
import type { SessionTerminator } from '../logout/end-sessions.ts';
import type { KeyValueStore } from '../storage/contract.ts';
import type { GroupStore } from '../storage/group-store.ts';
import type { IdpStore } from '../storage/idp-store.ts';
import type { Keys } from '../storage/keys.ts';
import type { UserStore } from '../storage/user-store.ts';
import { groupRoutes } from './groups.ts';
import { idpRoutes } from './idps.ts';
import { createScimApi } from './scim.ts';
import { sessionRoutes } from './sessions.ts';
import { userRoutes } from './users.ts';
import type { AuditLog } from './audit.ts';
import { createAdminAuthenticator } from './auth.ts';
import { clientRoutes } from './clients.ts';
import type { Entitlements } from './entitlements.ts';
import { eventRoutes } from './events.ts';
import { jsonErrors, mount, openApiDocument } from './http.ts';
import { AppError } from '../errors.ts';

export const ADMIN_PATH = '/admin/v1';

export interface AdminApiDeps {
  issuer: string;
  config: Config;
  provider: Provider;
  users: UserStore;
  groups: GroupStore;
  idpStore: IdpStore;
  identityProviders: IdentityProviders;
  authRecords: AuthRecordStore;
  sessions: SessionTerminator;
  store: KeyValueStore;
  keys: Keys;
  audit: AuditLog;
  entitlements: Entitlements;
}

export function createAdminApi(deps: AdminApiDeps): { admin: Router; scim: Router } {
  const router = new Router({ prefix: ADMIN_PATH });
  // An explicit (empty) path: @koa/router matches a prefixed router's path-less `use`
  // case-sensitively but its routes case-insensitively, so /ADMIN/V1/... reached the
  // handlers without this middleware and its errors left in the app's format.
  router.use('', jsonErrors);
  const routes = [...clientRoutes(deps), ...userRoutes(deps), ...groupRoutes(deps), ...idpRoutes(deps), ...sessionRoutes(deps), ...eventRoutes(deps.audit)];
  const document = openApiDocument(routes, { issuer: deps.issuer, version: '1' });
  // The document describes the API; reading it needs no token.
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  const authenticate = createAdminAuthenticator({ provider: deps.provider, entitlements: deps.entitlements, audience: adminIndicator(deps.issuer) });
  mount(router, routes, authenticate);
  // Anything else below /admin/v1 answers in the API's JSON too, never with the site's
  // HTML pages: 404 for a path the API does not have, 405 naming the methods a path does
  // have (RFC 9110 §15.5.6). Left to the app, an unknown path got the HTML "Not found"
  // page, and a wrong method the same page with status 405.
  router.all('{/*rest}', (ctx) => {
    const methods = new Set(
      (ctx.matched ?? [])
        .filter((layer) => typeof layer.path === 'string' && layer.path.startsWith(ADMIN_PATH) && !layer.path.endsWith('{/*rest}'))
        .flatMap((layer) => layer.methods),
    );
    if (methods.size === 0) throw new AppError({ code: 'not_found', status: 404, message: 'no such resource' });
    const allow = [...methods].join(', ');
    ctx.set('allow', allow);
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      return;
    }
    throw new AppError({ code: 'method_not_allowed', status: 405, message: `${ctx.method} is not allowed here (${allow})` });
  });
  return { admin: router, scim: createScimApi({ ...deps, authenticate }) };
}

/** The admin API's resource indicator (RFC 8707): the audience of its tokens. */
export const adminIndicator = (issuer: string) => `${issuer}${ADMIN_PATH}`;
