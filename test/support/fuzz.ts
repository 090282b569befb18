/**
 * A small seeded HTTP fuzzer for Sallyport: a deterministic PRNG, a request model that
 * can carry what well-behaved clients never send (raw bytes, bad percent-encodings,
 * duplicated parameters, bodies past every limit), mutators that change one or two
 * things of an otherwise valid request, a raw HTTP sender (node:http, so paths and
 * headers can hold bytes fetch would refuse or normalise) and the oracle every response
 * is held to.
 */
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';

// ---------------------------------------------------------------------------------
// PRNG

/** mulberry32: tiny, fast, good enough to pick test inputs; the same seed, the same run. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A generator for request `index` of a run: every request can be replayed alone. */
  static forIndex(seed: number, index: number): Rng {
    let h = (seed ^ 0x9e3779b9) >>> 0;
    h = Math.imul(h ^ (index + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    return new Rng((h ^ (h >>> 16)) >>> 0);
  }

  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    let r = this.next() * total;
    for (const [item, w] of entries) {
      r -= w;
      if (r < 0) return item;
    }
    return entries.at(-1)![0];
  }

  /** A string of `n` characters from `alphabet`. */
  string(n: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// ---------------------------------------------------------------------------------
// Request model

/** A parameter; a `raw` value is sent as its latin1 bytes, without percent-encoding. */
export interface Param {
  key: string;
  value: string;
  raw?: boolean;
  rawKey?: boolean;
}

export type Body =
  | { kind: 'form'; params: Param[] }
  | { kind: 'json'; value: unknown }
  | { kind: 'raw'; bytes: Buffer };

export interface FuzzRequest {
  method: string;
  /** Path as sent (already encoded; may hold latin1 bytes). */
  path: string;
  query: Param[];
  headers: Record<string, string>;
  body?: Body;
  /** What the request was built from, for the failure report. */
  target: string;
  mutations: string[];
}

export const p = (key: string, value: string): Param => ({ key, value });

/** Percent-encode like encodeURIComponent, but lone surrogates become their WTF-8 bytes instead of throwing. */
export function percentEncode(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      out += encodeURIComponent(s[i]! + s[i + 1]!);
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += `%${(0xe0 | (c >> 12)).toString(16).toUpperCase()}%${(0x80 | ((c >> 6) & 0x3f)).toString(16).toUpperCase()}%${(0x80 | (c & 0x3f)).toString(16).toUpperCase()}`;
    } else {
      out += encodeURIComponent(s[i]!);
    }
  }
  return out;
}

function encodeParams(params: Param[]): string {
  return params.map((x) => `${x.rawKey ? x.key : percentEncode(x.key)}=${x.raw ? x.value : percentEncode(x.value)}`).join('&');
}

export function requestTarget(req: FuzzRequest): string {
  return req.query.length ? `${req.path}?${encodeParams(req.query)}` : req.path;
}

export function bodyBytes(body: Body | undefined): Buffer | undefined {
  if (!body) return undefined;
  if (body.kind === 'raw') return body.bytes;
  if (body.kind === 'json') return Buffer.from(withDeepValues(JSON.stringify(body.value) ?? ''), 'utf8');
  // Raw parts are latin1 bytes; everything else is ASCII after percent-encoding.
  return Buffer.from(encodeParams(body.params), 'latin1');
}

/**
 * A JSON value nested `depth` levels deep, put into a JSON body by its placeholder
 * (building it as a JavaScript value would overflow the stack of the fuzzer itself).
 */
export const deepPlaceholder = (depth: number, kind: 'array' | 'object') => `\u0001deep:${kind}:${depth}\u0001`;

function withDeepValues(json: string): string {
  return json.replace(/"\\u0001deep:(array|object):(\d+)\\u0001"/g, (_, kind: string, depth: string) => {
    const n = Number(depth);
    return kind === 'array' ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  });
}

/** The request as one can replay it: method, target, headers and the start of the body. */
export function describeRequest(req: FuzzRequest, bodyPrefix = 400): string {
  const target = requestTarget(req);
  const bytes = bodyBytes(req.body);
  const lines = [
    `${req.method} ${target.length > 600 ? `${target.slice(0, 600)}… (${target.length} chars)` : target}`,
    ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v.length > 200 ? `${v.slice(0, 200)}… (${v.length} chars)` : v}`),
  ];
  if (bytes) lines.push('', `${JSON.stringify(bytes.subarray(0, bodyPrefix).toString('latin1'))}${bytes.length > bodyPrefix ? ` … (${bytes.length} bytes)` : ''}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------
// Sending

export interface FuzzResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

/**
 * Send over node:http (latin1 request line and headers: raw bytes go through). Resolves
 * with the response even when the server stopped reading an oversized body; rejects
 * only when no response came at all (or after `timeoutMs`: a hang is a finding).
 */
export async function send(origin: string, req: FuzzRequest, timeoutMs = 15000): Promise<FuzzResponse> {
  try {
    return await sendOnce(origin, req, timeoutMs, agent);
  } catch (err) {
    // A kept-alive connection the server closed after an earlier request (a 431, a body
    // it stopped reading) resets the next request sent on it; that one goes again on a
    // fresh connection. Only a reset there counts.
    const code = (err as { code?: string }).code;
    if ((code === 'ECONNRESET' || code === 'EPIPE') && !headTooLarge(req)) return sendOnce(origin, req, timeoutMs, false);
    throw err;
  }
}

function sendOnce(origin: string, req: FuzzRequest, timeoutMs: number, via: Agent | false): Promise<FuzzResponse> {
  const url = new URL(origin);
  const body = bodyBytes(req.body);
  return new Promise((resolve, reject) => {
    let settled = false;
    const r = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: requestTarget(req),
        headers: { ...req.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: via,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          if (!settled) reject(err);
        });
      },
    );
    r.on('timeout', () => {
      r.destroy(new Error(`no answer within ${timeoutMs} ms`));
    });
    r.on('error', (err) => {
      if (!settled) reject(err);
    });
    // A server that answers (413) before reading the whole body may close the socket
    // while we still write; the response event still arrives.
    r.end(body);
  });
}

/** Node's HTTP server refuses a request head over 16 KiB (431) and may reset the connection while it is still being sent. */
export function headTooLarge(req: FuzzRequest): boolean {
  const head = requestTarget(req).length + Object.entries(req.headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
  return head > 16 * 1024;
}

export function closeAgent(): void {
  agent.destroy();
}

// ---------------------------------------------------------------------------------
// Values

const b64u = (s: string) => Buffer.from(s).toString('base64url');

/** Values a parameter should never make the server fall over for. */
export function weirdValue(rng: Rng, current = ''): { value: string; raw?: boolean; label: string } {
  const choices: Array<() => { value: string; raw?: boolean; label: string }> = [
    () => ({ value: '', label: 'empty' }),
    () => ({ value: ' ', label: 'space' }),
    () => ({ value: 'a\u0000b', label: 'NUL' }),
    () => ({ value: '%00', raw: true, label: '%00' }),
    () => ({ value: '%ZZ', raw: true, label: '%ZZ' }),
    () => ({ value: `${percentEncode(current)}%`, raw: true, label: 'trailing %' }),
    () => ({ value: '%C0%80', raw: true, label: 'overlong NUL' }),
    () => ({ value: '%ED%A0%80', raw: true, label: 'encoded lone surrogate' }),
    () => ({ value: 'x\uD800y', label: 'lone surrogate' }),
    () => ({ value: '%FF%FE%FD', raw: true, label: 'invalid UTF-8 (encoded)' }),
    () => ({ value: '\xC0\xAF\xFF\xFE', raw: true, label: 'invalid UTF-8 (raw bytes)' }),
    () => ({ value: '%E2%82', raw: true, label: 'truncated UTF-8' }),
    () => ({ value: '%u0041', raw: true, label: '%u escape' }),
    () => ({ value: 'ü€😀\u202E\u200B', label: 'unicode' }),
    () => ({ value: rng.pick(['1e309', '-1', '0', '99999999999999999999999999999', 'NaN', 'Infinity', '-0', '0x1F', '1.5', '9007199254740993']), label: 'number' }),
    () => ({ value: rng.pick(['{}', '[]', '{"a":1}', 'null', 'true', '{"__proto__":{"polluted":1}}', '[[[[[[[[[[]]]]]]]]]]']), label: 'JSON text' }),
    () => ({ value: rng.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', 'valueOf']), label: 'prototype name' }),
    () => ({
      value: rng.pick(['javascript:alert(1)', 'http://evil.example/callback', '//evil.example', 'http://127.0.0.1:9/callback/../x', 'data:text/html,x', 'http://[::1', 'http://a b/', 'https://api.test#x', 'urn:x:y']),
      label: 'URL',
    }),
    () => ({ value: rng.pick(['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "' OR '1'='1", '${7*7}{{7*7}}']), label: 'markup' }),
    () => ({ value: 'a\r\nset-cookie: x=y', label: 'CRLF' }),
    () => ({ value: rng.pick(['openid openid', 'openid\tprofile', 'openid  ', 'offline_access', 'sallyport.admin', 'users.write openid', 'read write', 'openid profile email groups offline_access sallyport.admin']), label: 'scope' }),
    () => ({
      value: rng.pick([
        'a.b.c',
        `${b64u('{"alg":"none"}')}.${b64u('{"sub":"x","sid":"y","aud":"web"}')}.`,
        `${b64u('{"alg":"RS256","kid":"../../etc"}')}.${b64u('{}')}.${rng.string(40)}`,
        `${b64u('[]')}.${b64u('null')}.x`,
        `${b64u('{"alg":"HS256"}')}.${b64u('{"exp":1e400}')}.${rng.string(43)}`,
        rng.string(43),
      ]),
      label: 'JWT-like',
    }),
    () => ({ value: `${current}${current}`, label: 'doubled' }),
    () => ({ value: current.slice(0, Math.max(0, current.length - 1 - rng.int(5))), label: 'truncated' }),
    () => ({ value: current.toUpperCase(), label: 'upper-cased' }),
    () => ({ value: `${current}${rng.pick(['x', '=', '&', '#', '/', '..', ' ', '+', ';'])}`, label: 'one more char' }),
    () => {
      const n = rng.pick([300, 2000, 9000, 70_000, 300_000]);
      return { value: rng.string(n), label: `long (${n})` };
    },
  ];
  return rng.pick(choices)();
}

/** A big body: several hundred KB, past every body limit the server has. */
export function hugeBody(rng: Rng): { bytes: Buffer; label: string } {
  const size = rng.pick([70_000, 200_000, 600_000]);
  const kind = rng.int(4);
  if (kind === 0) return { bytes: Buffer.from(`a=${'x'.repeat(size)}`), label: `form ${size}` };
  if (kind === 1) return { bytes: Buffer.from('a=1&'.repeat(Math.floor(size / 4))), label: `${Math.floor(size / 4)} params` };
  if (kind === 2) return { bytes: Buffer.from(JSON.stringify({ a: 'x'.repeat(size) })), label: `JSON ${size}` };
  return { bytes: rng.bytes(size), label: `${size} random bytes` };
}

/** Deeply nested JSON text (depth within the body limits). */
export function deepJson(rng: Rng): string {
  const depth = rng.pick([100, 1000, 5000, 20_000]);
  return rng.chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

// ---------------------------------------------------------------------------------
// Mutators

export interface MutationContext {
  /** Valid values from the run (tokens, ids), to put in the wrong place. */
  valid: string[];
}

type Mutator = (rng: Rng, req: FuzzRequest, ctx: MutationContext) => string | undefined;

const EXTRA_KEYS = [
  'request', 'request_uri', 'claims', 'resource', 'prompt', 'max_age', 'id_token_hint', 'login_hint', 'acr_values', 'response_mode',
  'registration', 'client_assertion', 'client_assertion_type', 'code_verifier', 'dpop_jkt', 'authorization_details', 'ui_locales',
  'claims_locales', 'display', 'nonce', 'scope', 'audience', 'token_type_hint', 'idp_hint', 'kc_idp_hint', 'client_secret', 'client_id',
  'grant_type', 'response_type', 'redirect_uri', 'state', 'code', 'refresh_token', 'token', 'logout_hint', 'post_logout_redirect_uri',
  'xsrf', 'logout', 'csrf', 'username', 'password', 'decision', 'reason', 'ref', 'iss', 'limit', 'cursor', 'filter', 'count',
  'startIndex', 'attributes', 'excludedAttributes', 'sortBy',
];

const SEMI_VALID: Record<string, string[]> = {
  claims: ['{"userinfo":{"email":null}}', '{"id_token":{"acr":{"values":[1,2]}}}', '{"id_token":{"auth_time":{"essential":true}}}', '{"userinfo":[]}', '{"id_token":{"sub":{"value":"x"}}}'],
  resource: ['https://api.test', 'https://api.test/', 'urn:x', 'http://127.0.0.1/admin/v1'],
  prompt: ['none', 'login', 'consent', 'none login', 'select_account', 'create', 'login login'],
  max_age: ['0', '-1', '1e3', '99999999999'],
  response_mode: ['query', 'fragment', 'form_post', 'jwt', 'query.jwt', 'web_message'],
  token_type_hint: ['access_token', 'refresh_token', 'client_credentials', 'id_token', 'x'],
  authorization_details: ['[{"type":"x"}]', '[]', '{}'],
  client_assertion_type: ['urn:ietf:params:oauth:client-assertion-type:jwt-bearer'],
  grant_type: ['authorization_code', 'refresh_token', 'client_credentials', 'password', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'urn:ietf:params:oauth:grant-type:token-exchange', 'implicit'],
  response_type: ['code', 'token', 'id_token', 'code id_token', 'none', 'code token'],
  login_hint: ['alice', '{"origin":"okta"}', '{"origin":', 'someone@okta.example', '{"origin":["okta"]}'],
  idp_hint: ['okta', 'local', 'nope', '../okta'],
  filter: ['userName eq "bob"', 'userName eq', '((((((((((', 'emails[type eq "work"].value co "@"', 'userName sw "a" or name.givenName pr', 'not (active eq true)', 'a'.repeat(3000)],
  count: ['0', '-1', '100000', '1.5', 'x'],
  startIndex: ['0', '-5', '1e20', 'x'],
  limit: ['0', '201', '-1', '1e3', 'x', '50'],
  attributes: ['userName', 'name.givenName,emails', 'meta.version', '__proto__'],
};

function allParams(req: FuzzRequest): Param[][] {
  const lists: Param[][] = [req.query];
  if (req.body?.kind === 'form') lists.push(req.body.params);
  return lists;
}

function pickParamList(rng: Rng, req: FuzzRequest): Param[] {
  const lists = allParams(req).filter((l) => l.length > 0);
  return lists.length ? rng.pick(lists) : req.body?.kind === 'form' ? req.body.params : req.query;
}

/** JSON leaves and containers with their parent, for JSON bodies. */
function jsonSlots(value: unknown, out: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number; value: unknown }> = [], depth = 0) {
  if (depth > 6 || value === null || typeof value !== 'object') return out;
  for (const [k, v] of Object.entries(value)) {
    const key = Array.isArray(value) ? Number(k) : k;
    out.push({ parent: value as Record<string, unknown>, key, value: v });
    jsonSlots(v, out, depth + 1);
  }
  return out;
}

function weirdJson(rng: Rng, current: unknown, ctx: MutationContext): { value: unknown; label: string } {
  const options: Array<() => { value: unknown; label: string }> = [
    () => ({ value: [typeof current === 'string' ? current : 'x'], label: 'array instead' }),
    () => ({ value: { value: current }, label: 'object instead' }),
    () => ({ value: null, label: 'null' }),
    () => ({ value: rng.pick([true, false]), label: 'boolean' }),
    () => ({ value: rng.pick([0, -1, 1.5, 2 ** 53 + 2, 1e308, -1e308, Number.MAX_SAFE_INTEGER]), label: 'number' }),
    () => ({ value: '', label: 'empty string' }),
    () => ({ value: 'x'.repeat(rng.pick([101, 201, 1001, 60_000])), label: 'long string' }),
    () => ({ value: 'a\u0000b', label: 'NUL' }),
    () => ({ value: 'x\uD800', label: 'lone surrogate' }),
    () => ({ value: rng.pick(ctx.valid.length ? ctx.valid : ['x']), label: 'another valid value' }),
    () => ({ value: [[[['deep']]]], label: 'nested arrays' }),
    () => {
      const depth = rng.pick([50, 1000, 10_000, 20_000]);
      const kind = rng.pick(['array', 'object'] as const);
      return { value: deepPlaceholder(depth, kind), label: `${kind} nested ${depth} deep` };
    },
    () => ({ value: Array.from({ length: rng.pick([51, 101, 1000]) }, (_, i) => `v${i}`), label: 'long array' }),
    () => ({ value: Array.isArray(current) ? [...current, ...current] : current, label: 'duplicated items' }),
    () => weirdValue(rng, typeof current === 'string' ? current : ''),
  ];
  return rng.pick(options)();
}

function weirdCookie(rng: Rng, current: string | undefined): { value: string | undefined; label: string } {
  return rng.pick<() => { value: string | undefined; label: string }>([
    () => ({ value: undefined, label: 'no cookies' }),
    () => ({ value: `sp_session=${rng.string(21)}; sp_session.sig=${rng.string(27)}`, label: 'forged session' }),
    () => ({ value: `sp_session=${rng.string(21)}`, label: 'unsigned session' }),
    () => ({ value: `${current ?? ''}; sp_session=garbage; sp_interaction=garbage`, label: 'duplicate cookies' }),
    () => ({ value: '=;;; ;=x; a', label: 'malformed' }),
    () => ({ value: `sp_csrf=${rng.string(43)}; sp_csrf.sig=${rng.string(27)}`, label: 'forged csrf cookie' }),
    () => ({ value: `sp_interaction=${'\xC0\xFF'}; x=%ZZ`, label: 'invalid bytes' }),
    () => ({ value: `big=${'c'.repeat(rng.pick([4000, 12_000, 20_000]))}`, label: 'huge cookie' }),
    () => ({ value: (current ?? '').replace(/=([^;]{4})/, '=X$1'), label: 'tampered value' }),
  ])();
}

function weirdAuthorization(rng: Rng, ctx: MutationContext): { value: string | undefined; label: string } {
  return rng.pick<() => { value: string | undefined; label: string }>([
    () => ({ value: undefined, label: 'none' }),
    () => ({ value: 'Basic !!!not-base64!!!', label: 'Basic bad base64' }),
    () => ({ value: `Basic ${Buffer.from('no-colon').toString('base64')}`, label: 'Basic no colon' }),
    () => ({ value: `Basic ${Buffer.from(':').toString('base64')}`, label: 'Basic empty' }),
    () => ({ value: `Basic ${Buffer.from('web:%ZZ%').toString('base64')}`, label: 'Basic bad percent-encoding' }),
    () => ({ value: `Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}`, label: 'Basic truncated UTF-8 id' }),
    () => ({ value: `Basic ${rng.bytes(30).toString('base64')}`, label: 'Basic random bytes' }),
    () => ({ value: 'Basic', label: 'Basic alone' }),
    () => ({ value: 'Bearer', label: 'Bearer alone' }),
    () => ({ value: `Bearer ${rng.string(43)}`, label: 'Bearer garbage' }),
    () => ({ value: `Bearer ${rng.string(3000)}`, label: 'Bearer long' }),
    () => ({ value: `Bearer ${rng.pick(ctx.valid.length ? ctx.valid : ['x'])} extra`, label: 'Bearer two words' }),
    () => ({ value: `Bearer ${rng.pick(ctx.valid.length ? ctx.valid : ['x'])}`, label: 'Bearer another valid value' }),
    () => ({ value: `DPoP ${rng.string(43)}`, label: 'DPoP' }),
    () => ({ value: 'Digest username="x"', label: 'Digest' }),
    () => ({ value: `Bearer \xC0\xFF${rng.string(10)}`, label: 'Bearer raw bytes' }),
  ])();
}

const CONTENT_TYPES = [
  'text/plain',
  'application/json',
  'application/x-www-form-urlencoded; charset=utf-16',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'multipart/form-data; boundary=xyz',
  'application/x-www-form-urlencoded, application/json',
  ';;;',
  'application/jwt',
  'application/scim+json',
  'application/merge-patch+json',
  '*/*',
  'application/json; charset=nope',
  'x'.repeat(500),
];

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];

export const MUTATORS: ReadonlyArray<readonly [string, Mutator, number]> = [
  [
    'param value',
    (rng, req, ctx) => {
      if (req.body?.kind === 'json' && rng.chance(0.8)) {
        const slots = jsonSlots(req.body.value);
        if (slots.length) {
          const slot = rng.pick(slots);
          const w = weirdJson(rng, slot.value, ctx);
          (slot.parent as Record<string | number, unknown>)[slot.key] = w.value;
          return `JSON ${slot.key}: ${w.label}`;
        }
      }
      const list = pickParamList(rng, req);
      if (!list.length) return undefined;
      const param = rng.pick(list);
      if (rng.chance(0.15) && ctx.valid.length) {
        param.value = rng.pick(ctx.valid);
        param.raw = false;
        return `${param.key}: another valid value`;
      }
      const w = weirdValue(rng, param.value);
      param.value = w.value;
      param.raw = w.raw ?? false;
      return `${param.key}: ${w.label}`;
    },
    10,
  ],
  [
    'drop param',
    (rng, req) => {
      if (req.body?.kind === 'json' && req.body.value && typeof req.body.value === 'object' && rng.chance(0.7)) {
        const keys = Object.keys(req.body.value);
        if (keys.length) {
          const k = rng.pick(keys);
          delete (req.body.value as Record<string, unknown>)[k];
          return `JSON drop ${k}`;
        }
      }
      const list = pickParamList(rng, req);
      if (!list.length) return undefined;
      const [removed] = list.splice(rng.int(list.length), 1);
      return `drop ${removed!.key}`;
    },
    4,
  ],
  [
    'duplicate param',
    (rng, req) => {
      const list = pickParamList(rng, req);
      if (!list.length) return undefined;
      const param = rng.pick(list);
      const copy: Param = rng.chance(0.5) ? { ...param } : { key: param.key, ...weirdValue(rng, param.value) };
      // The same key twice in one place, or once in the query and once in the body.
      const lists = allParams(req);
      const into = rng.chance(0.6) || lists.length === 1 ? list : lists.find((l) => l !== list)!;
      into.splice(rng.int(into.length + 1), 0, copy);
      return `duplicate ${param.key}${into === list ? '' : ' (other place)'}`;
    },
    5,
  ],
  [
    'add param',
    (rng, req, ctx) => {
      const key = rng.pick(EXTRA_KEYS);
      const semi = SEMI_VALID[key];
      const value = semi && rng.chance(0.6) ? { value: rng.pick(semi), label: 'semi-valid' } : rng.chance(0.2) && ctx.valid.length ? { value: rng.pick(ctx.valid), label: 'valid value' } : weirdValue(rng);
      if (req.body?.kind === 'json' && req.body.value && typeof req.body.value === 'object' && !Array.isArray(req.body.value)) {
        (req.body.value as Record<string, unknown>)[key] = value.value;
        return `JSON add ${key}: ${value.label}`;
      }
      const list = rng.chance(0.3) ? req.query : pickParamList(rng, req);
      list.push({ key, value: value.value, raw: 'raw' in value ? value.raw ?? false : false });
      return `add ${key}: ${value.label}`;
    },
    6,
  ],
  [
    'mangle key',
    (rng, req) => {
      if (req.body?.kind === 'json') {
        const text = rng.pick([
          `{"__proto__":{"admin":true},${JSON.stringify(req.body.value).slice(1)}`,
          `${JSON.stringify(req.body.value).slice(0, -1)},"constructor":{"prototype":{"x":1}}}`,
        ]);
        req.body = { kind: 'raw', bytes: Buffer.from(text.replace(/^\{"__proto__":\{"admin":true\},\}$/, '{"__proto__":{"admin":true}}')) };
        return 'JSON prototype keys';
      }
      const list = pickParamList(rng, req);
      if (!list.length) return undefined;
      const param = rng.pick(list);
      const [key, raw] = rng.pick<[string, boolean]>([
        ['__proto__', false],
        [`${param.key}[]`, false],
        [`${param.key}[0]`, false],
        [`${param.key}[a]`, false],
        [param.key.toUpperCase(), false],
        [`${param.key}%ZZ`, true],
        [`%00${param.key}`, true],
        [` ${param.key}`, false],
        ['', false],
      ]);
      const before = param.key;
      param.key = key;
      param.rawKey = raw;
      return `key ${before} → ${JSON.stringify(key)}`;
    },
    3,
  ],
  [
    'content type',
    (rng, req) => {
      if (rng.chance(0.3)) {
        delete req.headers['content-type'];
        return 'no content-type';
      }
      const ct = rng.pick(CONTENT_TYPES);
      req.headers['content-type'] = ct;
      if (!req.body) req.body = { kind: 'raw', bytes: Buffer.from('a=b') };
      return `content-type ${ct.slice(0, 60)}`;
    },
    4,
  ],
  [
    'body',
    (rng, req) => {
      const choice = rng.int(9);
      const wasJson = req.body?.kind === 'json';
      if (choice === 0) {
        const big = hugeBody(rng);
        req.body = { kind: 'raw', bytes: big.bytes };
        return `huge body: ${big.label}`;
      }
      if (choice === 1) {
        req.body = { kind: 'raw', bytes: Buffer.from(deepJson(rng)) };
        return 'deeply nested JSON';
      }
      if (choice === 2) {
        req.body = { kind: 'raw', bytes: Buffer.concat([Buffer.from(wasJson ? '{"a":"' : 'a='), Buffer.from([0xc0, 0x80, 0xff, 0xfe, 0xed, 0xa0, 0x80]), Buffer.from(wasJson ? '"}' : '&b=1')]) };
        return 'invalid UTF-8 bytes';
      }
      if (choice === 3) {
        req.body = { kind: 'raw', bytes: Buffer.alloc(0) };
        return 'empty body';
      }
      if (choice === 4) {
        req.body = { kind: 'raw', bytes: rng.bytes(rng.pick([1, 64, 4096])) };
        return 'random bytes';
      }
      if (choice === 5) {
        req.body = { kind: 'raw', bytes: Buffer.from(rng.pick(['null', '[]', '"x"', '1e999', '{', '{"a":1}{"b":2}', '\uFEFF{}', '{"a":1,"a":2}', 'a=1&&&=&a', '&&&', '=', '%'])) };
        return 'odd body text';
      }
      if (choice === 6 && req.body?.kind === 'form') {
        const json = Object.fromEntries(req.body.params.map((x) => [x.key, x.value]));
        req.body = { kind: 'json', value: json };
        req.headers['content-type'] = 'application/json';
        return 'form sent as JSON';
      }
      if (choice === 7 && req.body?.kind === 'json' && req.body.value && typeof req.body.value === 'object') {
        req.body = { kind: 'form', params: Object.entries(req.body.value).map(([k, v]) => p(k, typeof v === 'string' ? v : JSON.stringify(v))) };
        req.headers['content-type'] = 'application/x-www-form-urlencoded';
        return 'JSON sent as a form';
      }
      req.headers['content-encoding'] = rng.pick(['gzip', 'deflate', 'br', 'identity', 'x-unknown', 'gzip, gzip']);
      return `content-encoding ${req.headers['content-encoding']} on a plain body`;
    },
    4,
  ],
  [
    'method',
    (rng, req) => {
      const method = rng.pick(METHODS.filter((m) => m !== req.method));
      req.method = method;
      return `method ${method}`;
    },
    3,
  ],
  [
    'authorization',
    (rng, req, ctx) => {
      const w = weirdAuthorization(rng, ctx);
      if (w.value === undefined) delete req.headers['authorization'];
      else req.headers['authorization'] = w.value;
      return `authorization: ${w.label}`;
    },
    4,
  ],
  [
    'cookie',
    (rng, req) => {
      const w = weirdCookie(rng, req.headers['cookie']);
      if (w.value === undefined) delete req.headers['cookie'];
      else req.headers['cookie'] = w.value;
      return `cookie: ${w.label}`;
    },
    3,
  ],
  [
    'header',
    (rng, req) => {
      const [name, value] = rng.pick<[string, string]>([
        ['accept', 'text/html'],
        ['accept', 'application/json'],
        ['accept', '*/*'],
        ['accept', 'garbage/;;;q=x'],
        ['accept', 'application/json;q=0, text/html;q=0'],
        ['x-forwarded-proto', rng.pick(['javascript', 'https, http', 'HTTPS', 'ftp', '', 'http:', 'h t t p'])],
        ['x-forwarded-host', rng.pick(['evil.example', '\xC0\xFF', 'a b', '[::1', 'a:99999', '%', 'evil.example, 127.0.0.1', 'user@host', '127.0.0.1/x'])],
        ['host', rng.pick(['evil.example', '127.0.0.1:1', 'a b', '[::1', '\xC0\xFF', 'x:y:z', '%00'])],
        ['x-forwarded-for', 'not-an-ip, ::ffff:1.2.3.4, 999.1.1.1'],
        ['x-request-id', rng.string(200)],
        ['x-request-id', '../../../\xFF'],
        ['if-match', rng.pick(['"x"', 'W/"99999999999999999999"', '*', '"1", W/"2"', '\xFF'])],
        ['if-none-match', rng.pick(['*', '"1"', 'W/"x'])],
        ['origin', rng.pick(['null', 'http://evil.example', 'http://127.0.0.1:9', '\xC0'])],
        ['accept-language', 'x'.repeat(3000)],
        ['dpop', 'a.b.c'],
        ['range', 'bytes=0-1'],
      ]);
      req.headers[name] = value;
      return `${name}: ${value.slice(0, 40)}`;
    },
    3,
  ],
  [
    'path',
    (rng, req) => {
      const segments = req.path.split('/');
      const choice = rng.int(8);
      if (choice === 0) req.path = `${req.path}/`;
      else if (choice === 1) req.path = req.path.replace(/^\//, '//');
      else if (choice === 2) req.path = req.path.toUpperCase();
      else if (choice === 3) req.path = `${req.path}${rng.pick(['/..', '/%2e%2e/admin/v1/clients', ';x=1', '.json', '%00', '%2F', '/\xC0\xAF'])}`;
      // The absolute form of the request target (RFC 9112 §3.2.2), naming another host.
      else if (choice === 4) req.path = `${rng.pick(['http://evil.example', 'http://[::1', 'javascript://x', 'https://127.0.0.1:1'])}${req.path}`;
      else {
        // A path segment (an id, a uid) replaced.
        const i = 1 + rng.int(Math.max(1, segments.length - 1));
        segments[i] = rng.pick(['%ZZ', '%00', '..', '%2e%2e', '%C0%80', '\xC0\x80', 'x'.repeat(rng.pick([300, 5000])), '%F0%9F%98%80', '__proto__', 'constructor', '%2F', '', '*', 'a%20b']);
        req.path = segments.join('/');
      }
      return `path ${req.path.slice(0, 80)}`;
    },
    3,
  ],
];

/** Apply `count` mutations; returns their labels (also kept on the request). */
export function mutate(rng: Rng, req: FuzzRequest, count: number, ctx: MutationContext): void {
  for (let applied = 0, tries = 0; applied < count && tries < 10; tries++) {
    const mutator = rng.weighted(MUTATORS.map(([name, fn, w]) => [[name, fn] as const, w] as const));
    const label = mutator[1](rng, req, ctx);
    if (label) {
      req.mutations.push(label);
      applied++;
    }
  }
}

// ---------------------------------------------------------------------------------
// Oracle

/** Error codes the OAuth/OIDC specs define (RFC 6749, 6750, 7009, 7662, 8707, 9126, OIDC Core, RFC 9449). */
export const OAUTH_ERRORS = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope',
  'invalid_token', 'insufficient_scope', 'unsupported_token_type', 'invalid_target', 'access_denied', 'unsupported_response_type',
  'temporarily_unavailable', 'interaction_required', 'login_required', 'account_selection_required', 'consent_required',
  'invalid_request_uri', 'invalid_request_object', 'request_not_supported', 'request_uri_not_supported', 'registration_not_supported',
  'invalid_dpop_proof', 'use_dpop_nonce', 'invalid_authorization_details', 'unsupported_response_mode', 'invalid_redirect_uri',
]);

/**
 * Marks of internal detail: stack frames, Node internals, source paths, error dumps. A
 * marker the request itself carried is not counted (the server may echo input).
 */
const LEAKS: Array<[string, RegExp]> = [
  ['stack frame', /\bat (?:async |new )?(?:[\w$.<>]+(?: \[as [\w$]+\])? \()?(?:node:[\w/]+|(?:file:\/\/)?[\w./@-]+\.(?:ts|js|mjs|cjs)):\d+:\d+\)?/],
  ['node internals', /node:internal|node_modules\//],
  ['source path', /(?:^|[\s"'(/])(?:src|test)\/[\w/-]+\.ts\b/],
  ['error dump', /\b(?:TypeError|ReferenceError|SyntaxError|RangeError|AssertionError|ZodError)\b|(?:^|\n)\s*Error: |"stack"\s*:/],
  ['internal error code', /\bERR_[A-Z][A-Z_]{3,}\b|\bE(?:CONNREFUSED|CONNRESET|PIPE|TIMEDOUT)\b/],
  ['stringified object', /\[object (?:Object|Promise|Array)\]/],
];

export type Kind = 'oauth-json' | 'oauth-page' | 'page' | 'admin' | 'scim' | 'backchannel' | 'site';

/** The path of a request target, also of one in absolute form (http and https; other schemes name no path we serve). */
export function pathOf(target: string): string {
  return target.replace(/^https?:\/\/[^/]*/i, '').split('?')[0]!;
}

export function kindOf(path: string): Kind {
  const p = pathOf(path);
  const lower = p.toLowerCase();
  if (/^\/token(\/|$)|^\/request\/?$|^\/me\/?$|^\/jwks\/?$|^\/\.well-known\//.test(lower)) return 'oauth-json';
  if (/^\/auth(\/|$)|^\/session\/end/.test(lower)) return 'oauth-page';
  // The admin and SCIM routers match paths case-insensitively (as @koa/router does).
  if (lower.startsWith('/admin/v1')) return 'admin';
  if (lower.startsWith('/scim/v2')) return 'scim';
  if (/^\/federation\/[^/]+\/backchannel-logout\/?$/.test(p)) return 'backchannel';
  if (p.startsWith('/interaction/') || p.startsWith('/federation/')) return 'page';
  return 'site';
}

export interface OracleOptions {
  /** Origins a Location header may point at (ours, the RP's, the upstream IdPs'). */
  allowedOrigins: Set<string>;
  issuer: string;
}

function contentType(res: FuzzResponse): string {
  return String(res.headers['content-type'] ?? '');
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why the origin a request names for itself (absolute target, Host, X-Forwarded-Host,
 * X-Forwarded-Proto — trusted, as behind a proxy) is not an http(s) origin; undefined
 * when it is one.
 */
export function originProblem(req: FuzzRequest): string | undefined {
  const first = (v: string | undefined) => v?.split(',')[0]?.trim();
  const validHost = (host: string) => URL.parse(`http://${host}`)?.host === host.toLowerCase() && !/[\s/@?#]/.test(host);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(req.path)) {
    const url = URL.parse(req.path);
    if (!url) return 'request target in absolute form that is no URL';
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `request target with scheme ${url.protocol}`;
  }
  const host = req.headers['host'];
  if (host !== undefined && !validHost(host)) return `Host ${JSON.stringify(host)}`;
  const fHost = first(req.headers['x-forwarded-host']);
  if (fHost !== undefined && fHost !== '' && !validHost(fHost)) return `X-Forwarded-Host ${JSON.stringify(fHost)}`;
  const proto = first(req.headers['x-forwarded-proto']);
  if (proto !== undefined && proto !== '' && proto !== 'http' && proto !== 'https') return `X-Forwarded-Proto ${JSON.stringify(proto)}`;
  return undefined;
}

/** The http(s) origin a request names for itself (absolute target, forwarded headers, Host). */
export function claimedOrigin(req: FuzzRequest, issuer: string): string | undefined {
  const absolute = /^https?:\/\//i.test(req.path) ? URL.parse(req.path) : null;
  if (absolute) return absolute.origin;
  const first = (v: string | undefined) => v?.split(',')[0]?.trim();
  const proto = first(req.headers['x-forwarded-proto']) || 'http';
  const host = first(req.headers['x-forwarded-host']) || req.headers['host'] || new URL(issuer).host;
  if (proto !== 'http' && proto !== 'https') return undefined;
  return URL.parse(`${proto}://${host}`)?.origin;
}

/** Problems with one response; empty when it is fine. */
export function judge(req: FuzzRequest, res: FuzzResponse, options: OracleOptions): string[] {
  const problems: string[] = [];
  const sent = `${requestTarget(req)}\n${JSON.stringify(req.headers)}\n${bodyBytes(req.body)?.toString('latin1') ?? ''}`;
  const kind = kindOf(req.path);
  const path = pathOf(req.path);
  const ct = contentType(res);

  // 1. Status: never a 5xx, except 503 + Retry-After (store outage), 502/504 from the
  //    upstream-error page (an upstream IdP failed; the page offers a way back), and
  //    501 where SCIM requires it (RFC 7644 §3.7 /Bulk, §3.11 /Me).
  if (res.status >= 500) {
    const upstreamPage = (res.status === 502 || res.status === 504) && /^\/interaction\/[^/]+\/idp\//.test(path) && res.body.includes('id="upstream-error"');
    const scimUnsupported = res.status === 501 && kind === 'scim' && /^\/scim\/v2\/(bulk|me)(\/|$)/i.test(path);
    const outage = res.status === 503 && res.headers['retry-after'] !== undefined;
    if (!upstreamPage && !scimUnsupported && !outage) problems.push(`status ${res.status}`);
    if (outage) problems.push('503 (store outage) where none was expected');
  }

  // 2. No internal detail in the body or headers.
  const exposed = `${res.body}\n${JSON.stringify(res.headers)}`;
  for (const [name, re] of LEAKS) {
    const m = re.exec(exposed);
    if (m && !re.test(sent)) problems.push(`leak (${name}): ${JSON.stringify(exposed.slice(Math.max(0, m.index - 80), m.index + 120))}`);
  }

  // 3. Redirects stay among the parties of the flows (and the origin the request itself
  //    claimed, as a browser behind a proxy would); no error=server_error hidden in one.
  const location = res.headers['location'];
  if (res.status >= 301 && res.status <= 308 && res.status !== 304 && !location) problems.push(`${res.status} without a Location`);
  if (location) {
    const target = URL.parse(location, options.issuer);
    if (!target) problems.push(`unparsable Location ${location.slice(0, 200)}`);
    else {
      const claimed = claimedOrigin(req, options.issuer);
      if (!options.allowedOrigins.has(target.origin) && target.origin !== claimed) problems.push(`redirect to a foreign origin: ${location.slice(0, 200)}`);
      const error = target.searchParams.get('error') ?? new URLSearchParams(target.hash.slice(1)).get('error');
      if (error === 'server_error') problems.push(`redirect with error=server_error: ${location.slice(0, 300)}`);
      else if (error !== null && target.origin !== options.issuer && !OAUTH_ERRORS.has(error)) problems.push(`redirect with a non-spec error code ${error}`);
    }
  }

  // Answers of Node's HTTP parser (431 headers too large, 400 bad request line) never
  // reached the application; they carry no request id and no body to judge.
  if (req.method === 'HEAD' || res.status === 204 || res.status === 304 || res.headers['x-request-id'] === undefined) return problems;
  // OPTIONS that is no CORS preflight is no protocol request: oidc-provider answers its
  // routes with an empty 404, the page routers with an empty 200 and Allow. Only the
  // APIs (admin, SCIM) promise their error format for it.
  if (req.method === 'OPTIONS' && kind !== 'admin' && kind !== 'scim' && res.body.length <= 20) return problems;
  // A request whose own address is not a URL is refused before any router could answer
  // in its format: a 400 in the app's format is all it can get.
  if (res.status === 400 && originProblem(req) !== undefined) return problems;

  // 4. Error bodies in the format of the endpoint.
  const html = /^text\/html/i.test(ct);
  // Redirects carry Koa's one-line "Redirecting to" body; everything else is a whole page.
  if (html && (res.status < 300 || res.status >= 400)) checkHtml(res, sent, problems);
  if (res.status >= 400) {
    if (kind === 'oauth-json' || kind === 'oauth-page') {
      // oidc-provider answers JSON unless the caller prefers HTML, then a page.
      if (/json/i.test(ct)) {
        const body = parseJson(res.body);
        if (!isObject(body) || typeof body['error'] !== 'string') problems.push(`OAuth error without an error code: ${res.body.slice(0, 200)}`);
        else if (!OAUTH_ERRORS.has(body['error'])) problems.push(`non-spec OAuth error code ${body['error']}`);
        else if (body['error_description'] !== undefined && typeof body['error_description'] !== 'string') problems.push('error_description is not a string');
      } else if (!html) {
        problems.push(`OAuth error neither JSON nor a page (${ct || 'no content-type'}): ${res.body.slice(0, 120)}`);
      }
    } else if (kind === 'admin') {
      const body = parseJson(res.body);
      if (!/^application\/json/i.test(ct) || !isObject(body)) problems.push(`admin API error is not JSON (${ct || 'no content-type'}): ${res.body.slice(0, 120)}`);
      else {
        const extra = Object.keys(body).filter((k) => !['error', 'message', 'field', 'scope'].includes(k));
        if (typeof body['error'] !== 'string' || typeof body['message'] !== 'string') problems.push(`admin API error without error/message: ${res.body.slice(0, 200)}`);
        if (extra.length) problems.push(`admin API error with extra keys ${extra.join(', ')}`);
        if (body['field'] !== undefined && typeof body['field'] !== 'string') problems.push('admin API error field is not a string');
      }
    } else if (kind === 'scim') {
      const body = parseJson(res.body);
      if (!/^application\/scim\+json/i.test(ct) || !isObject(body)) problems.push(`SCIM error is not application/scim+json (${ct || 'no content-type'}): ${res.body.slice(0, 120)}`);
      else if (!Array.isArray(body['schemas']) || body['schemas'][0] !== 'urn:ietf:params:scim:api:messages:2.0:Error' || body['status'] !== String(res.status) || typeof body['detail'] !== 'string') {
        problems.push(`SCIM error body malformed: ${res.body.slice(0, 200)}`);
      }
    } else if (kind === 'backchannel') {
      const body = parseJson(res.body);
      if (!isObject(body) || !OAUTH_ERRORS.has(String(body['error']))) problems.push(`back-channel logout error is not an OAuth JSON error: ${res.body.slice(0, 200)}`);
    } else if (kind === 'page' && !html) {
      // Pages answer API callers (Accept: application/json) in the app's JSON error model.
      const body = parseJson(res.body);
      if (!/^application\/json/i.test(ct) || !isObject(body) || typeof body['error'] !== 'string' || typeof body['message'] !== 'string') {
        problems.push(`page error is neither HTML nor the JSON error model (${ct || 'no content-type'}): ${res.body.slice(0, 120)}`);
      }
    }
  }
  return problems;
}

function checkHtml(res: FuzzResponse, sent: string, problems: string[]): void {
  const body = res.body;
  if (!/^<!doctype html>/i.test(body.trimStart()) || !/<\/html>\s*$/i.test(body) || !/<title>[^<]+<\/title>/i.test(body)) {
    problems.push(`HTML page is not a whole document: ${body.slice(0, 160)}`);
  }
  if (res.status >= 400 && /\(server_error\)/.test(body)) problems.push('page reports server_error');
  const said = /<p class="eyebrow">Error (\d{3})<\/p>/.exec(body)?.[1];
  if (said !== undefined && Number(said) !== res.status) problems.push(`error page says ${said} but the status is ${res.status}`);
  const text = body.replace(/<[^>]*>/g, ' ');
  const odd = /\b(?:undefined|NaN)\b/.exec(text);
  if (odd && !sent.includes(odd[0])) problems.push(`HTML page shows undefined/NaN: ${body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
}

// ---------------------------------------------------------------------------------
// SCIM grammar (RFC 7644 §3.4.2.2 filters, §3.5.2 PATCH paths), mostly well-formed

const SCIM_ATTRS = [
  'userName', 'name.givenName', 'name.familyName', 'name.formatted', 'name', 'emails', 'emails.value', 'emails.type', 'emails.primary',
  'active', 'id', 'externalId', 'displayName', 'meta.lastModified', 'meta.created', 'meta.version', 'meta.resourceType', 'meta',
  'groups', 'groups.value', 'groups.display', 'members', 'members.value', 'members.display', 'members.$ref', 'password', 'title',
  'urn:ietf:params:scim:schemas:core:2.0:User:userName', 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName',
  'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department', 'USERNAME', 'x', 'emails.x.y', '$ref', 'verified',
];
const SCIM_MULTI = ['emails', 'members', 'groups', 'name', 'userName', 'phoneNumbers'];
const SCIM_OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'lt', 'ge', 'le', 'EQ', 'Sw', 'xx'];
const SCIM_VALUES = [
  '"bob"', '"fz"', '""', 'true', 'false', 'null', '1', '-1.5e3', '1e400', '"2024-01-01T00:00:00Z"', '"2024-13-45T99:99:99Z"', '"\\u0000"',
  '"x\\"y"', '"\\ud800"', 'bob', '"work"', '"W/\\"1\\""', '"@"', '"%"', '"a\\\\b"', '"\\x"', '"unterminated',
];

export function scimFilter(rng: Rng, depth = 0): string {
  const leaf = () => (rng.chance(0.15) ? `${rng.pick(SCIM_ATTRS)} pr` : `${rng.pick(SCIM_ATTRS)} ${rng.pick(SCIM_OPS)} ${rng.pick(SCIM_VALUES)}`);
  if (depth > 3) return leaf();
  switch (rng.int(9)) {
    case 0:
      return `not (${scimFilter(rng, depth + 1)})`;
    case 1:
      return `(${scimFilter(rng, depth + 1)})`;
    case 2:
      return `${scimFilter(rng, depth + 1)} and ${scimFilter(rng, depth + 1)}`;
    case 3:
      return `${scimFilter(rng, depth + 1)} ${rng.pick(['or', 'OR', 'and', 'nor'])} ${scimFilter(rng, depth + 1)}`;
    case 4:
      return `${rng.pick(SCIM_MULTI)}[${scimFilter(rng, depth + 1)}]${rng.chance(0.3) ? '.value' : ''}`;
    case 5:
      // A well-formed filter with one token dropped, doubled or swapped.
      return mangleTokens(rng, scimFilter(rng, depth + 1));
    case 6:
      return `${'('.repeat(rng.pick([1, 31, 33, 200]))}${leaf()}${')'.repeat(rng.pick([0, 1, 31, 33, 200]))}`;
    default:
      return leaf();
  }
}

function mangleTokens(rng: Rng, text: string): string {
  const tokens = text.split(' ');
  const i = rng.int(tokens.length);
  const choice = rng.int(3);
  if (choice === 0) tokens.splice(i, 1);
  else if (choice === 1) tokens.splice(i, 0, tokens[i]!);
  else tokens[i] = rng.pick(['(', ')', '[', ']', '"', 'and', 'pr', '']);
  return tokens.join(' ');
}

export function scimPatchOperation(rng: Rng, ids: string[]): Record<string, unknown> {
  const id = ids.length ? rng.pick(ids) : 'x';
  const path = rng.pick([
    ...SCIM_ATTRS,
    'emails[type eq "work"].value',
    'emails[type eq "work"]',
    'emails[primary eq true].value',
    `members[value eq "${id}"]`,
    `members[value eq "${id}"].display`,
    'members[display co "x"]',
    'name[givenName eq "x"]',
    'emails[type eq "work"',
    'emails]',
    '',
    'members.value',
    `members[${scimFilter(rng, 2)}]`,
  ]);
  const value = rng.pick<unknown>([
    'x',
    '',
    true,
    false,
    null,
    1,
    [],
    [{ value: id }],
    [{ value: id }, { value: id }],
    [{ value: 'no-such-id' }],
    { givenName: 'G', familyName: 'F' },
    { active: false },
    { 'name.givenName': 'dotted' },
    { emails: [{ value: 'p@example.com', primary: true }] },
    [{ value: 'a@example.com', type: 'work', primary: true }, { value: 'b@example.com', type: 'home', primary: true }],
    { userName: 'fz-renamed' },
    { members: [{ value: id }] },
    { 'urn:ietf:params:scim:schemas:core:2.0:User:active': true },
    [[[]]],
    JSON.parse('{"__proto__":{"polluted":true}}') as unknown,
  ]);
  const op: Record<string, unknown> = { op: rng.pick(['add', 'replace', 'remove', 'Add', 'REPLACE', 'move', '']) };
  if (rng.chance(0.85)) op['path'] = path;
  if (rng.chance(0.85)) op['value'] = value;
  return op;
}
