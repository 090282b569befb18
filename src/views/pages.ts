/**
 * The interaction, logout and error pages.
 *
 * Each function is pure: plain data in, a complete HTML document out. Values that come
 * from clients (names, URIs), users (usernames) or upstream IdPs (display names) are
 * interpolated through `html` and therefore escaped; the only trusted markup accepted is
 * the logout form that oidc-provider itself generates.
 */
import { html, raw, type SafeHtml } from './html.ts';
import { renderPage } from './layout.ts';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/**
 * Client metadata URIs (client_uri, logo_uri, policy_uri, tos_uri) are registered by the
 * client, possibly through dynamic registration, so escaping alone is not enough: a
 * `javascript:` URI is perfectly escaped and still runs. Only absolute http(s) URIs are
 * rendered; anything else is dropped. (OIDC Dynamic Client Registration 1.0 §2 defines
 * these as URLs to web pages and images.)
 */
function webUrl(uri: string | undefined): string | undefined {
  if (uri === undefined || uri === '') return undefined;
  try {
    const url = new URL(uri);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Encodes a string as a JavaScript string literal that is also safe inside an HTML
 * <script> element: `<`, `>` and `&` are \u-escaped so the value can never close the
 * element or start a comment, and U+2028/2029 are escaped for pre-ES2019 parsers.
 */
function jsString(value: string): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function errorBanner(id: string, message: string | undefined): SafeHtml | undefined {
  if (message === undefined || message === '') return undefined;
  return html`<div class="alert" role="alert" id="${id}"><p>${message}</p></div>`;
}

function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${token}">`;
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

export interface LoginProvider {
  id: string;
  displayName: string;
  /** Server-built path that starts the federation flow for this provider. */
  href: string;
}

export interface LoginPageOptions {
  clientName: string;
  /** Where the username/password form posts. */
  action: string;
  csrfToken: string;
  /** Prefilled after a failed attempt so the user only retypes the password. */
  username?: string;
  /** A fixed, user-facing message (never internal detail). */
  error?: string;
  localLogin: boolean;
  providers: LoginProvider[];
  /** Where the CSRF-protected cancel form posts (aborts the interaction). */
  cancelAction: string;
}

export function loginPage(p: LoginPageOptions): string {
  const errorId = 'login-error';
  const hasError = p.error !== undefined && p.error !== '';
  const describedBy = hasError ? errorId : undefined;
  const prefilled = p.username !== undefined && p.username !== '';

  // WCAG 3.3.1: the fields point at the banner so screen readers announce why the
  // attempt failed when focus lands on them, not only once when the page loads.
  const invalidAttrs = hasError ? html` aria-invalid="true" aria-describedby="${describedBy}"` : undefined;

  // Focus the field the user has to type into next: after a failed attempt the username
  // is already filled in, so the password is where they continue.
  const localForm =
    p.localLogin &&
    html`<form class="stack" method="post" action="${p.action}">
${csrfField(p.csrfToken)}
<div class="field">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false" required value="${p.username ?? ''}"${prefilled ? undefined : html` autofocus`}${invalidAttrs}>
</div>
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${prefilled ? html` autofocus` : undefined}${invalidAttrs}>
</div>
<button type="submit" class="button primary">Sign in</button>
</form>`;

  const providerButtons =
    p.providers.length > 0 &&
    html`<div class="providers stack">
${p.providers.map((provider) => html`<a class="button secondary" href="${provider.href}" data-provider="${provider.id}">Sign in with ${provider.displayName}</a>\n`)}</div>`;

  const divider = p.localLogin && p.providers.length > 0 && html`<div class="divider"><span>or</span></div>`;

  const noMethod =
    !p.localLogin &&
    p.providers.length === 0 &&
    html`<p class="muted">No sign-in method is available for this application. Please contact its administrator.</p>`;

  const main = html`<h1>Sign in</h1>
<p class="lead">to continue to <strong class="client-name">${p.clientName}</strong></p>
${errorBanner(errorId, p.error)}
${localForm}
${divider}
${providerButtons}
${noMethod}
<form class="cancel-form" method="post" action="${p.cancelAction}">
${csrfField(p.csrfToken)}
<button type="submit" class="button link">Cancel</button>
</form>`;

  return renderPage({ title: 'Sign in', main });
}

// ---------------------------------------------------------------------------
// Consent
// ---------------------------------------------------------------------------

export interface ConsentScope {
  name: string;
  description: string;
}

export interface ConsentResource {
  /** RFC 8707 resource indicator (an absolute URI identifying the API). */
  indicator: string;
  scopes: string[];
}

export interface ConsentPageOptions {
  clientName: string;
  clientUri?: string;
  logoUri?: string;
  policyUri?: string;
  tosUri?: string;
  userName: string;
  action: string;
  csrfToken: string;
  scopes: ConsentScope[];
  resources?: ConsentResource[];
}

export function consentPage(p: ConsentPageOptions): string {
  const clientUri = webUrl(p.clientUri);
  // Only https logos: an http image would be mixed content on our https pages.
  const anyLogoUri = webUrl(p.logoUri);
  const logoUri = anyLogoUri?.startsWith('https:') ? anyLogoUri : undefined;
  const policyUri = webUrl(p.policyUri);
  const tosUri = webUrl(p.tosUri);

  // The client's host is shown next to its self-chosen name: a name is free text, the
  // host is what the user can check against the site they came from.
  const clientHost = clientUri === undefined ? undefined : new URL(clientUri).host;

  const logo =
    logoUri !== undefined &&
    html`<img class="client-logo" src="${logoUri}" alt="" width="48" height="48" referrerpolicy="no-referrer">`;

  const site =
    clientHost !== undefined &&
    html`<a class="client-site" href="${clientUri}" rel="noopener noreferrer" target="_blank">${clientHost}<span class="visually-hidden"> (opens in a new tab)</span></a>`;

  const scopeList =
    p.scopes.length > 0
      ? html`<p><strong class="client-name">${p.clientName}</strong> wants to:</p>
<ul class="scope-list">
${p.scopes.map((s) => html`<li><span class="scope-description">${s.description}</span> <code class="scope-name">${s.name}</code></li>\n`)}</ul>`
      : html`<p><strong class="client-name">${p.clientName}</strong> wants to sign you in.</p>`;

  const resources = p.resources ?? [];
  const resourceSection =
    resources.length > 0 &&
    html`<section class="resources" aria-labelledby="resources-heading">
<h2 id="resources-heading">With access to these APIs</h2>
<ul class="resource-list">
${resources.map(
  (r) => html`<li><code class="resource-indicator">${r.indicator}</code>${
    r.scopes.length > 0 &&
    html`<ul class="resource-scopes">${r.scopes.map((s) => html`<li><code class="scope-name">${s}</code></li>`)}</ul>`
  }</li>\n`,
)}</ul>
</section>`;

  const legalLinks = [
    policyUri !== undefined &&
      html`<a href="${policyUri}" rel="noopener noreferrer" target="_blank">privacy policy<span class="visually-hidden"> (opens in a new tab)</span></a>`,
    tosUri !== undefined &&
      html`<a href="${tosUri}" rel="noopener noreferrer" target="_blank">terms of service<span class="visually-hidden"> (opens in a new tab)</span></a>`,
  ].filter((link): link is SafeHtml => link !== false);

  const legal =
    legalLinks.length > 0 &&
    html`<p class="legal">Review ${p.clientName}’s ${legalLinks.length === 2 ? html`${legalLinks[0]} and ${legalLinks[1]}` : legalLinks[0]}.</p>`;

  const main = html`<div class="client">
${logo}
<div>
<h1>Allow access?</h1>
${site}
</div>
</div>
${scopeList}
${resourceSection}
<p class="signed-in-as">Signed in as <strong>${p.userName}</strong></p>
${legal}
<form class="actions" method="post" action="${p.action}">
${csrfField(p.csrfToken)}
<button type="submit" name="decision" value="allow" class="button primary">Allow</button>
<button type="submit" name="decision" value="deny" class="button secondary">Deny</button>
</form>`;

  return renderPage({ title: 'Allow access?', main });
}

// ---------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------

export interface LogoutConfirmPageOptions {
  clientName?: string;
  userName?: string;
  /**
   * oidc-provider's own `<form id="…" method="post" action="…"><input type="hidden"
   * name="xsrf" …></form>`, trusted as is. Its buttons live outside it and reference it
   * through the `form` attribute, so the library's markup needs no rewriting.
   */
  formHtml: SafeHtml;
  formId: string;
  /** Submit without asking (e.g. the RP sent a valid id_token_hint). */
  autoSubmit: boolean;
  /** CSP nonce of this response; used only for the auto-submit script. */
  nonce: string;
}

export function logoutConfirmPage(p: LogoutConfirmPageOptions): string {
  const clientPart = p.clientName !== undefined && p.clientName !== '' && html` and <strong class="client-name">${p.clientName}</strong>`;
  const who =
    p.userName !== undefined &&
    p.userName !== '' &&
    html`<p class="signed-in-as">Signed in as <strong>${p.userName}</strong></p>`;

  // oidc-provider's end_session confirm handler treats a submission *with* logout=yes as
  // "sign out" and one without it as "stay signed in", so the secondary button carries
  // no name/value at all.
  const signOutButton = html`<button type="submit" name="logout" value="yes" form="${p.formId}" class="button primary">Sign out</button>`;

  if (p.autoSubmit) {
    // The script adds the same logout=yes field the Sign out button would send, then
    // submits. Without JavaScript the <noscript> button does the identical request.
    // The id goes through jsString + raw, not html escaping: entities are not decoded
    // inside <script>, so `&quot;` would break the literal; jsString is the script-context
    // escaper.
    const script = html`(function () {
  var form = document.getElementById(${raw(jsString(p.formId))});
  if (!form) return;
  var input = document.createElement('input');
  input.type = 'hidden';
  input.name = 'logout';
  input.value = 'yes';
  form.appendChild(input);
  form.submit();
})();`;

    const main = html`${p.formHtml}
<h1>Signing you out…</h1>
<p class="lead">Please wait while you are signed out of Sallyport${clientPart}.</p>
${who}
<noscript>
<p>JavaScript is turned off. Select Sign out to continue.</p>
<div class="actions">${signOutButton}</div>
</noscript>`;

    return renderPage({ title: 'Signing out', main, nonce: p.nonce, script });
  }

  const main = html`${p.formHtml}
<h1>Sign out?</h1>
<p class="lead">Do you want to sign out of Sallyport${clientPart}?</p>
${who}
<div class="actions">
${signOutButton}
<button type="submit" form="${p.formId}" class="button secondary">Stay signed in</button>
</div>`;

  return renderPage({ title: 'Sign out?', main });
}

export interface SignedOutPageOptions {
  clientName?: string;
}

export function signedOutPage(p: SignedOutPageOptions): string {
  const clientPart = p.clientName !== undefined && p.clientName !== '' && html` and <strong class="client-name">${p.clientName}</strong>`;
  const main = html`<h1>You are signed out</h1>
<p class="lead">Your Sallyport session has ended. You have been signed out of Sallyport${clientPart}.</p>
<p class="muted">On a shared or public computer, close all browser windows to finish.</p>`;
  return renderPage({ title: 'Signed out', main });
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

export interface ErrorPageOptions {
  status: number;
  /** Fixed, friendly title (never internal detail). */
  title: string;
  /** Fixed, friendly explanation (never internal detail or a stack trace). */
  message: string;
  /** Correlates the user's report with the server log that holds the private detail. */
  requestId?: string;
}

export function errorPage(p: ErrorPageOptions): string {
  // Deliberately no "return to the application" link: the only candidate targets arrive
  // in the failed request, and STYLE.md rule 4 forbids trusting those.
  const reference =
    p.requestId !== undefined &&
    p.requestId !== '' &&
    html`<p class="reference">Reference: <code>${p.requestId}</code></p>`;
  const main = html`<p class="eyebrow">Error ${p.status}</p>
<h1>${p.title}</h1>
<p class="lead">${p.message}</p>
${reference}`;
  return renderPage({ title: p.title, main });
}

export interface UpstreamErrorPageOptions {
  /** The identity provider's display name. */
  idpName: string;
  clientName: string;
  message: string;
  csrfToken: string;
  /** POST target that ends the sign-in and returns the error to the application. */
  abortAction: string;
  /** The `reason` sent with the abort (chooses the OAuth error the application gets). */
  reason: string;
  /** Back to the sign-in choices of this interaction. */
  retryHref: string;
  requestId?: string;
}

/**
 * An upstream identity provider failed or refused. The person reads what happened and
 * chooses: try again (another way, or the same provider) or go back to the application,
 * which then receives a proper OAuth error.
 */
export function upstreamErrorPage(p: UpstreamErrorPageOptions): string {
  const reference =
    p.requestId !== undefined && p.requestId !== '' && html`<p class="reference">Reference: <code>${p.requestId}</code></p>`;
  const main = html`<h1>Sign-in with ${p.idpName} did not work</h1>
<div class="alert" role="alert" id="upstream-error">${p.message}</div>
<div class="actions stack">
<a class="button primary" href="${p.retryHref}">Try again</a>
<form method="post" action="${p.abortAction}">
<input type="hidden" name="csrf" value="${p.csrfToken}">
<input type="hidden" name="reason" value="${p.reason}">
<button type="submit" class="button secondary">Return to ${p.clientName}</button>
</form>
</div>
${reference}`;
  return renderPage({ title: `Sign-in with ${p.idpName} did not work`, main });
}

export interface UpstreamLogoutFormOptions {
  idpName: string;
  action: string;
  params: Record<string, string>;
  nonce: string;
}

/**
 * Logout at an upstream IdP by form POST (for IdPs configured for it, which keeps the
 * id_token out of URLs and logs). Submits itself; without JavaScript, one button.
 */
export function upstreamLogoutFormPage(p: UpstreamLogoutFormOptions): string {
  const fields = Object.entries(p.params).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`);
  const main = html`<h1>Signing you out of ${p.idpName}…</h1>
<form id="upstream-logout" method="post" action="${p.action}">
${fields}
<noscript><button type="submit" class="button primary">Continue</button></noscript>
</form>`;
  const script = html`document.getElementById('upstream-logout').submit();`;
  return renderPage({ title: 'Signing out', main, nonce: p.nonce, script });
}
