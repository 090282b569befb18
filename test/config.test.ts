import { describe, expect, it } from 'vitest';
import { ConfigError, DEMO_CONFIG_PATH, loadConfigFile, parseConfig } from '../src/config/load.ts';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KEY = 'k'.repeat(40);
const minimal = () => ({ issuer: 'https://id.example.com', cookies: { keys: [KEY] } });

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('applies documented defaults', () => {
    const config = parseConfig(minimal(), {});
    expect(config.listen.port).toBe(3000);
    expect(config.storage).toEqual({ type: 'memory', prefix: 'sp:' });
    expect(config.session).toEqual({ idleTimeout: 7200, maxLifetime: 43200 });
    expect(config.tokens.authorizationCode).toBe(60);
    expect(config.login.lockout).toEqual({ maxFailures: 5, window: 900 });
    expect(Object.isFrozen(config.cookies.keys)).toBe(true);
  });

  it('reports every problem at once, each by its path', () => {
    const problems = problemsOf(() =>
      parseConfig(
        {
          issuer: 'ftp://x',
          cookies: { keys: ['short'] },
          session: { idleTimeout: '2 weeks' },
          clients: [{ client_id: 'a', client_secret: 'too-short' }, { client_id: 'b', token_endpoint_auth_method: 'none', require_pkce: false }],
          users: [{ username: 'x', password: 'p' }],
          surprise: true,
        },
        {},
      ),
    );
    const paths = problems.map((p) => p.split(':')[0]);
    expect(paths).toEqual(
      expect.arrayContaining(['issuer', 'cookies.keys[0]', 'session.idleTimeout', 'clients[0].client_secret', 'clients[1].require_pkce', 'users[0].password', '(root)']),
    );
    expect(problems.find((p) => p.startsWith('(root)'))).toMatch(/surprise/);
  });

  it('reports cross-field problems by path', () => {
    const problems = problemsOf(() =>
      parseConfig({ ...minimal(), clients: [{ client_id: 'a' }, { client_id: 'a' }], users: [{ username: 'u' }], session: { idleTimeout: '2h', maxLifetime: '1h' } }, {}),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'clients[1].client_id: duplicate client_id "a"',
        'users[0]: a password or passwordHash is required',
        'session.maxLifetime: must not be shorter than session.idleTimeout',
      ]),
    );
  });

  it('takes PORT, ISSUER, REDIS_URL and SALLYPORT_COOKIE_KEYS from the environment', () => {
    const config = parseConfig(minimal(), {
      PORT: '4123',
      ISSUER: 'https://login.example.org',
      REDIS_URL: 'redis://127.0.0.1:6390/2',
      SALLYPORT_COOKIE_KEYS: `${'a'.repeat(32)}, ${'b'.repeat(32)}`,
    });
    expect(config.listen.port).toBe(4123);
    expect(config.issuer).toBe('https://login.example.org');
    expect(config.storage).toEqual({ type: 'redis', url: 'redis://127.0.0.1:6390/2', prefix: 'sp:' });
    expect(config.cookies.keys).toEqual(['a'.repeat(32), 'b'.repeat(32)]);
    expect(problemsOf(() => parseConfig(minimal(), { PORT: 'eighty' }))).toEqual(['PORT: expected a port number, got "eighty"']);
  });

  it('refuses an issuer with a path', () => {
    expect(problemsOf(() => parseConfig({ ...minimal(), issuer: 'https://x.example/oidc' }, {}))[0]).toMatch(/^issuer: /);
  });

  it('in production refuses the demo secrets, plain-text passwords and an http issuer', async () => {
    const demo = await loadConfigFile({ env: {} });
    expect(demo.issuer).toBe('http://localhost:3000');
    await expect(loadConfigFile({ env: { NODE_ENV: 'production', ISSUER: 'http://id.example.com' } })).rejects.toSatisfy((err: unknown) => {
      const problems = (err as ConfigError).problems;
      expect(problems).toEqual(
        expect.arrayContaining([
          'issuer: production requires an https issuer (http is only allowed for localhost)',
          expect.stringMatching(/^cookies\.keys\[0\]: the demo cookie key/),
          expect.stringMatching(/^clients\[0\]\.client_secret: the demo secret of "demo-web"/),
          expect.stringMatching(/^clients\[2\]\.client_secret: the demo secret of "demo-service"/),
          expect.stringMatching(/^users\[0\]\.password: plain-text passwords are refused in production/),
        ]),
      );
      return true;
    });
    // http on localhost stays allowed (local production-mode trials).
    expect(() => parseConfig(minimal(), { NODE_ENV: 'production', ISSUER: 'http://localhost:3000' })).not.toThrow();
  });

  it('reports YAML syntax errors and unreadable files clearly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sp-config-'));
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'issuer: [unclosed\n');
    await expect(loadConfigFile({ env: {}, path: file })).rejects.toThrow(/YAML/);
    await expect(loadConfigFile({ env: { SALLYPORT_CONFIG: join(dir, 'missing.yaml') } })).rejects.toThrow(/cannot read the file: ENOENT/);
    expect(DEMO_CONFIG_PATH).toMatch(/config\/demo\.yaml$/);
  });
});
