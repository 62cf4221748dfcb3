// The service registry (DESIGN.md §4): the server's own services (api, dhcp, provisioner, and
// ntp/dns/logging when this server runs them) register themselves with their addresses; an
// operator registers external ones (an existing NTP or DNS server), which win over internal ones
// of the same name. Roles read a service through one attrib: the `core-services` role (content
// pack `core`, a service role run by the server jig) resolves the registry into its wall, where
// `service-ntp`, `service-dns`, ... point; a change to the registry re-runs it, and the attrib
// injection pokes the roles whose service changed.
import type { Sql, Store, Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { pokeIfActive } from '../model/deployments.js';
import { sameValue } from '../model/data.js';
import type { RunContext, JigResult } from '../annealer/jigs.js';

/** Services roles look for; each is always in the resolved map (null when nobody provides it). */
export const WELL_KNOWN = ['api', 'dhcp', 'dns', 'logging', 'ntp', 'provisioner'] as const;

export interface ServiceEndpoint { addresses: string[]; port: number | null; url: string | null; source: 'internal' | 'external' }
export type ResolvedServices = Record<string, ServiceEndpoint | null>;

/** The role whose wall carries the resolved registry (content/core). */
export const RESOLVER_ROLE = 'core-services';

/**
 * Name -> endpoint. External registrations win; internal ones of one name (one per replica) are
 * merged: every replica's addresses, in replica order, without duplicates.
 */
export async function resolveServices(sql: Sql): Promise<ResolvedServices> {
  const rows = (await sql.query(
    `SELECT name, source, addresses, port, url FROM services ORDER BY name, source = 'external' DESC, replica_id, id`)).rows;
  const out: ResolvedServices = Object.fromEntries(WELL_KNOWN.map((n) => [n, null]));
  for (const r of rows) {
    const cur = out[r.name];
    if (!cur) { out[r.name] = { addresses: [...r.addresses], port: r.port, url: r.url, source: r.source }; continue; }
    if (cur.source === 'external') continue;
    for (const a of r.addresses) if (!cur.addresses.includes(a)) cur.addresses.push(a);
    cur.port ??= r.port;
    cur.url ??= r.url;
  }
  return out;
}

/** Re-run every resolver noderole whose last answer differs from the registry now (same transaction as the change). */
export async function pokeResolvers(tx: Tx, reason: string): Promise<number> {
  const now = await resolveServices(tx);
  const resolvers = (await tx.query(
    `SELECT nr.id, nr.wall FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE r.name = $1 AND nr.state = 'ACTIVE' ORDER BY nr.id`, [RESOLVER_ROLE])).rows;
  let poked = 0;
  for (const nr of resolvers) {
    if (sameServices(nr.wall?.services ?? {}, now)) continue;
    if (await pokeIfActive(tx, nr.id, { reason })) poked++;
  }
  return poked;
}

/** The wall comes back from jsonb with its keys reordered: compare canonically. */
const sameServices = (before: Record<string, unknown>, now: ResolvedServices) => {
  const names = new Set([...Object.keys(before), ...Object.keys(now)]);
  for (const n of names) if (!sameValue(before[n] ?? null, now[n] ?? null)) return false;
  return true;
};

export interface InternalService { name: string; addresses: string[]; port?: number; url?: string; description?: string }

/** A replica's own services, replacing what it registered before (at every start). */
export async function registerInternalServices(store: Store, replicaId: string, services: InternalService[]): Promise<void> {
  await store.tx(async (tx) => {
    await tx.query(`DELETE FROM services WHERE source = 'internal' AND replica_id = $1`, [replicaId]);
    for (const s of services) {
      if (s.addresses.length === 0) continue;
      await tx.query(
        `INSERT INTO services (name, source, replica_id, addresses, port, url, description) VALUES ($1, 'internal', $2, $3, $4, $5, $6)`,
        [s.name, replicaId, s.addresses, s.port ?? null, s.url ?? null, s.description ?? '']);
    }
    await emit(tx, { type: 'service.registered', object_kind: 'replica', object_id: null, payload: { replica: replicaId, services: services.map((s) => s.name) } });
    await pokeResolvers(tx, `services of replica ${replicaId} changed`);
  });
}

/**
 * Server-jig code of `core-services`: the resolved registry as its wall. Services that vanished
 * since its last run are written as null (the wall is merged run after run, so absent keys would stay).
 */
export function resolverRole(store: Store): (ctx: RunContext) => Promise<JigResult> {
  return async (ctx) => {
    const now = await resolveServices(store);
    const prev = (await store.query(`SELECT wall FROM noderoles WHERE id = $1`, [ctx.input.noderole.id])).rows[0]?.wall?.services ?? {};
    const services: Record<string, unknown> = Object.fromEntries(Object.keys(prev).map((n) => [n, null]));
    Object.assign(services, now);
    const lines = Object.entries(now).map(([n, s]) => `${n}: ${s ? `${s.addresses.join(', ')}${s.port ? ` port ${s.port}` : ''} (${s.source})` : 'none registered'}`);
    return { status: 'succeeded', wall: { services }, log: `resolved the service registry:\n${lines.join('\n')}\n` };
  };
}
