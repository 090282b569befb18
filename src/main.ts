/**
 * Process entry: load the configuration, build the app, listen, and shut down
 * gracefully on SIGTERM/SIGINT (stop accepting, let in-flight requests finish, close
 * the store connection).
 */
import { createServer } from 'node:http';
import { pino } from 'pino';
import { createApp } from './app.ts';
import { ConfigError, loadConfigFile } from './config/load.ts';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info', base: { service: 'sallyport' } });
  let config;
  try {
    config = await loadConfigFile({ env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const sallyport = await createApp(config, { logger, processMetrics: true });
  const server = createServer(sallyport.app.callback());
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  logger.info({ issuer: config.issuer, port, store: sallyport.store.kind }, 'Sallyport is listening');
  if (process.stdout.isTTY || process.env['NODE_ENV'] !== 'production') {
    process.stdout.write(`\nSallyport is running: open ${config.issuer}/ (discovery: ${config.issuer}/.well-known/openid-configuration)\n\n`);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.warn('grace period over, closing remaining connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    // close() stops accepting and waits for in-flight requests; idle keep-alive
    // connections are closed straight away.
    server.close(async () => {
      await sallyport.close();
      logger.info('stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`Sallyport failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
