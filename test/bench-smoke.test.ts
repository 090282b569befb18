/**
 * The benchmark's own parts still work: the bare oidc-provider starts as a process, a
 * person signs in through its pages, and the request scenarios run briefly without
 * errors (client credentials; refresh with rotation, where every response's token is
 * used next). No timing is asserted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bareSettings, benchUsers, signingJwks } from '../bench/fixtures.ts';
import { localSignIn } from '../bench/flows.ts';
import type { BenchOptions } from '../bench/options.ts';
import { freePort } from '../bench/processes.ts';
import { runScenario, type Target } from '../bench/scenarios.ts';

describe('benchmark against the bare provider', () => {
  let child: ChildProcess;
  let dir: string;
  let target: Target;
  const options: BenchOptions = {
    scenarios: [],
    stores: ['memory'],
    targets: ['bare'],
    duration: 0.5,
    warmup: 0,
    connections: 2,
    flowConcurrency: 1,
    serverCore: 0,
    loadCore: 1,
    serverNodeFlags: [],
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sallyport-bench-test-'));
    const port = await freePort();
    const settingsFile = join(dir, 'bare.json');
    writeFileSync(settingsFile, JSON.stringify(bareSettings({ port, redisUrl: null, users: await benchUsers(), jwks: await signingJwks() })));
    child = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'bench/bare-provider.ts', settingsFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 200 && !output.includes('listening'); i++) {
      if (child.exitCode !== null) throw new Error(`bare provider exited: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(output).toContain('listening');
    target = { issuer: `http://127.0.0.1:${port}`, serverPid: child.pid!, serverCore: 0 };
  });

  afterAll(() => {
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs a person in through its pages (password checked with scrypt) and issues tokens', async () => {
    const tokens = await localSignIn(target.issuer, { user: 1 });
    expect(tokens.access_token).toMatch(/^[\w-]{20,}$/);
    expect(tokens.id_token?.split('.')).toHaveLength(3);
    // A flow that does not reach the client counts as failed, never as done.
    await expect(localSignIn(target.issuer, { user: 1, client: { id: 'unknown', redirectUri: 'http://127.0.0.1:9/cb' } })).rejects.toThrow(/unexpected page 400/);
  });

  it('runs the client_credentials scenario without errors', async () => {
    const m = await runScenario('client_credentials', target, options);
    expect(m.ok).toBeGreaterThan(0);
    expect(m.errors).toBe(0);
    expect(m.p99).toBeGreaterThan(0);
  });

  it('runs the refresh scenario (rotation) without errors', async () => {
    const m = await runScenario('refresh', target, { ...options, connections: 1 });
    expect(m.ok).toBeGreaterThan(1);
    expect(m.errors).toBe(0);
  });
});
