/**
 * Group records: name, description and the admin roles a group grants. Membership is
 * kept on the user records (and indexed per group by the user store).
 */
import { conflict, notFound, preconditionFailed } from '../errors.ts';
import type { KeyValueStore } from './contract.ts';
import type { Keys } from './keys.ts';
import { decodeRecord, encodeRecord } from './records.ts';

export interface Group {
  name: string;
  description?: string | undefined;
  roles: string[];
  source: 'config' | 'admin';
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface GroupStore {
  getGroup(name: string): Promise<Group | undefined>;
  listGroupNames(): Promise<string[]>;
  createGroup(group: Pick<Group, 'name' | 'description' | 'roles' | 'source'>): Promise<Group>;
  updateGroup(name: string, change: Partial<Pick<Group, 'description' | 'roles' | 'source'>>, expectedVersion?: number): Promise<Group>;
  deleteGroup(name: string, expectedVersion?: number): Promise<void>;
}

export function createGroupStore(store: KeyValueStore, keys: Keys): GroupStore {
  async function read(name: string) {
    const raw = await store.get(keys.group(name));
    const group = decodeRecord<Group>(raw);
    return raw && group ? { raw, group } : undefined;
  }
  return {
    getGroup: async (name) => (await read(name))?.group,
    listGroupNames: () => store.sMembers(keys.groupIndex()),
    async createGroup(input) {
      const now = new Date().toISOString();
      const group: Group = { ...input, createdAt: now, updatedAt: now, version: 1 };
      // The index entry first: a listed name whose record is missing reads as absent.
      await store.sAdd(keys.groupIndex(), group.name);
      if (!(await store.set(keys.group(group.name), encodeRecord(group), { ifAbsent: true }))) {
        throw conflict(`group "${group.name}" exists`, 'name');
      }
      return group;
    },
    async updateGroup(name, change, expectedVersion) {
      const current = await read(name);
      if (!current) throw notFound('group');
      if (expectedVersion !== undefined && current.group.version !== expectedVersion) throw preconditionFailed();
      const next: Group = { ...current.group, ...change, name, updatedAt: new Date().toISOString(), version: current.group.version + 1 };
      if (!(await store.setIfEquals(keys.group(name), current.raw, encodeRecord(next)))) throw preconditionFailed();
      return next;
    },
    async deleteGroup(name, expectedVersion) {
      const current = await read(name);
      if (!current) throw notFound('group');
      if (expectedVersion !== undefined && current.group.version !== expectedVersion) throw preconditionFailed();
      if (!(await store.delIfEquals(keys.group(name), current.raw))) throw preconditionFailed();
      await store.sRem(keys.groupIndex(), name);
    },
  };
}
