// The object collections of the API, declared as data: how each kind is read (a SQL view with
// its derived fields), filtered, created, patched and deleted. `registerResource` turns one
// declaration into the five REST routes with validation, ETags and merge patch.
import crypto from 'node:crypto';
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { conflict, FulcrumError } from '../model/errors.js';
import { bind } from '../model/binding.js';
import { createNode, deleteNode, updateNode, NODE_STATE_SQL } from '../model/nodes.js';
import { createDeployment } from '../model/deployments.js';
import { upsertAttrib, upsertRole, checkRoleGraph, type RoleInput } from '../model/roles.js';
import { changeState } from '../model/noderoles.js';
import { hashPassword } from '../auth/auth.js';
import * as S from './schemas.js';

export interface Resource {
  kind: string;
  what: string;
  /** SELECT producing the API shape; filters and keys apply to its columns. */
  view: string;
  /** Extra columns for `show` only (long texts). */
  detail?: string;
  named: boolean;
  filters: string[];
  create?: { schema: object; run: (tx: Tx, body: any) => Promise<number> };
  patch?: { schema: object; editable: (row: any) => Record<string, unknown>; run: (tx: Tx, row: any, merged: any) => Promise<void> };
  remove?: (tx: Tx, row: any) => Promise<void>;
}

const roleInput = (body: any): RoleInput => ({ ...body, content_pack: body.content_pack ?? null });

const DEPLOYMENT_STATUS = `CASE WHEN d.state = 'proposed' THEN 'proposed'
  WHEN EXISTS (SELECT 1 FROM noderoles x WHERE x.deployment_id = d.id AND x.state = 'ERROR') THEN 'error'
  WHEN NOT EXISTS (SELECT 1 FROM noderoles x WHERE x.deployment_id = d.id AND x.state <> 'ACTIVE') THEN 'active'
  ELSE 'committed' END`;

export const RESOURCES: Resource[] = [
  {
    kind: 'nodes', what: 'node', named: true,
    view: `SELECT nodes.id, nodes.uuid, nodes.name, nodes.description, nodes.alive, nodes.available, nodes.bootenv, nodes.provider,
                  d.name AS deployment, nodes.deployment_id, nodes.admin, nodes.service, COALESCE(${NODE_STATE_SQL}, 'ACTIVE') AS state,
                  nodes.inventory, nodes.hints,
                  ARRAY(SELECT m.mac::text FROM node_macs m WHERE m.node_id = nodes.id ORDER BY m.mac) AS macs,
                  ARRAY(SELECT p.name FROM node_profiles np JOIN profiles p ON p.id = np.profile_id WHERE np.node_id = nodes.id ORDER BY np.position) AS profiles,
                  nodes.version, nodes.created_at, nodes.updated_at
             FROM nodes JOIN deployments d ON d.id = nodes.deployment_id`,
    filters: ['name', 'alive', 'available', 'bootenv', 'provider', 'deployment', 'state', 'admin', 'service'],
    create: { schema: S.NodeCreate, run: async (tx, b) => (await createNode(tx, b)).id },
    patch: {
      schema: S.NodePatch,
      editable: (n) => ({ description: n.description, alive: n.alive, available: n.available, bootenv: n.bootenv, deployment: n.deployment, inventory: n.inventory, hints: n.hints, macs: n.macs, profiles: n.profiles }),
      run: async (tx, row, m) => { await updateNode(tx, row.id, m); },
    },
    remove: (tx, row) => deleteNode(tx, row.id),
  },
  {
    kind: 'roles', what: 'role', named: true,
    view: `SELECT id, uuid, name, description, content_pack, jig, jig_config, flags, requires, wants_attribs, preceeds, provides, conflicts,
                  template, cohort, timeout_s AS timeout, json_build_object('count', retry_count, 'backoff', retry_backoff_s) AS retry,
                  version, created_at, updated_at FROM roles`,
    filters: ['name', 'jig', 'content_pack', 'cohort'],
    create: {
      schema: S.RoleCreate,
      run: async (tx, b) => {
        const exists = await tx.query('SELECT id FROM roles WHERE name = $1', [b.name]);
        if (exists.rowCount) throw conflict(`role ${b.name} already exists (id ${exists.rows[0].id})`);
        const { row } = await upsertRole(tx, roleInput(b));
        await checkRoleGraph(tx);
        return row.id;
      },
    },
    patch: {
      schema: S.RolePatch,
      editable: (r) => ({ description: r.description, jig: r.jig, jig_config: r.jig_config, flags: r.flags, requires: r.requires, wants_attribs: r.wants_attribs,
        preceeds: r.preceeds, provides: r.provides, conflicts: r.conflicts, template: r.template, timeout: r.timeout, retry: r.retry }),
      run: async (tx, row, m) => { await upsertRole(tx, roleInput({ ...m, name: row.name, content_pack: row.content_pack })); await checkRoleGraph(tx); },
    },
    remove: async (tx, row) => {
      const bound = await tx.query('SELECT count(*)::int AS n FROM noderoles WHERE role_id = $1', [row.id]);
      if (bound.rows[0].n > 0) throw conflict(`role ${row.name} is bound to ${bound.rows[0].n} node(s); unbind it first`);
      await tx.query('DELETE FROM roles WHERE id = $1', [row.id]);
      await checkRoleGraph(tx);
      await emit(tx, { type: 'role.deleted', object_kind: 'role', object_id: row.id, payload: { name: row.name } });
    },
  },
  {
    kind: 'deployments', what: 'deployment', named: true,
    view: `SELECT d.id, d.uuid, d.name, d.description, p.name AS parent, d.parent_id, d.system, d.state, ${DEPLOYMENT_STATUS} AS status,
                  d.version, d.created_at, d.updated_at FROM deployments d LEFT JOIN deployments p ON p.id = d.parent_id`,
    filters: ['name', 'state', 'status', 'parent', 'system'],
    create: { schema: S.DeploymentCreate, run: async (tx, b) => (await createDeployment(tx, b)).id },
    patch: {
      schema: S.DeploymentPatch, editable: (d) => ({ description: d.description }),
      run: async (tx, row, m) => { await tx.query('UPDATE deployments SET description = $2, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.description]); },
    },
    remove: async (tx, row) => {
      if (row.system) throw conflict('the system deployment cannot be deleted');
      const used = await tx.query(
        `SELECT (SELECT count(*) FROM nodes WHERE deployment_id = $1 AND NOT service)::int AS nodes,
                (SELECT count(*) FROM deployments WHERE parent_id = $1)::int AS children`, [row.id]);
      if (used.rows[0].nodes || used.rows[0].children) {
        throw conflict(`deployment ${row.name} still has ${used.rows[0].nodes} node(s) and ${used.rows[0].children} child deployment(s); move them first`);
      }
      await tx.query('DELETE FROM noderoles WHERE deployment_id = $1', [row.id]);
      await tx.query('DELETE FROM nodes WHERE deployment_id = $1', [row.id]);
      await tx.query('DELETE FROM deployments WHERE id = $1', [row.id]);
      await emit(tx, { type: 'deployment.deleted', object_kind: 'deployment', object_id: row.id, deployment_id: row.id, payload: { name: row.name } });
    },
  },
  {
    kind: 'noderoles', what: 'noderole', named: false,
    view: `SELECT nr.id, nr.uuid, n.name AS node, nr.node_id, r.name AS role, nr.role_id, d.name AS deployment, nr.deployment_id,
                  nr.state, nr.blocked_by, nr.cohort, nr.run_count, nr.failures, nr.retry_at, nr.proposed_data, nr.committed_data,
                  nr.sys_data, nr.wall, nr.version, nr.created_at, nr.updated_at
             FROM noderoles nr JOIN nodes n ON n.id = nr.node_id JOIN roles r ON r.id = nr.role_id JOIN deployments d ON d.id = nr.deployment_id`,
    detail: `(SELECT runlog FROM noderoles WHERE id = v.id) AS runlog,
             (SELECT coalesce(json_agg(json_build_object('id', e.parent_id, 'kind', e.kind) ORDER BY e.parent_id), '[]') FROM noderole_edges e WHERE e.child_id = v.id) AS parents,
             (SELECT coalesce(json_agg(json_build_object('id', e.child_id, 'kind', e.kind) ORDER BY e.child_id), '[]') FROM noderole_edges e WHERE e.parent_id = v.id) AS children`,
    filters: ['node', 'role', 'deployment', 'state', 'node_id', 'role_id', 'deployment_id', 'cohort'],
    create: { schema: S.Bind, run: async (tx, b) => (await bind(tx, b)).id },
    patch: {
      schema: S.DataPatch, editable: (nr) => ({ proposed_data: nr.proposed_data }),
      run: async (tx, row, m) => { await tx.query('UPDATE noderoles SET proposed_data = $2, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.proposed_data ?? {}]); },
    },
    remove: async (tx, row) => {
      const kids = await tx.query(`SELECT e.child_id FROM noderole_edges e WHERE e.parent_id = $1 AND e.kind = 'hard'`, [row.id]);
      if (kids.rowCount) throw conflict(`noderole ${row.id} (${row.role} on ${row.node}) has dependent noderoles ${kids.rows.map((k) => k.child_id).join(', ')}; unbind them first`);
      if (row.state === 'TRANSITION') throw conflict(`noderole ${row.id} (${row.role} on ${row.node}) is running; wait for it to finish`);
      await tx.query('DELETE FROM noderoles WHERE id = $1', [row.id]);
      await emit(tx, { type: 'noderole.deleted', object_kind: 'noderole', object_id: row.id, deployment_id: row.deployment_id, node_id: row.node_id, payload: { role: row.role, node: row.node } });
    },
  },
  {
    kind: 'deployment-roles', what: 'deployment role', named: false,
    view: `SELECT dr.id, dr.uuid, d.name AS deployment, dr.deployment_id, r.name AS role, dr.role_id, dr.proposed_data, dr.committed_data, dr.wall,
                  dr.version, dr.created_at, dr.updated_at
             FROM deployment_roles dr JOIN deployments d ON d.id = dr.deployment_id JOIN roles r ON r.id = dr.role_id`,
    filters: ['deployment', 'role'],
    patch: {
      schema: S.DataPatch, editable: (dr) => ({ proposed_data: dr.proposed_data }),
      run: async (tx, row, m) => { await tx.query('UPDATE deployment_roles SET proposed_data = $2, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.proposed_data ?? {}]); },
    },
  },
  {
    kind: 'attribs', what: 'attrib', named: true,
    view: `SELECT a.id, a.uuid, a.name, a.description, r.name AS role, a.map, a.schema, a.secret, a.content_pack, a.version, a.created_at, a.updated_at
             FROM attribs a LEFT JOIN roles r ON r.id = a.role_id`,
    filters: ['name', 'role', 'content_pack'],
    create: {
      schema: S.AttribCreate,
      run: async (tx, b) => {
        const exists = await tx.query('SELECT id FROM attribs WHERE name = $1', [b.name]);
        if (exists.rowCount) throw conflict(`attrib ${b.name} already exists (id ${exists.rows[0].id})`);
        await upsertAttrib(tx, b);
        await checkRoleGraph(tx);
        return (await tx.query('SELECT id FROM attribs WHERE name = $1', [b.name])).rows[0].id;
      },
    },
    patch: {
      schema: S.AttribPatch, editable: (a) => ({ description: a.description, map: a.map, schema: a.schema, secret: a.secret }),
      run: async (tx, row, m) => { await upsertAttrib(tx, { ...m, name: row.name, role: row.role, content_pack: row.content_pack }); },
    },
    remove: async (tx, row) => {
      const users = await tx.query(`SELECT name FROM roles WHERE $1 = ANY(wants_attribs)`, [row.name]);
      if (users.rowCount) throw conflict(`attrib ${row.name} is wanted by role(s) ${users.rows.map((u) => u.name).join(', ')}`);
      await tx.query('DELETE FROM attribs WHERE id = $1', [row.id]);
    },
  },
  {
    kind: 'profiles', what: 'profile', named: true,
    view: `SELECT id, uuid, name, description, values, content_pack, version, created_at, updated_at FROM profiles`,
    filters: ['name', 'content_pack'],
    create: {
      schema: S.ProfileCreate,
      run: async (tx, b) => (await tx.query('INSERT INTO profiles (name, description, values) VALUES ($1, $2, $3) RETURNING id', [b.name, b.description ?? '', b.values ?? {}])).rows[0].id,
    },
    patch: {
      schema: S.ProfilePatch, editable: (p) => ({ description: p.description, values: p.values }),
      run: async (tx, row, m) => { await tx.query('UPDATE profiles SET description = $2, values = $3, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.description, m.values ?? {}]); },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM profiles WHERE id = $1', [row.id]); },
  },
  {
    kind: 'users', what: 'user', named: true,
    view: `SELECT id, uuid, name, capabilities, version, created_at, updated_at FROM users`,
    filters: ['name'],
    create: {
      schema: S.UserCreate,
      run: async (tx, b) => (await tx.query('INSERT INTO users (name, password_hash, capabilities) VALUES ($1, $2, $3) RETURNING id',
        [b.name, await hashPassword(b.password), b.capabilities ?? []])).rows[0].id,
    },
    patch: {
      schema: S.UserPatch, editable: (u) => ({ capabilities: u.capabilities }),
      run: async (tx, row, m) => {
        if (m.password) await tx.query('UPDATE users SET password_hash = $2 WHERE id = $1', [row.id, await hashPassword(m.password)]);
        await tx.query('UPDATE users SET capabilities = $2, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.capabilities]);
      },
    },
    remove: async (tx, row) => {
      if (row.name === 'admin') throw conflict('the admin user cannot be deleted');
      await tx.query('DELETE FROM users WHERE id = $1', [row.id]);
    },
  },
  {
    kind: 'webhooks', what: 'webhook', named: true,
    // The secret is never returned (it is shown once, in the create response).
    view: `SELECT id, uuid, name, url, types, active, max_attempts, version, created_at, updated_at FROM webhooks`,
    filters: ['name', 'active'],
    create: {
      schema: S.WebhookCreate,
      run: async (tx, b) => (await tx.query(
        'INSERT INTO webhooks (name, url, secret, types, active, max_attempts) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id',
        [b.name, b.url, b.secret ?? crypto.randomBytes(24).toString('base64url'), b.types ?? [], b.active ?? true, b.max_attempts ?? 8])).rows[0].id,
    },
    patch: {
      schema: S.WebhookPatch, editable: (w) => ({ url: w.url, types: w.types, active: w.active, max_attempts: w.max_attempts }),
      run: async (tx, row, m) => {
        await tx.query('UPDATE webhooks SET url = $2, types = $3, active = $4, max_attempts = $5, secret = COALESCE($6, secret), version = version + 1, updated_at = now() WHERE id = $1',
          [row.id, m.url, m.types, m.active, m.max_attempts, m.secret ?? null]);
      },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM webhooks WHERE id = $1', [row.id]); },
  },
  {
    kind: 'jobs', what: 'job', named: false,
    view: `SELECT j.id, j.noderole_id AS noderole, n.name AS node, j.node_id, r.name AS role, j.role_id, j.deployment_id, j.jig, j.state,
                  j.message, j.owner, j.async, j.started_at, j.finished_at, j.deadline_at
             FROM jobs j JOIN nodes n ON n.id = j.node_id JOIN roles r ON r.id = j.role_id`,
    detail: `(SELECT log FROM jobs WHERE id = v.id) AS log, (SELECT input FROM jobs WHERE id = v.id) AS input, (SELECT output FROM jobs WHERE id = v.id) AS output`,
    filters: ['noderole', 'node', 'role', 'state', 'jig', 'node_id'],
  },
  {
    kind: 'content-packs', what: 'content pack', named: true,
    view: `SELECT name, version, description, digest, imported_at, name AS id FROM content_packs`,
    detail: `(SELECT manifest FROM content_packs WHERE name = v.name) AS manifest`,
    filters: ['name'],
  },
];

/** Retry of an ERROR noderole (operator action): TODO if its parents are ACTIVE, else BLOCKED. */
export async function retryNodeRole(tx: Tx, id: number): Promise<void> {
  const r = await tx.query('SELECT state FROM noderoles WHERE id = $1 FOR UPDATE', [id]);
  if (!r.rowCount) throw new FulcrumError('not-found', `noderole ${id} does not exist`);
  if (r.rows[0].state !== 'ERROR') throw conflict(`noderole ${id} is ${r.rows[0].state}; only a noderole in ERROR can be retried`);
  await tx.query('UPDATE noderoles SET retry_at = NULL, failures = 0 WHERE id = $1', [id]);
  await changeState(tx, id, 'ready', 'retry', { detail: { operator: true } });
}
