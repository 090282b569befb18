/**
 * A short single-key lock (SET NX EX, released only by its holder) for read-modify-write
 * sequences on records the store cannot compare-and-set as a whole (e.g. provider
 * client hashes). Holding it is not required for safety against crashes — it expires.
 */
import { randomBytes } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { KeyValueStore } from './contract.ts';

export async function withLock<T>(store: KeyValueStore, key: string, fn: () => Promise<T>, ttlSeconds = 10): Promise<T> {
  const token = randomBytes(16).toString('base64url');
  for (let attempt = 0; ; attempt++) {
    if (await store.set(key, token, { ttl: ttlSeconds, ifAbsent: true })) break;
    if (attempt >= 20) {
      throw new AppError({ code: 'conflict', status: 409, message: 'the resource is being changed by another request; retry' });
    }
    await new Promise((r) => setTimeout(r, 25 + Math.random() * 25));
  }
  try {
    return await fn();
  } finally {
    await store.delIfEquals(key, token);
  }
}
