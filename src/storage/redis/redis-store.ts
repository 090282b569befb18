/**
 * Redis backend (production; many processes share one Redis). The only module that
 * imports ioredis.
 *
 * Three topologies, one store: a standalone server (URL), a master found through Redis
 * Sentinel, or a Redis Cluster. Every method is one single-key command or one single-key
 * Lua script, so it is atomic on its own and needs no change on a cluster (no CROSSSLOT:
 * each command goes to the master owning its one key): never MULTI across keys, never
 * KEYS/SCAN/FLUSH*. Requires Redis >= 6.2 (GETDEL).
 *
 * Failure model, the same on every topology: every command has a bounded timeout and at
 * most one retry, so when Redis is down a request fails fast with StoreUnavailableError
 * (→ 503) instead of hanging in a client-side queue.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import {
  StoreUnavailableError,
  WrongTypeError,
  type HashSetIfAbsentResult,
  type KeyValueStore,
  type SetOptions,
} from '../contract.ts';

/** One Redis server (a sentinel or a cluster node). */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/** Where the data lives and how to authenticate; see the storage section of the config schema. */
export type RedisConnectionOptions =
  | {
      topology?: 'standalone';
      /** redis:// or rediss:// URL (credentials and db number included). */
      url: string;
    }
  | {
      topology: 'sentinel';
      /** Sentinels to ask for the current master (any one answering is enough). */
      sentinels: readonly RedisNodeAddress[];
      /** The name the sentinels monitor the master under. */
      masterName: string;
      /** Database number on the master. Default 0. */
      db?: number;
      /** ACL user and password of the master (and its replicas). */
      username?: string;
      password?: string;
      /** ACL user and password of the sentinels themselves. */
      sentinelUsername?: string;
      sentinelPassword?: string;
      /** TLS to the sentinels and the master. Default false. */
      tls?: boolean;
    }
  | {
      topology: 'cluster';
      /** Some of the cluster's nodes; the rest are discovered (CLUSTER SLOTS). */
      nodes: readonly RedisNodeAddress[];
      /** ACL user and password of every node. */
      username?: string;
      password?: string;
      /** TLS to every node. Default false. */
      tls?: boolean;
    };

export type RedisStoreOptions = RedisConnectionOptions & {
  /** How long establishing a connection may take. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long any one command may take before it fails as unavailable. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** TCP keep-alive on the connection (detects dead peers behind NATs/LBs). Default true. */
  keepAlive?: boolean;
};

/** The ioredis client behind a store: one connection, or one per cluster node. */
export type RedisClient = Redis | Cluster;

export type RedisStore = KeyValueStore & {
  readonly redis: RedisClient;
  readonly topology: 'standalone' | 'sentinel' | 'cluster';
};

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

/** Hash slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16384;

export function createRedisStore(options: RedisStoreOptions): RedisStore {
  const connectTimeout = options.connectTimeoutMs ?? 5000;
  const redis = createClient(options, connectTimeout);
  const topology = options.topology ?? 'standalone';

  // Remember the latest connection error to explain failures; with a listener attached
  // ioredis also stops printing "Unhandled error event" on every reconnect attempt. A
  // cluster reports trouble with single nodes as "node error".
  let lastConnectionError: Error | undefined;
  const remember = (error: Error): void => {
    lastConnectionError = error;
  };
  redis.on('error', remember);
  redis.on('node error', remember);
  let everReady = false;
  redis.on('ready', () => {
    everReady = true;
    lastConnectionError = undefined;
  });
  // A cluster that re-read its topology has reached a node again.
  redis.on('refresh', () => {
    lastConnectionError = undefined;
  });

  for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: 1, lua });
  // defineCommand adds methods that ioredis's static types can't know about.
  const scripts = redis as unknown as Record<ScriptName, ScriptRunner>;

  let closed = false;

  /**
   * A cluster client has no offline queue (see createClient), so until it has connected
   * for the first time a command would fail at once; wait for that first connection.
   * Like a queued command on one server, give up after the connect timeout or when a
   * second attempt has failed too. Later reconnections are not waited for: an outage
   * must fail fast.
   */
  const firstConnection = async (): Promise<void> => {
    if (everReady || !(redis instanceof Cluster) || closed) return;
    await new Promise<void>((resolve, reject) => {
      let failedAttempts = 0;
      const done = (error?: Error): void => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('end', onEnd);
        redis.off('error', onError);
        if (error) reject(error);
        else resolve();
      };
      const fail = (reason: string): void =>
        done(new StoreUnavailableError(`Redis unavailable: ${reason}${lastConnectionError ? ` (${describe(lastConnectionError)})` : ''}`));
      const onReady = (): void => done();
      const onEnd = (): void => fail('the cluster client was closed');
      // Emitted once per failed attempt to reach any startup node.
      const onError = (): void => {
        if (++failedAttempts >= 2) fail('cannot connect to the cluster');
      };
      const timer = setTimeout(() => fail(`no connection to the cluster within ${connectTimeout} ms`), connectTimeout);
      redis.on('ready', onReady);
      redis.on('end', onEnd);
      redis.on('error', onError);
    });
  };

  /**
   * Run one Redis call, translating ioredis failures into the contract's errors. `call`
   * validates its arguments before touching ioredis; those synchronous throws (RangeError)
   * propagate untranslated, exactly as the memory store reports them.
   */
  const run = async <T>(call: () => Promise<T>): Promise<T> => {
    if (closed) throw new StoreUnavailableError('Redis store is closed');
    if (!everReady) await firstConnection();
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
    topology,

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
      if (!(redis instanceof Cluster)) {
        await run(() => redis.ping());
        return;
      }
      // A cluster is usable when every slot has a master, we are connected to each of
      // them, and each reports the cluster healthy: a PING to one random node would say
      // nothing about the shards behind the others.
      await run(async () => {
        const masters = (): { owners: Set<string>; uncovered: number; connected: Map<string, Redis> } => {
          const owners = new Set<string>();
          let uncovered = CLUSTER_SLOTS;
          for (const nodes of redis.slots) {
            if (nodes?.[0] === undefined) continue;
            uncovered--;
            owners.add(nodes[0]);
          }
          const connected = new Map(redis.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
          return { owners, uncovered, connected };
        };
        let view = masters();
        if (view.uncovered > 0 || [...view.owners].some((owner) => !view.connected.has(owner))) {
          // ioredis drops its connection to a node that went away and makes a new one only
          // when a command is redirected there; re-read the topology, so that a node that
          // is back is connected (and one that is gone is reported).
          await new Promise<void>((resolve) => redis.refreshSlotsCache(() => resolve()));
          view = masters();
        }
        const { owners, uncovered, connected } = view;
        if (uncovered > 0) throw new StoreUnavailableError(`Redis Cluster: ${uncovered} slots have no master`);
        await Promise.all([...owners].map(async (owner) => {
          const node = connected.get(owner);
          if (!node) throw new StoreUnavailableError(`Redis Cluster: no connection to master ${owner}`);
          const state = /^cluster_state:(\w+)/m.exec(String(await node.cluster('INFO')))?.[1] ?? 'unknown';
          if (state !== 'ok') throw new StoreUnavailableError(`Redis Cluster: master ${owner} reports cluster_state:${state}`);
        }));
      });
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

/** Build the ioredis client for the configured topology. */
function createClient(options: RedisStoreOptions, connectTimeout: number): RedisClient {
  const perConnection: RedisOptions = {
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout,
    // Commands queued while disconnected fail after one reconnect attempt instead of
    // piling up (ioredis default: 20), so outages surface as fast 503s.
    maxRetriesPerRequest: 1,
    connectionName: 'sallyport',
    // ioredis enables keep-alive only when this option is a number and substitutes its
    // default (30 s) for undefined, so null is the one value that turns it off.
    ...(options.keepAlive === false ? { keepAlive: null as unknown as number } : {}),
  };
  // Batches concurrent commands into one round trip (one pipeline per node on a cluster).
  const enableAutoPipelining = true;

  switch (options.topology) {
    case undefined:
    case 'standalone':
      return new Redis(options.url, { ...perConnection, enableAutoPipelining });

    case 'sentinel':
      return new Redis({
        ...perConnection,
        enableAutoPipelining,
        sentinels: options.sentinels.map(({ host, port }) => ({ host, port })),
        name: options.masterName,
        // Never a replica: reads must see the writes just made (single-use codes, CAS).
        role: 'master',
        db: options.db ?? 0,
        ...(options.username === undefined ? {} : { username: options.username }),
        ...(options.password === undefined ? {} : { password: options.password }),
        ...(options.sentinelUsername === undefined ? {} : { sentinelUsername: options.sentinelUsername }),
        ...(options.sentinelPassword === undefined ? {} : { sentinelPassword: options.sentinelPassword }),
        ...(options.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
        // Sentinels answer quickly or not at all; don't let one dead sentinel eat the
        // whole connect budget.
        sentinelCommandTimeout: Math.min(connectTimeout, 1000),
        // Listen for the sentinels' +switch-master and drop the connection to the old
        // master at once: until the sentinels get round to demoting it, it would go on
        // accepting writes that the new master never sees.
        failoverDetector: true,
        // A master demoted by a failover answers writes with READONLY; reconnect at once,
        // which asks the sentinels for the new master. The failed command itself is not
        // resent (it surfaces as a 503).
        reconnectOnError: (error) => error.message.startsWith('READONLY'),
      });

    case 'cluster': {
      const clusterOptions: ClusterOptions = {
        enableAutoPipelining,
        // No cluster-wide offline queue: ioredis would hold commands there, without any
        // timeout, for as long as the cluster is unreachable. Without it they fail at
        // once while the client reconnects (the first connection is waited for in run()).
        enableOfflineQueue: false,
        // All reads and writes go to masters (read-your-writes, as on one server).
        scaleReads: 'master',
        redisOptions: {
          ...perConnection,
          ...(options.username === undefined ? {} : { username: options.username }),
          ...(options.password === undefined ? {} : { password: options.password }),
          ...(options.tls ? { tls: {} } : {}),
        },
      };
      return new Cluster(options.nodes.map(({ host, port }) => ({ host, port })), clusterOptions);
    }
  }
}

/** Map an ioredis failure to the contract's error model. */
function translateError(error: unknown, lastConnectionError: Error | undefined): Error {
  redactSecrets(error);
  if (!(error instanceof Error)) return new StoreUnavailableError(`Redis failed: ${String(error)}`, { cause: error });
  if (error instanceof StoreUnavailableError) return error;
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
    // Any other reply error means we sent something Redis rejects: a bug, not an outage
    // (CROSSSLOT included: it would mean an operation touched two keys).
    return error;
  }
  // Everything else is transport: refused/reset connection, command timeout, retries
  // exhausted, connection closed; on a cluster also "Failed to refresh slots cache" (no
  // node answered CLUSTER SLOTS), "Too many Cluster redirections" (MOVED/ASK/CLUSTERDOWN
  // /TRYAGAIN retried until ioredis gave up) and "Cluster isn't ready" (reconnecting).
  // Several of these say nothing useful on their own, so name the error behind them: the
  // node error behind a cluster-wide failure, and the connection error while not
  // connected (reset on every successful connection).
  let reason = describe(error);
  if (lastConnectionError && lastConnectionError !== error) {
    reason = error.name === 'MaxRetriesPerRequestError' ? describe(lastConnectionError) : `${reason}; last connection error: ${describe(lastConnectionError)}`;
  }
  return new StoreUnavailableError(`Redis unavailable: ${reason}`, { cause: error });
}

/** Commands whose arguments carry a password. */
const SECRET_COMMANDS = new Set(['auth', 'hello']);

/**
 * ioredis attaches the failed command (`{name, args}`) to its errors; when that is the
 * AUTH (or HELLO ... AUTH) of a connection handshake, the arguments are the password.
 * Errors end up in logs with their causes, so blank those arguments, wherever they sit
 * in the error's chain.
 */
function redactSecrets(error: unknown, seen = new Set<object>()): void {
  if (typeof error !== 'object' || error === null || seen.has(error)) return;
  seen.add(error);
  const command = (error as { command?: { name?: unknown; args?: unknown } }).command;
  if (command && typeof command.name === 'string' && SECRET_COMMANDS.has(command.name.toLowerCase())) {
    command.args = ['(redacted)'];
  }
  for (const value of [...Object.values(error), (error as { cause?: unknown }).cause]) redactSecrets(value, seen);
}

/** An ioredis error's message, with the node error behind a cluster-wide failure. */
function describe(error: Error): string {
  const lastNodeError: unknown = (error as { lastNodeError?: unknown }).lastNodeError;
  return lastNodeError instanceof Error ? `${error.message} (${lastNodeError.message})` : error.message;
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
