// Binding a role to a node in a deployment: the noderole and the edges that connect it to its
// parents (DESIGN.md §2). Parents are found, not searched for by data: same node first, then the
// deployment and its ancestors; a parent that exists nowhere is bound on the same node.
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { conflict, FulcrumError } from './errors.js';
import { changeState, changeStates } from './noderoles.js';
import { findDeployment, findNode, findRole, hasFlag, type DeploymentRow, type Key, type NodeRow, type RoleRow } from './lookup.js';

interface Binding { tx: Tx; created: number[]; roles: Map<string, RoleRow> }

async function roleByName(b: Binding, name: string): Promise<RoleRow> {
  let r = b.roles.get(name);
  if (!r) {
    r = await findRole(b.tx, name);
    b.roles.set(name, r);
  }
  return r;
}

/** The deployment and its ancestors up to the system deployment, nearest first. */
async function lineage(tx: Tx, deploymentId: number): Promise<number[]> {
  const r = await tx.query(
    `WITH RECURSIVE up(id, parent_id, depth) AS (
       SELECT id, parent_id, 0 FROM deployments WHERE id = $1
       UNION ALL SELECT d.id, d.parent_id, up.depth + 1 FROM deployments d JOIN up ON d.id = up.parent_id)
     SELECT id FROM up ORDER BY depth`, [deploymentId]);
  return r.rows.map((x) => x.id);
}

/** The per-deployment pseudo-node that carries service roles, created on first use. */
export async function serviceNode(tx: Tx, deployment: DeploymentRow): Promise<NodeRow> {
  const found = await tx.query<NodeRow>('SELECT * FROM nodes WHERE service AND deployment_id = $1', [deployment.id]);
  if (found.rowCount) return found.rows[0];
  const r = await tx.query<NodeRow>(
    `INSERT INTO nodes (name, description, alive, available, bootenv, provider, deployment_id, service)
     VALUES ($1, $2, true, true, 'local', 'service', $3, true) RETURNING *`,
    [`services.${deployment.name}.fulcrum.internal`, `service roles of deployment ${deployment.name}`, deployment.id]);
  await emit(tx, { type: 'node.created', object_kind: 'node', object_id: r.rows[0].id, deployment_id: deployment.id, node_id: r.rows[0].id, payload: { name: r.rows[0].name, service: true } });
  return r.rows[0];
}

/** Roles that satisfy a requirement on `name`: the role itself (unless abstract) and its providers. */
async function satisfiers(b: Binding, name: string): Promise<RoleRow[]> {
  const r = await b.tx.query<RoleRow>(`SELECT * FROM roles WHERE name = $1 OR $1 = ANY(provides) ORDER BY (name = $1) DESC, name`, [name]);
  return r.rows.filter((x) => !hasFlag(x, 'abstract'));
}

/** Existing noderoles that satisfy `name` for a child on `node` in `deployment`; binds one if none. */
async function parentsFor(b: Binding, name: string, node: NodeRow, deployment: DeploymentRow, path: string[]): Promise<number[]> {
  const candidates = await satisfiers(b, name);
  if (candidates.length === 0) throw conflict(`role ${path.at(-1)} needs "${name}", but no bindable role is or provides it`);
  const ids = candidates.map((c) => c.id);
  const preferred = candidates[0];
  if (hasFlag(preferred, 'implicit')) {
    const same = await b.tx.query('SELECT id FROM noderoles WHERE node_id = $1 AND role_id = ANY($2) ORDER BY id LIMIT 1', [node.id, ids]);
    return same.rowCount ? [same.rows[0].id] : [await bindIn(b, preferred, node, deployment, path)];
  }
  if (!hasFlag(preferred, 'service')) {
    const same = await b.tx.query('SELECT id FROM noderoles WHERE node_id = $1 AND role_id = ANY($2) ORDER BY id LIMIT 1', [node.id, ids]);
    if (same.rowCount && !hasFlag(preferred, 'cluster')) return [same.rows[0].id];
  }
  for (const dep of await lineage(b.tx, deployment.id)) {
    const found = await b.tx.query(
      `SELECT nr.id, ro.flags FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id
        WHERE nr.deployment_id = $1 AND nr.role_id = ANY($2) ORDER BY nr.id`, [dep, ids]);
    if (found.rowCount === 0) continue;
    // A cluster acts as one unit: the child waits for every peer (DESIGN.md §2, `cluster`).
    return found.rows[0].flags.includes('cluster') ? found.rows.map((x) => x.id) : [found.rows[0].id];
  }
  return [await bindIn(b, preferred, node, deployment, path)];
}

async function bindIn(b: Binding, role: RoleRow, node: NodeRow, deployment: DeploymentRow, path: string[]): Promise<number> {
  const { tx } = b;
  if (hasFlag(role, 'abstract')) throw conflict(`role ${role.name} is abstract: it provides attributes only and cannot be bound`);
  if (hasFlag(role, 'service') && !node.service) node = await serviceNode(tx, deployment);
  const existing = await tx.query('SELECT id, deployment_id FROM noderoles WHERE node_id = $1 AND role_id = $2', [node.id, role.id]);
  if (existing.rowCount) return existing.rows[0].id;
  if (path.includes(role.name)) throw conflict(`role cycle while binding: ${[...path, role.name].join(' -> ')}`);
  path = [...path, role.name];

  const clash = await tx.query(
    `SELECT ro.name FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id
      WHERE nr.node_id = $1 AND (ro.name = ANY($2) OR $3 = ANY(ro.conflicts)) LIMIT 1`, [node.id, role.conflicts, role.name]);
  if (clash.rowCount) throw conflict(`role ${role.name} conflicts with role ${clash.rows[0].name}, already bound on node ${node.name}`);

  const hard = new Set<number>();
  for (const req of role.requires) for (const id of await parentsFor(b, req, node, deployment, path)) hard.add(id);
  if (role.wants_attribs.length) {
    const owners = await tx.query(
      `SELECT DISTINCT r.name FROM attribs a JOIN roles r ON r.id = a.role_id WHERE a.name = ANY($1) AND r.id <> $2`, [role.wants_attribs, role.id]);
    for (const o of owners.rows) for (const id of await parentsFor(b, o.name, node, deployment, path)) hard.add(id);
  }
  // preceeds: soft ordering after noderoles of those roles on the same node; never binds them.
  const soft = role.preceeds.length
    ? (await tx.query(`SELECT nr.id FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id WHERE nr.node_id = $1 AND ro.name = ANY($2)`, [node.id, role.preceeds])).rows.map((x) => x.id as number)
    : [];

  const parentCohort = [...hard, ...soft].length
    ? (await tx.query('SELECT max(cohort) AS c FROM noderoles WHERE id = ANY($1)', [[...hard, ...soft]])).rows[0].c as number
    : -1;
  await tx.query(`INSERT INTO deployment_roles (deployment_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [deployment.id, role.id]);
  const ins = await tx.query(
    `INSERT INTO noderoles (node_id, role_id, deployment_id, cohort) VALUES ($1, $2, $3, $4) RETURNING id`,
    [node.id, role.id, deployment.id, Math.max(role.cohort, parentCohort + 1)]);
  const id: number = ins.rows[0].id;
  await addEdges(tx, [...hard].map((p) => [p, id, 'hard']));
  await addEdges(tx, soft.filter((p) => !hard.has(p)).map((p) => [p, id, 'soft']));
  // Later bindings of roles that list this one in `preceeds` come after it on this node.
  const followers = await tx.query(
    `SELECT nr.id FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id WHERE nr.node_id = $1 AND $2 = ANY(ro.preceeds)`, [node.id, role.name]);
  await addEdges(tx, followers.rows.map((f) => [id, f.id, 'soft']));
  b.created.push(id);
  await emit(tx, {
    type: 'noderole.created', object_kind: 'noderole', object_id: id, deployment_id: deployment.id, node_id: node.id,
    payload: { role: role.name, node: node.name, deployment: deployment.name, parents: [...hard] },
  });

  if (hasFlag(role, 'cluster')) await joinCluster(tx, role, deployment, id);
  return id;
}

/** A new peer of a cluster role joins the existing children of its peers: they wait for it too. */
async function joinCluster(tx: Tx, role: RoleRow, deployment: DeploymentRow, id: number): Promise<void> {
  const children = await tx.query(
    `SELECT DISTINCT e.child_id FROM noderole_edges e JOIN noderoles p ON p.id = e.parent_id
      WHERE p.role_id = $1 AND p.deployment_id = $2 AND p.id <> $3 AND e.kind = 'hard'`, [role.id, deployment.id, id]);
  const childIds = children.rows.map((c) => c.child_id as number).filter((c) => c !== id);
  await addEdges(tx, childIds.map((c) => [id, c, 'hard']));
  for (const c of childIds) {
    const s = await tx.query('SELECT state FROM noderoles WHERE id = $1', [c]);
    if (['ACTIVE', 'TODO', 'ERROR'].includes(s.rows[0].state)) {
      await changeState(tx, c, 'BLOCKED', 'ripple', { blocked_by: { kind: 'parent-not-active', noderole: id } });
    }
  }
}

async function addEdges(tx: Tx, edges: Array<[number, number, 'hard' | 'soft']>): Promise<void> {
  if (edges.length === 0) return;
  await tx.query(
    `INSERT INTO noderole_edges (parent_id, child_id, kind) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
     ON CONFLICT (parent_id, child_id) DO NOTHING`,
    [edges.map((e) => e[0]), edges.map((e) => e[1]), edges.map((e) => e[2])]);
}

export interface BindRequest { role: Key; node: Key; deployment?: Key; commit?: boolean }

/**
 * Bind a role to a node (and, as needed, its parents). New noderoles are PROPOSED until their
 * deployment is committed, unless `commit` is set (discovery and bootstrap bindings).
 * Returns the id of the requested noderole and every noderole created.
 */
export async function bind(tx: Tx, req: BindRequest): Promise<{ id: number; created: number[] }> {
  const role = await findRole(tx, req.role, 'role');
  const node = await findNode(tx, req.node, 'node');
  const deployment = await findDeployment(tx, req.deployment ?? node.deployment_id, 'deployment');
  const existing = await tx.query('SELECT id, deployment_id FROM noderoles WHERE node_id = $1 AND role_id = $2', [node.id, role.id]);
  if (existing.rowCount && existing.rows[0].deployment_id !== deployment.id) {
    throw new FulcrumError('conflict', `role ${role.name} is already bound to node ${node.name} in another deployment (noderole ${existing.rows[0].id})`);
  }
  const b: Binding = { tx, created: [], roles: new Map() };
  const id = await bindIn(b, role, node, deployment, []);
  if (req.commit) await commitNodeRoles(tx, b.created);
  return { id, created: b.created };
}

/** PROPOSED -> TODO or BLOCKED, parents first; proposed data becomes committed data. */
export async function commitNodeRoles(tx: Tx, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  const r = await tx.query(
    `UPDATE noderoles SET committed_data = proposed_data WHERE id = ANY($1) AND state = 'PROPOSED' RETURNING id, cohort`, [ids]);
  const order = r.rows.sort((a, b) => a.cohort - b.cohort || a.id - b.id);
  await changeStates(tx, order.map((nr) => ({ id: nr.id, to: 'ready' as const, cause: 'commit' as const })));
}
