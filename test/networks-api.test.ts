// Networks through a real server and PostgreSQL (issue 7 items 1-3, 7): validation that names
// the field and stores nothing, the network role, allocation order (hint, admin host part, first
// free), out of addresses, IPv6 auto addresses, DHCP reservations kept in step with the admin
// address, and a node delete that leaves no reservation, lease or allocation behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import pg from 'pg';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import { freshDatabaseUrl, stopOwnCluster } from './support/db.js';

let t: TestServer;
let db: pg.Client;
const api = (m: string, p: string, b?: unknown) => t.api(m, p, b);

before(async () => {
  const url = await freshDatabaseUrl();
  t = await startTestServer({ databaseUrl: url });
  db = new pg.Client({ connectionString: url });
  await db.connect();
});
after(async () => { await db?.end(); await t?.close(); await stopOwnCluster(); });

const ADMIN = {
  name: 'admin', category: 'admin', conduit: '10g0', v6prefix: 'auto',
  ranges: [{ name: 'host', first: '10.10.0.10/24', last: '10.10.0.200/24' }, { name: 'dhcp', first: '10.10.0.201/24', last: '10.10.0.250/24' }],
  router: { address: '10.10.0.1', pref: 10 },
};

const counts = async () => (await db.query(`SELECT (SELECT count(*) FROM networks)::int AS networks, (SELECT count(*) FROM network_ranges)::int AS ranges,
  (SELECT count(*) FROM roles WHERE name LIKE 'network-%')::int AS roles, (SELECT count(*) FROM network_routers)::int AS routers`)).rows[0];

test('networks: created with ranges, router and role; bad input names the field and stores nothing', async () => {
  const created = await api('POST', '/api/v1/networks', ADMIN);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.role, 'network-admin');
  assert.deepEqual(created.body.router, { address: '10.10.0.1', pref: 10 });
  assert.deepEqual(created.body.ranges.map((r: any) => [r.name, r.first, r.last, r.allow_bound_leases, r.allow_anon_leases]),
    [['host', '10.10.0.10/24', '10.10.0.200/24', true, false], ['dhcp', '10.10.0.201/24', '10.10.0.250/24', false, true]]);
  const role = (await api('GET', '/api/v1/roles/network-admin')).body;
  assert.equal(role.jig, 'script');
  assert.match(role.jig_config.scripts['10-network.sh'], /ip addr replace/);
  assert.equal((await api('GET', '/api/v1/attribs/network-admin-plan')).body.map, 'network/admin/plan');

  const before = await counts();
  const bad: Array<[unknown, string, RegExp]> = [
    [{ name: 'n1', conduit: '1g0' }, 'category', /category/],
    [{ name: 'n1', category: 'storage', conduit: 'eth0' }, 'conduit', /neither/],
    [{ name: 'n1', category: 'storage', conduit: '1g0,1g1' }, 'use_team', /use_team/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', vlan: 4095 }, 'vlan', /4094/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', use_vlan: true }, 'vlan', /outside 1-4094/],
    [{ name: 'n1', category: 'storage', conduit: '10g0,10g1', use_team: true }, 'conduit', /partly overlaps conduit "10g0" of network admin/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', v6prefix: '2001:db8::/48' }, 'v6prefix', /\/64/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', ranges: [{ name: 'host', first: '10.20.0.10/24', last: '10.20.0.255/24' }] }, 'ranges[0].last', /broadcast/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', ranges: [{ name: 'host', first: '10.20.0.10/24', last: '10.20.0.20/24' }, { name: 'more', first: '10.20.0.20/24', last: '10.20.0.30/24' }] }, 'ranges[1].first', /same network/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', ranges: [{ name: 'host', first: '10.10.0.100/16', last: '10.10.1.10/16' }] }, 'ranges[0].first', /overlaps range admin\.host .*configure: false/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', ranges: [{ name: 'host', first: '10.20.0.10/24', last: '10.20.0.20/24', bound_lease_time: 5 }] }, 'ranges[0].bound_lease_time', /at least 60/],
    [{ name: 'n1', category: 'storage', conduit: '1g0', ranges: [{ name: 'host', first: '10.20.0.10/24', last: '10.20.0.20/24' }], router: { address: '10.21.0.1' } }, 'router.address', /not inside the subnet/],
    [{ name: 'admin', category: 'storage', conduit: '1g0' }, '', /already exists/],
  ];
  for (const [body, field, msg] of bad) {
    const r = await api('POST', '/api/v1/networks', body);
    assert.ok(r.status === 400 || r.status === 409, `${JSON.stringify(body)} -> ${r.status}`);
    if (field) assert.equal(r.body.field, field, JSON.stringify(r.body));
    assert.match(r.body.message, msg);
  }
  assert.deepEqual(await counts(), before, 'nothing was stored by a refused request');

  // Overlap across networks is allowed when one of them is not configured by Fulcrum.
  const bmc = await api('POST', '/api/v1/networks', { name: 'bmc', category: 'bmc', conduit: '1g0', configure: false, ranges: [{ name: 'host', first: '10.10.0.100/16', last: '10.10.1.10/16' }] });
  assert.equal(bmc.status, 201, JSON.stringify(bmc.body));
  // ... but that network cannot then become configured.
  const flip = await api('PATCH', '/api/v1/networks/bmc', { configure: true });
  assert.equal(flip.status, 400);
  assert.equal(flip.body.field, 'configure');
  assert.equal((await api('GET', '/api/v1/networks/bmc')).body.configure, false);

  // Ranges and routers as their own collections.
  const range = await api('POST', '/api/v1/network-ranges', { network: 'bmc', name: 'extra', first: '10.10.2.1/16', last: '10.10.2.9/16' });
  assert.equal(range.status, 201, JSON.stringify(range.body));
  assert.equal(range.body.size, 9);
  const dupRange = await api('POST', '/api/v1/network-ranges', { network: 'bmc', name: 'overlap', first: '10.10.2.5/16', last: '10.10.2.20/16' });
  assert.equal(dupRange.status, 400);
  assert.equal(dupRange.body.field, 'first');
  const rt = await api('POST', '/api/v1/network-routers', { network: 'bmc', address: '10.10.255.254', pref: 100 });
  assert.equal(rt.status, 201, JSON.stringify(rt.body));
  assert.equal((await api('PATCH', `/api/v1/network-routers/${rt.body.id}`, { address: '192.168.0.1' })).body.field, 'address');
  assert.equal((await api('DELETE', `/api/v1/network-ranges/${range.body.id}`)).status, 204);
});

async function node(name: string, macs: string[]) {
  const r = await api('POST', '/api/v1/nodes', { name, macs, inventory: { nics: macs.map((mac, i) => ({ name: `eth${i}`, mac, speed_mbps: 10000, pci_path: '' })) } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
const alloc = (nodeName: string, network: string, extra: Record<string, unknown> = {}) =>
  api('POST', '/api/v1/network-allocations', { node: nodeName, network, ...extra });

test('allocation: hint, admin host part, first free; out of addresses; IPv6 auto; DHCP reservations; node delete cleans up', async () => {
  const n1 = await node('n1.lab.test', ['52:54:00:aa:00:01', '52:54:00:aa:00:02']);
  await node('n2.lab.test', ['52:54:00:aa:00:03']);
  await node('n3.lab.test', ['52:54:00:aa:00:04']);

  const a1 = await alloc('n1.lab.test', 'admin');
  assert.equal(a1.status, 201, JSON.stringify(a1.body));
  assert.deepEqual([a1.body.address, a1.body.prefix, a1.body.range, a1.body.category], ['10.10.0.10', 24, 'host', 'admin']);
  assert.equal((await alloc('n1.lab.test', 'admin')).body.address, '10.10.0.10', 'allocating again returns the same address');
  assert.equal((await alloc('n2.lab.test', 'admin')).body.address, '10.10.0.11');
  assert.equal((await alloc('n3.lab.test', 'admin', { address: '10.10.0.50' })).body.address, '10.10.0.50', 'the hint wins');
  const taken = await alloc('n3.lab.test', 'admin', { address: '10.10.0.11' });
  assert.equal(taken.status, 409);
  assert.match(taken.body.message, /already has 10\.10\.0\.50/);
  await node('n4.lab.test', ['52:54:00:aa:00:05']);
  const held = await alloc('n4.lab.test', 'admin', { address: '10.10.0.11' });
  assert.equal(held.status, 409);
  assert.match(held.body.message, /already allocated to node n2\.lab\.test/);
  const outside = await alloc('n4.lab.test', 'admin', { address: '10.10.0.230' });
  assert.equal(outside.status, 400);
  assert.equal(outside.body.field, 'address');
  assert.match(outside.body.message, /not inside range admin\.host \(10\.10\.0\.10-10\.10\.0\.200\)/);
  assert.equal((await alloc('n4.lab.test', 'admin', { range: 'dhcp' })).body.field, 'range', 'a dynamic range gives no bound addresses');

  // IPv6: the cluster ULA /48 + network id, interface id from MD5 of the FQDN (recomputed here).
  const prefix = (await api('GET', '/api/v1/networks/admin/v6prefix')).body.prefix as string;
  const ula = (await db.query(`SELECT value FROM settings WHERE key = 'network.ula_prefix'`)).rows[0].value as string;
  assert.match(ula, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/);
  const adminId = (await api('GET', '/api/v1/networks/admin')).body.id as number;
  assert.equal(prefix, `${ula.replace('::/48', '')}:${adminId.toString(16)}::/64`);
  const v6 = (await api('GET', '/api/v1/network-allocations?node=n1.lab.test&family=6')).body;
  assert.equal(v6.length, 1);
  const iid = crypto.createHash('md5').update('n1.lab.test').digest('hex').slice(16).match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
  assert.equal(v6[0].address, `${prefix.replace('::/64', '')}:${iid.join(':')}`);
  assert.equal(v6[0].range, null);

  // Same host part as the admin address: n3 is .50 on admin, so .50 on storage (first free would be .10).
  assert.equal((await api('POST', '/api/v1/networks', { name: 'storage', category: 'storage', conduit: '10g1', use_vlan: true, vlan: 200,
    ranges: [{ name: 'host', first: '10.20.0.10/24', last: '10.20.0.200/24' }] })).status, 201);
  assert.equal((await alloc('n3.lab.test', 'storage')).body.address, '10.20.0.50');
  assert.equal((await alloc('n2.lab.test', 'storage')).body.address, '10.20.0.11');
  assert.equal((await alloc('n4.lab.test', 'storage')).body.address, '10.20.0.10', 'no admin address: first free');

  // Out of addresses names the range and its usage.
  assert.equal((await api('POST', '/api/v1/networks', { name: 'tiny', category: 'public', conduit: '10g2', ranges: [{ name: 'host', first: '10.30.0.10/24', last: '10.30.0.11/24' }] })).status, 201);
  assert.equal((await alloc('n1.lab.test', 'tiny')).status, 201);
  assert.equal((await alloc('n2.lab.test', 'tiny')).status, 201);
  const full = await alloc('n3.lab.test', 'tiny');
  assert.equal(full.status, 409);
  assert.equal(full.body.message, 'range tiny.host is out of addresses (10.30.0.10-10.30.0.11, 2 of 2 used); widen it or free an allocation');
  assert.equal((await db.query(`SELECT count(*)::int AS n FROM network_allocations a JOIN networks n ON n.id = a.network_id WHERE n.name = 'tiny'`)).rows[0].n, 2);

  // DHCP: the admin address is reserved for every MAC of the node, in a subnet made from the admin network.
  const subnet = (await api('GET', '/api/v1/subnets/network-admin')).body;
  assert.equal(subnet.cidr, '10.10.0.0/24');
  assert.deepEqual(subnet.pools, [{ first: '10.10.0.201', last: '10.10.0.250' }]);
  assert.deepEqual(subnet.routers, ['10.10.0.1']);
  const res1 = (await api('GET', '/api/v1/reservations?node=n1.lab.test')).body;
  assert.deepEqual(res1.map((r: any) => [r.mac, r.address, r.hostname]).sort(),
    [['52:54:00:aa:00:01', '10.10.0.10', 'n1.lab.test'], ['52:54:00:aa:00:02', '10.10.0.10', 'n1.lab.test']]);
  assert.deepEqual((await api('GET', '/api/v1/reservations?node=n3.lab.test')).body.map((r: any) => r.address), ['10.10.0.50']);
  // A new MAC on the node gets the reservation too (kept in step by the event subscriber).
  assert.equal((await api('PATCH', '/api/v1/nodes/n1.lab.test', { macs: ['52:54:00:aa:00:01', '52:54:00:aa:00:02', '52:54:00:aa:00:09'] })).status, 200);
  await waitFor('reservation for the new MAC', async () => (await api('GET', '/api/v1/reservations?node=n1.lab.test')).body.length === 3, 10000, 50);
  // Freeing the admin allocation drops n2's reservation.
  const a2 = (await api('GET', '/api/v1/network-allocations?node=n2.lab.test&network=admin&family=4')).body[0];
  assert.equal((await api('DELETE', `/api/v1/network-allocations/${a2.id}`)).status, 204);
  assert.equal((await api('GET', '/api/v1/reservations?node=n2.lab.test')).body.length, 0);

  // Deleting a node removes its reservations, leases and allocations.
  await db.query(`INSERT INTO leases (subnet_id, address, mac, state, expires_at) VALUES ($1, '10.10.0.10', '52:54:00:aa:00:01', 'bound', now() + interval '1 hour'),
    ($1, '10.10.0.222', '52:54:00:aa:00:02', 'bound', now() + interval '1 hour'), ($1, '10.10.0.223', '52:54:00:aa:00:03', 'bound', now() + interval '1 hour')`, [subnet.id]);
  assert.equal((await api('DELETE', '/api/v1/nodes/n1.lab.test')).status, 204);
  const left = (await db.query(`SELECT (SELECT count(*) FROM reservations WHERE node_id = $1)::int AS reservations,
      (SELECT count(*) FROM leases WHERE mac IN ('52:54:00:aa:00:01', '52:54:00:aa:00:02') OR address = '10.10.0.10')::int AS leases,
      (SELECT count(*) FROM network_allocations WHERE node_id = $1)::int AS allocations,
      (SELECT count(*) FROM leases WHERE mac = '52:54:00:aa:00:03')::int AS others`, [n1.id])).rows[0];
  assert.deepEqual(left, { reservations: 0, leases: 0, allocations: 0, others: 1 });
  assert.equal((await alloc('n4.lab.test', 'admin')).body.address, '10.10.0.10', 'its address is free again');
});

test('binding the network role allocates and writes the plan; a bound network cannot be deleted', async () => {
  await node('r1.lab.test', ['52:54:00:bb:00:01', '52:54:00:bb:00:02']);
  const b = await api('POST', '/api/v1/networks/storage/nodes', { node: 'r1.lab.test' });
  assert.equal(b.status, 201, JSON.stringify(b.body));
  assert.deepEqual(b.body.allocations.map((a: any) => a.address), ['10.20.0.12']);
  const nr = (await api('GET', `/api/v1/noderoles/${b.body.noderole}`)).body;
  assert.equal(nr.role, 'network-storage');
  const plan = nr.sys_data.network.storage.plan as string;
  for (const line of ["ADDRESS='10.20.0.12/24'", "MEMBERS='eth1'", "VLAN='200'", "VLAN_IFACE='eth1.200'", "IFACE='eth1.200'", "ERROR=''"]) assert.ok(plan.includes(line), `${line} in\n${plan}`);

  // A binding through POST /noderoles allocates too (the event subscriber).
  await node('r2.lab.test', ['52:54:00:bb:00:03']);
  assert.equal((await api('POST', '/api/v1/noderoles', { role: 'network-storage', node: 'r2.lab.test' })).status, 201);
  const a = await waitFor('allocation after a plain binding', async () => (await api('GET', '/api/v1/network-allocations?node=r2.lab.test&network=storage')).body[0], 10000, 50);
  assert.equal(a.address, '10.20.0.13');
  const nr2 = await waitFor('plan after a plain binding', async () => {
    const x = (await api('GET', '/api/v1/noderoles?node=r2.lab.test&role=network-storage')).body[0];
    return x?.sys_data?.network?.storage?.plan && x;
  }, 10000, 50);
  assert.match(nr2.sys_data.network.storage.plan, /ERROR='conduit "10g1" on node r2\.lab\.test: member 10g1 needs NIC #1 of 10g, but there is only 1/);

  // A router added later reaches the plans of the nodes already on the network.
  assert.equal((await api('POST', '/api/v1/network-routers', { network: 'storage', address: '10.20.0.1', pref: 1 })).status, 201);
  const after = (await api('GET', `/api/v1/noderoles/${b.body.noderole}`)).body.sys_data.network.storage.plan as string;
  assert.ok(after.includes("ROUTER='10.20.0.1'") && after.includes("DEFAULT_ROUTE='1'"), after);

  // A plain binding on a full range: the plan carries the reason for the script to report.
  await node('r3.lab.test', ['52:54:00:bb:00:04']);
  await node('r4.lab.test', ['52:54:00:bb:00:05']);
  assert.equal((await api('POST', '/api/v1/networks', { name: 'one', category: 'public', conduit: '10g3', ranges: [{ name: 'host', first: '10.40.0.10/24', last: '10.40.0.10/24' }] })).status, 201);
  assert.equal((await api('POST', '/api/v1/noderoles', { role: 'network-one', node: 'r3.lab.test' })).status, 201);
  assert.equal((await api('POST', '/api/v1/noderoles', { role: 'network-one', node: 'r4.lab.test' })).status, 201);
  const why = await waitFor('the refusal in the plan of the second node', async () => {
    const x = (await api('GET', '/api/v1/noderoles?node=r4.lab.test&role=network-one')).body[0];
    return x?.sys_data?.network?.one?.plan;
  }, 10000, 50);
  assert.match(why, /ERROR='no address: range one\.host is out of addresses \(10\.40\.0\.10-10\.40\.0\.10, 1 of 1 used\)/);

  const del = await api('DELETE', '/api/v1/networks/storage');
  assert.equal(del.status, 409);
  assert.match(del.body.message, /bound to 2 node/);
  assert.equal((await api('DELETE', '/api/v1/networks/tiny')).status, 204);
  assert.equal((await api('GET', '/api/v1/roles/network-tiny')).status, 404);
  assert.equal((await db.query(`SELECT count(*)::int AS n FROM network_allocations a WHERE NOT EXISTS (SELECT 1 FROM networks n WHERE n.id = a.network_id)`)).rows[0].n, 0);
});

test('content packs carry networks: imported with their role, refused whole naming the field', async () => {
  const pack = (networks: unknown[], roles: unknown[] = []) => ({ name: 'netpack', version: '1.0.0', roles, networks });
  const bad = await api('POST', '/api/v1/content-packs', pack([
    { name: 'pub', category: 'public', conduit: '1g3', ranges: [{ name: 'host', first: '10.70.0.10/24', last: '10.70.0.20/24' }] },
    { name: 'pub2', category: 'public', conduit: '1g4,1g5', ranges: [{ name: 'host', first: '10.71.0.10/24', last: '10.71.0.20/24' }] },
  ]));
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.equal(bad.body.field, 'networks[1].use_team');
  assert.match(bad.body.message, /pack netpack: networks\[1\] \(pub2\)/);
  assert.equal((await api('GET', '/api/v1/networks/pub')).status, 404, 'nothing of a refused pack is stored');
  const badShape = await api('POST', '/api/v1/content-packs', pack([{ name: 'pub', category: 'public', conduit: '1g3', vlan: 'ten' }]));
  assert.equal(badShape.status, 400);
  assert.match(badShape.body.message, /networks\[0\]\.vlan/);

  // A role in the pack may require the network's role.
  const ok = await api('POST', '/api/v1/content-packs', pack(
    [{ name: 'pub', category: 'public', conduit: '1g3', v6prefix: 'fd00:70::/64', ranges: [{ name: 'host', first: '10.70.0.10/24', last: '10.70.0.20/24' }], router: { address: '10.70.0.1' } }],
    [{ name: 'web', requires: ['network-pub'] }]));
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.equal(ok.body.networks, 1);
  const pub = (await api('GET', '/api/v1/networks/pub')).body;
  assert.deepEqual([pub.content_pack, pub.v6prefix, pub.router?.address, pub.ranges.length], ['netpack', 'fd00:70::/64', '10.70.0.1', 1]);
  assert.equal((await api('GET', '/api/v1/roles/network-pub')).body.content_pack, 'netpack');
  const again = await api('POST', '/api/v1/content-packs', pack(
    [{ name: 'pub', category: 'public', conduit: '1g3', v6prefix: 'fd00:70::/64', ranges: [{ name: 'host', first: '10.70.0.10/24', last: '10.70.0.20/24' }], router: { address: '10.70.0.1' } }],
    [{ name: 'web', requires: ['network-pub'] }]));
  assert.equal(again.status, 200);
  assert.equal(again.body.changed, false, 'an unchanged pack changes nothing');
});

test('the CLI: networks create/list, networks bind, network-allocations list; errors name the field', async () => {
  const { execFile } = await import('node:child_process');
  const path = await import('node:path');
  const { projectRoot } = await import('../src/paths.js');
  const cli = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(projectRoot, 'bin', 'fulcrum.js'), ...args], {
      env: { ...process.env, FULCRUM_ENDPOINT: t.url, FULCRUM_TOKEN: t.token, FULCRUM_CONFIG: path.join(t.dataDir, 'cli.json') }, timeout: 30000,
    }, (err, stdout, stderr) => resolve({ code: err ? Number((err as any).code ?? 1) : 0, stdout, stderr }));
  });
  const made = await cli('networks', 'create', '--set', 'name=clinet', '--set', 'category=public', '--set', 'conduit=1g7',
    '--set', 'ranges=[{"name":"host","first":"10.80.0.10/24","last":"10.80.0.20/24"}]', '-o', 'json');
  assert.equal(made.code, 0, made.stderr);
  assert.equal(JSON.parse(made.stdout).role, 'network-clinet');
  const bad = await cli('networks', 'create', '--set', 'name=clibad', '--set', 'category=public', '--set', 'conduit=1g8,1g9');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /use_team/);
  await node('c1.lab.test', ['52:54:00:cc:00:01']);
  const bound = await cli('networks', 'bind', 'clinet', 'c1.lab.test', '--address', '10.80.0.15', '-o', 'json');
  assert.equal(bound.code, 0, bound.stderr);
  assert.deepEqual(JSON.parse(bound.stdout).allocations.map((a: any) => a.address), ['10.80.0.15']);
  const list = await cli('network-allocations', 'list', '--filter', 'network=clinet', '-o', 'json');
  assert.deepEqual(JSON.parse(list.stdout).map((a: any) => [a.node, a.address]), [['c1.lab.test', '10.80.0.15']]);
});
