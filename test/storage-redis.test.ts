import { createServer } from 'node:net';
import { expect, it } from 'vitest';
import { StoreUnavailableError } from '../src/storage/contract.ts';
import { createRedisStore } from '../src/storage/redis/redis-store.ts';
import { describeKeyValueConformance } from './conformance/key-value.conformance.ts';
import { describeRedis, testRedisUrl, uniquePrefix } from './support/redis.ts';

describeRedis('redis', () => {
  describeKeyValueConformance('redis', async () => {
    const store = createRedisStore({ url: testRedisUrl() ?? '' });
    return { store, prefix: uniquePrefix('kv') };
  });
});

// Needs no Redis: a port nobody listens on stands in for a Redis that is down.
it('a Redis store whose server is unreachable rejects ping() and get() with StoreUnavailableError', { timeout: 8000 }, async () => {
  const port = await closedPort();
  const store = createRedisStore({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
  try {
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.get('t:unreachable')).rejects.toBeInstanceOf(StoreUnavailableError);
  } finally {
    await store.close();
  }
});

/** A loopback port that was just free (and so is almost certainly closed). */
async function closedPort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
