// The DNS server inside `fulcrum server`: reads zones, name filters, static records and node
// addresses from the store, computes the records, bumps the SOA serial of every zone whose content
// changed, and swaps a new answer table into the server. Rebuilt on every committed event (debounced)
// and on a slow timer (lease expiry makes no event); the leader also pushes by RFC 2136.
import crypto from 'node:crypto';
import type { Sql, Store } from '../store/db.js';
import type { EventStream } from '../events/stream.js';
import type { Event } from '../events/outbox.js';
import { AnswerTable } from './answers.js';
import { DnsServer } from './server.js';
import { computeRecords, recordLine, zoneInfo, type AddressFacts, type Computed, type NameFilter, type NodeFacts, type StaticRecord, type ZoneRow } from './filters.js';
import { watchDns } from './metrics.js';
import { pushAll } from './push.js';

export interface DnsOptions {
  /** "host:port" to serve on ("0.0.0.0:53", "127.0.0.1:5353"); without it, records are only pushed (RFC 2136). */
  listen?: string;
  /** Upstream resolver for names outside the served zones ("host:port"); else they are REFUSED. */
  forwarder?: string;
}

export function splitHostPort(s: string, what: string, defaultPort?: number): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([^\s:[\]]+):(\d{1,5})$/.exec(s);
  if (m && Number(m[2]) <= 65535) return { host: m[1], port: Number(m[2]) };
  if (defaultPort !== undefined && /^[0-9.]+$|^[0-9a-fA-F:]+$/.test(s)) return { host: s, port: defaultPort };
  throw new Error(`${what} "${s}" must be HOST:PORT (IPv6 in brackets: [::1]:53)`);
}

export interface Loaded { zones: Array<ZoneRow & { content_hash: string }>; computed: Computed }

/** Everything the records are computed from, read in one snapshot. */
export async function loadRecords(sql: Sql): Promise<Loaded> {
  const zones = (await sql.query(
    `SELECT id, name, kind, ttl, primary_ns, admin_email, nameservers, ARRAY(SELECT host(x) FROM unnest(ns_addresses) x) AS ns_addresses,
            refresh, retry, expire, minimum, serial, content_hash FROM dns_zones ORDER BY name`)).rows;
  if (!zones.length) return { zones, computed: { byZone: new Map(), problems: [] } }; // nothing served: skip the rest
  const filters = (await sql.query(
    `SELECT f.id, f.name, z.name AS zone, f.match, f.template, f.ptr, f.ttl, f.enabled FROM dns_name_filters f JOIN dns_zones z ON z.id = f.zone_id ORDER BY f.id`)).rows as NameFilter[];
  const statics = (await sql.query(
    `SELECT r.id, z.name AS zone, r.name, r.type, r.ttl, r.data FROM dns_records r JOIN dns_zones z ON z.id = r.zone_id ORDER BY r.id`)).rows as StaticRecord[];
  const nodes = (await sql.query(
    `SELECT n.id, n.name, d.name AS deployment, n.hints,
            ARRAY(SELECT ro.name FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id WHERE nr.node_id = n.id) AS roles
       FROM nodes n JOIN deployments d ON d.id = n.deployment_id WHERE NOT n.service`)).rows as NodeFacts[];
  // Addresses: IPAM allocations when the networks tables exist, then DHCP reservations and bound leases.
  const ipam = (await sql.query(`SELECT to_regclass('network_allocations') IS NOT NULL AS yes`)).rows[0].yes;
  const addresses = (await sql.query(
    `${ipam ? `SELECT a.node_id, host(a.address) AS address, nw.name AS network, nw.category, r.name AS range, 'allocation' AS source, 0 AS rank
       FROM network_allocations a JOIN networks nw ON nw.id = a.network_id LEFT JOIN network_ranges r ON r.id = a.range_id
     UNION ALL ` : ''}
     SELECT COALESCE(res.node_id, m.node_id), host(res.address), s.name, NULL, NULL, 'reservation', 1
       FROM reservations res JOIN subnets s ON s.id = res.subnet_id LEFT JOIN node_macs m ON m.mac = res.mac
      WHERE COALESCE(res.node_id, m.node_id) IS NOT NULL
     UNION ALL
     SELECT m.node_id, host(l.address), s.name, NULL, NULL, 'lease', 2 FROM leases l JOIN node_macs m ON m.mac = l.mac JOIN subnets s ON s.id = l.subnet_id
      WHERE l.state = 'bound' AND l.expires_at > now()
     ORDER BY 1, 2, 7`)).rows as Array<AddressFacts & { rank: number }>;
  // One fact per (node, address): an allocation wins over a reservation over a lease.
  const seen = new Set<string>();
  const unique = addresses.filter((a) => { const k = `${a.node_id} ${a.address}`; if (seen.has(k)) return false; seen.add(k); return true; });
  return { zones, computed: computeRecords(zones, filters, nodes, unique, statics) };
}

/** Content hash of a zone: its SOA fields other than the serial, and every record. */
export function zoneHash(z: ZoneRow, lines: string[]): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify([z.ttl, z.primary_ns, z.admin_email, z.refresh, z.retry, z.expire, z.minimum]));
  for (const l of lines) h.update(l + '\n');
  return h.digest('hex').slice(0, 32);
}

/**
 * Bump the serial of every zone whose content changed since the stored hash. Conditional on the old
 * hash, so of several replicas seeing one change only the first bumps. Returns the zones' serials.
 */
export async function bumpSerials(store: Store, loaded: Loaded): Promise<{ serials: Map<string, number>; signature: string }> {
  const serials = new Map<string, number>();
  const parts: string[] = [];
  for (const z of loaded.zones) {
    const hash = zoneHash(z, (loaded.computed.byZone.get(z.name) ?? []).map(recordLine));
    let serial = Number(z.serial);
    if (hash !== z.content_hash) {
      const r = await store.query(
        `UPDATE dns_zones SET serial = CASE WHEN serial >= 4294967295 THEN 1 ELSE serial + 1 END, content_hash = $2
          WHERE id = $1 AND content_hash <> $2 RETURNING serial`, [z.id, hash]);
      serial = r.rowCount ? Number(r.rows[0].serial) : Number((await store.query('SELECT serial FROM dns_zones WHERE id = $1', [z.id])).rows[0]?.serial ?? serial);
    }
    serials.set(z.name, serial);
    parts.push(`${z.name} ${serial} ${hash}`);
  }
  return { serials, signature: parts.join('\n') };
}

export interface DnsStatus { built_at: string | null; build_ms: number; zones: Array<{ name: string; serial: number; records: number }>; records: number; problems: string[] }

export class DnsService {
  /** The sockets; undefined when only pushing. */
  readonly server?: DnsServer;
  private table = new AnswerTable([], []);
  status: DnsStatus = { built_at: null, build_ms: 0, zones: [], records: 0, problems: [] };
  private building = false;
  private again = false;
  private debounce?: NodeJS.Timeout;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private stopped = false;
  private signature = '';

  constructor(private readonly store: Store, private readonly events: EventStream, opts: DnsOptions,
    private readonly isLeader: () => boolean, private readonly log: (m: string) => void = () => {}) {
    if (opts.listen) {
      const { host, port } = splitHostPort(opts.listen, '--dns-listen');
      const forwarder = opts.forwarder ? splitHostPort(opts.forwarder, '--dns-forwarder', 53) : undefined;
      this.server = new DnsServer({ host, port, forwarder, log });
    }
  }

  async start(): Promise<void> {
    await this.rebuild();
    if (this.server) {
      await this.server.start();
      watchDns(this.server, () => this.table.recordCount);
    }
    this.unsubscribe = this.events.subscribe({}, (e) => { if (changesNames(e)) this.soon(); });
    // Every 15 s a look for lease expiry (no event); at once when this replica becomes the leader (it pushes).
    let ticks = 0;
    let wasLeader = this.isLeader();
    this.timer = setInterval(() => {
      const leader = this.isLeader();
      if ((leader && !wasLeader) || ++ticks % 15 === 0) this.soon();
      wasLeader = leader;
    }, 1000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    await this.server?.stop();
  }

  /** Rebuild shortly: bursts of events (a deployment commit) make one rebuild. */
  soon(): void {
    if (this.debounce || this.stopped) return;
    this.debounce = setTimeout(() => { this.debounce = undefined; void this.rebuild(); }, 100);
  }

  async rebuild(): Promise<void> {
    if (this.building) { this.again = true; return; }
    this.building = true;
    try {
      do {
        this.again = false;
        const started = Date.now();
        const loaded = await loadRecords(this.store);
        const { serials, signature } = await bumpSerials(this.store, loaded);
        // Unchanged (the periodic look): keep the prepared answers; a failed push is still retried.
        if (signature === this.signature) { if (this.isLeader()) await pushAll(this.store, loaded, serials, this.log); continue; }
        this.signature = signature;
        const zones = loaded.zones.map((z) => zoneInfo({ ...z, serial: serials.get(z.name) ?? Number(z.serial) }));
        const records = [...loaded.computed.byZone.values()].flat();
        this.table = new AnswerTable(zones, records);
        if (this.server) this.server.table = this.table;
        this.status = {
          built_at: new Date().toISOString(), build_ms: Date.now() - started, records: this.table.recordCount, problems: loaded.computed.problems,
          zones: zones.map((z) => ({ name: z.name, serial: z.soa.serial, records: loaded.computed.byZone.get(z.name)?.length ?? 0 })),
        };
        if (this.isLeader()) await pushAll(this.store, loaded, serials, this.log);
      } while (this.again && !this.stopped);
    } catch (err) {
      this.log(`dns: rebuilding the records failed: ${(err as Error).message}; serving the previous ones`);
    } finally {
      this.building = false;
    }
  }
}

/**
 * Job runs and noderole state changes (the bulk of events) change no name or address. Lease
 * events do, even those that only count anonymous machines: one of them may have become a node
 * between its lease and its event.
 */
function changesNames(e: Event): boolean {
  return !e.type.startsWith('job.') && e.type !== 'noderole.state';
}
