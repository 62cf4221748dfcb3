// Networks in the API (docs/api.md "Networks"): the collections networks, network-ranges,
// network-routers and network-allocations (list/show/create/patch/delete like every object), plus
// POST /api/v1/networks/:key/nodes, which allocates a node's addresses and binds the network's
// role in one transaction. A per-replica event subscriber keeps bindings made any other way, MAC
// and inventory changes in step (allocation, DHCP reservations, plans).
import type { FastifyInstance } from 'fastify';
import { Type as T } from 'typebox';
import type { Store } from '../store/db.js';
import type { EventStream } from '../events/stream.js';
import type { Event } from '../events/outbox.js';
import { conflict, FulcrumError } from '../model/errors.js';
import { bind } from '../model/binding.js';
import { findNode } from '../model/lookup.js';
import type { Resource } from '../api/resources.js';
import { deleteNetwork, deleteRange, findNetwork, rangesOf, refreshNetworkPlans, roleName, setRouter, writeNetwork, writeRange, type NetworkInput } from './networks.js';
import { checkRange } from './ranges.js';
import { allocate, release } from './allocations.js';
import { syncReservations } from './dhcp-sync.js';
import { planText, refreshPlans } from './plan.js';
import { networkPrefix6 } from './ipv6.js';

const Name = T.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 60 });
const Key = T.Union([T.String({ minLength: 1, maxLength: 300 }), T.Integer({ minimum: 1 })]);
const RangeFields = {
  first: T.String({ minLength: 1, maxLength: 60 }), last: T.String({ minLength: 1, maxLength: 60 }),
  allow_bound_leases: T.Optional(T.Boolean()), allow_anon_leases: T.Optional(T.Boolean()),
  bound_lease_time: T.Optional(T.Integer({ minimum: 0 })), anon_lease_time: T.Optional(T.Integer({ minimum: 0 })),
};
const Range = T.Object({ name: Name, ...RangeFields }, { additionalProperties: false });
const Router = T.Object({ address: T.String({ minLength: 1, maxLength: 60 }), pref: T.Optional(T.Integer({ minimum: 0 })) }, { additionalProperties: false });
const NetworkFields = {
  description: T.Optional(T.String()), category: Name, conduit: T.String({ minLength: 1, maxLength: 200 }),
  vlan: T.Optional(T.Integer({ minimum: 0, maximum: 4094 })), use_vlan: T.Optional(T.Boolean()), use_bridge: T.Optional(T.Boolean()),
  team_mode: T.Optional(T.Integer({ minimum: 0, maximum: 6 })), use_team: T.Optional(T.Boolean()), configure: T.Optional(T.Boolean()),
  v6prefix: T.Optional(T.Union([T.String({ maxLength: 60 }), T.Null()])),
  ranges: T.Optional(T.Array(Range, { maxItems: 100 })), router: T.Optional(T.Union([Router, T.Null()])),
};
export const NetworkCreate = T.Object({ name: Name, ...NetworkFields }, { additionalProperties: false });
export const NetworkPatch = T.Partial(T.Object(NetworkFields), { additionalProperties: false });
export const RangeCreate = T.Object({ network: Key, name: Name, ...RangeFields }, { additionalProperties: false });
export const RangePatch = T.Partial(T.Object(RangeFields), { additionalProperties: false });
export const RouterCreate = T.Object({ network: Key, address: T.String({ minLength: 1, maxLength: 60 }), pref: T.Optional(T.Integer({ minimum: 0 })) }, { additionalProperties: false });
export const RouterPatch = T.Object({ address: T.Optional(T.String({ minLength: 1, maxLength: 60 })), pref: T.Optional(T.Integer({ minimum: 0 })) }, { additionalProperties: false });
export const AllocationCreate = T.Object({ node: Key, network: Key, range: T.Optional(Name), address: T.Optional(T.String({ minLength: 1, maxLength: 60 })) }, { additionalProperties: false });
export const NetworkBind = T.Object({
  node: Key, range: T.Optional(Name), address: T.Optional(T.String({ minLength: 1, maxLength: 60 })),
  deployment: T.Optional(Key), commit: T.Optional(T.Boolean()),
}, { additionalProperties: false });

const NETWORK_VIEW = `SELECT n.id, n.uuid, n.name, n.description, n.category, n.conduit, n.vlan, n.use_vlan, n.use_bridge, n.team_mode, n.use_team,
    n.configure, n.v6prefix, n.content_pack,
    COALESCE((SELECT json_agg(json_build_object('name', r.name, 'first', host(r.first) || '/' || masklen(r.first), 'last', host(r.last) || '/' || masklen(r.last),
       'allow_bound_leases', r.allow_bound_leases, 'allow_anon_leases', r.allow_anon_leases, 'bound_lease_time', r.bound_lease_time, 'anon_lease_time', r.anon_lease_time) ORDER BY r.id)
       FROM network_ranges r WHERE r.network_id = n.id), '[]') AS ranges,
    (SELECT json_build_object('address', host(x.address), 'pref', x.pref) FROM network_routers x WHERE x.network_id = n.id) AS router,
    'network-' || n.name AS role, n.version, n.created_at, n.updated_at FROM networks n`;

const networkBody = (row: any, m: any): NetworkInput => ({ ...m, name: row.name, content_pack: row.content_pack });

export const NETWORK_RESOURCES: Resource[] = [
  {
    kind: 'networks', what: 'network', named: true, view: NETWORK_VIEW,
    filters: ['name', 'category', 'configure', 'conduit', 'content_pack'],
    create: { schema: NetworkCreate, run: async (tx, b) => (await writeNetwork(tx, null, b)).id },
    patch: {
      schema: NetworkPatch,
      editable: (n) => ({ description: n.description, category: n.category, conduit: n.conduit, vlan: n.vlan, use_vlan: n.use_vlan, use_bridge: n.use_bridge,
        team_mode: n.team_mode, use_team: n.use_team, configure: n.configure, v6prefix: n.v6prefix, ranges: n.ranges, router: n.router }),
      run: async (tx, row, m) => { await writeNetwork(tx, row.id, networkBody(row, m)); },
    },
    remove: async (tx, row) => deleteNetwork(tx, await findNetwork(tx, row.id)),
  },
  {
    kind: 'network-ranges', what: 'network range', named: false,
    view: `SELECT r.id, r.uuid, n.name AS network, r.network_id, r.name, host(r.first) || '/' || masklen(r.first) AS first, host(r.last) || '/' || masklen(r.last) AS last,
             r.allow_bound_leases, r.allow_anon_leases, r.bound_lease_time, r.anon_lease_time,
             (SELECT count(*)::int FROM network_allocations a WHERE a.range_id = r.id) AS allocated,
             (host(r.last)::inet - host(r.first)::inet + 1)::bigint AS size, r.version, r.created_at, r.updated_at
             FROM network_ranges r JOIN networks n ON n.id = r.network_id`,
    filters: ['network', 'name', 'network_id'],
    create: {
      schema: RangeCreate,
      run: async (tx, b) => {
        const network = await findNetwork(tx, b.network);
        const { network: _n, ...range } = b;
        if ((await rangesOf(tx, network.id)).some((r) => r.name === b.name)) throw conflict(`network ${network.name} already has a range named ${b.name}`);
        return writeRange(tx, network, null, checkRange(range));
      },
    },
    patch: {
      schema: RangePatch,
      editable: (r) => ({ first: r.first, last: r.last, allow_bound_leases: r.allow_bound_leases, allow_anon_leases: r.allow_anon_leases,
        bound_lease_time: r.bound_lease_time, anon_lease_time: r.anon_lease_time }),
      run: async (tx, row, m) => { await writeRange(tx, await findNetwork(tx, row.network_id), row.id, checkRange({ ...m, name: row.name })); },
    },
    remove: (tx, row) => deleteRange(tx, { name: row.network }, row),
  },
  {
    kind: 'network-routers', what: 'network router', named: false,
    view: `SELECT x.id, n.name AS network, x.network_id, host(x.address) AS address, x.pref, x.version, x.created_at, x.updated_at
             FROM network_routers x JOIN networks n ON n.id = x.network_id`,
    filters: ['network', 'network_id'],
    create: {
      schema: RouterCreate,
      run: async (tx, b) => {
        const network = await findNetwork(tx, b.network);
        const had = await tx.query('SELECT 1 FROM network_routers WHERE network_id = $1', [network.id]);
        if (had.rowCount) throw conflict(`network ${network.name} already has a router; change it with PATCH`);
        await setRouter(tx, network, { address: b.address, pref: b.pref }, '');
        await refreshNetworkPlans(tx, network.id);
        return (await tx.query('SELECT id FROM network_routers WHERE network_id = $1', [network.id])).rows[0].id;
      },
    },
    patch: {
      schema: RouterPatch, editable: (x) => ({ address: x.address, pref: x.pref }),
      run: async (tx, row, m) => { await setRouter(tx, await findNetwork(tx, row.network_id), m, ''); await refreshNetworkPlans(tx, row.network_id); },
    },
    remove: async (tx, row) => { await tx.query('DELETE FROM network_routers WHERE id = $1', [row.id]); await refreshNetworkPlans(tx, row.network_id); },
  },
  {
    kind: 'network-allocations', what: 'network allocation', named: false,
    view: `SELECT a.id, a.uuid, x.name AS node, a.node_id, n.name AS network, a.network_id, n.category, r.name AS range, a.range_id,
             host(a.address) AS address, masklen(a.address) AS prefix, family(a.address) AS family, a.version, a.created_at, a.updated_at
             FROM network_allocations a JOIN networks n ON n.id = a.network_id JOIN nodes x ON x.id = a.node_id LEFT JOIN network_ranges r ON r.id = a.range_id`,
    filters: ['node', 'network', 'category', 'range', 'address', 'family', 'node_id', 'network_id'],
    create: {
      schema: AllocationCreate,
      run: async (tx, b) => {
        const rows = await allocate(tx, b);
        const v4first = rows.find((r) => r.range_id !== null) ?? rows[0];
        return v4first.id;
      },
    },
    remove: (tx, row) => release(tx, row.id),
  },
];

/** Routes beyond the collections, and the subscriber that keeps bindings, MACs and inventory in step. */
export function registerNetworkApi(app: FastifyInstance, store: Store, events: EventStream | undefined, log: (m: string) => void = () => {}): void {
  app.post('/api/v1/networks/:key/nodes', { config: { capability: 'networks:write' }, schema: { body: NetworkBind, tags: ['networks'] } }, async (req, reply) => {
    const b = req.body as { node: string | number; range?: string; address?: string; deployment?: string | number; commit?: boolean };
    const key = (req.params as { key: string }).key;
    const result = await store.tx(async (tx) => {
      const network = await findNetwork(tx, key);
      const node = await findNode(tx, b.node, 'node');
      const allocations = await allocate(tx, { node: node.id, network: network.id, range: b.range, address: b.address });
      const { id } = await bind(tx, { role: roleName(network.name), node: node.id, deployment: b.deployment, commit: b.commit });
      await refreshPlans(tx, node.id);
      return { network: network.name, node: node.name, noderole: id, allocations: allocations.map((a) => ({ id: a.id, address: a.address, range_id: a.range_id })) };
    });
    return reply.status(201).send(result);
  });

  app.get('/api/v1/networks/:key/v6prefix', { config: { capability: 'networks:read' }, schema: { tags: ['networks'] } }, async (req) => {
    const network = await findNetwork(store, (req.params as { key: string }).key);
    return { network: network.name, v6prefix: network.v6prefix, prefix: await networkPrefix6(store, network) };
  });

  if (!events) return;
  const onEvent = (e: Event) => {
    void react(store, e).catch((err) => log(`networks: event ${e.id} (${e.type}): ${(err as Error).message}`));
  };
  const unsubscribe = events.subscribe({ types: ['noderole.created', 'node.updated', 'node.registered', 'node.macs'] }, onEvent);
  app.addHook('onClose', async () => unsubscribe());
}

/** A binding made through POST /noderoles allocates; a MAC or inventory change redoes reservations and plans. */
async function react(store: Store, e: Event): Promise<void> {
  if (e.type === 'noderole.created') {
    const role = String(e.payload.role ?? '');
    if (!role.startsWith('network-') || !e.node_id) return;
    await store.tx(async (tx) => {
      const n = await tx.query(`SELECT id FROM networks WHERE 'network-' || name = $1`, [role]);
      if (!n.rowCount) return;
      const exists = await tx.query(`SELECT 1 FROM nodes WHERE id = $1`, [e.node_id]);
      if (!exists.rowCount) return;
      await allocate(tx, { node: e.node_id!, network: n.rows[0].id });
      await refreshPlans(tx, e.node_id!);
    }).catch(async (err) => {
      // The node's role must say why it has no address (a full range, say), not just that it has none.
      if (!(err instanceof FulcrumError)) throw err;
      const network = role.slice('network-'.length);
      await store.query(
        `UPDATE noderoles nr SET sys_data = jsonb_set(nr.sys_data, '{network}', COALESCE(nr.sys_data->'network', '{}'::jsonb)
            || jsonb_build_object($3::text, jsonb_build_object('plan', $4::text)))
           FROM roles r WHERE r.id = nr.role_id AND r.name = $2 AND nr.node_id = $1`,
        [e.node_id, role, network, planText({ NET_NAME: network, CONFIGURE: '1', ERROR: `no address: ${err.message}` })]);
    });
    return;
  }
  // node.updated does not say when only MACs changed (and registration sets them directly): resync on every change.
  if (!e.node_id) return;
  // Most node changes concern nodes without addresses or reservations: nothing to redo.
  const involved = await store.query(
    `SELECT 1 FROM network_allocations WHERE node_id = $1 UNION ALL SELECT 1 FROM reservations WHERE node_id = $1 LIMIT 1`, [e.node_id]);
  if (!involved.rowCount) return;
  await store.tx(async (tx) => {
    if (!(await tx.query(`SELECT 1 FROM nodes WHERE id = $1`, [e.node_id])).rowCount) return;
    await syncReservations(tx, e.node_id!);
    await refreshPlans(tx, e.node_id!);
  });
}

