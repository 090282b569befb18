/** /admin/v1/users — to be implemented. */
import type { Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

export function userRoutes(_deps: AdminApiDeps): Route<never, never, never>[] {
  return [];
}
