// Networks, ranges and routers in the store (DESIGN.md §4, docs/networks.md). Every write is
// checked whole before anything is stored: the network's conduit (and its overlap with every other
// network's), its IPv6 prefix, each range (and overlaps: never inside one network, across networks
// only when one of them is not configured by Fulcrum), the router inside the network's subnet.
// Creating a network creates its `network-<name>` role (script jig) and the attrib its plan uses.
import fs from 'node:fs';
import path from 'node:path';
import type { Sql, Tx } from '../store/db.js';
import { projectRoot } from '../paths.js';
import { emit } from '../events/outbox.js';
import { conflict, invalid, notFound } from '../model/errors.js';
import { keyClause, type Key } from '../model/lookup.js';
import { checkRoleGraph, upsertAttrib, upsertRole } from '../model/roles.js';
import { contains, formatAddress, parseAddress } from './address.js';
import { checkConduitOverlap, checkNetworkConduit, normalizeConduit } from './conduits.js';
import { checkV6Prefix } from './ipv6.js';
import { syncReservations } from './dhcp-sync.js';
import { refreshPlans } from './plan.js';
import { checkRange, rangesOverlap, rangeText, type CheckedRange, type RangeInput } from './ranges.js';

export interface RouterInput { address: string; pref?: number }
export interface NetworkInput {
  name: string; description?: string; category: string; conduit: string;
  vlan?: number; use_vlan?: boolean; use_bridge?: boolean; team_mode?: number; use_team?: boolean;
  configure?: boolean; v6prefix?: string | null; ranges?: RangeInput[]; router?: RouterInput | null; content_pack?: string | null;
}
export interface NetworkRow {
  id: number; uuid: string; name: string; description: string; category: string; conduit: string; vlan: number; use_vlan: boolean;
  use_bridge: boolean; team_mode: number; use_team: boolean; configure: boolean; v6prefix: string | null; content_pack: string | null; version: number;
}
export interface RangeRow { id: number; network_id: number; name: string; first: string; last: string; allow_bound_leases: boolean; allow_anon_leases: boolean; bound_lease_time: number; anon_lease_time: number }

const NAME = /^[a-z0-9][a-z0-9-]*$/;
export const roleName = (network: string) => `network-${network}`;
export const planAttrib = (network: string) => `network-${network}-plan`;
export const planMap = (network: string) => `network/${network}/plan`;
const ROLE_SCRIPT = path.join(projectRoot, 'src', 'network', 'network-role.sh');

export async function findNetwork(sql: Sql, key: Key, field = 'network'): Promise<NetworkRow> {
  const { where, value } = keyClause(key);
  const r = await sql.query<NetworkRow>(`SELECT * FROM networks WHERE ${where}`, [value]);
  if (!r.rowCount) throw notFound('network', key, field);
  return r.rows[0];
}

const checked = (row: RangeRow): CheckedRange & { id: number; network_id: number } => ({
  ...row, id: row.id, network_id: row.network_id, first: parseAddress(row.first)!, last: parseAddress(row.last)!,
});

/** Overlap rules for one range against every stored range (except `selfId`). */
async function checkOverlaps(tx: Tx, network: { id: number | null; name: string; configure: boolean }, r: CheckedRange, field: string, selfId: number | null): Promise<void> {
  const others = (await tx.query(
    `SELECT r.id, r.network_id, r.name, host(r.first) || '/' || masklen(r.first) AS first, host(r.last) || '/' || masklen(r.last) AS last,
            n.name AS network, n.configure FROM network_ranges r JOIN networks n ON n.id = r.network_id WHERE r.id IS DISTINCT FROM $1`, [selfId])).rows;
  for (const o of others) {
    const oc = { first: parseAddress(o.first)!, last: parseAddress(o.last)! };
    if (!rangesOverlap(r, oc)) continue;
    if (o.network_id === network.id) throw invalid(field, `range ${network.name}.${r.name} (${rangeText(r)}) overlaps range ${o.network}.${o.name} (${rangeText(oc)}) of the same network; ranges of one network never overlap`);
    if (network.configure && o.configure) {
      throw invalid(field, `range ${network.name}.${r.name} (${rangeText(r)}) overlaps range ${o.network}.${o.name} (${rangeText(oc)}); ranges of different networks may overlap only when one of the networks has configure: false`);
    }
  }
}

function checkNetworkFields(b: NetworkInput): void {
  if (!NAME.test(b.name ?? '')) throw invalid('name', `network name ${JSON.stringify(b.name)} must match ${NAME}`);
  if (!NAME.test(b.category ?? '')) throw invalid('category', `network ${b.name}: category ${JSON.stringify(b.category)} must match ${NAME} (admin, bmc, storage, public ...)`);
  if (b.team_mode !== undefined && !(Number.isInteger(b.team_mode) && b.team_mode >= 0 && b.team_mode <= 6)) throw invalid('team_mode', `network ${b.name}: team_mode ${b.team_mode} must be a Linux bonding mode 0-6`);
  if (b.vlan !== undefined && !(Number.isInteger(b.vlan) && b.vlan >= 0 && b.vlan <= 4094)) throw invalid('vlan', `network ${b.name}: vlan ${b.vlan} is outside 1-4094`);
  checkNetworkConduit({ name: b.name, conduit: b.conduit, use_team: b.use_team ?? false, use_vlan: b.use_vlan ?? false, vlan: b.vlan ?? 0 });
}

/** Create (id null) or replace a network's settings; `ranges` and `router`, when given, replace the stored ones. */
/** Serialises network and range writes (overlap and conduit checks read every other network). */
const NETWORK_WRITE_LOCK = 7780_0005;
export const lockNetworkWrites = (tx: Tx) => tx.query('SELECT pg_advisory_xact_lock($1)', [NETWORK_WRITE_LOCK]);

export async function writeNetwork(tx: Tx, id: number | null, b: NetworkInput): Promise<NetworkRow> {
  checkNetworkFields(b);
  await lockNetworkWrites(tx);
  const conduit = normalizeConduit(b.conduit);
  const v6prefix = checkV6Prefix(b.v6prefix);
  const others = (await tx.query(`SELECT name, conduit FROM networks WHERE id IS DISTINCT FROM $1`, [id])).rows;
  for (const o of others) checkConduitOverlap({ name: b.name, conduit }, o);
  const ranges = (b.ranges ?? []).map((r, i) => checkRange(r, `ranges[${i}].`));
  ranges.forEach((r, i) => ranges.slice(0, i).forEach((q) => {
    if (rangesOverlap(r, q)) throw invalid(`ranges[${i}].first`, `range ${b.name}.${r.name} (${rangeText(r)}) overlaps range ${b.name}.${q.name} (${rangeText(q)}) of the same network`);
    if (q.name === r.name) throw invalid(`ranges[${i}].name`, `network ${b.name} has two ranges named ${r.name}`);
  }));
  const values = [b.name, b.description ?? '', b.category, conduit, b.vlan ?? 0, b.use_vlan ?? false, b.use_bridge ?? false,
    b.team_mode ?? 5, b.use_team ?? false, b.configure ?? true, v6prefix, b.content_pack ?? null];
  let row: NetworkRow;
  if (id === null) {
    const dup = await tx.query('SELECT id FROM networks WHERE name = $1', [b.name]);
    if (dup.rowCount) throw conflict(`network ${b.name} already exists (id ${dup.rows[0].id})`);
    row = (await tx.query<NetworkRow>(
      `INSERT INTO networks (name, description, category, conduit, vlan, use_vlan, use_bridge, team_mode, use_team, configure, v6prefix, content_pack)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING *`, values)).rows[0];
    if (row.id > 0xffff) throw invalid('name', `network ids are 16-bit IPv6 subnet ids; id ${row.id} is too large`);
  } else {
    const before = (await tx.query<NetworkRow>('SELECT * FROM networks WHERE id = $1 FOR UPDATE', [id])).rows[0];
    if (before.name !== b.name) throw invalid('name', `network ${before.name}: the name cannot change`);
    row = (await tx.query<NetworkRow>(
      `UPDATE networks SET description=$2, category=$3, conduit=$4, vlan=$5, use_vlan=$6, use_bridge=$7, team_mode=$8, use_team=$9,
         configure=$10, v6prefix=$11, content_pack=$12, version = version + 1, updated_at = now() WHERE name = $1 RETURNING *`, values)).rows[0];
  }
  if (b.ranges !== undefined) await replaceRanges(tx, row, ranges);
  else for (const r of await rangesOf(tx, row.id)) await checkOverlaps(tx, row, checked(r), 'configure', r.id);
  if (b.router !== undefined) await setRouter(tx, row, b.router);
  else {
    const router = (await tx.query('SELECT host(address) AS address, pref FROM network_routers WHERE network_id = $1', [row.id])).rows[0];
    if (router) await setRouter(tx, row, router);
  }
  await ensureNetworkRole(tx, row);
  if (id !== null) await refreshNetworkPlans(tx, row.id);
  await emit(tx, { type: id === null ? 'network.created' : 'network.updated', object_kind: 'network', object_id: row.id, payload: { name: row.name, category: row.category } });
  return row;
}

export async function rangesOf(tx: Tx, networkId: number): Promise<RangeRow[]> {
  return (await tx.query<RangeRow>(
    `SELECT id, network_id, name, host(first) || '/' || masklen(first) AS first, host(last) || '/' || masklen(last) AS last,
            allow_bound_leases, allow_anon_leases, bound_lease_time, anon_lease_time FROM network_ranges WHERE network_id = $1 ORDER BY id`, [networkId])).rows;
}

async function replaceRanges(tx: Tx, network: NetworkRow, ranges: CheckedRange[]): Promise<void> {
  const stored = await rangesOf(tx, network.id);
  const keep = new Set(ranges.map((r) => r.name));
  for (const s of stored.filter((x) => !keep.has(x.name))) await deleteRange(tx, network, s);
  for (const [i, r] of ranges.entries()) {
    const existing = stored.find((s) => s.name === r.name);
    // An unchanged range that now overlaps is refused because of the network's settings (configure).
    const unchanged = existing && existing.first === formatAddress(r.first) && existing.last === formatAddress(r.last);
    await writeRange(tx, network, existing?.id ?? null, r, unchanged ? '' : `ranges[${i}].`, unchanged ? 'configure' : undefined);
  }
}

/** Insert or update one checked range (overlaps checked against the stored ones). */
export async function writeRange(tx: Tx, network: NetworkRow, id: number | null, r: CheckedRange, field = '', overlapField?: string): Promise<number> {
  await lockNetworkWrites(tx);
  await checkOverlaps(tx, network, r, overlapField ?? `${field}first`, id);
  if (id !== null) {
    // Allocations must stay inside the range they came from.
    const outside = (await tx.query(
      `SELECT host(address) AS address FROM network_allocations WHERE range_id = $1 AND NOT (address >= $2::inet AND address <= $3::inet) LIMIT 1`,
      [id, formatAddress(r.first), formatAddress(r.last)])).rows[0];
    if (outside) throw conflict(`range ${network.name}.${r.name}: allocation ${outside.address} would fall outside ${rangeText(r)}; free it first`);
  }
  const values = [network.id, r.name, formatAddress(r.first), formatAddress(r.last), r.allow_bound_leases, r.allow_anon_leases, r.bound_lease_time, r.anon_lease_time];
  const res = id === null
    ? await tx.query(`INSERT INTO network_ranges (network_id, name, first, last, allow_bound_leases, allow_anon_leases, bound_lease_time, anon_lease_time)
        VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id`, values)
    : await tx.query(`UPDATE network_ranges SET name=$2, first=$3, last=$4, allow_bound_leases=$5, allow_anon_leases=$6, bound_lease_time=$7, anon_lease_time=$8,
        version = version + 1, updated_at = now() WHERE id = $9 AND network_id = $1 RETURNING id`, [...values, id]);
  await emit(tx, { type: id === null ? 'network.range.created' : 'network.range.updated', object_kind: 'network_range', object_id: res.rows[0].id, payload: { network: network.name, name: r.name, first: formatAddress(r.first), last: formatAddress(r.last) } });
  return res.rows[0].id;
}

export async function deleteRange(tx: Tx, network: { name: string }, range: { id: number; name: string }): Promise<void> {
  const used = (await tx.query('SELECT count(*)::int AS n FROM network_allocations WHERE range_id = $1', [range.id])).rows[0].n;
  if (used) throw conflict(`range ${network.name}.${range.name} has ${used} allocation(s); free them first`);
  await tx.query('DELETE FROM network_ranges WHERE id = $1', [range.id]);
  await emit(tx, { type: 'network.range.deleted', object_kind: 'network_range', object_id: range.id, payload: { network: network.name, name: range.name } });
}

/** After a change of the network or its router: the plans of the nodes that have addresses on it. */
export async function refreshNetworkPlans(tx: Tx, networkId: number): Promise<void> {
  const nodes = (await tx.query(`SELECT DISTINCT node_id FROM network_allocations WHERE network_id = $1 ORDER BY node_id`, [networkId])).rows;
  for (const r of nodes) await refreshPlans(tx, r.node_id);
}

/** The router must be an address inside one of the network's ranges' subnets. */
export async function setRouter(tx: Tx, network: NetworkRow, router: RouterInput | null, field = 'router'): Promise<void> {
  if (router === null) {
    await tx.query('DELETE FROM network_routers WHERE network_id = $1', [network.id]);
    return;
  }
  const f = (k: string) => (field ? `${field}.${k}` : k);
  const a = parseAddress(router.address ?? '');
  if (!a || String(router.address).includes('/')) throw invalid(f('address'), `network ${network.name}: router address ${JSON.stringify(router.address)} must be a plain IP address`);
  const pref = router.pref ?? 65536;
  if (!Number.isInteger(pref) || pref < 0) throw invalid(f('pref'), `network ${network.name}: router pref ${router.pref} must be a whole number >= 0 (lowest wins)`);
  const ranges = (await rangesOf(tx, network.id)).map(checked);
  const subnet = ranges.find((r) => contains(r.first, a));
  if (!subnet) throw invalid(f('address'), `network ${network.name}: router ${router.address} is not inside the subnet of any of its ranges (${ranges.map((r) => formatAddress(r.first)).join(', ') || 'it has none'})`);
  const withPrefix = `${router.address}/${subnet.first.prefix}`;
  await tx.query(
    `INSERT INTO network_routers (network_id, address, pref) VALUES ($1, $2, $3)
     ON CONFLICT (network_id) DO UPDATE SET address = $2, pref = $3, version = network_routers.version + 1, updated_at = now()
     WHERE (network_routers.address, network_routers.pref) IS DISTINCT FROM ($2::inet, $3::int)`, [network.id, withPrefix, pref]);
}

/** The `network-<name>` role that configures nodes, and the attrib carrying each node's plan. */
export async function ensureNetworkRole(tx: Tx, n: NetworkRow): Promise<void> {
  const script = fs.readFileSync(ROLE_SCRIPT, 'utf8');
  await upsertRole(tx, {
    name: roleName(n.name), description: `addresses, routes and interfaces of network ${n.name} (${n.category})`,
    jig: 'script', jig_config: { scripts: { '10-network.sh': script } }, content_pack: n.content_pack,
    // A binding made outside POST /networks/:key/nodes gets its plan from the event that follows it.
    retry: { count: 3, backoff: 2 }, timeout: 300,
  });
  await upsertAttrib(tx, { name: planAttrib(n.name), role: roleName(n.name), map: planMap(n.name), description: `the node's plan on network ${n.name} (shell assignments)`, schema: { type: 'string' }, content_pack: n.content_pack });
  await checkRoleGraph(tx);
}

export async function deleteNetwork(tx: Tx, n: NetworkRow): Promise<void> {
  const bound = (await tx.query(`SELECT count(*)::int AS n FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE r.name = $1`, [roleName(n.name)])).rows[0].n;
  if (bound) throw conflict(`network ${n.name}: role ${roleName(n.name)} is bound to ${bound} node(s); unbind it first`);
  const holders = (await tx.query(`SELECT DISTINCT node_id FROM network_allocations WHERE network_id = $1`, [n.id])).rows.map((r) => r.node_id as number);
  await tx.query('DELETE FROM networks WHERE id = $1', [n.id]);
  // The allocations went with the network: an admin network's DHCP reservations and every plan follow.
  for (const node of holders) {
    if (n.category === 'admin') await syncReservations(tx, node);
    await refreshPlans(tx, node);
  }
  await tx.query('DELETE FROM attribs WHERE name = $1', [planAttrib(n.name)]);
  await tx.query('DELETE FROM roles WHERE name = $1', [roleName(n.name)]);
  await checkRoleGraph(tx);
  await emit(tx, { type: 'network.deleted', object_kind: 'network', object_id: n.id, payload: { name: n.name } });
}

