// Network roles live on a kernel that has bonding and 802.1Q (issue 7 item 5): the lab host's kernel
// may have neither, so a QEMU VM PXE-boots Fulcrum's discovery ramdisk (Debian kernel, with the
// bonding and 8021q modules added) and its agent runs the network-<name> role scripts with busybox.
// The VM has three virtio NICs in PCI order; two conduits `?1g1,?1g2` (no speed reported: "any,
// prefer 1g") resolve to eth1+eth2: one network is the bond itself, the other a VLAN on it. A
// check role reads back /sys and /proc inside the VM, and a namespace on the same segment pings the
// bond's address.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { withLab } from '../src/lab/lab.js';
import { buildDiscoveryImage } from '../src/images/discovery.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { startVm } from './support/vm.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net', 'vm'); });

const CACHE = path.join(os.tmpdir(), 'fulcrum-image-cache');

test('a bond of two NICs and a VLAN on it, configured live by network roles on a PXE-booted VM', { timeout: 600000 }, async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    const data = await lab.bridge('data');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.94.0.1/24' });
    const peer = await lab.namespace('peer');
    await lab.link(peer, data, { ifaceA: 'eth0', addressA: '10.95.0.1/24' });
    const server = await startServerIn(lab, srv, '10.94.0.1');
    const api = server.api;
    const image = await buildDiscoveryImage({ outDir: path.join(server.dataDir, 'boot', 'discovery'), cacheDir: CACHE, extraModules: ['bonding', '8021q'] });
    assert.ok(image.modules.includes('bonding') && image.modules.includes('8021q'), `modules in the image: ${image.modules.join(' ')}`);
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.94.0.0/24', server_address: '10.94.0.1', pools: [{ first: '10.94.0.100', last: '10.94.0.200' }], probe: false })).status, 201);

    const post = async (p: string, body: unknown) => {
      const r = await api('POST', p, body);
      assert.equal(r.status, 201, `${p}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await post('/api/v1/networks', { name: 'vbond', category: 'cluster', conduit: '?1g1,?1g2', use_team: true, team_mode: 1,
      ranges: [{ name: 'host', first: '10.95.0.10/24', last: '10.95.0.50/24' }] });
    await post('/api/v1/networks', { name: 'vtag', category: 'storage', conduit: '?1g1,?1g2', use_team: true, team_mode: 1, use_vlan: true, vlan: 42,
      ranges: [{ name: 'host', first: '10.96.0.10/24', last: '10.96.0.50/24' }] });
    await post('/api/v1/roles', { name: 'netcheck', jig: 'script', requires: ['network-vbond', 'network-vtag'], jig_config: { scripts: { '10-check.sh': [
      'fulcrum-wall netcheck-slaves "$(cat /sys/class/net/bond-eth1/bonding/slaves)"',
      'fulcrum-wall netcheck-mode "$(cat /sys/class/net/bond-eth1/bonding/mode)"',
      'fulcrum-wall netcheck-vlan "$(cat /proc/net/vlan/config)"',
      'fulcrum-wall netcheck-bond-addr "$(ip addr show dev bond-eth1)"',
      'fulcrum-wall netcheck-vlan-addr "$(ip addr show dev bond-eth1.42)"',
      'fulcrum-wall netcheck-netdev "$(cat /etc/systemd/network/60-fulcrum-bond-eth1.netdev /etc/systemd/network/60-fulcrum-bond-eth1.42.netdev)"',
      '',
    ].join('\n') } } });

    // The VM: eth0 on the boot segment, eth1 and eth2 on the data segment (taps in the switch namespace).
    const taps: string[] = [];
    for (const k of [1, 2]) {
      const tap = `tapnv${k}`;
      await data.ns.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      await data.ns.ip('link', 'set', 'dev', tap, 'master', data.name);
      await data.ns.ip('link', 'set', 'dev', tap, 'up');
      data.ns.ifaces.add(tap);
      taps.push('-netdev', `tap,id=d${k},ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=d${k},mac=52:54:00:9e:00:0${k}`);
    }
    const mac = '52:54:00:9e:00:00';
    const t0 = Date.now();
    const vm = await startVm(lab, lan, { name: 'netvm', mac, uuid: '5ca1ab1e-0000-4000-8000-000000000e7a', memoryMb: 512, extra: taps });
    const node = await waitFor('the VM to register with three NICs', async () => {
      const n = ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).find((x) => x.macs.includes(mac));
      // Three virtio NICs (loading bonding also makes a bond0, which is no conduit member).
      return n?.inventory?.nics?.filter((x: any) => x.driver === 'virtio_net').length === 3 && n;
    }, 240000, 500).catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-4000)}`); });
    const nics = node.inventory.nics.filter((x: any) => x.driver === 'virtio_net').sort((a: any, b: any) => (a.pci_path < b.pci_path ? -1 : 1));
    assert.deepEqual(nics.map((n: any) => n.mac), [mac, '52:54:00:9e:00:01', '52:54:00:9e:00:02'], 'PCI order is the order of the -device options');

    await post('/api/v1/deployments', { name: 'vmnet' });
    const bond = await post('/api/v1/networks/vbond/nodes', { node: node.name, deployment: 'vmnet' });
    const tag = await post('/api/v1/networks/vtag/nodes', { node: node.name, deployment: 'vmnet' });
    await post('/api/v1/noderoles', { role: 'netcheck', node: node.name, deployment: 'vmnet' });
    assert.equal((await api('POST', '/api/v1/deployments/vmnet/commit')).status, 200);
    const check = await waitFor('netcheck ACTIVE', async () => {
      const nrs = (await api('GET', '/api/v1/noderoles?deployment=vmnet')).body as any[];
      const failed = nrs.find((x) => x.state === 'ERROR');
      if (failed) throw new Error(`${failed.role} failed: ${(await api('GET', `/api/v1/noderoles/${failed.id}`)).body.runlog}`);
      const c = nrs.find((x) => x.role === 'netcheck');
      return c?.state === 'ACTIVE' && c;
    }, 180000, 500).catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-3000)}`); });
    const w = check.wall;
    const bondAddr = bond.allocations[0].address as string;
    const tagAddr = tag.allocations[0].address as string;
    assert.equal(w['netcheck-slaves'].trim(), 'eth1 eth2', 'both NICs are bond members');
    assert.equal(w['netcheck-mode'].trim(), 'active-backup 1');
    assert.match(w['netcheck-vlan'], /bond-eth1\.42\s*\|\s*42\s*\|\s*bond-eth1/, 'a VLAN 42 sub-interface on the bond');
    assert.ok(w['netcheck-bond-addr'].includes(`inet ${bondAddr}/24`), w['netcheck-bond-addr']);
    assert.ok(w['netcheck-vlan-addr'].includes(`inet ${tagAddr}/24`), w['netcheck-vlan-addr']);
    assert.match(w['netcheck-netdev'], /Kind=bond[\s\S]*Mode=active-backup[\s\S]*Kind=vlan[\s\S]*Id=42/);
    // Real traffic over the bond, from a namespace on the data segment.
    await waitFor('the bond answers ping', async () => (await peer.exec('ping', ['-c', '1', '-W', '1', bondAddr], { check: false })).code === 0, 20000, 500);
    process.stdout.write(`# network roles on a VM: bond ${bondAddr} and VLAN 42 ${tagAddr} live ${((Date.now() - t0) / 1000).toFixed(1)} s after VM start\n`);
    await vm.stop();
    await server.stop();
  });
});
