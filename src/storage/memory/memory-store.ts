/**
 * In-memory backend: the zero-setup default for a single process (development, demos,
 * tests). It mirrors Redis semantics exactly (including WRONGTYPE, TTL rounding and the
 * moment a key counts as expired) so that code written against it behaves the same once
 * deployed on Redis; the shared conformance suite holds both backends to that.
 *
 * Every method runs synchronously inside its async wrapper, so each operation is atomic
 * with respect to every other one, like a single Redis command or script.
 */
import {
  StoreUnavailableError,
  WrongTypeError,
  type HashSetIfAbsentResult,
  type KeyValueStore,
  type SetOptions,
} from '../contract.ts';

export interface MemoryStoreOptions {
  /** Clock in milliseconds since the epoch. Injectable so tests can move time. */
  now?: () => number;
  /** How often expired keys are swept out of memory (lazy expiry covers correctness). */
  sweepIntervalMs?: number;
}

type Entry =
  | { kind: 'string'; value: string; expiresAt: number | null }
  | { kind: 'hash'; value: Map<string, string>; expiresAt: number | null }
  | { kind: 'set'; value: Set<string>; expiresAt: number | null }
  | { kind: 'list'; value: string[]; expiresAt: number | null };

const DEFAULT_SWEEP_INTERVAL_MS = 30_000;

// Redis's exact wording, so a log line reads the same whichever backend produced it.
const WRONGTYPE_MESSAGE = 'WRONGTYPE Operation against a key holding the wrong kind of value';

// Redis INCR accepts exactly the canonical decimal form of a signed 64-bit integer
// (no sign on zero, no leading zeros, no spaces), so the memory store must too.
const CANONICAL_INTEGER = /^(?:0|-?[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function createMemoryStore(options: MemoryStoreOptions = {}): KeyValueStore {
  const now = options.now ?? Date.now;
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  if (!(sweepIntervalMs > 0)) throw new RangeError(`sweepIntervalMs must be > 0, got ${sweepIntervalMs}`);

  const entries = new Map<string, Entry>();
  let closed = false;

  // Redis treats a key as expired only once the clock has passed its deadline
  // (`now > when` in keyIsExpired), so a key is still readable at exactly its deadline.
  const isExpired = (entry: Entry, at: number): boolean => entry.expiresAt !== null && at > entry.expiresAt;

  const sweep = (): void => {
    const at = now();
    for (const [key, entry] of entries) if (isExpired(entry, at)) entries.delete(key);
  };
  // The sweep only reclaims memory; unref() so an idle store never keeps the process alive.
  const sweeper = setInterval(sweep, sweepIntervalMs);
  sweeper.unref();

  /** Live entry at `key` (expired ones are dropped on access, like Redis lazy expiry). */
  const lookup = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (isExpired(entry, now())) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };

  function lookupAs<K extends Entry['kind']>(key: string, kind: K): Extract<Entry, { kind: K }> | undefined {
    const entry = lookup(key);
    if (entry === undefined) return undefined;
    if (entry.kind !== kind) throw new WrongTypeError(WRONGTYPE_MESSAGE);
    return entry as Extract<Entry, { kind: K }>;
  }

  const deadline = (ttl: number | undefined): number | null => (ttl === undefined ? null : now() + ttl * 1000);

  /**
   * Wrap an operation: reject once closed (as a closed Redis connection does), and turn
   * synchronous throws into rejections so callers see the same shape as with Redis.
   */
  const op =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    async (...args: A): Promise<Awaited<R>> => {
      if (closed) throw new StoreUnavailableError('memory store is closed');
      return await fn(...args);
    };

  const store: KeyValueStore = {
    kind: 'memory',

    get: op((key: string): string | null => lookupAs(key, 'string')?.value ?? null),

    set: op((key: string, value: string, setOptions?: SetOptions): boolean => {
      checkTtl(setOptions?.ttl);
      // SET NX only asks whether the key exists, whatever its type.
      if (setOptions?.ifAbsent && lookup(key) !== undefined) return false;
      // Plain SET replaces a key of any type and its TTL.
      entries.set(key, { kind: 'string', value, expiresAt: deadline(setOptions?.ttl) });
      return true;
    }),

    getDel: op((key: string): string | null => {
      const entry = lookupAs(key, 'string');
      if (entry === undefined) return null;
      entries.delete(key);
      return entry.value;
    }),

    setIfEquals: op((key: string, expected: string | null, value: string, casOptions?: { ttl?: number }): boolean => {
      checkTtl(casOptions?.ttl);
      // Read as a string first, so a hash or set at `key` is WRONGTYPE even when `expected` is null.
      const current = lookupAs(key, 'string')?.value ?? null;
      if (current !== expected) return false;
      entries.set(key, { kind: 'string', value, expiresAt: deadline(casOptions?.ttl) });
      return true;
    }),

    delIfEquals: op((key: string, expected: string): boolean => {
      const entry = lookupAs(key, 'string');
      if (entry === undefined || entry.value !== expected) return false;
      entries.delete(key);
      return true;
    }),

    incr: op((key: string, ttl: number): number => {
      checkTtl(ttl);
      const entry = lookupAs(key, 'string');
      if (entry === undefined) {
        entries.set(key, { kind: 'string', value: '1', expiresAt: deadline(ttl) });
        return 1;
      }
      if (!CANONICAL_INTEGER.test(entry.value)) throw new RangeError(NOT_AN_INTEGER);
      const next = BigInt(entry.value) + 1n;
      if (next < INT64_MIN || next > INT64_MAX) throw new RangeError(NOT_AN_INTEGER);
      // Fixed window: the expiry set at creation is kept.
      entry.value = next.toString();
      return Number(next);
    }),

    del: op((key: string): void => {
      entries.delete(key);
    }),

    ttl: op((key: string): number => {
      const entry = lookup(key);
      if (entry === undefined) return -2;
      if (entry.expiresAt === null) return -1;
      // Redis rounds the remaining milliseconds to the nearest second ((ms + 500) / 1000 in C).
      return Math.floor((Math.max(0, entry.expiresAt - now()) + 500) / 1000);
    }),

    expire: op((key: string, ttl: number): boolean => {
      checkTtl(ttl);
      const entry = lookup(key);
      if (entry === undefined) return false;
      entry.expiresAt = deadline(ttl);
      return true;
    }),

    hGetAll: op((key: string): Record<string, string> | null => {
      const entry = lookupAs(key, 'hash');
      // Object.fromEntries defines own properties, so a field named "__proto__" stays a field.
      return entry === undefined ? null : Object.fromEntries(entry.value);
    }),

    hReplace: op((key: string, fields: Record<string, string>, hashOptions?: { ttl?: number }): void => {
      checkTtl(hashOptions?.ttl);
      // DEL then HSET on Redis: any previous value (of any type) and its TTL are gone.
      const value = new Map(Object.entries(fields));
      // Redis has no empty hashes: replacing with no fields leaves no key at all.
      if (value.size === 0) entries.delete(key);
      else entries.set(key, { kind: 'hash', value, expiresAt: deadline(hashOptions?.ttl) });
    }),

    hSetIfAbsent: op((key: string, field: string, value: string): HashSetIfAbsentResult => {
      const entry = lookupAs(key, 'hash');
      if (entry === undefined) return 'missing';
      if (entry.value.has(field)) return 'exists';
      entry.value.set(field, value);
      return 'set';
    }),

    sAdd: op((key: string, member: string, setOptions?: { ttl?: number }): void => {
      const ttl = setOptions?.ttl;
      checkTtl(ttl);
      const entry = lookupAs(key, 'set');
      if (entry === undefined) {
        entries.set(key, { kind: 'set', value: new Set([member]), expiresAt: deadline(ttl) });
        return;
      }
      entry.value.add(member);
      if (ttl === undefined) {
        entry.expiresAt = null;
      } else if (entry.expiresAt !== null) {
        // Extend so the set lives at least `ttl` more seconds; never shorten; a
        // persistent set (expiresAt null) stays persistent.
        const wanted = now() + ttl * 1000;
        if (entry.expiresAt < wanted) entry.expiresAt = wanted;
      }
    }),

    sRem: op((key: string, member: string): void => {
      const entry = lookupAs(key, 'set');
      if (entry === undefined) return;
      entry.value.delete(member);
      if (entry.value.size === 0) entries.delete(key);
    }),

    sMembers: op((key: string): string[] => [...(lookupAs(key, 'set')?.value ?? [])]),

    lPushCapped: op((key: string, value: string, listOptions: { maxLength: number; ttl?: number }): void => {
      checkTtl(listOptions.ttl);
      checkMaxLength(listOptions.maxLength);
      const entry = lookupAs(key, 'list');
      const list = entry?.value ?? [];
      list.unshift(value);
      if (list.length > listOptions.maxLength) list.length = listOptions.maxLength;
      entries.set(key, { kind: 'list', value: list, expiresAt: deadline(listOptions.ttl) });
    }),

    lRange: op((key: string, start: number, stop: number): string[] => {
      const list = lookupAs(key, 'list')?.value ?? [];
      // Redis LRANGE index rules: negatives count from the end, stop is inclusive.
      const from = start < 0 ? Math.max(0, list.length + start) : start;
      const to = stop < 0 ? list.length + stop : Math.min(stop, list.length - 1);
      return from > to ? [] : list.slice(from, to + 1);
    }),

    ping: op((): void => {}),

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      entries.clear();
    },
  };
  return store;
}

const NOT_AN_INTEGER = 'value is not an integer or the increment would overflow';

/** Upper bound for a ttl (about 68 years), far inside what both Redis and JS milliseconds represent exactly. */
const MAX_TTL_SECONDS = 2 ** 31 - 1;

/**
 * TTLs are whole seconds > 0 (contract). Both backends reject anything else up front with
 * the same RangeError, rather than inheriting Redis's quirks (EXPIRE 0 deletes the key,
 * SET EX 0 is an error), and a ttl of 0 is never read as "no expiry", which would
 * silently make a key permanent. (Duplicated in redis-store.ts: backends share only the contract.)
 */
function checkMaxLength(maxLength: number): void {
  if (!(Number.isInteger(maxLength) && maxLength > 0 && maxLength <= 1_000_000)) {
    throw new RangeError(`maxLength must be a whole number in 1..1000000, got ${String(maxLength)}`);
  }
}

function checkTtl(ttl: number | undefined): void {
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0 && ttl <= MAX_TTL_SECONDS)) {
    throw new RangeError(`ttl must be a whole number of seconds in 1..${MAX_TTL_SECONDS}, got ${String(ttl)}`);
  }
}
