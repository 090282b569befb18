/** /admin/v1/sessions — to be implemented. */
import type { Route } from './http.ts';
import type { AdminApiDeps } from './index.ts';

export function sessionRoutes(_deps: AdminApiDeps): Route<never, never, never>[] {
  return [];
}
