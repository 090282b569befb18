/**
 * A minimal browser for HTTP-level flow tests: a path-aware cookie jar, manual redirect
 * following, and submission of the HTML forms our pages render. It plays the person at
 * the keyboard; the relying party in tests is always openid-client.
 */

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  host: string;
  expires?: number;
}

export interface Page {
  status: number;
  url: string;
  headers: Headers;
  body: string;
}

export interface ParsedForm {
  action: string;
  method: string;
  fields: Record<string, string>;
  id?: string;
}

export class UserAgent {
  readonly cookies: StoredCookie[] = [];

  cookieHeader(url: URL): string {
    const now = Date.now();
    return this.cookies
      .filter((c) => c.host === url.hostname && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) && (!c.expires || c.expires > now))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  #store(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let path = '/';
      let expires: number | undefined;
      for (const attr of attrs) {
        const [k, v] = attr.split('=');
        if (k?.toLowerCase() === 'path' && v) path = v;
        if (k?.toLowerCase() === 'expires' && v) expires = Date.parse(v);
        if (k?.toLowerCase() === 'max-age' && v) expires = Date.now() + Number(v) * 1000;
      }
      const existing = this.cookies.findIndex((c) => c.name === name && c.path === path && c.host === url.hostname);
      if (existing >= 0) this.cookies.splice(existing, 1);
      if (expires !== undefined && expires <= Date.now()) continue;
      this.cookies.push({ name, value, path, host: url.hostname, ...(expires ? { expires } : {}) });
    }
  }

  /** One request, no redirect following. */
  async request(url: string | URL, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Page> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    headers.set('accept', 'text/html');
    const cookie = this.cookieHeader(target);
    if (cookie) headers.set('cookie', cookie);
    let body: string | undefined;
    if (init.form) {
      headers.set('content-type', 'application/x-www-form-urlencoded');
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.#store(target, response.headers);
    return { status: response.status, url: target.href, headers: response.headers, body: await response.text() };
  }

  /**
   * Follow redirects until a page is rendered or the location leaves for `stopAt`
   * (the RP's redirect URI); returns the last response and, when stopped, the URL.
   */
  async follow(url: string | URL, options: { stopAt?: string[]; init?: Parameters<UserAgent['request']>[1] } = {}): Promise<{ page: Page; stoppedAt?: URL }> {
    let page = await this.request(url, options.init);
    for (let hops = 0; hops < 20; hops++) {
      const location = page.headers.get('location');
      if (page.status < 300 || page.status >= 400 || !location) return { page };
      const next = new URL(location, page.url);
      if (options.stopAt?.some((prefix) => next.href.startsWith(prefix))) return { page, stoppedAt: next };
      page = await this.request(next);
    }
    throw new Error('too many redirects');
  }

  /** Submit a form of `page`, with `values` overriding its fields, following redirects. */
  async submit(page: Page, select: { action?: RegExp; id?: string }, values: Record<string, string>, stopAt?: string[]) {
    const form = parseForms(page.body).find((f) => (select.id ? f.id === select.id : true) && (select.action ? select.action.test(f.action) : true));
    if (!form) throw new Error(`no matching form on ${page.url}:\n${page.body.slice(0, 500)}`);
    const action = new URL(form.action || page.url, page.url);
    return this.follow(action, { init: { method: 'POST', form: { ...form.fields, ...values } }, ...(stopAt ? { stopAt } : {}) });
  }
}

const decode = (s: string) =>
  s.replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#96;|&#x60;/g, '`').replace(/&amp;/g, '&');

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  return m ? decode(m[1] ?? m[2] ?? m[3] ?? '') : undefined;
}

export function parseForms(body: string): ParsedForm[] {
  const forms: ParsedForm[] = [];
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const fields: Record<string, string> = {};
    const inputs = /<input\b[^>]*>/gi;
    for (let i = inputs.exec(m[2]!); i; i = inputs.exec(m[2]!)) {
      const name = attr(i[0], 'name');
      if (name && attr(i[0], 'type') !== 'submit') fields[name] = attr(i[0], 'value') ?? '';
    }
    const id = attr(`<form ${m[1]}>`, 'id');
    forms.push({ action: attr(`<form ${m[1]}>`, 'action') ?? '', method: (attr(`<form ${m[1]}>`, 'method') ?? 'get').toLowerCase(), fields, ...(id ? { id } : {}) });
  }
  return forms;
}
