/**
 * Redis backend (production; many processes share one Redis). The only module that
 * imports ioredis.
 *
 * Every method is one single-key command or one single-key Lua script, so it is atomic
 * on its own and works unchanged on Redis Cluster (no CROSSSLOT): never MULTI across
 * keys, never KEYS/SCAN/FLUSH*. Requires Redis >= 6.2 (GETDEL).
 *
 * Failure model: every command has a bounded timeout and at most one retry, so when
 * Redis is down a request fails fast with StoreUnavailableError (→ 503) instead of
 * hanging in ioredis's offline queue.
 */
import { Redis } from 'ioredis';
import {
  StoreUnavailableError,
  WrongTypeError,
  type HashSetIfAbsentResult,
  type KeyValueStore,
  type SetOptions,
} from '../contract.ts';

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL (credentials and db number included). */
  url: string;
  /** How long establishing a connection may take. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long any one command may take before it fails as unavailable. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** TCP keep-alive on the connection (detects dead peers behind NATs/LBs). Default true. */
  keepAlive?: boolean;
}

export type RedisStore = KeyValueStore & { readonly redis: Redis };

// Scripts (all numberOfKeys: 1), registered as methods on the client, hence the
// "sallyport" prefix: it can't shadow a built-in command method such as incr.
// Arguments are strings on the wire; a ttl of '0' means "none" (callers' ttls are
// validated to be >= 1 before they get here).
const SCRIPTS = {
  // CAS. ARGV: mode ('absent' | 'equals'), expected, value, ttl.
  // GET first so that a non-string key raises WRONGTYPE even in 'absent' mode.
  sallyportSetIfEquals: `
    local current = redis.call('GET', KEYS[1])
    if ARGV[1] == 'absent' then
      if current then return 0 end
    elseif current ~= ARGV[2] then
      return 0
    end
    local ttl = tonumber(ARGV[4])
    if ttl > 0 then redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl) else redis.call('SET', KEYS[1], ARGV[3]) end
    return 1`,
  // ARGV: expected.
  sallyportDelIfEquals: `
    if redis.call('GET', KEYS[1]) == ARGV[1] then
      redis.call('DEL', KEYS[1])
      return 1
    end
    return 0`,
  // Fixed-window counter. ARGV: ttl. The TTL is set only when this INCR created the key
  // (checked with EXISTS, not "value == 1", since a key may already hold "0").
  sallyportIncr: `
    local existed = redis.call('EXISTS', KEYS[1])
    local value = redis.call('INCR', KEYS[1])
    if existed == 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
    return value`,
  // Whole-hash replacement. ARGV: ttl, then field, value pairs. DEL drops the old
  // fields and TTL (so no PERSIST is needed); HSET is chunked because Lua's unpack()
  // has a bounded stack. With no fields the key simply stays deleted (no empty hashes).
  sallyportHReplace: `
    redis.call('DEL', KEYS[1])
    local n = #ARGV
    if n < 3 then return 0 end
    local i = 2
    while i <= n do
      local last = math.min(i + 199, n)
      redis.call('HSET', KEYS[1], unpack(ARGV, i, last))
      i = last + 1
    end
    local ttl = tonumber(ARGV[1])
    if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
    return 1`,
  // HSETNX guarded by EXISTS, so it never creates a hash (which would have no TTL).
  // ARGV: field, value.
  sallyportHSetIfAbsent: `
    if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
    if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return 'set' end
    return 'exists'`,
  // Index add. ARGV: member, ttl. A new set gets the ttl; an existing set with an
  // expiry is extended to live at least ttl more seconds (compared in ms, never
  // shortened); an existing persistent set stays persistent; ttl '0' makes it persistent.
  sallyportSAdd: `
    local existed = redis.call('EXISTS', KEYS[1])
    redis.call('SADD', KEYS[1], ARGV[1])
    local ttl = tonumber(ARGV[2])
    if ttl == 0 then
      redis.call('PERSIST', KEYS[1])
    elseif existed == 0 then
      redis.call('EXPIRE', KEYS[1], ttl)
    else
      local pttl = redis.call('PTTL', KEYS[1])
      if pttl >= 0 and pttl < ttl * 1000 then redis.call('EXPIRE', KEYS[1], ttl) end
    end
    return 1`,
  // Capped log append. ARGV: value, maxLength, ttl ('0' = persistent).
  sallyportLPushCapped: `
    redis.call('LPUSH', KEYS[1], ARGV[1])
    redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
    local ttl = tonumber(ARGV[3])
    if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
    return 1`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptRunner = (key: string, ...args: string[]) => Promise<unknown>;

// Reply-error codes that mean "Redis can't serve us right now" (memory, persistence,
// replication, loading, cluster state, auth/ACL misconfiguration), not "bad request".
const UNAVAILABLE_REPLY_CODES = new Set([
  'OOM', 'READONLY', 'LOADING', 'MISCONF', 'BUSY', 'NOREPLICAS', 'MASTERDOWN', 'CLUSTERDOWN',
  'TRYAGAIN', 'MOVED', 'ASK', 'NOAUTH', 'WRONGPASS', 'NOPERM',
]);

export function createRedisStore(options: RedisStoreOptions): RedisStore {
  const redis = new Redis(options.url, {
    // Batches concurrent commands into one round trip (one pipeline per node on a cluster).
    enableAutoPipelining: true,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    // Commands queued while disconnected fail after one reconnect attempt instead of
    // piling up (ioredis default: 20), so outages surface as fast 503s.
    maxRetriesPerRequest: 1,
    connectionName: 'sallyport',
    // ioredis enables keep-alive only when this option is a number and substitutes its
    // default (30 s) for undefined, so null is the one value that turns it off.
    ...(options.keepAlive === false ? { keepAlive: null as unknown as number } : {}),
  });

  // Remember the latest connection error to explain failures; with a listener attached
  // ioredis also stops printing "Unhandled error event" on every reconnect attempt.
  let lastConnectionError: Error | undefined;
  redis.on('error', (error: Error) => {
    lastConnectionError = error;
  });
  redis.on('ready', () => {
    lastConnectionError = undefined;
  });

  for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: 1, lua });
  // defineCommand adds methods that ioredis's static types can't know about.
  const scripts = redis as unknown as Record<ScriptName, ScriptRunner>;

  let closed = false;

  /**
   * Run one Redis call, translating ioredis failures into the contract's errors. `call`
   * validates its arguments before touching ioredis; those synchronous throws (RangeError)
   * propagate untranslated, exactly as the memory store reports them.
   */
  const run = async <T>(call: () => Promise<T>): Promise<T> => {
    if (closed) throw new StoreUnavailableError('Redis store is closed');
    const pending = call();
    try {
      return await pending;
    } catch (error) {
      throw translateError(error, lastConnectionError);
    }
  };

  const store: RedisStore = {
    kind: 'redis',
    redis,

    get: (key) => run(() => redis.get(key)),

    set: async (key, value, setOptions?: SetOptions) => {
      const reply = await run(() => {
        const ttl = ttlArg(setOptions?.ttl);
        if (setOptions?.ifAbsent) {
          return ttl > 0 ? redis.set(key, value, 'EX', ttl, 'NX') : redis.set(key, value, 'NX');
        }
        return ttl > 0 ? redis.set(key, value, 'EX', ttl) : redis.set(key, value);
      });
      return reply === 'OK';
    },

    getDel: (key) => run(() => redis.getdel(key)),

    setIfEquals: async (key, expected, value, casOptions) => {
      const reply = await run(() => {
        const ttl = ttlArg(casOptions?.ttl);
        return scripts.sallyportSetIfEquals(key, expected === null ? 'absent' : 'equals', expected ?? '', value, String(ttl));
      });
      return Number(reply) === 1;
    },

    delIfEquals: async (key, expected) =>
      Number(await run(() => scripts.sallyportDelIfEquals(key, expected))) === 1,

    incr: async (key, ttl) => Number(await run(() => scripts.sallyportIncr(key, String(ttlArg(ttl))))),

    del: async (key) => {
      await run(() => redis.del(key));
    },

    ttl: (key) => run(() => redis.ttl(key)),

    expire: async (key, ttl) => (await run(() => redis.expire(key, ttlArg(ttl)))) === 1,

    hGetAll: async (key) => {
      const fields = await run(() => redis.hgetall(key));
      // Redis has no empty hashes: an empty reply means the key is absent.
      return Object.keys(fields).length === 0 ? null : fields;
    },

    hReplace: async (key, fields, hashOptions) => {
      await run(() => scripts.sallyportHReplace(key, String(ttlArg(hashOptions?.ttl)), ...Object.entries(fields).flat()));
    },

    hSetIfAbsent: async (key, field, value) => {
      const reply = await run(() => scripts.sallyportHSetIfAbsent(key, field, value));
      if (reply === 'set' || reply === 'exists' || reply === 'missing') return reply satisfies HashSetIfAbsentResult;
      throw new StoreUnavailableError(`unexpected reply from Redis hSetIfAbsent script: ${String(reply)}`);
    },

    sAdd: async (key, member, setOptions) => {
      await run(() => scripts.sallyportSAdd(key, member, String(ttlArg(setOptions?.ttl))));
    },

    sRem: async (key, member) => {
      await run(() => redis.srem(key, member));
    },

    sMembers: (key) => run(() => redis.smembers(key)),

    lPushCapped: async (key, value, listOptions) => {
      const { maxLength } = listOptions;
      if (!(Number.isInteger(maxLength) && maxLength > 0 && maxLength <= 1_000_000)) {
        throw new RangeError(`maxLength must be a whole number in 1..1000000, got ${String(maxLength)}`);
      }
      await run(() => scripts.sallyportLPushCapped(key, value, String(maxLength), String(ttlArg(listOptions.ttl))));
    },

    lRange: (key, start, stop) => run(() => redis.lrange(key, start, stop)),

    ping: async () => {
      await run(() => redis.ping());
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // QUIT lets pending replies arrive; when the server is unreachable it could only
      // wait for the command timeout, so drop the socket straight away instead.
      if (redis.status === 'ready') {
        try {
          await redis.quit();
          return;
        } catch {
          // Fall through: the connection is unusable anyway.
        }
      }
      redis.disconnect();
    },
  };
  return store;
}

/** Map an ioredis failure to the contract's error model. */
function translateError(error: unknown, lastConnectionError: Error | undefined): Error {
  if (!(error instanceof Error)) return new StoreUnavailableError(`Redis failed: ${String(error)}`, { cause: error });
  if (error.name === 'ReplyError') {
    // Inside a script Redis prefixes the message (e.g. "ERR Error running script ...:
    // WRONGTYPE ..." on 6.x), so look for the code anywhere rather than at the start.
    if (error.message.includes('WRONGTYPE')) return new WrongTypeError(error.message, { cause: error });
    if (/not an integer or out of range|would overflow/.test(error.message)) {
      return new RangeError('value is not an integer or the increment would overflow', { cause: error });
    }
    const code = error.message.split(' ', 1)[0] ?? '';
    if (UNAVAILABLE_REPLY_CODES.has(code)) {
      return new StoreUnavailableError(`Redis refused the command: ${error.message}`, { cause: error });
    }
    // Any other reply error means we sent something Redis rejects: a bug, not an outage.
    return error;
  }
  // Everything else is transport: refused/reset connection, command timeout, retries
  // exhausted, connection closed. "Retries exhausted" says nothing useful on its own, so
  // name the connection error behind it.
  const reason =
    error.name === 'MaxRetriesPerRequestError' && lastConnectionError ? lastConnectionError.message : error.message;
  return new StoreUnavailableError(`Redis unavailable: ${reason}`, { cause: error });
}

/** Upper bound for a ttl (about 68 years), far inside what both Redis and JS milliseconds represent exactly. */
const MAX_TTL_SECONDS = 2 ** 31 - 1;

/**
 * Validate a ttl and encode it for the wire (0 = none). TTLs are whole seconds > 0
 * (contract); both backends reject anything else with the same RangeError rather than
 * inheriting Redis's quirks (EXPIRE 0 deletes the key), and 0 is never read as "no
 * expiry", which would silently make a key permanent. (Duplicated in memory-store.ts:
 * backends share only the contract.)
 */
function ttlArg(ttl: number | undefined): number {
  if (ttl === undefined) return 0;
  if (!(Number.isInteger(ttl) && ttl > 0 && ttl <= MAX_TTL_SECONDS)) {
    throw new RangeError(`ttl must be a whole number of seconds in 1..${MAX_TTL_SECONDS}, got ${String(ttl)}`);
  }
  return ttl;
}
