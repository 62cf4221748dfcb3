// The connection pool and the one way to run a transaction.
import pg from 'pg';

// int8 (bigserial ids, counts) as JS numbers: ids stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** Anything that runs a query: the pool, a transaction's client, the Store. */
export interface Sql { query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> }
export type Tx = pg.PoolClient;

/** The channel every committed change is announced on (see events/outbox.ts). */
export const NOTIFY_CHANNEL = 'fulcrum';
const pendingNotify = new WeakSet<object>();

/**
 * Ask for one NOTIFY when the transaction on `tx` commits. Outside Store.tx (a bare client),
 * it is sent at once: PostgreSQL delivers a NOTIFY only when its transaction commits anyway.
 */
export async function notifyOnCommit(tx: Sql): Promise<void> {
  if (inTx.has(tx)) pendingNotify.add(tx);
  else await tx.query(`NOTIFY ${NOTIFY_CHANNEL}`);
}
const inTx = new WeakSet<object>();

export class Store {
  readonly pool: pg.Pool;
  constructor(readonly url: string, max = 20) {
    this.pool = new pg.Pool({ connectionString: url, max, application_name: 'fulcrum' });
    // A dropped connection (database restart) must not crash the server: idle clients report to the
    // pool; a checked-out client's error surfaces in its pending query, and is otherwise dropped here.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /**
   * Run `fn` in a transaction. Deadlocks and serialization failures are retried
   * (a bounded number of times): callers write their logic once, as if alone.
   */
  async tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      inTx.add(client);
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        if (pendingNotify.delete(client)) await client.query(`NOTIFY ${NOTIFY_CHANNEL}`);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        pendingNotify.delete(client);
        await client.query('ROLLBACK').catch(() => undefined);
        const code = (err as { code?: string }).code;
        if ((code === '40P01' || code === '40001') && attempt < 8) {
          await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
          continue;
        }
        throw err;
      } finally {
        inTx.delete(client);
        client.release();
      }
    }
  }

  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]) {
    return this.pool.query<R>(text, values);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
