/**
 * Vitest global setup: decides which Redis the Redis-backed suites use, once per run.
 *
 * 1. REDIS_URL set: use it as is. Tests isolate themselves by key prefix and never
 *    flush, so this may point at a Redis that holds other data.
 * 2. Else redis-server on PATH: start a private one for the whole run, stop it at teardown.
 * 3. Else in CI: fail the run; silently skipping the production backend's tests in CI
 *    would let Redis regressions through.
 * 4. Else (a developer machine without Redis): provide null, and the Redis suites skip.
 */
import type { TestProject } from 'vitest/node';
import { redisServerAvailable, startRedisServer } from './redis-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the Redis the tests may use, or null when Redis-backed suites must skip. */
    redisUrl: string | null;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const fromEnv = process.env['REDIS_URL'];
  if (fromEnv) {
    project.provide('redisUrl', fromEnv);
    return undefined;
  }
  if (redisServerAvailable()) {
    const server = await startRedisServer();
    project.provide('redisUrl', server.url);
    return async () => {
      await server.stop();
    };
  }
  if (process.env['CI']) {
    throw new Error(
      'redis-server is required in CI: install it (apt-get install redis-server) or set REDIS_URL; ' +
        'Redis-backed suites must not be skipped in CI.',
    );
  }
  project.provide('redisUrl', null);
  console.warn('[sallyport tests] WARNING: no redis-server on PATH and REDIS_URL not set: Redis-backed suites will be skipped.');
  return undefined;
}
