// API collections of the DNS server (docs/dns.md, docs/api.md): zones, name filters, static records
// and RFC 2136 push targets, plus the computed records (GET /api/v1/dns/records) and a push now.
import type { FastifyInstance } from 'fastify';
import { Type as T } from 'typebox';
import { emit } from '../events/outbox.js';
import { invalid, notFound } from '../model/errors.js';
import { keyClause } from '../model/lookup.js';
import type { Store, Tx } from '../store/db.js';
import type { Resource } from '../api/resources.js';
import { canonicalName, formatRdata, ipBytes, nameLabels, parseRdata, TYPE } from './codec.js';
import { absoluteName, matchErrors, recordLine, reverseZoneOf, templateError } from './filters.js';
import { loadRecords } from './service.js';
import { pushTarget } from './push.js';

const Name = T.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 100 });
const Key = T.Union([T.String({ minLength: 1, maxLength: 300 }), T.Integer({ minimum: 1 })]);
const Ttl = T.Integer({ minimum: 0, maximum: 2147483647 });
const DomainName = T.String({ minLength: 1, maxLength: 254 });

const ZoneFields = {
  description: T.Optional(T.String()),
  ttl: T.Optional(Ttl),
  primary_ns: T.Optional(DomainName),
  admin_email: T.Optional(T.String({ minLength: 1, maxLength: 254, description: 'RNAME as a name (hostmaster.cluster.example) or an address (hostmaster@cluster.example)' })),
  nameservers: T.Optional(T.Array(DomainName, { maxItems: 20 })),
  ns_addresses: T.Optional(T.Array(T.String(), { maxItems: 20 })),
  refresh: T.Optional(T.Integer({ minimum: 1 })), retry: T.Optional(T.Integer({ minimum: 1 })),
  expire: T.Optional(T.Integer({ minimum: 1 })), minimum: T.Optional(T.Integer({ minimum: 0 })),
};
export const ZoneCreate = T.Object({
  name: T.Optional(DomainName),
  cidr: T.Optional(T.String({ description: 'instead of name: the reverse zone of this prefix (10.0.0.0/16, fd00:1::/48)' })),
  ...ZoneFields,
}, { additionalProperties: false });
export const ZonePatch = T.Object(ZoneFields, { additionalProperties: false });
const FilterFields = {
  description: T.Optional(T.String()),
  match: T.Optional(T.Record(T.String(), T.Unknown(), { description: 'network, category, range, deployment, role, attrib {name, value}, family 4|6' })),
  template: T.Optional(T.String({ minLength: 1, maxLength: 2000 })),
  ptr: T.Optional(T.Boolean()),
  ttl: T.Optional(T.Union([Ttl, T.Null()])),
  enabled: T.Optional(T.Boolean()),
};
export const FilterCreate = T.Object({ name: Name, zone: Key, ...FilterFields, template: T.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false });
export const FilterPatch = T.Object(FilterFields, { additionalProperties: false });
export const RecordCreate = T.Object({
  zone: Key, name: T.String({ minLength: 1, maxLength: 254, description: 'relative to the zone ("@" for its apex) unless it ends with a dot' }),
  type: T.Union(['A', 'AAAA', 'NS', 'CNAME', 'PTR', 'SRV', 'TXT'].map((t) => T.Literal(t))),
  ttl: T.Optional(T.Union([Ttl, T.Null()])), data: T.String({ minLength: 1, maxLength: 4000, description: 'presentation format: "10.0.0.5", "10 5 2379 etcd-1.cluster.example."' }),
}, { additionalProperties: false });
export const RecordPatch = T.Object({ ttl: T.Optional(T.Union([Ttl, T.Null()])), data: T.Optional(T.String({ minLength: 1, maxLength: 4000 })) }, { additionalProperties: false });
const Tsig = T.Object({
  name: DomainName, algorithm: T.Optional(T.Union(['hmac-sha256', 'hmac-sha512', 'hmac-sha1'].map((t) => T.Literal(t)))),
  secret: T.String({ minLength: 4, maxLength: 1000, description: 'base64 (as in a BIND/Knot key file); never shown back' }),
}, { additionalProperties: false });
export const PushCreate = T.Object({ name: Name, zone: Key, server: T.String({ minLength: 3, maxLength: 300 }), tsig: T.Optional(Tsig), enabled: T.Optional(T.Boolean()) }, { additionalProperties: false });
export const PushPatch = T.Object({ server: T.Optional(T.String({ minLength: 3, maxLength: 300 })), tsig: T.Optional(T.Union([Tsig, T.Null()])), enabled: T.Optional(T.Boolean()) }, { additionalProperties: false });

function checkName(field: string, name: string): string {
  try { nameLabels(name); } catch (err) { throw invalid(field, (err as Error).message); }
  return canonicalName(name);
}

function checkIp(field: string, a: string): string {
  try { const b = ipBytes(a); return b.length === 4 ? a : formatRdata(TYPE.AAAA, parseRdata(TYPE.AAAA, a)); } catch { throw invalid(field, `"${a}" is not an IPv4 or IPv6 address`); }
}

async function zoneOf(tx: Tx, key: string | number): Promise<{ id: number; name: string; ttl: number }> {
  const k = typeof key === 'string' && !/^\d+$/.test(key) ? canonicalName(key) : key;
  const { where, value } = keyClause(k);
  const r = await tx.query(`SELECT id, name, ttl FROM dns_zones WHERE ${where}`, [value]);
  if (!r.rowCount) throw notFound('dns zone', key, 'zone');
  return r.rows[0];
}

const changed = (tx: Tx, kind: string, id: number, what: string, payload: Record<string, unknown>) =>
  emit(tx, { type: `dns.${what}`, object_kind: kind, object_id: id, payload });

async function writeZone(tx: Tx, id: number | null, name: string, b: any): Promise<number> {
  const ns = (b.nameservers ?? []).map((n: string, i: number) => checkName(`nameservers[${i}]`, n));
  const primary = checkName('primary_ns', b.primary_ns ?? (ns[0] ?? `ns.${name}`));
  const email = String(b.admin_email ?? `hostmaster.${name}`);
  // hostmaster@cluster.example -> hostmaster.cluster.example; dots in the local part are escaped (RFC 1035 §8).
  const at = email.lastIndexOf('@');
  const rname = checkName('admin_email', at < 0 ? email : `${email.slice(0, at).replace(/\./g, '\\.')}.${email.slice(at + 1)}`);
  const addrs = (b.ns_addresses ?? []).map((a: string, i: number) => checkIp(`ns_addresses[${i}]`, a));
  const kind = /(^|\.)(in-addr|ip6)\.arpa$/.test(name) ? 'reverse' : 'forward';
  const v = [name, kind, b.description ?? '', b.ttl ?? 300, primary, rname, ns, addrs, b.refresh ?? 3600, b.retry ?? 600, b.expire ?? 604800, b.minimum ?? 60];
  const r = id === null
    ? await tx.query(`INSERT INTO dns_zones (name, kind, description, ttl, primary_ns, admin_email, nameservers, ns_addresses, refresh, retry, expire, minimum)
                      VALUES ($1,$2,$3,$4,$5,$6,$7,$8::inet[],$9,$10,$11,$12) RETURNING id`, v)
    : await tx.query(`UPDATE dns_zones SET description=$3, ttl=$4, primary_ns=$5, admin_email=$6, nameservers=$7, ns_addresses=$8::inet[], refresh=$9, retry=$10,
                        expire=$11, minimum=$12, version = version + 1, updated_at = now() WHERE id = $13 RETURNING id`, [...v, id]);
  await changed(tx, 'dns-zone', r.rows[0].id, id === null ? 'zone-created' : 'zone-updated', { name });
  return r.rows[0].id;
}

async function writeFilter(tx: Tx, id: number | null, b: any): Promise<number> {
  const z = await zoneOf(tx, b.zone);
  const errs = matchErrors(b.match ?? {});
  if (errs.length) throw invalid('match', errs.join('; '));
  const terr = templateError(b.template);
  if (terr) throw invalid('template', `not valid Liquid: ${terr}`);
  const v = [b.name, b.description ?? '', z.id, JSON.stringify(b.match ?? {}), b.template, b.ptr ?? true, b.ttl ?? null, b.enabled ?? true];
  const r = id === null
    ? await tx.query(`INSERT INTO dns_name_filters (name, description, zone_id, match, template, ptr, ttl, enabled) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id`, v)
    : await tx.query(`UPDATE dns_name_filters SET description=$2, zone_id=$3, match=$4, template=$5, ptr=$6, ttl=$7, enabled=$8, version = version + 1, updated_at = now()
                       WHERE id = $9 RETURNING id`, [...v, id]);
  await changed(tx, 'dns-name-filter', r.rows[0].id, id === null ? 'filter-created' : 'filter-updated', { name: b.name, zone: z.name });
  return r.rows[0].id;
}

/** Normalised presentation text; names in the data are relative to the zone unless they end with a dot (as in a zone file). */
function recordData(type: string, data: string, zone: string): string {
  const t = (TYPE as Record<string, number>)[type];
  try {
    const parsed = parseRdata(t, data);
    if (t === TYPE.CNAME || t === TYPE.NS || t === TYPE.PTR) return formatRdata(t, absoluteName(data.trim(), zone));
    if (t === TYPE.SRV) { const f = data.trim().split(/\s+/); return formatRdata(t, { ...(parsed as any), target: absoluteName(f[3], zone) }); }
    return formatRdata(t, parsed);
  } catch (err) { throw invalid('data', `${type} ${data}: ${(err as Error).message}`); }
}

async function writePush(tx: Tx, id: number | null, b: any): Promise<number> {
  const z = await zoneOf(tx, b.zone);
  if (!/^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[0-9a-fA-F:]+)(:\d{1,5})?$/.test(b.server)) throw invalid('server', `"${b.server}" must be an IP address with an optional port (192.0.2.53:53, [2001:db8::53]:53)`);
  if (b.tsig) {
    if (!/^[A-Za-z0-9+/]+=*$/.test(b.tsig.secret)) throw invalid('tsig.secret', 'the TSIG secret must be base64, as in the key file');
    checkName('tsig.name', b.tsig.name);
  }
  const v = [b.name, z.id, b.server, b.tsig ? canonicalName(b.tsig.name) : null, b.tsig?.algorithm ?? 'hmac-sha256', b.tsig?.secret ?? null, b.enabled ?? true];
  const r = id === null
    ? await tx.query(`INSERT INTO dns_push_targets (name, zone_id, server, tsig_name, tsig_algorithm, tsig_secret, enabled) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id`, v)
    : await tx.query(`UPDATE dns_push_targets SET server=$3, tsig_name=$4, tsig_algorithm=$5, tsig_secret=$6, enabled=$7, pushed_hash = '', version = version + 1, updated_at = now()
                       WHERE id = $8 RETURNING id`, [...v, id]);
  await changed(tx, 'dns-push-target', r.rows[0].id, id === null ? 'push-target-created' : 'push-target-updated', { name: b.name, zone: z.name });
  return r.rows[0].id;
}

const stamp = 'version, created_at, updated_at';

export const DNS_RESOURCES: Resource[] = [
  {
    kind: 'dns-zones', what: 'dns zone', named: true,
    view: `SELECT id, uuid, name, kind, description, ttl, primary_ns, admin_email, nameservers, ARRAY(SELECT host(x) FROM unnest(ns_addresses) x) AS ns_addresses,
                  refresh, retry, expire, minimum, serial, ${stamp} FROM dns_zones`,
    filters: ['name', 'kind'],
    create: {
      schema: ZoneCreate,
      run: async (tx, b) => {
        if ((b.name === undefined) === (b.cidr === undefined)) throw invalid('name', 'give the zone a name, or a cidr for a reverse zone (one of the two)');
        let name: string;
        if (b.cidr !== undefined) { try { name = reverseZoneOf(b.cidr); } catch (err) { throw invalid('cidr', (err as Error).message); } } else name = checkName('name', b.name);
        return writeZone(tx, null, name, b);
      },
    },
    patch: {
      schema: ZonePatch,
      editable: (z) => ({ description: z.description, ttl: z.ttl, primary_ns: z.primary_ns, admin_email: z.admin_email, nameservers: z.nameservers, ns_addresses: z.ns_addresses, refresh: z.refresh, retry: z.retry, expire: z.expire, minimum: z.minimum }),
      run: async (tx, row, m) => { await writeZone(tx, row.id, row.name, m); },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM dns_zones WHERE id = $1', [row.id]); await changed(tx, 'dns-zone', row.id, 'zone-deleted', { name: row.name }); },
  },
  {
    kind: 'dns-name-filters', what: 'dns name filter', named: true,
    view: `SELECT f.id, f.uuid, f.name, f.description, z.name AS zone, f.zone_id, f.match, f.template, f.ptr, f.ttl, f.enabled, f.version, f.created_at, f.updated_at
             FROM dns_name_filters f JOIN dns_zones z ON z.id = f.zone_id`,
    filters: ['name', 'zone', 'enabled'],
    create: { schema: FilterCreate, run: (tx, b) => writeFilter(tx, null, b) },
    patch: {
      schema: FilterPatch,
      editable: (f) => ({ description: f.description, match: f.match, template: f.template, ptr: f.ptr, ttl: f.ttl, enabled: f.enabled }),
      run: async (tx, row, m) => { await writeFilter(tx, row.id, { ...m, name: row.name, zone: row.zone_id }); },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM dns_name_filters WHERE id = $1', [row.id]); await changed(tx, 'dns-name-filter', row.id, 'filter-deleted', { name: row.name }); },
  },
  {
    kind: 'dns-records', what: 'dns record', named: false,
    view: `SELECT r.id, r.uuid, z.name AS zone, r.zone_id, r.name, r.type, r.ttl, r.data, r.version, r.created_at, r.updated_at
             FROM dns_records r JOIN dns_zones z ON z.id = r.zone_id`,
    filters: ['zone', 'name', 'type'],
    create: {
      schema: RecordCreate,
      run: async (tx, b) => {
        const z = await zoneOf(tx, b.zone);
        const name = absoluteName(b.name, z.name);
        checkName('name', name);
        if (name !== z.name && !name.endsWith(`.${z.name}`)) throw invalid('name', `${name} is not inside zone ${z.name}`);
        const data = recordData(b.type, b.data, z.name);
        const r = await tx.query(`INSERT INTO dns_records (zone_id, name, type, ttl, data) VALUES ($1,$2,$3,$4,$5) RETURNING id`, [z.id, name, b.type, b.ttl ?? null, data]);
        await changed(tx, 'dns-record', r.rows[0].id, 'record-created', { name, type: b.type, zone: z.name });
        return r.rows[0].id;
      },
    },
    patch: {
      schema: RecordPatch,
      editable: (r) => ({ ttl: r.ttl, data: r.data }),
      run: async (tx, row, m) => {
        await tx.query('UPDATE dns_records SET ttl = $2, data = $3, version = version + 1, updated_at = now() WHERE id = $1', [row.id, m.ttl ?? null, recordData(row.type, m.data, row.zone)]);
        await changed(tx, 'dns-record', row.id, 'record-updated', { name: row.name, type: row.type });
      },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM dns_records WHERE id = $1', [row.id]); await changed(tx, 'dns-record', row.id, 'record-deleted', { name: row.name, type: row.type }); },
  },
  {
    kind: 'dns-push-targets', what: 'dns push target', named: true,
    // The TSIG secret is never shown: only whether there is one.
    view: `SELECT p.id, p.uuid, p.name, z.name AS zone, p.zone_id, p.server, p.tsig_name, p.tsig_algorithm, (p.tsig_secret IS NOT NULL) AS tsig_secret_set,
                  p.enabled, p.last_push_at, p.last_error, jsonb_array_length(p.pushed) AS pushed_records, p.version, p.created_at, p.updated_at
             FROM dns_push_targets p JOIN dns_zones z ON z.id = p.zone_id`,
    filters: ['name', 'zone', 'enabled'],
    create: { schema: PushCreate, run: (tx, b) => writePush(tx, null, b) },
    patch: {
      schema: PushPatch,
      editable: (p) => ({ server: p.server, enabled: p.enabled }),
      run: async (tx, row, m) => {
        // Without a tsig in the patch the stored key stays; null removes it.
        const keep = m.tsig === undefined ? (await tx.query('SELECT tsig_name AS name, tsig_algorithm AS algorithm, tsig_secret AS secret FROM dns_push_targets WHERE id = $1', [row.id])).rows[0] : m.tsig;
        await writePush(tx, row.id, { ...m, name: row.name, zone: row.zone_id, tsig: keep?.secret ? keep : undefined });
      },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM dns_push_targets WHERE id = $1', [row.id]); },
  },
];

/** The computed records (what the server answers), and pushing one target now. */
export function registerDnsApi(app: FastifyInstance, store: Store): void {
  app.get('/api/v1/dns/records', { config: { capability: 'dns-zones:read' }, schema: { tags: ['dns'], querystring: T.Object({ zone: T.Optional(T.String()), name: T.Optional(T.String()) }) } }, async (req) => {
    const q = req.query as { zone?: string; name?: string };
    const loaded = await loadRecords(store);
    const zones = loaded.zones.filter((z) => q.zone === undefined || z.name === canonicalName(q.zone));
    if (q.zone !== undefined && !zones.length) throw notFound('dns zone', q.zone, 'zone');
    const want = q.name === undefined ? undefined : canonicalName(q.name);
    return {
      zones: zones.map((z) => ({
        name: z.name, serial: Number(z.serial),
        records: (loaded.computed.byZone.get(z.name) ?? []).filter((r) => want === undefined || r.name === want).map(recordLine),
      })),
      problems: loaded.computed.problems,
    };
  });
  app.post('/api/v1/dns-push-targets/:key/push', { config: { capability: 'dns-push-targets:write' }, schema: { tags: ['dns-push-targets'] } }, async (req, reply) => {
    const key = (req.params as { key: string }).key;
    const { where, value } = keyClause(key);
    const t = await store.query(`SELECT id FROM dns_push_targets WHERE ${where}`, [value]);
    if (!t.rowCount) throw notFound('dns push target', key);
    const result = await pushTarget(store, t.rows[0].id, true);
    if (result.error) return reply.status(502).send({ error: 'push-failed', message: `push of zone ${result.zone} to ${result.server} failed: ${result.error}` });
    return result;
  });
}
