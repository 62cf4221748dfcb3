// Network roles on namespace nodes running the real agent (issue 7 item 5): binding network-<name>
// allocates, and the role's script configures the node for real with iproute2 and writes
// systemd-networkd files (netplan on one node, checked with `netplan generate`) under the root it is given. Checked with `ip -j` inside each namespace:
// an address (and the IPv6 auto address) on a veth with the default route of the lowest-pref
// router, traffic between two nodes over it, a bridge; a VLAN sub-interface and a bond of two
// veths where the kernel has 802.1Q and bonding — where it does not (the lab kernel may lack both),
// the role must fail saying so, after writing the persistent config, which is checked either way.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { withLab, type Lab, type Namespace } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net'); });

const AGENT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');

/** Can this kernel make a link of `kind` (a throwaway namespace tries)? */
async function kernelHas(lab: Lab, kind: 'vlan' | 'bond'): Promise<boolean> {
  const ns = await lab.namespace(`probe-${kind}`);
  const r = kind === 'vlan'
    ? await ns.exec('sh', ['-c', 'ip link add p0 type veth peer name p1 && ip link add link p0 name p0.5 type vlan id 5'], { check: false })
    : await ns.exec('ip', ['link', 'add', 'b0', 'type', 'bond'], { check: false });
  return r.code === 0;
}

const read = (f: string) => fs.readFileSync(f, 'utf8');

test('network roles configure namespace nodes: address + route + IPv6 on a veth, a bridge, a VLAN sub-interface, a bond of two veths', { timeout: 300000 }, async () => {
  await withLab(async (lab) => {
    const has = { vlan: await kernelHas(lab, 'vlan'), bond: await kernelHas(lab, 'bond') };
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    const data = await lab.bridge('data');
    const seg2 = await lab.bridge('seg2');
    const bondseg = await lab.bridge('bondseg');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.89.0.1/24' });
    const server = await startServerIn(lab, srv, '10.89.0.1');
    const api = server.api;

    // Three nodes, five veths each in a fixed MAC order (conduit order is PCI path, then MAC):
    // eth0 admin (the agent's way in), eth1 on "data", eth2 on "seg2", eth3 + eth4 on "bondseg".
    const nodes: Array<{ ns: Namespace; root: string; name: string }> = [];
    for (let i = 0; i < 3; i++) {
      const ns = await lab.namespace(`node${i}`);
      await lab.link(ns, lan, { ifaceA: 'eth0', addressA: `10.89.0.${11 + i}/24` });
      await lab.link(ns, data, { ifaceA: 'eth1' });
      await lab.link(ns, seg2, { ifaceA: 'eth2' });
      await lab.link(ns, bondseg, { ifaceA: 'eth3' });
      await lab.link(ns, bondseg, { ifaceA: 'eth4' });
      for (let k = 0; k < 5; k++) await ns.ip('link', 'set', 'dev', `eth${k}`, 'address', `02:00:00:0${i}:00:0${k}`);
      const root = lab.makeDir(`netroot${i}`);
      // node2's installed system uses netplan (the script looks for etc/netplan and the command).
      if (i === 2) fs.mkdirSync(path.join(root, 'etc', 'netplan'), { recursive: true });
      const state = lab.makeDir(`agent${i}`);
      ns.spawn('sh', [AGENT, '--api', 'http://10.89.0.1:8091', '--state', state],
        { env: { FULCRUM_MACHINE_UUID: crypto.randomUUID(), FULCRUM_NETWORK_ROOT: root, PATH: process.env.PATH }, label: `agent in node${i}` });
      nodes.push({ ns, root, name: `d0200000${i}0000.fulcrum.internal` });
    }
    await waitFor('three nodes registered with five NICs', async () => {
      const ns = ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).filter((n) => n.inventory?.nics?.length === 5);
      return ns.length === 3;
    }, 60000, 250);

    const post = async (p: string, body: unknown) => {
      const r = await api('POST', p, body);
      assert.equal(r.status, 201, `${p}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await post('/api/v1/networks', { name: 'data', category: 'storage', conduit: '10g1', v6prefix: 'auto',
      ranges: [{ name: 'host', first: '10.90.0.10/24', last: '10.90.0.100/24' }], router: { address: '10.90.0.1', pref: 5 } });
    await post('/api/v1/networks', { name: 'bridged', category: 'public', conduit: '10g2', use_bridge: true,
      ranges: [{ name: 'host', first: '10.91.0.10/24', last: '10.91.0.100/24' }], router: { address: '10.91.0.1', pref: 50 } });
    // Same conduit as "data" (a perfect overlap): a tagged network on the same NIC.
    await post('/api/v1/networks', { name: 'tagged', category: 'storage', conduit: '10g1', use_vlan: true, vlan: 42,
      ranges: [{ name: 'host', first: '10.92.0.10/24', last: '10.92.0.100/24' }] });
    await post('/api/v1/networks', { name: 'bonded', category: 'cluster', conduit: '10g3,10g4', use_team: true, team_mode: 1,
      ranges: [{ name: 'host', first: '10.93.0.10/24', last: '10.93.0.100/24' }] });
    await post('/api/v1/deployments', { name: 'net' });
    const bindings: Array<[number, string]> = [[0, 'data'], [0, 'bridged'], [1, 'data'], [1, 'tagged'], [2, 'bonded']];
    const addr: Record<string, string> = {};
    for (const [i, network] of bindings) {
      const b = await post(`/api/v1/networks/${network}/nodes`, { node: nodes[i].name, deployment: 'net' });
      addr[`${i}:${network}`] = b.allocations[0].address;
      if (b.allocations[1]) addr[`${i}:${network}:6`] = b.allocations[1].address;
    }
    assert.equal((await api('POST', '/api/v1/deployments/net/commit')).status, 200);

    const expectOk = new Set(['0:data', '0:bridged', '1:data', ...(has.vlan ? ['1:tagged'] : []), ...(has.bond ? ['2:bonded'] : [])]);
    const settled = await waitFor('every network noderole ACTIVE or (for a missing kernel feature) ERROR', async () => {
      const nrs = ((await api('GET', '/api/v1/noderoles?deployment=net&limit=100')).body as any[]).filter((x) => x.role.startsWith('network-'));
      const state = (i: number, net: string) => nrs.find((x) => x.node === nodes[i].name && x.role === `network-${net}`)?.state;
      for (const [i, net] of bindings) {
        const s = state(i, net);
        const want = expectOk.has(`${i}:${net}`) ? 'ACTIVE' : 'ERROR';
        if (s === 'ERROR' && want === 'ACTIVE') {
          const nr = nrs.find((x) => x.node === nodes[i].name && x.role === `network-${net}`);
          throw new Error(`network-${net} on node${i} failed: ${(await api('GET', `/api/v1/noderoles/${nr.id}`)).body.runlog}`);
        }
        if (s !== want) return false;
      }
      return nrs;
    }, 120000, 250);

    // node0: the data address and the IPv6 auto address on eth1; the default route via data's router (pref 5 < 50).
    const n0 = nodes[0].ns;
    const eth1 = await n0.ipJson<any[]>('addr', 'show', 'dev', 'eth1');
    const cidrs = eth1[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    assert.ok(cidrs.includes(`${addr['0:data']}/24`), `eth1 has ${addr['0:data']}/24: ${cidrs}`);
    assert.ok(addr['0:data:6'] && cidrs.includes(`${addr['0:data:6']}/64`), `eth1 has the IPv6 auto address ${addr['0:data:6']}: ${cidrs}`);
    const prefix6 = (await api('GET', '/api/v1/networks/data/v6prefix')).body.prefix as string;
    const iid = crypto.createHash('md5').update(nodes[0].name).digest('hex').slice(16).match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
    assert.equal(addr['0:data:6'], `${prefix6.replace('::/64', '')}:${iid}`);
    const routes = await n0.routes();
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '10.90.0.1' && r.dev === 'eth1'), `default via 10.90.0.1 dev eth1: ${JSON.stringify(routes)}`);
    // The bridge: eth2 is its port, the address is on the bridge.
    const br = await n0.ipJson<any[]>('addr', 'show', 'dev', 'br-bridged');
    assert.ok(br[0].addr_info.some((a: any) => `${a.local}/${a.prefixlen}` === `${addr['0:bridged']}/24`), JSON.stringify(br));
    assert.equal((await n0.ipJson<any[]>('link', 'show', 'dev', 'eth2'))[0].master, 'br-bridged');
    // Real traffic: node0 reaches node1 over the data network.
    await n0.exec('ping', ['-c', '1', '-W', '2', addr['1:data']]);

    // Persistent config (systemd-networkd) under the roots the scripts were given.
    const d0 = path.join(nodes[0].root, 'etc', 'systemd', 'network');
    assert.match(read(path.join(d0, '60-fulcrum-eth1.network')), /\[Match\]\nName=eth1\n/);
    const dataConf = read(path.join(d0, '60-fulcrum-eth1.network.d', 'data.conf'));
    assert.match(dataConf, new RegExp(`Address=${addr['0:data'].replace(/\./g, '\\.')}/24\n`));
    assert.match(dataConf, /Gateway=10\.90\.0\.1\n/);
    assert.match(read(path.join(d0, '60-fulcrum-br-bridged.netdev')), /Kind=bridge/);
    assert.match(read(path.join(d0, '60-fulcrum-eth2.network.d', 'bridged.conf')), /Bridge=br-bridged/);
    assert.doesNotMatch(read(path.join(d0, '60-fulcrum-br-bridged.network.d', 'bridged.conf')), /Gateway/, 'only the lowest-pref router is the default route');

    // node1: data and a VLAN on the same NIC; two drop-ins on eth1 that do not overwrite each other.
    const d1 = path.join(nodes[1].root, 'etc', 'systemd', 'network');
    assert.match(read(path.join(d1, '60-fulcrum-eth1.network.d', 'tagged.conf')), /VLAN=eth1\.42/);
    assert.match(read(path.join(d1, '60-fulcrum-eth1.network.d', 'data.conf')), /Address=10\.90\.0\.\d+\/24/);
    assert.match(read(path.join(d1, '60-fulcrum-eth1.42.netdev')), /Kind=vlan\n\n\[VLAN\]\nId=42\n/);
    assert.match(read(path.join(d1, '60-fulcrum-eth1.42.network.d', 'tagged.conf')), new RegExp(`Address=${addr['1:tagged'].replace(/\./g, '\\.')}/24`));
    const tagged = settled.find((x: any) => x.node === nodes[1].name && x.role === 'network-tagged');
    if (has.vlan) {
      const v = await nodes[1].ns.ipJson<any[]>('-d', 'addr', 'show', 'dev', 'eth1.42');
      assert.equal(v[0].linkinfo.info_kind, 'vlan');
      assert.equal(v[0].linkinfo.info_data.id, 42);
      assert.ok(v[0].addr_info.some((a: any) => a.local === addr['1:tagged']));
    } else {
      assert.match((await api('GET', `/api/v1/noderoles/${tagged.id}`)).body.runlog, /cannot create VLAN sub-interface eth1\.42 on this kernel \(is CONFIG_VLAN_8021Q enabled\?\)/);
    }

    // node2: a bond of eth3 and eth4 (active-backup), persisted as netplan; the real `netplan
    // generate` turns the file into systemd-networkd units, which says the YAML is right.
    const np = path.join(nodes[2].root, 'etc', 'netplan', '60-fulcrum-bonded.yaml');
    assert.equal(fs.statSync(np).mode & 0o777, 0o600);
    const yaml = (await import('yaml')).parse(read(np));
    assert.deepEqual(yaml.network.bonds['bond-eth3'], { interfaces: ['eth3', 'eth4'], parameters: { mode: 'active-backup' }, addresses: [`${addr['2:bonded']}/24`] });
    assert.deepEqual(Object.keys(yaml.network.ethernets), ['eth3', 'eth4']);
    assert.equal(fs.existsSync(path.join(nodes[2].root, 'etc', 'systemd', 'network')), false, 'netplan, not networkd files');
    await nodes[2].ns.exec('netplan', ['generate', '--root-dir', nodes[2].root]);
    const gen = path.join(nodes[2].root, 'run', 'systemd', 'network');
    assert.match(read(path.join(gen, '10-netplan-bond-eth3.netdev')), /Kind=bond[\s\S]*Mode=active-backup/);
    assert.match(read(path.join(gen, '10-netplan-bond-eth3.network')), new RegExp(`Address=${addr['2:bonded'].replace(/\./g, '\\.')}/24`));
    for (const m of ['eth3', 'eth4']) assert.match(read(path.join(gen, `10-netplan-${m}.network`)), /Bond=bond-eth3/);
    const bonded = settled.find((x: any) => x.node === nodes[2].name && x.role === 'network-bonded');
    if (has.bond) {
      const b = await nodes[2].ns.ipJson<any[]>('-d', 'addr', 'show', 'dev', 'bond-eth3');
      assert.equal(b[0].linkinfo.info_kind, 'bond');
      assert.ok(b[0].addr_info.some((a: any) => a.local === addr['2:bonded']));
      for (const m of ['eth3', 'eth4']) assert.equal((await nodes[2].ns.ipJson<any[]>('link', 'show', 'dev', m))[0].master, 'bond-eth3');
    } else {
      assert.match((await api('GET', `/api/v1/noderoles/${bonded.id}`)).body.runlog, /cannot create bond bond-eth3 on this kernel \(is CONFIG_BONDING enabled\?\)/);
    }
    process.stdout.write(`# network roles: kernel 802.1Q ${has.vlan ? 'yes' : 'NO (VLAN checked as files + clear ERROR)'}, bonding ${has.bond ? 'yes' : 'NO (bond checked as files + clear ERROR)'}\n`);
    await server.stop();
  });
});
