/**
 * The issuer is the public origin: no Host, X-Forwarded-Host or absolute-form request
 * target makes Sallyport build a URL on another origin; unparsable targets get a 400
 * page, and a known path asked with the wrong method a 405 page with Allow.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkceAuthorizationUrl } from './support/rp.ts';
import { startSallyport, type RunningSallyport } from './support/sallyport.ts';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with exactly this target and these headers (fetch cannot send either). */
function raw(sp: RunningSallyport, method: string, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const { port } = new URL(sp.issuer);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: target, headers, setHost: !('host' in headers) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the public origin', () => {
  let sp: RunningSallyport;
  beforeAll(async () => {
    sp = await startSallyport({ backend: 'memory', config: { trustProxy: true } });
  });
  afterAll(async () => sp?.stop());

  it('comes from the issuer whatever Host and X-Forwarded-Host claim', async () => {
    const res = await raw(sp, 'GET', '/.well-known/openid-configuration', { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' });
    expect(res.status).toBe(200);
    const discovery = JSON.parse(res.body) as Record<string, unknown>;
    expect(discovery['issuer']).toBe(sp.issuer);
    expect(discovery['token_endpoint']).toBe(`${sp.issuer}/token`);
    expect(res.body).not.toContain('evil.example');
  });

  it('is kept through a sign-in started with a forged host: the login page redirect stays on the issuer', async () => {
    const url = await pkceAuthorizationUrl(await sp.rp('web'), 'http://127.0.0.1:9/callback');
    const res = await raw(sp, 'GET', `${url.pathname}${url.search}`, { host: 'evil.example', 'x-forwarded-host': 'evil.example' });
    expect(res.status).toBe(303);
    expect(String(res.headers['location'])).toMatch(/^\/interaction\/|^http:\/\/127\.0\.0\.1:\d+\/interaction\//);
    expect(String(res.headers['location'])).not.toContain('evil.example');
  });

  it('accepts an absolute-form target, ignoring the authority it names', async () => {
    const res = await raw(sp, 'GET', 'http://evil.example/.well-known/openid-configuration');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { issuer: string }).issuer).toBe(sp.issuer);
  });

  it('refuses an unparsable target with a readable 400, in the format asked for', async () => {
    const page = await raw(sp, 'GET', 'http://[::1/token', { accept: 'text/html' });
    expect(page.status).toBe(400);
    expect(page.body).toContain('The address of this request is not valid.');
    expect(page.body).not.toMatch(/at \S+ \(|Invalid URL/);
    const json = await raw(sp, 'GET', 'http://[::1/admin/v1/users', { accept: 'application/json' });
    expect(json.status).toBe(400);
    expect(JSON.parse(json.body)).toEqual({ error: 'invalid_request', message: 'The address of this request is not valid.' });
    const star = await raw(sp, 'OPTIONS', '*');
    expect(star.status).toBe(400);
  });

  it('answers a wrong method on a page route with a 405 page and Allow', async () => {
    const res = await raw(sp, 'DELETE', '/interaction/abc/login', { accept: 'text/html' });
    expect(res.status).toBe(405);
    expect(String(res.headers['allow'])).toContain('POST');
    expect(res.body).toContain('Error 405');
    expect(res.body).toContain('Not allowed');
  });
});
