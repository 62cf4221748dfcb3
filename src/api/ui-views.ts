// Reads the web UI needs that no collection gives in one request (docs/ui.md): a node's addresses
// from every source, and a deployment's noderole graph (noderoles with their edges).
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/db.js';
import { keyClause } from '../model/lookup.js';
import { notFound } from '../model/errors.js';

async function idByKey(store: Store, table: string, what: string, key: string): Promise<number> {
  const { where, value } = keyClause(key, true);
  const r = await store.query(`SELECT id FROM ${table} WHERE ${where}`, [value]);
  if (!r.rowCount) throw notFound(what, key);
  return r.rows[0].id;
}

/** At most this many noderoles in one graph answer; `truncated` says when there were more. */
export const GRAPH_LIMIT = 2000;

export function registerUiViews(app: FastifyInstance, store: Store): void {
  app.get('/api/v1/nodes/:key/addresses', { config: { capability: 'nodes:read' } }, async (req) => {
    const id = await idByKey(store, 'nodes', 'node', (req.params as { key: string }).key);
    const r = await store.query(
      `SELECT 'lease' AS source, host(l.address) AS address, l.mac::text AS mac, s.name AS subnet, l.state, l.expires_at
         FROM leases l JOIN node_macs m ON m.mac = l.mac JOIN subnets s ON s.id = l.subnet_id WHERE m.node_id = $1
       UNION ALL
       SELECT 'reservation', host(r.address), r.mac::text, s.name, 'reserved', NULL FROM reservations r JOIN subnets s ON s.id = r.subnet_id WHERE r.node_id = $1
       UNION ALL
       SELECT 'allocation', a.address::text, NULL, n.name, 'allocated', NULL FROM network_allocations a JOIN networks n ON n.id = a.network_id WHERE a.node_id = $1
       ORDER BY 1, 2`, [id]);
    return r.rows;
  });

  app.get('/api/v1/deployments/:key/graph', { config: { capability: 'noderoles:read' } }, async (req) => {
    const id = await idByKey(store, 'deployments', 'deployment', (req.params as { key: string }).key);
    const nrs = await store.query(
      `SELECT nr.id, n.name AS node, nr.node_id, r.name AS role, nr.state, nr.blocked_by, nr.cohort
         FROM noderoles nr JOIN nodes n ON n.id = nr.node_id JOIN roles r ON r.id = nr.role_id
        WHERE nr.deployment_id = $1 ORDER BY nr.cohort, nr.id LIMIT ${GRAPH_LIMIT + 1}`, [id]);
    const rows = nrs.rows.slice(0, GRAPH_LIMIT);
    const ids = rows.map((x) => x.id);
    // Edges touching these noderoles; a parent in an ancestor deployment is listed as external.
    const edges = await store.query(
      `SELECT e.parent_id AS parent, e.child_id AS child, e.kind FROM noderole_edges e WHERE e.child_id = ANY($1::bigint[]) OR e.parent_id = ANY($1::bigint[])`, [ids]);
    const known = new Set(ids);
    const outside = [...new Set(edges.rows.flatMap((e) => [e.parent, e.child]).filter((x) => !known.has(Number(x))))].map(Number);
    const external = outside.length ? (await store.query(
      `SELECT nr.id, n.name AS node, nr.node_id, r.name AS role, nr.state, nr.blocked_by, nr.cohort, d.name AS deployment
         FROM noderoles nr JOIN nodes n ON n.id = nr.node_id JOIN roles r ON r.id = nr.role_id JOIN deployments d ON d.id = nr.deployment_id
        WHERE nr.id = ANY($1::bigint[])`, [outside])).rows : [];
    return { noderoles: rows, external, edges: edges.rows.map((e) => ({ parent: Number(e.parent), child: Number(e.child), kind: e.kind })), truncated: nrs.rows.length > GRAPH_LIMIT };
  });
}
