// Allocation of addresses to nodes (DESIGN.md §4). Order: an explicit hint; else the same host part
// as the node's admin address, when that is free in a range of the same name ("same group"); else
// the first free address. One advisory lock per range serialises allocators on every replica, and
// the unique index on (network, address) is the backstop. IPv6 addresses of networks with a
// v6prefix are computed (prefix + MD5 of the FQDN) and stored beside the IPv4 allocation.
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { conflict, invalid, notFound } from '../model/errors.js';
import { findNode, type Key, type NodeRow } from '../model/lookup.js';
import { formatIp, hostPart, networkOf, parseAddress, type Address } from './address.js';
import { findNetwork, rangesOf, type NetworkRow, type RangeRow } from './networks.js';
import { networkPrefix6, nodeAddress6 } from './ipv6.js';
import { rangeSize, rangeText } from './ranges.js';
import { syncReservations } from './dhcp-sync.js';
import { refreshPlans } from './plan.js';

/** Advisory lock namespace of range allocation (pg_advisory_xact_lock(ns, range id)). */
const RANGE_LOCK = 7780_0004;

export interface AllocateRequest { node: Key; network: Key; range?: string; address?: string }
export interface AllocationRow { id: number; node_id: number; network_id: number; range_id: number | null; address: string }

function pickRange(network: NetworkRow, ranges: RangeRow[], name?: string): RangeRow {
  if (name !== undefined) {
    const r = ranges.find((x) => x.name === name);
    if (!r) throw notFound(`range of network ${network.name}`, name, 'range');
    if (!r.allow_bound_leases) throw invalid('range', `range ${network.name}.${name} allows no bound leases (it is for anonymous DHCP); allocate from another range`);
    return r;
  }
  const r = ranges.find((x) => x.name === 'host' && x.allow_bound_leases) ?? ranges.find((x) => x.allow_bound_leases);
  if (!r) throw conflict(`network ${network.name} has no range that allows bound leases; add one (e.g. a range named "host")`);
  return r;
}

const ipOf = (a: Address) => formatIp(a.family, a.value);

/** Allocate (or return the existing) address of `node` on `network`. Call inside a transaction. */
export async function allocate(tx: Tx, req: AllocateRequest): Promise<AllocationRow[]> {
  const node = await findNode(tx, req.node, 'node');
  const network = await findNetwork(tx, req.network);
  const ranges = await rangesOf(tx, network.id);
  const range = pickRange(network, ranges, req.range);
  const first = parseAddress(range.first)!;
  const last = parseAddress(range.last)!;
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [RANGE_LOCK, range.id]);

  const mine = (await tx.query<AllocationRow>(
    `SELECT id, node_id, network_id, range_id, host(address) AS address FROM network_allocations
      WHERE node_id = $1 AND network_id = $2 AND family(address) = $3`, [node.id, network.id, first.family])).rows[0];
  const hint = req.address !== undefined ? parseAddress(req.address) : undefined;
  if (hint === null || (hint && String(req.address).includes('/'))) throw invalid('address', `address ${JSON.stringify(req.address)} is not a plain IP address`);
  if (mine) {
    if (hint && ipOf(hint) !== mine.address) throw conflict(`node ${node.name} already has ${mine.address} on network ${network.name}; free it before asking for ${ipOf(hint)}`);
    await ensureV6(tx, network, node);
    return allocationsOf(tx, node.id, network.id);
  }

  const taken = new Set((await tx.query(
    `SELECT host(address) AS a FROM network_allocations WHERE network_id = $1 AND family(address) = $2`, [network.id, first.family])).rows.map((r) => r.a as string));
  const inRange = (v: bigint) => v >= first.value && v <= last.value;
  let chosen: bigint | null = null;
  if (hint) {
    if (hint.family !== first.family || !inRange(hint.value)) throw invalid('address', `${ipOf(hint)} is not inside range ${network.name}.${range.name} (${rangeText({ first, last })})`);
    if (taken.has(ipOf(hint))) {
      const holder = (await tx.query(`SELECT n.name FROM network_allocations a JOIN nodes n ON n.id = a.node_id WHERE a.network_id = $1 AND host(a.address) = $2`, [network.id, ipOf(hint)])).rows[0];
      throw conflict(`${ipOf(hint)} on network ${network.name} is already allocated to node ${holder?.name ?? '?'}`);
    }
    chosen = hint.value;
  }
  if (chosen === null && network.category !== 'admin') {
    // Same host part as the node's admin address, from a range of the same name.
    const admin = (await tx.query(
      `SELECT host(a.address) || '/' || masklen(a.address) AS address FROM network_allocations a JOIN networks n ON n.id = a.network_id
         JOIN network_ranges r ON r.id = a.range_id
        WHERE a.node_id = $1 AND n.category = 'admin' AND r.name = $2 AND family(a.address) = $3 ORDER BY a.id LIMIT 1`,
      [node.id, range.name, first.family])).rows[0];
    if (admin) {
      const v = networkOf(first) | hostPart(parseAddress(admin.address)!);
      if (inRange(v) && !taken.has(formatIp(first.family, v))) chosen = v;
    }
  }
  if (chosen === null) {
    // At most taken.size addresses are in use, so the first free one is within taken.size + 1 steps.
    const steps = BigInt(taken.size) + 1n;
    for (let v = first.value, i = 0n; v <= last.value && i < steps; v++, i++) {
      if (!taken.has(formatIp(first.family, v))) { chosen = v; break; }
    }
  }
  if (chosen === null) {
    const used = [...taken].filter((a) => inRange(parseAddress(a)!.value)).length;
    throw conflict(`range ${network.name}.${range.name} is out of addresses (${rangeText({ first, last })}, ${used} of ${rangeSize({ first, last })} used); widen it or free an allocation`);
  }
  const address = `${formatIp(first.family, chosen)}/${first.prefix}`;
  const row = (await tx.query<AllocationRow>(
    `INSERT INTO network_allocations (node_id, network_id, range_id, address) VALUES ($1, $2, $3, $4)
     RETURNING id, node_id, network_id, range_id, host(address) AS address`, [node.id, network.id, range.id, address])).rows[0];
  await emit(tx, { type: 'network.allocation.created', object_kind: 'network_allocation', object_id: row.id, node_id: node.id, deployment_id: node.deployment_id,
    payload: { node: node.name, network: network.name, category: network.category, range: range.name, address } });
  await ensureV6(tx, network, node);
  if (network.category === 'admin') await syncReservations(tx, node.id);
  await refreshPlans(tx, node.id);
  return allocationsOf(tx, node.id, network.id);
}

/** The computed IPv6 allocation of a network with a v6prefix. */
async function ensureV6(tx: Tx, network: NetworkRow, node: NodeRow): Promise<void> {
  const prefix = await networkPrefix6(tx, network);
  if (!prefix) return;
  const address = nodeAddress6(prefix, node.name);
  const r = await tx.query(
    `INSERT INTO network_allocations (node_id, network_id, range_id, address) VALUES ($1, $2, NULL, $3)
     ON CONFLICT (node_id, network_id, family(address)) DO NOTHING RETURNING id`, [node.id, network.id, address]);
  if (r.rowCount) {
    await emit(tx, { type: 'network.allocation.created', object_kind: 'network_allocation', object_id: r.rows[0].id, node_id: node.id, deployment_id: node.deployment_id,
      payload: { node: node.name, network: network.name, category: network.category, range: null, address } });
  }
}

export async function allocationsOf(tx: Tx, nodeId: number, networkId: number): Promise<AllocationRow[]> {
  return (await tx.query<AllocationRow>(
    `SELECT id, node_id, network_id, range_id, host(address) AS address FROM network_allocations WHERE node_id = $1 AND network_id = $2 ORDER BY family(address), id`,
    [nodeId, networkId])).rows;
}

/** Free one allocation; the node's DHCP reservations and plans follow. */
export async function release(tx: Tx, id: number): Promise<void> {
  const r = (await tx.query(
    `DELETE FROM network_allocations a USING networks n, nodes x WHERE a.id = $1 AND n.id = a.network_id AND x.id = a.node_id
     RETURNING a.node_id, x.name AS node, x.deployment_id, n.name AS network, n.category, host(a.address) AS address`, [id])).rows[0];
  if (!r) throw notFound('allocation', id);
  await emit(tx, { type: 'network.allocation.deleted', object_kind: 'network_allocation', object_id: id, node_id: r.node_id, deployment_id: r.deployment_id,
    payload: { node: r.node, network: r.network, category: r.category, address: r.address } });
  if (r.category === 'admin') await syncReservations(tx, r.node_id);
  await refreshPlans(tx, r.node_id);
}
