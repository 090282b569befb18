/** /scim/v2 — to be implemented. */
import Router from '@koa/router';
import type { AdminApiDeps } from './index.ts';

export function createScimApi(_deps: AdminApiDeps & { authenticate: import('./auth.ts').Authenticate }): Router {
  return new Router({ prefix: '/scim/v2' });
}
