/**
 * Versioned record envelopes. Every record Sallyport writes carries a schema version so
 * a later release can read (and migrate) what an earlier one wrote.
 */
export const RECORD_VERSION = 1;

export interface Envelope<T> {
  v: number;
  d: T;
}

export function encodeRecord<T>(data: T): string {
  return JSON.stringify({ v: RECORD_VERSION, d: data } satisfies Envelope<T>);
}

export function decodeRecord<T>(raw: string | null): T | undefined {
  if (raw === null) return undefined;
  const parsed = JSON.parse(raw) as Envelope<T>;
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.v !== 'number') {
    throw new Error('stored record has no version envelope');
  }
  if (parsed.v > RECORD_VERSION) {
    throw new Error(`stored record version ${parsed.v} is newer than this release understands (${RECORD_VERSION})`);
  }
  return parsed.d;
}
