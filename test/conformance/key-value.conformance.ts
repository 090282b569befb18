/**
 * The definition of KeyValueStore semantics (src/storage/contract.ts): every backend runs
 * this suite unchanged, from a ~10-line test file that makes a fresh store.
 *
 * Time: when the subject offers `advance` (an injectable clock), expiry is tested by
 * moving it, and clock-only tests (TTL rounding, windows sliding) run; otherwise one
 * test waits ~1.2 s of real time and the clock-only tests are skipped.
 *
 * Isolation: every key starts with the subject's prefix (enforced: the suite talks to the
 * store through a wrapper that rejects other keys), and every key a test touched is
 * deleted afterwards, so the suite can run against a Redis that holds other data.
 */
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import {
  StoreUnavailableError,
  WrongTypeError,
  type KeyValueStore,
} from '../../src/storage/contract.ts';

export interface ConformanceSubject {
  store: KeyValueStore;
  /** Every key the suite uses starts with this. */
  prefix: string;
  /** Move the store's clock forward (memory store); absent for real-time backends. */
  advance?: (seconds: number) => void;
}

type KeyType = 'string' | 'hash' | 'set';

/** Operations that must reject with WrongTypeError on a key of each type. */
const WRONG_TYPE_OPERATIONS: Record<string, { appliesTo: KeyType; run: (s: KeyValueStore, k: string) => Promise<unknown> }> = {
  get: { appliesTo: 'string', run: (s, k) => s.get(k) },
  getDel: { appliesTo: 'string', run: (s, k) => s.getDel(k) },
  'setIfEquals(expected value)': { appliesTo: 'string', run: (s, k) => s.setIfEquals(k, 'x', 'y', { ttl: 60 }) },
  'setIfEquals(expected absent)': { appliesTo: 'string', run: (s, k) => s.setIfEquals(k, null, 'y', { ttl: 60 }) },
  delIfEquals: { appliesTo: 'string', run: (s, k) => s.delIfEquals(k, 'x') },
  incr: { appliesTo: 'string', run: (s, k) => s.incr(k, 60) },
  hGetAll: { appliesTo: 'hash', run: (s, k) => s.hGetAll(k) },
  hSetIfAbsent: { appliesTo: 'hash', run: (s, k) => s.hSetIfAbsent(k, 'new-field', 'v') },
  sAdd: { appliesTo: 'set', run: (s, k) => s.sAdd(k, 'new-member', { ttl: 60 }) },
  'sAdd(no ttl)': { appliesTo: 'set', run: (s, k) => s.sAdd(k, 'new-member') },
  sRem: { appliesTo: 'set', run: (s, k) => s.sRem(k, 'member') },
  sMembers: { appliesTo: 'set', run: (s, k) => s.sMembers(k) },
  lPushCapped: { appliesTo: 'string', run: (s, k) => s.lPushCapped(k, 'v', { maxLength: 10 }) },
  lRange: { appliesTo: 'string', run: (s, k) => s.lRange(k, 0, -1) },
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function describeKeyValueConformance(name: string, makeStore: () => Promise<ConformanceSubject>): void {
  describe(`KeyValueStore conformance: ${name}`, () => {
    let subject: ConformanceSubject;
    let store: KeyValueStore;
    let touched: Set<string>;

    /** A key under the subject's prefix. */
    const key = (label: string): string => `${subject.prefix}${label}`;

    /** Let `seconds` pass: on the injectable clock when there is one, else for real. */
    const elapse = async (seconds: number): Promise<void> => {
      if (subject.advance) subject.advance(seconds);
      else await sleep(seconds * 1000);
    };

    /** Skip a test that needs to control time precisely. */
    const needsClock = (ctx: TestContext): void => {
      if (!subject.advance) ctx.skip('needs an injectable clock');
    };

    /** Write a key of the given type, with a ttl. */
    const writeTyped = async (type: KeyType, k: string): Promise<void> => {
      if (type === 'string') await store.set(k, 'value', { ttl: 600 });
      else if (type === 'hash') await store.hReplace(k, { field: 'value' }, { ttl: 600 });
      else await store.sAdd(k, 'member', { ttl: 600 });
    };

    /** Read a key of the given type back (to prove a failed operation left it intact). */
    const readTyped = async (type: KeyType, k: string): Promise<unknown> => {
      if (type === 'string') return await store.get(k);
      if (type === 'hash') return await store.hGetAll(k);
      return await store.sMembers(k);
    };

    const expectTtlWithin = async (k: string, max: number): Promise<void> => {
      const ttl = await store.ttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(max);
      // Right after a write the remaining time is within a second of what was asked.
      expect(ttl).toBeGreaterThanOrEqual(max - 1);
    };

    beforeEach(async () => {
      subject = await makeStore();
      touched = new Set();
      store = recordingKeys(subject.store, subject.prefix, touched);
    });

    afterEach(async () => {
      // Leave nothing behind on a shared Redis (keys written without a TTL would stay forever).
      try {
        for (const k of touched) await subject.store.del(k);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error; // the test closed the store
      }
      await subject.store.close();
    });

    describe('lifecycle', () => {
      it('reports its kind and answers ping', async () => {
        expect(['memory', 'redis']).toContain(store.kind);
        await expect(store.ping()).resolves.toBeUndefined();
      });

      it('rejects every operation with StoreUnavailableError after close(), and close() is idempotent', async () => {
        await subject.store.close();
        await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.get(key('closed'))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.set(key('closed'), 'v', { ttl: 60 })).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.sMembers(key('closed'))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(subject.store.close()).resolves.toBeUndefined();
      });
    });

    describe('strings: get / set', () => {
      it('get returns null for an absent key', async () => {
        expect(await store.get(key('absent'))).toBeNull();
      });

      it('round-trips values exactly (empty, unicode, control characters, large)', async () => {
        const values = ['', 'plain', 'ünïcødé 🔑 中文', 'line\r\nbreak\ttab\u0000nul', '{"json":[1,2,3]}', 'x'.repeat(200_000)];
        for (const [i, value] of values.entries()) {
          expect(await store.set(key(`value:${i}`), value, { ttl: 60 })).toBe(true);
          expect(await store.get(key(`value:${i}`))).toBe(value);
        }
      });

      it('set without ttl never expires; set with ttl reports it', async () => {
        await store.set(key('persistent'), 'v');
        expect(await store.ttl(key('persistent'))).toBe(-1);
        await store.set(key('expiring'), 'v', { ttl: 100 });
        await expectTtlWithin(key('expiring'), 100);
      });

      it('overwriting returns true and replaces the value and the previous TTL', async () => {
        const k = key('overwrite');
        expect(await store.set(k, 'one', { ttl: 100 })).toBe(true);
        expect(await store.set(k, 'two')).toBe(true);
        expect(await store.get(k)).toBe('two');
        expect(await store.ttl(k)).toBe(-1);
        await store.set(k, 'three', { ttl: 1000 });
        await expectTtlWithin(k, 1000);
        await store.set(k, 'four', { ttl: 10 });
        await expectTtlWithin(k, 10);
        expect(await store.get(k)).toBe('four');
      });

      it('ifAbsent writes (with its ttl) only when the key does not exist', async () => {
        const k = key('nx');
        expect(await store.set(k, 'first', { ifAbsent: true, ttl: 100 })).toBe(true);
        await expectTtlWithin(k, 100);
        expect(await store.set(k, 'second', { ifAbsent: true, ttl: 1000 })).toBe(false);
        expect(await store.set(k, 'third', { ifAbsent: true })).toBe(false);
        expect(await store.get(k)).toBe('first');
        await expectTtlWithin(k, 100);
      });

      it('ifAbsent: exactly one of 20 concurrent writers wins', async () => {
        const k = key('nx-race');
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.set(k, `writer-${i}`, { ifAbsent: true, ttl: 60 })),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.get(k)).toBe(`writer-${results.indexOf(true)}`);
      });

      it('ifAbsent sees keys of any type; a plain set replaces a key of any type', async () => {
        const hash = key('nx-hash');
        await store.hReplace(hash, { f: 'v' }, { ttl: 60 });
        expect(await store.set(hash, 'string', { ifAbsent: true, ttl: 60 })).toBe(false);
        expect(await store.hGetAll(hash)).toEqual({ f: 'v' });

        const set = key('replace-set');
        await store.sAdd(set, 'm', { ttl: 100 });
        expect(await store.set(set, 'string')).toBe(true);
        expect(await store.get(set)).toBe('string');
        expect(await store.ttl(set)).toBe(-1);
      });
    });

    describe('strings: getDel', () => {
      it('returns the value and deletes the key; absent keys give null', async () => {
        const k = key('getdel');
        expect(await store.getDel(k)).toBeNull();
        await store.set(k, 'once', { ttl: 60 });
        expect(await store.getDel(k)).toBe('once');
        expect(await store.getDel(k)).toBeNull();
        expect(await store.get(k)).toBeNull();
        expect(await store.ttl(k)).toBe(-2);
      });

      it('hands the value to exactly one of 20 concurrent takers', async () => {
        const k = key('getdel-race');
        await store.set(k, 'single-use', { ttl: 60 });
        const taken = await Promise.all(Array.from({ length: 20 }, () => store.getDel(k)));
        expect(taken.filter((v) => v !== null)).toEqual(['single-use']);
      });
    });

    describe('strings: setIfEquals', () => {
      it('expected null: writes only when the key is absent', async () => {
        const k = key('cas-create');
        expect(await store.setIfEquals(k, null, 'v1', { ttl: 100 })).toBe(true);
        expect(await store.get(k)).toBe('v1');
        await expectTtlWithin(k, 100);
        expect(await store.setIfEquals(k, null, 'v2', { ttl: 100 })).toBe(false);
        expect(await store.get(k)).toBe('v1');
      });

      it('expected value: writes only on an exact match', async () => {
        const k = key('cas');
        await store.set(k, 'v1', { ttl: 100 });
        expect(await store.setIfEquals(k, 'v0', 'v2', { ttl: 100 })).toBe(false);
        expect(await store.setIfEquals(k, 'V1', 'v2', { ttl: 100 })).toBe(false);
        expect(await store.setIfEquals(k, 'v1 ', 'v2', { ttl: 100 })).toBe(false);
        expect(await store.get(k)).toBe('v1');
        expect(await store.setIfEquals(k, 'v1', 'v2', { ttl: 100 })).toBe(true);
        expect(await store.get(k)).toBe('v2');
        expect(await store.setIfEquals(k, '', 'v3')).toBe(false);
      });

      it('an expected value on an absent key does not write or create it', async () => {
        const k = key('cas-absent');
        expect(await store.setIfEquals(k, 'anything', 'v', { ttl: 60 })).toBe(false);
        expect(await store.ttl(k)).toBe(-2);
      });

      it('a successful write replaces the TTL like set (no ttl = persistent)', async () => {
        const k = key('cas-ttl');
        await store.set(k, 'v1', { ttl: 100 });
        expect(await store.setIfEquals(k, 'v1', 'v2', { ttl: 1000 })).toBe(true);
        await expectTtlWithin(k, 1000);
        expect(await store.setIfEquals(k, 'v2', 'v3')).toBe(true);
        expect(await store.ttl(k)).toBe(-1);
      });

      it('exactly one of 20 concurrent compare-and-sets from the same version wins', async () => {
        const k = key('cas-race');
        await store.set(k, 'version-0', { ttl: 60 });
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.setIfEquals(k, 'version-0', `version-1-by-${i}`, { ttl: 60 })),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.get(k)).toBe(`version-1-by-${results.indexOf(true)}`);
      });

      it('exactly one of 20 concurrent creators (expected null) wins', async () => {
        const k = key('cas-create-race');
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.setIfEquals(k, null, `creator-${i}`, { ttl: 60 })),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.get(k)).toBe(`creator-${results.indexOf(true)}`);
      });
    });

    describe('strings: delIfEquals', () => {
      it('deletes only on an exact match', async () => {
        const k = key('cad');
        expect(await store.delIfEquals(k, 'v')).toBe(false);
        await store.set(k, 'v', { ttl: 60 });
        expect(await store.delIfEquals(k, 'other')).toBe(false);
        expect(await store.get(k)).toBe('v');
        expect(await store.delIfEquals(k, 'v')).toBe(true);
        expect(await store.ttl(k)).toBe(-2);
        expect(await store.delIfEquals(k, 'v')).toBe(false);
      });

      it('exactly one of 20 concurrent deleters succeeds', async () => {
        const k = key('cad-race');
        await store.set(k, 'lock-owner', { ttl: 60 });
        const results = await Promise.all(Array.from({ length: 20 }, () => store.delIfEquals(k, 'lock-owner')));
        expect(results.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('strings: incr', () => {
      it('creates the counter at 1 with the ttl, then counts up keeping the original expiry', async () => {
        const k = key('counter');
        expect(await store.incr(k, 100)).toBe(1);
        await expectTtlWithin(k, 100);
        expect(await store.incr(k, 1000)).toBe(2);
        expect(await store.incr(k, 5000)).toBe(3);
        await expectTtlWithin(k, 100);
        expect(await store.get(k)).toBe('3');
      });

      it('20 concurrent increments yield 1..20 exactly once each', async () => {
        const k = key('counter-race');
        const values = await Promise.all(Array.from({ length: 20 }, () => store.incr(k, 60)));
        expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        await expectTtlWithin(k, 60);
      });

      it('increments an existing integer string without giving it a ttl', async () => {
        const k = key('counter-existing');
        await store.set(k, '41');
        expect(await store.incr(k, 60)).toBe(42);
        expect(await store.ttl(k)).toBe(-1);
        await store.set(k, '-5', { ttl: 100 });
        expect(await store.incr(k, 1000)).toBe(-4);
        await expectTtlWithin(k, 100);
        await store.set(k, '0', { ttl: 100 });
        expect(await store.incr(k, 1000)).toBe(1);
        await expectTtlWithin(k, 100);
      });

      it('rejects with RangeError on a value that is not a canonical 64-bit integer, leaving it unchanged', async () => {
        const k = key('counter-bad');
        for (const value of ['abc', '1.5', ' 1', '1 ', '+1', '01', '-0', '', '9223372036854775807']) {
          await store.set(k, value, { ttl: 60 });
          await expect(store.incr(k, 60), `value ${JSON.stringify(value)}`).rejects.toBeInstanceOf(RangeError);
          expect(await store.get(k)).toBe(value);
        }
      });
    });

    describe('any type: del / ttl / expire', () => {
      it('del removes keys of every type; deleting a missing key is fine', async () => {
        for (const type of ['string', 'hash', 'set'] as const) {
          const k = key(`del:${type}`);
          await writeTyped(type, k);
          await store.del(k);
          expect(await store.ttl(k)).toBe(-2);
        }
        await expect(store.del(key('del:missing'))).resolves.toBeUndefined();
      });

      it('ttl is -2 when absent, -1 without expiry, else the remaining seconds', async () => {
        expect(await store.ttl(key('ttl:absent'))).toBe(-2);
        await store.set(key('ttl:string'), 'v');
        await store.hReplace(key('ttl:hash'), { f: 'v' });
        await store.sAdd(key('ttl:set'), 'm');
        for (const type of ['string', 'hash', 'set']) expect(await store.ttl(key(`ttl:${type}`))).toBe(-1);
        await store.set(key('ttl:expiring'), 'v', { ttl: 3600 });
        await expectTtlWithin(key('ttl:expiring'), 3600);
      });

      it('expire returns false for a missing key and does not create it', async () => {
        expect(await store.expire(key('expire:missing'), 60)).toBe(false);
        expect(await store.ttl(key('expire:missing'))).toBe(-2);
      });

      it('expire sets, lengthens and shortens the expiry of existing keys of every type', async () => {
        for (const type of ['string', 'hash', 'set'] as const) {
          const k = key(`expire:${type}`);
          await writeTyped(type, k);
          expect(await store.expire(k, 5000)).toBe(true);
          await expectTtlWithin(k, 5000);
          expect(await store.expire(k, 50)).toBe(true);
          await expectTtlWithin(k, 50);
        }
        await store.set(key('expire:persistent'), 'v');
        expect(await store.expire(key('expire:persistent'), 70)).toBe(true);
        await expectTtlWithin(key('expire:persistent'), 70);
      });
    });

    describe('hashes', () => {
      it('hGetAll returns null for an absent key', async () => {
        expect(await store.hGetAll(key('hash:absent'))).toBeNull();
      });

      it('hReplace stores exactly the given fields (unusual names and values included)', async () => {
        const k = key('hash:fields');
        const fields: Record<string, string> = {
          plain: 'value',
          empty: '',
          '': 'empty field name',
          'ünï 🔑': 'ünïcødé 中文',
          ['__proto__']: 'not a prototype',
          constructor: 'not a function',
          json: '{"a":[1,2]}',
        };
        await store.hReplace(k, fields, { ttl: 60 });
        const read = await store.hGetAll(k);
        expect(read).not.toBeNull();
        expect(Object.entries(read ?? {}).sort()).toEqual(Object.entries(fields).sort());
      });

      it('hReplace replaces the whole hash and its TTL', async () => {
        const k = key('hash:replace');
        await store.hReplace(k, { a: '1', b: '2' }, { ttl: 100 });
        await expectTtlWithin(k, 100);
        await store.hReplace(k, { b: '3', c: '4' }, { ttl: 1000 });
        expect(await store.hGetAll(k)).toEqual({ b: '3', c: '4' });
        await expectTtlWithin(k, 1000);
        await store.hReplace(k, { d: '5' });
        expect(await store.hGetAll(k)).toEqual({ d: '5' });
        expect(await store.ttl(k)).toBe(-1);
        await store.hReplace(k, { e: '6' }, { ttl: 10 });
        await expectTtlWithin(k, 10);
      });

      it('hReplace handles large hashes', async () => {
        const k = key('hash:large');
        const fields = Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`field-${i}`, `value-${i}`]));
        await store.hReplace(k, fields, { ttl: 60 });
        expect(await store.hGetAll(k)).toEqual(fields);
      });

      it('hReplace with no fields leaves no key (there are no empty hashes)', async () => {
        const k = key('hash:empty');
        await store.hReplace(k, { a: '1' }, { ttl: 60 });
        await store.hReplace(k, {}, { ttl: 60 });
        expect(await store.hGetAll(k)).toBeNull();
        expect(await store.ttl(k)).toBe(-2);
      });

      it('hReplace replaces a key of another type', async () => {
        const k = key('hash:over-string');
        await store.set(k, 'string', { ttl: 100 });
        await store.hReplace(k, { f: 'v' }, { ttl: 60 });
        expect(await store.hGetAll(k)).toEqual({ f: 'v' });
        await expectTtlWithin(k, 60);
      });

      it("hSetIfAbsent: 'missing' for an absent hash, and it does not create the key", async () => {
        const k = key('hash:missing');
        expect(await store.hSetIfAbsent(k, 'f', 'v')).toBe('missing');
        expect(await store.ttl(k)).toBe(-2);
        expect(await store.hGetAll(k)).toBeNull();
      });

      it("hSetIfAbsent: 'set' adds a new field keeping the TTL; 'exists' leaves the field alone", async () => {
        const k = key('hash:setnx');
        await store.hReplace(k, { a: '1' }, { ttl: 100 });
        expect(await store.hSetIfAbsent(k, 'b', '2')).toBe('set');
        expect(await store.hGetAll(k)).toEqual({ a: '1', b: '2' });
        await expectTtlWithin(k, 100);
        expect(await store.hSetIfAbsent(k, 'a', 'changed')).toBe('exists');
        expect(await store.hSetIfAbsent(k, 'b', 'changed')).toBe('exists');
        expect(await store.hGetAll(k)).toEqual({ a: '1', b: '2' });

        await store.hReplace(key('hash:setnx-persistent'), { a: '1' });
        expect(await store.hSetIfAbsent(key('hash:setnx-persistent'), 'b', '2')).toBe('set');
        expect(await store.ttl(key('hash:setnx-persistent'))).toBe(-1);
      });

      it("hSetIfAbsent: exactly one of 20 concurrent writers of one field gets 'set'", async () => {
        const k = key('hash:setnx-race');
        await store.hReplace(k, { other: 'x' }, { ttl: 60 });
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.hSetIfAbsent(k, 'consumed', `by-${i}`)));
        expect(results.filter((r) => r === 'set')).toHaveLength(1);
        expect(results.filter((r) => r === 'exists')).toHaveLength(19);
        expect((await store.hGetAll(k))?.['consumed']).toBe(`by-${results.indexOf('set')}`);
      });
    });

    describe('sets', () => {
      it('sMembers is empty for an absent key', async () => {
        expect(await store.sMembers(key('set:absent'))).toEqual([]);
      });

      it('sAdd collects distinct members', async () => {
        const k = key('set:members');
        for (const member of ['a', 'b', 'a', '', 'ünï 🔑', 'b']) await store.sAdd(k, member, { ttl: 60 });
        expect((await store.sMembers(k)).sort()).toEqual(['', 'a', 'b', 'ünï 🔑'].sort());
      });

      it('sAdd with ttl gives a new set that ttl', async () => {
        await store.sAdd(key('set:new'), 'm', { ttl: 100 });
        await expectTtlWithin(key('set:new'), 100);
      });

      it('sAdd with ttl extends an expiring set (also when the member is already there)', async () => {
        const k = key('set:extend');
        await store.sAdd(k, 'm', { ttl: 100 });
        await store.sAdd(k, 'm', { ttl: 1000 });
        await expectTtlWithin(k, 1000);
        await store.sAdd(k, 'n', { ttl: 5000 });
        await expectTtlWithin(k, 5000);
      });

      it('sAdd with ttl never shortens an expiry', async () => {
        const k = key('set:no-shorten');
        await store.sAdd(k, 'm', { ttl: 1000 });
        await store.sAdd(k, 'n', { ttl: 10 });
        await store.sAdd(k, 'm', { ttl: 999 });
        await expectTtlWithin(k, 1000);
        expect((await store.sMembers(k)).sort()).toEqual(['m', 'n']);
      });

      it('sAdd with ttl keeps a persistent set persistent', async () => {
        const k = key('set:persistent');
        await store.sAdd(k, 'm');
        await store.sAdd(k, 'n', { ttl: 10 });
        expect(await store.ttl(k)).toBe(-1);
        expect((await store.sMembers(k)).sort()).toEqual(['m', 'n']);
      });

      it('sAdd without ttl makes the set persistent', async () => {
        const k = key('set:make-persistent');
        await store.sAdd(k, 'm', { ttl: 100 });
        await store.sAdd(k, 'n');
        expect(await store.ttl(k)).toBe(-1);
        await store.sAdd(key('set:new-persistent'), 'm');
        expect(await store.ttl(key('set:new-persistent'))).toBe(-1);
      });

      it('sRem removes members and keeps the TTL; emptying the set deletes the key', async () => {
        const k = key('set:rem');
        await store.sAdd(k, 'a', { ttl: 100 });
        await store.sAdd(k, 'b', { ttl: 100 });
        await store.sRem(k, 'a');
        await store.sRem(k, 'not-a-member');
        expect(await store.sMembers(k)).toEqual(['b']);
        await expectTtlWithin(k, 100);
        await store.sRem(k, 'b');
        expect(await store.sMembers(k)).toEqual([]);
        expect(await store.ttl(k)).toBe(-2);
        await expect(store.sRem(key('set:rem-absent'), 'x')).resolves.toBeUndefined();
        expect(await store.ttl(key('set:rem-absent'))).toBe(-2);
      });

      it('20 concurrent sAdds all land', async () => {
        const k = key('set:race');
        await Promise.all(Array.from({ length: 20 }, (_, i) => store.sAdd(k, `m${i}`, { ttl: 60 + i })));
        expect(await store.sMembers(k)).toHaveLength(20);
        await expectTtlWithin(k, 79);
      });
    });

    describe('capped lists', () => {
      it('prepends, keeps only the newest maxLength items, and reads ranges like LRANGE', async () => {
        const k = key('list');
        for (const v of ['a', 'b', 'c', 'd']) await store.lPushCapped(k, v, { maxLength: 3, ttl: 600 });
        expect(await store.lRange(k, 0, -1)).toEqual(['d', 'c', 'b']);
        expect(await store.lRange(k, 0, 0)).toEqual(['d']);
        expect(await store.lRange(k, 1, 10)).toEqual(['c', 'b']);
        expect(await store.lRange(k, -2, -1)).toEqual(['c', 'b']);
        expect(await store.lRange(k, 5, 9)).toEqual([]);
        expect(await store.lRange(key('absent-list'), 0, -1)).toEqual([]);
      });

      it('sets the TTL on every append, or makes the list persistent without one', async () => {
        const k = key('list-ttl');
        await store.lPushCapped(k, 'a', { maxLength: 5, ttl: 100 });
        await expectTtlWithin(k, 100);
        await store.lPushCapped(k, 'b', { maxLength: 5, ttl: 300 });
        await expectTtlWithin(k, 300);
        await store.lPushCapped(k, 'c', { maxLength: 5 });
        expect(await store.ttl(k)).toBe(-1);
      });

      it('rejects an invalid maxLength and writes nothing', async () => {
        const k = key('list-bad');
        await expect(store.lPushCapped(k, 'a', { maxLength: 0 })).rejects.toBeInstanceOf(RangeError);
        expect(await store.ttl(k)).toBe(-2);
      });

      it('rejects list operations on keys of other types', async () => {
        const k = key('list-wrongtype');
        await store.sAdd(k, 'm', { ttl: 60 });
        await expect(store.lPushCapped(k, 'v', { maxLength: 3 })).rejects.toBeInstanceOf(WrongTypeError);
        await expect(store.lRange(k, 0, -1)).rejects.toBeInstanceOf(WrongTypeError);
      });
    });

    describe('wrong type', () => {
      for (const holder of ['string', 'hash', 'set'] as const) {
        for (const [operation, { appliesTo, run }] of Object.entries(WRONG_TYPE_OPERATIONS)) {
          if (appliesTo === holder) continue;
          it(`${operation} on a ${holder} key rejects with WrongTypeError and changes nothing`, async () => {
            const k = key(`wrongtype:${holder}`);
            await writeTyped(holder, k);
            const before = await readTyped(holder, k);
            await expect(run(store, k)).rejects.toBeInstanceOf(WrongTypeError);
            expect(await readTyped(holder, k)).toEqual(before);
            await expectTtlWithin(k, 600);
          });
        }
      }
    });

    describe('ttl validation', () => {
      const invalid = [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31];
      it('rejects a ttl that is not a whole number of seconds in range, writing nothing', async () => {
        const k = key('bad-ttl');
        for (const ttl of invalid) {
          const label = `ttl ${ttl}`;
          await expect(store.set(k, 'v', { ttl }), label).rejects.toBeInstanceOf(RangeError);
          await expect(store.set(k, 'v', { ttl, ifAbsent: true }), label).rejects.toBeInstanceOf(RangeError);
          await expect(store.setIfEquals(k, null, 'v', { ttl }), label).rejects.toBeInstanceOf(RangeError);
          await expect(store.incr(k, ttl), label).rejects.toBeInstanceOf(RangeError);
          await expect(store.hReplace(k, { f: 'v' }, { ttl }), label).rejects.toBeInstanceOf(RangeError);
          await expect(store.sAdd(k, 'm', { ttl }), label).rejects.toBeInstanceOf(RangeError);
          expect(await store.ttl(k), label).toBe(-2);
        }
        await store.set(k, 'v', { ttl: 60 });
        for (const ttl of invalid) await expect(store.expire(k, ttl)).rejects.toBeInstanceOf(RangeError);
        expect(await store.get(k)).toBe('v');
        await expectTtlWithin(k, 60);
      });
    });

    describe('expiry', () => {
      it('every key written with a ttl reports a positive ttl', async () => {
        await store.set(key('pos:set'), 'v', { ttl: 30 });
        await store.set(key('pos:nx'), 'v', { ttl: 30, ifAbsent: true });
        await store.setIfEquals(key('pos:cas'), null, 'v', { ttl: 30 });
        await store.incr(key('pos:incr'), 30);
        await store.hReplace(key('pos:hash'), { f: 'v' }, { ttl: 30 });
        await store.sAdd(key('pos:sadd'), 'm', { ttl: 30 });
        await store.set(key('pos:expire'), 'v');
        await store.expire(key('pos:expire'), 30);
        for (const label of ['set', 'nx', 'cas', 'incr', 'hash', 'sadd', 'expire']) {
          await expectTtlWithin(key(`pos:${label}`), 30);
        }
        // The smallest ttl too: Redis rounds the remaining time, so 1 s reads back as 1.
        await store.set(key('pos:one'), 'v', { ttl: 1 });
        expect(await store.ttl(key('pos:one'))).toBe(1);
      });

      it('keys of every type really expire', async () => {
        await store.set(key('exp:string'), 'v', { ttl: 1 });
        await store.setIfEquals(key('exp:cas'), null, 'v', { ttl: 1 });
        await store.incr(key('exp:counter'), 1);
        await store.hReplace(key('exp:hash'), { f: 'v' }, { ttl: 1 });
        await store.sAdd(key('exp:set'), 'm', { ttl: 1 });
        await store.set(key('exp:expire'), 'v');
        await store.expire(key('exp:expire'), 1);
        await store.set(key('exp:persistent'), 'stays');

        await elapse(1.2);

        expect(await store.get(key('exp:string'))).toBeNull();
        expect(await store.getDel(key('exp:cas'))).toBeNull();
        expect(await store.hGetAll(key('exp:hash'))).toBeNull();
        expect(await store.sMembers(key('exp:set'))).toEqual([]);
        expect(await store.get(key('exp:expire'))).toBeNull();
        for (const label of ['string', 'cas', 'counter', 'hash', 'set', 'expire']) {
          expect(await store.ttl(key(`exp:${label}`)), label).toBe(-2);
        }
        expect(await store.hSetIfAbsent(key('exp:hash'), 'f', 'v')).toBe('missing');
        expect(await store.expire(key('exp:string'), 60)).toBe(false);
        // An expired key is absent for conditional writes too; a counter restarts its window.
        expect(await store.set(key('exp:string'), 'again', { ifAbsent: true, ttl: 60 })).toBe(true);
        expect(await store.setIfEquals(key('exp:cas'), null, 'again', { ttl: 60 })).toBe(true);
        expect(await store.incr(key('exp:counter'), 60)).toBe(1);
        await expectTtlWithin(key('exp:counter'), 60);
        expect(await store.get(key('exp:persistent'))).toBe('stays');
      });

      it('a key lives until its deadline and is gone just after (clock)', async (ctx) => {
        needsClock(ctx);
        await store.set(key('deadline'), 'v', { ttl: 10 });
        await elapse(9.99);
        expect(await store.get(key('deadline'))).toBe('v');
        await elapse(0.02);
        expect(await store.get(key('deadline'))).toBeNull();
      });

      it('ttl rounds the remaining time to the nearest second, like Redis (clock)', async (ctx) => {
        needsClock(ctx);
        const k = key('rounding');
        await store.set(k, 'v', { ttl: 10 });
        await elapse(2.4); // 7.6 s left
        expect(await store.ttl(k)).toBe(8);
        await elapse(0.2); // 7.4 s left
        expect(await store.ttl(k)).toBe(7);
        await elapse(7.2); // 0.2 s left: still there, reported as 0
        expect(await store.ttl(k)).toBe(0);
        expect(await store.get(k)).toBe('v');
      });

      it('incr is a fixed window: later increments keep the deadline, then a new window starts (clock)', async (ctx) => {
        needsClock(ctx);
        const k = key('window');
        expect(await store.incr(k, 10)).toBe(1);
        await elapse(6);
        expect(await store.incr(k, 10)).toBe(2);
        expect(await store.ttl(k)).toBe(4);
        await elapse(4.5);
        expect(await store.incr(k, 10)).toBe(1);
        expect(await store.ttl(k)).toBe(10);
      });

      it('sAdd extends a partly elapsed expiry to at least the new ttl (clock)', async (ctx) => {
        needsClock(ctx);
        const k = key('index');
        await store.sAdd(k, 'a', { ttl: 10 });
        await elapse(8); // 2 s left
        await store.sAdd(k, 'b', { ttl: 5 });
        expect(await store.ttl(k)).toBe(5);
        await store.sAdd(k, 'c', { ttl: 3 });
        expect(await store.ttl(k)).toBe(5);
        await elapse(4.5);
        expect((await store.sMembers(k)).sort()).toEqual(['a', 'b', 'c']);
        await elapse(1);
        expect(await store.sMembers(k)).toEqual([]);
      });

      it('expire moves the deadline of a key (clock)', async (ctx) => {
        needsClock(ctx);
        const k = key('moved');
        await store.set(k, 'v', { ttl: 2 });
        await elapse(1);
        await store.expire(k, 10);
        await elapse(5);
        expect(await store.get(k)).toBe('v');
        await store.expire(k, 1);
        await elapse(1.5);
        expect(await store.get(k)).toBeNull();
      });
    });
  });
}

/**
 * Wrap a store so every key passes through here: keys outside `prefix` are a bug in the
 * suite (it could clobber unrelated data on a shared Redis), and every key is recorded
 * for clean-up.
 */
function recordingKeys(store: KeyValueStore, prefix: string, touched: Set<string>): KeyValueStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'ping' || property === 'close') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (key: unknown, ...rest: unknown[]) => {
        if (typeof key !== 'string' || !key.startsWith(prefix)) {
          throw new Error(`conformance suite bug: key ${JSON.stringify(key)} does not start with ${JSON.stringify(prefix)}`);
        }
        touched.add(key);
        return method.apply(target, [key, ...rest]);
      };
    },
  });
}
