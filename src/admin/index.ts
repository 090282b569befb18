/**
 * The admin REST API under /admin/v1, secured by OAuth scopes on bearer tokens. Each
 * resource is one file declaring its routes; this module mounts them, serves the
 * OpenAPI document generated from the same declarations, and answers errors as JSON.
 */
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import type { AuditLog } from './audit.ts';
import { createAdminAuthenticator } from './auth.ts';
import { clientRoutes } from './clients.ts';
import type { Entitlements } from './entitlements.ts';
import { eventRoutes } from './events.ts';
import { jsonErrors, mount, openApiDocument } from './http.ts';

export const ADMIN_PATH = '/admin/v1';

export interface AdminApiDeps {
  issuer: string;
  provider: Provider;
  store: KeyValueStore;
  keys: Keys;
  audit: AuditLog;
  entitlements: Entitlements;
}

export function createAdminApi(deps: AdminApiDeps): Router {
  const router = new Router({ prefix: ADMIN_PATH });
  router.use(jsonErrors);
  const routes = [...clientRoutes(deps), ...eventRoutes(deps.audit)];
  const document = openApiDocument(routes, { issuer: deps.issuer, version: '1' });
  // The document describes the API; reading it needs no token.
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  mount(router, routes, createAdminAuthenticator({ provider: deps.provider, entitlements: deps.entitlements, audience: adminIndicator(deps.issuer) }));
  return router;
}

/** The admin API's resource indicator (RFC 8707): the audience of its tokens. */
export const adminIndicator = (issuer: string) => `${issuer}${ADMIN_PATH}`;
