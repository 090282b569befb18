/**
 * The five scenarios. Request scenarios (client_credentials, introspection, refresh) are
 * one HTTP request each, on autocannon; flow scenarios (signin, federated) are whole
 * browser flows. Tokens a scenario needs are minted right before it, through real
 * sign-ins on the server under test.
 */
import { CLIENTS } from './fixtures.ts';
import { federatedSignInAndLogout, localSignIn, type TokenSet } from './flows.ts';
import { runFlows, runRequests, type Measurement, type RunOptions, type Sampled } from './measure.ts';
import type { BenchOptions, ScenarioName } from './options.ts';

export interface Target extends Sampled {
  issuer: string;
}

export const UNITS: Record<ScenarioName, 'req' | 'flow'> = {
  client_credentials: 'req',
  introspection: 'req',
  refresh: 'req',
  signin: 'flow',
  federated: 'flow',
};

export const DESCRIPTIONS: Record<ScenarioName, string> = {
  client_credentials: 'POST /token grant_type=client_credentials (client_secret_basic) → opaque access token',
  introspection: 'POST /token/introspection (client_secret_basic) of opaque user access tokens → active:true',
  refresh: 'POST /token grant_type=refresh_token, public client, rotation: each response\'s new refresh token is used next',
  signin: 'authorize → sign-in page → password form (scrypt) → code → token, confidential first-party client, PKCE',
  federated: 'authorize (idp_hint) → upstream sign-in → callback → code → token, then RP-initiated logout chained upstream and back',
};

const FORM = 'application/x-www-form-urlencoded';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** Mint `count` token sets with `concurrency` sign-ins at a time (each a fresh browser, users in turn). */
async function mint(count: number, concurrency: number, signIn: (i: number) => Promise<TokenSet>): Promise<TokenSet[]> {
  const out: TokenSet[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) out.push(await signIn(next++));
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

export async function runScenario(name: ScenarioName, target: Target, options: BenchOptions): Promise<Measurement> {
  const run: RunOptions = { duration: options.duration, warmup: options.warmup };
  const { connections } = options;
  switch (name) {
    case 'client_credentials':
      return runRequests(
        target.issuer,
        connections,
        {
          method: 'POST',
          path: '/token',
          headers: { 'content-type': FORM, authorization: basic(CLIENTS.service.id, CLIENTS.service.secret) },
          body: 'grant_type=client_credentials',
          check: (body) => body.includes('"access_token"') && body.includes('"token_type":"Bearer"'),
        },
        run,
        target,
      );

    case 'introspection': {
      // Access tokens of people (opaque, bound to their sessions), as a resource server
      // would receive them; the service client introspects them in turn.
      const tokens = (await mint(connections, 4, (i) => localSignIn(target.issuer, { user: i }))).map((t) => t.access_token);
      let i = 0;
      return runRequests(
        target.issuer,
        connections,
        {
          method: 'POST',
          path: '/token/introspection',
          headers: { 'content-type': FORM, authorization: basic(CLIENTS.service.id, CLIENTS.service.secret) },
          nextBody: () => `token=${tokens[i++ % tokens.length]}`,
          check: (body) => body.includes('"active":true'),
        },
        run,
        target,
      );
    }

    case 'refresh': {
      // Refresh tokens of a public client are rotated: each can be used once, and its
      // response carries the next one, which goes back into the queue. The queue starts
      // with enough tokens for the connections of the warm-up and of the measured run
      // (responses still in flight when a run stops are lost with their new token).
      const pool = await mint(2 * connections + 10, 4, (i) =>
        localSignIn(target.issuer, { client: CLIENTS.spa, user: i, scope: 'openid offline_access', prompt: 'consent' }),
      );
      const queue = pool.map((t) => {
        if (!t.refresh_token) throw new Error('the sign-in gave no refresh token');
        return t.refresh_token;
      });
      return runRequests(
        target.issuer,
        connections,
        {
          method: 'POST',
          path: '/token',
          headers: { 'content-type': FORM },
          // An exhausted queue (only after many errors) sends a token that fails, so it
          // shows up as errors instead of stopping the run.
          nextBody: () => `grant_type=refresh_token&client_id=${CLIENTS.spa.id}&refresh_token=${queue.shift() ?? 'exhausted'}`,
          onResponse: (status, body) => {
            if (status !== 200) return;
            const next = /"refresh_token":"([^"]+)"/.exec(body)?.[1];
            if (next) queue.push(next);
          },
          check: (body) => body.includes('"access_token"') && body.includes('"refresh_token"'),
        },
        run,
        target,
      );
    }

    case 'signin':
      return runFlows(async (i) => void (await localSignIn(target.issuer, { user: i })), options.flowConcurrency, run, target);

    case 'federated':
      return runFlows((i) => federatedSignInAndLogout(target.issuer, { user: i }), options.flowConcurrency, run, target);
  }
}
