// Conduits (docs/networks.md "Conduits"): grammar, validation and resolution, table-driven.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConduitOverlap, checkNetworkConduit, normalizeConduit, orderNics, parseConduit, resolveConduit, type Nic } from './conduits.js';

test('grammar: accepted conduits and their canonical text', () => {
  const cases: Array<[string, string, number]> = [
    ['1g0', '1g0', 1], ['10g1', '10g1', 1], ['+1g0', '+1g0', 1], ['?10g0', '?10g0', 1], ['-10g2', '-10g2', 1],
    ['100m0', '100m0', 1], ['10G0, 10g1', '10g0,10g1', 2], ['raw:eth3', 'raw:eth3', 1], ['raw:eth1,raw:eth2', 'raw:eth1,raw:eth2', 2],
    ['+25g0,+25g1,+25g2', '+25g0,+25g1,+25g2', 3], ['1g01', '1g1', 1],
  ];
  for (const [input, canonical, members] of cases) {
    assert.equal(normalizeConduit(input), canonical, input);
    assert.equal(parseConduit(input).length, members, input);
  }
});

test('grammar: refused conduits say why', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/], ['eth0', /neither/], ['1g', /neither/], ['g0', /neither/], ['*1g0', /neither/], ['0g0', /speed 0/],
    ['1g0,10g1', /same speed and sign/], ['+1g0,1g1', /same speed and sign/], ['?1g0,+1g1', /same speed and sign/],
    ['1g0,raw:eth1', /do not mix/], ['1g0,1g0', /appears twice/], ['raw:', /not a valid interface name/], ['raw:a b', /not a valid interface name/],
    ['raw:averyveryverylongname', /not a valid interface name/],
  ];
  for (const [input, msg] of cases) assert.throws(() => parseConduit(input), (e: any) => e.field === 'conduit' && msg.test(e.message), input);
});

test('network rules: a bond needs use_team; a VLAN is 1-4094', () => {
  const net = { name: 'storage', conduit: '10g0', use_team: false, use_vlan: false, vlan: 0 };
  assert.doesNotThrow(() => checkNetworkConduit(net));
  assert.doesNotThrow(() => checkNetworkConduit({ ...net, conduit: '10g0,10g1', use_team: true }));
  assert.throws(() => checkNetworkConduit({ ...net, conduit: '10g0,10g1' }), (e: any) => e.field === 'use_team');
  assert.doesNotThrow(() => checkNetworkConduit({ ...net, use_vlan: true, vlan: 1 }));
  assert.doesNotThrow(() => checkNetworkConduit({ ...net, use_vlan: true, vlan: 4094 }));
  for (const vlan of [0, 4095, -1, 1.5]) assert.throws(() => checkNetworkConduit({ ...net, use_vlan: true, vlan }), (e: any) => e.field === 'vlan', String(vlan));
});

test('conduits of two networks overlap perfectly or not at all', () => {
  const rows: Array<[string, string, boolean]> = [
    ['1g0', '1g0', true], ['1g0', '1g1', true], ['10g0,10g1', '10g1,10g0', true], ['10g0,10g1', '10g2,10g3', true],
    ['10g0,10g1', '10g1', false], ['10g0', '10g0,10g1', false], ['raw:eth1', 'raw:eth1', true], ['1g0', '+1g0', true],
  ];
  for (const [a, b, ok] of rows) {
    const run = () => checkConduitOverlap({ name: 'a', conduit: a }, { name: 'b', conduit: b });
    if (ok) assert.doesNotThrow(run, `${a} vs ${b}`);
    else assert.throws(run, (e: any) => e.field === 'conduit' && /identical or disjoint/.test(e.message), `${a} vs ${b}`);
  }
});

// Six NICs given out of order: two 1g on the board, two 10g and one 25g on a card, one of unknown speed.
const NICS: Nic[] = [
  { name: 'ens2f1', mac: '52:54:00:00:00:04', speed_mbps: 10000, pci_path: '/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.1' },
  { name: 'eno1', mac: '52:54:00:00:00:01', speed_mbps: 1000, pci_path: '/sys/devices/pci0000:00/0000:00:01.0' },
  { name: 'ens2f0', mac: '52:54:00:00:00:03', speed_mbps: 10000, pci_path: '/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0' },
  { name: 'eno2', mac: '52:54:00:00:00:02', speed_mbps: 1000, pci_path: '/sys/devices/pci0000:00/0000:00:01.1' },
  { name: 'ens3', mac: '52:54:00:00:00:05', speed_mbps: 25000, pci_path: '/sys/devices/pci0000:00/0000:00:03.0' },
  { name: 'usb0', mac: '52:54:00:00:00:00', speed_mbps: -1, pci_path: '/sys/devices/pci0000:00/0000:00:14.0/usb1' },
];

test('NICs are ordered by PCI path, then MAC', () => {
  assert.deepEqual(orderNics(NICS).map((n) => n.name), ['eno1', 'eno2', 'ens2f0', 'ens2f1', 'ens3', 'usb0']);
  const veths: Nic[] = [{ name: 'b', mac: '02:00:00:00:00:02', pci_path: '' }, { name: 'a', mac: '02:00:00:00:00:01', pci_path: '' }];
  assert.deepEqual(orderNics(veths).map((n) => n.name), ['a', 'b']);
});

test('resolution with the speed rules', () => {
  const rows: Array<[string, string[]]> = [
    ['1g0', ['eno1']], ['1g1', ['eno2']], ['10g0', ['ens2f0']], ['10g1', ['ens2f1']], ['25g0', ['ens3']],
    ['+1g0', ['eno1']], ['+1g2', ['ens2f0']], ['+10g2', ['ens3']], ['+25g0', ['ens3']],
    ['-10g0', ['eno1']], ['-10g3', ['ens2f1']], ['-1g1', ['eno2']],
    ['?10g0', ['ens2f0']], ['?10g1', ['ens2f1']], ['?10g2', ['eno1']], ['?40g0', ['eno1']], ['?40g5', ['usb0']],
    ['10g0,10g1', ['ens2f0', 'ens2f1']], ['+10g0,+10g1,+10g2', ['ens2f0', 'ens2f1', 'ens3']],
    ['raw:usb0', ['usb0']], ['raw:eno2,raw:eno1', ['eno2', 'eno1']],
  ];
  for (const [conduit, want] of rows) assert.deepEqual(resolveConduit(conduit, NICS, 'n1'), want, conduit);
});

test('resolution failures name the member and what the node has', () => {
  const rows: Array<[string, RegExp]> = [
    ['1g2', /member 1g2 needs NIC #2 of 1g, but there are only 2 \(eno1 1000 Mb\/s, eno2 1000 Mb\/s\)/],
    ['40g0', /needs NIC #0 of 40g, but there are only 0 \(none\)/],
    ['+25g1', /of at least 25g, but there is only 1/],
    ['-100m0', /of at most 100m/],
    ['?1g6', /any speed, preferring 1g, but there are only 6/],
    ['raw:eth9', /there is no interface eth9/],
  ];
  for (const [conduit, msg] of rows) assert.throws(() => resolveConduit(conduit, NICS, 'node n1'), (e: any) => /on node n1/.test(e.message) && msg.test(e.message), conduit);
  assert.throws(() => resolveConduit('raw:eno1,raw:eno1', NICS), /appears twice/);
  assert.throws(() => resolveConduit('1g0', []), /only 0/);
});

test('only physical NICs count when there are any; interfaces made by network roles never do', () => {
  const withVirtual: Nic[] = [
    ...NICS,
    { name: 'bond0', mac: '00:00:00:00:00:01', speed_mbps: -1, pci_path: '' },
    { name: 'bond-eno1', mac: '52:54:00:00:00:01', speed_mbps: 2000, pci_path: '' },
    { name: 'eno1.42', mac: '52:54:00:00:00:01', speed_mbps: 1000, pci_path: '' },
    { name: 'br-public', mac: '52:54:00:00:00:09', speed_mbps: 1000, pci_path: '' },
  ];
  for (const [conduit, want] of [['1g0', ['eno1']], ['1g1', ['eno2']], ['?40g0', ['eno1']], ['+1g4', ['ens3']]] as const) {
    assert.deepEqual(resolveConduit(conduit, withVirtual), want, conduit);
  }
  assert.throws(() => resolveConduit('+1g5', withVirtual), /only 5 \(eno1 1000 Mb\/s, eno2 1000 Mb\/s, ens2f0 10000 Mb\/s, ens2f1 10000 Mb\/s, ens3 25000 Mb\/s\)/);
  // Namespace nodes: no PCI paths at all, so every veth counts (but not what the roles made).
  const veths: Nic[] = [
    { name: 'eth1', mac: '02:00:00:00:00:01', speed_mbps: 10000, pci_path: '' },
    { name: 'eth0', mac: '02:00:00:00:00:00', speed_mbps: 10000, pci_path: '' },
    { name: 'eth1.42', mac: '02:00:00:00:00:01', speed_mbps: 10000, pci_path: '' },
    { name: 'bond-eth3', mac: '01:00:00:00:00:00', speed_mbps: 20000, pci_path: '' },
  ];
  assert.deepEqual(resolveConduit('10g0,10g1', veths), ['eth0', 'eth1']);
  assert.throws(() => resolveConduit('10g2', veths), /only 2/);
});
