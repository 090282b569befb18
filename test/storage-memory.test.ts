import { createMemoryStore } from '../src/storage/memory/memory-store.ts';
import { describeKeyValueConformance } from './conformance/key-value.conformance.ts';

describeKeyValueConformance('memory', async () => {
  // A fake clock, so expiry is tested by moving time instead of waiting for it.
  let now = Date.parse('2030-01-01T00:00:00Z');
  const store = createMemoryStore({ now: () => now });
  return { store, prefix: 'conformance:', advance: (seconds) => void (now += seconds * 1000) };
});
