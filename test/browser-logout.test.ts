/**
 * The headline feature in a real browser (Debian's Chromium through playwright-core):
 * an RP web app signs a person in through Sallyport and an Okta-like upstream, and its
 * "Sign out" ends the RP's, Sallyport's and the upstream's sessions in one chain of
 * redirects and self-submitting forms, then lands back at the RP with its state.
 *
 * Only a browser proves what the HTTP-level flow tests cannot: that the auto-submit
 * scripts run under Sallyport's CSP, that cookies of four servers on 127.0.0.1 do not
 * collide, and that nothing in the chain needs a click. Screenshots of the pages are
 * kept in test-artifacts/screenshots/ for a human to look at.
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrowserRp, type BrowserRp } from './support/browser-rp.ts';
import { startFederationEnv, UPSTREAM_PASSWORD, type FederationEnv } from './support/federation-env.ts';
import { freePort, PASSWORD } from './support/sallyport.ts';

const SCREENSHOTS = fileURLToPath(new URL('../test-artifacts/screenshots/', import.meta.url));
const CLIENT_ID = 'browser-rp';
const CLIENT_SECRET = 'browser-rp-client-secret-0123456789abcdef';
const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface Setup {
  env: FederationEnv;
  rp: BrowserRp;
  stop(): Promise<void>;
}

/**
 * Sallyport's clients are fixed at start-up, so the browser RP's origin is chosen
 * first (a free port), registered as an extra first-party client, and the RP listens
 * there once Sallyport (its issuer) is up.
 */
async function startSetup(options: { upstreamIdTokenTtl?: number } = {}): Promise<Setup> {
  const port = await freePort();
  const rpOrigin = `http://127.0.0.1:${port}`;
  const env = await startFederationEnv({
    backend: 'memory',
    ...options,
    extraClients: [
      {
        client_id: CLIENT_ID,
        client_name: 'Browser RP',
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${rpOrigin}/callback`],
        post_logout_redirect_uris: [`${rpOrigin}/logged-out`],
        grant_types: ['authorization_code', 'refresh_token'],
        first_party: true,
      },
    ],
  });
  const rp = await startBrowserRp({ issuer: env.sp.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, port });
  return {
    env,
    rp,
    async stop() {
      await rp.stop();
      await env.stop();
    },
  };
}

/**
 * What the browser did, as `METHOD server path` lines: every main-frame navigation
 * request (redirect hops included, which `framenavigated` never reports because those
 * responses are not committed) and every committed page. Console errors are kept too:
 * Chromium reports CSP violations there ("Executing inline script violates the
 * following Content Security Policy directive …").
 */
function watch(page: Page, setup: Setup) {
  const servers: Array<[string, string]> = [
    [setup.env.sp.issuer, 'sallyport'],
    [setup.env.okta.origin, 'okta'],
    [setup.env.keycloak.origin, 'keycloak'],
    [setup.rp.origin, 'rp'],
  ];
  const describeUrl = (href: string) => {
    const url = new URL(href);
    return `${servers.find(([origin]) => origin === url.origin)?.[1] ?? url.origin} ${url.pathname}`;
  };
  const log = { requests: [] as string[], committed: [] as string[], consoleErrors: [] as string[], csp: new Map<string, string>() };
  page.on('request', (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) log.requests.push(`${request.method()} ${describeUrl(request.url())}`);
  });
  // The CSP each rendered page was served with, to tell which self-submitting page ran.
  page.on('response', (response) => {
    const request = response.request();
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) log.csp.set(describeUrl(response.url()), response.headers()['content-security-policy'] ?? '');
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) log.committed.push(describeUrl(frame.url()));
  });
  page.on('console', (message) => {
    // Chromium asks every origin for /favicon.ico on its own; none of these servers has one.
    const source = message.location().url;
    if (message.type() === 'error' && URL.parse(source)?.pathname !== '/favicon.ico') log.consoleErrors.push(`${message.text()} (${source})`);
  });
  page.on('pageerror', (err) => log.consoleErrors.push(`page error: ${err.message}`));
  return {
    ...log,
    reset() {
      for (const list of [log.requests, log.committed, log.consoleErrors]) list.length = 0;
      log.csp.clear();
    },
  };
}

async function newPage(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(10_000);
  return { context, page: await context.newPage() };
}

const at = (origin: string, path: string) => (url: URL) => url.origin === origin && url.pathname === path;

/** From the RP's home page to "Signed in as …", typing the password only if the upstream asks. */
async function signInThroughOkta(page: Page, setup: Setup, options: { screenshotSignIn?: string; screenshotUpstream?: string } = {}): Promise<{ askedPassword: boolean }> {
  const { env, rp } = setup;
  await page.goto(`${rp.origin}/`);
  await expect.poll(() => page.locator('#who').textContent()).toBe('Not signed in');
  await page.click('#login');
  await page.waitForURL((url) => url.origin === env.sp.issuer && url.pathname.startsWith('/interaction/'));
  expect(await page.locator('h1').textContent()).toBe('Sign in');
  if (options.screenshotSignIn) await page.screenshot({ path: `${SCREENSHOTS}${options.screenshotSignIn}`, fullPage: true });
  // By provider id: other IdPs on the page may carry "Okta" in their names too.
  const button = page.locator('a[data-provider="okta"]');
  expect(await button.textContent()).toBe('Sign in with Okta');
  await button.click();
  // Either the upstream asks for the password, or its session answers straight away.
  await page.waitForURL((url) => url.origin === env.okta.origin || at(rp.origin, '/')(url));
  const askedPassword = new URL(page.url()).origin === env.okta.origin;
  if (askedPassword) {
    await expect.poll(() => page.locator('form#login').count()).toBe(1);
    if (options.screenshotUpstream) await page.screenshot({ path: `${SCREENSHOTS}${options.screenshotUpstream}`, fullPage: true });
    await page.fill('form#login input[name="username"]', 'olivia');
    await page.fill('form#login input[name="password"]', UPSTREAM_PASSWORD);
    await page.click('form#login button[type="submit"]');
    await page.waitForURL(at(rp.origin, '/'));
  }
  expect(await page.locator('#who').textContent()).toBe('Signed in as Olivia Okta');
  return { askedPassword };
}

/** The authentication record behind the RP's current sign-in, found the way logout finds it: by the id_token's sid. */
async function recordOf(setup: Setup) {
  const idToken = setup.rp.lastIdToken();
  expect(idToken).toBeDefined();
  const sid = decodeJwt(idToken!)['sid'];
  expect(typeof sid).toBe('string');
  const record = await setup.env.sp.authRecords.findBySid(sid as string);
  expect(record).toBeDefined();
  return record!;
}

let browser: Browser;

beforeAll(async () => {
  await mkdir(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: LAUNCH_ARGS });
});
afterAll(async () => {
  await browser?.close();
});

describe('in a browser: RP-initiated logout chains through Sallyport to the upstream IdP', () => {
  let setup: Setup;
  let context: BrowserContext;
  let page: Page;
  let seen: ReturnType<typeof watch>;

  beforeAll(async () => {
    setup = await startSetup();
    ({ context, page } = await newPage(browser));
    seen = watch(page, setup);
  });
  afterAll(async () => {
    await context?.close();
    await setup?.stop();
  });

  it('signs in at the RP through Sallyport\'s sign-in page and the Okta-like upstream', async () => {
    const before = setup.env.okta.passwordLogins;
    const { askedPassword } = await signInThroughOkta(page, setup, { screenshotSignIn: '01-sallyport-login.png' });
    expect(askedPassword).toBe(true);
    expect(setup.env.okta.passwordLogins).toBe(before + 1);
    const record = await recordOf(setup);
    expect(record).toMatchObject({ idp: 'okta', sub: 'okta-olivia-0001' });
    expect(await setup.env.sp.provider.Session.findByUid(record.sessionUid)).toBeDefined();
    expect(seen.consoleErrors).toEqual([]);
  });

  it('one click on the RP\'s Sign out ends our session and the upstream\'s, and returns to the RP with its state', async () => {
    const { env, rp } = setup;
    const record = await recordOf(setup);
    const endSessionsBefore = env.okta.endSessionRequests.length;
    seen.reset();

    await page.click('#logout');
    await page.waitForURL(at(rp.origin, '/logged-out'));
    expect(await page.locator('h1').textContent()).toBe('Signed out');
    expect(await page.locator('#state').textContent()).toBe('state ok');

    // Every hop, redirects included: nothing asked the person anything, and each
    // self-submitting page (ours under our CSP, then the upstream's) ran its script.
    expect(seen.requests).toEqual([
      'GET rp /logout',
      'GET sallyport /session/end',
      'POST sallyport /session/end/confirm',
      'GET okta /oauth2/default/session/end',
      'POST okta /oauth2/default/session/end/confirm',
      'GET sallyport /federation/logout-callback',
      'GET rp /logged-out',
    ]);
    // The pages the browser actually rendered (the rest were redirects).
    expect(seen.committed).toEqual(['sallyport /session/end', 'okta /oauth2/default/session/end', 'rp /logged-out']);
    // Our "Signing you out…" page, whose script runs by the response's nonce alone.
    expect(seen.csp.get('sallyport /session/end')).toMatch(/script-src 'nonce-[^']+'(;|$)/);
    expect(seen.consoleErrors).toEqual([]);

    // The upstream got the stored id_token of this very upstream session as its hint,
    // and was told to come back to our fixed callback.
    expect(env.okta.endSessionRequests.length).toBe(endSessionsBefore + 1);
    const request = env.okta.endSessionRequests.at(-1)!;
    expect(request.method).toBe('GET');
    expect(request.idTokenHint).toMatchObject({ valid: true, expired: false, sub: 'okta-olivia-0001', sid: record.sid });
    expect(request.params['post_logout_redirect_uri']).toBe(`${env.sp.issuer}/federation/logout-callback`);
    expect(request.params['state']).toBeTruthy();

    // Sallyport's session and its authentication record are gone.
    expect(await env.sp.provider.Session.findByUid(record.sessionUid)).toBeUndefined();
    expect(await env.sp.authRecords.get(record.sessionUid)).toBeUndefined();
    // So signing in again stops at our sign-in page instead of going straight back.
    await page.goto(`${rp.origin}/login`);
    await page.waitForURL((url) => url.origin === env.sp.issuer && url.pathname.startsWith('/interaction/'));
    expect(await page.locator('h1').textContent()).toBe('Sign in');
  });

  it('the upstream session is really gone: signing in again asks for the upstream password', async () => {
    const before = setup.env.okta.passwordLogins;
    const { askedPassword } = await signInThroughOkta(page, setup, { screenshotUpstream: '02-upstream-login-after-logout.png' });
    expect(askedPassword).toBe(true);
    expect(setup.env.okta.passwordLogins).toBe(before + 1);
  });

  it('renders the consent, logout-confirmation and signed-out pages (screenshots)', async () => {
    const { env } = setup;
    // A fresh browser: a local account and a third-party client, which gets a consent page.
    const { context: other, page: p } = await newPage(browser);
    try {
      const errors = watch(p, setup);
      const spa = await env.sp.rp('spa');
      const url = oidc.buildAuthorizationUrl(spa, {
        redirect_uri: `${env.rp.origin}/spa/callback`,
        scope: 'openid profile email',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: oidc.randomState(),
      });
      await p.goto(url.href);
      expect(await p.locator('h1').textContent()).toBe('Sign in');
      await p.fill('#username', 'alice');
      await p.fill('#password', PASSWORD);
      await p.getByRole('button', { name: 'Sign in', exact: true }).click();
      await p.waitForURL((u) => u.origin === env.sp.issuer && u.pathname.startsWith('/interaction/'));
      await expect.poll(() => p.locator('h1').textContent()).toBe('Allow access?');
      expect(await p.locator('.signed-in-as').textContent()).toContain('Alice Example');
      await p.screenshot({ path: `${SCREENSHOTS}03-sallyport-consent.png`, fullPage: true });

      // No id_token_hint: Sallyport must ask before signing anyone out.
      const endSession = new URL(`${env.sp.issuer}/session/end`);
      endSession.searchParams.set('client_id', 'web');
      endSession.searchParams.set('post_logout_redirect_uri', `${env.rp.origin}/logged-out`);
      await p.goto(endSession.href);
      expect(await p.locator('h1').textContent()).toBe('Sign out?');
      expect(await p.locator('main').textContent()).toContain('Web App');
      expect(await p.locator('.signed-in-as').textContent()).toContain('Alice Example');
      await p.screenshot({ path: `${SCREENSHOTS}04-sallyport-logout-confirm.png`, fullPage: true });
      await p.getByRole('button', { name: 'Sign out', exact: true }).click();
      // A local account has no upstream to chain to: straight to the RP.
      await p.waitForURL(at(env.rp.origin, '/logged-out'));

      await p.goto(`${env.sp.issuer}/session/end/success`);
      expect(await p.locator('h1').textContent()).toBe('You are signed out');
      await p.screenshot({ path: `${SCREENSHOTS}05-sallyport-signed-out.png`, fullPage: true });
      expect(errors.consoleErrors).toEqual([]);
    } finally {
      await other.close();
    }
  });
});

describe('in a browser: logout with an expired upstream id_token after our session is already gone', () => {
  let setup: Setup;
  let context: BrowserContext;
  let page: Page;
  let seen: ReturnType<typeof watch>;

  beforeAll(async () => {
    // Upstream id_tokens that expire two seconds after issue.
    setup = await startSetup({ upstreamIdTokenTtl: 2 });
    ({ context, page } = await newPage(browser));
    seen = watch(page, setup);
  });
  afterAll(async () => {
    await context?.close();
    await setup?.stop();
  });

  it('still reaches the upstream with the expired hint and lands at the RP, without a sign-in page in between', async () => {
    const { env, rp } = setup;
    await signInThroughOkta(page, setup);
    const record = await recordOf(setup);

    // Wait until the upstream would call its own id_token expired (exp <= now, in seconds).
    const { exp } = decodeJwt(await env.sp.authRecords.idToken(record));
    expect(exp).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp! * 1000 - Date.now()) + 1100));
    // Our session ends server-side as if it had expired; the browser keeps its cookie.
    const session = await env.sp.provider.Session.findByUid(record.sessionUid);
    expect(session).toBeDefined();
    await session!.destroy();

    const endSessionsBefore = env.okta.endSessionRequests.length;
    seen.reset();
    await page.click('#logout');
    await page.waitForURL(at(rp.origin, '/logged-out'));
    expect(await page.locator('#state').textContent()).toBe('state ok');

    // With no session left, oidc-provider posts its own self-submitting form (its script
    // is allowed by a hash it adds to our CSP); then the chain is the same as before.
    expect(seen.requests).toEqual([
      'GET rp /logout',
      'GET sallyport /session/end',
      'POST sallyport /session/end/confirm',
      'GET okta /oauth2/default/session/end',
      'POST okta /oauth2/default/session/end/confirm',
      'GET sallyport /federation/logout-callback',
      'GET rp /logged-out',
    ]);
    expect(seen.requests.some((r) => r.includes('/interaction/'))).toBe(false);
    expect(seen.committed).toEqual(['sallyport /session/end', 'okta /oauth2/default/session/end', 'rp /logged-out']);
    // That page is oidc-provider's form_post, whose script runs by the hash it added.
    expect(seen.csp.get('sallyport /session/end')).toMatch(/script-src 'nonce-[^']+' 'sha256-[^']+'/);
    expect(seen.consoleErrors).toEqual([]);

    expect(env.okta.endSessionRequests.length).toBe(endSessionsBefore + 1);
    const request = env.okta.endSessionRequests.at(-1)!;
    expect(request.idTokenHint).toMatchObject({ valid: true, expired: true, sub: 'okta-olivia-0001', sid: record.sid });
    expect(request.params['post_logout_redirect_uri']).toBe(`${env.sp.issuer}/federation/logout-callback`);
    // The record was used once and is gone.
    expect(await env.sp.authRecords.get(record.sessionUid)).toBeUndefined();
  });
});
