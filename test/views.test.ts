/**
 * The views are pure functions, so these tests call them directly and inspect the
 * markup. There is no DOM library in the project; the small regex helpers below are
 * enough because every attribute the views emit is double-quoted and escaped (an
 * escaped value can never contain `"` or `>`), which is itself one of the properties
 * under test.
 */
import { describe, expect, it } from 'vitest';
import { escapeHtml, html, raw } from '../src/views/html.ts';
import { renderPage } from '../src/views/layout.ts';
import { consentPage, errorPage, loginPage, logoutConfirmPage, signedOutPage } from '../src/views/pages.ts';

const SCRIPT = '<script>alert(1)</script>';
const ATTR = '"onmouseover=alert(1) x="';
const HOSTILE = `${SCRIPT}${ATTR}'\`&`;

type Attrs = Map<string, string>;

function tags(doc: string, name: string): Attrs[] {
  const out: Attrs[] = [];
  for (const m of doc.matchAll(new RegExp(`<${name}\\b([^>]*)>`, 'gi'))) {
    const attrs: Attrs = new Map();
    for (const a of (m[1] ?? '').matchAll(/([\w:-]+)(?:="([^"]*)")?/g)) {
      attrs.set((a[1] ?? '').toLowerCase(), a[2] ?? '');
    }
    out.push(attrs);
  }
  return out;
}

function forms(doc: string): Array<{ attrs: Attrs; body: string }> {
  return [...doc.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => ({
    attrs: tags(m[0], 'form')[0] ?? new Map(),
    body: m[0],
  }));
}

function count(doc: string, re: RegExp): number {
  return [...doc.matchAll(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`))].length;
}

/** Properties every page must have, whatever its content. */
function expectWellFormedPage(doc: string): void {
  expect(doc.startsWith('<!doctype html>')).toBe(true);
  expect(doc).toContain('<html lang="en">');
  expect(doc).toContain('<meta charset="utf-8">');
  expect(doc).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
  expect(doc).toContain('<meta name="referrer" content="no-referrer">');
  expect(doc).toContain('<meta name="robots" content="noindex">');
  expect(doc).toContain('<link rel="stylesheet" href="/static/sallyport.css">');
  expect(doc).toMatch(/<header\b[^>]*>[\s\S]*Sallyport[\s\S]*<\/header>/);
  expect(count(doc, /<main\b/)).toBe(1);
  expect(count(doc, /<h1\b/)).toBe(1);
  expect(doc).toMatch(/<title>[^<]* · Sallyport<\/title>/);

  // CSP style-src 'self': no inline style attributes or <style> elements.
  expect(doc).not.toMatch(/\sstyle\s*=/i);
  expect(doc).not.toMatch(/<style\b/i);
  // CSP script-src 'nonce-…': every script carries a nonce, and no inline handlers.
  for (const script of tags(doc, 'script')) expect(script.get('nonce')).toBeTruthy();
  expect(doc).not.toMatch(/\son[a-z]+\s*=/i);

  // Every visible input is labelled by a <label for> bound to its id.
  const labelFor = new Set(tags(doc, 'label').map((l) => l.get('for')));
  for (const input of tags(doc, 'input')) {
    if (input.get('type') === 'hidden') continue;
    const id = input.get('id');
    expect(id, 'visible input without id').toBeTruthy();
    expect(labelFor.has(id), `no <label for="${id}">`).toBe(true);
  }
  // And every label points at something that exists.
  const ids = new Set([...doc.matchAll(/\sid="([^"]*)"/g)].map((m) => m[1]));
  for (const target of labelFor) expect(ids.has(target)).toBe(true);
}

/**
 * The hostile value must only ever appear escaped. Script bodies are left out of the
 * attribute check: there the value is a JSON string literal (`\"` is JS escaping), which
 * the logout test checks separately.
 */
function expectNoInjection(doc: string): void {
  expect(doc).not.toContain(SCRIPT);
  expect(doc.replace(/(<script\b[^>]*>)[\s\S]*?<\/script>/g, '$1</script>')).not.toContain('"onmouseover=');
  expect(doc).not.toMatch(/<script>alert/i);
  expect(doc).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
}

const loginBase = {
  clientName: 'Acme Wiki',
  action: '/interaction/abc/login',
  csrfToken: 'csrf-token-1',
  localLogin: true,
  providers: [] as Array<{ id: string; displayName: string; href: string }>,
  cancelAction: '/interaction/abc/abort',
};

const consentBase = {
  clientName: 'Acme Wiki',
  userName: 'alice',
  action: '/interaction/abc/confirm',
  csrfToken: 'csrf-token-2',
  scopes: [
    { name: 'openid', description: 'Sign you in' },
    { name: 'email', description: 'See your email address' },
  ],
};

const formHtml = raw(
  '<form id="op.logoutForm" method="post" action="/session/end/confirm"><input type="hidden" name="xsrf" value="x1"/></form>',
);

describe('html tagged template', () => {
  it('escapes every interpolated string, including attribute metacharacters', () => {
    const out = html`<a title="${`"'<>&\``}">${'<b>'}</a>`.toString();
    expect(out).toBe('<a title="&quot;&#39;&lt;&gt;&amp;&#96;">&lt;b&gt;</a>');
  });

  it('renders numbers, joins arrays, and keeps nested SafeHtml', () => {
    const items = ['<x>', html`<i>${'&'}</i>`, 3];
    expect(html`<p>${items}|${42}</p>`.toString()).toBe('<p>&lt;x&gt;<i>&amp;</i>3|42</p>');
  });

  it('renders null, undefined and false as nothing', () => {
    expect(html`[${null}${undefined}${false}]`.toString()).toBe('[]');
  });

  it('trusts raw() but not look-alike objects', () => {
    expect(html`${raw('<b>ok</b>')}`.toString()).toBe('<b>ok</b>');
    const forged = { toString: () => '<img src=x onerror=alert(1)>' };
    expect(html`${forged}`.toString()).toBe('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('escapeHtml escapes the six metacharacters and nothing else', () => {
    expect(escapeHtml(`a&b<c>d"e'f\`g é`)).toBe('a&amp;b&lt;c&gt;d&quot;e&#39;f&#96;g é');
  });
});

describe('renderPage', () => {
  it('builds the document shell', () => {
    const doc = renderPage({ title: 'T<', main: html`<h1>Hi</h1>` });
    expectWellFormedPage(doc);
    expect(doc).toContain('<title>T&lt; · Sallyport</title>');
    expect(doc).toMatch(/<footer\b/);
    expect(doc).not.toMatch(/<script\b/);
  });

  it('emits the script only when a nonce is given', () => {
    const script = html`console.log(1)`;
    expect(renderPage({ title: 'x', main: html`<h1>x</h1>`, script })).not.toMatch(/<script\b/);
    const doc = renderPage({ title: 'x', main: html`<h1>x</h1>`, script, nonce: 'n"1' });
    expect(doc).toContain('<script nonce="n&quot;1">console.log(1)</script>');
  });

  it('refuses a script body that would close the element', () => {
    expect(() =>
      renderPage({ title: 'x', main: html`<h1>x</h1>`, nonce: 'n', script: raw('a="</SCRIPT>"') }),
    ).toThrow();
  });
});

describe('loginPage', () => {
  it('renders a labelled, CSRF-protected form with autocomplete hints', () => {
    const doc = loginPage(loginBase);
    expectWellFormedPage(doc);
    expect(doc).toMatch(/<h1>Sign in<\/h1>/);
    expect(doc).toContain('to continue to <strong class="client-name">Acme Wiki</strong>');

    const [login, cancel] = forms(doc);
    expect(login?.attrs.get('method')).toBe('post');
    expect(login?.attrs.get('action')).toBe('/interaction/abc/login');
    expect(login?.body).toContain('<input type="hidden" name="csrf" value="csrf-token-1">');

    const inputs = tags(doc, 'input');
    const username = inputs.find((i) => i.get('name') === 'username');
    const password = inputs.find((i) => i.get('name') === 'password');
    expect(username?.get('autocomplete')).toBe('username');
    expect(username?.has('autofocus')).toBe(true);
    expect(password?.get('autocomplete')).toBe('current-password');
    expect(password?.get('type')).toBe('password');
    expect(doc).toMatch(/<button type="submit" class="button primary">Sign in<\/button>/);

    // Cancelling is a POST with the same CSRF token, not a link.
    expect(cancel?.attrs.get('method')).toBe('post');
    expect(cancel?.attrs.get('action')).toBe('/interaction/abc/abort');
    expect(cancel?.body).toContain('<input type="hidden" name="csrf" value="csrf-token-1">');
    expect(cancel?.body).toMatch(/<button type="submit" class="button link">Cancel<\/button>/);

    expect(doc).not.toMatch(/role="alert"/);
    expect(doc).not.toMatch(/aria-describedby/);
    expect(doc).not.toMatch(/class="divider"/);
  });

  it('shows the error in a role=alert banner referenced by the fields', () => {
    const doc = loginPage({ ...loginBase, username: 'alice', error: 'Wrong username or password.' });
    expectWellFormedPage(doc);
    const alert = tags(doc, 'div').find((d) => d.get('role') === 'alert');
    expect(alert?.get('id')).toBeTruthy();
    expect(doc).toMatch(/role="alert"[^>]*>\s*<p>Wrong username or password\.<\/p>/);
    for (const name of ['username', 'password']) {
      const input = tags(doc, 'input').find((i) => i.get('name') === name);
      expect(input?.get('aria-describedby')).toBe(alert?.get('id'));
      expect(input?.get('aria-invalid')).toBe('true');
    }
    // The username is kept, so focus moves on to the password.
    const username = tags(doc, 'input').find((i) => i.get('name') === 'username');
    const password = tags(doc, 'input').find((i) => i.get('name') === 'password');
    expect(username?.get('value')).toBe('alice');
    expect(username?.has('autofocus')).toBe(false);
    expect(password?.has('autofocus')).toBe(true);
  });

  it('renders provider buttons with an "or" divider only when both methods exist', () => {
    const providers = [
      { id: 'okta', displayName: 'Okta', href: '/interaction/abc/federated/okta' },
      { id: 'kc', displayName: 'Keycloak', href: '/interaction/abc/federated/kc' },
    ];
    const both = loginPage({ ...loginBase, providers });
    expectWellFormedPage(both);
    expect(both).toContain('<div class="divider"><span>or</span></div>');
    const links = tags(both, 'a').filter((a) => a.get('class') === 'button secondary');
    expect(links.map((a) => a.get('href'))).toEqual(providers.map((p) => p.href));
    expect(both).toMatch(/>Sign in with Okta<\/a>/);
    expect(both).toMatch(/>Sign in with Keycloak<\/a>/);

    const only = loginPage({ ...loginBase, localLogin: false, providers });
    expectWellFormedPage(only);
    expect(only).not.toMatch(/class="divider"/);
    expect(only).not.toMatch(/name="password"/);
    expect(only).not.toMatch(/autofocus/);
    // The cancel form stays, still CSRF-protected.
    expect(forms(only)).toHaveLength(1);
    expect(forms(only)[0]?.body).toContain('name="csrf" value="csrf-token-1"');
  });

  it('escapes hostile values in text and attributes', () => {
    const doc = loginPage({
      ...loginBase,
      clientName: HOSTILE,
      action: `/login${ATTR}`,
      cancelAction: `/abort${ATTR}`,
      csrfToken: ATTR,
      username: HOSTILE,
      error: HOSTILE,
      providers: [{ id: ATTR, displayName: HOSTILE, href: `/fed${ATTR}` }],
    });
    expectWellFormedPage(doc);
    expectNoInjection(doc);
    const username = tags(doc, 'input').find((i) => i.get('name') === 'username');
    expect(username?.get('value')).toBe(escapeHtml(HOSTILE));
    for (const hidden of tags(doc, 'input').filter((i) => i.get('name') === 'csrf')) {
      expect(hidden.get('value')).toBe(escapeHtml(ATTR));
    }
  });
});

describe('consentPage', () => {
  it('lists scopes and posts allow/deny with CSRF', () => {
    const doc = consentPage({
      ...consentBase,
      clientUri: 'https://wiki.acme.test/home',
      policyUri: 'https://wiki.acme.test/privacy',
      tosUri: 'https://wiki.acme.test/terms',
      logoUri: 'https://wiki.acme.test/logo.png',
      resources: [{ indicator: 'https://api.acme.test/', scopes: ['read', 'write'] }],
    });
    expectWellFormedPage(doc);
    expect(doc).toMatch(/<h1>Allow access\?<\/h1>/);
    expect(doc).toContain('<strong class="client-name">Acme Wiki</strong> wants to:');
    expect(doc).toContain(
      '<li><span class="scope-description">See your email address</span> <code class="scope-name">email</code></li>',
    );
    expect(doc).toContain('<code class="resource-indicator">https://api.acme.test/</code>');
    expect(doc).toContain('<code class="scope-name">write</code>');
    expect(doc).toContain('Signed in as <strong>alice</strong>');
    expect(doc).toMatch(/>wiki\.acme\.test</);

    for (const href of ['https://wiki.acme.test/privacy', 'https://wiki.acme.test/terms']) {
      const link = tags(doc, 'a').find((a) => a.get('href') === href);
      expect(link?.get('rel')).toBe('noopener noreferrer');
    }
    expect(tags(doc, 'img')[0]?.get('alt')).toBe('');

    const [form, ...rest] = forms(doc);
    expect(rest).toHaveLength(0);
    expect(form?.attrs.get('method')).toBe('post');
    expect(form?.attrs.get('action')).toBe('/interaction/abc/confirm');
    expect(form?.body).toContain('<input type="hidden" name="csrf" value="csrf-token-2">');
    const buttons = tags(form?.body ?? '', 'button');
    expect(buttons.map((b) => [b.get('name'), b.get('value'), b.get('class')])).toEqual([
      ['decision', 'allow', 'button primary'],
      ['decision', 'deny', 'button secondary'],
    ]);
  });

  it('omits optional sections and drops non-web client URIs', () => {
    const doc = consentPage({
      ...consentBase,
      clientUri: 'javascript:alert(1)',
      policyUri: 'data:text/html,<b>x</b>',
      tosUri: 'not a url',
      logoUri: 'http://insecure.test/logo.png',
    });
    expectWellFormedPage(doc);
    expect(doc).not.toMatch(/<a\b/);
    expect(doc).not.toMatch(/<img\b/);
    expect(doc).not.toMatch(/javascript:/);
    expect(doc).not.toMatch(/class="resources"/);
  });

  it('escapes hostile values in text and attributes', () => {
    const doc = consentPage({
      clientName: HOSTILE,
      clientUri: `https://evil.test/${ATTR}`,
      logoUri: `https://evil.test/${ATTR}`,
      policyUri: `https://evil.test/?q=${ATTR}`,
      tosUri: `https://evil.test/#${ATTR}`,
      userName: HOSTILE,
      action: `/confirm${ATTR}`,
      csrfToken: ATTR,
      scopes: [{ name: HOSTILE, description: HOSTILE }],
      resources: [{ indicator: HOSTILE, scopes: [HOSTILE] }],
    });
    expectWellFormedPage(doc);
    expectNoInjection(doc);
    expect(tags(doc, 'input').find((i) => i.get('name') === 'csrf')?.get('value')).toBe(escapeHtml(ATTR));
  });
});

describe('logoutConfirmPage', () => {
  const base = { clientName: 'Acme Wiki', userName: 'alice', formHtml, formId: 'op.logoutForm', nonce: 'nonce-123' };

  it('asks for confirmation with buttons bound to the library form and no script', () => {
    const doc = logoutConfirmPage({ ...base, autoSubmit: false });
    expectWellFormedPage(doc);
    expect(doc).toContain(formHtml.toString());
    expect(doc).toMatch(/<h1>Sign out\?<\/h1>/);
    expect(doc).toContain('Do you want to sign out of Sallyport and <strong class="client-name">Acme Wiki</strong>?');
    expect(doc).not.toMatch(/<script\b/);
    expect(doc).not.toMatch(/<noscript\b/);

    const buttons = tags(doc, 'button');
    expect(buttons).toHaveLength(2);
    expect(buttons.every((b) => b.get('form') === 'op.logoutForm')).toBe(true);
    expect(buttons[0]?.get('name')).toBe('logout');
    expect(buttons[0]?.get('value')).toBe('yes');
    expect(buttons[0]?.get('class')).toBe('button primary');
    // "Stay signed in" submits without the logout field.
    expect(buttons[1]?.has('name')).toBe(false);
    expect(buttons[1]?.has('value')).toBe(false);
    expect(doc).toMatch(/>Stay signed in<\/button>/);
  });

  it('omits the client when not given', () => {
    const doc = logoutConfirmPage({ formHtml, formId: 'f', nonce: 'n', autoSubmit: false });
    expectWellFormedPage(doc);
    expect(doc).toContain('Do you want to sign out of Sallyport?');
  });

  it('auto-submits through a nonce’d script with a noscript fallback', () => {
    const doc = logoutConfirmPage({ ...base, autoSubmit: true });
    expectWellFormedPage(doc);
    expect(doc).toMatch(/<h1>Signing you out…<\/h1>/);
    const scripts = tags(doc, 'script');
    expect(scripts).toHaveLength(1);
    expect(scripts[0]?.get('nonce')).toBe('nonce-123');
    const body = /<script\b[^>]*>([\s\S]*?)<\/script>/.exec(doc)?.[1] ?? '';
    expect(body).toContain('document.getElementById("op.logoutForm")');
    expect(body).toContain("input.name = 'logout'");
    expect(body).toContain("input.value = 'yes'");
    expect(body).toContain('form.submit()');

    const noscript = /<noscript>([\s\S]*?)<\/noscript>/.exec(doc)?.[1] ?? '';
    const fallback = tags(noscript, 'button');
    expect(fallback).toHaveLength(1);
    expect(fallback[0]?.get('form')).toBe('op.logoutForm');
    expect(fallback[0]?.get('name')).toBe('logout');
    expect(fallback[0]?.get('value')).toBe('yes');
    expect(noscript).toMatch(/>Sign out<\/button>/);
  });

  it('escapes hostile values in text, attributes and the script', () => {
    const formId = `x"</script><script>alert(1)//${ATTR}`;
    for (const autoSubmit of [false, true]) {
      const doc = logoutConfirmPage({ clientName: HOSTILE, userName: HOSTILE, formHtml, formId, nonce: ATTR, autoSubmit });
      expectWellFormedPage(doc);
      expectNoInjection(doc);
      for (const button of tags(doc, 'button')) expect(button.get('form')).toBe(escapeHtml(formId));
      if (autoSubmit) {
        expect(count(doc, /<script\b/)).toBe(1);
        expect(count(doc, /<\/script/i)).toBe(1);
        expect(tags(doc, 'script')[0]?.get('nonce')).toBe(escapeHtml(ATTR));
        // The id reaches the script as a JS string literal that decodes to exactly formId.
        const literal = /getElementById\(("(?:[^"\\]|\\.)*")\)/.exec(doc)?.[1] ?? '';
        expect(JSON.parse(literal)).toBe(formId);
      }
    }
  });
});

describe('signedOutPage', () => {
  it('confirms the session ended, with and without a client', () => {
    const withClient = signedOutPage({ clientName: 'Acme Wiki' });
    expectWellFormedPage(withClient);
    expect(withClient).toMatch(/<h1>You are signed out<\/h1>/);
    expect(withClient).toContain('Sallyport session has ended');
    expect(withClient).toContain('<strong class="client-name">Acme Wiki</strong>');
    expect(withClient).toMatch(/shared or public computer/);

    const without = signedOutPage({});
    expectWellFormedPage(without);
    expect(without).not.toMatch(/client-name/);
  });

  it('escapes hostile values', () => {
    const doc = signedOutPage({ clientName: HOSTILE });
    expectWellFormedPage(doc);
    expectNoInjection(doc);
  });
});

describe('errorPage', () => {
  it('shows title, message and reference, and nothing to navigate to', () => {
    const doc = errorPage({ status: 400, title: 'Something went wrong', message: 'Please start again.', requestId: 'req-42' });
    expectWellFormedPage(doc);
    expect(doc).toMatch(/<h1>Something went wrong<\/h1>/);
    expect(doc).toContain('Please start again.');
    expect(doc).toContain('Reference: <code>req-42</code>');
    expect(doc).not.toMatch(/<a\b/);
    expect(doc).not.toMatch(/<form\b/);
  });

  it('omits the reference when there is no request id', () => {
    expect(errorPage({ status: 500, title: 'Oops', message: 'Try later.' })).not.toMatch(/Reference:/);
  });

  it('escapes hostile values', () => {
    const doc = errorPage({ status: 500, title: HOSTILE, message: HOSTILE, requestId: HOSTILE });
    expectWellFormedPage(doc);
    expectNoInjection(doc);
    expect(doc).toContain(`<title>${escapeHtml(HOSTILE)} · Sallyport</title>`);
  });
});
