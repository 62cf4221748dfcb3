// The flagship discovery path, for real: a QEMU VM with a blank disk and QEMU's iPXE ROM boots
// from the network through Fulcrum's DHCP, TFTP/HTTP → iPXE → the discovery kernel + initramfs that
// the project built from Debian packages → the agent registers → the node appears with the VM's
// MAC, memory, disk (rotational flag) and NIC → a script role bound to it runs and writes a wall
// value → the node is powered off through Fulcrum's IPMI driver, whose BMC is OpenIPMI's ipmi_sim
// with the VM as its chassis → powered on again (next boot PXE) through the API, the same node is
// found (no duplicate) → a job asks for power off (exit bit 32) and the BMC sees it off. Times are
// printed.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { withLab } from '../src/lab/lab.js';
import { buildDiscoveryImage } from '../src/images/discovery.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { startVm, vmCommand } from './support/vm.js';
import { IpmiDriver } from '../src/power/ipmi.js';
import { startIpmiSim } from '../src/power/ipmi-sim.js';
import { verifiedPower } from '../src/power/verified.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net', 'vm'); });

// The image cache outlives one run (a CI run builds once; later suites and runs reuse it).
const CACHE = path.join(os.tmpdir(), 'fulcrum-image-cache');

test('a VM powered on by IPMI PXE-boots into the discovery ramdisk, registers, runs a script role, is powered off and on through the API, and is found again', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.91.0.1/24' });
    const server = await startServerIn(lab, srv, '10.91.0.1');
    const api = server.api;
    const image = await buildDiscoveryImage({ outDir: path.join(server.dataDir, 'boot', 'discovery'), cacheDir: CACHE });
    assert.ok(image.agent, 'the agent is in the image');
    process.stdout.write(`# discovery image: kernel ${(image.sizeBytes.kernel / 1e6).toFixed(1)} MB, initrd ${(image.sizeBytes.initrd / 1e6).toFixed(2)} MB, ${image.modules.length} modules${image.cached ? ' (cached)' : ''}\n`);
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.91.0.0/24', server_address: '10.91.0.1', pools: [{ first: '10.91.0.100', last: '10.91.0.200' }], probe: false })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'hello-vm', jig: 'script', jig_config: { scripts: {
      '10-hello.sh': 'echo "hello from $(hostname) with $(grep -c ^processor /proc/cpuinfo) cpu"\nfulcrum-wall hello-vm-said "hi from $FULCRUM_NODE"\n',
    } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'power-off', jig: 'script', requires: ['hello-vm'], jig_config: { scripts: { '10-off.sh': 'echo powering off\nexit 32\n' } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/attribs', { name: 'hello-vm-said', role: 'hello-vm', map: 'hello/said', schema: { type: 'string' } })).status, 201);

    const disk = path.join(lab.makeDir('disk'), 'blank.raw');
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, 64 * 1024 * 1024); // a blank raw disk (sparse)
    const mac = '52:54:00:d1:5c:01';
    const uuid = '5ca1ab1e-0000-4000-8000-000000000001';
    // The BMC: ipmi_sim in the server's namespace; its chassis is the VM (started in the bridge's
    // namespace, where its tap is).
    const vm = await vmCommand(lab, lan, { name: 'disc', mac, uuid, memoryMb: 512, disk });
    const bmc = { driver: 'ipmi', address: '10.91.0.1', username: 'fulcrum', password: 'Bmc-Pa55-for-disc' };
    const sim = startIpmiSim(srv, { address: bmc.address, username: bmc.username, password: bmc.password, dir: lab.makeDir('bmc'), launch: ['ip', 'netns', 'exec', vm.ns.name, ...vm.argv] });
    const operator = verifiedPower(new IpmiDriver({ ...bmc, commandPrefix: ['ip', 'netns', 'exec', srv.name] }), { attempts: 10, initialDelayMs: 200, maxDelayMs: 1000, verifyTimeoutMs: 10_000, pollIntervalMs: 200 });
    await operator.nextBoot('pxe');
    const t0 = Date.now();
    await operator.on();
    const node = await waitFor('the VM to register with its inventory', async () => {
      const n = ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).find((x) => x.macs.includes(mac));
      return n?.inventory?.disks && n;
    }, 180000, 500).catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-4000)}\nchassis: ${sim.calls().join('; ')}`); });
    const registeredS = (Date.now() - t0) / 1000;
    assert.equal(node.alive, true);
    assert.equal(node.inventory.dmi.uuid.toLowerCase(), uuid);
    assert.ok(node.inventory.memory_kb > 400_000 && node.inventory.memory_kb < 600_000, `memory ${node.inventory.memory_kb} kB`);
    const vda = node.inventory.disks.find((d: any) => d.name === 'vda');
    assert.ok(vda, `the blank disk is in the inventory: ${JSON.stringify(node.inventory.disks)}`);
    assert.equal(vda.size_bytes, 64 * 1024 * 1024);
    assert.equal(typeof vda.rotational, 'boolean');
    assert.equal(vda.kind, vda.rotational ? 'HDD' : 'SSD');
    const nic = node.inventory.nics.find((x: any) => x.mac === mac);
    assert.ok(nic, 'the NIC is in the inventory');
    assert.equal(nic.driver, 'virtio_net');
    assert.match(nic.pci_path, /\/devices\/pci/);

    assert.equal((await api('POST', '/api/v1/deployments', { name: 'vm' })).status, 201);
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'hello-vm', node: node.name, deployment: 'vm' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/vm/commit')).status, 200);
    const hello = await waitFor('hello-vm ACTIVE', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=hello-vm')).body as any[])[0];
      if (nr?.state === 'ERROR') throw new Error(`hello-vm failed: ${(await api('GET', `/api/v1/noderoles/${nr.id}`)).body.runlog}`);
      return nr?.state === 'ACTIVE' && nr;
    }, 60000, 250);
    const activeS = (Date.now() - t0) / 1000;
    assert.equal(hello.wall.hello.said, `hi from ${node.name}`);
    process.stdout.write(`# VM start -> registered ${registeredS.toFixed(1)} s, -> script role ACTIVE ${activeS.toFixed(1)} s\n`);

    // Provision without rebooting: a job asks to boot the discovery bootenv again, which allows
    // kexec; the agent waits until Fulcrum serves it, then kexecs the kernel and initrd its iPXE
    // script names. QEMU runs with -no-reboot, so a firmware reboot would end the process: the same
    // QEMU process registering again proves the kexec.
    const pid = sim.qemuPid();
    assert.ok(pid, 'the VM runs');
    assert.equal((await api('POST', '/api/v1/roles', { name: 'kexec-again', jig: 'script', requires: ['hello-vm'], jig_config: { scripts: { '10-kexec.sh': 'fulcrum-reboot discovery\n' } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'kexec-again', node: node.name, deployment: 'vm' })).status, 201);
    const kexecAt = Date.now();
    assert.equal((await api('POST', '/api/v1/deployments/vm/commit')).status, 200);
    const registrations = async () => ((await api('GET', '/api/v1/events?type=node.registered&limit=100')).body as any[]).filter((e) => e.object_id === node.id).length;
    await waitFor('the VM to come back through kexec', async () => (await registrations()) >= 2, 120000, 250)
      .catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-4000)}`); });
    assert.equal(sim.qemuPid(), pid, 'the same QEMU process: no firmware reboot');
    assert.match(vm.serial(), /booting discovery with kexec/);
    process.stdout.write(`# kexec: job committed -> registered again ${((Date.now() - kexecAt) / 1000).toFixed(1)} s (no firmware reboot)\n`);

    // Power settings on the node; the password is sealed and never shown.
    const set = await api('PUT', `/api/v1/nodes/${node.name}/power`, bmc);
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.password, '***');
    assert.ok(!JSON.stringify((await api('GET', `/api/v1/nodes/${node.name}/power`)).body).includes(bmc.password));
    const power = async (action: string) => {
      const r = await api('POST', `/api/v1/nodes/${node.name}/power/actions`, { action });
      assert.equal(r.status, 200, `power ${action}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    assert.equal((await power('status')).state, 'on');
    const off = await power('off');
    assert.equal(off.state, 'off');
    assert.equal(sim.qemuPid(), undefined, 'the VM process is gone');
    process.stdout.write(`# power off through the API and ipmi_sim confirmed in ${off.elapsed_ms} ms\n`);

    // Next boot PXE, power on through the API: the same node registers again, no duplicate.
    await power('pxe');
    assert.equal((await power('on')).state, 'on');
    await waitFor('the second boot to register again', async () => {
      const events = (await api('GET', '/api/v1/events?type=node.registered&limit=100')).body as any[];
      return events.filter((e) => e.object_id === node.id).length >= 3;
    }, 180000, 500).catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-3000)}`); });
    const all = ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).filter((x) => x.macs.includes(mac));
    assert.equal(all.length, 1, 'no duplicate node');

    // The job asks for power off (exit bit 32): the guest powers off, QEMU exits, the BMC says off.
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'power-off', node: node.name, deployment: 'vm' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/vm/commit')).status, 200);
    await waitFor('the VM to power itself off', async () => sim.qemuPid() === undefined, 60000, 250).catch(async (e) => {
      const nrs = ((await api('GET', `/api/v1/noderoles?node=${node.name}`)).body as any[]).map((x) => `${x.role}:${x.state}`);
      throw new Error(`${e.message}\nnoderoles: ${nrs.join(', ')}\nchassis: ${sim.calls().slice(-5).join('; ')}\nserial:\n${vm.serial().slice(-3000)}`);
    });
    assert.equal((await power('status')).state, 'off');
    const powerEvents = ((await api('GET', `/api/v1/events?type=node.power&limit=100`)).body as any[]).filter((e) => e.object_id === node.id && e.type === 'node.power');
    assert.deepEqual(powerEvents.map((e) => e.payload.action), ['status', 'off', 'pxe', 'on', 'status']);
    assert.ok(!JSON.stringify(powerEvents).includes(bmc.password), 'no password in events');
    await server.stop();
  });
});

test('UEFI: an OVMF VM PXE-boots through iPXE EFI into the discovery ramdisk and registers', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.92.0.1/24' });
    const server = await startServerIn(lab, srv, '10.92.0.1');
    const api = server.api;
    await buildDiscoveryImage({ outDir: path.join(server.dataDir, 'boot', 'discovery'), cacheDir: CACHE });
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.92.0.0/24', server_address: '10.92.0.1', pools: [{ first: '10.92.0.100', last: '10.92.0.200' }], probe: false })).status, 201);
    const mac = '52:54:00:e1:f1:01';
    const t0 = Date.now();
    // OVMF with QEMU's iPXE EFI option ROM (the virtio-net ROM from ipxe-qemu carries both).
    const vm = await startVm(lab, lan, { name: 'uefi', mac, uuid: '5ca1ab1e-0000-4000-8000-0000000000e1', memoryMb: 512, extra: ['-bios', '/usr/share/ovmf/OVMF.fd'] });
    const node = await waitFor('the UEFI VM to register', async () => {
      const n = ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).find((x) => x.macs.includes(mac));
      return n?.inventory?.nics && n;
    }, 240000, 500).catch((e) => { throw new Error(`${e.message}\nserial:\n${vm.serial().slice(-4000)}`); });
    process.stdout.write(`# UEFI VM start -> registered ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    assert.ok(node.inventory.nics.some((x: any) => x.mac === mac));
    // The DHCP server saw an x86-64 UEFI client (option 93 = 7) and answered it.
    const leases = (await api('GET', '/api/v1/leases')).body as any[];
    assert.ok(leases.some((l) => l.mac === mac), 'the UEFI client has a lease');
    await vm.stop();
    await server.stop();
  });
});
