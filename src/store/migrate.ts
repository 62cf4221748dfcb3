// Versioned migrations: src/store/migrations/NNN_name.sql, applied in order at start in one
// transaction (all or nothing), serialised across replicas by an advisory lock.
import fs from 'node:fs/promises';
import path from 'node:path';
import { projectRoot } from '../paths.js';
import type { Store } from './db.js';

const MIGRATION_LOCK = 7780_0001;

export async function migrate(store: Store): Promise<string[]> {
  const dir = path.join(projectRoot, 'src', 'store', 'migrations');
  const files = (await fs.readdir(dir)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const applied: string[] = [];
  await store.tx(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query('SELECT version FROM schema_migrations')).rows.map((r) => r.version as number));
    for (const file of files) {
      const version = Number(file.slice(0, 3));
      if (done.has(version)) continue;
      const sql = await fs.readFile(path.join(dir, file), 'utf8');
      try {
        await tx.query(sql);
      } catch (err) {
        throw new Error(`migration ${file} failed: ${(err as Error).message}`);
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, file]);
      applied.push(file);
    }
  });
  return applied;
}
