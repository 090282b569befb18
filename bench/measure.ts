/**
 * Measuring one scenario against one server: a warm-up that is thrown away, then a
 * measured run during which every response time is kept (exact percentiles, not a
 * histogram's buckets), every non-2xx status, failed check and socket error is counted,
 * and the CPU time of the server process (and of its Redis, when it has one) is read
 * from /proc before and after.
 *
 * Request scenarios run on autocannon (fixed connections, one request in flight on
 * each); browser flows run in a loop of concurrent workers, each doing whole flows.
 */
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { writeFileSync } from 'node:fs';
import type { ProfilerSession } from './inspector.ts';
import { coreBusySeconds, cpuSeconds } from './processes.ts';

export interface Sampled {
  /** The server under test. */
  serverPid: number;
  /** The core it is pinned to. */
  serverCore: number;
  /** Its redis-server, when it has one. */
  redis?: { pid: number; url: string } | undefined;
  /** Profile the server during the measured run and write the profile to `file`. */
  profile?: { session: ProfilerSession; file: string } | undefined;
}

export interface Measurement {
  /** Completed operations per second: successful requests or flows. */
  rate: number;
  ok: number;
  errors: number;
  /** Error descriptions (status codes, failed checks, exceptions) with their counts. */
  errorKinds: Record<string, number>;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  seconds: number;
  /** Server CPU time per completed operation (ok + errors), microseconds. */
  cpuUs: number;
  /** Server CPU time over wall time (1 = the server's core was fully busy). */
  cpuBusy: number;
  /** redis-server CPU time per completed operation, microseconds. */
  redisCpuUs?: number | undefined;
  /** Commands redis-server processed per completed operation (including those run inside scripts). */
  redisCommands?: number | undefined;
  /** The same by command name (INFO commandstats), largest first. */
  redisCommandMix?: Record<string, number> | undefined;
  /** CPU time of this process (load generator) over wall time. */
  loaderBusy: number;
  /**
   * Time other processes ran on the server's core, over wall time: their share of the
   * core, which the server could not use. On a quiet machine about 0.
   */
  otherLoad: number;
}

export interface RequestScenario {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  /** A fixed body, or one built per request (e.g. the next refresh token). */
  body?: string;
  nextBody?: () => string;
  /** Whether a 2xx response really is what the scenario expects (e.g. `"active":true`). */
  check?: (body: string) => boolean;
  /** Sees every response (e.g. to keep the rotated refresh token). */
  onResponse?: (status: number, body: string) => void;
}

export interface RunOptions {
  duration: number;
  warmup: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function count(kinds: Record<string, number>, kind: string): void {
  kinds[kind] = (kinds[kind] ?? 0) + 1;
}

/** Wraps a measured run with the CPU readings and turns the raw data into a Measurement. */
/** Commands the Redis at `url` has processed so far, by name (INFO commandstats). */
async function redisCommandCounts(url: string): Promise<Map<string, number>> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const info = await client.info('commandstats');
    return new Map([...info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
  } finally {
    client.disconnect();
  }
}

async function measured(sampled: Sampled, run: () => Promise<{ ok: number; errors: number; errorKinds: Record<string, number>; latencies: number[] }>): Promise<Measurement> {
  const commands0 = sampled.redis ? await redisCommandCounts(sampled.redis.url) : undefined;
  await sampled.profile?.session.start();
  const server0 = cpuSeconds(sampled.serverPid);
  const core0 = coreBusySeconds(sampled.serverCore);
  const redis0 = sampled.redis ? cpuSeconds(sampled.redis.pid) : 0;
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const raw = await run();
  const seconds = (performance.now() - t0) / 1000;
  const serverCpu = cpuSeconds(sampled.serverPid) - server0;
  const coreBusy = coreBusySeconds(sampled.serverCore) - core0;
  if (sampled.profile) writeFileSync(sampled.profile.file, JSON.stringify(await sampled.profile.session.stop()));
  const redisCpu = sampled.redis ? cpuSeconds(sampled.redis.pid) - redis0 : undefined;
  const self = process.cpuUsage(self0);
  // The INFO calls themselves are counted too: negligible.
  const commands1 = sampled.redis ? await redisCommandCounts(sampled.redis.url) : undefined;
  const mix = commands1 && commands0 ? [...commands1].map(([name, calls]) => [name, calls - (commands0.get(name) ?? 0)] as const).filter(([, n]) => n > 0) : undefined;
  const completed = raw.ok + raw.errors;
  const sorted = raw.latencies.sort((a, b) => a - b);
  return {
    rate: raw.ok / seconds,
    ok: raw.ok,
    errors: raw.errors,
    errorKinds: raw.errorKinds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.at(-1) ?? Number.NaN,
    seconds,
    cpuUs: completed > 0 ? (serverCpu * 1e6) / completed : Number.NaN,
    cpuBusy: serverCpu / seconds,
    redisCpuUs: redisCpu === undefined || completed === 0 ? undefined : (redisCpu * 1e6) / completed,
    redisCommands: mix === undefined || completed === 0 ? undefined : mix.reduce((sum, [, n]) => sum + n, 0) / completed,
    redisCommandMix:
      mix === undefined || completed === 0
        ? undefined
        : Object.fromEntries(mix.sort((a, b) => b[1] - a[1]).map(([name, n]) => [name, Math.round((n / completed) * 100) / 100])),
    loaderBusy: (self.user + self.system) / 1e6 / seconds,
    otherLoad: Math.max(0, coreBusy - serverCpu) / seconds,
  };
}

/** One autocannon run; resolves with what was counted during it. */
function cannon(url: string, connections: number, duration: number, scenario: RequestScenario) {
  return new Promise<{ ok: number; errors: number; errorKinds: Record<string, number>; latencies: number[] }>((resolve, reject) => {
    const latencies: number[] = [];
    const errorKinds: Record<string, number> = {};
    let ok = 0;
    let errors = 0;
    const request: autocannon.Request = {
      method: scenario.method,
      path: scenario.path,
      headers: scenario.headers ?? {},
      ...(scenario.body !== undefined ? { body: scenario.body } : {}),
      ...(scenario.nextBody ? { setupRequest: (req: autocannon.Request) => ({ ...req, body: scenario.nextBody!() }) } : {}),
      onResponse: (status: number, body: string) => {
        scenario.onResponse?.(status, body);
        if (status < 200 || status >= 300) {
          errors++;
          count(errorKinds, `HTTP ${status}${/"error":"([\w-]+)"/.exec(body)?.[1] ? ` ${/"error":"([\w-]+)"/.exec(body)![1]}` : ''}`);
        } else if (scenario.check && !scenario.check(body)) {
          errors++;
          count(errorKinds, `unexpected body: ${body.slice(0, 80)}`);
        } else {
          ok++;
        }
      },
    };
    const instance = autocannon(
      { url, connections, duration, pipelining: 1, timeout: 10, requests: [request] },
      (err) => (err ? reject(err) : resolve({ ok, errors, errorKinds, latencies })),
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
    });
    instance.on('reqError', (err: Error) => {
      errors++;
      count(errorKinds, `socket: ${err.message}`);
    });
  });
}

export async function runRequests(url: string, connections: number, scenario: RequestScenario, options: RunOptions, sampled: Sampled): Promise<Measurement> {
  if (options.warmup > 0) await cannon(url, connections, options.warmup, scenario);
  return measured(sampled, () => cannon(url, connections, options.duration, scenario));
}

/** Whole flows by `concurrency` workers until `seconds` have passed (flows in progress finish). */
async function flowLoop(flow: (i: number) => Promise<void>, concurrency: number, seconds: number, first: { i: number }) {
  const latencies: number[] = [];
  const errorKinds: Record<string, number> = {};
  let ok = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      try {
        await flow(first.i++);
        ok++;
        latencies.push(performance.now() - t);
      } catch (err) {
        errors++;
        count(errorKinds, (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').slice(0, 160));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, errors, errorKinds, latencies };
}

export async function runFlows(flow: (i: number) => Promise<void>, concurrency: number, options: RunOptions, sampled: Sampled): Promise<Measurement> {
  const counter = { i: 0 };
  if (options.warmup > 0) await flowLoop(flow, concurrency, options.warmup, counter);
  return measured(sampled, () => flowLoop(flow, concurrency, options.duration, counter));
}
