/**
 * Live identity providers: the stored configuration, turned into connectors. Each use
 * reads the record (one GET), so a change made on any instance applies on the next
 * request; connectors (with their discovery and JWKS caches) are reused while the
 * record is unchanged.
 */
import { CONNECTOR_TYPES, resolveIdpSettings } from '../connectors/registry.ts';
import type { Connector, IdpSettings } from '../connectors/types.ts';
import type { IdpStore } from '../storage/idp-store.ts';

export interface IdentityProviders {
  get(id: string): Promise<Connector | undefined>;
  /** Also a disabled provider: sessions started through it must still be able to log out there. */
  getForLogout(id: string): Promise<Connector | undefined>;
  /** Enabled providers, for the sign-in page and hint routing. */
  listEnabled(): Promise<IdpSettings[]>;
}

export function createIdentityProviders(deps: { idps: IdpStore; fetch: typeof globalThis.fetch }): IdentityProviders {
  const cache = new Map<string, { raw: string; connector: Connector }>();

  async function load(id: string): Promise<Connector | undefined> {
    const found = await deps.idps.getIdp(id);
    if (!found) {
      cache.delete(id);
      return undefined;
    }
    const cached = cache.get(id);
    if (cached && cached.raw === found.raw) return cached.connector;
    const resolved = resolveIdpSettings(found.record.declaration);
    // Records are validated when written; one that no longer resolves (e.g. a type
    // removed in an upgrade) is treated as absent rather than breaking every sign-in.
    if (!('settings' in resolved)) return undefined;
    const connector = CONNECTOR_TYPES[resolved.settings.type]!.create(resolved.settings, { fetch: deps.fetch });
    cache.set(id, { raw: found.raw, connector });
    return connector;
  }

  return {
    async get(id) {
      const connector = await load(id);
      return connector?.settings.enabled ? connector : undefined;
    },
    getForLogout: load,
    async listEnabled() {
      const ids = (await deps.idps.listIdpIds()).sort();
      const connectors = await Promise.all(ids.map(load));
      return connectors.filter((c): c is Connector => !!c && c.settings.enabled).map((c) => c.settings);
    },
  };
}
