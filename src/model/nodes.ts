// Nodes: creation binds the discovery roles (and bootstrap roles on the admin node); alive and
// available are the two switches the annealer obeys; a node going not-alive is deactivated.
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { invalid, conflict, FulcrumError } from './errors.js';
import { bind } from './binding.js';
import { changeState } from './noderoles.js';
import { ensureSystemDeployment } from './deployments.js';
import { findDeployment, findNode, type Key, type NodeRow } from './lookup.js';

const FQDN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export interface NodeInput {
  name: string; description?: string; alive?: boolean; available?: boolean; bootenv?: string;
  provider?: string; deployment?: Key; admin?: boolean; inventory?: Record<string, unknown>; hints?: Record<string, unknown>;
  /** The MAC addresses that identify the node on the network (DHCP, boot files). */
  macs?: string[];
  /** Profiles by name, lowest precedence first. */
  profiles?: string[];
}

/** SQL for a node's derived state (DESIGN.md §2): worst of its noderoles. */
export const NODE_STATE_SQL = `(SELECT CASE
    WHEN bool_or(nr.state = 'ERROR') THEN 'ERROR'
    WHEN bool_or(nr.state = 'TRANSITION') THEN 'TRANSITION'
    WHEN bool_or(nr.state = 'PROPOSED') THEN 'PROPOSED'
    WHEN bool_or(nr.state IN ('TODO', 'BLOCKED')) THEN 'TODO'
    ELSE 'ACTIVE' END FROM noderoles nr WHERE nr.node_id = nodes.id)`;

export async function createNode(tx: Tx, body: NodeInput): Promise<NodeRow> {
  const name = (body.name ?? '').toLowerCase();
  if (!FQDN.test(name)) throw invalid('name', `node name ${JSON.stringify(body.name)} is not a valid FQDN`);
  const deployment = body.deployment !== undefined ? await findDeployment(tx, body.deployment, 'deployment') : await ensureSystemDeployment(tx);
  if (body.bootenv) await checkBootenv(tx, body.bootenv);
  const dup = await tx.query('SELECT id FROM nodes WHERE name = $1', [name]);
  if (dup.rowCount) throw conflict(`node ${name} already exists (id ${dup.rows[0].id})`);
  const r = await tx.query<NodeRow>(
    `INSERT INTO nodes (name, description, alive, available, bootenv, provider, deployment_id, admin, inventory, hints)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING *`,
    [name, body.description ?? '', body.alive ?? false, body.available ?? true, body.bootenv ?? 'discovery',
      body.provider ?? 'metal', deployment.id, body.admin ?? false, body.inventory ?? {}, body.hints ?? {}]);
  const node = r.rows[0];
  if (body.macs) await setMacs(tx, node, body.macs);
  if (body.profiles) await setProfiles(tx, node, body.profiles);
  await emit(tx, { type: 'node.created', object_kind: 'node', object_id: node.id, deployment_id: deployment.id, node_id: node.id, payload: { name } });
  // Discovery roles go on every newly managed node, bootstrap roles on the admin node; both run at once.
  const auto = await tx.query(
    `SELECT name FROM roles WHERE NOT 'abstract' = ANY(flags) AND ('discovery' = ANY(flags) OR ($1 AND 'bootstrap' = ANY(flags))) ORDER BY cohort, name`,
    [node.admin]);
  // They live in the system deployment, which is always committed: they run whatever the
  // state of the deployment the node was placed in.
  const system = await ensureSystemDeployment(tx);
  for (const role of auto.rows) await bind(tx, { role: role.name, node: node.id, deployment: system.id, commit: true });
  return node;
}

export interface NodePatch {
  description?: string; alive?: boolean; available?: boolean; bootenv?: string; deployment?: Key;
  inventory?: Record<string, unknown>; hints?: Record<string, unknown>; macs?: string[]; profiles?: string[];
}

export async function updateNode(tx: Tx, key: Key, patch: NodePatch): Promise<NodeRow> {
  const before = await findNode(tx, key);
  await tx.query('SELECT id FROM nodes WHERE id = $1 FOR UPDATE', [before.id]);
  if (patch.bootenv && patch.bootenv !== before.bootenv) await checkBootenv(tx, patch.bootenv);
  const deploymentId = patch.deployment !== undefined ? (await findDeployment(tx, patch.deployment, 'deployment')).id : before.deployment_id;
  const r = await tx.query<NodeRow>(
    `UPDATE nodes SET description = $2, alive = $3, available = $4, bootenv = $5, deployment_id = $6, inventory = $7, hints = $8,
            version = version + 1, updated_at = now() WHERE id = $1 RETURNING *`,
    [before.id, patch.description ?? before.description, patch.alive ?? before.alive, patch.available ?? before.available,
      patch.bootenv ?? before.bootenv, deploymentId, patch.inventory ?? before.inventory, patch.hints ?? before.hints]);
  const node = r.rows[0];
  if (patch.macs) await setMacs(tx, node, patch.macs);
  if (patch.profiles) await setProfiles(tx, node, patch.profiles);
  const changed = Object.keys(patch).filter((k) => JSON.stringify((before as any)[k]) !== JSON.stringify((node as any)[k]));
  if (changed.length) {
    await emit(tx, { type: 'node.updated', object_kind: 'node', object_id: node.id, deployment_id: node.deployment_id, node_id: node.id, payload: { name: node.name, changed } });
  }
  if (before.alive !== node.alive) {
    await emit(tx, { type: 'node.alive', object_kind: 'node', object_id: node.id, node_id: node.id, deployment_id: node.deployment_id, payload: { name: node.name, alive: node.alive } });
    if (!node.alive) await deactivate(tx, node);
  }
  if (before.available !== node.available) {
    await emit(tx, { type: 'node.available', object_kind: 'node', object_id: node.id, node_id: node.id, deployment_id: node.deployment_id, payload: { name: node.name, available: node.available } });
  }
  // Boot files are rendered from this row at fetch time: once this commits they are served, so the
  // event (delivered after commit) tells a waiting reboot that the new files are live.
  if (before.bootenv !== node.bootenv) {
    await emit(tx, { type: 'node.bootenv', object_kind: 'node', object_id: node.id, node_id: node.id, deployment_id: node.deployment_id, payload: { name: node.name, from: before.bootenv, to: node.bootenv, served: true } });
  }
  return node;
}

/**
 * A node that is no longer alive: its running job is dropped and its ACTIVE and TRANSITION
 * noderoles go back to TODO (or BLOCKED), so the annealer re-converges it when it returns.
 */
async function deactivate(tx: Tx, node: NodeRow): Promise<void> {
  const cut = await tx.query(
    `UPDATE jobs j SET state = 'cancelled', finished_at = clock_timestamp(), message = 'node went not-alive'
       FROM roles r WHERE j.node_id = $1 AND j.state = 'running' AND r.id = j.role_id
     RETURNING j.noderole_id, 'destructive' = ANY(r.flags) AS destructive, r.name AS role`, [node.id]);
  // A destructive run cut short is not repeated behind the operator's back (as after a crash).
  for (const c of cut.rows.filter((x) => x.destructive)) {
    const message = `node ${node.name} went not-alive during a run of destructive role ${c.role}; it is not re-run automatically: check the node, then retry`;
    await tx.query(`UPDATE noderoles SET runlog = runlog || $2 || E'\n' WHERE id = $1`, [c.noderole_id, message]);
    await changeState(tx, c.noderole_id, 'ERROR', 'failed', { detail: { message } });
  }
  const nrs = await tx.query(`SELECT id FROM noderoles WHERE node_id = $1 AND state IN ('ACTIVE', 'TRANSITION') ORDER BY cohort, id`, [node.id]);
  for (const nr of nrs.rows) {
    const s = await tx.query('SELECT state FROM noderoles WHERE id = $1', [nr.id]);
    if (s.rows[0].state === 'ACTIVE' || s.rows[0].state === 'TRANSITION') await changeState(tx, nr.id, 'ready', 'deactivate');
  }
}

export async function deleteNode(tx: Tx, key: Key): Promise<void> {
  const node = await findNode(tx, key);
  if (node.service) throw conflict(`node ${node.name} carries the service roles of its deployment and is removed with it`);
  const children = await tx.query(
    `SELECT DISTINCT e.child_id FROM noderole_edges e JOIN noderoles p ON p.id = e.parent_id JOIN noderoles c ON c.id = e.child_id
      WHERE p.node_id = $1 AND c.node_id <> $1 AND e.kind = 'hard'`, [node.id]);
  await tx.query('DELETE FROM nodes WHERE id = $1', [node.id]);
  await emit(tx, { type: 'node.deleted', object_kind: 'node', object_id: node.id, deployment_id: node.deployment_id, node_id: node.id, payload: { name: node.name } });
  // Children on other nodes lost a parent: they may be free to run now.
  for (const c of children.rows) {
    const s = await tx.query(`SELECT state FROM noderoles WHERE id = $1`, [c.child_id]);
    if (s.rows[0]?.state === 'BLOCKED') await changeState(tx, c.child_id, 'ready', 'ripple');
  }
}

const normalMac = (m: string) => m.toLowerCase().replace(/-/g, ':');

/** Replace the node's MACs; a MAC that already identifies another node is a conflict naming it. */
export async function setMacs(tx: Tx, node: NodeRow, macs: string[]): Promise<void> {
  const wanted = [...new Set(macs.map(normalMac))];
  const taken = await tx.query(
    `SELECT m.mac::text AS mac, n.name FROM node_macs m JOIN nodes n ON n.id = m.node_id WHERE m.mac = ANY($1::macaddr[]) AND m.node_id <> $2`, [wanted, node.id]);
  if (taken.rowCount) throw conflict(`MAC ${taken.rows[0].mac} already identifies node ${taken.rows[0].name}`);
  await tx.query('DELETE FROM node_macs WHERE node_id = $1', [node.id]);
  await tx.query('INSERT INTO node_macs (mac, node_id) SELECT unnest($1::macaddr[]), $2', [wanted, node.id]);
}

async function checkBootenv(tx: Tx, name: string): Promise<void> {
  const r = await tx.query('SELECT 1 FROM bootenvs WHERE name = $1', [name]);
  if (!r.rowCount) throw new FulcrumError('not-found', `bootenv "${name}" does not exist; see GET /api/v1/bootenvs`, 'bootenv');
}

/** Replace the node's profiles (in order: later ones win); an unknown profile is a 404 naming it. */
export async function setProfiles(tx: Tx, node: NodeRow, names: string[]): Promise<void> {
  const found = await tx.query('SELECT id, name FROM profiles WHERE name = ANY($1)', [names]);
  const ids = new Map(found.rows.map((r) => [r.name as string, r.id as number]));
  names.forEach((n, i) => { if (!ids.has(n)) throw new FulcrumError('not-found', `profile "${n}" does not exist`, `profiles[${i}]`); });
  await tx.query('DELETE FROM node_profiles WHERE node_id = $1', [node.id]);
  await tx.query('INSERT INTO node_profiles (node_id, profile_id, position) SELECT $1, unnest($2::bigint[]), generate_subscripts($2::bigint[], 1)',
    [node.id, names.map((n) => ids.get(n))]);
}
