import { createMemoryStore } from '../src/storage/memory/memory-store.ts';
import { createRedisStore } from '../src/storage/redis/redis-store.ts';
import { afterAll } from 'vitest';
import type { KeyValueStore } from '../src/storage/contract.ts';
import { describeDomainStoreConformance } from './conformance/oidc-adapter.conformance.ts';
import { describeRedis, testRedisUrl, uniquePrefix } from './support/redis.ts';

describeDomainStoreConformance('memory', async () => ({ store: createMemoryStore(), prefix: uniquePrefix('mem') }));

describeRedis('redis', () => {
  const opened: KeyValueStore[] = [];
  afterAll(async () => Promise.all(opened.map((s) => s.close())));
  describeDomainStoreConformance('redis', async () => {
    const store = createRedisStore({ url: testRedisUrl()! });
    opened.push(store);
    return { store, prefix: uniquePrefix('domain') };
  });
});
