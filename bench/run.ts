/**
 * `npm run bench`: Sallyport against a bare oidc-provider 9, measured in the same run.
 *
 * 1. This process (the load generator) pins itself to the load core; the redis-servers
 *    and the upstream IdP it starts inherit that core.
 * 2. Per store (memory, then Redis): Sallyport as operators run it (src/main.ts with a
 *    config file) and the bare provider (bench/bare-provider.ts), each a process pinned
 *    to the server core, each with a redis-server of its own on the Redis runs.
 * 3. Per scenario: Sallyport, then the bare provider, each warmed up and then measured.
 * 4. Tables per scenario, the targets and whether they are met, optionally JSON.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from '../test/support/redis-server.ts';
import { bareSettings, benchUsers, sallyportConfig, signingJwks } from './fixtures.ts';
import type { Measurement } from './measure.ts';
import { HELP, parseOptions, type ScenarioName, type StoreName, type TargetName } from './options.ts';
import { affinityOf, assertTaskset, freePort, pinSelf, spawnPinned, waitForHttp, waitForLog, type Child } from './processes.ts';
import { LEGEND, evaluateTargets, formatScenarioTable, formatSummaryMarkdown, formatTargets, type Row } from './report.ts';
import { DESCRIPTIONS, UNITS, runScenario } from './scenarios.ts';
import { connectProfiler, type ProfilerSession } from './inspector.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE_FLAGS = ['--experimental-strip-types', '--disable-warning=ExperimentalWarning'];

const parsed = parseOptions(process.argv.slice(2), process.env);
if (parsed === 'help') {
  process.stdout.write(HELP);
  process.exit(0);
}
const options = parsed;
const log = (line: string) => process.stdout.write(`${line}\n`);

assertTaskset([options.serverCore, options.loadCore]);
pinSelf(options.loadCore);

const workDir = mkdtempSync(join(tmpdir(), 'sallyport-bench-'));
const children: Child[] = [];
const redisServers: RedisServer[] = [];
let cleaningUp = false;
async function cleanUp(): Promise<void> {
  if (cleaningUp) return;
  cleaningUp = true;
  await Promise.all(children.splice(0).map((c) => c.stop()));
  await Promise.all(redisServers.splice(0).map((r) => r.stop()));
}
process.on('SIGINT', () => void cleanUp().finally(() => process.exit(130)));

// The environment of the servers: not production (plain settings are fine on loopback),
// nothing that would override their config files, logs at their defaults, into files.
const OVERRIDES = new Set(['NODE_ENV', 'REDIS_URL', 'PORT', 'ISSUER', 'SALLYPORT_CONFIG', 'SALLYPORT_COOKIE_KEYS']);
const serverEnv = (): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !OVERRIDES.has(k) && !k.startsWith('BENCH_')) env[k] = v;
  return env;
};

async function redisPid(url: string): Promise<number> {
  const client = new Redis(url, { lazyConnect: true });
  await client.connect();
  const info = await client.info('server');
  await client.quit();
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

interface Running {
  name: TargetName;
  issuer: string;
  child: Child;
  redis?: { server: RedisServer; pid: number };
  profiler?: ProfilerSession;
}

async function startTarget(name: TargetName, store: StoreName, port: number, settings: { upstreamIssuer: string; users: Awaited<ReturnType<typeof benchUsers>>; jwks: Awaited<ReturnType<typeof signingJwks>> }): Promise<Running> {
  let redis: Running['redis'];
  if (store === 'redis') {
    // Its own redis-server, started by this process, so on the load core.
    const server = await startRedisServer();
    redisServers.push(server);
    redis = { server, pid: await redisPid(server.url) };
  }
  const dir = join(workDir, `${name}-${store}`);
  mkdirSync(dir, { recursive: true });
  const issuer = `http://127.0.0.1:${port}`;
  let child: Child;
  // Profiles are taken over the inspector, of the measured runs only (inspector.ts).
  const nodeFlags = [...options.serverNodeFlags, ...(options.cpuProfDir ? ['--inspect=127.0.0.1:0'] : [])];
  if (name === 'sallyport') {
    const configFile = join(dir, 'sallyport.yaml');
    writeFileSync(configFile, JSON.stringify(sallyportConfig({ port, redisUrl: redis?.server.url ?? null, users: settings.users, upstreamIssuer: settings.upstreamIssuer }), null, 2));
    child = spawnPinned({
      name: `Sallyport (${store})`,
      core: options.serverCore,
      command: process.execPath,
      args: [...NODE_FLAGS, ...nodeFlags, 'src/main.ts'],
      cwd: ROOT,
      env: { ...serverEnv(), SALLYPORT_CONFIG: configFile },
      logFile: join(dir, 'server.log'),
    });
  } else {
    const settingsFile = join(dir, 'bare.json');
    writeFileSync(settingsFile, JSON.stringify(bareSettings({ port, redisUrl: redis?.server.url ?? null, users: settings.users, jwks: settings.jwks })));
    child = spawnPinned({
      name: `bare oidc-provider (${store})`,
      core: options.serverCore,
      command: process.execPath,
      args: [...NODE_FLAGS, ...nodeFlags, 'bench/bare-provider.ts', settingsFile],
      cwd: ROOT,
      env: serverEnv(),
      logFile: join(dir, 'server.log'),
    });
  }
  children.push(child);
  await waitForHttp(`${issuer}/.well-known/openid-configuration`, child);
  const profiler = options.cpuProfDir ? await connectProfiler((await waitForLog(child, /Debugger listening on (ws:\/\/\S+)/))[1]!) : undefined;
  return { name, issuer, child, ...(redis ? { redis } : {}), ...(profiler ? { profiler } : {}) };
}

async function stopTarget(running: Running): Promise<void> {
  running.profiler?.close();
  await running.child.stop();
  children.splice(children.indexOf(running.child), 1);
  if (running.redis) {
    await running.redis.server.stop();
    redisServers.splice(redisServers.indexOf(running.redis.server), 1);
  }
}

/** Runs everything; false when some measurement failed. */
async function main(): Promise<boolean> {
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  log(`Sallyport benchmark — ${cpus().length} × ${cpuModel}, node ${process.version}`);
  log(`server under test: core ${options.serverCore}; load generator, upstream IdP and redis-servers: core ${options.loadCore} (this process: cores ${affinityOf(process.pid)})`);
  if (options.serverNodeFlags.length > 0) log(`servers run with ${options.serverNodeFlags.join(' ')}`);
  log(`${options.duration} s measured after ${options.warmup} s warm-up; ${options.connections} connections (requests), ${options.flowConcurrency} concurrent browsers (flows)`);
  log(`work directory (configs, server logs): ${workDir}\n`);

  if (options.cpuProfDir) mkdirSync(options.cpuProfDir, { recursive: true });
  const users = await benchUsers();
  const jwks = await signingJwks();
  const ports = Object.fromEntries(await Promise.all(options.stores.map(async (s) => [s, await freePort()] as const))) as Record<StoreName, number>;

  // One upstream IdP (like Okta) for the whole run, with every Sallyport registered.
  const upstream = spawnPinned({
    name: 'upstream IdP',
    core: options.loadCore,
    command: process.execPath,
    args: [...NODE_FLAGS, 'bench/upstream.ts', options.stores.map((s) => `http://127.0.0.1:${ports[s]}`).join(',')],
    cwd: ROOT,
    env: serverEnv(),
    logFile: join(workDir, 'upstream.log'),
  });
  children.push(upstream);
  const upstreamIssuer = JSON.parse((await waitForLog(upstream, /^\{.*"issuer".*\}$/m))[0]) as { issuer: string };

  const rows: Row[] = [];
  for (const store of options.stores) {
    const running: Running[] = [];
    for (const name of options.targets) {
      const port = name === 'sallyport' ? ports[store] : await freePort();
      running.push(await startTarget(name, store, port, { upstreamIssuer: upstreamIssuer.issuer, users, jwks }));
    }
    for (const r of running) log(`${r.name} (${store}) pid ${r.child.pid} on core ${affinityOf(r.child.pid)}${r.redis ? `, its redis-server pid ${r.redis.pid} on core ${affinityOf(r.redis.pid)}` : ''}: ${r.issuer}`);
    log('');
    for (const scenario of options.scenarios) {
      for (const r of running) {
        if (scenario === 'federated' && r.name === 'bare') {
          rows.push({ scenario, store, target: 'bare', measurement: null });
          continue;
        }
        process.stdout.write(`  ${scenario} · ${store} · ${r.name} … `);
        try {
          const m = await runScenario(
            scenario,
            {
              issuer: r.issuer,
              serverPid: r.child.pid,
              serverCore: options.serverCore,
              redis: r.redis ? { pid: r.redis.pid, url: r.redis.server.url } : undefined,
              profile: r.profiler && options.cpuProfDir ? { session: r.profiler, file: join(options.cpuProfDir, `${scenario}-${store}-${r.name}.cpuprofile`) } : undefined,
            },
            options,
          );
          rows.push({ scenario, store, target: r.name, measurement: m });
          log(`${fmtRate(m, scenario)}, p99 ${m.p99.toFixed(1)} ms, ${m.errors} errors${options.cpuProfDir ? ` (profile of ${m.ok + m.errors} ${UNITS[scenario]}s)` : ''}`);
        } catch (err) {
          log(`failed: ${err instanceof Error ? err.message : String(err)}`);
          rows.push({ scenario, store, target: r.name, measurement: null, failure: err instanceof Error ? err.message : String(err) });
        }
      }
    }
    for (const r of running) await stopTarget(r);
    log('');
  }

  log(LEGEND);
  for (const scenario of options.scenarios) {
    log(formatScenarioTable(scenario, DESCRIPTIONS[scenario], UNITS[scenario], rows.filter((r) => r.scenario === scenario), options));
  }
  const targets = evaluateTargets(rows);
  log(formatTargets(targets, options));
  log('Markdown summary:\n');
  log(formatSummaryMarkdown(rows, options));
  if (options.jsonPath) {
    writeFileSync(options.jsonPath, JSON.stringify({ date: new Date().toISOString(), cpu: cpuModel, cores: cpus().length, node: process.version, options, rows, targets }, null, 2));
    log(`results written to ${options.jsonPath}`);
  }
  return rows.every((r) => !r.failure);
}

function fmtRate(m: Measurement, scenario: ScenarioName): string {
  return `${m.rate.toFixed(scenario === 'signin' || scenario === 'federated' ? 1 : 0)} ${UNITS[scenario]}/s`;
}

let succeeded = false;
try {
  succeeded = await main();
} finally {
  await cleanUp();
  // Kept after a failure (the server logs explain it) or when asked to.
  if (succeeded && !process.env['BENCH_KEEP']) rmSync(workDir, { recursive: true, force: true });
  else {
    process.stderr.write(`server logs kept in ${workDir}\n`);
    if (!succeeded) process.exitCode = 1;
  }
}
