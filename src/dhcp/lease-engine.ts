// The DHCP lease engine (docs/decisions/0008-dhcp-lease-engine.md). The DHCP server's packet path
// reads nothing from PostgreSQL: subnets, reservations and the boot facts of known MACs are cached
// and reloaded when the `fulcrum_dhcp` channel says a table changed (migration 008); the leases of
// a subnet are held in memory by the one process that owns the subnet (a session advisory lock),
// loaded from PostgreSQL when it takes the subnet. Offers are holds in memory only. Every change
// that must survive — a binding (ACK), a release, a decline — is queued and committed in one
// multi-row statement per batch (group commit) before the reply that depends on it is sent, so an
// ACKed lease survives `kill -9` while a boot storm costs one WAL flush per batch, not per packet.
import pg from 'pg';
import { NOTIFY_CHANNEL, type Store } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { SUBNET_SELECT, cleanSubnet, intToIp, ipToInt, type Client, type Subnet } from './leases.js';

export type LeaseState = 'offered' | 'bound' | 'released' | 'declined' | 'expired';
export interface Reservation { mac: string; address: string; subnet_id: number; hostname: string | null; options: Record<string, unknown> }
/** What one address holds in memory; `expires` is in Date.now() milliseconds. */
interface Entry { mac: string | null; state: LeaseState; expires: number; clientId: string | null; hostname: string | null }
/**
 * A lease row to write. `event`: 'listed' for a known node's MAC (the batch's dhcp.leases event
 * lists it), 'counted' for any other client (counted by state: a discovery storm of unknown
 * machines does not write and re-read every lease in the event stream), false for none.
 */
interface Row { subnet_id: number; address: string; mac: string | null; client_id: string | null; hostname: string | null; state: LeaseState; secs: number; event: 'listed' | 'counted' | false }

/** The advisory-lock class of DHCP subnet ownership ('DHCP'); the second key is the subnet id. */
const LOCK_CLASS = 0x44484350;
export const DHCP_CHANNEL = 'fulcrum_dhcp';
/** A subnet another process owns is tried again after this long. */
const RETRY_OWNERSHIP_MS = 2000;
/**
 * At most one NOTIFY on the main channel per this many ms for lease events: each wakes the event
 * stream, hooks, webhooks, DNS and the annealer. The event stream also polls every second, so a
 * lease event is delivered within about a second either way.
 */
const NOTIFY_EVERY_MS = 1000;
const MAX_BATCH = 2000;
/**
 * Under load (the last batch carried more than one row) the next batch waits up to this long, or
 * until FULL_BATCH rows are queued: a commit costs about 150 µs of PostgreSQL CPU and one fsync
 * whatever its size, each row about 19 µs (docs/performance.md), and back-to-back commits at
 * 4,000 DORA/s carried 3 rows each. A lone request (no load) is committed at once.
 */
const COMMIT_DELAY_MS = 4;
const FULL_BATCH = 64;
/** Rows waiting beyond this (the database stalls): new bindings are dropped, the clients retry. */
const MAX_BACKLOG = 20000;
const ATTEMPTS = 8;

const held = (e: Entry | undefined, now: number) => !!e && e.expires > now && (e.state === 'bound' || e.state === 'offered' || e.state === 'declined');

/** The leases of one subnet this process owns. */
class SubnetLeases {
  byAddr = new Map<number, Entry>();
  /** A client's most recent non-declined address: "its current or last lease". */
  lastOf = new Map<string, number>();
  /** Per pool: no address below it is never-used (everything below has an entry or a reservation). */
  cursors: number[] = [];
  ranges: Array<[number, number]> = [];
  stale = true;
  /** While the subnet is read back from the database: what this process changed meanwhile (newer than the read). */
  changes?: Map<number, Entry>;
  constructor(public subnet: Subnet) { this.setSubnet(subnet); }

  setSubnet(s: Subnet): void {
    this.subnet = s;
    this.ranges = s.pools.map((p) => [ipToInt(p.first), ipToInt(p.last)]);
    this.resetCursors();
  }
  resetCursors(): void { this.cursors = this.ranges.map(([first]) => first); }
  inPools(a: number): boolean { return this.ranges.some(([f, l]) => a >= f && a <= l); }
  set(a: number, e: Entry): void {
    this.changes?.set(a, e);
    this.byAddr.set(a, e);
    if (e.mac && e.state !== 'declined') this.lastOf.set(e.mac, a);
  }
}

/** Group commit: lease rows queued by many packets, written by one statement per batch. */
class LeaseWriter {
  private queue: Array<{ row: Row; resolve: () => void; reject: (e: Error) => void }> = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];
  batches = 0;
  rows = 0;
  /** Time spent in the batch statements, ms (their sum; one runs at a time). */
  busyMs = 0;

  constructor(private readonly store: Store, private readonly committed: (withEvents: boolean) => void) {}

  private last: Promise<void> = Promise.resolve();
  /** While a batch waits for company: start it now. */
  private gathered?: () => void;

  write(row: Row): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      if (!this.running) {
        this.running = true;
        // Flush at once when idle (after this turn of the event loop, so packets read together
        // share a commit); while a flush is in flight, the queue grows into the next batch.
        setImmediate(() => void this.run());
      }
    });
    this.last = p;
    if (this.gathered && this.queue.length >= FULL_BATCH) this.gathered();
    return p;
  }

  /** Resolves after COMMIT_DELAY_MS, or sooner once FULL_BATCH rows are queued. */
  private gather(): Promise<void> {
    return new Promise((resolve) => {
      const go = () => { clearTimeout(timer); this.gathered = undefined; resolve(); };
      const timer = setTimeout(go, COMMIT_DELAY_MS);
      this.gathered = go;
    });
  }

  /** Settles once every row queued so far is committed (or failed); later rows do not delay it. */
  barrier(): Promise<void> { return this.last.catch(() => undefined); }

  get backlogged(): boolean { return this.queue.length >= MAX_BACKLOG; }

  idle(): Promise<void> {
    return this.running ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  private async run(): Promise<void> {
    let previous = 0;
    while (this.queue.length) {
      if (previous > 1 && this.queue.length < FULL_BATCH) await this.gather();
      const batch = this.queue.splice(0, MAX_BATCH);
      previous = batch.length;
      // One row per address (a statement cannot upsert one row twice): the last write wins, and
      // every writer of that address waits for the same commit.
      const rows = new Map<string, Row>();
      for (const { row } of batch) rows.set(row.address, row);
      const list = [...rows.values()];
      const leases = list.filter((r) => r.event === 'listed').map((r) => ({ subnet_id: r.subnet_id, address: r.address, mac: r.mac, hostname: r.hostname, state: r.state, seconds: r.secs }));
      const anonymous: Partial<Record<LeaseState, number>> = {};
      for (const r of list) if (r.event === 'counted') anonymous[r.state] = (anonymous[r.state] ?? 0) + 1;
      const event = leases.length || Object.keys(anonymous).length ? JSON.stringify({ leases, anonymous }) : null;
      const t0 = performance.now();
      try {
        // A named (prepared) statement: parsed and planned once per connection, not per batch.
        await this.store.pool.query({ name: 'fulcrum-dhcp-lease-batch', text:
          `WITH input AS (
             SELECT * FROM unnest($1::bigint[], $2::inet[], $3::macaddr[], $4::text[], $5::text[], $6::text[], $7::float8[])
               AS t(subnet_id, address, mac, client_id, hostname, state, secs)),
           written AS (
             INSERT INTO leases (subnet_id, address, mac, client_id, hostname, state, expires_at)
             SELECT subnet_id, address, mac, client_id, hostname, state, now() + make_interval(secs => secs) FROM input
             ON CONFLICT (address) DO UPDATE SET subnet_id = EXCLUDED.subnet_id, mac = COALESCE(EXCLUDED.mac, leases.mac),
               client_id = EXCLUDED.client_id, hostname = EXCLUDED.hostname, state = EXCLUDED.state,
               expires_at = EXCLUDED.expires_at, updated_at = now()
             RETURNING 1)
           INSERT INTO events (type, object_kind, payload) SELECT 'dhcp.leases', 'dhcp', $8::jsonb WHERE $8::jsonb IS NOT NULL`,
        values: [list.map((r) => r.subnet_id), list.map((r) => r.address), list.map((r) => r.mac), list.map((r) => r.client_id),
          list.map((r) => r.hostname), list.map((r) => r.state), list.map((r) => r.secs), event] });
        this.batches++;
        this.rows += list.length;
        this.busyMs += performance.now() - t0;
        for (const p of batch) p.resolve();
        this.committed(event !== null);
      } catch (err) {
        for (const p of batch) p.reject(err as Error);
      }
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

export class LeaseEngine {
  private session?: pg.Client;
  private connecting?: Promise<pg.Client>;
  private loaded?: Promise<void>;
  /** `loaded` once it has settled: packets need not wait. */
  private settled?: Promise<void>;
  private subnets: Subnet[] = [];
  /** The subnets as network/mask numbers, most specific first: subnet selection per packet. */
  private nets: Array<{ subnet: Subnet; net: number; mask: number; bits: number }> = [];
  private reservations = new Map<string, Reservation>();
  /** address → the MACs it is reserved for (one node's MACs may share one address). */
  private reservedAt = new Map<number, Set<string>>();
  private nodes = new Map<string, { netboot: boolean }>();
  private states = new Map<number, SubnetLeases>();
  private preparing = new Map<number, Promise<SubnetLeases | null>>();
  private refused = new Map<number, number>();
  private dirty = new Set<'subnets' | 'reservations' | 'nodes'>();
  private refreshing = false;
  private lastNotify = 0;
  private notifyTimer?: NodeJS.Timeout;
  private lastExhausted = new Map<number, number>();
  private stopped = false;
  readonly writer: LeaseWriter;
  /** How many changes made elsewhere were taken in (configuration reloaded, leases marked for reload); tests wait on it. */
  reloads = 0;

  constructor(private readonly store: Store, private readonly log: (m: string) => void = () => {}) {
    this.writer = new LeaseWriter(store, (withEvents) => { if (withEvents) this.notifySoon(); });
  }

  /** LISTEN first, then load, so that no change between the two is missed. Idempotent. */
  ready(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the DHCP lease engine is stopped'));
    if (!this.loaded) {
      let p!: Promise<void>;
      p = (async () => {
        await this.connect();
        await this.load(new Set(['subnets', 'reservations', 'nodes']));
        this.settled = p;
      })().catch((err) => { this.loaded = undefined; throw err; });
      this.loaded = p;
    }
    return this.loaded;
  }

  /** ready() would resolve at once: the configuration is loaded and nothing asked for a reload. */
  get isReady(): boolean { return this.loaded !== undefined && this.settled === this.loaded; }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.notifyTimer);
    await this.writer.idle();
    const s = this.session ?? (await this.connecting?.catch(() => undefined));
    this.session = undefined;
    this.states.clear();
    await s?.end().catch(() => undefined); // ends the session: its advisory locks go with it
  }

  private connect(): Promise<pg.Client> {
    if (this.session) return Promise.resolve(this.session);
    this.connecting ??= (async () => {
      const c = new pg.Client({ connectionString: this.store.url, application_name: 'fulcrum-dhcp' });
      const lost = (why: string) => {
        if (this.session !== c && this.connecting === undefined) return;
        if (this.session === c) this.log(`dhcp: database session lost (${why}); subnets are taken again on the next packet`);
        this.session = undefined;
        this.connecting = undefined;
        // The locks went with the session: another replica may take the subnets now.
        this.states.clear();
        // Changes may have been missed while no one listened.
        this.loaded = undefined;
      };
      c.on('error', (e) => lost(e.message));
      c.on('end', () => lost('closed'));
      c.on('notification', (n) => this.changed(n.payload ?? ''));
      try {
        await c.connect();
        await c.query(`LISTEN ${DHCP_CHANNEL}`);
      } catch (err) {
        this.connecting = undefined;
        await c.end().catch(() => undefined);
        throw err;
      }
      this.session = c;
      this.connecting = undefined;
      return c;
    })();
    return this.connecting;
  }

  private async load(parts: Set<string>): Promise<void> {
    const [subnets, reservations, nodes] = await Promise.all([
      parts.has('subnets') ? this.store.query(SUBNET_SELECT) : undefined,
      parts.has('reservations') ? this.store.query(`SELECT mac::text AS mac, host(address) AS address, subnet_id, hostname, options FROM reservations`) : undefined,
      parts.has('nodes') ? this.store.query(
        `SELECT m.mac::text AS mac, b.netboot FROM node_macs m JOIN nodes n ON n.id = m.node_id LEFT JOIN bootenvs b ON b.name = n.bootenv`) : undefined,
    ]);
    if (subnets) {
      this.subnets = subnets.rows.map(cleanSubnet);
      this.nets = this.subnets.map((subnet) => {
        const [net, b] = subnet.cidr.split('/');
        const mask = Number(b) === 0 ? 0 : (0xffffffff << (32 - Number(b))) >>> 0;
        return { subnet, net: (ipToInt(net) & mask) >>> 0, mask, bits: Number(b) };
      }).sort((x, y) => y.bits - x.bits || x.subnet.id - y.subnet.id);
      const byId = new Map(this.subnets.map((s) => [s.id, s]));
      for (const [id, st] of this.states) {
        const s = byId.get(id);
        if (!s || s.proxy) { this.states.delete(id); void this.session?.query(`SELECT pg_advisory_unlock(${LOCK_CLASS}, $1::int)`, [id]).catch(() => undefined); }
        else if (s.cidr !== st.subnet.cidr) { st.setSubnet(s); st.stale = true; } // other rows belong to it now
        else if (JSON.stringify(s.pools) !== JSON.stringify(st.subnet.pools)) st.setSubnet(s);
        else st.subnet = s;
      }
    }
    if (reservations) {
      this.reservations = new Map(reservations.rows.map((r) => [r.mac, r]));
      this.reservedAt = new Map();
      for (const r of reservations.rows) {
        const a = ipToInt(r.address);
        if (!this.reservedAt.has(a)) this.reservedAt.set(a, new Set());
        this.reservedAt.get(a)!.add(r.mac);
      }
      // A reservation removed frees an address the cursors may have passed.
      for (const st of this.states.values()) st.resetCursors();
    }
    if (nodes) this.nodes = new Map(nodes.rows.map((n) => [n.mac, { netboot: n.netboot !== false }]));
  }

  /** A table changed (migration 008's triggers): reload that part; leases deleted: re-read them. */
  private changed(table: string): void {
    if (table.startsWith('leases:')) {
      this.forget(table.slice('leases:'.length).split(',')).catch((err) => {
        this.log(`dhcp: re-reading deleted leases failed: ${err.message}; re-reading the subnets`);
        for (const st of this.states.values()) st.stale = true;
      });
      return;
    }
    if (table === 'leases') {
      for (const st of this.states.values()) st.stale = true;
      this.reloads++;
      return;
    }
    this.dirty.add(table === 'subnets' ? 'subnets' : table === 'reservations' ? 'reservations' : 'nodes');
    if (this.refreshing) return;
    this.refreshing = true;
    void (async () => {
      try {
        for (let i = 0; this.dirty.size && i < 100; i++) {
          const parts = new Set<string>(this.dirty);
          this.dirty.clear();
          await this.load(parts);
          this.reloads++;
        }
      } catch (err) {
        this.log(`dhcp: reloading the configuration failed: ${(err as Error).message}; reloading on the next packet`);
        this.loaded = undefined;
      } finally {
        this.refreshing = false;
      }
    })();
  }

  /** Leases deleted elsewhere: read those addresses back (after our own queued writes) and follow the database. */
  private async forget(addresses: string[]): Promise<void> {
    const before = new Map<string, Entry | undefined>();
    for (const ip of addresses) {
      const s = this.subnetContaining(ip);
      before.set(ip, s ? this.states.get(s.id)?.byAddr.get(ipToInt(ip)) : undefined);
    }
    await this.writer.barrier();
    const r = await this.store.query(
      `SELECT host(address) AS address, mac::text AS mac, state, client_id, hostname,
              extract(epoch FROM expires_at - now()) * 1000 AS left_ms FROM leases WHERE address = ANY($1::inet[])`, [addresses]);
    const rows = new Map(r.rows.map((row) => [row.address as string, row]));
    const now = Date.now();
    for (const ip of addresses) {
      const s = this.subnetContaining(ip);
      const st = s && this.states.get(s.id);
      if (!st) continue;
      const a = ipToInt(ip);
      const e = st.byAddr.get(a);
      if (e !== before.get(ip)) continue; // changed here meanwhile: this process's answer is newer
      const row = rows.get(ip);
      if (row) st.set(a, { mac: row.mac, state: row.state, expires: now + Number(row.left_ms), clientId: row.client_id, hostname: row.hostname });
      else if (e && !(e.state === 'offered' && e.expires > now)) st.byAddr.delete(a);
      st.resetCursors(); // a never-used address again, maybe below the cursor
    }
    this.reloads++;
  }

  // ---- configuration lookups (no I/O) ----

  /** The enabled subnet containing `address`, the most specific one. */
  subnetContaining(address: string): Subnet | null {
    const n = ipToInt(address);
    for (const x of this.nets) if (((n & x.mask) >>> 0) === x.net) return x.subnet;
    return null;
  }

  reservation(mac: string): Reservation | null { return this.reservations.get(mac) ?? null; }
  node(mac: string): { netboot: boolean } | undefined { return this.nodes.get(mac); }

  // ---- leases ----

  /** The subnet's leases if this process owns the subnet (taking it if no one does); null otherwise. */
  private leasesOf(subnet: Subnet): SubnetLeases | null | Promise<SubnetLeases | null> {
    const st = this.states.get(subnet.id);
    if (st && !st.stale) return st;
    let p = this.preparing.get(subnet.id);
    if (!p) {
      p = this.prepare(subnet).finally(() => this.preparing.delete(subnet.id));
      this.preparing.set(subnet.id, p);
    }
    return p;
  }

  private async prepare(subnet: Subnet): Promise<SubnetLeases | null> {
    let st = this.states.get(subnet.id);
    if (!st) {
      if (Date.now() - (this.refused.get(subnet.id) ?? -Infinity) < RETRY_OWNERSHIP_MS) return null;
      const session = await this.connect();
      const ok = (await session.query(`SELECT pg_try_advisory_lock(${LOCK_CLASS}, $1::int) AS ok`, [subnet.id])).rows[0].ok;
      if (!ok) {
        if (!this.refused.has(subnet.id)) this.log(`dhcp: subnet ${subnet.name} is served by another process; not answering for it here`);
        this.refused.set(subnet.id, Date.now());
        return null;
      }
      this.refused.delete(subnet.id);
      st = new SubnetLeases(subnet);
    }
    // Our own queued writes first, so what is read back includes them; what changes here while
    // the rows are read (a binding already under way) is applied again on top of them.
    const changed = new Map<number, Entry>();
    st.changes = changed;
    let r;
    try {
      await this.writer.barrier();
      r = await this.store.query(
        `SELECT host(address) AS address, mac::text AS mac, state, client_id, hostname,
                extract(epoch FROM expires_at - now()) * 1000 AS left_ms
           FROM leases WHERE address <<= $1::cidr ORDER BY updated_at, id`, [subnet.cidr]);
    } finally {
      st.changes = undefined;
    }
    const now = Date.now();
    const old = st.byAddr;
    st.byAddr = new Map();
    st.lastOf = new Map();
    for (const row of r.rows) {
      st.set(ipToInt(row.address), { mac: row.mac, state: row.state, expires: now + Number(row.left_ms), clientId: row.client_id, hostname: row.hostname });
    }
    // Offers live in memory only: those still running survive a reload where nothing else holds the address.
    for (const [a, e] of old) if (e.state === 'offered' && e.expires > now && !held(st.byAddr.get(a), now)) st.set(a, e);
    for (const [a, e] of changed) st.set(a, e);
    st.resetCursors();
    st.stale = false;
    this.states.set(subnet.id, st);
    return st;
  }

  /**
   * Is `a` free for `mac`: not declined, not reserved for other MACs only, not held by another
   * client. The MACs one address is reserved for (a node's NICs, docs/networks.md "DHCP sync") are
   * one client here: any of them may take it, also from another of them.
   */
  private freeFor(st: SubnetLeases, a: number, mac: string, now: number): boolean {
    const macs = this.reservedAt.get(a);
    if (macs && !macs.has(mac)) return false;
    const e = st.byAddr.get(a);
    if (held(e, now) && (e!.state === 'declined' || (e!.mac !== mac && !(macs && e!.mac && macs.has(e!.mac))))) return false;
    return true;
  }

  /** The first never-used pool address, else the one free the longest. */
  private nextFree(st: SubnetLeases, now: number): number | null {
    for (let i = 0; i < st.ranges.length; i++) {
      const last = st.ranges[i][1];
      let c = st.cursors[i];
      while (c <= last && (st.byAddr.has(c) || this.reservedAt.has(c))) c++;
      st.cursors[i] = c;
      if (c <= last) return c;
    }
    let best: number | null = null;
    let bestExpiry = Infinity;
    for (const [a, e] of st.byAddr) {
      if (held(e, now)) continue;
      if (this.reservedAt.has(a) || !st.inPools(a)) continue;
      if (e.expires < bestExpiry) { best = a; bestExpiry = e.expires; }
    }
    return best;
  }

  /** Hold `a` for the client for the offer time (a live binding of the same client is left as it is). */
  private hold(st: SubnetLeases, a: number, client: Client, now: number): void {
    const e = st.byAddr.get(a);
    if (e && e.mac === client.mac && e.state === 'bound' && e.expires > now) return;
    st.set(a, { mac: client.mac, state: 'offered', expires: now + st.subnet.offer_hold_s * 1000, clientId: client.clientId ?? null, hostname: client.hostname ?? null });
  }

  /**
   * Choose and hold an address to offer (RFC 2131 §4.3.1): the client's reservation; else its
   * current or last lease; else the address it asked for if valid and free; else the first
   * never-used pool address; else the one free the longest. A new address is probed first when
   * the subnet says so; one that answers is kept out of use for ten minutes. Choosing and holding
   * happen in one synchronous step, so concurrent DISCOVERs never get the same address.
   * Returns null when the pool is exhausted, undefined when another process serves the subnet.
   */
  async offer(subnet: Subnet, client: Client, requested: string | undefined, probe?: (ip: string) => Promise<boolean>): Promise<string | null | undefined> {
    let st = await this.leasesOf(subnet);
    if (!st) return undefined;
    const reserved = this.reservations.get(client.mac);
    if (reserved && reserved.subnet_id === subnet.id) {
      this.hold(st, ipToInt(reserved.address), client, Date.now());
      return reserved.address;
    }
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const now = Date.now();
      let a: number | null = null;
      let fresh = false;
      const mine = st.lastOf.get(client.mac);
      if (mine !== undefined && st.byAddr.get(mine)?.mac === client.mac && st.byAddr.get(mine)?.state !== 'declined'
        && st.inPools(mine) && this.freeFor(st, mine, client.mac, now)) a = mine;
      else if (requested && st.inPools(ipToInt(requested)) && this.freeFor(st, ipToInt(requested), client.mac, now)) a = ipToInt(requested);
      else { a = this.nextFree(st, now); fresh = true; }
      if (a === null) return null;
      this.hold(st, a, client, now);
      const ip = intToIp(a);
      if (fresh && subnet.probe && probe && (await probe(ip))) {
        // Something answers there already: keep it out of use for a while and say so.
        st = (await this.leasesOf(subnet)) ?? st;
        const prev = st.byAddr.get(a);
        st.set(a, { mac: prev?.mac ?? null, state: 'declined', expires: Date.now() + 600_000, clientId: null, hostname: null });
        this.writer.write({ subnet_id: subnet.id, address: ip, mac: null, client_id: null, hostname: null, state: 'declined', secs: 600, event: false })
          .catch((err) => this.log(`dhcp: recording the conflict at ${ip} failed: ${err.message}`));
        await this.store.tx((tx) => emit(tx, { type: 'dhcp.conflict', object_kind: 'subnet', object_id: subnet.id, payload: { address: ip, subnet: subnet.name } }));
        continue;
      }
      return ip;
    }
    return null;
  }

  /** The client took another server's offer (RFC 2131 §4.3.2): let our hold lapse. */
  dropOffer(subnet: Subnet, mac: string): void {
    const st = this.states.get(subnet.id);
    const a = st?.lastOf.get(mac);
    const e = a === undefined ? undefined : st!.byAddr.get(a);
    if (e && e.mac === mac && e.state === 'offered') st!.set(a!, { ...e, expires: Date.now() });
  }

  /**
   * Bind `address` to the client (REQUEST): 'unknown' when we hold no record of this client at
   * that address and it is not reserved for it; 'taken' when someone else holds it; 'bound' once
   * the binding is committed; 'backlog' when the database is too far behind to take it now.
   * undefined when another process serves the subnet.
   */
  async bind(subnet: Subnet, client: Client, address: string, reserved: boolean): Promise<'unknown' | 'taken' | 'bound' | 'backlog' | undefined> {
    const st = await this.leasesOf(subnet);
    if (!st) return undefined;
    if (this.writer.backlogged) return 'backlog';
    const a = ipToInt(address);
    const now = Date.now();
    if (st.byAddr.get(a)?.mac !== client.mac && !reserved) return 'unknown';
    if (!this.freeFor(st, a, client.mac, now)) return 'taken';
    const entry: Entry = { mac: client.mac, state: 'bound', expires: now + subnet.lease_time_s * 1000, clientId: client.clientId ?? null, hostname: client.hostname ?? null };
    st.set(a, entry);
    await this.persist(st, subnet, address, entry, subnet.lease_time_s);
    return 'bound';
  }

  /** RELEASE or DECLINE of the client's own lease; false when it holds none at that address. */
  async end(subnet: Subnet, mac: string, address: string, state: 'released' | 'declined'): Promise<boolean> {
    const st = await this.leasesOf(subnet);
    if (!st) return false;
    const a = ipToInt(address);
    const e = st.byAddr.get(a);
    if (!e || e.mac !== mac) return false;
    const secs = state === 'declined' ? 3600 : 0;
    const entry: Entry = { ...e, state, expires: Date.now() + secs * 1000 };
    st.set(a, entry);
    await this.persist(st, subnet, address, entry, secs);
    return true;
  }

  private async persist(st: SubnetLeases, subnet: Subnet, address: string, e: Entry, secs: number): Promise<void> {
    try {
      const event = e.mac !== null && this.nodes.has(e.mac) ? 'listed' : 'counted';
      await this.writer.write({ subnet_id: subnet.id, address, mac: e.mac, client_id: e.clientId, hostname: e.hostname, state: e.state, secs, event });
    } catch (err) {
      // Memory may now say more than the database: read the subnet back before the next answer.
      st.stale = true;
      throw err;
    }
  }

  /** Pool exhausted: one event per subnet per 30 s, not one per DISCOVER of a storm. */
  async exhausted(subnet: Subnet, mac: string): Promise<void> {
    const last = this.lastExhausted.get(subnet.id) ?? -Infinity;
    if (Date.now() - last < 30_000) return;
    this.lastExhausted.set(subnet.id, Date.now());
    await this.store.tx((tx) => emit(tx, { type: 'dhcp.exhausted', object_kind: 'subnet', object_id: subnet.id, payload: { subnet: subnet.name, mac } }));
  }

  /** Lease events are committed with their batch; consumers are woken at most every NOTIFY_EVERY_MS. */
  private notifySoon(): void {
    if (this.notifyTimer || this.stopped) return;
    const wait = Math.max(0, this.lastNotify + NOTIFY_EVERY_MS - Date.now());
    const send = () => {
      this.notifyTimer = undefined;
      this.lastNotify = Date.now();
      this.store.query(`NOTIFY ${NOTIFY_CHANNEL}`).catch(() => undefined);
    };
    if (wait === 0) send();
    else this.notifyTimer = setTimeout(send, wait);
  }
}
