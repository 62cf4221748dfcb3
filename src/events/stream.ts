// Reading the outbox after commit. Event ids are assigned in insertion order, not commit order,
// so readers move by transaction id instead: every event of a transaction whose id is below the
// snapshot's xmin is committed (or rolled back and gone), and no such transaction can add more.
// A reader's cursor is an xmin; each read takes the window [cursor, current xmin).
import type pg from 'pg';
import type { Store, Sql } from '../store/db.js';
import { CHANNEL, type Event } from './outbox.js';

export interface EventFilter {
  /** Type prefixes, e.g. ['noderole.', 'node.created']. */
  types?: string[];
  object_kind?: string;
  object_id?: number;
  deployment_id?: number;
  node_id?: number;
}

export function matches(f: EventFilter, e: Event): boolean {
  if (f.types?.length && !f.types.some((t) => e.type === t || (t.endsWith('.') && e.type.startsWith(t)) || e.type.startsWith(`${t}.`))) return false;
  if (f.object_kind && e.object_kind !== f.object_kind) return false;
  if (f.object_id !== undefined && e.object_id !== f.object_id) return false;
  if (f.deployment_id !== undefined && e.deployment_id !== f.deployment_id) return false;
  if (f.node_id !== undefined && e.node_id !== f.node_id) return false;
  return true;
}

export async function currentXmin(sql: Sql): Promise<string> {
  return (await sql.query(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`)).rows[0].x;
}

/** Events of transactions in [from, to), in a stable order; `to` is the current xmin. */
export async function readWindow(sql: Sql, from: string): Promise<{ events: Event[]; to: string }> {
  const to = await currentXmin(sql);
  const r = await sql.query(
    `SELECT id, type, object_kind, object_id, deployment_id, node_id, payload, at FROM events
      WHERE txid >= $1::xid8 AND txid < $2::xid8 ORDER BY txid, id`, [from, to]);
  return { events: r.rows as Event[], to };
}

type Subscriber = { filter: EventFilter; fn: (e: Event) => void };

/** Per-replica fan-out of committed events to in-process subscribers (SSE clients, waiters). */
export class EventStream {
  private cursor = '0';
  private listener?: pg.PoolClient;
  private subs = new Set<Subscriber>();
  private reading = false;
  private again = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly store: Store, private readonly log: (m: string) => void = () => {}) {}

  async start(): Promise<void> {
    this.cursor = await currentXmin(this.store);
    await this.listen();
    // A window can be held back by an unrelated open transaction: look again shortly.
    this.timer = setInterval(() => this.poll(), 1000);
  }

  /** LISTEN on a dedicated connection; reconnect if it drops (the 1 s poll covers the gap). */
  private async listen(): Promise<void> {
    const client = await this.store.pool.connect();
    client.on('notification', () => this.poll());
    client.on('error', (e) => {
      if (this.stopped || this.listener !== client) return;
      this.log(`event listener lost: ${e.message}; reconnecting`);
      this.listener = undefined;
      client.release(e);
      const retry = () => { if (!this.stopped) this.listen().catch(() => setTimeout(retry, 1000)); };
      setTimeout(retry, 500);
    });
    await client.query(`LISTEN ${CHANNEL}`);
    this.listener = client;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const l = this.listener;
    this.listener = undefined;
    if (l) {
      await l.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
      l.release();
    }
    this.subs.clear();
  }

  subscribe(filter: EventFilter, fn: (e: Event) => void): () => void {
    const s = { filter, fn };
    this.subs.add(s);
    return () => this.subs.delete(s);
  }

  poll(): void {
    if (this.stopped) return;
    if (this.reading) { this.again = true; return; }
    this.reading = true;
    void (async () => {
      try {
        do {
          this.again = false;
          const { events, to } = await readWindow(this.store, this.cursor);
          this.cursor = to;
          for (const e of events) for (const s of this.subs) if (matches(s.filter, e)) s.fn(e);
          // Events newer than the window exist: their transactions are still open somewhere.
          if (events.length === 0 && !this.again) {
            const pending = await this.store.query(`SELECT 1 FROM events WHERE txid >= $1::xid8 LIMIT 1`, [this.cursor]);
            if (pending.rowCount) setTimeout(() => this.poll(), 20);
          }
        } while (this.again && !this.stopped);
      } catch (err) {
        this.log(`event stream: ${(err as Error).message}`);
      } finally {
        this.reading = false;
      }
    })();
  }
}

/**
 * A durable, leader-only consumer (role hooks, webhooks): reads from a cursor stored in the
 * database and advances it after `handle` succeeds — at-least-once delivery across restarts.
 */
export async function consume(store: Store, name: string, handle: (events: Event[]) => Promise<void>): Promise<number> {
  const row = await store.query(`SELECT txid::text AS x FROM event_cursors WHERE name = $1`, [name]);
  let from: string;
  if (row.rowCount === 0) {
    from = await currentXmin(store);
    await store.query(`INSERT INTO event_cursors (name, txid) VALUES ($1, $2::xid8) ON CONFLICT DO NOTHING`, [name, from]);
    return 0;
  }
  from = row.rows[0].x;
  const { events, to } = await readWindow(store, from);
  if (events.length) await handle(events);
  if (to !== from) await store.query(`UPDATE event_cursors SET txid = $2::xid8 WHERE name = $1`, [name, to]);
  return events.length;
}
