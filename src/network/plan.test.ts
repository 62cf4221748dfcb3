// A node's plan on a network (what the role script does), from allocations and inventory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computePlan, planText, type PlanInput } from './plan.js';

const nics = [0, 1, 2, 3].map((k) => ({ name: `eth${k}`, mac: `02:00:00:00:00:0${k}`, speed_mbps: 10000, pci_path: '' }));
const base: PlanInput = {
  node: { name: 'n1.lab.test', inventory: { nics } },
  network: { name: 'storage', category: 'storage', conduit: '10g1', vlan: 0, use_vlan: false, use_bridge: false, team_mode: 5, use_team: false, configure: true },
  address4: '10.20.0.5/24', defaultRoute: false,
};

test('interfaces stack up: members -> bond -> VLAN -> bridge; the address goes on the top one', () => {
  const rows: Array<[Partial<PlanInput['network']>, Record<string, string>]> = [
    [{}, { MEMBERS: 'eth1', BOND: '', VLAN_IFACE: '', BRIDGE: '', IFACE: 'eth1' }],
    [{ use_vlan: true, vlan: 42 }, { VLAN: '42', VLAN_IFACE: 'eth1.42', IFACE: 'eth1.42' }],
    [{ conduit: '10g2,10g3', use_team: true, team_mode: 4 }, { MEMBERS: 'eth2 eth3', BOND: 'bond-eth2', TEAM_MODE: '4', IFACE: 'bond-eth2' }],
    [{ conduit: '10g2,10g3', use_team: true, use_vlan: true, vlan: 4094 }, { BOND: 'bond-eth2', VLAN_IFACE: 'bond-eth2.4094', IFACE: 'bond-eth2.4094' }],
    [{ use_bridge: true }, { BRIDGE: 'br-storage', BRIDGE_PORT: 'eth1', IFACE: 'br-storage' }],
    [{ use_bridge: true, use_vlan: true, vlan: 7, name: 'averylongnetworkname' }, { VLAN_IFACE: 'eth1.7', BRIDGE: 'br-averylongnet', BRIDGE_PORT: 'eth1.7', IFACE: 'br-averylongnet' }],
    [{ vlan: 9 }, { VLAN: '0', VLAN_IFACE: '' }],
    [{ configure: false }, { CONFIGURE: '0', IFACE: 'eth1' }],
  ];
  for (const [network, want] of rows) {
    const plan = computePlan({ ...base, network: { ...base.network, ...network } });
    assert.equal(plan.ERROR, '', JSON.stringify(network));
    for (const [k, v] of Object.entries(want)) assert.equal(plan[k], v, `${JSON.stringify(network)}: ${k}`);
  }
});

test('addresses and the default route', () => {
  const p = computePlan({ ...base, address6: 'fd00:1::5/64', router: { address: '10.20.0.1', pref: 5 }, defaultRoute: true });
  assert.deepEqual([p.ADDRESS, p.ADDRESS6, p.ROUTER, p.DEFAULT_ROUTE], ['10.20.0.5/24', 'fd00:1::5/64', '10.20.0.1', '1']);
  assert.equal(computePlan({ ...base, router: { address: '10.20.0.1', pref: 5 }, defaultRoute: false }).DEFAULT_ROUTE, '0');
});

test('errors travel in the plan for the script to report', () => {
  assert.match(computePlan({ ...base, address4: undefined }).ERROR, /no address is allocated to n1\.lab\.test on network storage/);
  assert.match(computePlan({ ...base, network: { ...base.network, conduit: '10g9' } }).ERROR, /member 10g9 needs NIC #9 of 10g/);
  assert.match(computePlan({ ...base, node: { name: 'n1', inventory: {} } }).ERROR, /only 0/);
});

test('the plan text is shell assignments with single-quoted values', () => {
  const text = planText({ A: "it's", B: '$(rm -rf /)', C: '' });
  assert.equal(text, "A='it'\\''s'\nB='$(rm -rf /)'\nC=''\n");
});
