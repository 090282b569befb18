/**
 * Signing keys: generated at first start and kept in the store, so every instance on
 * one Redis signs with, and publishes, the same keys. Two instances starting at once
 * race with SET NX; the loser adopts the winner's keys.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { decodeRecord, encodeRecord } from '../storage/records.ts';

interface StoredKeys {
  keys: JWK[];
  createdAt: string;
}

async function generate(alg: 'ES256' | 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
}

export async function loadOrCreateSigningKeys(store: KeyValueStore, keys: Keys): Promise<JWK[]> {
  const key = keys.signingKeys();
  const existing = decodeRecord<StoredKeys>(await store.get(key));
  if (existing) return existing.keys;

  // RS256 first: it is the default id_token algorithm every RP must support
  // (OIDC Core §15.1); ES256 is offered to clients that register for it.
  const generated: StoredKeys = { keys: [await generate('RS256'), await generate('ES256')], createdAt: new Date().toISOString() };
  if (await store.set(key, encodeRecord(generated), { ifAbsent: true })) return generated.keys;

  const winner = decodeRecord<StoredKeys>(await store.get(key));
  if (!winner) throw new Error('signing keys disappeared while starting');
  return winner.keys;
}
