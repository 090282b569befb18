/**
 * SCIM 2.0 at /scim/v2: the core User and Group resources (RFC 7643) over the SCIM
 * protocol (RFC 7644), for provisioning clients such as Okta, Microsoft Entra ID and
 * UAA-style tools. Same bearer tokens and scopes as /admin/v1 (users.* for Users,
 * groups.* for Groups); every answer is `application/scim+json`, errors included (SCIM
 * Error messages, RFC 7644 §3.12 — never the admin API's JSON).
 *
 * How the resources map onto Sallyport's records:
 *  - User ↔ the user store. id = user id; userName = username; displayName and
 *    name.formatted ↔ name (displayName wins when both are sent); name.givenName and
 *    name.familyName; the primary email (else the first) ↔ email, returned as the one
 *    `work` address; active ↔ !disabled (deactivating ends the user's sessions);
 *    password (write-only) ↔ passwordHash; `verified` (UAA's attribute) ↔ emailVerified,
 *    which is otherwise left alone; groups (read-only) = the user's groups that exist as
 *    Group resources.
 *  - Group ↔ the group store. id = displayName = the group name, so a group cannot be
 *    renamed (`id` never changes, RFC 7643 §3.1). Members are kept on the user records
 *    (as in /admin/v1/groups): changing members writes those users.
 *  - meta.version is W/"<record version>", sent as the ETag too; If-Match is honoured on
 *    every write (RFC 7644 §3.14) and a stale one is 412. A group's version also moves
 *    when its members change.
 *
 * Records declared in the config file belong to the file: of a declared user only
 * `active` and `password` change here; a declared group does not change at all (400
 * mutability). Attributes this server does not keep (title, phoneNumbers, extensions…)
 * are ignored on input, as provisioning clients send them whatever the server supports;
 * filters on them are refused (400 invalidFilter), since they could only match nothing.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { hashPassword } from '../accounts/passwords.ts';
import { AppError } from '../errors.ts';
import { isStoreOutage } from '../storage/contract.ts';
import type { Group } from '../storage/group-store.ts';
import type { NewUser, User } from '../storage/user-store.ts';
import type { Authenticate, Principal } from './auth.ts';
import type { AdminApiDeps } from './index.ts';
import { satisfies, scopesOfRoles, type AdminScope } from './scopes.ts';
import { actorOf } from './common.ts';

export const SCIM_PATH = '/scim/v2';

const URN = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  listResponse: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
  patchOp: 'urn:ietf:params:scim:api:messages:2.0:PatchOp',
  searchRequest: 'urn:ietf:params:scim:api:messages:2.0:SearchRequest',
  error: 'urn:ietf:params:scim:api:messages:2.0:Error',
  serviceProviderConfig: 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig',
  resourceType: 'urn:ietf:params:scim:schemas:core:2.0:ResourceType',
  schema: 'urn:ietf:params:scim:schemas:core:2.0:Schema',
} as const;

const CONTENT_TYPE = 'application/scim+json; charset=utf-8';
const BODY_LIMIT_BYTES = 64 * 1024;
/** ServiceProviderConfig filter.maxResults: a larger `count` is lowered to it (RFC 7644 §3.4.2.4). */
const MAX_RESULTS = 200;
const DEFAULT_COUNT = 100;
/**
 * Records a filter may have to read one by one (`userName eq`, `emails.value eq` and
 * `id eq` use the store's indexes instead); beyond it the filter is refused with
 * tooMany (RFC 7644 §3.12) rather than scanning the whole store per request.
 */
const MAX_SCAN = 5000;
const MAX_FILTER_LENGTH = 2000;
const MAX_FILTER_DEPTH = 32;
/** Reads issued at once when loading many records. */
const READ_BATCH = 50;

/** As in the config file and /admin/v1/users. */
const USERNAME = /^[\w.@+-]{1,100}$/;
/** Accounts from identity providers are named `<idp>:<name>`; they keep such a name, no one else takes one. */
const STORED_USERNAME = /^[\w.@+:-]{1,100}$/;
const GROUP_NAME = /^[\w.:@-]{1,100}$/;
const EMAIL = z.email().max(254);

// ---------------------------------------------------------------------------------
// Errors (RFC 7644 §3.12)

type ScimType = 'invalidFilter' | 'tooMany' | 'uniqueness' | 'mutability' | 'invalidSyntax' | 'invalidPath' | 'noTarget' | 'invalidValue';
const SCIM_TYPES: ReadonlySet<string> = new Set<ScimType>(['invalidFilter', 'tooMany', 'uniqueness', 'mutability', 'invalidSyntax', 'invalidPath', 'noTarget', 'invalidValue']);

/** One error model: the AppError's code is the scimType when the error has one. */
function scimError(status: number, scimType: ScimType | undefined, detail: string): AppError {
  return new AppError({ code: scimType ?? `scim_${status}`, status, message: detail });
}
const invalidValue = (detail: string) => scimError(400, 'invalidValue', detail);
const invalidSyntax = (detail: string) => scimError(400, 'invalidSyntax', detail);
const invalidFilter = (detail: string) => scimError(400, 'invalidFilter', `filter: ${detail}`);
const invalidPath = (path: string, why: string) => scimError(400, 'invalidPath', `path "${path}": ${why}`);
const mutability = (detail: string) => scimError(400, 'mutability', detail);
const noTarget = (detail: string) => scimError(400, 'noTarget', detail);
const notFound = (resource: 'User' | 'Group') => scimError(404, undefined, `no ${resource} with this id`);
const preconditionFailed = () => scimError(412, undefined, 'the resource has changed since that version (If-Match); read it again and retry');
const tooLarge = () => scimError(413, undefined, `the body exceeds ${BODY_LIMIT_BYTES} bytes`);
const MANAGED_BY_CONFIG = 'managed by the config file';

function send(ctx: Context, status: number, body: unknown, version?: number): void {
  ctx.status = status;
  ctx.set('cache-control', 'no-store');
  if (version !== undefined) ctx.set('etag', etagOf(version));
  ctx.body = body;
  ctx.type = CONTENT_TYPE;
}

/** Every error of the router as a SCIM Error message; nothing reaches the app's handlers. */
async function scimErrors(ctx: Context, next: () => Promise<unknown>): Promise<void> {
  try {
    await next();
  } catch (err) {
    let status = 500;
    let detail = 'unexpected error';
    let scimType: string | undefined;
    if (err instanceof AppError) {
      status = err.status;
      detail = err.publicMessage;
      // The stores report a taken username or group name as a 409 conflict.
      scimType = SCIM_TYPES.has(err.code) ? err.code : status === 409 ? 'uniqueness' : undefined;
    } else if (isStoreOutage(err)) {
      status = 503;
      detail = 'the store is unreachable; retry shortly';
      ctx.set('retry-after', '5');
    } else {
      (ctx.state['logger'] as { error(o: object, m: string): void } | undefined)?.error({ err }, 'SCIM error');
    }
    send(ctx, status, { schemas: [URN.error], status: String(status), ...(scimType ? { scimType } : {}), detail });
  }
}

// ---------------------------------------------------------------------------------
// Versions (RFC 7644 §3.14)

const etagOf = (version: number) => `W/"${version}"`;

/** Versions named by an ETag list (`W/"3", "4"`); tags not from this server name none. */
function versionsIn(header: string): number[] {
  return header
    .split(',')
    .map((tag) => /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(tag)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number);
}

/**
 * The version If-Match asks for: undefined without the header (or with `*`, the record
 * exists by now), else `current` when it is listed, else 412 (RFC 9110 §13.1.1).
 */
function expectedVersion(ctx: Context, current: number): number | undefined {
  const header = ctx.get('if-match').trim();
  if (!header || header === '*') return undefined;
  if (!versionsIn(header).includes(current)) throw preconditionFailed();
  return current;
}

function notModified(ctx: Context, version: number): boolean {
  const header = ctx.get('if-none-match').trim();
  return header === '*' || (header !== '' && versionsIn(header).includes(version));
}

/**
 * Run a compare-and-set write; without If-Match, a write that lost a race to another
 * change is run again on the fresh record (its checks run again too), as in the admin API.
 */
async function retryingStale<T>(expected: number | undefined, write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (expected !== undefined || attempt >= 5 || !(err instanceof AppError) || err.status !== 412) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------
// Schemas (RFC 7643 §7): the one description used for discovery, filters, PATCH paths
// and attribute projection.

interface Attribute {
  name: string;
  type: 'string' | 'boolean' | 'complex' | 'dateTime' | 'reference';
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
  returned: 'always' | 'never' | 'default' | 'request';
  uniqueness: 'none' | 'server' | 'global';
  canonicalValues?: string[];
  referenceTypes?: string[];
  subAttributes?: Attribute[];
}

function attribute(name: string, type: Attribute['type'], description: string, more: Partial<Attribute> = {}): Attribute {
  return { name, type, multiValued: false, description, required: false, caseExact: false, mutability: 'readWrite', returned: 'default', uniqueness: 'none', ...more };
}

/** RFC 7643 §3.1: attributes of every resource (not listed in the resource schemas). */
const COMMON_ATTRIBUTES: Attribute[] = [
  attribute('id', 'string', 'Identifier assigned by the service provider.', { caseExact: true, mutability: 'readOnly', returned: 'always', uniqueness: 'server' }),
  attribute('meta', 'complex', 'Resource metadata.', {
    mutability: 'readOnly',
    subAttributes: [
      attribute('resourceType', 'string', 'User or Group.', { caseExact: true, mutability: 'readOnly' }),
      attribute('created', 'dateTime', 'When the resource was created.', { mutability: 'readOnly' }),
      attribute('lastModified', 'dateTime', 'When the resource last changed.', { mutability: 'readOnly' }),
      attribute('location', 'reference', 'URI of the resource.', { caseExact: true, mutability: 'readOnly', referenceTypes: ['uri'] }),
      attribute('version', 'string', 'Version of the resource (also its ETag).', { caseExact: true, mutability: 'readOnly' }),
    ],
  }),
];

const USER_ATTRIBUTES: Attribute[] = [
  attribute('userName', 'string', 'Unique name used to sign in; compared case-insensitively.', { required: true, uniqueness: 'server' }),
  attribute('name', 'complex', 'The components of the user\'s name.', {
    subAttributes: [
      attribute('formatted', 'string', 'The full name; stored as the display name (displayName wins when both are given).'),
      attribute('familyName', 'string', 'Family name.'),
      attribute('givenName', 'string', 'Given name.'),
    ],
  }),
  attribute('displayName', 'string', 'Name shown to people (the OpenID Connect `name` claim).'),
  attribute('active', 'boolean', 'Whether the user may sign in; deactivating ends the user\'s sessions.'),
  attribute('password', 'string', 'Sets the password (at least 8 characters); never returned.', { mutability: 'writeOnly', returned: 'never' }),
  attribute('emails', 'complex', 'Email addresses. One is kept: the primary one, else the first; it is returned as the primary work address.', {
    multiValued: true,
    subAttributes: [
      attribute('value', 'string', 'The address.'),
      attribute('type', 'string', 'The kind of address.', { canonicalValues: ['work', 'home', 'other'] }),
      attribute('primary', 'boolean', 'The address used for the account.'),
    ],
  }),
  attribute('verified', 'boolean', 'Whether the account email is verified (as in Cloud Foundry UAA). Absent: unchanged.'),
  attribute('groups', 'complex', 'Groups the user belongs to; membership changes through the Group resources.', {
    multiValued: true,
    mutability: 'readOnly',
    subAttributes: [
      attribute('value', 'string', 'The group\'s id.', { caseExact: true, mutability: 'readOnly' }),
      attribute('$ref', 'reference', 'URI of the group.', { caseExact: true, mutability: 'readOnly', referenceTypes: ['Group'] }),
      attribute('display', 'string', 'The group\'s name.', { mutability: 'readOnly' }),
      attribute('type', 'string', 'Always direct.', { mutability: 'readOnly', canonicalValues: ['direct', 'indirect'] }),
    ],
  }),
];

const MEMBER_ATTRIBUTES: Attribute[] = [
  attribute('value', 'string', 'The member\'s user id.', { caseExact: true, mutability: 'immutable' }),
  attribute('$ref', 'reference', 'URI of the member.', { caseExact: true, mutability: 'immutable', referenceTypes: ['User'] }),
  attribute('display', 'string', 'The member\'s userName.', { mutability: 'readOnly' }),
  attribute('type', 'string', 'Always User (groups do not nest).', { mutability: 'immutable', canonicalValues: ['User'] }),
];

const GROUP_ATTRIBUTES: Attribute[] = [
  attribute('displayName', 'string', 'The group\'s name, which is also its id (letters, digits and . _ : @ -).', { required: true, uniqueness: 'server' }),
  attribute('members', 'complex', 'Users in the group.', { multiValued: true, subAttributes: MEMBER_ATTRIBUTES }),
];

interface ResourceKind {
  name: 'User' | 'Group';
  endpoint: '/Users' | '/Groups';
  description: string;
  schema: string;
  /** The resource schema's own attributes (what /Schemas lists). */
  own: readonly Attribute[];
  /** With the common ones: what filters, paths and projections resolve against. */
  attributes: readonly Attribute[];
}

const USER_KIND: ResourceKind = { name: 'User', endpoint: '/Users', description: 'User Account', schema: URN.user, own: USER_ATTRIBUTES, attributes: [...COMMON_ATTRIBUTES, ...USER_ATTRIBUTES] };
const GROUP_KIND: ResourceKind = { name: 'Group', endpoint: '/Groups', description: 'Group', schema: URN.group, own: GROUP_ATTRIBUTES, attributes: [...COMMON_ATTRIBUTES, ...GROUP_ATTRIBUTES] };
const KINDS = [USER_KIND, GROUP_KIND];

type Doc = Record<string, unknown>;

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7643 §2.1: attribute names are case-insensitive. */
function findAttribute(defs: readonly Attribute[], name: string): Attribute | undefined {
  const lower = name.toLowerCase();
  return defs.find((d) => d.name.toLowerCase() === lower);
}

/** A member of a JSON object by case-insensitive name. */
function member(obj: Doc, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(obj)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

/** Keys in the schema's spelling; attributes the schema does not have are dropped. */
function canonical(value: Doc, defs: readonly Attribute[]): Doc {
  const out: Doc = {};
  for (const [key, v] of Object.entries(value)) {
    const def = findAttribute(defs, key);
    if (def) out[def.name] = v;
  }
  return out;
}

const ATTR_NAME = String.raw`(?:[A-Za-z][\w-]*|\$ref)`;
const ATTR_PATH = new RegExp(`^(${ATTR_NAME})(?:\\.(${ATTR_NAME}))?$`);

type AttributeNames = { kind: 'core'; attr: string; sub: string | undefined } | { kind: 'foreign' } | { kind: 'invalid' };

/**
 * `[urn:…:]attr[.sub]` (RFC 7644 §3.10). A name qualified with another schema's URN
 * (an extension such as the enterprise user) is `foreign`: this server keeps none.
 */
function attributeNames(text: string, schema: string | undefined): AttributeNames {
  let rest = text.trim();
  if (/^urn:/i.test(rest)) {
    if (!schema || !rest.toLowerCase().startsWith(`${schema.toLowerCase()}:`)) return { kind: 'foreign' };
    rest = rest.slice(schema.length + 1);
  }
  const m = ATTR_PATH.exec(rest);
  return m ? { kind: 'core', attr: m[1]!, sub: m[2] } : { kind: 'invalid' };
}

// ---------------------------------------------------------------------------------
// Filters (RFC 7644 §3.4.2.2)

type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'lt' | 'ge' | 'le';
const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'lt', 'ge', 'le']);
type Literal = string | number | boolean | null;

interface AttrRef {
  attr: Attribute;
  /** The sub-attribute compared; for a multi-valued complex attribute named alone, its `value`. */
  sub?: Attribute | undefined;
}

type Filter =
  | { op: 'and' | 'or'; left: Filter; right: Filter }
  | { op: 'not'; filter: Filter }
  | { op: 'pr'; ref: AttrRef }
  | { op: CompareOp; ref: AttrRef; value: Literal }
  /** `attr[filter]`: some value of a multi-valued complex attribute matches. */
  | { op: 'has'; attr: Attribute; filter: Filter };

type Token = { t: 'punct'; v: '(' | ')' | '[' | ']' } | { t: 'word'; v: string } | { t: 'string'; v: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      tokens.push({ t: 'punct', v: c });
      i++;
    } else if (c === '"') {
      // A JSON string (RFC 7644 §3.4.2.2: compValue strings are JSON strings).
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw invalidFilter('a string is not terminated');
      try {
        tokens.push({ t: 'string', v: JSON.parse(text.slice(i, j + 1)) as string });
      } catch {
        throw invalidFilter(`${text.slice(i, j + 1)} is not a valid string`);
      }
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s()[\]"]/.test(text[j]!)) j++;
      tokens.push({ t: 'word', v: text.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

interface FilterScope {
  /** Core schema URN that may qualify names; none inside `attr[...]`. */
  schema: string | undefined;
  attributes: readonly Attribute[];
}

function parseFilter(text: string, scope: FilterScope): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`longer than ${MAX_FILTER_LENGTH} characters`);
  const tokens = tokenize(text);
  if (tokens.length === 0) throw invalidFilter('empty');
  let pos = 0;
  let depth = 0;
  const describe = (t: Token | undefined) => (t === undefined ? 'the end' : t.t === 'string' ? JSON.stringify(t.v) : `"${t.v}"`);
  const keyword = (...words: string[]) => {
    const t = tokens[pos];
    return t?.t === 'word' && words.includes(t.v.toLowerCase());
  };
  const punct = (p: string) => {
    const t = tokens[pos];
    return t?.t === 'punct' && t.v === p;
  };
  const expect = (p: string) => {
    if (!punct(p)) throw invalidFilter(`expected "${p}" instead of ${describe(tokens[pos])}`);
    pos++;
  };

  // Precedence (RFC 7644 §3.4.2.2): grouping and `not` bind tightest, then `and`, then `or`.
  function or(s: FilterScope): Filter {
    let left = and(s);
    while (keyword('or')) {
      pos++;
      left = { op: 'or', left, right: and(s) };
    }
    return left;
  }
  function and(s: FilterScope): Filter {
    let left = unary(s);
    while (keyword('and')) {
      pos++;
      left = { op: 'and', left, right: unary(s) };
    }
    return left;
  }
  function unary(s: FilterScope): Filter {
    if (++depth > MAX_FILTER_DEPTH) throw invalidFilter('nested too deeply');
    try {
      if (keyword('not')) {
        pos++;
        expect('(');
        const inner = or(s);
        expect(')');
        return { op: 'not', filter: inner };
      }
      if (punct('(')) {
        pos++;
        const inner = or(s);
        expect(')');
        return inner;
      }
      return attrExp(s);
    } finally {
      depth--;
    }
  }
  function attrExp(s: FilterScope): Filter {
    const t = tokens[pos];
    if (t?.t !== 'word') throw invalidFilter(`expected an attribute instead of ${describe(t)}`);
    pos++;
    if (punct('[')) {
      if (s.schema === undefined) throw invalidFilter('value filters do not nest');
      const attr = resolveAttribute(t.v, s);
      if (attr.sub || attr.attr.type !== 'complex' || !attr.attr.multiValued) {
        throw invalidFilter(`"${t.v}[…]" needs a multi-valued complex attribute`);
      }
      pos++;
      const inner = or({ schema: undefined, attributes: attr.attr.subAttributes ?? [] });
      expect(']');
      return { op: 'has', attr: attr.attr, filter: inner };
    }
    const ref = comparable(t.v, s);
    const opToken = tokens[pos];
    if (opToken?.t !== 'word') throw invalidFilter(`expected an operator after "${t.v}" instead of ${describe(opToken)}`);
    const op = opToken.v.toLowerCase();
    pos++;
    if (op === 'pr') return { op: 'pr', ref };
    if (!COMPARE_OPS.has(op)) throw invalidFilter(`"${opToken.v}" is not an operator (eq ne co sw ew gt lt ge le pr)`);
    const value = literal();
    checkComparison(t.v, ref, op as CompareOp, value);
    return { op: op as CompareOp, ref, value };
  }
  function literal(): Literal {
    const t = tokens[pos++];
    if (t?.t === 'string') return t.v;
    if (t?.t === 'word') {
      const lower = t.v.toLowerCase();
      if (lower === 'true') return true;
      if (lower === 'false') return false;
      if (lower === 'null') return null;
      if (/^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(t.v)) return Number(t.v);
    }
    throw invalidFilter(`expected a value (a "string", true, false, null or a number) instead of ${describe(t)}`);
  }

  const filter = or(scope);
  if (pos < tokens.length) throw invalidFilter(`unexpected ${describe(tokens[pos])}`);
  return filter;
}

function resolveAttribute(text: string, scope: FilterScope): AttrRef {
  const names = attributeNames(text, scope.schema);
  if (names.kind !== 'core') throw invalidFilter(`"${text}" is not an attribute this server can filter on`);
  const attr = findAttribute(scope.attributes, names.attr);
  if (!attr) throw invalidFilter(`"${text}" is not an attribute this server can filter on`);
  if (names.sub === undefined) return { attr };
  const sub = findAttribute(attr.subAttributes ?? [], names.sub);
  if (!sub) throw invalidFilter(`"${text}" is not an attribute this server can filter on`);
  return { attr, sub };
}

/** An attribute a comparison can apply to: a simple one, or a sub-attribute. */
function comparable(text: string, scope: FilterScope): AttrRef {
  const ref = resolveAttribute(text, scope);
  if (!ref.sub && ref.attr.type === 'complex') {
    // RFC 7644 §3.4.2.2: a multi-valued complex attribute named alone means its values.
    const value = ref.attr.multiValued ? findAttribute(ref.attr.subAttributes ?? [], 'value') : undefined;
    if (!value) throw invalidFilter(`compare a sub-attribute of ${ref.attr.name}, e.g. ${ref.attr.name}.${ref.attr.subAttributes?.[0]?.name ?? 'value'}`);
    ref.sub = value;
  }
  if ((ref.sub ?? ref.attr).returned === 'never') throw invalidFilter(`"${text}" cannot be filtered on`);
  return ref;
}

function checkComparison(text: string, ref: AttrRef, op: CompareOp, value: Literal): void {
  const def = ref.sub ?? ref.attr;
  if (value === null) {
    if (op !== 'eq' && op !== 'ne') throw invalidFilter(`${op} needs a value, not null`);
    return;
  }
  if (def.type === 'boolean') {
    // RFC 7644 §3.4.2.2: ordering operators on booleans are invalid filters.
    if (typeof value !== 'boolean' || (op !== 'eq' && op !== 'ne')) throw invalidFilter(`"${text}" is a boolean: use eq or ne with true or false`);
  } else if (def.type === 'dateTime') {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw invalidFilter(`"${text}" is compared with a date-time string`);
  } else if (typeof value !== 'string') {
    throw invalidFilter(`"${text}" is compared with a string`);
  }
}

function valuesAt(resource: Doc, ref: AttrRef): unknown[] {
  const raw = resource[ref.attr.name];
  const items = raw === undefined || raw === null ? [] : Array.isArray(raw) ? (raw as unknown[]) : [raw];
  if (!ref.sub) return items;
  const sub = ref.sub.name;
  return items.flatMap((item) => {
    const v = isObject(item) ? item[sub] : undefined;
    return v === undefined || v === null ? [] : [v];
  });
}

function ordered<T extends string | number>(op: CompareOp, a: T, b: T): boolean {
  switch (op) {
    case 'eq':
      return a === b;
    case 'gt':
      return a > b;
    case 'ge':
      return a >= b;
    case 'lt':
      return a < b;
    case 'le':
      return a <= b;
    default:
      return false;
  }
}

function compare(op: CompareOp, actual: unknown, expected: string | number | boolean, def: Attribute): boolean {
  if (def.type === 'boolean') return actual === expected;
  if (typeof actual !== 'string' || typeof expected !== 'string') return false;
  if (def.type === 'dateTime' && op !== 'co' && op !== 'sw' && op !== 'ew') return ordered(op, Date.parse(actual), Date.parse(expected));
  const a = def.caseExact ? actual : actual.toLowerCase();
  const b = def.caseExact ? expected : expected.toLowerCase();
  switch (op) {
    case 'co':
      return a.includes(b);
    case 'sw':
      return a.startsWith(b);
    case 'ew':
      return a.endsWith(b);
    default:
      return ordered(op, a, b);
  }
}

function matches(filter: Filter, resource: Doc): boolean {
  switch (filter.op) {
    case 'and':
      return matches(filter.left, resource) && matches(filter.right, resource);
    case 'or':
      return matches(filter.left, resource) || matches(filter.right, resource);
    case 'not':
      return !matches(filter.filter, resource);
    case 'has': {
      const items = resource[filter.attr.name];
      return Array.isArray(items) && items.some((item) => isObject(item) && matches(filter.filter, item));
    }
    case 'pr':
      return valuesAt(resource, filter.ref).some((v) => v !== '' && !(Array.isArray(v) && v.length === 0));
    default: {
      const values = valuesAt(resource, filter.ref);
      const def = filter.ref.sub ?? filter.ref.attr;
      const expected = filter.value;
      if (expected === null) return filter.op === 'eq' ? values.length === 0 : values.length > 0;
      if (filter.op === 'ne') return !values.some((v) => compare('eq', v, expected, def));
      return values.some((v) => compare(filter.op as CompareOp, v, expected, def));
    }
  }
}

/** Whether a filter looks at an attribute (so it must be rendered for the filter). */
function refersTo(filter: Filter, name: string): boolean {
  switch (filter.op) {
    case 'and':
    case 'or':
      return refersTo(filter.left, name) || refersTo(filter.right, name);
    case 'not':
      return refersTo(filter.filter, name);
    case 'has':
      return filter.attr.name === name;
    default:
      return filter.ref.attr.name === name;
  }
}

/** `a eq "x" and b eq "y"` as {a: "x", b: "y"}: what a new value selected by a path filter starts with. */
function equalities(filter: Filter): Doc {
  if (filter.op === 'and') return { ...equalities(filter.left), ...equalities(filter.right) };
  if (filter.op === 'eq' && !filter.ref.sub && filter.value !== null) return { [filter.ref.attr.name]: filter.value };
  return {};
}

/** Ids or names a filter can only match among, from the indexes; undefined when it needs a scan. */
function narrow<T>(filter: Filter, leaf: (f: Filter) => Promise<Set<T> | undefined>): Promise<Set<T> | undefined> {
  const both = async (f: { left: Filter; right: Filter }) => Promise.all([narrow(f.left, leaf), narrow(f.right, leaf)]);
  if (filter.op === 'and') {
    return both(filter).then(([l, r]) => (l && r ? new Set([...l].filter((x) => r.has(x))) : (l ?? r)));
  }
  if (filter.op === 'or') return both(filter).then(([l, r]) => (l && r ? new Set([...l, ...r]) : undefined));
  return leaf(filter);
}

// ---------------------------------------------------------------------------------
// PATCH (RFC 7644 §3.5.2)

interface PatchTarget {
  attr: Attribute;
  filter?: Filter | undefined;
  sub?: Attribute | undefined;
}

interface PatchOperation {
  index: number;
  op: 'add' | 'remove' | 'replace';
  path: string | undefined;
  /** undefined: no path; null: an attribute this server does not keep (ignored). */
  target: PatchTarget | null | undefined;
  value: unknown;
}

const PATH = /^([^[\]]+?)(?:\[(.*)\](?:\.([^.[\]]+))?)?$/s;

/** PATH = attrPath / valuePath [subAttr] (RFC 7644 §3.5.2). */
function parsePath(text: string, kind: ResourceKind): PatchTarget | null {
  const m = PATH.exec(text.trim());
  if (!m) throw invalidPath(text, 'not an attribute path');
  const names = attributeNames(m[1]!, kind.schema);
  if (names.kind === 'invalid') throw invalidPath(text, 'not an attribute path');
  if (names.kind === 'foreign') return null;
  const attr = findAttribute(kind.attributes, names.attr);
  if (!attr) return null;
  if (m[2] !== undefined) {
    if (names.sub !== undefined || attr.type !== 'complex' || !attr.multiValued) throw invalidPath(text, 'a value filter needs a multi-valued complex attribute');
    let filter: Filter;
    try {
      filter = parseFilter(m[2], { schema: undefined, attributes: attr.subAttributes ?? [] });
    } catch (err) {
      if (err instanceof AppError && err.code === 'invalidFilter') throw invalidPath(text, err.publicMessage);
      throw err;
    }
    if (m[3] === undefined) return { attr, filter };
    if (!new RegExp(`^${ATTR_NAME}$`).test(m[3])) throw invalidPath(text, 'not an attribute path');
    const sub = findAttribute(attr.subAttributes ?? [], m[3]);
    return sub ? { attr, filter, sub } : null;
  }
  if (names.sub === undefined) return { attr };
  if (attr.type !== 'complex') throw invalidPath(text, `${attr.name} has no sub-attributes`);
  const sub = findAttribute(attr.subAttributes ?? [], names.sub);
  return sub ? { attr, sub } : null;
}

function parsePatch(body: Doc, kind: ResourceKind): PatchOperation[] {
  requireSchema(body, URN.patchOp);
  const operations = member(body, 'Operations');
  if (!Array.isArray(operations) || operations.length === 0) throw invalidSyntax('Operations must be a non-empty array');
  return operations.map((raw: unknown, index): PatchOperation => {
    if (!isObject(raw)) throw invalidSyntax(`Operations[${index}] must be an object`);
    const op = member(raw, 'op');
    const path = member(raw, 'path');
    const value = member(raw, 'value');
    // Entra ID sends "Add", "Replace", "Remove".
    const name = typeof op === 'string' ? op.toLowerCase() : '';
    if (name !== 'add' && name !== 'remove' && name !== 'replace') throw invalidSyntax(`Operations[${index}].op must be add, remove or replace`);
    if (path !== undefined && typeof path !== 'string') throw invalidSyntax(`Operations[${index}].path must be a string`);
    if (name === 'remove' && path === undefined) throw noTarget(`Operations[${index}]: remove needs a path`);
    if (name !== 'remove' && value === undefined) throw invalidValue(`Operations[${index}]: ${name} needs a value`);
    return { index, op: name, path, target: path === undefined ? undefined : parsePath(path, kind), value };
  });
}

/** Assign sub-attributes (null removes one: RFC 7643 §2.5, null is unassigned). */
function mergeInto(target: Doc, values: Doc): Doc {
  for (const [key, value] of Object.entries(values)) {
    if (value === null) delete target[key];
    else target[key] = value;
  }
  return target;
}

function withoutNulls(value: Doc): Doc {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined));
}

/** New values for a multi-valued complex attribute, keys in the schema's spelling. */
function newItems(value: unknown, attr: Attribute, where: string): Doc[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v: unknown) => {
    if (!isObject(v)) throw invalidValue(`${where}: each ${attr.name} value must be an object`);
    return withoutNulls(canonical(v, attr.subAttributes ?? []));
  });
}

/** What identifies one value of a multi-valued attribute: its `value`. */
function identity(item: Doc, attr: Attribute): string {
  const v = item['value'];
  if (typeof v !== 'string') return JSON.stringify(item);
  return findAttribute(attr.subAttributes ?? [], 'value')?.caseExact ? v : v.toLowerCase();
}

function itemsOf(doc: Doc, attr: Attribute): Doc[] {
  const raw = doc[attr.name];
  return Array.isArray(raw) ? raw.filter(isObject) : [];
}

function setItems(doc: Doc, attr: Attribute, items: Doc[]): void {
  const kept = items.filter((item) => Object.keys(item).length > 0);
  if (kept.length === 0) delete doc[attr.name];
  else doc[attr.name] = kept;
}

/** RFC 7643 §2.4: "primary" is true for at most one value; a value just made primary wins. */
function keepPrimary(items: Doc[], winner: Doc): void {
  if (winner['primary'] !== true) return;
  for (const item of items) if (item !== winner && item['primary'] === true) delete item['primary'];
}

function applyOperation(doc: Doc, o: PatchOperation, kind: ResourceKind): void {
  const where = `Operations[${o.index}]`;
  const { target } = o;
  if (target === null) return;
  if (target === undefined) {
    // RFC 7644 §3.5.2.1 and §3.5.2.3: without a path the value holds attributes (names may
    // be paths themselves, as Entra ID sends `{"name.givenName": …}`).
    if (!isObject(o.value)) throw invalidValue(`${where}: ${o.op} without a path needs an object of attributes as its value`);
    for (const [key, value] of Object.entries(o.value)) {
      if (key.toLowerCase() === 'schemas') continue;
      if (key.toLowerCase() === kind.schema.toLowerCase()) {
        applyOperation(doc, { ...o, value }, kind);
        continue;
      }
      applyOperation(doc, { ...o, path: key, target: parsePath(key, kind), value }, kind);
    }
    return;
  }
  const { attr, filter, sub } = target;
  const removing = o.op === 'remove';

  if (filter) {
    // attr[filter] and attr[filter].sub: the values the filter selects.
    const items = itemsOf(doc, attr);
    const selected = items.filter((item) => matches(filter, item));
    if (removing) {
      if (!sub) {
        setItems(doc, attr, items.filter((item) => !selected.includes(item)));
        return;
      }
      for (const item of selected) delete item[sub.name];
      // A value left without its `value` (an email without an address) is gone.
      setItems(doc, attr, items.filter((item) => !(selected.includes(item) && item['value'] === undefined)));
      return;
    }
    if (selected.length === 0) {
      // RFC 7644 §3.5.2.3: replace with a filter that selects nothing fails.
      if (o.op === 'replace') throw noTarget(`${where}: no ${attr.name} value matches "${o.path ?? ''}"`);
      // add: a new value, starting from what the filter asked for (Entra ID adds
      // `emails[type eq "work"].value` this way).
      const created = withoutNulls({ ...equalities(filter), ...(sub ? { [sub.name]: o.value } : newItems(o.value, attr, where)[0]) });
      items.push(created);
      keepPrimary(items, created);
      setItems(doc, attr, items);
      return;
    }
    for (const item of selected) {
      if (sub) {
        mergeInto(item, { [sub.name]: o.value });
      } else {
        const replacement = newItems(o.value, attr, where)[0] ?? {};
        if (o.op === 'replace') for (const key of Object.keys(item)) delete item[key];
        Object.assign(item, replacement);
      }
      keepPrimary(items, item);
    }
    setItems(doc, attr, items);
    return;
  }

  if (sub) {
    if (!attr.multiValued) {
      // name.givenName and the like.
      const parent = isObject(doc[attr.name]) ? { ...(doc[attr.name] as Doc) } : {};
      mergeInto(parent, { [sub.name]: removing ? null : o.value });
      if (Object.keys(parent).length === 0) delete doc[attr.name];
      else doc[attr.name] = parent;
      return;
    }
    // emails.value without a filter: every value.
    const items = itemsOf(doc, attr);
    if (items.length === 0 && !removing) items.push({});
    for (const item of items) mergeInto(item, { [sub.name]: removing ? null : o.value });
    setItems(doc, attr, items);
    return;
  }

  if (!attr.multiValued) {
    if (removing || o.value === null) {
      delete doc[attr.name];
    } else if (attr.type === 'complex') {
      // RFC 7644 §3.5.2.3: sub-attributes not given are left as they are.
      if (!isObject(o.value)) throw invalidValue(`${where}: ${attr.name} must be an object`);
      const merged = mergeInto(isObject(doc[attr.name]) ? { ...(doc[attr.name] as Doc) } : {}, canonical(o.value, attr.subAttributes ?? []));
      if (Object.keys(merged).length === 0) delete doc[attr.name];
      else doc[attr.name] = merged;
    } else {
      doc[attr.name] = o.value;
    }
    return;
  }

  const items = itemsOf(doc, attr);
  if (removing) {
    if (o.value === undefined || o.value === null) {
      delete doc[attr.name];
    } else {
      // Not in RFC 7644, but what Entra ID sends to remove members: the values to remove.
      const gone = new Set(newItems(o.value, attr, where).map((item) => identity(item, attr)));
      setItems(doc, attr, items.filter((item) => !gone.has(identity(item, attr))));
    }
    return;
  }
  const added = o.value === null ? [] : newItems(o.value, attr, where);
  if (o.op === 'replace') {
    setItems(doc, attr, added);
    return;
  }
  // add: values already present (same `value`) are updated, not repeated (RFC 7644 §3.5.2.1).
  for (const item of added) {
    const existing = items.find((e) => identity(e, attr) === identity(item, attr));
    const kept = existing ? Object.assign(existing, item) : item;
    if (!existing) items.push(item);
    keepPrimary(items, kept);
  }
  setItems(doc, attr, items);
}

/** Read-only attributes must come out of a PATCH as they went in (RFC 7644 §3.5.2: 400 mutability). */
function assertReadOnlyKept(before: Doc, after: Doc, kind: ResourceKind): void {
  const state = (v: unknown) => (v === undefined || v === null || (Array.isArray(v) && v.length === 0) ? 'unassigned' : JSON.stringify(v));
  for (const attr of kind.attributes) {
    if (attr.mutability !== 'readOnly' || state(before[attr.name]) === state(after[attr.name])) continue;
    throw mutability(attr.name === 'groups' ? 'groups is read-only on Users: change membership through the Group resources' : `${attr.name} is read-only`);
  }
}

// ---------------------------------------------------------------------------------
// Request helpers

function requireSchema(body: Doc, urn: string): void {
  const schemas = member(body, 'schemas');
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === urn.toLowerCase())) {
    throw invalidSyntax(`schemas must include "${urn}"`);
  }
}

async function readBody(ctx: Context): Promise<Doc> {
  if (Number(ctx.get('content-length') || 0) > BODY_LIMIT_BYTES) throw tooLarge();
  // RFC 7644 §3.1: application/scim+json; plain JSON is accepted too.
  if (ctx.request.type && !ctx.is('application/scim+json', 'application/json')) {
    throw scimError(415, undefined, 'the body must be application/scim+json or application/json');
  }
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT_BYTES) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalidSyntax('the body is not valid JSON');
  }
  if (!isObject(body)) throw invalidSyntax('the body must be a JSON object');
  return body;
}

interface ListRequest {
  filter: Filter | undefined;
  startIndex: number;
  count: number;
  projection: Projection;
}

interface Projection {
  attributes: string[];
  excluded: string[];
}

function integer(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' && /^-?\d{1,15}$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw invalidValue(`${name} must be an integer`);
  return n;
}

function stringList(value: unknown, name: string): string[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === 'string')) throw invalidValue(`${name} must be a list of attribute names`);
  return (list as string[]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

function single(value: unknown, name: string): unknown {
  if (Array.isArray(value)) throw invalidValue(`${name} is given more than once`);
  return value;
}

function projectionFrom(ctx: Context): Projection {
  return {
    attributes: stringList(single(ctx.query['attributes'], 'attributes'), 'attributes'),
    excluded: stringList(single(ctx.query['excludedAttributes'], 'excludedAttributes'), 'excludedAttributes'),
  };
}

/** From query parameters (GET) or a SearchRequest body (POST …/.search, RFC 7644 §3.4.3). */
function listRequest(input: { filter?: unknown; startIndex?: unknown; count?: unknown; attributes?: unknown; excludedAttributes?: unknown }, kind: ResourceKind): ListRequest {
  const filterText = single(input.filter, 'filter');
  if (filterText !== undefined && typeof filterText !== 'string') throw invalidFilter('must be a string');
  // RFC 7644 §3.4.2.4: startIndex below 1 is 1; a negative count is 0.
  const startIndex = Math.max(1, integer(single(input.startIndex, 'startIndex'), 'startIndex') ?? 1);
  const count = Math.min(MAX_RESULTS, Math.max(0, integer(single(input.count, 'count'), 'count') ?? DEFAULT_COUNT));
  return {
    filter: filterText === undefined ? undefined : parseFilter(filterText, { schema: kind.schema, attributes: kind.attributes }),
    startIndex,
    count,
    projection: { attributes: stringList(input.attributes, 'attributes'), excluded: stringList(input.excludedAttributes, 'excludedAttributes') },
  };
}

/** A SearchRequest body (POST …/.search, RFC 7644 §3.4.3). */
async function searchRequest(ctx: Context, kind: ResourceKind): Promise<ListRequest> {
  const body = await readBody(ctx);
  requireSchema(body, URN.searchRequest);
  const [filter, startIndex, count, attributes, excludedAttributes] = ['filter', 'startIndex', 'count', 'attributes', 'excludedAttributes'].map((k) => member(body, k));
  return listRequest({ filter, startIndex, count, attributes, excludedAttributes }, kind);
}

/** `attributes` / `excludedAttributes` (RFC 7644 §3.9); id and schemas are always returned. */
function project(resource: Doc, kind: ResourceKind, p: Projection): Doc {
  if (p.attributes.length === 0 && p.excluded.length === 0) return resource;
  const refs = (list: string[]) =>
    list.flatMap((text) => {
      const names = attributeNames(text, kind.schema);
      const attr = names.kind === 'core' ? findAttribute(kind.attributes, names.attr) : undefined;
      if (!attr || names.kind !== 'core') return [];
      const sub = names.sub === undefined ? undefined : findAttribute(attr.subAttributes ?? [], names.sub);
      return names.sub !== undefined && !sub ? [] : [{ attr, sub }];
    });
  const only = (value: unknown, subs: Set<string>, keep: boolean): unknown => {
    const pick = (v: unknown) => (isObject(v) ? Object.fromEntries(Object.entries(v).filter(([k]) => subs.has(k) === keep)) : v);
    return Array.isArray(value) ? value.map(pick) : pick(value);
  };
  const wanted = refs(p.attributes);
  const excluded = refs(p.excluded);
  const out: Doc = {};
  for (const [key, value] of Object.entries(resource)) {
    const def = findAttribute(kind.attributes, key);
    if (key === 'schemas' || def?.returned === 'always') {
      out[key] = value;
      continue;
    }
    if (!def) continue;
    if (p.attributes.length > 0) {
      const mine = wanted.filter((w) => w.attr === def);
      if (mine.length === 0) continue;
      out[key] = mine.some((w) => !w.sub) ? value : only(value, new Set(mine.map((w) => w.sub!.name)), true);
    } else {
      const mine = excluded.filter((w) => w.attr === def);
      if (mine.some((w) => !w.sub)) continue;
      out[key] = mine.length === 0 ? value : only(value, new Set(mine.map((w) => w.sub!.name)), false);
    }
  }
  return out;
}

/** Whether a projection returns an attribute at all (so it need not be computed). */
function returns(kind: ResourceKind, p: Projection, name: string): boolean {
  const named = (list: string[], whole: boolean) =>
    list.some((text) => {
      const names = attributeNames(text, kind.schema);
      return names.kind === 'core' && names.attr.toLowerCase() === name.toLowerCase() && (!whole || names.sub === undefined);
    });
  if (p.attributes.length > 0) return named(p.attributes, false);
  return !named(p.excluded, true);
}

function listResponse(total: number, startIndex: number, resources: Doc[]) {
  return { schemas: [URN.listResponse], totalResults: total, itemsPerPage: resources.length, startIndex, Resources: resources };
}

async function inBatches<T, R>(items: T[], load: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += READ_BATCH) out.push(...(await Promise.all(items.slice(i, i + READ_BATCH).map(load))));
  return out;
}

// ---------------------------------------------------------------------------------
// Users ↔ user records

type UserFields = Pick<User, 'username' | 'name' | 'givenName' | 'familyName' | 'email' | 'emailVerified' | 'disabled'>;

interface UserInput {
  fields: UserFields;
  /** In clear, to be hashed; undefined leaves the password as it is. */
  password: string | undefined;
}

/** Profile fields a config-declared user keeps (the file sets them); `disabled` and the password may change. */
const DECLARED_FIELDS = ['username', 'name', 'givenName', 'familyName', 'email', 'emailVerified'] as const;
const SCIM_NAME_OF: Record<keyof UserFields | 'passwordHash' | 'groups', string> = {
  username: 'userName',
  name: 'displayName',
  givenName: 'name.givenName',
  familyName: 'name.familyName',
  email: 'emails',
  emailVerified: 'verified',
  disabled: 'active',
  passwordHash: 'password',
  groups: 'groups',
};

function optionalString(value: unknown, name: string, max: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length > max) throw invalidValue(`${name} must be a string of at most ${max} characters`);
  return value === '' ? undefined : value;
}

function optionalBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalidValue(`${name} must be true or false`);
  return value;
}

/**
 * A User resource (a POST or PUT body, or the result of a PATCH) as record fields.
 * `current` is the record it replaces: what an absent `active` or `verified` leaves as
 * it is (RFC 7644 §3.5.1 lets an omitted attribute mean "not asserted").
 */
function userInput(resource: Doc, current: User | undefined): UserInput {
  const doc = canonical(resource, USER_ATTRIBUTES);
  const username = doc['userName'];
  if (typeof username !== 'string' || username === '') throw invalidValue('userName is required');
  const renamed = !current || username.toLowerCase() !== current.username.toLowerCase();
  if (!(renamed ? USERNAME : STORED_USERNAME).test(username)) throw invalidValue('userName must be 1–100 letters, digits and . _ @ + -');

  if (doc['name'] !== undefined && doc['name'] !== null && !isObject(doc['name'])) throw invalidValue('name must be an object');
  const name = isObject(doc['name']) ? canonical(doc['name'], USER_ATTRIBUTES[1]!.subAttributes!) : {};
  const displayName = optionalString(doc['displayName'], 'displayName', 200) ?? optionalString(name['formatted'], 'name.formatted', 200);

  let email: string | undefined;
  const emails = doc['emails'];
  if (emails !== undefined && emails !== null) {
    if (!Array.isArray(emails)) throw invalidValue('emails must be an array');
    const items = emails.map((e: unknown, i) => {
      if (!isObject(e)) throw invalidValue(`emails[${i}] must be an object`);
      const item = canonical(e, USER_ATTRIBUTES[5]!.subAttributes!);
      if (typeof item['value'] !== 'string' || !EMAIL.safeParse(item['value']).success) throw invalidValue(`emails[${i}].value must be an email address`);
      optionalString(item['type'], `emails[${i}].type`, 50);
      optionalBoolean(item['primary'], `emails[${i}].primary`);
      return item;
    });
    const primaries = items.filter((item) => item['primary'] === true);
    // RFC 7643 §2.4: "primary" is true for at most one value.
    if (primaries.length > 1) throw invalidValue('only one of emails can be primary');
    email = (primaries[0] ?? items[0])?.['value'] as string | undefined;
  }

  const active = optionalBoolean(doc['active'], 'active') ?? (current ? !current.disabled : true);
  const verified = optionalBoolean(doc['verified'], 'verified') ?? current?.emailVerified ?? false;
  const password = doc['password'];
  if (password !== undefined && password !== null && (typeof password !== 'string' || password.length < 8 || password.length > 1024)) {
    throw invalidValue('password must be 8 to 1024 characters');
  }
  return {
    fields: {
      username,
      name: displayName,
      givenName: optionalString(name['givenName'], 'name.givenName', 100),
      familyName: optionalString(name['familyName'], 'name.familyName', 100),
      email,
      emailVerified: verified,
      disabled: !active,
    },
    password: typeof password === 'string' ? password : undefined,
  };
}

/** A declared user keeps the file's profile (RFC 7644 §3.12 mutability). */
function assertDeclaredUserKept(current: User, next: UserFields): void {
  if (current.source !== 'config') return;
  const changed = DECLARED_FIELDS.filter((k) => (current[k] ?? undefined) !== (next[k] ?? undefined));
  if (changed.length > 0) {
    throw mutability(`this user is ${MANAGED_BY_CONFIG}: ${changed.map((k) => SCIM_NAME_OF[k]).join(', ')} cannot change here (active and password can)`);
  }
}

// ---------------------------------------------------------------------------------

export function createScimApi(deps: AdminApiDeps & { authenticate: Authenticate }): Router {
  const { users, groups, audit, sessions, store, keys, authenticate } = deps;
  const base = `${deps.issuer}${SCIM_PATH}`;
  const locationOf = (kind: ResourceKind, id: string) => `${base}${kind.endpoint}/${encodeURIComponent(id)}`;

  async function authorize(ctx: Context, scope: AdminScope): Promise<Principal> {
    const principal = await authenticate(ctx);
    if (!satisfies(principal.scopes, scope)) {
      // RFC 6750 §3.1.
      ctx.set('www-authenticate', `Bearer error="insufficient_scope", scope="${scope}"`);
      throw scimError(403, undefined, `this request needs the scope ${scope}`);
    }
    return principal;
  }

  // --- Users ---------------------------------------------------------------------

  function renderUser(user: User, knownGroups: ReadonlySet<string>): Doc {
    const name = withoutNulls({ formatted: user.name, familyName: user.familyName, givenName: user.givenName });
    const memberOf = user.groups.filter((g) => knownGroups.has(g));
    // Field by field: nothing else on the record (a password hash) can leak.
    return withoutNulls({
      schemas: [URN.user],
      id: user.id,
      userName: user.username,
      name: Object.keys(name).length > 0 ? name : undefined,
      displayName: user.name,
      emails: user.email ? [{ value: user.email, type: 'work', primary: true }] : undefined,
      active: !user.disabled,
      verified: user.emailVerified,
      groups: memberOf.length > 0 ? memberOf.map((g) => ({ value: g, $ref: locationOf(GROUP_KIND, g), display: g, type: 'direct' })) : undefined,
      meta: { resourceType: 'User', created: user.createdAt, lastModified: user.updatedAt, location: locationOf(USER_KIND, user.id), version: etagOf(user.version) },
    });
  }

  const knownGroupNames = async () => new Set(await groups.listGroupNames());

  async function loadUser(id: string): Promise<User> {
    const user = await users.getUser(id);
    if (!user) throw notFound('User');
    return user;
  }

  /**
   * The users a filter term can only match, from the store's indexes: `id eq`,
   * `userName eq` (case-insensitive, as the username index is) and `emails.value eq` /
   * `emails[value eq …]` (the email index is lower-cased too).
   */
  async function indexedUserIds(f: Filter): Promise<Set<string> | undefined> {
    if (f.op === 'has') return f.attr.name === 'emails' ? narrow(f.filter, indexedUserIds) : undefined;
    if (f.op !== 'eq' || typeof f.value !== 'string') return undefined;
    const attr = f.ref.sub ? `${f.ref.attr.name}.${f.ref.sub.name}` : f.ref.attr.name;
    switch (attr) {
      case 'id':
        return new Set([f.value]);
      case 'userName': {
        const user = await users.getUserByUsername(f.value);
        return new Set(user ? [user.id] : []);
      }
      case 'emails.value':
      // Inside emails[…], `value` is the address.
      case 'value':
        return new Set(await users.listUserIdsByEmail(f.value));
      default:
        return undefined;
    }
  }

  async function listUsers(ctx: Context, q: ListRequest): Promise<void> {
    const known = await knownGroupNames();
    let resources: Doc[];
    let total: number;
    const from = q.startIndex - 1;
    if (!q.filter) {
      // Ordered by id: stable while users are added or removed, and only a page is read.
      const ids = [...new Set(await users.listUserIds())].sort();
      total = ids.length;
      const page = (await inBatches(ids.slice(from, from + q.count), (id) => users.getUser(id))).filter((u): u is User => !!u);
      resources = page.map((u) => renderUser(u, known));
    } else {
      const filter = q.filter;
      const candidates = await narrow(filter, indexedUserIds);
      const ids = [...(candidates ?? new Set(await users.listUserIds()))].sort();
      if (!candidates && ids.length > MAX_SCAN) {
        throw scimError(400, 'tooMany', `this filter would read all ${ids.length} users; filter by userName, emails.value or id (eq), or combine with one of those (and)`);
      }
      const matching = (await inBatches(ids, (id) => users.getUser(id)))
        .filter((u): u is User => !!u)
        .map((u) => renderUser(u, known))
        .filter((r) => matches(filter, r));
      total = matching.length;
      resources = matching.slice(from, from + q.count);
    }
    send(ctx, 200, listResponse(total, q.startIndex, resources.map((r) => project(r, USER_KIND, q.projection))));
  }

  /**
   * A user write over the record as it is when written: `compute` runs on the fresh
   * record (again, if a racing write forces a retry), so its checks always see what is
   * replaced. With If-Match, a record that moved on is 412.
   */
  async function updateUserWith(ctx: Context, principal: Principal, id: string, compute: (current: User, known: ReadonlySet<string>) => UserInput): Promise<User> {
    const first = await loadUser(id);
    const expected = expectedVersion(ctx, first.version);
    const known = await knownGroupNames();
    // Validation errors surface before the (deliberately slow) password hash.
    const probe = compute(first, known);
    assertDeclaredUserKept(first, probe.fields);
    const passwordHash = probe.password === undefined ? undefined : await hashPassword(probe.password);
    let before: User | undefined;
    const updated = await retryingStale(expected, () =>
      users.updateUser(
        id,
        (current) => {
          before = current;
          const input = compute(current, known);
          assertDeclaredUserKept(current, input.fields);
          return { ...input.fields, ...(passwordHash === undefined ? {} : { passwordHash }) };
        },
        expected,
      ),
    );
    const changed = (Object.keys(SCIM_NAME_OF) as Array<keyof typeof SCIM_NAME_OF>).filter(
      (k) => k !== 'passwordHash' && JSON.stringify(before?.[k]) !== JSON.stringify(updated[k]),
    );
    const details: Record<string, string | number | boolean | string[]> = { via: 'scim', changed: changed.map((k) => SCIM_NAME_OF[k]) };
    if (passwordHash !== undefined) {
      (details['changed'] as string[]).push('password');
      // A password set by the provisioning system is a reset: a locked-out person gets back in.
      await store.del(keys.loginFailures(updated.username));
    }
    // Sessions end after the flag is stored, so no sign-in slips in between.
    if (updated.disabled && !before?.disabled) details['sessionsEnded'] = await sessions.endAccountSessions(id, 'deactivated through SCIM');
    await audit.record({ type: 'user.updated', outcome: 'success', actor: actorOf(principal), target: { kind: 'user', id }, ip: ctx.ip, details });
    return updated;
  }

  // --- Groups --------------------------------------------------------------------

  const declaredGroups = async () => new Set(await store.sMembers(keys.declaredGroups()));

  async function loadGroup(name: string): Promise<Group> {
    const group = await groups.getGroup(name);
    if (!group) throw notFound('Group');
    // Declared in the file now, even if the record predates the declaration.
    return (await declaredGroups()).has(name) ? { ...group, source: 'config' } : group;
  }

  function assertGroupWritable(group: Group): void {
    if (group.source === 'config') throw mutability(`this group is ${MANAGED_BY_CONFIG}; change it there`);
  }

  /** Members read from the user records (the per-group index only names candidates). */
  async function membersOf(name: string): Promise<User[]> {
    const ids = [...new Set(await users.listGroupMemberIds(name))].sort();
    return (await inBatches(ids, (id) => users.getUser(id))).filter((u): u is User => !!u && u.groups.includes(name));
  }

  const memberRefs = (members: User[]) =>
    members.length > 0 ? members.map((u) => ({ value: u.id, $ref: locationOf(USER_KIND, u.id), display: u.username, type: 'User' })) : undefined;

  function renderGroup(group: Group, members: User[] | undefined): Doc {
    return withoutNulls({
      schemas: [URN.group],
      id: group.name,
      displayName: group.name,
      members: members && memberRefs(members),
      meta: { resourceType: 'Group', created: group.createdAt, lastModified: group.updatedAt, location: locationOf(GROUP_KIND, group.name), version: etagOf(group.version) },
    });
  }

  async function listGroups(ctx: Context, q: ListRequest): Promise<void> {
    const names = [...new Set(await groups.listGroupNames())].sort();
    const from = q.startIndex - 1;
    const withMembers = returns(GROUP_KIND, q.projection, 'members');
    const load = async (name: string, members: boolean) => {
      const group = await groups.getGroup(name);
      return group && renderGroup(group, members ? await membersOf(name) : undefined);
    };
    let resources: Doc[];
    let total: number;
    if (!q.filter) {
      total = names.length;
      resources = (await inBatches(names.slice(from, from + q.count), (n) => load(n, withMembers))).filter((r): r is Doc => !!r);
    } else {
      const filter = q.filter;
      const candidates = await narrow(filter, async (f) => {
        if (f.op !== 'eq' || typeof f.value !== 'string') return undefined;
        const wanted = f.value;
        if (f.ref.attr.name === 'id') return new Set(names.filter((n) => n === wanted));
        if (f.ref.attr.name === 'displayName') return new Set(names.filter((n) => n.toLowerCase() === wanted.toLowerCase()));
        return undefined;
      });
      const selected = candidates ? names.filter((n) => candidates.has(n)) : names;
      if (!candidates && selected.length > MAX_SCAN) throw scimError(400, 'tooMany', `this filter would read all ${selected.length} groups; filter by displayName or id (eq)`);
      const needMembers = refersTo(filter, 'members');
      const matching = (await inBatches(selected, (n) => load(n, needMembers))).filter((r): r is Doc => !!r && matches(filter, r));
      total = matching.length;
      resources = matching.slice(from, from + q.count);
      if (withMembers && !needMembers) {
        resources = await inBatches(resources, async (r) => withoutNulls({ ...r, members: memberRefs(await membersOf(String(r['id']))) }));
      }
    }
    send(ctx, 200, listResponse(total, q.startIndex, resources.map((r) => project(r, GROUP_KIND, q.projection))));
  }

  function memberIdsOf(value: unknown, where: string): string[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw invalidValue(`${where} must be an array`);
    const ids = value.map((m: unknown, i) => {
      const item = isObject(m) ? canonical(m, MEMBER_ATTRIBUTES) : undefined;
      if (!item || typeof item['value'] !== 'string' || item['value'] === '') throw invalidValue(`${where}[${i}].value must be a user id`);
      if (item['type'] !== undefined && item['type'] !== null && String(item['type']).toLowerCase() !== 'user') {
        throw invalidValue(`${where}[${i}]: only users can be members (groups do not nest)`);
      }
      return item['value'];
    });
    return [...new Set(ids)];
  }

  interface MemberChange {
    group: Group;
    add: string[];
    remove: string[];
  }

  /**
   * Check a change of members before anything is written: every added user exists, no
   * user declared in the config file is touched (their groups are the file's), and the
   * token holds every scope membership would grant.
   */
  async function checkMembers(ctx: Context, principal: Principal, change: MemberChange): Promise<void> {
    const declaredUser = (u: User) => mutability(`members: the user ${u.username} is ${MANAGED_BY_CONFIG}; their groups change there`);
    const added = await Promise.all(change.add.map((id) => users.getUser(id)));
    added.forEach((user, i) => {
      if (!user) throw invalidValue(`members: no User with id "${change.add[i]!}"`);
      if (user.source === 'config') throw declaredUser(user);
    });
    for (const user of await Promise.all(change.remove.map((id) => users.getUser(id)))) {
      if (user?.source === 'config') throw declaredUser(user);
    }
    if (change.add.length > 0) {
      // Members get the group's admin roles: a token cannot hand out a scope it lacks.
      const missing = [...scopesOfRoles(deps.entitlements.roles, change.group.roles)].find((s) => !satisfies(principal.scopes, s));
      if (missing) {
        ctx.set('www-authenticate', `Bearer error="insufficient_scope", scope="${missing}"`);
        throw scimError(403, undefined, `members of this group get the scope ${missing}; adding members needs a token that holds it`);
      }
    }
  }

  /**
   * Write a checked change of members: each is a write of that user's record. Writes
   * done before a failure are undone, so a request changes all of its members or none.
   */
  async function writeMembers(ctx: Context, principal: Principal, change: MemberChange): Promise<void> {
    const name = change.group.name;
    const write = (id: string, groupsOf: (groups: string[]) => string[]) =>
      retryingStale(undefined, () =>
        users.updateUser(id, (fresh) => {
          // Checked again on the record actually written.
          if (fresh.source === 'config') throw mutability(`members: the user ${fresh.username} is ${MANAGED_BY_CONFIG}; their groups change there`);
          return { groups: groupsOf(fresh.groups) };
        }),
      );
    const without = (gs: string[]) => gs.filter((g) => g !== name);
    const withIt = (gs: string[]) => (gs.includes(name) ? gs : [...gs, name]);
    const undo: Array<() => Promise<unknown>> = [];
    try {
      for (const id of change.add) {
        await write(id, withIt).catch((err: unknown) => {
          throw err instanceof AppError && err.status === 404 ? invalidValue(`members: no User with id "${id}"`) : err;
        });
        undo.push(() => write(id, without));
      }
      // The group may have been deleted while members were written, by a delete that did
      // not see them (as in /admin/v1/groups): they are undone.
      if (change.add.length > 0 && !(await groups.getGroup(name))) throw notFound('Group');
      for (const id of change.remove) {
        try {
          await write(id, without);
          undo.push(() => write(id, withIt));
        } catch (err) {
          // Deleted meanwhile: nothing left to remove.
          if (!(err instanceof AppError && err.status === 404)) throw err;
        }
      }
    } catch (err) {
      for (const step of undo.reverse()) await step().catch(() => undefined);
      throw err;
    }
    const actor = actorOf(principal);
    for (const [type, ids] of [['group.member_added', change.add], ['group.member_removed', change.remove]] as const) {
      for (const id of ids) await audit.record({ type, outcome: 'success', actor, target: { kind: 'user', id }, ip: ctx.ip, details: { group: name, via: 'scim' } });
    }
  }

  /**
   * PUT and PATCH of a group. After the checks, the group's version moves first
   * (compare-and-set against If-Match: of two writers holding one ETag exactly one
   * proceeds), then the members change.
   */
  async function updateGroupWith(ctx: Context, principal: Principal, name: string, desired: (group: Group, members: User[]) => { displayName: unknown; members: string[] | undefined }): Promise<void> {
    const current = await loadGroup(name);
    assertGroupWritable(current);
    const expected = expectedVersion(ctx, current.version);
    const before = await membersOf(name);
    const wanted = desired(current, before);
    if (typeof wanted.displayName !== 'string') throw invalidValue('displayName is required');
    if (wanted.displayName !== name) throw mutability('displayName is the group\'s id and cannot change');
    const had = new Set(before.map((u) => u.id));
    const change: MemberChange = {
      group: current,
      add: (wanted.members ?? []).filter((id) => !had.has(id)),
      remove: wanted.members === undefined ? [] : [...had].filter((id) => !wanted.members!.includes(id)),
    };
    await checkMembers(ctx, principal, change);
    await retryingStale(expected, async () => {
      const fresh = await loadGroup(name);
      assertGroupWritable(fresh);
      return groups.updateGroup(name, {}, expected ?? fresh.version);
    });
    await writeMembers(ctx, principal, change);
    await audit.record({
      type: 'group.updated',
      outcome: 'success',
      actor: actorOf(principal),
      target: { kind: 'group', id: name },
      ip: ctx.ip,
      details: { via: 'scim', membersAdded: change.add, membersRemoved: change.remove },
    });
    const group = await loadGroup(name);
    send(ctx, 200, project(renderGroup(group, await membersOf(name)), GROUP_KIND, projectionFrom(ctx)), group.version);
  }

  // --- Routes --------------------------------------------------------------------

  const router = new Router({ prefix: SCIM_PATH });
  // With an explicit (empty) path, like the routes, this covers every case of the path
  // (see admin/index.ts): /SCIM/V2/Users answered with the app's JSON errors otherwise.
  router.use('', scimErrors);

  // Discovery (RFC 7644 §4). These describe the service, not its data, so they need no
  // token (like /admin/v1/openapi.json). A filter is refused with 403, as §4 asks.
  const discovery = (path: string, body: (ctx: Context) => unknown) =>
    router.get(path, (ctx) => {
      if (ctx.query['filter'] !== undefined) throw scimError(403, undefined, 'filtering is not supported on discovery endpoints');
      send(ctx, 200, body(ctx));
    });

  const serviceProviderConfig = {
    schemas: [URN.serviceProviderConfig],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: true },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: 'Access tokens from this server\'s token endpoint for the admin API, with users.* and groups.* scopes.',
        specUri: 'https://www.rfc-editor.org/info/rfc6750',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
  };
  const resourceTypeOf = (kind: ResourceKind) => ({
    schemas: [URN.resourceType],
    id: kind.name,
    name: kind.name,
    endpoint: kind.endpoint,
    description: kind.description,
    schema: kind.schema,
    schemaExtensions: [],
    meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/${kind.name}` },
  });
  const schemaOf = (kind: ResourceKind) => ({
    schemas: [URN.schema],
    id: kind.schema,
    name: kind.name,
    description: kind.description,
    attributes: kind.own,
    meta: { resourceType: 'Schema', location: `${base}/Schemas/${kind.schema}` },
  });
  const findKind = (ctx: Context, by: (k: ResourceKind) => string) => {
    const kind = KINDS.find((k) => by(k).toLowerCase() === String(ctx.params['id']).toLowerCase());
    if (!kind) throw scimError(404, undefined, 'no such resource type or schema');
    return kind;
  };

  discovery('/ServiceProviderConfig', () => serviceProviderConfig);
  discovery('/ResourceTypes', () => listResponse(KINDS.length, 1, KINDS.map(resourceTypeOf)));
  discovery('/ResourceTypes/:id', (ctx) => resourceTypeOf(findKind(ctx, (k) => k.name)));
  discovery('/Schemas', () => listResponse(KINDS.length, 1, KINDS.map(schemaOf)));
  discovery('/Schemas/:id', (ctx) => schemaOf(findKind(ctx, (k) => k.schema)));

  router.get('/Users', async (ctx) => {
    await authorize(ctx, 'users.read');
    await listUsers(ctx, listRequest(ctx.query, USER_KIND));
  });

  router.post('/Users/.search', async (ctx) => {
    await authorize(ctx, 'users.read');
    await listUsers(ctx, await searchRequest(ctx, USER_KIND));
  });

  router.post('/Users', async (ctx) => {
    const principal = await authorize(ctx, 'users.write');
    const body = await readBody(ctx);
    requireSchema(body, URN.user);
    const input = userInput(body, undefined);
    const passwordHash = input.password === undefined ? undefined : await hashPassword(input.password);
    const fields = Object.fromEntries(Object.entries(input.fields).filter(([, v]) => v !== undefined)) as UserFields;
    // The store claims the username after writing the record and rolls back on a
    // conflict (409 → uniqueness): nothing half-written.
    const user = await users.createUser({ ...fields, groups: [], source: 'admin', ...(passwordHash ? { passwordHash } : {}) } satisfies NewUser);
    await audit.record({
      type: 'user.created',
      outcome: 'success',
      actor: actorOf(principal),
      target: { kind: 'user', id: user.id },
      ip: ctx.ip,
      details: { via: 'scim', username: user.username, disabled: user.disabled },
    });
    const resource = renderUser(user, new Set());
    ctx.set('location', locationOf(USER_KIND, user.id));
    send(ctx, 201, project(resource, USER_KIND, projectionFrom(ctx)), user.version);
  });

  router.get('/Users/:id', async (ctx) => {
    await authorize(ctx, 'users.read');
    const user = await loadUser(ctx.params['id']!);
    if (notModified(ctx, user.version)) {
      ctx.status = 304;
      ctx.set('etag', etagOf(user.version));
      return;
    }
    send(ctx, 200, project(renderUser(user, await knownGroupNames()), USER_KIND, projectionFrom(ctx)), user.version);
  });

  router.put('/Users/:id', async (ctx) => {
    const principal = await authorize(ctx, 'users.write');
    const body = await readBody(ctx);
    requireSchema(body, URN.user);
    // RFC 7644 §3.5.1: read-only attributes in the body (id, meta, groups) are ignored.
    const updated = await updateUserWith(ctx, principal, ctx.params['id']!, (current) => userInput(body, current));
    send(ctx, 200, project(renderUser(updated, await knownGroupNames()), USER_KIND, projectionFrom(ctx)), updated.version);
  });

  router.patch('/Users/:id', async (ctx) => {
    const principal = await authorize(ctx, 'users.write');
    const operations = parsePatch(await readBody(ctx), USER_KIND);
    const updated = await updateUserWith(ctx, principal, ctx.params['id']!, (current, known) => {
      const before = renderUser(current, known);
      const doc = structuredClone(before);
      for (const o of operations) applyOperation(doc, o, USER_KIND);
      assertReadOnlyKept(before, doc, USER_KIND);
      return userInput(doc, current);
    });
    send(ctx, 200, project(renderUser(updated, await knownGroupNames()), USER_KIND, projectionFrom(ctx)), updated.version);
  });

  router.delete('/Users/:id', async (ctx) => {
    const principal = await authorize(ctx, 'users.write');
    const id = ctx.params['id']!;
    const current = await loadUser(id);
    if (current.source === 'config') throw mutability(`this user is ${MANAGED_BY_CONFIG}; remove it there`);
    const expected = expectedVersion(ctx, current.version);
    // A no-op write first: it compares-and-sets the record, so If-Match holds atomically
    // and a declared account is refused on the record actually deleted.
    const claimed = await retryingStale(expected, () =>
      users.updateUser(
        id,
        (fresh) => {
          if (fresh.source === 'config') throw mutability(`this user is ${MANAGED_BY_CONFIG}; remove it there`);
          return {};
        },
        expected,
      ),
    );
    await users.deleteUser(id);
    // Links from upstream identities would otherwise point at nothing.
    for (const identity of claimed.identities ?? []) await store.delIfEquals(keys.fedLink(identity.idp, identity.sub), id);
    const sessionsEnded = await sessions.endAccountSessions(id, 'deleted through SCIM');
    await audit.record({
      type: 'user.deleted',
      outcome: 'success',
      actor: actorOf(principal),
      target: { kind: 'user', id },
      ip: ctx.ip,
      details: { via: 'scim', username: claimed.username, sessionsEnded },
    });
    ctx.status = 204;
    ctx.body = null;
  });

  router.get('/Groups', async (ctx) => {
    await authorize(ctx, 'groups.read');
    await listGroups(ctx, listRequest(ctx.query, GROUP_KIND));
  });

  router.post('/Groups/.search', async (ctx) => {
    await authorize(ctx, 'groups.read');
    await listGroups(ctx, await searchRequest(ctx, GROUP_KIND));
  });

  router.post('/Groups', async (ctx) => {
    const principal = await authorize(ctx, 'groups.write');
    const body = await readBody(ctx);
    requireSchema(body, URN.group);
    const doc = canonical(body, GROUP_ATTRIBUTES);
    const name = doc['displayName'];
    if (typeof name !== 'string' || !GROUP_NAME.test(name)) throw invalidValue('displayName is required: 1–100 letters, digits and . _ : @ - (it becomes the group\'s id)');
    const members = memberIdsOf(doc['members'], 'members');
    const draft: Group = { name, roles: [], source: 'admin', createdAt: '', updatedAt: '', version: 0 };
    await checkMembers(ctx, principal, { group: draft, add: members, remove: [] });
    // 409 → uniqueness when the name is taken (the store creates with SET NX).
    const group = await groups.createGroup({ name, description: undefined, roles: [], source: 'admin' });
    try {
      await writeMembers(ctx, principal, { group, add: members, remove: [] });
    } catch (err) {
      await groups.deleteGroup(name, group.version).catch(() => undefined);
      throw err;
    }
    await audit.record({
      type: 'group.created',
      outcome: 'success',
      actor: actorOf(principal),
      target: { kind: 'group', id: name },
      ip: ctx.ip,
      details: { via: 'scim', members: members.length },
    });
    ctx.set('location', locationOf(GROUP_KIND, name));
    send(ctx, 201, project(renderGroup(group, await membersOf(name)), GROUP_KIND, projectionFrom(ctx)), group.version);
  });

  router.get('/Groups/:id', async (ctx) => {
    await authorize(ctx, 'groups.read');
    const group = await loadGroup(ctx.params['id']!);
    if (notModified(ctx, group.version)) {
      ctx.status = 304;
      ctx.set('etag', etagOf(group.version));
      return;
    }
    const projection = projectionFrom(ctx);
    const members = returns(GROUP_KIND, projection, 'members') ? await membersOf(group.name) : undefined;
    send(ctx, 200, project(renderGroup(group, members), GROUP_KIND, projection), group.version);
  });

  router.put('/Groups/:id', async (ctx) => {
    const principal = await authorize(ctx, 'groups.write');
    const body = await readBody(ctx);
    requireSchema(body, URN.group);
    const doc = canonical(body, GROUP_ATTRIBUTES);
    // Members left out of a PUT are "not asserted" (RFC 7644 §3.5.1): membership stays.
    const members = doc['members'] === undefined ? undefined : memberIdsOf(doc['members'], 'members');
    await updateGroupWith(ctx, principal, ctx.params['id']!, () => ({ displayName: doc['displayName'], members }));
  });

  router.patch('/Groups/:id', async (ctx) => {
    const principal = await authorize(ctx, 'groups.write');
    const operations = parsePatch(await readBody(ctx), GROUP_KIND);
    await updateGroupWith(ctx, principal, ctx.params['id']!, (group, members) => {
      const before = renderGroup(group, members);
      const doc = structuredClone(before);
      for (const o of operations) applyOperation(doc, o, GROUP_KIND);
      assertReadOnlyKept(before, doc, GROUP_KIND);
      return { displayName: doc['displayName'], members: memberIdsOf(doc['members'], 'members') };
    });
  });

  router.delete('/Groups/:id', async (ctx) => {
    const principal = await authorize(ctx, 'groups.write');
    const name = ctx.params['id']!;
    const current = await loadGroup(name);
    assertGroupWritable(current);
    const expected = expectedVersion(ctx, current.version);
    // 1. The group first (compare-and-delete): from here on no member can be added and
    //    no role is granted through it.
    await retryingStale(expected, async () => {
      const fresh = await loadGroup(name);
      assertGroupWritable(fresh);
      await groups.deleteGroup(name, expected ?? fresh.version);
    });
    // 2. Then its memberships, read after the delete so a member added meanwhile is found
    //    too. Members declared in the config file keep the name: the file says so.
    const removed: string[] = [];
    for (const user of await membersOf(name)) {
      if (user.source === 'config') continue;
      await retryingStale(undefined, () => users.updateUser(user.id, (fresh) => ({ groups: fresh.groups.filter((g) => g !== name) }))).then(
        () => removed.push(user.id),
        (err: unknown) => {
          if (!(err instanceof AppError && err.status === 404)) throw err;
        },
      );
    }
    await audit.record({
      type: 'group.deleted',
      outcome: 'success',
      actor: actorOf(principal),
      target: { kind: 'group', id: name },
      ip: ctx.ip,
      details: { via: 'scim', membersRemoved: removed },
    });
    ctx.status = 204;
    ctx.body = null;
  });

  // RFC 7644 §3.7 (bulk) and §3.11 (/Me): not supported → 501.
  router.all('/Bulk', () => {
    throw scimError(501, undefined, 'bulk operations are not supported (see /ServiceProviderConfig)');
  });
  router.all('/Me{/*rest}', () => {
    throw scimError(501, undefined, '/Me is not supported');
  });
  // Anything else below /scim/v2 answers as SCIM too, not with the app's pages.
  const allowed: Array<[RegExp, string]> = [
    [/^\/(Users|Groups)\/?$/i, 'GET, HEAD, POST'],
    [/^\/(Users|Groups)\/\.search\/?$/i, 'POST'],
    [/^\/(Users|Groups)\/[^/]+\/?$/i, 'GET, HEAD, PUT, PATCH, DELETE'],
    [/^\/(ServiceProviderConfig|ResourceTypes|Schemas)(\/[^/]+)?\/?$/i, 'GET, HEAD'],
  ];
  router.all('{/*rest}', (ctx) => {
    const path = ctx.path.slice(SCIM_PATH.length);
    const methods = allowed.find(([pattern]) => pattern.test(path))?.[1];
    if (!methods) throw scimError(404, undefined, 'no such SCIM endpoint');
    // RFC 9110 §15.5.6: a 405 names the methods that are.
    ctx.set('allow', methods);
    throw scimError(405, undefined, `${ctx.method} is not supported here (${methods})`);
  });

  return router;
}
