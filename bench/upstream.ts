/**
 * The upstream identity provider for the federated scenario, in a process of its own (on
 * the load generator's core): a real oidc-provider acting like Okta, from the test
 * support (test/support/upstream-op.ts), with Sallyport registered as its client.
 *
 * Usage: node upstream.ts <sallyport origin>[,<sallyport origin>…]; prints one JSON line
 * `{"issuer": …}` once it listens.
 */
import { startUpstreamOp } from '../test/support/upstream-op.ts';
import { UPSTREAM_CLIENT_SECRET, UPSTREAM_PASSWORD, USER_COUNT, upstreamUsername } from './fixtures.ts';

const origins = (process.argv[2] ?? '').split(',').filter(Boolean);
if (origins.length === 0) throw new Error('usage: upstream.ts <sallyport origin>[,…]');

const op = await startUpstreamOp({
  flavor: 'okta',
  clients: [
    {
      client_id: 'sallyport',
      client_secret: UPSTREAM_CLIENT_SECRET,
      redirect_uris: origins.map((o) => `${o}/federation/okta/callback`),
      post_logout_redirect_uris: origins.map((o) => `${o}/federation/logout-callback`),
    },
  ],
  users: Array.from({ length: USER_COUNT }, (_, i) => ({
    username: upstreamUsername(i),
    password: UPSTREAM_PASSWORD,
    sub: `okta-${upstreamUsername(i)}`,
    email: `${upstreamUsername(i)}@okta.bench.example`,
    email_verified: true,
    name: `Federated User ${i}`,
    preferred_username: upstreamUsername(i),
    groups: ['Everyone'],
  })),
});

// The fake keeps a record of every end_session request for tests; a benchmark makes
// thousands, so the list is emptied as it grows.
setInterval(() => op.endSessionRequests.splice(0), 5_000).unref();

process.stdout.write(`${JSON.stringify({ issuer: op.issuer })}\n`);
const stop = () => void op.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
