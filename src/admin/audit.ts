/**
 * Audit events: every admin change and every sign-in, sign-out and failed sign-in, kept
 * in the store (a capped list, newest first) and queryable at /admin/v1/events. Events
 * hold who, what, when, client, IP and outcome — never secrets, passwords or tokens
 * (`details` is built by the callers from non-secret fields only, and scrubbed here).
 */
import { randomUUID } from 'node:crypto';
import type { KeyValueStore } from '../storage/contract.ts';
import type { Keys } from '../storage/keys.ts';

export interface AuditEvent {
  id: string;
  /** ISO time. */
  at: string;
  /** e.g. `client.created`, `user.updated`, `signin.succeeded`, `signin.failed`, `signout`. */
  type: string;
  outcome: 'success' | 'failure';
  /** Who acted: a client id, an account id, or `system`. */
  actor?: { clientId?: string | undefined; accountId?: string | undefined } | undefined;
  /** What was acted on. */
  target?: { kind: string; id: string } | undefined;
  clientId?: string | undefined;
  ip?: string | undefined;
  details?: Record<string, string | number | boolean | string[]> | undefined;
}

export interface AuditQuery {
  type?: string | undefined;
  outcome?: 'success' | 'failure' | undefined;
  actor?: string | undefined;
  target?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit: number;
  /** Event id to continue after (pagination, newest first). */
  after?: string | undefined;
}

/** Keys that never go into an event, whatever a caller passes. */
const SECRET_KEYS = /secret|password|token|assertion|hash|code_verifier|authorization/i;

export interface AuditLog {
  record(event: Omit<AuditEvent, 'id' | 'at'>): Promise<void>;
  query(q: AuditQuery): Promise<{ events: AuditEvent[]; next?: string | undefined }>;
}

export function createAuditLog(deps: {
  store: KeyValueStore;
  keys: Keys;
  maxEvents?: number;
  retentionSeconds?: number;
  onError?: (err: unknown) => void;
  /** Sees every event as it is recorded (metrics). */
  observe?: (event: Omit<AuditEvent, 'id' | 'at'>) => void;
}): AuditLog {
  const maxEvents = deps.maxEvents ?? 50_000;
  const ttl = deps.retentionSeconds ?? 90 * 86400;
  return {
    async record(event) {
      deps.observe?.(event);
      const details = event.details
        ? Object.fromEntries(Object.entries(event.details).filter(([k]) => !SECRET_KEYS.test(k)))
        : undefined;
      const full: AuditEvent = { id: randomUUID(), at: new Date().toISOString(), ...event, ...(details ? { details } : {}) };
      try {
        await deps.store.lPushCapped(deps.keys.auditEvents(), JSON.stringify(full), { maxLength: maxEvents, ttl });
      } catch (err) {
        // An audit write failure must not turn a completed sign-in or change into an
        // error for the person; it is logged loudly instead.
        deps.onError?.(err);
      }
    },
    async query(q) {
      const out: AuditEvent[] = [];
      let skipping = q.after !== undefined;
      const batch = 500;
      for (let start = 0; start < maxEvents && out.length <= q.limit; start += batch) {
        const items = await deps.store.lRange(deps.keys.auditEvents(), start, start + batch - 1);
        if (items.length === 0) break;
        for (const raw of items) {
          const e = JSON.parse(raw) as AuditEvent;
          if (skipping) {
            if (e.id === q.after) skipping = false;
            continue;
          }
          if (q.type && e.type !== q.type && !e.type.startsWith(`${q.type}.`)) continue;
          if (q.outcome && e.outcome !== q.outcome) continue;
          if (q.actor && e.actor?.clientId !== q.actor && e.actor?.accountId !== q.actor) continue;
          if (q.target && e.target?.id !== q.target) continue;
          if (q.since && e.at < q.since) continue;
          if (q.until && e.at > q.until) continue;
          out.push(e);
          if (out.length > q.limit) break;
        }
        if (items.length < batch) break;
      }
      const events = out.slice(0, q.limit);
      return { events, next: out.length > q.limit ? events.at(-1)?.id : undefined };
    },
  };
}
