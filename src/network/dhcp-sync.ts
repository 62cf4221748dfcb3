// DHCP kept in sync with admin addresses (issue 7 item 7; docs/networks.md "DHCP sync"): a node's
// IPv4 admin allocation is reserved for every one of its MACs, in the DHCP subnet that contains it.
// If no subnet contains it, one is created from the admin network (its subnet, its anonymous
// ranges as pools, its router). Reservations of the node that no longer match are removed. Node
// deletion removes reservations, leases and allocations by cascade and trigger (migration 004).
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { conflict } from '../model/errors.js';
import { formatIp, networkOf, parseAddress } from './address.js';

async function subnetFor(tx: Tx, address: string, networkId: number): Promise<number> {
  const found = await tx.query(`SELECT id FROM subnets WHERE enabled AND cidr >>= $1::inet ORDER BY masklen(cidr) DESC LIMIT 1`, [address]);
  if (found.rowCount) return found.rows[0].id;
  const n = (await tx.query(`SELECT name FROM networks WHERE id = $1`, [networkId])).rows[0];
  const a = parseAddress(address)!;
  const cidr = `${formatIp(4, networkOf(a))}/${a.prefix}`;
  const pools = (await tx.query(
    `SELECT host(first) AS first, host(last) AS last FROM network_ranges WHERE network_id = $1 AND allow_anon_leases AND family(first) = 4 ORDER BY first`,
    [networkId])).rows;
  const router = (await tx.query(`SELECT host(address) AS a FROM network_routers WHERE network_id = $1`, [networkId])).rows[0]?.a;
  const lease = (await tx.query(`SELECT min(anon_lease_time) AS t FROM network_ranges WHERE network_id = $1 AND allow_anon_leases`, [networkId])).rows[0].t;
  // A name no operator subnet is likely to use; unique per network.
  let name = `network-${n.name}`;
  if ((await tx.query(`SELECT 1 FROM subnets WHERE name = $1`, [name])).rowCount) name = `${name}-${a.prefix}-${formatIp(4, networkOf(a))}`;
  const r = await tx.query(
    `INSERT INTO subnets (name, cidr, pools, routers, lease_time_s) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
    [name, cidr, JSON.stringify(pools), router ? [router] : [], Math.max(60, lease ?? 3600)]);
  await emit(tx, { type: 'subnet.created', object_kind: 'subnet', object_id: r.rows[0].id, payload: { name, from_network: n.name } });
  return r.rows[0].id;
}

/** Make the node's reservations match its IPv4 admin allocations and its MACs. */
export async function syncReservations(tx: Tx, nodeId: number): Promise<void> {
  const node = (await tx.query(`SELECT id, name FROM nodes WHERE id = $1`, [nodeId])).rows[0];
  if (!node) return;
  const macs = (await tx.query(`SELECT mac::text AS mac FROM node_macs WHERE node_id = $1 ORDER BY mac`, [nodeId])).rows.map((r) => r.mac as string);
  const admin = (await tx.query(
    `SELECT host(a.address) || '/' || masklen(a.address) AS address, a.network_id FROM network_allocations a JOIN networks n ON n.id = a.network_id
      WHERE a.node_id = $1 AND n.category = 'admin' AND family(a.address) = 4 ORDER BY a.id LIMIT 1`, [nodeId])).rows[0];
  const wanted: Array<{ mac: string; subnet: number; address: string }> = [];
  if (admin) {
    const subnet = await subnetFor(tx, admin.address, admin.network_id);
    const host = admin.address.split('/')[0];
    const other = (await tx.query(
      `SELECT r.mac::text AS mac, n.name AS node FROM reservations r LEFT JOIN nodes n ON n.id = r.node_id
        WHERE r.subnet_id = $1 AND r.address = $2 AND r.node_id IS DISTINCT FROM $3 AND NOT (r.node_id IS NULL AND r.mac = ANY($4::macaddr[])) LIMIT 1`,
      [subnet, host, nodeId, macs])).rows[0];
    if (other) throw conflict(`${host} is already reserved in DHCP for MAC ${other.mac} (${other.node ? `node ${other.node}` : 'a reservation made by hand'}); remove that reservation or allocate another address to ${node.name}`);
    for (const mac of macs) wanted.push({ mac, subnet, address: host });
  }
  const removed = await tx.query(
    `DELETE FROM reservations r WHERE r.node_id = $1 AND NOT EXISTS (
       SELECT 1 FROM unnest($2::macaddr[], $3::bigint[], $4::inet[]) AS w(mac, subnet, address)
        WHERE w.mac = r.mac AND w.subnet = r.subnet_id AND w.address = r.address) RETURNING r.mac::text AS mac`,
    [nodeId, wanted.map((w) => w.mac), wanted.map((w) => w.subnet), wanted.map((w) => w.address)]);
  // A MAC reserved by hand (no node) is taken over; one reserved for another node is left alone.
  const added = await tx.query(
    `INSERT INTO reservations (mac, subnet_id, address, hostname, node_id)
     SELECT w.mac, w.subnet, w.address, $5, $1 FROM unnest($2::macaddr[], $3::bigint[], $4::inet[]) AS w(mac, subnet, address)
     ON CONFLICT (mac) DO UPDATE SET subnet_id = EXCLUDED.subnet_id, address = EXCLUDED.address, hostname = EXCLUDED.hostname, node_id = EXCLUDED.node_id,
       version = reservations.version + 1, updated_at = now()
     WHERE (reservations.node_id IS NULL OR reservations.node_id = $1)
       AND (reservations.subnet_id, reservations.address, reservations.hostname, reservations.node_id) IS DISTINCT FROM (EXCLUDED.subnet_id, EXCLUDED.address, EXCLUDED.hostname, EXCLUDED.node_id)
     RETURNING mac::text AS mac`,
    [nodeId, wanted.map((w) => w.mac), wanted.map((w) => w.subnet), wanted.map((w) => w.address), node.name]);
  if (removed.rowCount || added.rowCount) {
    await emit(tx, { type: 'node.reservations', object_kind: 'node', object_id: nodeId, node_id: nodeId,
      payload: { name: node.name, address: wanted[0]?.address ?? null, set: added.rows.map((r) => r.mac), removed: removed.rows.map((r) => r.mac) } });
  }
}
