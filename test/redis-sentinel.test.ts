/**
 * Redis Sentinel: the key/value conformance suite, sign-in through a Sallyport configured
 * with sentinels, and a failover (SENTINEL FAILOVER to the one replica) after which the
 * same Sallyport keeps its sessions and keeps writing, now to the new master. Master,
 * replica and sentinel are real, password-protected redis-server processes.
 */
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { Redis } from 'ioredis';
import { parseConfig } from '../src/config/load.ts';
import { StoreUnavailableError, createStore, type KeyValueStore } from '../src/storage/index.ts';
import { createRedisStore, type RedisStore } from '../src/storage/redis/redis-store.ts';
import { describeKeyValueConformance } from './conformance/key-value.conformance.ts';
import { closedPort, describeWithRedisServer } from './support/redis-cluster.ts';
import { startRedisSentinel, type RedisSentinelSetup } from './support/redis-sentinel.ts';
import { uniquePrefix } from './support/redis.ts';
import { signIn, startTestRp, type TestRp } from './support/rp.ts';
import { becomesReady, COOKIE_KEY, PASSWORD, startSallyport, type RunningSallyport } from './support/sallyport.ts';

const DATA_PASSWORD = 'sentinel-data-secret-91b2';
const SENTINEL_PASSWORD = 'sentinel-own-secret-5e0c';

describe('storage config: Redis Sentinel', () => {
  const parse = (storage: unknown, env: Record<string, string> = {}) =>
    parseConfig({ issuer: 'http://localhost:3000', cookies: { keys: [COOKIE_KEY] }, storage }, env).storage;

  it('takes sentinels as host:port with defaults', () => {
    expect(parse({ type: 'redis', topology: 'sentinel', sentinels: ['10.0.0.1', 's2:26380'], masterName: 'main' })).toEqual({
      type: 'redis',
      topology: 'sentinel',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      masterName: 'main',
      db: 0,
      tls: false,
      prefix: 'sp:',
    });
  });

  it('reports bad fields by path', () => {
    let message = '';
    try {
      parse({ type: 'redis', topology: 'sentinel', sentinels: ['s1:0'], db: -1, nodes: ['a:1'] });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/storage\.sentinels\[0\]: expected host:port \(port defaults to 26379\)/);
    expect(message).toMatch(/storage\.masterName: /);
    expect(message).toMatch(/storage\.db: /);
    expect(message).toMatch(/storage: Unrecognized key: "nodes"/);
  });

  it('takes both passwords from the environment', () => {
    const sentinel = { type: 'redis', topology: 'sentinel', sentinels: ['s1'], masterName: 'main', password: 'in-file' };
    expect(parse(sentinel, { REDIS_PASSWORD: 'env-data', REDIS_SENTINEL_PASSWORD: 'env-sentinel' })).toMatchObject({
      password: 'env-data',
      sentinelPassword: 'env-sentinel',
    });
    expect(() => parse({ type: 'redis', topology: 'cluster', nodes: ['a:1'] }, { REDIS_SENTINEL_PASSWORD: 'x' })).toThrow(
      /REDIS_SENTINEL_PASSWORD: only applies to storage.type redis with topology sentinel/,
    );
  });
});

// Needs no Redis: a port nobody listens on stands in for a sentinel that is down.
it('a sentinel store whose sentinels are unreachable rejects ping() and get() with StoreUnavailableError', { timeout: 10_000 }, async () => {
  const store = createRedisStore({
    topology: 'sentinel',
    sentinels: [{ host: '127.0.0.1', port: await closedPort() }],
    masterName: 'nowhere',
    connectTimeoutMs: 1000,
    commandTimeoutMs: 1000,
  });
  try {
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.get('t:unreachable')).rejects.toThrow(/Redis unavailable: .*sentinel/i);
  } finally {
    await store.close();
  }
});

describeWithRedisServer('Redis Sentinel (master, replica, one sentinel)', () => {
  let setup: RedisSentinelSetup;
  const opened: KeyValueStore[] = [];
  const sentinelStore = (overrides: { password?: string; sentinelPassword?: string } = {}): RedisStore => {
    const store = createRedisStore({
      topology: 'sentinel',
      sentinels: setup.sentinels,
      masterName: setup.masterName,
      password: DATA_PASSWORD,
      sentinelPassword: SENTINEL_PASSWORD,
      ...overrides,
    });
    opened.push(store);
    return store;
  };

  beforeAll(async () => {
    setup = await startRedisSentinel({ password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD, replica: true });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await setup?.stop();
  });

  describeKeyValueConformance('redis sentinel', async () => ({ store: sentinelStore(), prefix: uniquePrefix('kv') }));

  it('fails with StoreUnavailableError on a wrong password (master or sentinel), never showing it', async () => {
    for (const wrong of [{ password: 'wrong-data-password-1d' }, { sentinelPassword: 'wrong-sentinel-password-2e' }]) {
      const store = createRedisStore({
        topology: 'sentinel',
        sentinels: setup.sentinels,
        masterName: setup.masterName,
        password: DATA_PASSWORD,
        sentinelPassword: SENTINEL_PASSWORD,
        connectTimeoutMs: 1000,
        ...wrong,
      });
      try {
        const error = await store.ping().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(inspect(error, { depth: 20 })).not.toContain(Object.values(wrong)[0]);
      } finally {
        await store.close();
      }
    }
    const startup = await createStore({
      type: 'redis',
      topology: 'sentinel',
      sentinels: setup.sentinels,
      masterName: setup.masterName,
      password: 'wrong-data-password-1d',
      sentinelPassword: SENTINEL_PASSWORD,
    }).catch((e: unknown) => e);
    expect(startup).toBeInstanceOf(StoreUnavailableError);
    expect((startup as Error).message).toContain(`cannot reach Redis master "${setup.masterName}" through the sentinels 127.0.0.1:${setup.sentinel.port}`);
    expect(inspect(startup, { depth: 20 })).not.toContain('wrong-data-password-1d');
    expect(inspect(startup, { depth: 20 })).not.toContain(SENTINEL_PASSWORD);
  });

  describe('a Sallyport on the sentinel set-up', () => {
    let sp: RunningSallyport;
    let rp: TestRp;

    beforeAll(async () => {
      rp = await startTestRp();
      sp = await startSallyport({
        backend: 'redis',
        rpOrigin: rp.origin,
        storage: {
          type: 'redis',
          topology: 'sentinel',
          sentinels: setup.sentinels.map(({ host, port }) => `${host}:${port}`),
          masterName: setup.masterName,
          password: DATA_PASSWORD,
          sentinelPassword: SENTINEL_PASSWORD,
        },
      });
    });
    afterAll(async () => {
      await sp?.stop();
      await rp?.stop();
    });

    it('signs in, and after a failover keeps the session and writes to the new master', async () => {
      const web = await sp.rp('web');
      const { ua, tokens } = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
      const sub = tokens!.claims()!.sub;
      expect(await oidc.fetchUserInfo(web, tokens!.access_token, sub)).toMatchObject({ sub, preferred_username: 'alice' });

      const oldMaster = await setup.masterPort();
      const newMaster = await setup.failover();
      expect(newMaster).not.toBe(oldMaster);

      // The connection to the demoted master is dropped by the sentinel; the store asks
      // the sentinel again and reaches the new master. Requests caught in between may
      // get a 503; readiness returns once the new master answers.
      expect(await becomesReady(sp.issuer, 10_000)).toBe(true);

      // Data written before the failover was replicated: the token and session still work.
      expect(await oidc.fetchUserInfo(web, tokens!.access_token, sub)).toMatchObject({ sub });
      const again = await signIn(web, { redirectUri: `${rp.origin}/callback`, ua });
      expect(again.loginPage).toBeUndefined();
      expect(again.tokens?.claims()?.sub).toBe(sub);

      // And writes go to the new master (the old one is now a read-only replica).
      const marker = `${uniquePrefix('failover')}marker`;
      await sp.store.set(marker, 'after-failover', { ttl: 60 });
      const direct = new Redis({ host: '127.0.0.1', port: newMaster, password: DATA_PASSWORD, lazyConnect: true });
      try {
        expect(String(await direct.call('ROLE')).startsWith('master')).toBe(true);
        expect(await direct.get(marker)).toBe('after-failover');
      } finally {
        direct.disconnect();
      }
    });
  });
});
