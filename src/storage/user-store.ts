/**
 * User records: local accounts (and, later, accounts provisioned from upstream IdPs).
 *
 * Uniqueness of usernames is an index key claimed with SET NX right after the record is
 * written. An index entry whose record is gone (a delete interrupted half-way) is
 * detected and taken over by the next claim, so nothing half-written can block a
 * username.
 */
import { randomUUID } from 'node:crypto';
import { conflict, notFound, preconditionFailed } from '../errors.ts';
import type { KeyValueStore } from './contract.ts';
import type { Keys } from './keys.ts';
import { decodeRecord, encodeRecord } from './records.ts';

export interface User {
  id: string;
  username: string;
  email?: string;
  emailVerified: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  groups: string[];
  passwordHash?: string;
  disabled: boolean;
  /** Upstream identities linked to this account. */
  identities?: Array<{ idp: string; sub: string }>;
  /** Who manages the record: the config file, the admin API, or just-in-time provisioning. */
  source: 'config' | 'admin' | 'federation';
  createdAt: string;
  updatedAt: string;
  /** Increases on every write; the basis of optimistic concurrency (ETag). */
  version: number;
}

export type NewUser = Omit<User, 'id' | 'createdAt' | 'updatedAt' | 'version'> & { id?: string };

export interface UserStore {
  getUser(id: string): Promise<User | undefined>;
  getUserByUsername(username: string): Promise<User | undefined>;
  listUserIdsByEmail(email: string): Promise<string[]>;
  listUserIds(): Promise<string[]>;
  listGroupMemberIds(group: string): Promise<string[]>;
  createUser(user: NewUser): Promise<User>;
  /** Apply `change` to the current record; fails with 412 when `expectedVersion` is stale. */
  updateUser(id: string, change: (current: User) => Partial<NewUser>, expectedVersion?: number): Promise<User>;
  /** Delete; with `expectedVersion`, only that version (412 otherwise). */
  deleteUser(id: string, expectedVersion?: number): Promise<void>;
}

export function createUserStore(store: KeyValueStore, keys: Keys): UserStore {
  async function read(id: string): Promise<{ raw: string; user: User } | undefined> {
    const raw = await store.get(keys.user(id));
    const user = decodeRecord<User>(raw);
    return raw && user ? { raw, user } : undefined;
  }

  /** Claim `username` for `id`; takes over an index entry whose record is gone. */
  async function claimUsername(username: string, id: string): Promise<void> {
    const indexKey = keys.userByName(username);
    if (await store.set(indexKey, id, { ifAbsent: true })) return;
    const holder = await store.get(indexKey);
    if (holder === id) return;
    if (holder !== null && (await store.get(keys.user(holder))) !== null) {
      throw conflict(`username "${username}" is taken`, 'username');
    }
    if (!(await store.setIfEquals(indexKey, holder, id))) throw conflict(`username "${username}" is taken`, 'username');
  }

  return {
    async getUser(id) {
      return (await read(id))?.user;
    },

    async getUserByUsername(username) {
      const id = await store.get(keys.userByName(username));
      if (!id) return undefined;
      const user = (await read(id))?.user;
      return user && user.username.toLowerCase() === username.toLowerCase() ? user : undefined;
    },

    listUserIdsByEmail: (email) => store.sMembers(keys.usersByEmail(email)),
    listUserIds: () => store.sMembers(keys.userIndex()),
    listGroupMemberIds: (group) => store.sMembers(keys.groupMembers(group)),

    async createUser(input) {
      const now = new Date().toISOString();
      const user: User = { ...input, id: input.id ?? randomUUID(), createdAt: now, updatedAt: now, version: 1 };
      // The record is written first under its fresh id, then the username is claimed.
      // So an index entry always points at a record that existed: a dangling one can
      // only be left by a delete, and may be taken over; a create in flight cannot be.
      if (!(await store.set(keys.user(user.id), encodeRecord(user), { ifAbsent: true }))) {
        throw conflict(`user id "${user.id}" exists`, 'id');
      }
      try {
        await claimUsername(user.username, user.id);
        if (user.email) await store.sAdd(keys.usersByEmail(user.email), user.id);
        for (const group of user.groups) await store.sAdd(keys.groupMembers(group), user.id);
        await store.sAdd(keys.userIndex(), user.id);
      } catch (err) {
        // Roll back so a failed create leaves nothing behind.
        await store.delIfEquals(keys.userByName(user.username), user.id);
        if (user.email) await store.sRem(keys.usersByEmail(user.email), user.id);
        for (const group of user.groups) await store.sRem(keys.groupMembers(group), user.id);
        await store.del(keys.user(user.id));
        throw err;
      }
      return user;
    },

    async updateUser(id, change, expectedVersion) {
      const current = await read(id);
      if (!current) throw notFound('user');
      if (expectedVersion !== undefined && current.user.version !== expectedVersion) throw preconditionFailed();
      const next: User = {
        ...current.user,
        ...change(current.user),
        id,
        createdAt: current.user.createdAt,
        updatedAt: new Date().toISOString(),
        version: current.user.version + 1,
      };
      const renamed = next.username.toLowerCase() !== current.user.username.toLowerCase();
      if (renamed) await claimUsername(next.username, id);
      if (next.email && next.email.toLowerCase() !== current.user.email?.toLowerCase()) {
        await store.sAdd(keys.usersByEmail(next.email), id);
      }
      const addedGroups = next.groups.filter((g) => !current.user.groups.includes(g));
      const removedGroups = current.user.groups.filter((g) => !next.groups.includes(g));
      for (const group of addedGroups) await store.sAdd(keys.groupMembers(group), id);
      if (!(await store.setIfEquals(keys.user(id), current.raw, encodeRecord(next)))) {
        // Lost the race: take back the index entries this attempt added.
        if (renamed) await store.delIfEquals(keys.userByName(next.username), id);
        for (const group of addedGroups) await store.sRem(keys.groupMembers(group), id);
        throw preconditionFailed();
      }
      // Old index entries go only after the record no longer refers to them.
      if (renamed) await store.delIfEquals(keys.userByName(current.user.username), id);
      if (current.user.email && current.user.email.toLowerCase() !== next.email?.toLowerCase()) {
        await store.sRem(keys.usersByEmail(current.user.email), id);
      }
      for (const group of removedGroups) await store.sRem(keys.groupMembers(group), id);
      return next;
    },

    async deleteUser(id, expectedVersion) {
      const current = await read(id);
      if (!current) throw notFound('user');
      if (expectedVersion !== undefined && current.user.version !== expectedVersion) throw preconditionFailed();
      if (!(await store.delIfEquals(keys.user(id), current.raw))) throw preconditionFailed();
      await store.delIfEquals(keys.userByName(current.user.username), id);
      if (current.user.email) await store.sRem(keys.usersByEmail(current.user.email), id);
      for (const group of current.user.groups) await store.sRem(keys.groupMembers(group), id);
      await store.sRem(keys.userIndex(), id);
    },
  };
}
