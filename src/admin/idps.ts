/** /admin/v1/identity-providers — to be implemented. */
import type { Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

export function idpRoutes(_deps: AdminApiDeps): Route<never, never, never>[] {
  return [];
}
