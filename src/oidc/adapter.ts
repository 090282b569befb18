/**
 * Bridge between oidc-provider's adapter interface and our key/value contract.
 *
 * One adapter class serves every model the provider persists (Session, AccessToken,
 * AuthorizationCode, RefreshToken, ClientCredentials, Client, Interaction, Grant,
 * ReplayDetection, PushedAuthorizationRequest, DeviceCode, …). Records are hashes
 * `{v, p[, c]}`: version, JSON payload, and the consumed-at timestamp, so that `consume`
 * is one atomic single-key operation (HSETNX guarded by EXISTS) rather than the
 * check-then-set the library would otherwise rely on.
 */
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { StoreUnavailableError, type KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';
import { RECORD_VERSION } from '../storage/records.ts';

/** Models whose records carry a grantId and must disappear when the grant is revoked. */
const GRANT_BOUND = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * Records outlive their `exp` by this many seconds so the library (which allows clock
 * tolerance) still finds them and reports "expired" rather than "not found"; the same
 * retention the built-in memory adapter applies.
 */
const RETENTION_SECONDS = 60;

export function createAdapterFactory(store: KeyValueStore, keys: Keys): (name: string) => Adapter {
  const cache = new Map<string, Adapter>();
  return (name: string) => {
    let adapter = cache.get(name);
    if (!adapter) {
      adapter = withOutageErrors(new StoreAdapter(name, store, keys));
      cache.set(name, adapter);
    }
    return adapter;
  };
}

/**
 * A store outage inside a provider endpoint must reach the client as what it is — a
 * temporary condition (503 `temporarily_unavailable`, retry) — not as the library's
 * generic 500 server_error.
 */
function withOutageErrors(adapter: StoreAdapter): Adapter {
  return new Proxy(adapter, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (err) {
          if (!(err instanceof StoreUnavailableError)) throw err;
          const unavailable = new errors.TemporarilyUnavailable('the service is temporarily unavailable; retry shortly');
          Object.assign(unavailable, { status: 503, statusCode: 503, cause: err });
          throw unavailable;
        }
      };
    },
  });
}

export class StoreAdapter implements Adapter {
  readonly name: string;
  readonly #store: KeyValueStore;
  readonly #keys: Keys;

  constructor(name: string, store: KeyValueStore, keys: Keys) {
    this.name = name;
    this.#store = store;
    this.#keys = keys;
  }

  #key(id: string): string {
    return this.#keys.oidcModel(this.name, id);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const key = this.#key(id);
    const ttl = expiresIn && expiresIn > 0 ? Math.ceil(expiresIn) + RETENTION_SECONDS : undefined;
    const ttlOption = ttl === undefined ? {} : { ttl };

    // Indexes are written before the record: a token must never exist without its
    // grant-index entry, or revoking the grant would miss it.
    if (GRANT_BOUND.has(this.name) && payload.grantId) {
      await this.#store.sAdd(this.#keys.oidcGrantIndex(payload.grantId), key, ttlOption);
    }
    if (this.name === 'Session' && payload.uid) {
      await this.#store.set(this.#keys.oidcSessionByUid(payload.uid), id, ttlOption);
      if (payload.accountId) {
        await this.#store.sAdd(this.#keys.accountSessions(payload.accountId), payload.uid, ttlOption);
      }
    }
    if (this.name === 'DeviceCode' && payload.userCode) {
      await this.#store.set(this.#keys.oidcDeviceUserCode(payload.userCode), id, ttlOption);
    }
    if (this.name === 'Client') {
      await this.#store.sAdd(this.#keys.clientIndex(), id);
    }
    if (this.name === 'Grant' && payload.accountId) {
      await this.#store.sAdd(this.#keys.accountGrants(payload.accountId), id, ttlOption);
    }

    await this.#store.hReplace(key, { v: String(RECORD_VERSION), p: JSON.stringify(payload) }, ttlOption);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const record = await this.#store.hGetAll(this.#key(id));
    if (!record?.p) return undefined;
    const payload = JSON.parse(record.p) as AdapterPayload;
    if (record.c) payload.consumed = Number(record.c);
    return payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get(this.#keys.oidcSessionByUid(uid));
    if (!id) return undefined;
    const payload = await this.find(id);
    // The index may outlive a destroyed session; only a record that still claims the
    // uid counts.
    return payload?.uid === uid ? payload : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get(this.#keys.oidcDeviceUserCode(userCode));
    return id ? this.find(id) : undefined;
  }

  async consume(id: string): Promise<void> {
    const outcome = await this.#store.hSetIfAbsent(this.#key(id), 'c', String(Math.floor(Date.now() / 1000)));
    // The library checks `consumed` before calling consume(); two concurrent requests
    // can both pass that check. Losing the atomic race must be an invalid_grant, never
    // a second issuance.
    if (outcome !== 'set') throw new errors.InvalidGrant('grant request is invalid');
  }

  async destroy(id: string): Promise<void> {
    await this.#store.del(this.#key(id));
    if (this.name === 'Client') await this.#store.sRem(this.#keys.clientIndex(), id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const index = this.#keys.oidcGrantIndex(grantId);
    // One DEL per key: the tokens live in different hash slots on a cluster.
    for (const key of await this.#store.sMembers(index)) {
      await this.#store.del(key);
    }
    await this.#store.del(index);
  }
}
