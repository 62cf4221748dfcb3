// The outbox (DESIGN.md §2 rule 10): events are rows written in the same transaction as the
// change they describe, and announced with NOTIFY, which PostgreSQL delivers only on commit.
// Nothing is published from inside a transaction; readers pick the rows up after it commits.
import { NOTIFY_CHANNEL, notifyOnCommit, type Tx } from '../store/db.js';

export const CHANNEL = NOTIFY_CHANNEL;

export interface NewEvent {
  type: string;
  object_kind: string;
  object_id?: number | null;
  deployment_id?: number | null;
  node_id?: number | null;
  payload?: Record<string, unknown>;
}

export interface Event extends Required<NewEvent> { id: number; at: string }

export async function emit(tx: Tx, events: NewEvent | NewEvent[]): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  await tx.query(
    `INSERT INTO events (type, object_kind, object_id, deployment_id, node_id, payload)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::jsonb[])`,
    [
      list.map((e) => e.type), list.map((e) => e.object_kind), list.map((e) => e.object_id ?? null),
      list.map((e) => e.deployment_id ?? null), list.map((e) => e.node_id ?? null),
      list.map((e) => JSON.stringify(e.payload ?? {})),
    ],
  );
  await notifyOnCommit(tx);
}
