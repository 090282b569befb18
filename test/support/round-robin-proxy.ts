/**
 * A plain round-robin reverse proxy for multi-instance tests, as a load balancer
 * without sticky sessions would be: every request goes to the next backend in turn,
 * whoever served the previous one. It terminates the public origin (its own URL is the
 * issuer) and tells the backends about it with X-Forwarded-Proto/Host/For, sending its
 * own Host header to each backend (as nginx does by default), so a backend only gets
 * the public origin right by trusting the forwarded headers.
 *
 * Tests read `log` to see which backend served which request, can pin the next request
 * that matches to a chosen backend (to force a step of a flow onto one instance), and
 * can take a backend out of rotation. A backend that refuses the connection (its
 * process is gone) is taken out by itself and the request goes to the next one, as a
 * load balancer's passive health check does; the request had not reached any
 * application then, so sending it again is safe.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyBackend {
  /** A short name used in the log and in pins, e.g. "A". */
  name: string;
  /** http://127.0.0.1:<port> */
  origin: string;
}

export interface ProxiedRequest {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  /** The backend that answered, or null when none could. */
  backend: string | null;
  status: number;
  /** Sent to this backend because a pin asked for it. */
  pinned: boolean;
  /** Backends tried first that refused the connection (taken out of rotation). */
  refusedBy: string[];
}

export interface RequestMatch {
  method?: string;
  /** Matched against the path without the query. */
  path: string | RegExp;
}

export interface RoundRobinProxy {
  /** http://127.0.0.1:<port>: the public origin. */
  url: string;
  log: ProxiedRequest[];
  addBackend(backend: ProxyBackend): void;
  /** Take a backend out of rotation (its pins then fail with 502). */
  removeBackend(name: string): void;
  /** Names of the backends in rotation, in order. */
  backends(): string[];
  /** The next request matching `match` goes to `backend`, not to the round-robin choice. */
  pin(match: RequestMatch, backend: string): void;
  /** Pins not used yet. */
  pendingPins(): Array<RequestMatch & { backend: string }>;
  /** Drop the pins not used yet. */
  clearPins(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

export async function startRoundRobinProxy(): Promise<RoundRobinProxy> {
  const rotation: ProxyBackend[] = [];
  const pins: Array<RequestMatch & { backend: string }> = [];
  const log: ProxiedRequest[] = [];
  let turn = 0;

  function matches(match: RequestMatch, method: string, path: string): boolean {
    if (match.method && match.method.toUpperCase() !== method) return false;
    return typeof match.path === 'string' ? match.path === path : match.path.test(path);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);

    const entry: ProxiedRequest = { method, url, backend: null, status: 502, pinned: false, refusedBy: [] };
    log.push(entry);
    const pinIndex = pins.findIndex((p) => matches(p, method, path));
    let pinned: ProxyBackend | undefined;
    if (pinIndex >= 0) {
      const [pin] = pins.splice(pinIndex, 1);
      entry.pinned = true;
      pinned = rotation.find((b) => b.name === pin!.backend);
      if (!pinned) return badGateway(res, entry, `pinned backend ${pin!.backend} is not in rotation`);
    }

    for (;;) {
      let backend = pinned;
      if (!backend) {
        if (rotation.length === 0) return badGateway(res, entry, 'no backend in rotation');
        backend = rotation[turn % rotation.length]!;
        turn++;
      }
      try {
        const upstream = await forward(backend, req, method, url, body);
        entry.backend = backend.name;
        entry.status = upstream.statusCode ?? 502;
        const headers: IncomingHttpHeaders = {};
        for (const [k, v] of Object.entries(upstream.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
        res.writeHead(entry.status, headers);
        upstream.pipe(res);
        await new Promise<void>((resolve) => {
          upstream.once('end', resolve);
          upstream.once('error', () => {
            res.destroy();
            resolve();
          });
        });
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' || pinned) return badGateway(res, entry, `${backend.name}: ${(err as Error).message}`);
        // Nobody listens there any more: out of rotation, try the next one.
        entry.refusedBy.push(backend.name);
        const at = rotation.indexOf(backend);
        if (at >= 0) rotation.splice(at, 1);
      }
    }
  }

  function forward(backend: ProxyBackend, req: IncomingMessage, method: string, url: string, body: Buffer): Promise<IncomingMessage> {
    const target = new URL(backend.origin);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    const client = req.socket.remoteAddress ?? '127.0.0.1';
    const forwardedFor = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = forwardedFor ? `${String(forwardedFor)}, ${client}` : client;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-host'] = req.headers.host ?? '';
    if (body.length > 0 || req.headers['content-length'] !== undefined) headers['content-length'] = String(body.length);
    else delete headers['content-length'];
    return new Promise((resolve, reject) => {
      // One connection per request: nothing ties a client's connection to a backend.
      const outgoing = request({ host: target.hostname, port: target.port, method, path: url, headers: { ...headers, host: target.host }, agent: false }, resolve);
      outgoing.once('error', reject);
      outgoing.end(body);
    });
  }

  function badGateway(res: ServerResponse, entry: ProxiedRequest, why: string): void {
    entry.status = 502;
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bad gateway: ${why}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    log,
    addBackend(backend) {
      if (!rotation.some((b) => b.name === backend.name)) rotation.push(backend);
    },
    removeBackend(name) {
      const at = rotation.findIndex((b) => b.name === name);
      if (at >= 0) rotation.splice(at, 1);
    },
    backends: () => rotation.map((b) => b.name),
    pin(match, backend) {
      pins.push({ ...match, backend });
    },
    pendingPins: () => [...pins],
    clearPins() {
      pins.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
