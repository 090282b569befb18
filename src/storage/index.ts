/**
 * Storage entry point: picks a backend from configuration. The rest of the app depends
 * only on the contract re-exported here, never on a backend module.
 */
import { StoreUnavailableError, type KeyValueStore } from './contract.ts';
import { createMemoryStore } from './memory/memory-store.ts';

export * from './contract.ts';

export type StorageConfig = { type: 'memory' } | { type: 'redis'; url: string };

export async function createStore(config: StorageConfig): Promise<KeyValueStore> {
  switch (config.type) {
    case 'memory':
      return createMemoryStore();
    case 'redis': {
      // Loaded on demand so memory-only deployments never load ioredis.
      const { createRedisStore } = await import('./redis/redis-store.ts');
      const store = createRedisStore({ url: config.url });
      try {
        // Fail start-up clearly instead of serving 503s from a process that can never work.
        await store.ping();
      } catch (error) {
        await store.close();
        const reason = error instanceof Error ? error.message : String(error);
        throw new StoreUnavailableError(`cannot reach Redis at ${redactUrl(config.url)}: ${reason}`, { cause: error });
      }
      return store;
    }
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
