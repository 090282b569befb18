/**
 * The document shell shared by every Sallyport page.
 *
 * The server sends a CSP with `style-src 'self'` and `script-src 'nonce-…'`, so the
 * shell links one same-origin stylesheet, never uses `style=` attributes, and emits a
 * script only when the caller hands over the response's nonce.
 */
import { html, type SafeHtml } from './html.ts';

export const STYLESHEET_HREF = '/static/sallyport.css';

export interface PageOptions {
  /** Page-specific part of the <title>; " · Sallyport" is appended. */
  title: string;
  /** Contents of the centred card inside <main>. */
  main: SafeHtml;
  /** The CSP nonce of this response; required for `script` to be emitted. */
  nonce?: string;
  /** Trusted script body (no <script> tags). Ignored without a nonce, which CSP would block anyway. */
  script?: SafeHtml;
}

// A small gate-arch mark; inline SVG needs no extra request and no style attribute
// (fill/stroke are presentation attributes, which CSP style-src does not govern).
const logoMark = html`<svg class="brand-mark" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 21V10a8 8 0 0 1 16 0v11h-3v-9a5 5 0 0 0-10 0v9H4z"/><path fill="currentColor" d="M10.5 21v-6h3v6h-3z"/></svg>`;

export function renderPage(p: PageOptions): string {
  let scriptTag: SafeHtml | undefined;
  if (p.script !== undefined && p.nonce !== undefined && p.nonce !== '') {
    // The body is trusted, but a literal "</script" would end the element early and turn
    // the rest into markup; fail loudly rather than render a broken or exploitable page.
    if (/<\/script/i.test(p.script.toString())) {
      throw new Error('renderPage: script body must not contain "</script"');
    }
    scriptTag = html`<script nonce="${p.nonce}">${p.script}</script>`;
  }

  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<meta name="color-scheme" content="light dark">
<title>${p.title} · Sallyport</title>
<link rel="stylesheet" href="${STYLESHEET_HREF}">
</head>
<body>
<header class="site-header">
<span class="brand">${logoMark}<span class="brand-name">Sallyport</span></span>
</header>
<main id="main" class="site-main">
<div class="card">
${p.main}
</div>
</main>
<footer class="site-footer">
<p>Secured by Sallyport</p>
</footer>
${scriptTag}
</body>
</html>
`;
  return doc.toString();
}
