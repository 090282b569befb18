/**
 * Launches a private, throw-away Redis Sentinel setup for tests: a master, optionally one
 * replica of it, and one sentinel (quorum 1) monitoring them, each a redis-server from
 * redis-server.ts (loopback, free port, own temp directory, cleaned up on stop() and on
 * process exit). The sentinel runs from a config file of its own, which it rewrites as
 * it learns the topology.
 */
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from './redis-server.ts';

export interface RedisSentinelOptions {
  /** Name the sentinel monitors the master under. Default `sallyport`. */
  masterName?: string;
  /** requirepass (and masterauth) of the master and the replica. Default: none. */
  password?: string;
  /** requirepass of the sentinel itself. Default: none. */
  sentinelPassword?: string;
  /** Start one replica, so that a failover has somewhere to go. Default false. */
  replica?: boolean;
}

export interface RedisSentinelSetup {
  masterName: string;
  /** The server started as master, and the replica (if any); roles swap on failover. */
  servers: RedisServer[];
  sentinel: RedisServer;
  /** host/port of the sentinel (what a client is configured with). */
  sentinels: Array<{ host: string; port: number }>;
  /** The master's port as the sentinel reports it now. */
  masterPort(): Promise<number>;
  /**
   * SENTINEL FAILOVER, once the sentinel knows a healthy replica; resolves when the
   * sentinel has announced the switch (+switch-master) and the replica has taken the
   * master role. Returns the new master's port.
   */
  failover(timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 20_000;

export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelSetup> {
  const masterName = options.masterName ?? 'sallyport';
  const { password, sentinelPassword } = options;
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
  const started: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    // The sentinel first (it would otherwise start a failover as the servers go).
    for (const server of [...started].reverse()) await server.stop();
  };

  try {
    const master = await startRedisServer({ args: auth });
    started.push(master);
    const servers = [master];
    if (options.replica) {
      const replica = await startRedisServer({ args: [...auth, '--replicaof', '127.0.0.1', String(master.port)] });
      started.push(replica);
      servers.push(replica);
    }
    const sentinel = await startRedisServer({
      args: ['--sentinel'],
      configFile: [
        `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${masterName} 2000`,
        `sentinel failover-timeout ${masterName} 10000`,
        ...(password === undefined ? [] : [`sentinel auth-pass ${masterName} ${password}`]),
        ...(sentinelPassword === undefined ? [] : [`requirepass ${sentinelPassword}`]),
        '',
      ].join('\n'),
    });
    started.push(sentinel);

    const connectSentinel = (): Redis =>
      new Redis({ host: '127.0.0.1', port: sentinel.port, password: sentinelPassword, lazyConnect: true, maxRetriesPerRequest: 0 });
    const connectServer = (port: number): Redis =>
      new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 0 });

    const masterPort = async (): Promise<number> => {
      const client = connectSentinel();
      try {
        const reply = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string] | null;
        if (reply === null) throw new Error(`the sentinel does not know master ${masterName}`);
        return Number(reply[1]);
      } finally {
        client.disconnect();
      }
    };

    const failover = async (timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number> => {
      const deadline = Date.now() + timeoutMs;
      const client = connectSentinel();
      try {
        const oldPort = await masterPort();
        // The sentinel learns replicas from the master's INFO (every 10 s, sooner at start);
        // a failover needs one it has seen linked to the master.
        await until(deadline, 'the sentinel to see a healthy replica', async () => {
          const replicas = (await client.call('SENTINEL', 'REPLICAS', masterName)) as string[][];
          return replicas.some((fields) => {
            const info = pairs(fields);
            return !/s_down|o_down|disconnected/.test(info['flags'] ?? '') && info['master-link-status'] === 'ok';
          });
        });
        // The failover is over when the sentinel announces +switch-master (clients such as
        // ioredis's failover detector act on it); GET-MASTER-ADDR-BY-NAME already names
        // the promoted replica a moment earlier.
        const subscriber = connectSentinel();
        let newPort = oldPort;
        try {
          const switched = new Promise<void>((resolve) => {
            subscriber.on('message', (_channel: string, message: string) => {
              // "<name> <old-ip> <old-port> <new-ip> <new-port>"
              const [name, , , , port] = message.split(' ');
              if (name === masterName) {
                newPort = Number(port);
                resolve();
              }
            });
          });
          await subscriber.subscribe('+switch-master');
          await client.call('SENTINEL', 'FAILOVER', masterName);
          await Promise.race([
            switched,
            new Promise((_, reject) => setTimeout(() => reject(new Error('no +switch-master from the sentinel')), Math.max(0, deadline - Date.now()))),
          ]);
        } finally {
          subscriber.disconnect();
        }
        if (newPort === oldPort) throw new Error('the failover kept the old master');
        const promoted = connectServer(newPort);
        try {
          await until(deadline, 'the replica to become master', async () => String(await promoted.call('ROLE')).startsWith('master'));
        } finally {
          promoted.disconnect();
        }
        return newPort;
      } finally {
        client.disconnect();
      }
    };

    return { masterName, servers, sentinel, sentinels: [{ host: '127.0.0.1', port: sentinel.port }], masterPort, failover, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A flat [key, value, key, value, ...] reply as an object. */
function pairs(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

async function until(deadline: number, what: string, check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    let lastError: unknown;
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
