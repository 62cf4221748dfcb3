// Roles and attribs in the store: create/update, then one check of the whole role graph
// (references exist, no cycle — refused with the cycle shown — and cohorts recomputed).
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { FulcrumError, invalid } from './errors.js';
import { FLAGS, JIGS, cohorts, findRoleCycle, roleParents } from './role-graph.js';
import type { RoleRow } from './lookup.js';


export interface RoleInput {
  name: string; description?: string; jig?: string; jig_config?: Record<string, unknown>;
  flags?: string[]; requires?: string[]; wants_attribs?: string[]; preceeds?: string[];
  provides?: string[]; conflicts?: string[]; template?: Record<string, unknown>;
  timeout?: number; retry?: { count?: number; backoff?: number }; content_pack?: string | null;
}

export interface AttribInput {
  name: string; description?: string; role?: string | null; map: string;
  schema?: Record<string, unknown>; secret?: boolean; content_pack?: string | null;
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

function checkRole(r: RoleInput, field = ''): void {
  if (!NAME.test(r.name ?? '')) throw invalid(`${field}name`, `role name ${JSON.stringify(r.name)} must match ${NAME}`);
  if (r.jig !== undefined && !(JIGS as readonly string[]).includes(r.jig)) {
    throw invalid(`${field}jig`, `role ${r.name}: unknown jig "${r.jig}" (one of ${JIGS.join(', ')})`);
  }
  (r.flags ?? []).forEach((f, i) => {
    if (!(FLAGS as readonly string[]).includes(f)) throw invalid(`${field}flags[${i}]`, `role ${r.name}: unknown flag "${f}" (one of ${FLAGS.join(', ')})`);
  });
}

/** Insert or update a role by name. Call checkRoleGraph once after a batch. */
export async function upsertRole(tx: Tx, r: RoleInput, field = ''): Promise<{ row: RoleRow; changed: boolean }> {
  checkRole(r, field);
  const values = [
    r.name, r.description ?? '', r.content_pack ?? null, r.jig ?? 'noop', r.jig_config ?? {},
    r.requires ?? [], r.wants_attribs ?? [], r.preceeds ?? [], r.provides ?? [], r.conflicts ?? [],
    [...new Set(r.flags ?? [])], r.template ?? {}, r.timeout ?? 1800, r.retry?.count ?? 0, r.retry?.backoff ?? 30,
  ];
  const res = await tx.query<RoleRow & { inserted: boolean }>(
    `INSERT INTO roles (name, description, content_pack, jig, jig_config, requires, wants_attribs, preceeds,
                        provides, conflicts, flags, template, timeout_s, retry_count, retry_backoff_s)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
     ON CONFLICT (name) DO UPDATE SET description = $2, content_pack = $3, jig = $4, jig_config = $5,
       requires = $6, wants_attribs = $7, preceeds = $8, provides = $9, conflicts = $10, flags = $11,
       template = $12, timeout_s = $13, retry_count = $14, retry_backoff_s = $15,
       version = roles.version + 1, updated_at = now()
     WHERE (roles.description, roles.content_pack, roles.jig, roles.jig_config, roles.requires, roles.wants_attribs,
            roles.preceeds, roles.provides, roles.conflicts, roles.flags, roles.template, roles.timeout_s,
            roles.retry_count, roles.retry_backoff_s)
       IS DISTINCT FROM ($2,$3,$4,$5::jsonb,$6::text[],$7::text[],$8::text[],$9::text[],$10::text[],$11::text[],$12::jsonb,$13::int,$14::int,$15::int)
     RETURNING *, (xmax = 0) AS inserted`, values);
  if (res.rowCount === 0) {
    const same = await tx.query<RoleRow>('SELECT * FROM roles WHERE name = $1', [r.name]);
    return { row: same.rows[0], changed: false };
  }
  const row = res.rows[0];
  await emit(tx, { type: row.inserted ? 'role.created' : 'role.updated', object_kind: 'role', object_id: row.id, payload: { name: row.name } });
  return { row, changed: true };
}

export async function upsertAttrib(tx: Tx, a: AttribInput, field = ''): Promise<boolean> {
  if (!NAME.test(a.name ?? '')) throw invalid(`${field}name`, `attrib name ${JSON.stringify(a.name)} must match ${NAME}`);
  if (!a.map || a.map.split('/').some((s) => s === '')) throw invalid(`${field}map`, `attrib ${a.name}: map "${a.map}" must be non-empty segments joined by "/"`);
  let roleId: number | null = null;
  if (a.role) {
    const r = await tx.query('SELECT id FROM roles WHERE name = $1', [a.role]);
    if (r.rowCount === 0) throw new FulcrumError('not-found', `attrib ${a.name}: role "${a.role}" does not exist`, `${field}role`);
    roleId = r.rows[0].id;
  }
  const res = await tx.query(
    `INSERT INTO attribs (name, description, role_id, map, schema, secret, content_pack) VALUES ($1,$2,$3,$4,$5,$6,$7)
     ON CONFLICT (name) DO UPDATE SET description = $2, role_id = $3, map = $4, schema = $5, secret = $6, content_pack = $7,
       version = attribs.version + 1, updated_at = now()
     WHERE (attribs.description, attribs.role_id, attribs.map, attribs.schema, attribs.secret, attribs.content_pack)
       IS DISTINCT FROM ($2, $3::bigint, $4, $5::jsonb, $6::boolean, $7)
     RETURNING id`,
    [a.name, a.description ?? '', roleId, a.map, a.schema ?? {}, a.secret ?? false, a.content_pack ?? null]);
  return (res.rowCount ?? 0) > 0;
}

/**
 * Check the whole role graph after a change: every reference names a stored role or attrib,
 * the graph has no cycle (409 with the cycle path), and cohorts are recomputed.
 */
export async function checkRoleGraph(tx: Tx): Promise<void> {
  const roles = (await tx.query<RoleRow>('SELECT * FROM roles')).rows;
  const attribs = (await tx.query(`SELECT a.name, r.name AS role FROM attribs a LEFT JOIN roles r ON r.id = a.role_id`)).rows;
  const names = new Set(roles.map((r) => r.name));
  const owner = new Map<string, string | null>(attribs.map((a) => [a.name, a.role]));
  for (const r of roles) {
    for (const rel of ['requires', 'preceeds', 'provides', 'conflicts'] as const) {
      r[rel].forEach((n, i) => {
        if (!names.has(n)) throw new FulcrumError('not-found', `role ${r.name}: ${rel} names role "${n}", which does not exist`, `${rel}[${i}]`);
      });
    }
    r.wants_attribs.forEach((n, i) => {
      if (!owner.has(n)) throw new FulcrumError('not-found', `role ${r.name}: wants_attribs names attrib "${n}", which does not exist`, `wants_attribs[${i}]`);
    });
  }
  const parents = roleParents(roles, (a) => owner.get(a));
  const cycle = findRoleCycle([...parents].map(([name, ps]) => ({ name, parents: ps })));
  if (cycle) throw new FulcrumError('conflict', `role cycle: ${cycle.join(' -> ')} (a -> b: a needs b); remove one of these relationships`);
  const cohort = cohorts(parents);
  await tx.query(
    `UPDATE roles r SET cohort = c.cohort FROM unnest($1::text[], $2::int[]) AS c(name, cohort)
      WHERE r.name = c.name AND r.cohort <> c.cohort`,
    [[...cohort.keys()], [...cohort.values()]]);
}
