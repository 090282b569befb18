/**
 * A straightforward ioredis adapter for the bare provider, of the kind oidc-provider's
 * documentation shows: one JSON string per record (a hash for models that are consumed
 * once, so `consume` is one HSET), a list per grant for revokeByGrantId, and keys for the
 * session-uid and user-code lookups. Default ioredis options; writes go in one MULTI.
 */
import { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from 'oidc-provider';

const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

const grantKey = (grantId: string) => `grant:${grantId}`;
const uidKey = (uid: string) => `sessionUid:${uid}`;
const userCodeKey = (userCode: string) => `userCode:${userCode}`;

export function createRedisAdapterFactory(url: string): { factory: (name: string) => Adapter; close: () => Promise<void> } {
  const client = new Redis(url, { keyPrefix: 'oidc:' });

  class RedisAdapter implements Adapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }

    key(id: string): string {
      return `${this.name}:${id}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      const multi = client.multi();
      if (CONSUMABLE.has(this.name)) multi.hset(key, { payload: JSON.stringify(payload) });
      else multi.set(key, JSON.stringify(payload));
      if (expiresIn) multi.expire(key, expiresIn);

      if (GRANTABLE.has(this.name) && payload.grantId) {
        const list = grantKey(payload.grantId);
        multi.rpush(list, key);
        // The list lives as long as its longest-lived member.
        const ttl = await client.ttl(list);
        if (expiresIn && expiresIn > ttl) multi.expire(list, expiresIn);
      }
      if (payload.userCode) {
        multi.set(userCodeKey(payload.userCode), id);
        if (expiresIn) multi.expire(userCodeKey(payload.userCode), expiresIn);
      }
      if (payload.uid) {
        multi.set(uidKey(payload.uid), id);
        if (expiresIn) multi.expire(uidKey(payload.uid), expiresIn);
      }
      await multi.exec();
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (CONSUMABLE.has(this.name)) {
        const hash = await client.hgetall(this.key(id));
        if (!hash['payload']) return undefined;
        const payload = JSON.parse(hash['payload']) as AdapterPayload;
        if (hash['consumed']) payload.consumed = Number(hash['consumed']);
        return payload;
      }
      const data = await client.get(this.key(id));
      return data ? (JSON.parse(data) as AdapterPayload) : undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const id = await client.get(uidKey(uid));
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const id = await client.get(userCodeKey(userCode));
      return id ? this.find(id) : undefined;
    }

    async consume(id: string): Promise<void> {
      await client.hset(this.key(id), 'consumed', String(Math.floor(Date.now() / 1000)));
    }

    async destroy(id: string): Promise<void> {
      await client.del(this.key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const list = grantKey(grantId);
      // Members are unprefixed key names (list values); DEL applies the prefix again.
      const members = await client.lrange(list, 0, -1);
      const multi = client.multi();
      for (const member of members) multi.del(member);
      multi.del(list);
      await multi.exec();
    }
  }

  const adapters = new Map<string, Adapter>();
  return {
    factory: (name: string) => {
      let adapter = adapters.get(name);
      if (!adapter) {
        adapter = new RedisAdapter(name);
        adapters.set(name, adapter);
      }
      return adapter;
    },
    close: async () => {
      await client.quit();
    },
  };
}
