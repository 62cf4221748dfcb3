// DHCP kept in step with admin addresses, end to end (issue 7 item 7): a real `fulcrum server` in a
// namespace and a real DHCP client (udhcpc). Allocating a node's admin address reserves it, and the
// client gets exactly that address from Fulcrum's DHCP, not one from the dynamic pool; deleting the
// node removes reservation, lease and allocation, so its MAC next gets a pool address. With two
// NICs, both MACs are reserved and either NIC must get the address.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { withLab, udhcpc, type Lab } from '../src/lab/lab.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';

before(async () => { await ensurePackages('net'); });

async function setUp(lab: Lab, net: number) {
  const srv = await lab.namespace('srv');
  const lan = await lab.bridge('lan');
  await lab.link(srv, lan, { ifaceA: 'eth0', addressA: `10.${net}.0.1/24` });
  const server = await startServerIn(lab, srv, `10.${net}.0.1`);
  const api = server.api;
  // The boot segment's subnet, served directly; its pool is the admin network's dynamic range.
  assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: `10.${net}.0.0/24`, server_address: `10.${net}.0.1`, pools: [{ first: `10.${net}.0.200`, last: `10.${net}.0.250` }], probe: false })).status, 201);
  assert.equal((await api('POST', '/api/v1/networks', { name: 'admin', category: 'admin', conduit: '1g0',
    ranges: [{ name: 'host', first: `10.${net}.0.10/24`, last: `10.${net}.0.100/24` }, { name: 'dhcp', first: `10.${net}.0.200/24`, last: `10.${net}.0.250/24` }] })).status, 201);
  const ns = await lab.namespace('node');
  return { server, api, lan, ns };
}

test('an admin allocation is the address a real DHCP client gets; a node delete frees it', { timeout: 180000 }, async () => {
  await withLab(async (lab) => {
    const { server, api, lan, ns } = await setUp(lab, 97);
    const link = await lab.link(ns, lan, { ifaceA: 'eth0' });
    const name = 'onenic.lab.test';
    assert.equal((await api('POST', '/api/v1/nodes', { name, macs: [link.a.mac] })).status, 201);
    const alloc = await api('POST', '/api/v1/network-allocations', { node: name, network: 'admin', address: '10.97.0.42' });
    assert.equal(alloc.status, 201, JSON.stringify(alloc.body));
    assert.deepEqual(((await api('GET', `/api/v1/reservations?node=${name}`)).body as any[]).map((r) => [r.mac, r.subnet, r.address]), [[link.a.mac, 'lan', '10.97.0.42']]);

    const c1 = await udhcpc(ns, 'eth0', { timeoutMs: 30000 });
    assert.equal(c1.lease.address, '10.97.0.42', 'the reserved admin address, not a pool address');
    await c1.stop();
    assert.equal(((await api('GET', '/api/v1/leases?address=10.97.0.42')).body as any[]).length, 1, 'a lease row for the reserved address');

    assert.equal((await api('DELETE', `/api/v1/nodes/${name}`)).status, 204);
    assert.equal(((await api('GET', `/api/v1/reservations?mac=${link.a.mac}`)).body as any[]).length, 0);
    assert.equal(((await api('GET', '/api/v1/leases?address=10.97.0.42')).body as any[]).length, 0);
    assert.equal(((await api('GET', '/api/v1/network-allocations?address=10.97.0.42')).body as any[]).length, 0);
    await ns.ip('addr', 'flush', 'dev', 'eth0');
    const c2 = await udhcpc(ns, 'eth0', { timeoutMs: 30000 });
    assert.match(c2.lease.address, /^10\.97\.0\.(2\d\d)$/, `a pool address for a MAC no node has: ${c2.lease.address}`);
    await c2.stop();
    await server.stop();
  });
});

// One admin address is reserved for every MAC of the node: the DHCP lease engine counts those MACs
// as one client, so whichever NIC asks gets it.
test('a node with two NICs gets its admin address on either', { timeout: 180000 }, async () => {
  await withLab(async (lab) => {
    const { server, api, lan, ns } = await setUp(lab, 98);
    const a = await lab.link(ns, lan, { ifaceA: 'eth0' });
    const b = await lab.link(ns, lan, { ifaceA: 'eth1' });
    const name = 'twonic.lab.test';
    assert.equal((await api('POST', '/api/v1/nodes', { name, macs: [a.a.mac, b.a.mac] })).status, 201);
    assert.equal((await api('POST', '/api/v1/network-allocations', { node: name, network: 'admin', address: '10.98.0.42' })).status, 201);
    const res = (await api('GET', `/api/v1/reservations?node=${name}`)).body as any[];
    assert.deepEqual(res.map((r) => [r.mac, r.address]).sort(), [[a.a.mac, '10.98.0.42'], [b.a.mac, '10.98.0.42']].sort());
    try {
      for (const iface of ['eth0', 'eth1']) {
        const c = await udhcpc(ns, iface, { timeoutMs: 15000 });
        assert.equal(c.lease.address, '10.98.0.42', iface);
        await c.release();
        await c.stop();
      }
    } finally {
      await server.stop();
    }
  });
});
