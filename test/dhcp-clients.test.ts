// Fulcrum's DHCP server against real clients, in network namespaces the test builds (no route
// out): ISC dhclient, busybox udhcpc and dhcpcd obtain, renew and release leases; a reservation is
// honoured; a request relayed by isc-dhcp-relay from another segment gets an address from the
// right subnet; an address something else already answers at is not offered; leases survive
// kill -9; and proxyDHCP beside dnsmasq gives a PXE client dnsmasq's address and Fulcrum's boot file.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { withLab, dhclient, udhcpc, dhcpcd } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net'); });

const leaseOf = async (api: any, mac: string) => ((await api('GET', `/api/v1/leases?mac=${mac}`)).body as any[])[0];

test('dhclient, udhcpc and dhcpcd obtain, renew and release; reservations; relay; probe; durable leases', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.77.0.1/24' });
    // a second segment behind a relay
    const relayNs = await lab.namespace('relay');
    const far = await lab.bridge('far');
    await lab.link(relayNs, lan, { ifaceA: 'up0', addressA: '10.77.0.2/24' });
    await lab.link(relayNs, far, { ifaceA: 'down0', addressA: '10.78.0.1/24' });
    await srv.ip('route', 'add', '10.78.0.0/24', 'via', '10.77.0.2');
    await relayNs.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);

    let server = await startServerIn(lab, srv, '10.77.0.1');
    let api = server.api;
    assert.equal((await api('POST', '/api/v1/subnets', {
      name: 'lan', cidr: '10.77.0.0/24', server_address: '10.77.0.1', pools: [{ first: '10.77.0.100', last: '10.77.0.150' }],
      routers: ['10.77.0.1'], dns: ['10.77.0.1'], domain: 'lab.test', lease_time_s: 120, probe: true, probe_timeout_ms: 300,
    })).status, 201);
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'far', cidr: '10.78.0.0/24', pools: [{ first: '10.78.0.50', last: '10.78.0.60' }], routers: ['10.78.0.1'], probe: false })).status, 201);

    // Router solicitations on the boot segment are answered: router lifetime 0, so iPXE stops waiting.
    const rs = await lab.namespace('rs');
    await lab.link(rs, lan, { ifaceA: 'eth0' });
    const ra = await waitFor('a router advertisement', async () => {
      const r = await rs.exec('rdisc6', ['-1', '-r', '1', '-w', '1500', 'eth0'], { check: false, timeoutMs: 5000 });
      return /Router lifetime\s*:\s*0 /.test(r.stdout) && r.stdout;
    }, 20000, 500);
    assert.match(ra, /Router lifetime\s*:\s*0 /);

    // A squatter already answers at the first pool address: probe-before-offer skips it.
    const squat = await lab.namespace('squat');
    await lab.link(squat, lan, { ifaceA: 'eth0', addressA: '10.77.0.100/24' });

    for (const [kind, start] of [['dhclient', dhclient], ['udhcpc', udhcpc], ['dhcpcd', dhcpcd]] as const) {
      const ns = await lab.namespace(kind);
      const link = await lab.link(ns, lan, { ifaceA: 'eth0' });
      const session = await (start as typeof dhclient)(ns, 'eth0', { hostname: `${kind}-host`, timeoutMs: 30000 });
      const { address } = session.lease;
      assert.match(address, /^10\.77\.0\.1[0-4]\d$/, `${kind} got ${address}`);
      assert.notEqual(address, '10.77.0.100', `${kind}: the squatted address was not offered`);
      assert.equal(session.lease.router, '10.77.0.1');
      const lease = await leaseOf(api, link.a.mac);
      assert.equal(lease.state, 'bound', `${kind}: lease stored as bound`);
      assert.equal(lease.address, address);
      // renew: the same client comes back for the same address (INIT-REBOOT / requested address)
      await session.stop();
      const again = await (start as typeof dhclient)(ns, 'eth0', { requestAddress: address, timeoutMs: 30000, ...(kind === 'dhclient' ? { leaseFile: session.files.leaseFile } : {}) } as any);
      assert.equal(again.lease.address, address, `${kind}: renewed the same address`);
      const renewed = await leaseOf(api, link.a.mac);
      assert.ok(new Date(renewed.expires_at) >= new Date(lease.expires_at), `${kind}: lease extended`);
      const released = await again.release();
      assert.ok(released.released, `${kind}: RELEASE sent`);
      await waitFor(`${kind}: lease released`, async () => (await leaseOf(api, link.a.mac)).state === 'released', 10000);
    }
    const conflict = ((await api('GET', '/api/v1/events?type=dhcp.conflict')).body as any[]);
    assert.ok(conflict.some((e) => e.payload.address === '10.77.0.100'), 'the probe conflict is an event');

    // A reservation is honoured.
    const resNs = await lab.namespace('res');
    const resLink = await lab.link(resNs, lan, { ifaceA: 'eth0' });
    assert.equal((await api('POST', '/api/v1/reservations', { mac: resLink.a.mac, subnet: 'lan', address: '10.77.0.42', hostname: 'reserved' })).status, 201);
    const reserved = await dhclient(resNs, 'eth0', { timeoutMs: 30000 });
    assert.equal(reserved.lease.address, '10.77.0.42');

    // TFTP and HTTP from the same tree, fetched from the boot address by real clients: the rendered
    // iPXE script follows the node's bootenv; a static file comes back intact at several block sizes.
    const macPath = resLink.a.mac.replace(/:/g, '-');
    const tftp = async (file: string, blksize = 512) =>
      (await resNs.exec('curl', ['-sS', '--tftp-blksize', String(blksize), `tftp://10.77.0.1/${file}`], { timeoutMs: 20000 })).stdout;
    assert.match(await tftp(`nodes/${macPath}/ipxe`), /kernel http:\/\/10\.77\.0\.1:8091\/boot\/discovery\/vmlinuz/, 'an unknown MAC gets discovery');
    assert.equal((await api('POST', '/api/v1/nodes', { name: 'res.lab.test', macs: [resLink.a.mac], bootenv: 'local' })).status, 201);
    assert.match(await tftp(`nodes/${macPath}/ipxe`), /sanboot/, 'the script follows the bootenv');
    const blob = Buffer.alloc(300000).map((_, i) => (i * 7) % 256);
    fs.writeFileSync(path.join(server.dataDir, 'boot', 'blob.bin'), blob);
    for (const bs of [512, 1468, 8192]) {
      const got = await resNs.exec('sh', ['-c', `curl -sS --tftp-blksize ${bs} tftp://10.77.0.1/blob.bin | sha256sum`], { timeoutMs: 20000 });
      assert.equal(got.stdout.split(' ')[0], crypto.createHash('sha256').update(blob).digest('hex'), `TFTP blksize ${bs}`);
    }
    const range = await resNs.exec('sh', ['-c', 'curl -sS -r 1000-1999 http://10.77.0.1:8091/boot/blob.bin | sha256sum'], { timeoutMs: 20000 });
    assert.equal(range.stdout.split(' ')[0], crypto.createHash('sha256').update(blob.subarray(1000, 2000)).digest('hex'), 'HTTP Range from the boot address');
    const hostile = await resNs.exec('curl', ['-sS', 'tftp://10.77.0.1/../../etc/passwd'], { check: false, timeoutMs: 20000 });
    assert.notEqual(hostile.code, 0);
    assert.doesNotMatch(hostile.stdout, /root:/);

    // Garbage thrown at the DHCP port is counted and dropped; the server keeps answering.
    await resNs.exec('bash', ['-c', 'for i in $(seq 50); do head -c $((RANDOM % 600)) /dev/urandom > /dev/udp/10.77.0.1/67; done'], { timeoutMs: 20000 });
    const metrics = async () => String((await api('GET', '/metrics')).body);
    await waitFor('malformed packets counted', async () => /fulcrum_dhcp_dropped_total\{reason="malformed"\} ([1-9]\d*)/.test(await metrics()), 5000);
    const m = await metrics();
    assert.match(m, /fulcrum_dhcp_messages_total\{direction="in",type="DISCOVER"\} [1-9]/);
    assert.match(m, /fulcrum_tftp_transfers_total\{outcome="completed"\} [1-9]/);
    assert.match(m, /fulcrum_boot_files_total\{protocol="http",result="partial"\} 1/);

    // Relayed from the far segment by isc-dhcp-relay: an address from the far subnet.
    await relayNs.spawn('dhcrelay', ['-d', '-4', '-id', 'down0', '-iu', 'up0', '10.77.0.1'], { label: 'dhcrelay' });
    const farNs = await lab.namespace('farclient');
    const farLink = await lab.link(farNs, far, { ifaceA: 'eth0' });
    const farSession = await dhclient(farNs, 'eth0', { timeoutMs: 30000 });
    assert.match(farSession.lease.address, /^10\.78\.0\.(5\d|60)$/);
    assert.equal(farSession.lease.router, '10.78.0.1');
    assert.equal((await leaseOf(api, farLink.a.mac)).subnet, 'far');

    // Durable: kill -9 the server; after a restart every ACKed lease is still there.
    const before = ((await api('GET', '/api/v1/leases?state=bound')).body as any[]).map((l) => l.address).sort();
    assert.ok(before.includes('10.77.0.42') && before.includes(farSession.lease.address));
    server.proc.signal('SIGKILL');
    await server.proc.waitForExit(5000);
    server = await startServerIn(lab, srv, '10.77.0.1', [], server.dataDir);
    api = server.api;
    const after = ((await api('GET', '/api/v1/leases?state=bound')).body as any[]).map((l) => l.address).sort();
    assert.deepEqual(after, before, 'no ACKed lease lost to kill -9');
    await server.stop();
  });
});

test('proxyDHCP beside dnsmasq: the address from dnsmasq, the boot file from Fulcrum', async () => {
  await withLab(async (lab) => {
    const site = await lab.namespace('site');
    const seg = await lab.bridge('seg');
    await lab.link(site, seg, { ifaceA: 'eth0', addressA: '10.79.0.1/24' });
    // Without a default route (none, by design) dnsmasq's broadcast replies need this one.
    await site.ip('route', 'add', '255.255.255.255/32', 'dev', 'eth0');
    // (dnsmasq pings an address for 3 s before offering it: the probe listens for 5.)
    const leases = path.join(lab.makeDir('dnsmasq'), 'leases');
    const dns = site.spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--interface=eth0', '--bind-interfaces', '--port=0',
      '--dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,2m', `--dhcp-leasefile=${leases}`, '--log-dhcp'], { label: 'dnsmasq' });
    const fns = await lab.namespace('fulcrum');
    await lab.link(fns, seg, { ifaceA: 'eth0', addressA: '10.79.0.2/24' });
    const server = await startServerIn(lab, fns, '10.79.0.2');
    assert.equal((await server.api('POST', '/api/v1/subnets', { name: 'site', cidr: '10.79.0.0/24', proxy: true, probe: false })).status, 201);
    const pxe = await lab.namespace('pxe');
    const link = await lab.link(pxe, seg, { ifaceA: 'eth0' });
    const out = await pxe.exec(process.execPath, [path.join(projectRoot, 'dist', 'test', 'support', 'dhcp-probe.js'), link.a.mac, 'eth0', '5', 'proxy'], { timeoutMs: 20000, env: process.env });
    const lines = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const fromDnsmasq = lines.find((l) => l.kind === 'offer' && l.server === '10.79.0.1');
    const fromFulcrum = lines.find((l) => l.kind === 'offer' && l.server === '10.79.0.2');
    assert.ok(fromDnsmasq, `dnsmasq offered: ${out.stdout}\ndnsmasq said: ${dns.output().split("\n").filter((l) => !/sent size/.test(l)).join("\n")}`);
    assert.match(fromDnsmasq.yiaddr, /^10\.79\.0\.1\d\d$/);
    assert.ok(fromFulcrum, `Fulcrum answered the PXE client: ${out.stdout}`);
    assert.equal(fromFulcrum.yiaddr, '0.0.0.0', 'proxyDHCP never hands out an address');
    assert.equal(fromFulcrum.file, 'ipxe/undionly.kpxe');
    assert.equal(fromFulcrum.vendorClass, 'PXEClient');
    const ack = lines.find((l) => l.kind === 'proxy-ack');
    assert.ok(ack, `the 4011 boot request was answered: ${out.stdout}`);
    assert.equal(ack.file, 'ipxe/undionly.kpxe');
    assert.equal(ack.yiaddr, '0.0.0.0');
    // Fulcrum noticed the site's DHCP server on the segment.
    await waitFor('other-server warning', async () => ((await server.api('GET', '/api/v1/events?type=dhcp.other-server')).body as any[]).some((e) => e.payload.server === '10.79.0.1'), 10000);
    await server.stop();
  });
});
