/**
 * Launches a private, throw-away Redis Cluster for tests: N masters (no replicas), each a
 * redis-server from redis-server.ts (loopback, free port, own temp directory, cleaned up
 * on stop() and on process exit) with cluster mode on. The slots are split evenly and the
 * nodes introduced to each other with plain cluster commands (what `redis-cli --cluster
 * create` does), then the launcher waits until every node reports `cluster_state:ok`.
 */
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { redisServerAvailable, startRedisServer, type RedisServer } from './redis-server.ts';

export interface RedisClusterOptions {
  /** Number of masters. Default 3 (the smallest cluster Redis recommends). */
  masters?: number;
  /** requirepass (and masterauth) of every node. Default: none. */
  password?: string;
  /**
   * cluster-node-timeout: how long a node may be unreachable before the others mark it
   * failed (and, with no replica to promote, report cluster_state:fail). Default 2000 ms.
   */
  nodeTimeoutMs?: number;
  /** AOF persistence on every node, so a node restarted by a test keeps its data. Default false. */
  appendonly?: boolean;
}

export interface RedisCluster {
  /** The masters, in slot order (the first serves slot 0). */
  nodes: RedisServer[];
  /** host/port of every node (what a client takes as startup nodes). */
  addresses: Array<{ host: string; port: number }>;
  password: string | undefined;
  /** The master serving the slot of `key` (slots stay where the launcher put them). */
  masterOf(key: string): Promise<RedisServer>;
  /** A plain connection to one node, for inspecting it (the caller closes it). */
  connect(node: RedisServer): Redis;
  /** Resolve once every running node reports cluster_state:ok. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** Stop every node. */
  stop(): Promise<void>;
}

const SLOTS = 16384;
const FORMATION_TIMEOUT_MS = 20_000;

/**
 * `describe` for suites that start their own redis-server processes: runs wherever
 * redis-server is installed, and always in CI, where a missing redis-server fails the
 * run instead of skipping (the launcher throws).
 */
export const describeWithRedisServer = describe.runIf(redisServerAvailable() || Boolean(process.env['CI']));

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const count = options.masters ?? 3;
  const password = options.password;
  const args = [
    '--cluster-enabled', 'yes',
    // Relative to the node's own directory (redis-server changes into --dir).
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 2000),
    ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
  ];

  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  const connect = (node: RedisServer): Redis =>
    new Redis({ host: '127.0.0.1', port: node.port, password, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: true });

  const firstSlot = (i: number): number => Math.floor((SLOTS * i) / count);

  const waitUntilOk = async (timeoutMs = FORMATION_TIMEOUT_MS): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const clients = nodes.map(connect);
    try {
      for (;;) {
        const states = await Promise.all(clients.map(async (client) => {
          try {
            return /^cluster_state:(\w+)/m.exec(String(await client.cluster('INFO')))?.[1] ?? 'unknown';
          } catch (error) {
            return `unreachable (${error instanceof Error ? error.message : String(error)})`;
          }
        }));
        if (states.every((state) => state === 'ok')) return;
        if (Date.now() > deadline) {
          throw new Error(`Redis Cluster not ok within ${timeoutMs} ms: ${states.map((s, i) => `${nodes[i]!.port}: ${s}`).join(', ')}`);
        }
        await sleep(100);
      }
    } finally {
      for (const client of clients) client.disconnect();
    }
  };

  try {
    for (let i = 0; i < count; i++) nodes.push(await startRedisServer({ args, appendonly: options.appendonly ?? false }));

    const clients = nodes.map(connect);
    try {
      // Each master takes an even share of the slots and a distinct config epoch (so no
      // epoch collision has to be resolved first), then the first node meets the others;
      // gossip spreads the rest.
      await Promise.all(clients.map(async (client, i) => {
        await client.call('CLUSTER', 'ADDSLOTSRANGE', String(firstSlot(i)), String(firstSlot(i + 1) - 1));
        await client.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1));
      }));
      for (const node of nodes.slice(1)) await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(node.port));
    } finally {
      for (const client of clients) client.disconnect();
    }
    await waitUntilOk();
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes,
    addresses: nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    password,
    async masterOf(key) {
      const client = connect(nodes[0]!);
      try {
        const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
        return nodes.findLast((_, i) => firstSlot(i) <= slot)!;
      } finally {
        client.disconnect();
      }
    },
    connect,
    waitUntilOk,
    stop,
  };
}

/** A loopback port that was just free (and so is almost certainly closed). */
export async function closedPort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
