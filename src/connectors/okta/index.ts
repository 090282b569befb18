/**
 * Okta preset. Okta requires `id_token_hint` at its logout endpoint (without it the
 * request is refused and the Okta session survives, uaa#1341/#3037) and accepts an
 * expired one; groups arrive in a `groups` claim once the authorization server has a
 * groups claim configured, requested with the `groups` scope.
 */
import { createOidcConnector, oidcConnectorType } from '../oidc/connector.ts';
import type { ConnectorType } from '../types.ts';

export const oktaConnectorType: ConnectorType = {
  defaults: {
    ...oidcConnectorType.defaults,
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { ...oidcConnectorType.defaults.claims, groups: 'groups' },
    logout: { method: 'redirect', params: ['id_token_hint'] },
  },
  create: createOidcConnector,
};
