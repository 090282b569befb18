/** /admin/v1/groups — to be implemented. */
import type { Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

export function groupRoutes(_deps: AdminApiDeps): Route<never, never, never>[] {
  return [];
}
