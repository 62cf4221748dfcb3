// DHCP leases in PostgreSQL (DESIGN.md §3). Every address ever handed out has one row; its state
// says whether it is held (offered, bound, declined) or free again (released, expired). An ACK is
// committed before the reply leaves, so a lease survives `kill -9`. The unique address index keeps
// two replicas from handing out one address twice.
import type { Sql, Store } from '../store/db.js';
import { emit } from '../events/outbox.js';

export interface Pool { first: string; last: string }
export interface Subnet {
  id: number; name: string; cidr: string; server_address: string | null; proxy: boolean; pools: Pool[];
  routers: string[]; dns: string[]; ntp: string[]; domain: string | null; lease_time_s: number;
  offer_hold_s: number; probe: boolean; probe_timeout_ms: number; options: Record<string, unknown>; enabled: boolean;
}
export interface Client { mac: string; clientId?: string; hostname?: string }
export interface Lease { address: string; state: string; expires_at: Date; mac: string | null }

export const ipToInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
export const intToIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export function inPools(subnet: Subnet, ip: string): boolean {
  const n = ipToInt(ip);
  return subnet.pools.some((p) => n >= ipToInt(p.first) && n <= ipToInt(p.last));
}

export function inCidr(cidr: string, ip: string): boolean {
  const [net, bits] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((ipToInt(net) & mask) >>> 0);
}

export function netmask(cidr: string): string {
  const bits = Number(cidr.split('/')[1]);
  return intToIp(bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
}

const SUBNET_COLUMNS = `id, name, cidr::text, host(server_address) AS server_address, proxy, pools, routers::text[] AS routers,
  dns::text[] AS dns, ntp::text[] AS ntp, domain, lease_time_s, offer_hold_s, probe, probe_timeout_ms, options, enabled`;

const clean = (s: any): Subnet => ({ ...s, routers: s.routers.map(stripMask), dns: s.dns.map(stripMask), ntp: s.ntp.map(stripMask) });
const stripMask = (a: string) => a.replace(/\/32$/, '');

/** The enabled subnet containing `address` (the most specific one). */
export async function subnetContaining(sql: Sql, address: string): Promise<Subnet | null> {
  const r = await sql.query(`SELECT ${SUBNET_COLUMNS} FROM subnets WHERE enabled AND cidr >>= $1::inet ORDER BY masklen(cidr) DESC LIMIT 1`, [address]);
  return r.rowCount ? clean(r.rows[0]) : null;
}

export async function allSubnets(sql: Sql): Promise<Subnet[]> {
  return (await sql.query(`SELECT ${SUBNET_COLUMNS} FROM subnets WHERE enabled ORDER BY id`)).rows.map(clean);
}

export async function reservationFor(sql: Sql, mac: string): Promise<{ address: string; subnet_id: number; hostname: string | null; options: Record<string, unknown> } | null> {
  const r = await sql.query(`SELECT host(address) AS address, subnet_id, hostname, options FROM reservations WHERE mac = $1`, [mac]);
  return r.rowCount ? r.rows[0] : null;
}

/** Is `address` free for `mac`: not held by another client, not reserved for another MAC. */
async function freeFor(sql: Sql, address: string, mac: string): Promise<boolean> {
  const r = await sql.query(
    `SELECT (SELECT count(*) FROM leases WHERE address = $1 AND expires_at > now()
              AND (state = 'declined' OR (state IN ('offered', 'bound') AND mac IS DISTINCT FROM $2::macaddr)))
          + (SELECT count(*) FROM reservations WHERE address = $1 AND mac <> $2::macaddr) AS taken`, [address, mac]);
  return Number(r.rows[0].taken) === 0;
}

/**
 * Pick an address to offer (RFC 2131 §4.3.1): the client's reservation; else its current or
 * last lease; else the address it asked for if valid and free; else the first never-used
 * address of the pools; else the address that has been free the longest. `probe` answers true
 * when something already answers at an address (it is then declined and skipped).
 */
export async function pickAddress(store: Store, subnet: Subnet, client: Client, requested: string | undefined,
  probe?: (ip: string) => Promise<boolean>): Promise<string | null> {
  const reserved = await reservationFor(store, client.mac);
  if (reserved && reserved.subnet_id === subnet.id) return reserved.address;
  const mine = await store.query(
    `SELECT host(address) AS address FROM leases WHERE subnet_id = $1 AND mac = $2 AND state <> 'declined' ORDER BY updated_at DESC LIMIT 1`,
    [subnet.id, client.mac]);
  if (mine.rowCount && inPools(subnet, mine.rows[0].address) && (await freeFor(store, mine.rows[0].address, client.mac))) return mine.rows[0].address;
  if (requested && inCidr(subnet.cidr, requested) && inPools(subnet, requested) && (await freeFor(store, requested, client.mac))) return requested;
  for (let attempt = 0; attempt < 8; attempt++) {
    const candidate = (await neverUsed(store, subnet)) ?? (await longestFree(store, subnet));
    if (!candidate) return null;
    if (!(await freeFor(store, candidate, client.mac))) {
      await hold(store, subnet, candidate, null, 'declined', 60);
      continue;
    }
    if (subnet.probe && probe && (await probe(candidate))) {
      // Something answers there already: keep it out of use for a while and say so.
      await hold(store, subnet, candidate, null, 'declined', 600);
      await store.tx((tx) => emit(tx, { type: 'dhcp.conflict', object_kind: 'subnet', object_id: subnet.id, payload: { address: candidate, subnet: subnet.name } }));
      continue;
    }
    return candidate;
  }
  return null;
}

/** The lowest pool address that has no lease row and no reservation. */
async function neverUsed(sql: Sql, subnet: Subnet): Promise<string | null> {
  for (const p of subnet.pools) {
    const r = await sql.query(
      `WITH bounds AS (SELECT $1::inet AS first, $2::inet AS last)
       SELECT host(c) AS address FROM (
         SELECT first AS c FROM bounds
         UNION ALL
         SELECT l.address + 1 FROM leases l, bounds b WHERE l.address >= b.first AND l.address < b.last
         UNION ALL
         SELECT r.address + 1 FROM reservations r, bounds b WHERE r.address >= b.first AND r.address < b.last
       ) x
       WHERE NOT EXISTS (SELECT 1 FROM leases l2 WHERE l2.address = x.c)
         AND NOT EXISTS (SELECT 1 FROM reservations r2 WHERE r2.address = x.c)
       ORDER BY c LIMIT 1`, [p.first, p.last]);
    if (r.rowCount) return r.rows[0].address;
  }
  return null;
}

async function longestFree(sql: Sql, subnet: Subnet): Promise<string | null> {
  const r = await sql.query(
    `SELECT host(address) AS address FROM leases
      WHERE subnet_id = $1 AND (state IN ('released', 'expired') OR expires_at <= now())
        AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.address = leases.address)
      ORDER BY expires_at LIMIT 20`, [subnet.id]);
  return r.rows.map((x) => x.address).find((a) => inPools(subnet, a)) ?? null;
}

/** Write the lease row for `address` (insert or take over). */
export async function hold(sql: Sql, subnet: Subnet, address: string, client: Client | null, state: Lease['state'], seconds: number): Promise<void> {
  await sql.query(
    `INSERT INTO leases (subnet_id, address, mac, client_id, hostname, state, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
     ON CONFLICT (address) DO UPDATE SET subnet_id = $1, mac = COALESCE($3, leases.mac), client_id = $4, hostname = $5, state = $6,
       expires_at = now() + make_interval(secs => $7), updated_at = now()`,
    [subnet.id, address, client?.mac ?? null, client?.clientId ?? null, client?.hostname ?? null, state, seconds]);
}

/** The lease `mac` holds on `address`, if any and not expired. */
export async function leaseOf(sql: Sql, mac: string, address: string): Promise<Lease | null> {
  const r = await sql.query(
    `SELECT host(address) AS address, state, expires_at, mac::text AS mac FROM leases WHERE address = $1 AND mac = $2`, [address, mac]);
  return r.rowCount ? r.rows[0] : null;
}

/** Commit a binding (ACK): the row is durable before the reply is sent. */
export async function bindLease(store: Store, subnet: Subnet, client: Client, address: string): Promise<boolean> {
  return store.tx(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1::text))', [address]);
    if (!(await freeFor(tx, address, client.mac))) return false;
    await hold(tx, subnet, address, client, 'bound', subnet.lease_time_s);
    await emit(tx, { type: 'dhcp.lease', object_kind: 'subnet', object_id: subnet.id, payload: { address, mac: client.mac, hostname: client.hostname ?? null, state: 'bound', lease_time: subnet.lease_time_s } });
    return true;
  });
}

export async function endLease(store: Store, mac: string, address: string, state: 'released' | 'declined'): Promise<boolean> {
  return store.tx(async (tx) => {
    const r = await tx.query(
      `UPDATE leases SET state = $3, expires_at = now() + make_interval(secs => $4), updated_at = now()
        WHERE address = $1 AND mac = $2 RETURNING subnet_id`,
      [address, mac, state, state === 'declined' ? 3600 : 0]);
    if (!r.rowCount) return false;
    await emit(tx, { type: 'dhcp.lease', object_kind: 'subnet', object_id: r.rows[0].subnet_id, payload: { address, mac, state } });
    return true;
  });
}
