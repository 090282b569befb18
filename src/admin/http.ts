/**
 * The admin API's route model. Each route is declared once with its scope and zod
 * schemas; the same declaration validates requests, checks authorization, and produces
 * the OpenAPI 3.1 document, so the document cannot drift from what the server does.
 *
 * Errors are JSON `{error, message, field?}`: 400 invalid_request (with the offending
 * field), 401 invalid_token, 403 insufficient_scope (with the scope needed), 404, 409,
 * 412, 413, 415.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { isStoreOutage } from '../storage/contract.ts';
import type { Principal } from './auth.ts';
import { satisfies, type AdminScope } from './scopes.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  ctx: Context;
}

export interface Route<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** Koa-style path below /admin/v1, e.g. `/clients/:id`. */
  path: string;
  scope: AdminScope;
  summary: string;
  tag: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Successful status and the response schema (none for 204). */
  success: { status: number; schema?: z.ZodType; description: string };
  /** Other statuses this route answers with (besides 400/401/403). */
  errors?: number[];
  handler(input: RouteInput<P, Q, B>): Promise<unknown>;
}

export function route<P = Record<string, never>, Q = Record<string, never>, B = undefined>(def: Route<P, Q, B>): Route<P, Q, B> {
  return def;
}

const BODY_LIMIT_BYTES = 64 * 1024;

export const errorSchema = z
  .object({
    error: z.string().describe('machine-readable code'),
    message: z.string().describe('what went wrong, for people'),
    field: z.string().optional().describe('the offending field (JSON path)'),
    scope: z.string().optional().describe('the scope that was needed (insufficient_scope)'),
  })
  .meta({ id: 'Error' });

function fieldOf(issue: z.core.$ZodIssue): string {
  return issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}

function invalid(where: 'body' | 'query' | 'path', error: z.ZodError): AppError {
  const issue = error.issues[0]!;
  const field = fieldOf(issue);
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
  return new AppError({ code: 'invalid_request', status: 400, message: `${where}${field ? ` ${field}` : ''}: ${message}`, field: field || (issue.code === 'unrecognized_keys' ? issue.keys[0]! : where) });
}

async function readJson(ctx: Context): Promise<unknown> {
  const length = Number(ctx.get('content-length') || 0);
  if (length > BODY_LIMIT_BYTES) throw new AppError({ code: 'payload_too_large', status: 413, message: `the body exceeds ${BODY_LIMIT_BYTES} bytes` });
  if (!ctx.is('application/json', 'application/scim+json', 'application/merge-patch+json')) {
    throw new AppError({ code: 'unsupported_media_type', status: 415, message: 'the body must be application/json' });
  }
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT_BYTES) throw new AppError({ code: 'payload_too_large', status: 413, message: `the body exceeds ${BODY_LIMIT_BYTES} bytes` });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError({ code: 'invalid_request', status: 400, message: 'the body is not valid JSON', field: 'body' });
  }
}

/** Register routes on a router; `authenticate` resolves the bearer token. */
export function mount(router: Router, routes: Route<never, never, never>[], authenticate: (ctx: Context) => Promise<Principal>): void {
  for (const r of routes as unknown as Route[]) {
    router[r.method](r.path, async (ctx) => {
      const principal = await authenticate(ctx);
      if (!satisfies(principal.scopes, r.scope)) {
        ctx.set('www-authenticate', `Bearer error="insufficient_scope", scope="${r.scope}"`);
        throw new AppError({ code: 'insufficient_scope', status: 403, message: `this request needs the scope ${r.scope}`, field: r.scope });
      }
      const parse = <T>(schema: z.ZodType<T> | undefined, value: unknown, where: 'body' | 'query' | 'path'): T => {
        if (!schema) return undefined as T;
        const result = schema.safeParse(value);
        if (!result.success) throw invalid(where, result.error);
        return result.data;
      };
      const params = parse(r.params, ctx.params, 'path');
      const query = parse(r.query, ctx.query, 'query');
      const body = r.body ? parse(r.body, await readJson(ctx), 'body') : undefined;
      const result = await r.handler({ params, query, body, principal, ctx });
      ctx.set('cache-control', 'no-store');
      if (r.success.status === 204) {
        ctx.status = 204;
        ctx.body = null;
      } else {
        ctx.status = r.success.status;
        ctx.body = result;
      }
    });
  }
}

/** Errors of the admin API as JSON (mounted before the routes). */
export async function jsonErrors(ctx: Context, next: () => Promise<unknown>): Promise<void> {
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.body = { error: 'not_found', message: 'no such resource' };
    }
  } catch (err) {
    ctx.set('cache-control', 'no-store');
    if (err instanceof AppError) {
      // RFC 6750 §3.1, whichever handler found the scope missing.
      if (err.code === 'insufficient_scope' && err.field) ctx.set('www-authenticate', `Bearer error="insufficient_scope", scope="${err.field}"`);
      ctx.status = err.status;
      ctx.body = {
        error: err.code,
        message: err.publicMessage,
        ...(err.field ? { field: err.field } : {}),
        ...(err.code === 'insufficient_scope' && err.field ? { scope: err.field } : {}),
      };
      return;
    }
    if (isStoreOutage(err)) {
      ctx.status = 503;
      ctx.set('retry-after', '5');
      ctx.body = { error: 'temporarily_unavailable', message: 'the store is unreachable; retry shortly' };
      return;
    }
    (ctx.state['logger'] as { error(o: object, m: string): void } | undefined)?.error({ err }, 'admin API error');
    ctx.status = 500;
    ctx.body = { error: 'server_error', message: 'unexpected error' };
  }
}

/** OpenAPI 3.1 document generated from the route declarations. */
export function openApiDocument(routes: Route<never, never, never>[], info: { issuer: string; version: string }): object {
  const paths: Record<string, Record<string, object>> = {};
  const components: Record<string, object> = {};
  // Named schemas (`.meta({ id })`) become components, referenced from every use.
  const toSchema = (schema: z.ZodType): Record<string, unknown> => {
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    const { $schema: _dialect, $defs, ...rest } = JSON.parse(JSON.stringify(json).replaceAll('"#/$defs/', '"#/components/schemas/')) as Record<string, unknown>;
    void _dialect;
    Object.assign(components, ($defs as Record<string, object> | undefined) ?? {});
    return rest;
  };
  for (const r of routes as unknown as Route[]) {
    const path = `/admin/v1${r.path.replace(/:(\w+)/g, '{$1}')}`;
    const parameters: object[] = [];
    const pathParams = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    for (const name of pathParams) parameters.push({ name, in: 'path', required: true, schema: { type: 'string' } });
    if (r.query) {
      const json = toSchema(r.query) as { properties?: Record<string, object>; required?: string[] };
      for (const [name, schema] of Object.entries(json.properties ?? {})) {
        parameters.push({ name, in: 'query', required: json.required?.includes(name) ?? false, schema });
      }
    }
    const responses: Record<string, object> = {
      [r.success.status]: {
        description: r.success.description,
        ...(r.success.schema ? { content: { 'application/json': { schema: toSchema(r.success.schema) } } } : {}),
      },
    };
    for (const status of [400, 401, 403, ...(r.errors ?? [])]) {
      responses[status] = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: r.summary,
      tags: [r.tag],
      security: [{ bearer: [r.scope] }],
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(r.body) } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Sallyport admin API', version: info.version },
    servers: [{ url: info.issuer }],
    paths,
    components: {
      schemas: { ...components, Error: toSchema(errorSchema) },
      securitySchemes: {
        bearer: {
          type: 'oauth2',
          description: 'Bearer access tokens issued by this server, carrying admin scopes.',
          flows: { clientCredentials: { tokenUrl: `${info.issuer}/token`, scopes: {} } },
        },
      },
    },
  };
}
