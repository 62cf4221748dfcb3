// Objects are addressable by id, uuid or name (DESIGN.md §6).
import type { Sql } from '../store/db.js';
import { notFound } from './errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type Key = string | number;

/** The WHERE clause (with $1) that finds one row of `table` by id, uuid or name. */
export function keyClause(key: Key, hasName = true): { where: string; value: unknown } {
  if (typeof key === 'number' || /^\d+$/.test(key)) return { where: 'id = $1', value: Number(key) };
  if (UUID.test(key)) return { where: 'uuid = $1', value: key };
  if (!hasName) return { where: 'false AND $1::text IS NULL', value: key };
  return { where: 'name = $1', value: key };
}

export interface RoleRow {
  id: number; uuid: string; name: string; description: string; content_pack: string | null;
  jig: string; jig_config: Record<string, unknown>;
  requires: string[]; wants_attribs: string[]; preceeds: string[]; provides: string[]; conflicts: string[];
  flags: string[]; template: Record<string, unknown>; cohort: number;
  timeout_s: number; retry_count: number; retry_backoff_s: number; version: number;
}
export interface NodeRow {
  id: number; uuid: string; name: string; description: string; alive: boolean; available: boolean;
  bootenv: string; provider: string; deployment_id: number; admin: boolean; service: boolean;
  inventory: Record<string, unknown>; hints: Record<string, unknown>; version: number;
}
export interface DeploymentRow {
  id: number; uuid: string; name: string; description: string; parent_id: number | null;
  system: boolean; state: 'proposed' | 'committed'; version: number;
}

export async function find<T>(sql: Sql, table: string, what: string, key: Key, opts: { lock?: boolean; field?: string } = {}): Promise<T> {
  const { where, value } = keyClause(key, table !== 'noderoles' && table !== 'jobs' && table !== 'deployment_roles');
  const r = await sql.query(`SELECT * FROM ${table} WHERE ${where}${opts.lock ? ' FOR UPDATE' : ''}`, [value]);
  if (r.rowCount === 0) throw notFound(what, key, opts.field);
  return r.rows[0] as T;
}

export const findRole = (sql: Sql, key: Key, field?: string) => find<RoleRow>(sql, 'roles', 'role', key, { field });
export const findNode = (sql: Sql, key: Key, field?: string) => find<NodeRow>(sql, 'nodes', 'node', key, { field });
export const findDeployment = (sql: Sql, key: Key, field?: string) => find<DeploymentRow>(sql, 'deployments', 'deployment', key, { field });

export const hasFlag = (role: { flags: string[] }, flag: string) => role.flags.includes(flag);
