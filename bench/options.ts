/**
 * What a benchmark run does, from the command line (scenario and store names) and the
 * environment (durations, concurrency, cores). `npm run bench -- --help` lists them.
 */

export const SCENARIOS = ['client_credentials', 'introspection', 'refresh', 'signin', 'federated'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const STORES = ['memory', 'redis'] as const;
export type StoreName = (typeof STORES)[number];
export const TARGETS = ['sallyport', 'bare'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface BenchOptions {
  scenarios: ScenarioName[];
  stores: StoreName[];
  targets: TargetName[];
  /** Seconds measured per scenario and server. */
  duration: number;
  /** Seconds of unmeasured load before each measurement. */
  warmup: number;
  /** Connections of the request scenarios. */
  connections: number;
  /** Concurrent browsers of the flow scenarios. */
  flowConcurrency: number;
  serverCore: number;
  loadCore: number;
  /** Write the results as JSON here. */
  jsonPath?: string | undefined;
  /** Extra node flags for both servers (e.g. GC tuning). */
  serverNodeFlags: string[];
  /** Run the servers with --cpu-prof and write the profiles here. */
  cpuProfDir?: string | undefined;
}

export const HELP = `Usage: npm run bench -- [scenario…] [memory|redis…] [sallyport|bare]

Scenarios: ${SCENARIOS.join(', ')} (default: all)
Stores:    memory, redis (default: both)
Servers:   sallyport, bare (default: both)

Environment:
  BENCH_DURATION=10          seconds measured per scenario, store and server
  BENCH_WARMUP=2             seconds of load before each measurement, not counted
  BENCH_CONNECTIONS=20       connections of the request scenarios
  BENCH_FLOW_CONCURRENCY=10  concurrent browsers of the sign-in flow scenarios
  BENCH_SERVER_CORE=0        core the server under test is pinned to
  BENCH_LOAD_CORE=1          core of the load generator, the upstream IdP and redis-server
  BENCH_NODE_FLAGS="…"       extra node flags for both servers, e.g. --single-threaded-gc
  BENCH_JSON=path            also write the results as JSON
  BENCH_KEEP=1               keep the work directory (configs, server logs)
  BENCH_CPU_PROF=dir         run the servers with --cpu-prof, profiles written to dir
                             (summarise one with: node bench/profile-summary.ts <file>)
`;

function number(env: Record<string, string | undefined>, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}: expected a number >= ${min}, got "${raw}"`);
  return value;
}

export function parseOptions(argv: string[], env: Record<string, string | undefined>): BenchOptions | 'help' {
  const scenarios: ScenarioName[] = [];
  const stores: StoreName[] = [];
  const targets: TargetName[] = [];
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') return 'help';
    const name = arg.replace(/-/g, '_');
    if ((SCENARIOS as readonly string[]).includes(name)) scenarios.push(name as ScenarioName);
    else if ((STORES as readonly string[]).includes(arg)) stores.push(arg as StoreName);
    else if ((TARGETS as readonly string[]).includes(arg)) targets.push(arg as TargetName);
    else throw new Error(`unknown argument "${arg}"\n\n${HELP}`);
  }
  const serverCore = number(env, 'BENCH_SERVER_CORE', 0, 0);
  const loadCore = number(env, 'BENCH_LOAD_CORE', 1, 0);
  if (serverCore === loadCore) throw new Error('BENCH_SERVER_CORE and BENCH_LOAD_CORE must differ');
  return {
    scenarios: scenarios.length > 0 ? SCENARIOS.filter((s) => scenarios.includes(s)) : [...SCENARIOS],
    stores: stores.length > 0 ? STORES.filter((s) => stores.includes(s)) : [...STORES],
    targets: targets.length > 0 ? TARGETS.filter((t) => targets.includes(t)) : [...TARGETS],
    duration: number(env, 'BENCH_DURATION', 10, 0.1),
    warmup: number(env, 'BENCH_WARMUP', 2, 0),
    connections: Math.round(number(env, 'BENCH_CONNECTIONS', 20, 1)),
    flowConcurrency: Math.round(number(env, 'BENCH_FLOW_CONCURRENCY', 10, 1)),
    serverCore,
    loadCore,
    serverNodeFlags: (env['BENCH_NODE_FLAGS'] ?? '').split(/\s+/).filter(Boolean),
    jsonPath: env['BENCH_JSON'] || undefined,
    cpuProfDir: env['BENCH_CPU_PROF'] || undefined,
  };
}
