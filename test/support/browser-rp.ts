/**
 * A relying-party web app for real-browser tests: the kind of server-rendered app an
 * operator puts behind Sallyport, built on openid-client the way its documentation
 * shows (code + PKCE + state + nonce, server-side sessions, RP-initiated logout).
 *
 * Unlike `startTestRp` (a back-channel receiver that answers every GET with `rp`), this
 * one has pages a browser can click through: `/` says who is signed in, `/login` starts
 * the flow, `/callback` finishes it, `/logout` starts RP-initiated logout and
 * `/logged-out` reports whether the `state` that came back is the one it sent.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';

export interface BrowserRpOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Listen here (the origin must be registered at Sallyport before Sallyport starts). */
  port?: number;
}

export interface BrowserRp {
  origin: string;
  /** The id_token of the most recent completed sign-in (tests read its `sid`). */
  lastIdToken(): string | undefined;
  stop(): Promise<void>;
}

interface RpSession {
  /** Checks of the authorization request in flight. */
  pending?: { codeVerifier: string; state: string; nonce: string };
  idToken?: string;
  claims?: Record<string, unknown>;
  /** The `state` sent with the end-session request, to compare with what comes back. */
  logoutState?: string;
}

export async function startBrowserRp(options: BrowserRpOptions): Promise<BrowserRp> {
  const sessions = new Map<string, RpSession>();
  let lastIdToken: string | undefined;
  let config: Promise<oidc.Configuration> | undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Shown in the page so a failing browser test says why the RP gave up.
      send(res, 500, page('Error', `<h1>RP error</h1><pre id="error">${escapeHtml(err instanceof Error ? `${err.name}: ${err.message}` : String(err))}</pre>`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Browsers scope cookies by host, not port: Sallyport and the upstreams on 127.0.0.1
  // see this cookie too, so its name carries the port to stay apart from other RPs.
  const cookieName = `brp${new URL(origin).port}_sid`;

  // Discovery on first use, so the RP can be created before (or while) the OP starts.
  const getConfig = () =>
    (config ??= oidc.discovery(new URL(options.issuer), options.clientId, { client_secret: options.clientSecret }, undefined, {
      execute: [oidc.allowInsecureRequests],
    }).catch((err: unknown) => {
      config = undefined;
      throw err;
    }));

  function sessionOf(req: IncomingMessage, res: ServerResponse): RpSession {
    const id = readCookie(req, cookieName);
    const existing = id ? sessions.get(id) : undefined;
    if (existing) return existing;
    const fresh = randomBytes(24).toString('base64url');
    const session: RpSession = {};
    sessions.set(fresh, session);
    res.setHeader('set-cookie', `${cookieName}=${fresh}; Path=/; HttpOnly; SameSite=Lax`);
    return session;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    if (req.method !== 'GET') return send(res, 405, page('Not allowed', '<h1>Method not allowed</h1>'));
    switch (url.pathname) {
      case '/': {
        const session = sessionOf(req, res);
        const name = session.claims ? String(session.claims['name'] ?? session.claims['sub']) : undefined;
        return send(
          res,
          200,
          name
            ? page('Home', `<h1>Browser RP</h1><p id="who">Signed in as ${escapeHtml(name)}</p><p><a id="logout" href="/logout">Sign out</a></p>`)
            : page('Home', `<h1>Browser RP</h1><p id="who">Not signed in</p><p><a id="login" href="/login">Sign in</a></p>`),
        );
      }
      case '/login': {
        const cfg = await getConfig();
        const session = sessionOf(req, res);
        const pending = { codeVerifier: oidc.randomPKCECodeVerifier(), state: oidc.randomState(), nonce: oidc.randomNonce() };
        session.pending = pending;
        const target = oidc.buildAuthorizationUrl(cfg, {
          redirect_uri: `${origin}/callback`,
          scope: 'openid profile email groups',
          code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
          code_challenge_method: 'S256',
          state: pending.state,
          nonce: pending.nonce,
        });
        return redirect(res, target.href);
      }
      case '/callback': {
        const cfg = await getConfig();
        const session = sessionOf(req, res);
        const pending = session.pending;
        if (!pending) return send(res, 400, page('Error', '<h1>No sign-in in progress</h1>'));
        delete session.pending;
        const tokens = await oidc.authorizationCodeGrant(cfg, url, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims()!;
        // Sallyport keeps profile claims out of the ID token when an access token is
        // issued (oidc-provider's conformIdTokenClaims), so the name comes from userinfo.
        const userinfo = await oidc.fetchUserInfo(cfg, tokens.access_token, claims.sub);
        session.idToken = tokens.id_token!;
        session.claims = { ...claims, ...userinfo };
        lastIdToken = session.idToken;
        return redirect(res, '/');
      }
      case '/logout': {
        const cfg = await getConfig();
        const session = sessionOf(req, res);
        if (!session.idToken) return redirect(res, '/');
        session.logoutState = oidc.randomState();
        const target = oidc.buildEndSessionUrl(cfg, {
          id_token_hint: session.idToken,
          post_logout_redirect_uri: `${origin}/logged-out`,
          state: session.logoutState,
        });
        return redirect(res, target.href);
      }
      case '/logged-out': {
        const session = sessionOf(req, res);
        const returned = url.searchParams.get('state');
        const stateOk = session.logoutState !== undefined && returned === session.logoutState;
        delete session.idToken;
        delete session.claims;
        delete session.logoutState;
        return send(
          res,
          200,
          page('Signed out', `<h1>Signed out</h1><p id="state">${stateOk ? 'state ok' : 'state mismatch'}</p><p><a id="login" href="/login">Sign in again</a></p>`),
        );
      }
      case '/favicon.ico':
        // Keeps Chromium's automatic favicon request out of the console-error log.
        res.writeHead(204).end();
        return;
      default:
        return send(res, 404, page('Not found', '<h1>Not found</h1>'));
    }
  }

  return {
    origin,
    lastIdToken: () => lastIdToken,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location, 'cache-control': 'no-store' }).end();
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · Browser RP</title></head><body>${body}</body></html>`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
