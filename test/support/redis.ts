/** Helpers for test files that need the Redis chosen by global-setup.ts. */
import { randomBytes } from 'node:crypto';
import { describe, inject } from 'vitest';

/** The Redis URL for this run, or null when Redis-backed suites are skipped (never in CI). */
export function testRedisUrl(): string | null {
  return inject('redisUrl');
}

/**
 * A random key prefix, so tests isolate themselves on a Redis that may be shared with
 * other runs (REDIS_URL); nothing ever flushes.
 */
export function uniquePrefix(label: string): string {
  return `t:${label}:${randomBytes(6).toString('base64url')}:`;
}

/** `describe` that runs only when a Redis is available (global setup makes one mandatory in CI). */
export const describeRedis = describe.runIf(testRedisUrl() !== null);
