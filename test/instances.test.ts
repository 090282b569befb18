/**
 * Several Sallyport instances on one Redis are one server: same signing keys, same
 * clients, tokens usable on any instance.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { pino } from 'pino';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { createMemoryStore } from '../src/storage/memory/memory-store.ts';
import { describeRedis, uniquePrefix } from './support/redis.ts';
import { PASSWORD, startSallyport, type RunningSallyport } from './support/sallyport.ts';
import { signIn, startTestRp } from './support/rp.ts';

describeRedis('instances sharing one Redis', () => {
  const running: RunningSallyport[] = [];
  afterAll(async () => Promise.all(running.map((s) => s.stop())));

  it('publish the same JWKS and honour each other\'s tokens and sessions', async () => {
    const rp = await startTestRp();
    const prefix = uniquePrefix('shared');
    const [a, b] = await Promise.all([
      startSallyport({ backend: 'redis', prefix, rpOrigin: rp.origin }),
      startSallyport({ backend: 'redis', prefix, rpOrigin: rp.origin }),
    ]);
    running.push(a!, b!);
    const jwksA = await (await fetch(`${a!.issuer}/jwks`)).json();
    const jwksB = await (await fetch(`${b!.issuer}/jwks`)).json();
    expect(jwksA).toEqual(jwksB);

    // A token issued by A is active at B (introspection), and B's userinfo accepts it.
    const serviceA = await a!.rp('service');
    const serviceB = await b!.rp('service');
    const token = await oidc.clientCredentialsGrant(serviceA, {});
    expect((await oidc.tokenIntrospection(serviceB, token.access_token)).active).toBe(true);

    const webA = await a!.rp('web');
    const { tokens } = await signIn(webA, { redirectUri: `${rp.origin}/callback`, password: PASSWORD });
    const webB = await b!.rp('web');
    const info = await oidc.fetchUserInfo(webB, tokens!.access_token, tokens!.claims()!.sub);
    expect(info.preferred_username).toBe('alice');
    await rp.stop();
  });
});

describe('start-up', () => {
  it('generates signing keys once and keeps them in the store across restarts', async () => {
    const store = createMemoryStore();
    const config = parseConfig({ issuer: 'http://localhost:3999', cookies: { keys: ['c'.repeat(32)] }, storage: { type: 'memory', prefix: uniquePrefix('keys') } }, {});
    const logger = pino({ level: 'silent' });
    const first = await createApp(config, { logger, store });
    const second = await createApp(config, { logger, store });
    const jwks = async (app: typeof first) => {
      const server = app.app.listen(0);
      const port = (server.address() as { port: number }).port;
      const body = await (await fetch(`http://127.0.0.1:${port}/jwks`)).json();
      server.close();
      return body;
    };
    expect(await jwks(first)).toEqual(await jwks(second));
    await store.close();
  });

  it('removes a client from the store when it is dropped from the config file', async () => {
    const store = createMemoryStore();
    const prefix = uniquePrefix('declared');
    const base = { issuer: 'http://localhost:3999', cookies: { keys: ['c'.repeat(32)] }, storage: { type: 'memory', prefix } };
    const client = (id: string) => ({ client_id: id, client_secret: 's'.repeat(32), redirect_uris: ['https://app.example/cb'] });
    const logger = pino({ level: 'silent' });
    const first = await createApp(parseConfig({ ...base, clients: [client('keep'), client('drop')] }, {}), { logger, store });
    expect(await first.provider.Client.find('drop')).toBeDefined();
    const second = await createApp(parseConfig({ ...base, clients: [client('keep')] }, {}), { logger, store });
    expect(await second.provider.Client.find('drop')).toBeUndefined();
    expect(await second.provider.Client.find('keep')).toBeDefined();
    await store.close();
  });

  it('refuses client metadata the provider rejects, naming the client, and writes nothing', async () => {
    const store = createMemoryStore();
    const prefix = uniquePrefix('badclient');
    const config = parseConfig(
      {
        issuer: 'http://localhost:3999',
        cookies: { keys: ['c'.repeat(32)] },
        storage: { type: 'memory', prefix },
        clients: [
          { client_id: 'good', client_secret: 's'.repeat(32), redirect_uris: ['https://app.example/cb'] },
          { client_id: 'bad', client_secret: 's'.repeat(32), redirect_uris: ['not a url'] },
        ],
      },
      {},
    );
    await expect(createApp(config, { logger: pino({ level: 'silent' }), store })).rejects.toThrow(/clients\[1\] \(bad\): redirect_uris/);
    expect(await store.sMembers(`${prefix}clients`)).toEqual([]);
    await store.close();
  });
});

describe('cookie keys', () => {
  it('refuses to run when the application and the provider sign cookies with different keys', async () => {
    const { assertSameCookieKeys } = await import('../src/app.ts');
    const { default: Koa } = await import('koa');
    const app = new Koa();
    app.keys = ['a'.repeat(32)];
    const provider = { keys: ['b'.repeat(32)] } as never;
    expect(() => assertSameCookieKeys(app, provider)).toThrow(/cookie keys of the application and of the OpenID provider differ/);
    expect(() => assertSameCookieKeys(new Koa(), { keys: [] } as never)).toThrow();
    expect(() => assertSameCookieKeys(app, { keys: ['a'.repeat(32)] } as never)).not.toThrow();
  });
});
