/**
 * Storage entry point: picks a backend from configuration. The rest of the app depends
 * only on the contract re-exported here, never on a backend module.
 */
import { StoreUnavailableError, type KeyValueStore } from './contract.ts';
import { createMemoryStore } from './memory/memory-store.ts';
import type { RedisConnectionOptions } from './redis/redis-store.ts';

export * from './contract.ts';

export type StorageConfig = { type: 'memory' } | ({ type: 'redis' } & RedisConnectionOptions);

export async function createStore(config: StorageConfig): Promise<KeyValueStore> {
  switch (config.type) {
    case 'memory':
      return createMemoryStore();
    case 'redis': {
      // Loaded on demand so memory-only deployments never load ioredis.
      const { createRedisStore } = await import('./redis/redis-store.ts');
      const store = createRedisStore(config);
      try {
        // Fail start-up clearly instead of serving 503s from a process that can never work.
        await store.ping();
      } catch (error) {
        await store.close();
        const reason = error instanceof Error ? error.message : String(error);
        throw new StoreUnavailableError(`cannot reach ${describeRedis(config)}: ${reason}`, { cause: error });
      }
      return store;
    }
  }
}

/** Where the store connects to, for messages: addresses and names, never a password. */
export function describeRedis(config: RedisConnectionOptions): string {
  const list = (nodes: readonly { host: string; port: number }[]): string =>
    nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(', ');
  switch (config.topology) {
    case undefined:
    case 'standalone':
      return `Redis at ${redactUrl(config.url)}`;
    case 'sentinel':
      return `Redis master "${config.masterName}" through the sentinels ${list(config.sentinels)}`;
    case 'cluster':
      return `Redis Cluster through ${list(config.nodes)}`;
  }
}

/** The URL without its password, safe for logs and error messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    // Never echo an unparsable URL: it may still contain a secret.
    return '(unparsable Redis URL)';
  }
}
