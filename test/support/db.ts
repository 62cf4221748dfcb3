// Test databases: a fresh database per call on a PostgreSQL started outside the code under test
// (the "external" store, DATABASE_URL). scripts/test.js starts one cluster for the whole run and
// passes its URL in FULCRUM_TEST_DATABASE_URL; run alone, a test file starts its own.
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import crypto from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded.js';
import { Store } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';

let own: Promise<{ pg: EmbeddedPostgres; dir: string }> | undefined;

async function maintenanceUrl(): Promise<string> {
  if (process.env.FULCRUM_TEST_DATABASE_URL) return process.env.FULCRUM_TEST_DATABASE_URL;
  own ??= (async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-testpg-'));
    return { pg: await startEmbeddedPostgres(dir), dir };
  })();
  const { pg: p } = await own;
  return p.url.replace(/\/fulcrum$/, '/postgres');
}

/** Stop the cluster this process started for itself, if any (call from a top-level after()). */
export async function stopOwnCluster(): Promise<void> {
  if (!own) return;
  const { pg: p, dir } = await own;
  own = undefined;
  await p.stop();
  await fs.rm(dir, { recursive: true, force: true });
}

/** A new, empty database's URL. */
export async function freshDatabaseUrl(): Promise<string> {
  const base = await maintenanceUrl();
  const name = `t_${crypto.randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  return base.replace(/\/postgres$/, `/${name}`);
}

export async function testDatabase(): Promise<{ store: Store; url: string; close(): Promise<void> }> {
  const url = await freshDatabaseUrl();
  const store = new Store(url);
  await migrate(store);
  return { store, url, close: () => store.close() };
}
