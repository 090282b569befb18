/**
 * The server as operators run it: `node src/main.ts` (what `npm start` runs) as a child
 * process, configured by the demo file and the environment.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { testRedisUrl, uniquePrefix } from './support/redis.ts';
import { freePort } from './support/sallyport.ts';
import { spawnSallyport, type SpawnedSallyport } from './support/sallyport-process.ts';

const children: SpawnedSallyport[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.running()) c.child.kill('SIGKILL');
});

/** `src/main.ts` with this environment, as the tests below look at it: exit code and all output. */
function startServer(env: Record<string, string>) {
  const spawned = spawnSallyport(env);
  children.push(spawned);
  return {
    child: spawned.child,
    exited: spawned.exited.then((e) => e.code),
    ready: () => spawned.ready(),
    output: () => spawned.stdout() + spawned.stderr(),
  };
}

describe('the server process', () => {
  it('starts on the demo config, prints the URL, serves discovery, and stops gracefully on SIGTERM', async () => {
    const port = await freePort();
    const server = startServer({ PORT: String(port) });
    await server.ready();
    expect(server.output()).toContain(`open http://localhost:${port}/`);
    const discovery = (await (await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`)).json()) as { issuer: string };
    expect(discovery.issuer).toBe(`http://localhost:${port}`);
    // The process exports its runtime metrics beside Sallyport's own.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^process_cpu_seconds_total \d/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(metrics).toContain('sallyport_http_requests_total{method="GET",route="discovery",status="200"} 1');

    // An in-flight request (its body still arriving) finishes after SIGTERM.
    const inFlight = new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/interaction/x/login', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '20' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write('username=a&');
      setTimeout(() => {
        server.child.kill('SIGTERM');
        setTimeout(() => req.end('password=x'), 300);
      }, 200);
    });
    expect(await inFlight).toBe(400);
    expect(await server.exited).toBe(0);
    // New connections are refused once it stopped.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('refuses to start in production with the demo secrets, naming each problem', async () => {
    const server = startServer({ NODE_ENV: 'production', ISSUER: 'https://id.example.com' });
    expect(await server.exited).toBe(2);
    expect(server.output()).toMatch(/cookies\.keys\[0\]: the demo cookie key must not be used in production/);
    expect(server.output()).toMatch(/clients\[0\]\.client_secret/);
  });

  it.runIf(testRedisUrl())('switches to Redis with REDIS_URL and closes the connection on shutdown', async () => {
    const port = await freePort();
    const prefix = uniquePrefix('proc');
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/sp-proc-'));
    const file = `${dir}/config.yaml`;
    const { readFile, writeFile } = await import('node:fs/promises');
    const demo = await readFile('config/demo.yaml', 'utf8');
    await writeFile(file, demo.replace('type: memory', `type: memory\n  prefix: "${prefix}"`));
    const server = startServer({ PORT: String(port), REDIS_URL: testRedisUrl()!, SALLYPORT_CONFIG: file, LOG_LEVEL: 'info' });
    await server.ready();
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { store: string };
    expect(ready.store).toBe('redis');
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/"store":"redis"/);
  });

  it('fails to start with a clear message when Redis is unreachable', async () => {
    const port = await freePort();
    const dead = await freePort();
    const server = startServer({ PORT: String(port), REDIS_URL: `redis://127.0.0.1:${dead}` });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${dead}`));
  });
});
