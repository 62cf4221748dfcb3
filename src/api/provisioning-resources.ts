// API collections of the provisioning plane: subnets, reservations, leases, bootenvs.
import { conflict, invalid, notFound } from '../model/errors.js';
import { emit } from '../events/outbox.js';
import { keyClause } from '../model/lookup.js';
import { inCidr, ipToInt } from '../dhcp/leases.js';
import type { Tx } from '../store/db.js';
import type { Resource } from './resources.js';
import * as S from './schemas.js';

const SUBNET_VIEW = `SELECT id, uuid, name, cidr::text AS cidr, host(server_address) AS server_address, proxy, pools,
  ARRAY(SELECT host(x) FROM unnest(routers) x) AS routers, ARRAY(SELECT host(x) FROM unnest(dns) x) AS dns,
  ARRAY(SELECT host(x) FROM unnest(ntp) x) AS ntp, domain, lease_time_s, offer_hold_s, probe, probe_timeout_ms, options, enabled,
  version, created_at, updated_at FROM subnets`;

function checkPools(cidr: string, pools: Array<{ first: string; last: string }> = []): void {
  pools.forEach((p, i) => {
    if (!inCidr(cidr, p.first) || !inCidr(cidr, p.last)) throw invalid(`pools[${i}]`, `pool ${p.first}-${p.last} is not inside subnet ${cidr}`);
    if (ipToInt(p.first) > ipToInt(p.last)) throw invalid(`pools[${i}]`, `pool ${p.first}-${p.last}: first is after last`);
  });
}

async function subnetId(tx: Tx, key: string | number): Promise<{ id: number; cidr: string; name: string }> {
  const { where, value } = keyClause(key);
  const r = await tx.query(`SELECT id, cidr::text AS cidr, name FROM subnets WHERE ${where}`, [value]);
  if (!r.rowCount) throw notFound('subnet', key, 'subnet');
  return r.rows[0];
}

async function writeSubnet(tx: Tx, id: number | null, b: any): Promise<number> {
  checkPools(b.cidr, b.pools);
  const values = [b.name, b.cidr, b.server_address ?? null, b.proxy ?? false, JSON.stringify(b.pools ?? []), b.routers ?? [], b.dns ?? [], b.ntp ?? [],
    b.domain ?? null, b.lease_time_s ?? 3600, b.offer_hold_s ?? 10, b.probe ?? true, b.probe_timeout_ms ?? 300, b.options ?? {}, b.enabled ?? true];
  const r = id === null
    ? await tx.query(
      `INSERT INTO subnets (name, cidr, server_address, proxy, pools, routers, dns, ntp, domain, lease_time_s, offer_hold_s, probe, probe_timeout_ms, options, enabled)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) RETURNING id`, values)
    : await tx.query(
      `UPDATE subnets SET name=$1, cidr=$2, server_address=$3, proxy=$4, pools=$5, routers=$6, dns=$7, ntp=$8, domain=$9, lease_time_s=$10,
         offer_hold_s=$11, probe=$12, probe_timeout_ms=$13, options=$14, enabled=$15, version = version + 1, updated_at = now() WHERE id = $16 RETURNING id`, [...values, id]);
  await emit(tx, { type: id === null ? 'subnet.created' : 'subnet.updated', object_kind: 'subnet', object_id: r.rows[0].id, payload: { name: b.name } });
  return r.rows[0].id;
}

export const PROVISIONING_RESOURCES: Resource[] = [
  {
    kind: 'subnets', what: 'subnet', named: true, view: SUBNET_VIEW, filters: ['name', 'proxy', 'enabled'],
    create: { schema: S.SubnetCreate, run: (tx, b) => writeSubnet(tx, null, b) },
    patch: {
      schema: S.SubnetPatch,
      editable: (s) => { const { id, uuid, version, created_at, updated_at, ...rest } = s; return rest; },
      run: async (tx, row, m) => { await writeSubnet(tx, row.id, { ...m, name: row.name, cidr: row.cidr }); },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM subnets WHERE id = $1', [row.id]); },
  },
  {
    kind: 'reservations', what: 'reservation', named: false,
    view: `SELECT r.id, r.uuid, r.mac::text AS mac, s.name AS subnet, r.subnet_id, host(r.address) AS address, r.hostname, r.options,
             n.name AS node, r.node_id, r.version, r.created_at, r.updated_at
             FROM reservations r JOIN subnets s ON s.id = r.subnet_id LEFT JOIN nodes n ON n.id = r.node_id`,
    filters: ['mac', 'subnet', 'address', 'node'],
    create: {
      schema: S.ReservationCreate,
      run: async (tx, b) => {
        const s = await subnetId(tx, b.subnet);
        if (!inCidr(s.cidr, b.address)) throw invalid('address', `${b.address} is not inside subnet ${s.name} (${s.cidr})`);
        let nodeId: number | null = null;
        if (b.node !== undefined) {
          const { where, value } = keyClause(b.node);
          const n = await tx.query(`SELECT id FROM nodes WHERE ${where}`, [value]);
          if (!n.rowCount) throw notFound('node', b.node, 'node');
          nodeId = n.rows[0].id;
        }
        const dup = await tx.query(`SELECT mac::text AS mac FROM reservations WHERE subnet_id = $1 AND address = $2`, [s.id, b.address]);
        if (dup.rowCount) throw conflict(`${b.address} is already reserved for ${dup.rows[0].mac} in subnet ${s.name}`);
        return (await tx.query(
          `INSERT INTO reservations (mac, subnet_id, address, hostname, options, node_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
          [b.mac.toLowerCase().replace(/-/g, ':'), s.id, b.address, b.hostname ?? null, b.options ?? {}, nodeId])).rows[0].id;
      },
    },
    patch: {
      schema: S.ReservationPatch, editable: (r) => ({ address: r.address, hostname: r.hostname, options: r.options }),
      run: async (tx, row, m) => {
        await tx.query('UPDATE reservations SET address = $2, hostname = $3, options = $4, version = version + 1, updated_at = now() WHERE id = $1',
          [row.id, m.address, m.hostname ?? null, m.options ?? {}]);
      },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM reservations WHERE id = $1', [row.id]); },
  },
  {
    kind: 'leases', what: 'lease', named: false,
    view: `SELECT l.id, host(l.address) AS address, s.name AS subnet, l.subnet_id, l.mac::text AS mac, l.client_id, l.hostname,
             CASE WHEN l.state IN ('bound', 'offered') AND l.expires_at <= now() THEN 'expired' ELSE l.state END AS state,
             l.expires_at, l.created_at, l.updated_at FROM leases l JOIN subnets s ON s.id = l.subnet_id`,
    filters: ['address', 'subnet', 'mac', 'state', 'hostname'],
    remove: async (tx, row) => { await tx.query('DELETE FROM leases WHERE id = $1', [row.id]); },
  },
  {
    kind: 'bootenvs', what: 'bootenv', named: true,
    view: `SELECT id, uuid, name, description, netboot, kexec, kernel, initrds, boot_params, templates, required_params, content_pack, version, created_at, updated_at FROM bootenvs`,
    filters: ['name', 'netboot', 'content_pack'],
    create: {
      schema: S.BootenvCreate,
      run: async (tx, b) => (await tx.query(
        `INSERT INTO bootenvs (name, description, netboot, kernel, initrds, boot_params, templates, required_params, kexec) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id`,
        [b.name, b.description ?? '', b.netboot ?? true, b.kernel ?? null, b.initrds ?? [], b.boot_params ?? '', JSON.stringify(b.templates ?? []), b.required_params ?? [], b.kexec ?? false])).rows[0].id,
    },
    patch: {
      schema: S.BootenvPatch,
      editable: (b) => ({ description: b.description, netboot: b.netboot, kernel: b.kernel, initrds: b.initrds, boot_params: b.boot_params, templates: b.templates, required_params: b.required_params, kexec: b.kexec }),
      run: async (tx, row, m) => {
        await tx.query(
          `UPDATE bootenvs SET description=$2, netboot=$3, kernel=$4, initrds=$5, boot_params=$6, templates=$7, required_params=$8, kexec=$9, version = version + 1, updated_at = now() WHERE id = $1`,
          [row.id, m.description ?? '', m.netboot ?? true, m.kernel ?? null, m.initrds ?? [], m.boot_params ?? '', JSON.stringify(m.templates ?? []), m.required_params ?? [], m.kexec ?? false]);
      },
    },
    remove: async (tx, row) => {
      const used = await tx.query('SELECT count(*)::int AS n FROM nodes WHERE bootenv = $1', [row.name]);
      if (used.rows[0].n) throw conflict(`bootenv ${row.name} is used by ${used.rows[0].n} node(s)`);
      await tx.query('DELETE FROM bootenvs WHERE id = $1', [row.id]);
    },
  },
];
