// Request -> reply goldens for the DHCP server's handler against real PostgreSQL (no sockets:
// the real clients in network namespaces are in test/dhcp-clients.test.ts). Every reply is also
// encoded and decoded again, so what is asserted is what goes on the wire.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type dgram from 'node:dgram';
import { testDatabase, stopOwnCluster } from './support/db.js';
import { DhcpServer } from '../src/dhcp/server.js';
import { createPacket, decode, encode, getOption, setOption, decodePxeVendorOptions, RelayAgentInformation, type DhcpPacket } from '../src/dhcp/packet.js';
import { ensureBuiltinBootenvs } from '../src/provisioning/bootenvs.js';
import { ensureSystemDeployment } from '../src/model/deployments.js';
import type { Store } from '../src/store/db.js';
import { waitFor } from './support/server.js';

let db: { store: Store; close(): Promise<void> };
let server: DhcpServer;
const rinfo = { address: '0.0.0.0', port: 68, family: 'IPv4', size: 0 } as dgram.RemoteInfo;
const SERVER = '10.50.0.1';

before(async () => {
  db = await testDatabase();
  await ensureBuiltinBootenvs(db.store);
  await db.store.tx((tx) => ensureSystemDeployment(tx));
  await db.store.query(`INSERT INTO subnets (name, cidr, server_address, pools, routers, dns, domain, lease_time_s, probe, options)
    VALUES ('lab', '10.50.0.0/24', '10.50.0.1', '[{"first":"10.50.0.100","last":"10.50.0.150"}]', '{10.50.0.1}', '{10.50.0.1}', 'lab.test', 600, false,
            '{"ntp-servers": ["10.50.0.1"], "hostname": "h-{{ request.mac | replace: \\":\\", \\"\\" }}"}')`);
  await db.store.query(`INSERT INTO subnets (name, cidr, pools, lease_time_s, probe) VALUES ('far', '10.60.0.0/24', '[{"first":"10.60.0.10","last":"10.60.0.20"}]', 900, false)`);
  await db.store.query(`INSERT INTO subnets (name, cidr, pools, lease_time_s, probe) VALUES ('tiny', '10.80.0.0/24', '[{"first":"10.80.0.10","last":"10.80.0.12"}]', 900, false)`);
  await db.store.query(`INSERT INTO subnets (name, cidr, pools, lease_time_s, probe) VALUES ('storm', '10.81.0.0/24', '[{"first":"10.81.0.10","last":"10.81.0.250"}]', 900, false)`);
  await db.store.query(`INSERT INTO subnets (name, cidr, pools, proxy, probe) VALUES ('elsewhere', '10.70.0.0/24', '[]', true, false)`);
  await db.store.query(`INSERT INTO reservations (mac, subnet_id, address, hostname) SELECT '52:54:00:00:aa:01', id, '10.50.0.50', 'reserved-one' FROM subnets WHERE name = 'lab'`);
  server = new DhcpServer({ store: db.store, address: SERVER, httpBase: `http://${SERVER}:8091/boot` });
});
after(async () => { await server?.stop(); await db?.close(); await stopOwnCluster(); });

function request(type: number, mac: string, opts: Array<[string, unknown]> = [], init: Partial<DhcpPacket> = {}): DhcpPacket {
  const p = createPacket({ chaddr: mac, xid: 0x1234, flags: 0x8000, ...init });
  setOption(p, 'message-type', type as any);
  for (const [k, v] of opts) setOption(p, k as any, v as any);
  return decode(encode(p)); // what the server really receives
}
async function exchange(p: DhcpPacket, via: 'dhcp' | 'proxy' = 'dhcp', from = rinfo) {
  const type = ['', 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'][getOption(p, 'message-type') as number];
  const r = await server.handle(p, type, from, via);
  return r && { ...r, packet: decode(encode(r.packet)) };
}
const PXE_BIOS: Array<[string, unknown]> = [['vendor-class', 'PXEClient:Arch:00000:UNDI:002001'], ['client-arch', [0]]];

test('plain client: DISCOVER/OFFER, REQUEST/ACK with T1/T2 and subnet options, RENEWING, RELEASE', async () => {
  const mac = '52:54:00:00:00:10';
  const offer = (await exchange(request(1, mac, [['hostname', 'plain']])))!;
  assert.equal(offer.type, 'OFFER');
  assert.equal(offer.to, '255.255.255.255');
  assert.equal(offer.packet.yiaddr, '10.50.0.100');
  assert.equal(offer.packet.file, '', 'no boot file for a client that is not PXE');
  assert.equal(getOption(offer.packet, 'server-identifier'), SERVER);
  assert.equal(getOption(offer.packet, 'subnet-mask'), '255.255.255.0');
  assert.deepEqual(getOption(offer.packet, 'routers'), ['10.50.0.1']);
  assert.equal(getOption(offer.packet, 'domain-name'), 'lab.test');
  assert.equal(getOption(offer.packet, 'hostname'), 'h-525400000010', 'templated option rendered from the request');
  assert.equal(getOption(offer.packet, 'lease-time'), 600);
  assert.equal(getOption(offer.packet, 'renewal-time'), 300);
  assert.equal(getOption(offer.packet, 'rebinding-time'), 525);
  const ack = (await exchange(request(3, mac, [['requested-ip', '10.50.0.100'], ['server-identifier', SERVER]])))!;
  assert.equal(ack.type, 'ACK');
  assert.equal(ack.packet.yiaddr, '10.50.0.100');
  const lease = (await db.store.query(`SELECT state, mac::text FROM leases WHERE address = '10.50.0.100'`)).rows[0];
  assert.deepEqual(lease, { state: 'bound', mac }, 'the lease is stored before the ACK is sent');
  // RENEWING: ciaddr set, unicast back
  const renew = (await exchange(request(3, mac, [], { ciaddr: '10.50.0.100', flags: 0 })))!;
  assert.equal(renew.type, 'ACK');
  assert.equal(renew.to, '10.50.0.100');
  // a second DISCOVER from the same client gets the same address again
  assert.equal((await exchange(request(1, mac)))!.packet.yiaddr, '10.50.0.100');
  assert.equal(await exchange(request(7, mac, [], { ciaddr: '10.50.0.100' })), null);
  assert.equal((await db.store.query(`SELECT state FROM leases WHERE address = '10.50.0.100'`)).rows[0].state, 'released');
});

test('REQUEST naming another server is ignored; INIT-REBOOT for an unknown lease is silent; off-subnet is NAKed', async () => {
  const mac = '52:54:00:00:00:11';
  await exchange(request(1, mac));
  assert.equal(await exchange(request(3, mac, [['requested-ip', '10.50.0.101'], ['server-identifier', '10.50.0.254']])), null);
  assert.equal(await exchange(request(3, mac, [['requested-ip', '10.50.0.99']])), null, 'INIT-REBOOT, no record: silent');
  const nak = (await exchange(request(3, mac, [['requested-ip', '192.168.1.5']])))!;
  assert.equal(nak.type, 'NAK');
  assert.equal(nak.to, '255.255.255.255');
  assert.equal(nak.packet.yiaddr, '0.0.0.0');
});

test('a reservation is honoured with its hostname', async () => {
  const offer = (await exchange(request(1, '52:54:00:00:aa:01')))!;
  assert.equal(offer.packet.yiaddr, '10.50.0.50');
  assert.equal(getOption(offer.packet, 'hostname'), 'reserved-one', 'the reservation hostname beats the subnet template');
});

test('DECLINE keeps the address out of use', async () => {
  const mac = '52:54:00:00:00:12';
  const offer = (await exchange(request(1, mac)))!;
  const declined = offer.packet.yiaddr;
  await exchange(request(3, mac, [['requested-ip', declined], ['server-identifier', SERVER]]));
  assert.equal(await exchange(request(4, mac, [['requested-ip', declined], ['server-identifier', SERVER]])), null);
  const again = (await exchange(request(1, mac)))!;
  assert.notEqual(again.packet.yiaddr, declined);
  const other = (await exchange(request(1, '52:54:00:00:00:13')))!;
  assert.notEqual(other?.packet.yiaddr, declined);
});

test('netboot goldens: BIOS, x86-64 UEFI, ARM64 UEFI, iPXE', async () => {
  const cases: Array<[string, Array<[string, unknown]>, string]> = [
    ['bios', PXE_BIOS, 'ipxe/undionly.kpxe'],
    ['uefi', [['vendor-class', 'PXEClient:Arch:00007:UNDI:003016'], ['client-arch', [7]]], 'ipxe/ipxe.efi'],
    ['arm64', [['vendor-class', 'PXEClient:Arch:00011:UNDI:003000'], ['client-arch', [11]]], 'ipxe/arm64-efi/ipxe.efi'],
    ['ipxe', [...PXE_BIOS, ['user-class', ['iPXE']]], `http://${SERVER}:8091/boot/nodes/52-54-00-00-01-04/ipxe`],
  ];
  for (const [i, [name, opts, file]] of cases.entries()) {
    const r = (await exchange(request(1, `52:54:00:00:01:0${i + 1}`, opts)))!;
    assert.equal(r.packet.file, file.replace('52-54-00-00-01-04', `52-54-00-00-01-0${i + 1}`), name);
    assert.equal(r.packet.siaddr, SERVER, `${name}: next-server`);
    assert.equal(getOption(r.packet, 'vendor-class'), 'PXEClient', name);
    const pxe = decodePxeVendorOptions(getOption(r.packet, 'vendor-specific') as Buffer);
    assert.equal(pxe.discoveryControl, 8, `${name}: skip boot-server discovery`);
  }
});

test('a known node in a local bootenv gets an address but no boot file', async () => {
  await db.store.query(`INSERT INTO nodes (name, deployment_id, bootenv) SELECT 'disk.test', id, 'local' FROM deployments WHERE system`);
  await db.store.query(`INSERT INTO node_macs (mac, node_id) SELECT '52:54:00:00:02:01', id FROM nodes WHERE name = 'disk.test'`);
  // The server learns of the new MAC from the change notification (migration 008), not per packet.
  const r = await waitFor('the DHCP server sees the node', async () => {
    const x = (await exchange(request(1, '52:54:00:00:02:01', PXE_BIOS)))!;
    return x.packet.file === '' && x;
  }, 5000, 20);
  assert.notEqual(r.packet.yiaddr, '0.0.0.0');
  assert.equal(r.packet.file, '');
  assert.equal(getOption(r.packet, 'vendor-class'), undefined);
});

test('relayed: subnet by giaddr, by option 82 link selection; replies to the relay with option 82 echoed', async () => {
  const agent = new RelayAgentInformation().set('circuit-id', Buffer.from('port-7')).set('remote-id', Buffer.from('sw1'));
  const r = (await exchange(request(1, '52:54:00:00:03:01', [['relay-agent-information', agent]], { giaddr: '10.60.0.1', hops: 1 })))!;
  assert.equal(r.to, '10.60.0.1');
  assert.equal(r.port, 67);
  assert.equal(r.packet.yiaddr, '10.60.0.10');
  assert.equal(r.packet.giaddr, '10.60.0.1');
  assert.deepEqual((getOption(r.packet, 'relay-agent-information') as RelayAgentInformation).circuitId, Buffer.from('port-7'));
  assert.equal(getOption(r.packet, 'lease-time'), 900);
  const link = new RelayAgentInformation().set('link-selection', '10.60.0.0');
  const r2 = (await exchange(request(1, '52:54:00:00:03:02', [['relay-agent-information', link]], { giaddr: '10.99.0.1' })))!;
  assert.equal(r2.packet.yiaddr, '10.60.0.11', 'link selection beats giaddr');
  assert.equal(await exchange(request(1, '52:54:00:00:03:03', [], { giaddr: '10.99.0.1' })), null, 'no subnet: dropped');
});

test('proxyDHCP: boot information only, never an address, on 67 and 4011', async () => {
  const link = new RelayAgentInformation().set('link-selection', '10.70.0.0');
  const offer = (await exchange(request(1, '52:54:00:00:04:01', [...PXE_BIOS, ['relay-agent-information', link]], { giaddr: '10.70.0.1' })))!;
  assert.equal(offer.type, 'OFFER');
  assert.equal(offer.packet.yiaddr, '0.0.0.0');
  assert.equal(offer.packet.file, 'ipxe/undionly.kpxe');
  assert.equal(getOption(offer.packet, 'lease-time'), undefined);
  assert.equal(await exchange(request(1, '52:54:00:00:04:02', [['relay-agent-information', link]], { giaddr: '10.70.0.1' })), null, 'non-PXE clients are left to the real DHCP server');
  const from = { ...rinfo, address: '10.70.0.55', port: 68 };
  const ack = (await exchange(request(3, '52:54:00:00:04:01', PXE_BIOS, { ciaddr: '10.70.0.55' }), 'proxy', from))!;
  assert.equal(ack.type, 'ACK');
  assert.equal(ack.to, '10.70.0.55');
  assert.equal(ack.packet.yiaddr, '0.0.0.0');
  assert.equal(ack.packet.file, 'ipxe/undionly.kpxe');
});

test('INFORM: options only, to ciaddr', async () => {
  const r = (await exchange(request(8, '52:54:00:00:05:01', [], { ciaddr: '10.50.0.77' })))!;
  assert.equal(r.type, 'ACK');
  assert.equal(r.to, '10.50.0.77');
  assert.equal(r.packet.yiaddr, '0.0.0.0');
  assert.equal(getOption(r.packet, 'lease-time'), undefined);
  assert.deepEqual(getOption(r.packet, 'routers'), ['10.50.0.1']);
});

test('pool exhaustion is dropped with an event, not an error', async () => {
  for (const mac of ['52:54:00:00:06:01', '52:54:00:00:06:02', '52:54:00:00:06:03', '52:54:00:00:06:04']) {
    const r = await exchange(request(1, mac, [], { giaddr: '10.80.0.1' }));
    if (!r) break;
    await exchange(request(3, mac, [['requested-ip', r.packet.yiaddr], ['server-identifier', SERVER]], { giaddr: '10.80.0.1' }));
  }
  assert.equal(await exchange(request(1, '52:54:00:00:06:09', [], { giaddr: '10.80.0.1' })), null);
  const e = await db.store.query(`SELECT payload FROM events WHERE type = 'dhcp.exhausted'`);
  assert.ok(e.rowCount! > 0);
});

test('a boot storm: 80 overlapping DISCOVERs get 80 distinct offers, and every REQUEST is ACKed', async () => {
  const macs = Array.from({ length: 80 }, (_, i) => `52:54:00:00:07:${i.toString(16).padStart(2, '0')}`);
  const relay = { giaddr: '10.81.0.1' };
  const offers = await Promise.all(macs.map((mac) => exchange(request(1, mac, [], relay))));
  const offered = offers.map((o, i) => { assert.equal(o?.type, 'OFFER', `${macs[i]} got an offer`); return o!.packet.yiaddr; });
  assert.equal(new Set(offered).size, macs.length, `every client got its own address: ${offered.join(' ')}`);
  const acks = await Promise.all(macs.map((mac, i) => exchange(request(3, mac, [['requested-ip', offered[i]], ['server-identifier', SERVER]], relay))));
  const types = acks.map((a) => a?.type);
  assert.deepEqual(types, macs.map(() => 'ACK'), `every REQUEST was ACKed, none NAKed: ${types.filter((t) => t !== 'ACK').length} not`);
  assert.deepEqual(acks.map((a) => a!.packet.yiaddr), offered, 'each ACK carries the address that client was offered');
  const rows = (await db.store.query(`SELECT host(address) AS address, mac::text AS mac FROM leases WHERE state = 'bound' AND address << '10.81.0.0/24'`)).rows;
  assert.equal(rows.length, macs.length, 'every ACKed lease is stored as bound');
  assert.deepEqual(new Map(rows.map((r) => [r.mac, r.address])), new Map(macs.map((m, i) => [m, offered[i]])));
});

test('group commit: the ACKs of a storm share commits; each is durable when it is sent; events list known nodes and count the rest', async () => {
  const macs = Array.from({ length: 60 }, (_, i) => `52:54:00:00:08:${i.toString(16).padStart(2, '0')}`);
  const relay = { giaddr: '10.81.0.1' };
  // The first ten MACs belong to a known node: their bindings are listed in the events; the other fifty are counted.
  const reloads = server.engine.reloads;
  await db.store.query(`INSERT INTO nodes (name, deployment_id) SELECT 'storm.test', id FROM deployments WHERE system`);
  await db.store.query(`INSERT INTO node_macs (mac, node_id) SELECT unnest($1::macaddr[]), id FROM nodes WHERE name = 'storm.test'`, [macs.slice(0, 10)]);
  await waitFor('the known MACs reloaded', async () => server.engine.reloads > reloads, 5000, 10);
  const offers = await Promise.all(macs.map((mac) => exchange(request(1, mac, [], relay))));
  const batchesBefore = server.engine.writer.batches;
  const acks = await Promise.all(macs.map(async (mac, i) => {
    const ack = await exchange(request(3, mac, [['requested-ip', offers[i]!.packet.yiaddr], ['server-identifier', SERVER]], relay));
    // At the moment this ACK is handed to the socket its row is committed (read on another connection).
    const row = (await db.store.query(`SELECT state, mac::text AS mac FROM leases WHERE address = $1`, [ack!.packet.yiaddr])).rows[0];
    return { type: ack!.type, row };
  }));
  for (const [i, a] of acks.entries()) {
    assert.equal(a.type, 'ACK');
    assert.deepEqual(a.row, { state: 'bound', mac: macs[i] });
  }
  const batches = server.engine.writer.batches - batchesBefore;
  assert.ok(batches >= 1 && batches < macs.length / 4, `60 ACKs took ${batches} commits`);
  const events = await db.store.query(`SELECT payload FROM events WHERE type = 'dhcp.leases' ORDER BY id DESC LIMIT $1`, [batches]);
  const listed = events.rows.flatMap((e) => e.payload.leases.map((l: any) => l.mac)).sort();
  assert.deepEqual(listed, macs.slice(0, 10), 'the known node\'s bindings are listed, no one else\'s');
  const counted = events.rows.reduce((n, e) => n + (e.payload.anonymous.bound ?? 0), 0);
  assert.equal(counted, 50, 'the other bindings are counted');
});

test('changes made elsewhere reach the server: a new reservation, a deleted lease', async () => {
  const mac = '52:54:00:00:09:01';
  const reloads = server.engine.reloads;
  await db.store.query(`INSERT INTO reservations (mac, subnet_id, address, hostname) SELECT $1, id, '10.50.0.60', 'late' FROM subnets WHERE name = 'lab'`, [mac]);
  await waitFor('the reservation reloaded', async () => server.engine.reloads > reloads, 5000, 10);
  const offer = (await exchange(request(1, mac)))!;
  assert.equal(offer.packet.yiaddr, '10.50.0.60');
  assert.equal(getOption(offer.packet, 'hostname'), 'late');
  // A bound lease deleted through the database (the API, a deleted node) is forgotten: the
  // client's INIT-REBOOT for it gets silence, as for any address we have no record of.
  const other = '52:54:00:00:09:02';
  const o = (await exchange(request(1, other)))!;
  assert.equal((await exchange(request(3, other, [['requested-ip', o.packet.yiaddr], ['server-identifier', SERVER]])))!.type, 'ACK');
  assert.equal((await exchange(request(3, other, [['requested-ip', o.packet.yiaddr]])))!.type, 'ACK', 'INIT-REBOOT for its lease');
  const before = server.engine.reloads;
  await db.store.query(`DELETE FROM leases WHERE mac = $1`, [other]);
  await waitFor('the lease deletion noticed', async () => server.engine.reloads > before, 5000, 10);
  assert.equal(await exchange(request(3, other, [['requested-ip', o.packet.yiaddr]])), null, 'INIT-REBOOT for a deleted lease: silent');
});

test('one process serves a subnet: a second server stays silent for it until the first stops, then takes over its leases', async () => {
  const second = new DhcpServer({ store: db.store, address: SERVER, httpBase: `http://${SERVER}:8091/boot` });
  try {
    const mac = '52:54:00:00:0a:01';
    const far = { giaddr: '10.60.0.1' };
    const offer = (await exchange(request(1, mac, [], far)))!;
    const address = offer.packet.yiaddr;
    assert.equal((await exchange(request(3, mac, [['requested-ip', address], ['server-identifier', SERVER]], far)))!.type, 'ACK');
    assert.equal(await second.handle(request(1, '52:54:00:00:0a:02', [], far), 'DISCOVER', rinfo, 'dhcp'), null, 'the subnet is served by the first server');
    const reloads = second.engine.reloads;
    await db.store.query(`INSERT INTO subnets (name, cidr, pools, probe) VALUES ('spare', '10.82.0.0/24', '[{"first":"10.82.0.10","last":"10.82.0.20"}]', false)`);
    await waitFor('the second server sees the new subnet', async () => second.engine.reloads > reloads, 5000, 10);
    assert.notEqual(await second.handle(request(1, '52:54:00:00:0a:03', [], { giaddr: '10.82.0.1' }), 'DISCOVER', rinfo, 'dhcp'), null,
      'a subnet the first server never touched is the second one\'s to take');
    await server.stop();
    // The first server's session is gone and so is its lock: the second loads the leases and knows the binding.
    const renewed = await waitFor('the second server takes the subnet', async () =>
      second.handle(request(3, mac, [['requested-ip', address]], far), 'REQUEST', rinfo, 'dhcp'), 5000, 100);
    assert.equal(renewed!.type, 'ACK');
    assert.equal(renewed!.packet.yiaddr, address);
    const next = (await second.handle(request(1, '52:54:00:00:0a:04', [], far), 'DISCOVER', rinfo, 'dhcp'))!;
    assert.notEqual(next.packet.yiaddr, address, 'the bound address is not offered to another client');
  } finally {
    await second.stop();
    server = new DhcpServer({ store: db.store, address: SERVER, httpBase: `http://${SERVER}:8091/boot` });
  }
});

test('one address reserved for the MACs of one node: either NIC gets it, no other client does', async () => {
  const [a, b] = ['52:54:00:00:0b:01', '52:54:00:00:0b:02'];
  await server.engine.ready();
  const reloads = server.engine.reloads;
  await db.store.query(`INSERT INTO nodes (name, deployment_id) SELECT 'twonic.test', id FROM deployments WHERE system`);
  await db.store.query(`INSERT INTO reservations (mac, subnet_id, address, node_id)
    SELECT m, s.id, '10.50.0.70', n.id FROM unnest($1::macaddr[]) m, subnets s, nodes n WHERE s.name = 'lab' AND n.name = 'twonic.test'`, [[a, b]]);
  await waitFor('the reservations reloaded', async () => server.engine.reloads > reloads, 5000, 10);
  for (const mac of [a, b]) {
    const offer = (await exchange(request(1, mac)))!;
    assert.equal(offer.packet.yiaddr, '10.50.0.70', `${mac} is offered the node's address`);
    const ack = (await exchange(request(3, mac, [['requested-ip', '10.50.0.70'], ['server-identifier', SERVER]])))!;
    assert.equal(ack.type, 'ACK', `${mac} gets it, though the other NIC held it`);
  }
  const stranger = (await exchange(request(1, '52:54:00:00:0b:03', [['requested-ip', '10.50.0.70']])))!;
  assert.notEqual(stranger.packet.yiaddr, '10.50.0.70', 'a MAC it is not reserved for never gets it');
});
