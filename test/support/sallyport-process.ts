/**
 * Sallyport as operators run it: `src/main.ts` in a child process on the pinned Node
 * (the one running the tests), configured by a file and the environment. For tests
 * that need real processes: several instances behind a load balancer, a process that
 * must survive a store outage, one killed with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface SallyportProcess {
  name: string;
  /** http://127.0.0.1:<port>: where this process listens (not the issuer behind a proxy). */
  origin: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stdout (pino's JSON lines, the start-up banner). */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** SIGTERM, wait for the graceful exit (SIGKILL after a while); resolves with the exit code. */
  stop(): Promise<number | null>;
}

// A test run that dies must not leave servers behind.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Writes `config` (JSON is YAML) to a fresh temp dir; `remove()` deletes the dir. */
export async function writeConfigFile(config: object): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sallyport-config-'));
  const path = join(dir, 'config.yaml');
  await writeFile(path, JSON.stringify(config, null, 2));
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface StartProcessOptions {
  name: string;
  configFile: string;
  port: number;
  /** Environment besides PATH, SALLYPORT_CONFIG, PORT and LOG_LEVEL (e.g. ISSUER). */
  env?: Record<string, string>;
  /** pino level; default warn. */
  logLevel?: string;
}

/** A spawned `src/main.ts`, whether or not it gets as far as listening. */
export interface SpawnedSallyport {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** Resolves once the start-up banner is printed; rejects if the process exits first. */
  ready(name?: string): Promise<void>;
}

/**
 * Starts `src/main.ts` with exactly this environment (besides PATH; LOG_LEVEL defaults to
 * warn): for tests of start-up itself, which may be expected to fail.
 */
export function spawnSallyport(env: Record<string, string>): SpawnedSallyport {
  const child = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const ready = async (name = 'process') => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!/Sallyport is running/.test(stdout)) {
      if (!running()) throw new Error(`Sallyport ${name} exited while starting:\n${stdout}\n${stderr}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`Sallyport ${name} did not start within ${START_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, stdout: () => stdout, stderr: () => stderr, exited, running, ready };
}

export async function startSallyportProcess(options: StartProcessOptions): Promise<SallyportProcess> {
  const { child, stdout, stderr, exited, running, ready } = spawnSallyport({
    ...(options.logLevel ? { LOG_LEVEL: options.logLevel } : {}),
    SALLYPORT_CONFIG: options.configFile,
    PORT: String(options.port),
    ...options.env,
  });
  await ready(options.name);

  return {
    name: options.name,
    origin: `http://127.0.0.1:${options.port}`,
    port: options.port,
    child,
    stdout,
    stderr,
    exited,
    running,
    async stop() {
      if (running()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      return (await exited).code;
    },
  };
}
