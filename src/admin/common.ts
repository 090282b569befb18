/** Pagination, filtering and optimistic-concurrency helpers shared by admin resources. */
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import type { Principal } from './auth.ts';

export const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50).describe('page size (1–200)'),
  cursor: z.string().max(500).optional().describe('`next` from the previous page'),
  filter: z.string().min(1).max(200).optional().describe('substring to match'),
});

export type ListQuery = z.infer<typeof listQuery>;

export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next: z.string().optional().describe('cursor of the next page, absent on the last') });
}

/** Keyset pagination over sorted ids: stable while records are added or removed. */
export function page(sortedIds: string[], q: { limit: number; cursor?: string | undefined }): { ids: string[]; next?: string } {
  const start = q.cursor ? sortedIds.findIndex((id) => id > q.cursor!) : 0;
  if (start < 0) return { ids: [] };
  const ids = sortedIds.slice(start, start + q.limit);
  const more = start + q.limit < sortedIds.length;
  return more ? { ids, next: ids.at(-1)! } : { ids };
}

export const etagOf = (version: number) => `"${version}"`;

/** The version an If-Match header asks for; undefined without one (or with `*`). */
export function ifMatchVersion(ctx: Context): number | undefined {
  const header = ctx.get('if-match').trim();
  if (!header || header === '*') return undefined;
  const m = /^(?:W\/)?"(\d{1,15})"$/.exec(header);
  if (!m) throw new AppError({ code: 'invalid_request', status: 400, message: 'If-Match must be an ETag from this API, e.g. "3"', field: 'If-Match' });
  return Number(m[1]);
}

/** Who acted, for audit events. */
export const actorOf = (p: Pick<Principal, 'clientId' | 'accountId'>) => ({ clientId: p.clientId, accountId: p.accountId });
