/**
 * Upstream identity provider configurations. Stored (not only read from the config
 * file) so that every instance sees a change on its next request, whoever made it.
 */
import type { IdentityProviderDeclaration } from '../config/schema.ts';
import { notFound, preconditionFailed } from '../errors.ts';
import type { KeyValueStore } from './contract.ts';
import type { Keys } from './keys.ts';
import { decodeRecord, encodeRecord } from './records.ts';

export interface IdpRecord {
  declaration: IdentityProviderDeclaration;
  source: 'config' | 'admin';
  version: number;
  updatedAt: string;
}

export interface IdpStore {
  getIdp(id: string): Promise<{ raw: string; record: IdpRecord } | undefined>;
  listIdpIds(): Promise<string[]>;
  /** Create or replace; with `expectedVersion`, only over that version (412 otherwise). */
  putIdp(declaration: IdentityProviderDeclaration, source: IdpRecord['source'], expectedVersion?: number): Promise<IdpRecord>;
  deleteIdp(id: string): Promise<void>;
}

export function createIdpStore(store: KeyValueStore, keys: Keys): IdpStore {
  async function getIdp(id: string) {
    const raw = await store.get(keys.idp(id));
    const record = decodeRecord<IdpRecord>(raw);
    return raw && record ? { raw, record } : undefined;
  }
  return {
    getIdp,
    listIdpIds: () => store.sMembers(keys.idpIndex()),
    async putIdp(declaration, source, expectedVersion) {
      const current = await getIdp(declaration.id);
      if (expectedVersion !== undefined && current?.record.version !== expectedVersion) throw preconditionFailed();
      const record: IdpRecord = { declaration, source, version: (current?.record.version ?? 0) + 1, updatedAt: new Date().toISOString() };
      await store.sAdd(keys.idpIndex(), declaration.id);
      if (!(await store.setIfEquals(keys.idp(declaration.id), current?.raw ?? null, encodeRecord(record)))) throw preconditionFailed();
      return record;
    },
    async deleteIdp(id) {
      if (!(await getIdp(id))) throw notFound('identity provider');
      await store.del(keys.idp(id));
      await store.sRem(keys.idpIndex(), id);
    },
  };
}
