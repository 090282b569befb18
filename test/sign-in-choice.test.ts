import { describe, expect, it } from 'vitest';
import { chooseSignIn, plainLoginHint } from '../src/interactions/sign-in-choice.ts';
import { claimAt, mapGroups } from '../src/federation/accounts.ts';
import { resolveIdpSettings } from '../src/connectors/registry.ts';
import { identityProviderSchema } from '../src/config/schema.ts';

const idps = [
  { id: 'okta', emailDomains: ['corp.example'] },
  { id: 'kc', emailDomains: ['lab.example'] },
];
const base = { allowed: undefined, localEnabled: true, idps };

describe('choosing how to sign in', () => {
  it('shows the page when there is a choice and no hint', () => {
    expect(chooseSignIn({ ...base, params: {} })).toEqual({ kind: 'page' });
  });
  it('follows idp_hint, kc_idp_hint and UAA\'s login_hint origin', () => {
    expect(chooseSignIn({ ...base, params: { idp_hint: 'kc' } })).toEqual({ kind: 'idp', idp: 'kc' });
    expect(chooseSignIn({ ...base, params: { kc_idp_hint: 'okta' } })).toEqual({ kind: 'idp', idp: 'okta' });
    expect(chooseSignIn({ ...base, params: { login_hint: '{"origin":"okta"}' } })).toEqual({ kind: 'idp', idp: 'okta' });
    expect(chooseSignIn({ ...base, params: { idp_hint: 'local' } })).toEqual({ kind: 'local' });
  });
  it('routes by email domain', () => {
    expect(chooseSignIn({ ...base, params: { login_hint: 'ann@LAB.example' } })).toEqual({ kind: 'idp', idp: 'kc' });
    expect(chooseSignIn({ ...base, params: { login_hint: 'ann@elsewhere.example' } })).toEqual({ kind: 'page' });
  });
  it('ignores hints for ways the client may not use', () => {
    expect(chooseSignIn({ ...base, allowed: ['okta', 'local'], params: { idp_hint: 'kc' } })).toEqual({ kind: 'page' });
    expect(chooseSignIn({ ...base, allowed: ['okta'], params: { idp_hint: 'local' } })).toEqual({ kind: 'idp', idp: 'okta' });
    expect(chooseSignIn({ ...base, params: { idp_hint: 'nope' } })).toEqual({ kind: 'page' });
  });
  it('goes straight to the only way left', () => {
    expect(chooseSignIn({ ...base, allowed: ['kc'], params: {} })).toEqual({ kind: 'idp', idp: 'kc' });
    expect(chooseSignIn({ ...base, allowed: ['local'], params: {} })).toEqual({ kind: 'local' });
    expect(chooseSignIn({ ...base, idps: [], params: {} })).toEqual({ kind: 'local' });
    expect(chooseSignIn({ ...base, localEnabled: false, idps: [idps[0]!], params: {} })).toEqual({ kind: 'idp', idp: 'okta' });
    expect(chooseSignIn({ ...base, localEnabled: false, allowed: ['local'], params: {} })).toEqual({ kind: 'none' });
  });
  it('prefills only plain login hints', () => {
    expect(plainLoginHint({ login_hint: 'ann' })).toBe('ann');
    expect(plainLoginHint({ login_hint: '{"origin":"okta"}' })).toBeUndefined();
  });
});

describe('claim and group mapping', () => {
  const settings = (over: Record<string, unknown> = {}) => {
    const r = resolveIdpSettings(identityProviderSchema.parse({ id: 'kc', type: 'keycloak', displayName: 'KC', issuer: 'https://kc.example/realms/x', clientId: 'c', clientSecret: 's', ...over }));
    if (!('settings' in r)) throw new Error('invalid');
    return r.settings;
  };
  it('reads claims by name and dot path', () => {
    expect(claimAt({ realm_access: { roles: ['a'] } }, 'realm_access.roles')).toEqual(['a']);
    expect(claimAt({ 'https://x/groups': ['g'] }, 'https://x/groups')).toEqual(['g']);
    expect(claimAt({ a: 1 }, 'a.b.c')).toBeUndefined();
  });
  it('maps upstream groups, dropping unmapped ones unless asked to keep them', () => {
    const s = settings({ groupMappings: { 'Okta Admins': ['admins'], devs: ['developers', 'staff'] } });
    expect(mapGroups(s, { groups: ['Okta Admins', 'devs', 'other'] })).toEqual(['admins', 'developers', 'staff']);
    const keep = settings({ groupMappings: { devs: ['developers'] }, passUnmappedGroups: true });
    expect(mapGroups(keep, { groups: ['devs', 'other', 'bad group!'] })).toEqual(['developers', 'other']);
    const roles = settings({ claims: { groups: 'realm_access.roles' }, passUnmappedGroups: true });
    expect(mapGroups(roles, { realm_access: { roles: ['r1'] } })).toEqual(['r1']);
  });
  it('applies preset defaults and reports unusable settings by path', () => {
    const kc = settings();
    expect(kc.logout.params).toEqual(['id_token_hint', 'client_id']);
    const okta = resolveIdpSettings(identityProviderSchema.parse({ id: 'o', type: 'okta', displayName: 'O', issuer: 'https://o.example', clientId: 'c', clientSecret: 's' }));
    expect('settings' in okta && okta.settings.scopes).toEqual(['openid', 'profile', 'email', 'groups']);
    const bad = resolveIdpSettings(identityProviderSchema.parse({ id: 'x', type: 'saml', displayName: 'X', issuer: 'https://x.example', clientId: 'c' }));
    expect('problems' in bad && bad.problems[0]?.path).toBe('type');
    const noSecret = resolveIdpSettings(identityProviderSchema.parse({ id: 'x', type: 'oidc', displayName: 'X', issuer: 'https://x.example', clientId: 'c' }));
    expect('problems' in noSecret && noSecret.problems).toEqual([{ path: 'clientSecret', message: 'required for client_secret_basic' }]);
  });
});
