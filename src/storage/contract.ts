/**
 * Storage contract.
 *
 * Sallyport keeps all shared state (provider models, users, clients, signing keys,
 * flow transactions, counters) behind this one small key/value contract. Two backends
 * implement it with identical semantics: `memory/` (zero-setup default, one process)
 * and `redis/` (production, many processes). The shared conformance suite in
 * `test/conformance/` is the definition of those semantics; both backends must pass it.
 *
 * Every operation touches exactly one key, so the Redis backend works unchanged on
 * Redis Cluster (no CROSSSLOT). Multi-key consistency is achieved by ordering writes
 * (indexes before the records they index), never by multi-key transactions.
 *
 * TTLs are whole seconds. A key written without a TTL never expires; callers are
 * expected to give every key a TTL except long-lived configuration records.
 */

export interface SetOptions {
  /** Expire the key after this many seconds (> 0). Without it the key does not expire. */
  ttl?: number;
  /** Only write when the key does not exist (SET NX). */
  ifAbsent?: boolean;
}

/** Result of {@link KeyValueStore.hSetIfAbsent}. */
export type HashSetIfAbsentResult = 'set' | 'exists' | 'missing';

export interface KeyValueStore {
  /** Backend name, for logs and readiness reports. */
  readonly kind: 'memory' | 'redis';

  // ---- strings -------------------------------------------------------------
  /** The string at `key`, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  /**
   * Write a string. Returns false only when `ifAbsent` was given and the key existed
   * (nothing written); true otherwise. Overwriting replaces the previous TTL.
   */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Atomically read and delete (Redis GETDEL): a value can be taken exactly once. */
  getDel(key: string): Promise<string | null>;
  /**
   * Compare-and-set: write `value` only when the current string equals `expected`
   * (`null` = the key must be absent). Returns whether it wrote. Basis of optimistic
   * concurrency for versioned records.
   */
  setIfEquals(key: string, expected: string | null, value: string, options?: { ttl?: number }): Promise<boolean>;
  /** Delete `key` only when its string value equals `expected`. Returns whether it deleted. */
  delIfEquals(key: string, expected: string): Promise<boolean>;
  /**
   * Increment an integer counter and return the new value. `ttl` is applied when the
   * increment creates the key (fixed window); later increments keep the expiry.
   */
  incr(key: string, ttl: number): Promise<number>;

  // ---- any type ------------------------------------------------------------
  /** Delete a key of any type. Deleting a missing key is not an error. */
  del(key: string): Promise<void>;
  /** Seconds until `key` expires: -1 when it has no expiry, -2 when it is absent. */
  ttl(key: string): Promise<number>;
  /** Set the expiry of an existing key. Returns false when the key is absent. */
  expire(key: string, ttl: number): Promise<boolean>;

  // ---- hashes --------------------------------------------------------------
  /** All fields of the hash at `key`, or null when absent. */
  hGetAll(key: string): Promise<Record<string, string> | null>;
  /** Atomically replace the whole hash at `key` with `fields` (and set or clear its TTL). */
  hReplace(key: string, fields: Record<string, string>, options?: { ttl?: number }): Promise<void>;
  /**
   * Set one field only if the hash exists and the field does not (Redis HSETNX guarded
   * by EXISTS). Never creates a hash, so it can never leave a key without a TTL.
   */
  hSetIfAbsent(key: string, field: string, value: string): Promise<HashSetIfAbsentResult>;

  // ---- sets (indexes) ------------------------------------------------------
  /**
   * Add `member` to the set at `key`. With `ttl`, the set's expiry is extended so that
   * it lives at least `ttl` more seconds (never shortened; a set that exists without
   * expiry keeps none). Without `ttl` the set is made persistent.
   */
  sAdd(key: string, member: string, options?: { ttl?: number }): Promise<void>;
  /** Remove `member`; an emptied set disappears. */
  sRem(key: string, member: string): Promise<void>;
  /** Members of the set (any order); empty when absent. */
  sMembers(key: string): Promise<string[]>;

  // ---- capped lists (logs) -------------------------------------------------
  /**
   * Prepend `value` to the list at `key`, keep only the `maxLength` newest items, and
   * set the list's TTL (or make it persistent without one), atomically.
   */
  lPushCapped(key: string, value: string, options: { maxLength: number; ttl?: number }): Promise<void>;
  /** Items `start`..`stop` inclusive, 0 = newest, negative counts from the oldest; empty when absent. */
  lRange(key: string, start: number, stop: number): Promise<string[]>;

  // ---- lifecycle -----------------------------------------------------------
  /** Resolves when the backend is reachable; rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  /** Release connections and timers. The store must not be used afterwards. */
  close(): Promise<void>;
}

/**
 * The store could not be reached or answered with an infrastructure error.
 * Request handlers turn it into 503 + Retry-After; it never means "not found".
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An operation was applied to a key holding another type (Redis WRONGTYPE). */
export class WrongTypeError extends Error {
  override readonly name = 'WrongTypeError';
}

/** A store outage, also when it arrives wrapped (as the provider adapter's 503 error). */
export function isStoreOutage(err: unknown): boolean {
  return err instanceof StoreUnavailableError || (err instanceof Error && err.cause instanceof StoreUnavailableError);
}
