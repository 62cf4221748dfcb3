// Deployments: a tree under the one system deployment; proposed (being edited, nothing runs)
// or committed (the annealer works on it).
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { invalid } from './errors.js';
import { commitNodeRoles } from './binding.js';
import { changeState } from './noderoles.js';
import { findDeployment, type DeploymentRow, type Key } from './lookup.js';
import { sameValue } from './data.js';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

export async function ensureSystemDeployment(tx: Tx): Promise<DeploymentRow> {
  const r = await tx.query<DeploymentRow>('SELECT * FROM deployments WHERE system');
  if (r.rowCount) return r.rows[0];
  const ins = await tx.query<DeploymentRow>(
    `INSERT INTO deployments (name, description, system, state) VALUES ('system', 'The root deployment', true, 'committed')
     ON CONFLICT DO NOTHING RETURNING *`);
  if (!ins.rowCount) return (await tx.query<DeploymentRow>('SELECT * FROM deployments WHERE system')).rows[0];
  await emit(tx, { type: 'deployment.created', object_kind: 'deployment', object_id: ins.rows[0].id, deployment_id: ins.rows[0].id, payload: { name: 'system' } });
  return ins.rows[0];
}

export async function createDeployment(tx: Tx, body: { name: string; description?: string; parent?: Key }): Promise<DeploymentRow> {
  if (!NAME.test(body.name ?? '')) throw invalid('name', `deployment name ${JSON.stringify(body.name)} must match ${NAME}`);
  const parent = body.parent !== undefined ? await findDeployment(tx, body.parent, 'parent') : await ensureSystemDeployment(tx);
  const r = await tx.query<DeploymentRow>(
    `INSERT INTO deployments (name, description, parent_id) VALUES ($1, $2, $3) RETURNING *`, [body.name, body.description ?? '', parent.id]);
  const d = r.rows[0];
  await emit(tx, { type: 'deployment.created', object_kind: 'deployment', object_id: d.id, deployment_id: d.id, payload: { name: d.name, parent: parent.name } });
  return d;
}

/**
 * Commit: PROPOSED noderoles go to TODO or BLOCKED, proposed data becomes committed data, and
 * every ACTIVE noderole whose committed data (its own or its deployment role's) changed is
 * poked so the change converges.
 */
export async function commitDeployment(tx: Tx, key: Key): Promise<DeploymentRow> {
  const d = await findDeployment(tx, key);
  await tx.query('SELECT id FROM deployments WHERE id = $1 FOR UPDATE', [d.id]);
  const changedRoles = await tx.query(
    `UPDATE deployment_roles SET committed_data = proposed_data, version = version + 1, updated_at = now()
      WHERE deployment_id = $1 AND committed_data IS DISTINCT FROM proposed_data RETURNING role_id`, [d.id]);
  const proposed = await tx.query(`SELECT id FROM noderoles WHERE deployment_id = $1 AND state = 'PROPOSED'`, [d.id]);
  await commitNodeRoles(tx, proposed.rows.map((r) => r.id));
  const edited = await tx.query(
    `UPDATE noderoles SET committed_data = proposed_data
      WHERE deployment_id = $1 AND state <> 'PROPOSED' AND committed_data IS DISTINCT FROM proposed_data RETURNING id`, [d.id]);
  const poke = await tx.query(
    `SELECT id FROM noderoles WHERE deployment_id = $1 AND state = 'ACTIVE' AND (id = ANY($2) OR role_id = ANY($3)) ORDER BY cohort, id`,
    [d.id, edited.rows.map((r) => r.id), changedRoles.rows.map((r) => r.role_id)]);
  for (const nr of poke.rows) await pokeIfActive(tx, nr.id, { reason: 'committed data changed' });
  const r = await tx.query<DeploymentRow>(
    `UPDATE deployments SET state = 'committed', version = version + 1, updated_at = now() WHERE id = $1 RETURNING *`, [d.id]);
  await emit(tx, { type: 'deployment.committed', object_kind: 'deployment', object_id: d.id, deployment_id: d.id, payload: { name: d.name, noderoles: proposed.rowCount } });
  return r.rows[0];
}

export async function proposeDeployment(tx: Tx, key: Key): Promise<DeploymentRow> {
  const d = await findDeployment(tx, key);
  if (d.system) throw invalid('deployment', 'the system deployment is always committed');
  const r = await tx.query<DeploymentRow>(
    `UPDATE deployments SET state = 'proposed', version = version + 1, updated_at = now() WHERE id = $1 RETURNING *`, [d.id]);
  await emit(tx, { type: 'deployment.proposed', object_kind: 'deployment', object_id: d.id, deployment_id: d.id, payload: { name: d.name } });
  return r.rows[0];
}

/** Send an ACTIVE noderole back to converge (TODO, or BLOCKED if a parent is not ACTIVE). */
export async function pokeIfActive(tx: Tx, id: number, detail: Record<string, unknown>): Promise<boolean> {
  const s = await tx.query(`SELECT state FROM noderoles WHERE id = $1`, [id]);
  if (s.rows[0]?.state !== 'ACTIVE') return false;
  await changeState(tx, id, 'ready', 'poke', { detail });
  return true;
}

/** Store a deployment role's proposed data (committed on the next commit). */
export async function setDeploymentRoleData(tx: Tx, id: number, data: Record<string, unknown>): Promise<void> {
  const r = await tx.query('SELECT proposed_data FROM deployment_roles WHERE id = $1 FOR UPDATE', [id]);
  if (sameValue(r.rows[0]?.proposed_data, data)) return;
  await tx.query('UPDATE deployment_roles SET proposed_data = $2, version = version + 1, updated_at = now() WHERE id = $1', [id, data]);
}
