/**
 * Store outages: requests fail fast with 503 and Retry-After (no hang, no crash), and
 * the service recovers by itself when Redis returns. A Redis of the test's own, since
 * the test stops it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { describeRedis } from './support/redis.ts';
import { startRedisServer, type RedisServer } from './support/redis-server.ts';
import { SECRET, startSallyport, type RunningSallyport } from './support/sallyport.ts';

describeRedis('Redis outage', () => {
  let redis: RedisServer;
  let sp: RunningSallyport;

  beforeAll(async () => {
    // AOF on, as in production: a restart keeps clients, keys and sessions.
    redis = await startRedisServer({ appendonly: true });
    sp = await startSallyport({ backend: 'redis', redisUrl: redis.url });
  });
  afterAll(async () => {
    await sp?.stop();
    await redis?.stop();
  });

  it('answers 503 with Retry-After while Redis is down, on provider and own routes, and recovers', async () => {
    const service = await sp.rp('service');
    expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
    await redis.stop();
    try {
      const started = Date.now();
      const token = await fetch(`${sp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`service:${SECRET}`).toString('base64')}` },
        body: 'grant_type=client_credentials',
      });
      expect(token.status).toBe(503);
      expect(token.headers.get('retry-after')).toBe('5');
      expect(await token.json()).toMatchObject({ error: 'temporarily_unavailable' });
      const ready = await fetch(`${sp.issuer}/readyz`);
      expect(ready.status).toBe(503);
      const admin = await fetch(`${sp.issuer}/admin/v1/clients`, { headers: { authorization: 'Bearer some-token' } });
      expect(admin.status).toBe(503);
      expect(admin.headers.get('retry-after')).toBe('5');
      expect(await admin.json()).toMatchObject({ error: 'temporarily_unavailable' });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect((await fetch(`${sp.issuer}/healthz`)).status).toBe(200);
    } finally {
      await redis.restart();
    }
    // ioredis reconnects by itself; the next requests work again.
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      recovered = (await fetch(`${sp.issuer}/readyz`)).status === 200;
      if (!recovered) await new Promise((r) => setTimeout(r, 200));
    }
    expect(recovered).toBe(true);
    expect((await oidc.clientCredentialsGrant(service, {})).access_token).toBeTruthy();
  });
});
