// The peers of a cluster role (DESIGN.md §2 `cluster`, §5 etcd): server-jig code for a "peers"
// role bound beside each member (implicit), which lists every noderole of the cluster role in the
// deployment with the node's address and whether it already is a member (has run successfully).
// The member's own role wants that list (attribute injection), so its scripts know whom to
// bootstrap with or join. Kept current by one rule: when the member set changes — a peer's run
// succeeds for the first time, or a peer is unbound — the peers list of the lowest-id remaining
// member is re-run if it differs, so that member reconciles the cluster (etcd: member remove) and
// republishes what dependents consume (etcd: the client endpoints). Other members are not re-run.
import type { Sql, Store, Tx } from '../store/db.js';
import type { EventStream } from '../events/stream.js';
import type { Event } from '../events/outbox.js';
import type { RunContext, JigResult } from '../annealer/jigs.js';
import { getPath, setPath } from '../model/data.js';
import { pokeIfActive } from '../model/deployments.js';
import { nodeAddresses } from './node-address.js';

export interface ClusterPeersSpec {
  /** The role whose server-jig code this is (bound implicitly beside each member). */
  peersRole: string;
  /** The cluster role whose noderoles are listed. */
  clusterRole: string;
  /** The attrib (owned by peersRole) the list is published as. */
  attrib: string;
}

export interface Peer { name: string; address: string | null; member: boolean; noderole: number }

export async function listPeers(tx: Sql, clusterRole: string, deploymentId: number): Promise<Peer[]> {
  const rows = (await tx.query(
    `SELECT nr.id, nr.node_id, n.name, nr.run_count FROM noderoles nr JOIN roles r ON r.id = nr.role_id JOIN nodes n ON n.id = nr.node_id
      WHERE r.name = $1 AND nr.deployment_id = $2 ORDER BY nr.id`, [clusterRole, deploymentId])).rows;
  const addresses = await nodeAddresses(tx, rows.map((r) => r.node_id));
  return rows.map((r) => ({ name: r.name, address: addresses.get(r.node_id) ?? null, member: r.run_count > 0, noderole: Number(r.id) }));
}

async function attribMap(tx: Sql, attrib: string): Promise<string> {
  const r = await tx.query(`SELECT map FROM attribs WHERE name = $1`, [attrib]);
  if (!r.rowCount) throw new Error(`attrib ${attrib} does not exist; import the content pack that defines it`);
  return r.rows[0].map;
}

export function clusterPeersRole(store: Store, spec: ClusterPeersSpec): (ctx: RunContext) => Promise<JigResult> {
  return async (ctx) => {
    const peers = await listPeers(store, spec.clusterRole, ctx.input.deployment.id);
    const missing = peers.filter((p) => !p.address).map((p) => p.name);
    if (missing.length) {
      return { status: 'failed', message: `no address known for ${missing.join(', ')} (peers of ${spec.clusterRole} in deployment ${ctx.input.deployment.name}): give the node a DHCP lease or reservation, or set its hint "address"` };
    }
    const list = peers.map(({ name, address, member }) => ({ name, address, member }));
    const log = list.map((p) => `${p.name} ${p.address}${p.member ? ' (member)' : ''}`).join('\n');
    return { status: 'succeeded', wall: setPath({}, await attribMap(store, spec.attrib), list), log: `${spec.clusterRole} peers in ${ctx.input.deployment.name}:\n${log}\n` };
  };
}

/** The rule in the header: re-run the lowest-id member's peers list when the member set changed. */
export async function refreshPeers(tx: Tx, spec: ClusterPeersSpec, deploymentId: number): Promise<number | null> {
  const peers = await listPeers(tx, spec.clusterRole, deploymentId);
  const first = peers.find((p) => p.member);
  if (!first) return null;
  const view = (await tx.query(
    `SELECT p.id, p.wall FROM noderoles p JOIN roles r ON r.id = p.role_id
      WHERE r.name = $1 AND p.node_id = (SELECT node_id FROM noderoles WHERE id = $2) AND p.state = 'ACTIVE'`, [spec.peersRole, first.noderole])).rows[0];
  if (!view) return null;
  const seen = new Set(((getPath(view.wall, await attribMap(tx, spec.attrib)) ?? []) as Array<{ name: string }>).map((p) => p.name));
  const bound = new Set(peers.map((p) => p.name));
  // Changed: a member it has not listed (joined since), or a peer it listed that is unbound now.
  // A bound peer that is not a member yet is no change until its first success.
  if (!peers.some((p) => p.member && !seen.has(p.name)) && ![...seen].some((n) => !bound.has(n))) return null;
  return (await pokeIfActive(tx, view.id, { reason: `${spec.clusterRole} members changed`, cluster: spec.clusterRole })) ? view.id : null;
}

/** Subscribe the rule to committed events; only the leader acts (the poke is idempotent anyway). */
export function watchClusterPeers(store: Store, events: EventStream, isLeader: () => boolean, specs: ClusterPeersSpec[], log: (m: string) => void): () => void {
  const byRole = new Map(specs.map((s) => [s.clusterRole, s]));
  return events.subscribe({ types: ['noderole.state', 'noderole.deleted'] }, (e: Event) => {
    const spec = byRole.get(String(e.payload.role));
    if (!spec || !isLeader() || e.deployment_id === null) return;
    if (e.type === 'noderole.state' && e.payload.to !== 'ACTIVE') return;
    void store.tx((tx) => refreshPeers(tx, spec, e.deployment_id!))
      .then((poked) => { if (poked) log(`${spec.clusterRole} members changed in deployment ${e.deployment_id}: re-running ${spec.peersRole} noderole ${poked}`); })
      .catch((err) => log(`refreshing ${spec.clusterRole} peers: ${(err as Error).message}`));
  });
}
