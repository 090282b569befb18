/**
 * Launches a private, throw-away redis-server for tests: loopback only, a free port,
 * its own directory, no RDB snapshots. Tests must never touch a shared Redis (such as
 * one on 6379), so they always get one of these or an explicit REDIS_URL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface RedisServerOptions {
  /** Enable AOF persistence (appendonly yes), to test durability across restart(). */
  appendonly?: boolean;
  /** Extra redis-server arguments, e.g. ['--appendfsync', 'always']. */
  args?: string[];
  /** Data directory; default: a fresh temp dir removed when the process exits. */
  dir?: string;
  /**
   * Contents of a config file, written to `dir` once and read by redis-server before the
   * command-line options (Sentinel mode needs a config file it can rewrite).
   */
  configFile?: string;
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** SIGTERM and wait for exit (Redis flushes the AOF on a clean shutdown). */
  stop(): Promise<void>;
  /** Stop (if running) and start again on the same port and dir. */
  restart(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 10_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;

// A crashed or interrupted test run must not leave servers (or their files) behind. One
// shared 'exit' listener (synchronous work only) rather than one per server.
const exitCleanups = new Set<() => void>();
process.once('exit', () => {
  for (const cleanUp of exitCleanups) cleanUp();
});

/** Absolute path of redis-server on PATH, or null. */
function findRedisServer(): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return null;
}

export function redisServerAvailable(): boolean {
  return findRedisServer() !== null;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  if (binary === null) throw new Error('redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server)');

  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'sallyport-redis-'));
  let child: ChildProcess | null = null;

  const cleanUpOnExit = (): void => {
    child?.kill('SIGKILL');
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
  };
  exitCleanups.add(cleanUpOnExit);

  const configPath = join(dir, 'redis.conf');
  if (options.configFile !== undefined) writeFileSync(configPath, options.configFile);

  const launch = async (port: number): Promise<void> => {
    const args = [
      ...(options.configFile === undefined ? [] : [configPath]),
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', options.appendonly ? 'yes' : 'no',
      '--dir', dir,
      '--daemonize', 'no',
      '--logfile', '',
      '--loglevel', 'warning',
      ...(options.args ?? []),
    ];
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // Keep the tail of its output to explain a failed start.
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let exited: string | null = null;
    proc.once('exit', (code, signal) => {
      exited = `exited with ${signal ?? `code ${code}`}`;
      if (child === proc) child = null;
    });
    proc.once('error', (error) => {
      exited = `failed to spawn: ${error.message}`;
    });
    child = proc;

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (!(await answersPing(port))) {
      if (exited !== null) throw new Error(`redis-server on port ${port} ${exited}:\n${output}`);
      if (Date.now() > deadline) {
        await stopProcess(proc);
        throw new Error(`redis-server on port ${port} did not answer PING within ${STARTUP_TIMEOUT_MS} ms:\n${output}`);
      }
      await sleep(50);
    }
  };

  // The free port can be taken between probing and binding; try a few before giving up.
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch(port);
      break;
    } catch (error) {
      if (attempt >= 3) {
        cleanUpOnExit();
        exitCleanups.delete(cleanUpOnExit);
        throw error;
      }
    }
  }

  const stop = async (): Promise<void> => {
    const proc = child;
    if (proc !== null) await stopProcess(proc);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    stop,
    async restart() {
      await stop();
      await launch(port);
    },
  };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), SHUTDOWN_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A port that was free on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One raw PING over RESP, so the launcher needs no Redis client. */
async function answersPing(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      // "-LOADING ..." while an AOF is replayed: not ready yet. "-NOAUTH ...": up, and
      // protected by a password (requirepass) the caller knows.
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
