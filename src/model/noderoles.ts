// State changes of noderoles: load the slice of the graph a change touches (locked, so
// replicas changing overlapping slices serialise), apply the pure ripple rules, write the
// result and one `noderole.state` event per change (hooks fire for ripples too).
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import {
  addEdge, applyChange, emptyGraph, readyOrBlocked, TransitionError,
  type BlockedBy, type Cause, type Change, type Graph, type State,
} from './lifecycle.js';
import { FulcrumError, notFound } from './errors.js';

interface Row { id: number; state: State; blocked_by: BlockedBy | null; node_id: number; deployment_id: number; role: string; node: string }

/** Ids of hard descendants ripples from `ids` may reach (never passing through PROPOSED/TRANSITION). */
async function rippleReach(tx: Tx, ids: number[], onlyChildren: boolean): Promise<number[]> {
  if (onlyChildren) {
    const r = await tx.query(`SELECT DISTINCT child_id FROM noderole_edges WHERE parent_id = ANY($1) AND kind = 'hard'`, [ids]);
    return r.rows.map((x) => x.child_id);
  }
  const r = await tx.query(
    `WITH RECURSIVE d(id) AS (
       SELECT e.child_id FROM noderole_edges e WHERE e.parent_id = ANY($1) AND e.kind = 'hard'
       UNION
       SELECT e.child_id FROM noderole_edges e JOIN d ON e.parent_id = d.id
        JOIN noderoles n ON n.id = d.id AND n.state NOT IN ('PROPOSED', 'TRANSITION')
        WHERE e.kind = 'hard')
     SELECT id FROM d`, [ids]);
  return r.rows.map((x) => x.id);
}

/** Load and lock the noderoles `ids` plus every hard parent of them, as a Graph. */
export async function loadGraph(tx: Tx, ids: number[]): Promise<{ graph: Graph; rows: Map<number, Row> }> {
  const edges = await tx.query(
    `SELECT parent_id, child_id FROM noderole_edges WHERE child_id = ANY($1) AND kind = 'hard'`, [ids]);
  const all = [...new Set([...ids, ...edges.rows.map((e) => e.parent_id as number)])];
  const r = await tx.query<Row>(
    `SELECT nr.id, nr.state, nr.blocked_by, nr.node_id, nr.deployment_id, ro.name AS role, n.name AS node
       FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id JOIN nodes n ON n.id = nr.node_id
      WHERE nr.id = ANY($1) ORDER BY nr.id FOR UPDATE OF nr`, [all]);
  const graph = emptyGraph();
  const rows = new Map<number, Row>();
  for (const row of r.rows) {
    rows.set(row.id, row);
    graph.noderoles.set(row.id, { id: row.id, state: row.state, blocked_by: row.blocked_by });
  }
  for (const e of edges.rows) if (rows.has(e.parent_id) && rows.has(e.child_id)) addEdge(graph, e.parent_id, e.child_id);
  return { graph, rows };
}

export interface StateOptions {
  /** When `to` is 'ready': TODO if every parent is ACTIVE, else BLOCKED. */
  blocked_by?: BlockedBy | null;
  /** Extra fields for the event of the requested change (e.g. the job that caused it). */
  detail?: Record<string, unknown>;
}

export interface StateRequest { id: number; to: State | 'ready' | 'done'; cause: Cause; opts?: StateOptions }

/**
 * Change one noderole's state and ripple. `to: 'ready'` means "wants to run": TODO when every
 * hard parent is ACTIVE, else BLOCKED with the parent named. `to: 'done'` means "its run
 * succeeded": ACTIVE when every parent is still ACTIVE, else BLOCKED (it used stale inputs).
 */
export function changeState(tx: Tx, id: number, to: State | 'ready' | 'done', cause: Cause, opts: StateOptions = {}): Promise<Change[]> {
  return changeStates(tx, [{ id, to, cause, opts }]);
}

/**
 * Several state changes applied in order over one loaded graph, written with one UPDATE and one
 * batch of events (a deployment commit of thousands of noderoles is a few round trips, not
 * thousands).
 */
export async function changeStates(tx: Tx, requests: StateRequest[]): Promise<Change[]> {
  if (requests.length === 0) return [];
  const ids = requests.map((r) => r.id);
  const onlyChildren = requests.every((r) => r.to === 'ACTIVE' || r.to === 'TRANSITION');
  const reach = requests.every((r) => r.to === 'TRANSITION') ? [] : await rippleReach(tx, ids, onlyChildren);
  const { graph, rows } = await loadGraph(tx, [...new Set([...ids, ...reach])]);
  const changes: Change[] = [];
  const detail: Record<number, Record<string, unknown>> = {};
  for (const { id, to, cause, opts = {} } of requests) {
    if (!rows.has(id)) throw notFound('noderole', id);
    let final: State = to === 'ready' ? 'TODO' : to === 'done' ? 'ACTIVE' : to;
    let blockedBy = opts.blocked_by ?? null;
    if (to === 'ready' || to === 'done') {
      const r = readyOrBlocked(graph, id);
      if (r.to === 'BLOCKED') { final = 'BLOCKED'; blockedBy = r.blocked_by; }
    }
    try {
      changes.push(...applyChange(graph, id, final, cause, blockedBy));
    } catch (err) {
      if (err instanceof TransitionError) throw new FulcrumError('conflict', err.message);
      throw err;
    }
    if (opts.detail) detail[id] = opts.detail;
  }
  await writeChanges(tx, changes, rows, detail);
  return changes;
}

async function writeChanges(tx: Tx, changes: Change[], rows: Map<number, Row>, detail: Record<number, Record<string, unknown>>): Promise<void> {
  if (changes.length === 0) return;
  // A noderole may change more than once in a batch: the row gets its last state, the stream every change.
  const last = new Map(changes.map((c) => [c.id, c]));
  const final = [...last.values()];
  await tx.query(
    `UPDATE noderoles n SET state = c.state, blocked_by = c.blocked_by, version = n.version + 1, updated_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS c(id, state, blocked_by) WHERE n.id = c.id`,
    [final.map((c) => c.id), final.map((c) => c.to), final.map((c) => (c.blocked_by ? JSON.stringify(c.blocked_by) : null))]);
  const seen = new Set<number>();
  await emit(tx, changes.map((c) => {
    const row = rows.get(c.id)!;
    const extra = seen.has(c.id) ? {} : detail[c.id];
    seen.add(c.id);
    return {
      type: 'noderole.state', object_kind: 'noderole', object_id: c.id,
      deployment_id: row.deployment_id, node_id: row.node_id,
      payload: { from: c.from, to: c.to, cause: c.cause, blocked_by: c.blocked_by, role: row.role, node: row.node, ...extra },
    };
  }));
}
