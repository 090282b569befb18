/**
 * Processes of a benchmark run: pinning to cores with taskset (util-linux), starting
 * servers as child processes with their output in log files, waiting until they answer,
 * and reading how much CPU a process has used from /proc/<pid>/stat.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

export function assertTaskset(cores: number[]): void {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('taskset is required to pin processes to cores (Debian/Ubuntu: apt-get install util-linux)');
  }
  const needed = Math.max(...cores) + 1;
  if (availableParallelism() < needed) {
    throw new Error(`the benchmark pins processes to cores ${cores.join(' and ')}; this machine has ${availableParallelism()} core(s)`);
  }
}

/** Pin every thread of this process (and so every child it starts later) to `core`. */
export function pinSelf(core: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' });
}

/** The cores `pid` may run on, as taskset reports them (e.g. "0"). */
export function affinityOf(pid: number): string {
  return execFileSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' }).trim().split(':').pop()!.trim();
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** CPU time (user + system, all threads) `pid` has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** Busy time (everything but idle and iowait) of one core since boot, in seconds. */
export function coreBusySeconds(core: number): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `));
  if (!line) return Number.NaN;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  void idle;
  void iowait;
  return (user! + nice! + system! + irq! + softirq! + steal!) / ticksPerSecond();
}

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Start `command` pinned to `core`. taskset execs the command, so the pid is the
 * command's own. Output goes to `logFile`.
 */
export function spawnPinned(options: { name: string; core: number; command: string; args: string[]; env?: Record<string, string>; logFile: string; cwd?: string }): Child {
  const out = openSync(options.logFile, 'a');
  const child = spawn('taskset', ['-c', String(options.core), options.command, ...options.args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', out, out],
  });
  if (child.pid === undefined) throw new Error(`could not start ${options.name}`);
  return {
    name: options.name,
    pid: child.pid,
    process: child,
    logFile: options.logFile,
    stop: () => stopChild(child),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Poll `url` until it answers 200; fail early when the process exits. */
export async function waitForHttp(url: string, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.process.exitCode !== null) {
      throw new Error(`${child.name} exited with code ${child.process.exitCode}; see ${child.logFile}:\n${tail(child.logFile)}`);
    }
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms; see ${child.logFile}:\n${tail(child.logFile)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Wait for a line on the child's log matching `pattern`; returns the match. */
export async function waitForLog(child: Child, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(readFileSync(child.logFile, 'utf8'));
    if (match) return match;
    if (child.process.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${child.name} did not start; see ${child.logFile}:\n${tail(child.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
