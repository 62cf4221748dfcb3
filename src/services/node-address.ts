// Where a node is reached (cluster peers, the ansible inventory): the node hint `address` (set by
// the operator, e.g. for existing servers), else its allocation on an `admin` network (IPv4
// first; docs/networks.md), else the address reserved for it or one of its MACs, else its newest
// bound, unexpired DHCP lease. null when none is known.
import type { Sql } from '../store/db.js';

export async function nodeAddresses(sql: Sql, nodeIds: number[]): Promise<Map<number, string | null>> {
  const out = new Map<number, string | null>(nodeIds.map((id) => [id, null]));
  if (nodeIds.length === 0) return out;
  const rows = (await sql.query(
    `SELECT n.id, n.hints->>'address' AS hinted,
            (SELECT host(a.address) FROM network_allocations a JOIN networks w ON w.id = a.network_id
              WHERE a.node_id = n.id AND w.category = 'admin' ORDER BY family(a.address), a.id LIMIT 1) AS allocated,
            (SELECT host(r.address) FROM reservations r WHERE r.node_id = n.id OR r.mac IN (SELECT mac FROM node_macs WHERE node_id = n.id)
              ORDER BY r.node_id IS NULL, r.id LIMIT 1) AS reserved,
            (SELECT host(l.address) FROM leases l WHERE l.mac IN (SELECT mac FROM node_macs WHERE node_id = n.id)
                AND l.state = 'bound' AND l.expires_at > now() ORDER BY l.updated_at DESC LIMIT 1) AS leased
       FROM nodes n WHERE n.id = ANY($1)`, [nodeIds])).rows;
  for (const r of rows) out.set(r.id, r.hinted || r.allocated || r.reserved || r.leased || null);
  return out;
}
