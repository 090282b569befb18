/**
 * Redis Cluster: the storage conformance suites, a full sign-in / refresh / logout flow
 * and an outage, on a real local cluster of three password-protected masters. Keys are
 * checked to really spread over the masters, so the claim that no operation spans two
 * keys (no CROSSSLOT) is exercised, not assumed.
 */
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { parseConfig } from '../src/config/load.ts';
import { StoreUnavailableError, createStore, type KeyValueStore } from '../src/storage/index.ts';
import { createKeys } from '../src/storage/keys.ts';
import { createRedisStore, type RedisStore } from '../src/storage/redis/redis-store.ts';
import { describeKeyValueConformance } from './conformance/key-value.conformance.ts';
import { describeDomainStoreConformance } from './conformance/oidc-adapter.conformance.ts';
import { closedPort, describeWithRedisServer, startRedisCluster, type RedisCluster } from './support/redis-cluster.ts';
import { uniquePrefix } from './support/redis.ts';
import { signIn, startTestRp, type TestRp } from './support/rp.ts';
import { becomesReady, COOKIE_KEY, PASSWORD, SECRET, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { parseForms } from './support/user-agent.ts';

const CLUSTER_PASSWORD = 'cluster-secret-4c1d7e';

describe('storage config: Redis Cluster', () => {
  const parse = (storage: unknown, env: Record<string, string> = {}) =>
    parseConfig({ issuer: 'http://localhost:3000', cookies: { keys: [COOKIE_KEY] }, storage }, env).storage;

  it('takes host:port and redis:// startup nodes, with defaults', () => {
    expect(parse({ type: 'redis', topology: 'cluster', nodes: ['10.0.0.1:7000', 'redis://10.0.0.2:7001', 'redis-3', '[::1]:7002'] })).toEqual({
      type: 'redis',
      topology: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'redis-3', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
      prefix: 'sp:',
    });
  });

  it('turns TLS on for rediss:// nodes, and refuses contradictions', () => {
    expect(parse({ type: 'redis', topology: 'cluster', nodes: ['rediss://a:7000', 'rediss://b:7000'] })).toMatchObject({ tls: true });
    expect(() => parse({ type: 'redis', topology: 'cluster', nodes: ['rediss://a:7000', 'redis://b:7000'] })).toThrow(/storage\.nodes: mixes redis:\/\/ and rediss:\/\//);
    expect(() => parse({ type: 'redis', topology: 'cluster', nodes: ['rediss://a:7000'], tls: false })).toThrow(/storage\.tls: contradicts/);
  });

  it('reports every bad field by path, never echoing a password', () => {
    let message = '';
    try {
      parse({ type: 'redis', topology: 'cluster', nodes: ['redis://:hunter2-secret@a:7000', 'a:99999'], url: 'redis://x', password: '' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/storage\.nodes\[0\]: .*without credentials/);
    expect(message).toMatch(/storage\.nodes\[1\]: expected host:port/);
    expect(message).toMatch(/storage\.password: /);
    expect(message).toMatch(/storage: Unrecognized key: "url"/);
    expect(message).not.toContain('hunter2-secret');
    expect(() => parse({ type: 'redis', topology: 'cluster', nodes: [] })).toThrow(/storage\.nodes: at least one node/);
    expect(() => parse({ type: 'redis', topology: 'clustered', nodes: ['a:1'] })).toThrow(/storage\.topology: expected topology standalone, sentinel or cluster/);
  });

  it('takes the password from REDIS_PASSWORD, and REDIS_URL still means one standalone server', () => {
    const cluster = { type: 'redis', topology: 'cluster', nodes: ['a:7000'] };
    expect(parse(cluster, { REDIS_PASSWORD: 'from-env' })).toMatchObject({ password: 'from-env' });
    expect(parse(cluster, { REDIS_URL: 'redis://b:6379/1' })).toEqual({ type: 'redis', url: 'redis://b:6379/1', prefix: 'sp:' });
    expect(() => parse({ type: 'redis', url: 'redis://b:6379' }, { REDIS_PASSWORD: 'x' })).toThrow(/REDIS_PASSWORD: only applies to .*sentinel or cluster/);
  });
});

// Needs no Redis: ports nobody listens on stand in for a cluster that is down.
it('a cluster store whose nodes are unreachable rejects ping() and get() with StoreUnavailableError', { timeout: 10_000 }, async () => {
  const nodes = [{ host: '127.0.0.1', port: await closedPort() }, { host: '127.0.0.1', port: await closedPort() }];
  const store = createRedisStore({ topology: 'cluster', nodes, connectTimeoutMs: 3000, commandTimeoutMs: 1000 });
  try {
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.get('t:unreachable')).rejects.toThrow(/Redis unavailable: .*(ECONNREFUSED|refresh slots cache)/);
  } finally {
    await store.close();
  }
});

describeWithRedisServer('Redis Cluster (3 masters)', () => {
  let cluster: RedisCluster;
  const opened: KeyValueStore[] = [];
  const clusterStore = (): RedisStore => {
    const store = createRedisStore({ topology: 'cluster', nodes: cluster.addresses, password: CLUSTER_PASSWORD });
    opened.push(store);
    return store;
  };

  beforeAll(async () => {
    // AOF on, as in production: the outage test restarts a master and needs its data back.
    cluster = await startRedisCluster({ password: CLUSTER_PASSWORD, appendonly: true });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await cluster?.stop();
  });

  /** How many keys under `prefix` each master holds. */
  const keysPerMaster = async (prefix: string): Promise<number[]> =>
    await Promise.all(cluster.nodes.map(async (node) => {
      const client = cluster.connect(node);
      try {
        let cursor = '0';
        let count = 0;
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          count += keys.length;
        } while (cursor !== '0');
        return count;
      } finally {
        client.disconnect();
      }
    }));

  describeKeyValueConformance('redis cluster', async () => ({ store: clusterStore(), prefix: uniquePrefix('kv') }));
  describeDomainStoreConformance('redis cluster', async () => ({ store: clusterStore(), prefix: uniquePrefix('domain') }));

  it('spreads single-key records over the masters', async () => {
    const store = clusterStore();
    const prefix = uniquePrefix('spread');
    for (let i = 0; i < 30; i++) {
      await store.set(`${prefix}s${i}`, 'v', { ttl: 60 });
      await store.hReplace(`${prefix}h${i}`, { f: 'v' }, { ttl: 60 });
      await store.sAdd(`${prefix}i${i}`, 'm', { ttl: 60 });
    }
    const counts = await keysPerMaster(prefix);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(90);
    // 90 keys over three equal slot ranges: all on one master would be a routing bug.
    expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it('fails with StoreUnavailableError on a wrong password, never showing the password', async () => {
    const store = createRedisStore({ topology: 'cluster', nodes: cluster.addresses, password: 'wrong-password-7f3a', connectTimeoutMs: 1500 });
    try {
      const error = await store.get('t:x').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(/WRONGPASS/);
      expect(inspect(error, { depth: 20 })).not.toContain('wrong-password-7f3a');
    } finally {
      await store.close();
    }
    // And so does start-up, with the nodes named but not the password.
    const startup = await createStore({ type: 'redis', topology: 'cluster', nodes: cluster.addresses, password: 'wrong-password-7f3a' }).catch((e: unknown) => e);
    expect(startup).toBeInstanceOf(StoreUnavailableError);
    expect((startup as Error).message).toContain(`cannot reach Redis Cluster through 127.0.0.1:${cluster.nodes[0]!.port}`);
    expect(inspect(startup, { depth: 20 })).not.toContain('wrong-password-7f3a');
  });

  describe('a Sallyport on the cluster', () => {
    let sp: RunningSallyport;
    let rp: TestRp;
    const prefix = uniquePrefix('cluster-flow');

    beforeAll(async () => {
      rp = await startTestRp();
      sp = await startSallyport({
        backend: 'redis',
        rpOrigin: rp.origin,
        prefix,
        storage: {
          type: 'redis',
          topology: 'cluster',
          nodes: cluster.addresses.map(({ host, port }) => `${host}:${port}`),
          password: CLUSTER_PASSWORD,
        },
      });
    });
    afterAll(async () => {
      await sp?.stop();
      await rp?.stop();
    });

    it('is ready', async () => {
      const ready = await fetch(`${sp.issuer}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', store: 'redis' });
    });

    it('signs in with code + PKCE through the login form, refreshes, reads userinfo and logs out', async () => {
      // Code + PKCE for a public client, with consent and a refresh token.
      const spa = await sp.rp('spa');
      const withRefresh = await signIn(spa, {
        redirectUri: `${rp.origin}/spa/callback`,
        scope: 'openid profile offline_access',
        password: PASSWORD,
        consent: 'allow',
        extraParams: { prompt: 'consent' },
      });
      expect(withRefresh.loginPage?.status).toBe(200);
      const refreshed = await oidc.refreshTokenGrant(spa, withRefresh.tokens!.refresh_token!);
      expect(refreshed.refresh_token).not.toBe(withRefresh.tokens!.refresh_token);
      // Rotation: the old refresh token is spent.
      await expect(oidc.refreshTokenGrant(spa, withRefresh.tokens!.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

      // Code + PKCE for a confidential client, userinfo, then RP-initiated logout.
      const web = await sp.rp('web', { secret: SECRET });
      const { ua, tokens } = await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
      const sub = tokens!.claims()!.sub;
      expect(await oidc.fetchUserInfo(web, tokens!.access_token, sub)).toMatchObject({ sub, preferred_username: 'alice' });

      const logoutTokensBefore = rp.logoutTokens.length;
      const confirm = await ua.follow(oidc.buildEndSessionUrl(web, {
        id_token_hint: tokens!.id_token!,
        post_logout_redirect_uri: `${rp.origin}/logged-out`,
        state: 'cluster-state',
      }));
      expect(parseForms(confirm.page.body).some((f) => f.id === 'op.logoutForm')).toBe(true);
      const done = await ua.submit(confirm.page, { id: 'op.logoutForm' }, { logout: 'yes' }, [`${rp.origin}/logged-out`]);
      expect(done.stoppedAt?.href).toBe(`${rp.origin}/logged-out?state=cluster-state`);
      expect(rp.logoutTokens.length).toBe(logoutTokensBefore + 1);
      expect(decodeJwt(rp.logoutTokens.at(-1)!)['sid']).toBe(decodeJwt(tokens!.id_token!)['sid']);
      // The session and its tokens are gone: userinfo refuses, sign-in asks again.
      await expect(oidc.fetchUserInfo(web, tokens!.access_token, sub)).rejects.toThrow();
      expect((await signIn(web, { redirectUri: `${rp.origin}/callback`, password: PASSWORD, ua })).loginPage).toBeDefined();

      // What the flow wrote really lives on several masters.
      const counts = await keysPerMaster(prefix);
      expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);
    });

    it('answers 503 while a master is down, and recovers when it is back', async () => {
      const service = await sp.rp('service');
      expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
      // Stop the master holding the client's record, which every token request reads.
      const victim = await cluster.masterOf(createKeys(prefix).oidcModel('Client', 'service'));
      await victim.stop();
      try {
        // Readiness notices at once: one master is unreachable (the others still report
        // cluster_state:ok until cluster-node-timeout has passed).
        expect((await fetch(`${sp.issuer}/readyz`)).status).toBe(503);
        const token = await fetch(`${sp.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`service:${SECRET}`).toString('base64')}` },
          body: 'grant_type=client_credentials',
        });
        expect(token.status).toBe(503);
        expect(token.headers.get('retry-after')).toBe('5');
        expect(await token.json()).toMatchObject({ error: 'temporarily_unavailable' });
      } finally {
        await victim.restart();
      }
      await cluster.waitUntilOk();
      expect(await becomesReady(sp.issuer)).toBe(true);
      expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
    });
  });
});
