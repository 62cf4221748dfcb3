// Real network-boot firmware against Fulcrum: QEMU's iPXE ROM on a lab bridge gets its address
// from Fulcrum's DHCP, is sent its per-node script URL (iPXE recognised: no chainload loop),
// fetches the script over HTTP, and follows it to the kernel of the bootenv it was given.
// The discovery ramdisk itself and the whole discovery flow are in test/discovery-vm.test.ts.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withLab } from '../src/lab/lab.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { startVm } from './support/vm.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net', 'vm'); });

test('QEMU iPXE firmware: DHCP from Fulcrum, its node script over HTTP, the bootenv kernel requested', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.90.0.1/24' });
    const server = await startServerIn(lab, srv, '10.90.0.1');
    const api = server.api;
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.90.0.0/24', server_address: '10.90.0.1', pools: [{ first: '10.90.0.100', last: '10.90.0.200' }], probe: false })).status, 201);
    // A stand-in kernel file, so the request for it is served (booting it is not this test's job).
    fs.mkdirSync(path.join(server.dataDir, 'boot', 'discovery'), { recursive: true });
    fs.writeFileSync(path.join(server.dataDir, 'boot', 'discovery', 'vmlinuz'), 'not a kernel');
    const mac = '52:54:00:aa:00:01';
    const started = Date.now();
    const vm = await startVm(lab, lan, { name: 'fw', mac, uuid: '11111111-2222-3333-4444-555555555555' });
    const serial = await waitFor('iPXE to fetch the kernel named by its script', async () => {
      const s = vm.serial();
      return /discovery\/vmlinuz\.\.\./.test(s) && s;
    }, 90000, 250);
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`# QEMU start -> iPXE fetched its node script and the kernel: ${seconds.toFixed(1)} s\n`);
    assert.match(serial, /net0: 10\.90\.0\.1\d\d\/255\.255\.255\.0/);
    assert.match(serial, /Filename: http:\/\/10\.90\.0\.1:8091\/boot\/nodes\/52-54-00-aa-00-01\/ipxe/, 'iPXE is sent its script, not the iPXE binary again');
    assert.match(serial, /ipxe : \d+ bytes \[script\]/);
    const lease = ((await api('GET', `/api/v1/leases?mac=${mac}`)).body as any[])[0];
    assert.equal(lease.state, 'bound');
    const m = String((await api('GET', '/metrics')).body);
    assert.match(m, /fulcrum_boot_files_total\{protocol="http",result="ok"\} [2-9]/);
    // iPXE is not left waiting for an IPv6 router (radvd answers): configuring takes seconds, not 16+.
    assert.ok(seconds < 30, `firmware to kernel request took ${seconds} s`);
    await vm.stop();
    await server.stop();
  });
});
