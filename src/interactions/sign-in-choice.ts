/**
 * Which way to sign in: the local form, an upstream IdP, or the page offering both.
 * Hints skip the page: `idp_hint` (and Keycloak's `kc_idp_hint`), UAA's
 * `login_hint={"origin":"<idp>"}`, and an email login_hint whose domain an IdP claims.
 * A client's `allowed_idps` narrows everything; when one way remains, take it.
 */
export const LOCAL = 'local';

export type SignInChoice = { kind: 'idp'; idp: string } | { kind: 'local' } | { kind: 'page' } | { kind: 'none' };

export interface ChoiceInput {
  params: Record<string, unknown>;
  /** `allowed_idps` of the client; undefined = all. */
  allowed: readonly string[] | undefined;
  localEnabled: boolean;
  idps: ReadonlyArray<{ id: string; emailDomains: readonly string[] }>;
}

/** The IdP named by UAA's JSON login_hint, if that is what it is. */
function originFromLoginHint(loginHint: string): string | undefined {
  if (!loginHint.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(loginHint) as { origin?: unknown };
    return typeof parsed.origin === 'string' ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}

export function chooseSignIn(input: ChoiceInput): SignInChoice {
  const allowed = input.allowed ? new Set(input.allowed) : undefined;
  const idps = input.idps.filter((i) => !allowed || allowed.has(i.id));
  const local = input.localEnabled && (!allowed || allowed.has(LOCAL));
  const pick = (id: string): SignInChoice | undefined => {
    if (id === LOCAL) return local ? { kind: 'local' } : undefined;
    return idps.some((i) => i.id === id) ? { kind: 'idp', idp: id } : undefined;
  };

  const str = (k: string) => (typeof input.params[k] === 'string' ? (input.params[k] as string) : undefined);
  const hint = str('idp_hint') ?? str('kc_idp_hint');
  const loginHint = str('login_hint');
  // A hint naming a way this client may not use is ignored, not obeyed.
  const hinted = (hint && pick(hint)) || (loginHint && originFromLoginHint(loginHint) && pick(originFromLoginHint(loginHint)!));
  if (hinted) return hinted;

  if (loginHint?.includes('@')) {
    const domain = loginHint.slice(loginHint.lastIndexOf('@') + 1).toLowerCase();
    const routed = idps.filter((i) => i.emailDomains.includes(domain));
    if (routed.length === 1) return { kind: 'idp', idp: routed[0]!.id };
  }

  if (idps.length === 0) return local ? { kind: 'local' } : { kind: 'none' };
  if (idps.length === 1 && !local) return { kind: 'idp', idp: idps[0]!.id };
  return { kind: 'page' };
}

/** The login_hint to prefill or forward, unless it was UAA's JSON origin form. */
export function plainLoginHint(params: Record<string, unknown>): string | undefined {
  const v = params['login_hint'];
  return typeof v === 'string' && !originFromLoginHint(v) && v.length <= 200 ? v : undefined;
}
