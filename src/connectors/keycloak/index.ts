/**
 * Keycloak preset. Keycloak (18+) requires `id_token_hint` or `client_id` whenever
 * `post_logout_redirect_uri` is sent to its logout endpoint, so both are sent: the
 * hint ends the session without a question, and client_id keeps logout working if
 * Keycloak no longer accepts the hint. Group membership comes from a "groups" mapper
 * (`groups` claim); realm roles (`realm_access.roles`) can be mapped instead by setting
 * `claims.groups: realm_access.roles`.
 */
import { createOidcConnector, oidcConnectorType } from '../oidc/connector.ts';
import type { ConnectorType } from '../types.ts';

export const keycloakConnectorType: ConnectorType = {
  defaults: {
    ...oidcConnectorType.defaults,
    scopes: ['openid', 'profile', 'email'],
    claims: { ...oidcConnectorType.defaults.claims, groups: 'groups' },
    logout: { method: 'redirect', params: ['id_token_hint', 'client_id'] },
  },
  create: createOidcConnector,
};
