/**
 * Connector registry: IdP type → connector. Adding a provider type is one folder and
 * one line here.
 */
import type { IdentityProviderDeclaration } from '../config/schema.ts';
import { keycloakConnectorType } from './keycloak/index.ts';
import { oidcConnectorType } from './oidc/connector.ts';
import { oktaConnectorType } from './okta/index.ts';
import type { ConnectorType, IdpSettings } from './types.ts';

export const CONNECTOR_TYPES: Readonly<Record<string, ConnectorType>> = {
  oidc: oidcConnectorType,
  okta: oktaConnectorType,
  keycloak: keycloakConnectorType,
};

/** Merge a declaration over its type's defaults; returns the problems instead when it cannot work. */
export function resolveIdpSettings(decl: IdentityProviderDeclaration): { settings: IdpSettings } | { problems: Array<{ path: string; message: string }> } {
  const type = CONNECTOR_TYPES[decl.type];
  if (!type) return { problems: [{ path: 'type', message: `unknown type "${decl.type}" (known: ${Object.keys(CONNECTOR_TYPES).join(', ')})` }] };
  const d = type.defaults;
  const settings: IdpSettings = {
    id: decl.id,
    type: decl.type,
    displayName: decl.displayName,
    enabled: decl.enabled,
    issuer: decl.issuer,
    endpoints: decl.endpoints,
    clientId: decl.clientId,
    clientSecret: decl.clientSecret,
    clientAuth: decl.clientAuth ?? d.clientAuth ?? 'client_secret_basic',
    privateKeyJwk: decl.privateKeyJwk,
    scopes: decl.scopes ?? d.scopes ?? ['openid'],
    idTokenAlgs: decl.idTokenAlgs ?? d.idTokenAlgs ?? ['RS256'],
    clockSkew: decl.clockSkew ?? d.clockSkew ?? 60,
    timeoutMs: decl.timeoutMs ?? d.timeoutMs ?? 5000,
    jwksCooldown: decl.jwksCooldown ?? d.jwksCooldown ?? 30,
    emailDomains: decl.emailDomains.map((e) => e.toLowerCase()),
    claims: {
      email: decl.claims.email ?? d.claims?.email ?? 'email',
      emailVerified: decl.claims.emailVerified ?? d.claims?.emailVerified ?? 'email_verified',
      name: decl.claims.name ?? d.claims?.name ?? 'name',
      preferredUsername: decl.claims.preferredUsername ?? d.claims?.preferredUsername ?? 'preferred_username',
      groups: decl.claims.groups ?? d.claims?.groups ?? 'groups',
    },
    groupMappings: decl.groupMappings,
    passUnmappedGroups: decl.passUnmappedGroups,
    linkByVerifiedEmail: decl.linkByVerifiedEmail,
    logout: {
      method: decl.logout.method ?? d.logout?.method ?? 'redirect',
      params: decl.logout.params ?? d.logout?.params ?? ['id_token_hint'],
      url: decl.logout.url,
    },
  };
  const problems: Array<{ path: string; message: string }> = [];
  if (!settings.scopes.includes('openid')) problems.push({ path: 'scopes', message: 'must include openid' });
  if (settings.clientAuth === 'private_key_jwt' && !settings.privateKeyJwk) problems.push({ path: 'privateKeyJwk', message: 'required for private_key_jwt' });
  if (settings.clientAuth !== 'private_key_jwt' && !settings.clientSecret) problems.push({ path: 'clientSecret', message: `required for ${settings.clientAuth}` });
  return problems.length > 0 ? { problems } : { settings };
}
