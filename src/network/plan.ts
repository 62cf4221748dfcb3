// A node's plan on a network: what the `network-<name>` role script does on the node (address,
// IPv6 address, route, VLAN sub-interface, bond, bridge), computed here from the node's
// allocations and the NICs in its inventory (the conduit resolved), and handed to the script as
// the attrib `network-<name>-plan`: shell assignments, one per line, every value single-quoted.
import type { Sql, Tx } from '../store/db.js';
import { resolveConduit, type Nic } from './conduits.js';
import { planMap, type NetworkRow } from './networks.js';
import { shellQuote } from '../agent/bundle.js';

export interface PlanInput {
  node: { name: string; inventory: Record<string, unknown> };
  network: Pick<NetworkRow, 'name' | 'category' | 'conduit' | 'vlan' | 'use_vlan' | 'use_bridge' | 'team_mode' | 'use_team' | 'configure'>;
  address4?: string; address6?: string;
  router?: { address: string; pref: number };
  /** True when this network's router has the lowest preference of the node's networks. */
  defaultRoute: boolean;
}

const IFNAMSIZ = 15;
const ifname = (s: string) => s.slice(0, IFNAMSIZ);

/** Pure: the plan as an object (all strings). */
export function computePlan(p: PlanInput): Record<string, string> {
  const n = p.network;
  const plan: Record<string, string> = {
    NET_NAME: n.name, NET_CATEGORY: n.category, CONFIGURE: n.configure ? '1' : '0', CONDUIT: n.conduit,
    MEMBERS: '', BOND: '', TEAM_MODE: String(n.team_mode), VLAN: n.use_vlan ? String(n.vlan) : '0', VLAN_IFACE: '', BRIDGE: '', IFACE: '',
    ADDRESS: p.address4 ?? '', ADDRESS6: p.address6 ?? '', ROUTER: p.router?.address ?? '', DEFAULT_ROUTE: p.defaultRoute ? '1' : '0', ERROR: '',
  };
  if (!p.address4 && !p.address6) {
    plan.ERROR = `no address is allocated to ${p.node.name} on network ${n.name}; allocate one (POST /api/v1/networks/${n.name}/nodes)`;
    return plan;
  }
  const nics = Array.isArray(p.node.inventory?.nics) ? (p.node.inventory.nics as Nic[]) : [];
  let members: string[];
  try {
    members = resolveConduit(n.conduit, nics, `node ${p.node.name}`);
  } catch (err) {
    plan.ERROR = (err as Error).message;
    return plan;
  }
  plan.MEMBERS = members.join(' ');
  let base = members[0];
  if (n.use_team) {
    plan.BOND = ifname(`bond-${members[0]}`);
    base = plan.BOND;
  }
  if (n.use_vlan) {
    const name = `${base}.${n.vlan}`;
    plan.VLAN_IFACE = name.length <= IFNAMSIZ ? name : ifname(`vlan${n.vlan}`);
    base = plan.VLAN_IFACE;
  }
  if (n.use_bridge) {
    plan.BRIDGE = ifname(`br-${n.name}`);
    plan.BRIDGE_PORT = base;
    base = plan.BRIDGE;
  }
  plan.IFACE = base;
  return plan;
}

export const planText = (plan: Record<string, string>) => Object.entries(plan).map(([k, v]) => `${k}=${shellQuote(v)}`).join('\n') + '\n';

/** The plan of `nodeId` on `network`, from the store. */
export async function planFor(sql: Sql, nodeId: number, network: NetworkRow): Promise<Record<string, string>> {
  const node = (await sql.query(`SELECT name, inventory FROM nodes WHERE id = $1`, [nodeId])).rows[0];
  const allocs = (await sql.query(
    `SELECT host(address) || '/' || masklen(address) AS address, family(address) AS family FROM network_allocations WHERE node_id = $1 AND network_id = $2`,
    [nodeId, network.id])).rows;
  const router = (await sql.query(`SELECT host(address) AS address, pref FROM network_routers WHERE network_id = $1`, [network.id])).rows[0];
  const best = (await sql.query(
    `SELECT r.network_id FROM network_routers r WHERE EXISTS (SELECT 1 FROM network_allocations a WHERE a.node_id = $1 AND a.network_id = r.network_id AND family(a.address) = family(r.address))
      ORDER BY r.pref, r.network_id LIMIT 1`, [nodeId])).rows[0];
  return computePlan({
    node, network,
    address4: allocs.find((a) => a.family === 4)?.address, address6: allocs.find((a) => a.family === 6)?.address,
    router, defaultRoute: !!router && best?.network_id === network.id,
  });
}

/** Rewrite the plan in every network noderole of the node (after an allocation, a router or inventory change). */
export async function refreshPlans(tx: Tx, nodeId: number): Promise<void> {
  const nrs = (await tx.query(
    `SELECT nr.id AS noderole_id, n.* FROM noderoles nr JOIN roles r ON r.id = nr.role_id JOIN networks n ON 'network-' || n.name = r.name WHERE nr.node_id = $1`, [nodeId])).rows;
  for (const nr of nrs) {
    const text = planText(await planFor(tx, nodeId, nr as NetworkRow));
    const keys = planMap(nr.name).split('/');
    await tx.query(
      `UPDATE noderoles SET sys_data = jsonb_set(sys_data, '{network}', COALESCE(sys_data->'network', '{}'::jsonb)
          || jsonb_build_object($2::text, COALESCE(sys_data->'network'->$2, '{}'::jsonb) || jsonb_build_object('plan', $3::text))),
          version = version + 1, updated_at = now()
        WHERE id = $1 AND (sys_data #>> $4::text[]) IS DISTINCT FROM $3`, [nr.noderole_id, nr.name, text, keys]);
  }
}
