/** /admin/v1/events: the audit trail, newest first, with filters. */
import { z } from 'zod';
import type { AuditLog } from './audit.ts';
import { route, type Route } from './http.ts';

const eventSchema = z
  .object({
    id: z.string(),
    at: z.string(),
    type: z.string(),
    outcome: z.enum(['success', 'failure']),
    actor: z.object({ clientId: z.string().optional(), accountId: z.string().optional() }).optional(),
    target: z.object({ kind: z.string(), id: z.string() }).optional(),
    clientId: z.string().optional(),
    ip: z.string().optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: 'AuditEvent' });

const eventQuery = z.strictObject({
  type: z.string().max(100).optional().describe('event type, or a prefix such as "client" or "signin"'),
  outcome: z.enum(['success', 'failure']).optional(),
  actor: z.string().max(200).optional().describe('client id or account id that acted'),
  target: z.string().max(200).optional().describe('id of the resource acted on'),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(100).optional(),
});

export function eventRoutes(audit: AuditLog): Route<never, never, never>[] {
  return [
    route({
      method: 'get',
      path: '/events',
      scope: 'events.read',
      tag: 'events',
      summary: 'Query the audit trail (newest first)',
      query: eventQuery,
      success: { status: 200, schema: z.object({ items: z.array(eventSchema), next: z.string().optional() }), description: 'matching events' },
      async handler({ query }) {
        const { events, next } = await audit.query({ ...query, after: query.cursor });
        return { items: events, ...(next ? { next } : {}) };
      },
    }),
  ] as unknown as Route<never, never, never>[];
}
