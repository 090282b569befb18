/**
 * Configuration loader: YAML file + environment overrides → validated, frozen Config.
 *
 * `main.ts` hands in `process.env`; this is the only code that interprets it. Every
 * problem is reported at once, each with its path, so an operator fixes a config in
 * one round instead of one error per restart.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { configSchema, type Config } from './schema.ts';
import { DEFAULT_ROLES } from '../admin/scopes.ts';

/** The demo configuration `npm start` uses when SALLYPORT_CONFIG is not set. */
export const DEMO_CONFIG_PATH = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));

/**
 * Every secret shipped in example configs contains this marker, so production mode can
 * recognise and refuse them however they were copied around.
 */
export const DEMO_SECRET_MARKER = 'insecure-demo';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface LoadOptions {
  /** Environment variables (normally process.env). */
  env: Record<string, string | undefined>;
  /** Explicit file path; otherwise SALLYPORT_CONFIG, otherwise the demo file. */
  path?: string;
}

export async function loadConfigFile(options: LoadOptions): Promise<Config> {
  const path = options.path ?? options.env['SALLYPORT_CONFIG'] ?? DEMO_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(path, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`));
  }
  return parseConfig(doc.toJS() ?? {}, options.env, path);
}

/** Validate a raw config object (already parsed), applying environment overrides. */
export function parseConfig(raw: unknown, env: Record<string, string | undefined>, source = 'config'): Config {
  const problems: string[] = [];
  const merged = applyEnvOverrides(raw, env, problems);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${formatPath(issue.path)}: ${issue.message}`);
    }
    throw new ConfigError(source, problems);
  }
  const config = result.data;
  problems.push(...crossFieldProblems(config));
  if (env['NODE_ENV'] === 'production') problems.push(...productionProblems(config));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(config);
}

/** Environment variables carrying storage secrets: variable, storage field, topologies it applies to. */
const REDIS_SECRET_ENV: ReadonlyArray<readonly [string, string, readonly string[]]> = [
  ['REDIS_PASSWORD', 'password', ['sentinel', 'cluster']],
  ['REDIS_SENTINEL_PASSWORD', 'sentinelPassword', ['sentinel']],
];

function applyEnvOverrides(raw: unknown, env: Record<string, string | undefined>, problems: string[]): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = structuredClone(raw as Record<string, unknown>);
  const port = env['PORT'];
  if (port !== undefined && port !== '') {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`PORT: expected a port number, got "${port}"`);
    else {
      out['listen'] = { ...(out['listen'] as object | undefined), port: n };
      // A local issuer follows the port, so `PORT=4000 npm start` just works; a public
      // issuer (behind a proxy) is never rewritten.
      const issuer = typeof out['issuer'] === 'string' ? URL.parse(out['issuer']) : null;
      if (!env['ISSUER'] && issuer && issuer.protocol === 'http:' && isLoopbackHost(issuer.hostname) && n !== 0) {
        issuer.port = String(n);
        out['issuer'] = issuer.origin;
      }
    }
  }
  if (env['ISSUER']) out['issuer'] = env['ISSUER'];
  if (env['REDIS_URL']) {
    const prefix = (out['storage'] as { prefix?: unknown } | undefined)?.prefix;
    out['storage'] = { type: 'redis', url: env['REDIS_URL'], ...(prefix === undefined ? {} : { prefix }) };
  }
  // Redis passwords of Sentinel and Cluster set-ups, so they can stay out of the file (a
  // standalone Redis takes its password inside REDIS_URL).
  for (const [name, field, topologies] of REDIS_SECRET_ENV) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    const storage = out['storage'] as Record<string, unknown> | undefined;
    const topology = storage?.['type'] === 'redis' ? storage['topology'] : undefined;
    if (typeof topology === 'string' && topologies.includes(topology)) out['storage'] = { ...storage, [field]: value };
    else problems.push(`${name}: only applies to storage.type redis with topology ${topologies.join(' or ')}`);
  }
  if (env['SALLYPORT_COOKIE_KEYS']) {
    out['cookies'] = { keys: env['SALLYPORT_COOKIE_KEYS'].split(',').map((k) => k.trim()).filter(Boolean) };
  }
  return out;
}

function crossFieldProblems(config: Config): string[] {
  const problems: string[] = [];
  const seenClients = new Set<string>();
  config.clients.forEach((c, i) => {
    if (seenClients.has(c.client_id)) problems.push(`clients[${i}].client_id: duplicate client_id "${c.client_id}"`);
    seenClients.add(c.client_id);
  });
  const seenUsers = new Set<string>();
  config.users.forEach((u, i) => {
    const key = u.username.toLowerCase();
    if (seenUsers.has(key)) problems.push(`users[${i}].username: duplicate username "${u.username}"`);
    seenUsers.add(key);
    if (!u.password && !u.passwordHash) problems.push(`users[${i}]: a password or passwordHash is required`);
  });
  const seenRs = new Set<string>();
  config.resourceServers.forEach((rs, i) => {
    if (seenRs.has(rs.indicator)) problems.push(`resourceServers[${i}].indicator: duplicate indicator`);
    seenRs.add(rs.indicator);
  });
  const seenIdps = new Set<string>();
  config.identityProviders.forEach((idp, i) => {
    if (seenIdps.has(idp.id)) problems.push(`identityProviders[${i}].id: duplicate id "${idp.id}"`);
    seenIdps.add(idp.id);
  });
  const roles = new Set([...Object.keys(DEFAULT_ROLES), ...Object.keys(config.roles)]);
  config.clients.forEach((c, i) => {
    (c.roles ?? []).forEach((r, j) => {
      if (!roles.has(r)) problems.push(`clients[${i}].roles[${j}]: unknown role "${r}"`);
    });
  });
  const seenGroups = new Set<string>();
  config.groups.forEach((g, i) => {
    if (seenGroups.has(g.name)) problems.push(`groups[${i}].name: duplicate group "${g.name}"`);
    seenGroups.add(g.name);
    g.roles.forEach((r, j) => {
      if (!roles.has(r)) problems.push(`groups[${i}].roles[${j}]: unknown role "${r}"`);
    });
  });
  if (config.federation.recordLifetime < config.session.maxLifetime) {
    problems.push('federation.recordLifetime: must be at least session.maxLifetime (the record has to outlive the session)');
  }
  if (config.session.maxLifetime < config.session.idleTimeout) {
    problems.push('session.maxLifetime: must not be shorter than session.idleTimeout');
  }
  return problems;
}

/**
 * Production refuses what is only safe on a laptop: the demo secrets, plain-text
 * passwords in the file, and a non-TLS issuer reachable from elsewhere.
 */
function productionProblems(config: Config): string[] {
  const problems: string[] = [];
  const issuer = new URL(config.issuer);
  if (issuer.protocol !== 'https:' && !isLoopbackHost(issuer.hostname)) {
    problems.push('issuer: production requires an https issuer (http is only allowed for localhost)');
  }
  config.cookies.keys.forEach((k, i) => {
    if (k.includes(DEMO_SECRET_MARKER)) problems.push(`cookies.keys[${i}]: the demo cookie key must not be used in production; set SALLYPORT_COOKIE_KEYS`);
  });
  config.clients.forEach((c, i) => {
    if (c.client_secret?.includes(DEMO_SECRET_MARKER)) {
      problems.push(`clients[${i}].client_secret: the demo secret of "${c.client_id}" must not be used in production`);
    }
  });
  if (config.metrics.bearerToken?.includes(DEMO_SECRET_MARKER)) {
    problems.push('metrics.bearerToken: the demo token must not be used in production');
  }
  config.users.forEach((u, i) => {
    if (u.password) problems.push(`users[${i}].password: plain-text passwords are refused in production; use passwordHash (npm run hash-password)`);
  });
  return problems;
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]' || hostname === '::1';
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
