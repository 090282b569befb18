/**
 * views/ — server-rendered HTML pages and their static assets.
 *
 * This module is the only place that turns values into markup. Every page builds its
 * HTML through the `html` tagged template, so escaping is the default and trusting a
 * string is a visible, greppable act (`raw()`), never an accident of concatenation.
 */

// A module-private symbol makes SafeHtml unforgeable from outside: an object literal
// that merely looks like `{ value, toString }` (e.g. parsed from JSON or an upstream
// IdP reply) is not trusted, because it cannot carry this key.
const trusted: unique symbol = Symbol('SafeHtml');

/** Markup that has already been escaped or is trusted by construction. */
export type SafeHtml = {
  readonly [trusted]: string;
  toString(): string;
};

function makeSafe(markup: string): SafeHtml {
  return {
    [trusted]: markup,
    toString() {
      return markup;
    },
  };
}

function isSafeHtml(value: unknown): value is SafeHtml {
  return typeof value === 'object' && value !== null && trusted in value;
}

// Backtick is escaped too: old IE treated it as an attribute delimiter, and escaping it
// costs nothing. Single and double quotes are both escaped so a value is safe inside
// either kind of quoted attribute.
const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes text for use in element content and in quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ENTITIES[c] ?? c);
}

/**
 * Marks a string as trusted markup. Only for markup produced by code we control
 * (e.g. oidc-provider's logout form); never for anything a user, client or upstream IdP
 * supplied.
 */
export function raw(trustedMarkup: string): SafeHtml {
  return makeSafe(trustedMarkup);
}

function render(value: unknown): string {
  // null/undefined/false render as nothing so `${cond && html`…`}` reads naturally.
  if (value === null || value === undefined || value === false) return '';
  if (isSafeHtml(value)) return value[trusted];
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/**
 * Tagged template that escapes every interpolated value unless it is SafeHtml.
 * Arrays are rendered element by element (so a list of `html` fragments composes),
 * and anything else is stringified and escaped.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) {
    out += render(values[i]) + (strings[i + 1] ?? '');
  }
  return makeSafe(out);
}
