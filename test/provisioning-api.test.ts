// The provisioning plane's objects and HTTP boot serving through a real server and PostgreSQL:
// subnets, reservations and bootenvs validation, node MACs, rendered boot files that follow the
// node's bootenv, Range requests, hostile paths, and the metrics endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startTestServer, type TestServer } from './support/server.js';
import { stopOwnCluster } from './support/db.js';
import { readPack } from '../src/content/pack.js';
import { projectRoot } from '../src/paths.js';

let t: TestServer;
const api = (m: string, p: string, b?: unknown, h?: Record<string, string>) => t.api(m, p, b, h);

before(async () => {
  t = await startTestServer();
  await fs.mkdir(path.join(t.dataDir, 'boot', 'discovery'), { recursive: true });
  await fs.writeFile(path.join(t.dataDir, 'boot', 'discovery', 'vmlinuz'), Buffer.from(Array.from({ length: 100000 }, (_, i) => i % 251)));
});
after(async () => { await t?.close(); await stopOwnCluster(); });

test('subnets and reservations are validated, naming the field', async () => {
  const bad = await api('POST', '/api/v1/subnets', { name: 'lab', cidr: '10.9.0.0/24', pools: [{ first: '10.9.1.10', last: '10.9.1.20' }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'pools[0]');
  assert.match(bad.body.message, /not inside subnet 10\.9\.0\.0\/24/);
  const badIp = await api('POST', '/api/v1/subnets', { name: 'lab', cidr: '10.9.0.0/24', routers: ['10.9.0.300'] });
  assert.equal(badIp.status, 400);
  assert.match(badIp.body.field, /routers/);
  const ok = await api('POST', '/api/v1/subnets', { name: 'lab', cidr: '10.9.0.0/24', server_address: '10.9.0.1', pools: [{ first: '10.9.0.10', last: '10.9.0.20' }], routers: ['10.9.0.1'], options: { 'domain-name': 'lab.test' } });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.routers, ['10.9.0.1']);
  const outside = await api('POST', '/api/v1/reservations', { mac: '52:54:00:00:00:01', subnet: 'lab', address: '10.8.0.5' });
  assert.equal(outside.status, 400);
  assert.equal(outside.body.field, 'address');
  assert.equal((await api('POST', '/api/v1/reservations', { mac: '52:54:00:00:00:01', subnet: 'nope', address: '10.9.0.5' })).status, 404);
  const r = await api('POST', '/api/v1/reservations', { mac: '52-54-00-00-00-01', subnet: 'lab', address: '10.9.0.5', hostname: 'r1' });
  assert.equal(r.status, 201);
  assert.equal(r.body.mac, '52:54:00:00:00:01');
  const dup = await api('POST', '/api/v1/reservations', { mac: '52:54:00:00:00:02', subnet: 'lab', address: '10.9.0.5' });
  assert.equal(dup.status, 409);
  assert.match(dup.body.message, /already reserved for 52:54:00:00:00:01/);
});

test('node MACs identify one node only', async () => {
  const a = await api('POST', '/api/v1/nodes', { name: 'pxe-a.test', macs: ['52:54:00:10:00:01'] });
  assert.equal(a.status, 201);
  assert.deepEqual(a.body.macs, ['52:54:00:10:00:01']);
  const b = await api('POST', '/api/v1/nodes', { name: 'pxe-b.test', macs: ['52:54:00:10:00:01'] });
  assert.equal(b.status, 409);
  assert.match(b.body.message, /already identifies node pxe-a\.test/);
  assert.equal((await api('GET', '/api/v1/nodes/pxe-b.test')).status, 404, 'nothing half-created');
  const badEnv = await api('PATCH', '/api/v1/nodes/pxe-a.test', { bootenv: 'no-such-env' });
  assert.equal(badEnv.status, 404);
  assert.equal(badEnv.body.field, 'bootenv');
});

test('the rendered iPXE script follows the node bootenv at once, and a bootenv change is an event', async () => {
  const n = await api('POST', '/api/v1/nodes', { name: 'pxe-c.test', macs: ['52:54:00:10:00:03'], bootenv: 'discovery' });
  assert.equal(n.status, 201);
  const script = async () => (await fetch(`${t.url}/boot/nodes/52-54-00-10-00-03/ipxe`)).text();
  assert.match(await script(), /kernel .*discovery\/vmlinuz/);
  const env = await api('POST', '/api/v1/bootenvs', {
    name: 'debian-install', kernel: 'debian/linux', initrds: ['debian/initrd.gz'], boot_params: 'auto=true url={{ server.http }}/nodes/{{ mac | replace: ":", "-" }}/preseed',
    templates: [{ path: 'preseed', contents: 'd-i netcfg/get_hostname string {{ node.name }}\n' }],
  });
  assert.equal(env.status, 201, JSON.stringify(env.body));
  assert.equal((await api('PATCH', '/api/v1/nodes/pxe-c.test', { bootenv: 'debian-install' })).status, 200);
  const after = await script();
  assert.match(after, /kernel .*debian\/linux initrd=initrd\.gz auto=true url=.*\/nodes\/52-54-00-10-00-03\/preseed/);
  assert.equal(await (await fetch(`${t.url}/boot/nodes/52-54-00-10-00-03/preseed`)).text(), 'd-i netcfg/get_hostname string pxe-c.test\n');
  const events = (await api('GET', '/api/v1/events?type=node.bootenv')).body;
  assert.ok(events.some((e: any) => e.payload.name === 'pxe-c.test' && e.payload.to === 'debian-install' && e.payload.served === true));
  assert.equal((await api('PATCH', '/api/v1/nodes/pxe-c.test', { bootenv: 'local' })).status, 200);
  assert.match(await script(), /sanboot/);
});

test('HTTP boot: Range requests, HEAD, and hostile paths', async () => {
  const whole = await fetch(`${t.url}/boot/discovery/vmlinuz`);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get('accept-ranges'), 'bytes');
  const body = Buffer.from(await whole.arrayBuffer());
  assert.equal(body.length, 100000);
  const part = await fetch(`${t.url}/boot/discovery/vmlinuz`, { headers: { range: 'bytes=1000-1999' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), 'bytes 1000-1999/100000');
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), body.subarray(1000, 2000));
  const tail = await fetch(`${t.url}/boot/discovery/vmlinuz`, { headers: { range: 'bytes=-10' } });
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), body.subarray(99990));
  assert.equal((await fetch(`${t.url}/boot/discovery/vmlinuz`, { headers: { range: 'bytes=200000-' } })).status, 416);
  const head = await fetch(`${t.url}/boot/discovery/vmlinuz`, { method: 'HEAD' });
  assert.equal(head.headers.get('content-length'), '100000');
  for (const p of ['/boot/..%2f..%2fetc%2fpasswd', '/boot/discovery/..%2f..%2f..%2fpostgres.json', '/boot/%00']) {
    const r = await fetch(`${t.url}${p}`);
    assert.ok(r.status === 400 || r.status === 404, `${p} -> ${r.status}`);
    assert.doesNotMatch(await r.text(), /root:|password/);
  }
});

test('bootenvs from a content pack: imported, templates from files, required params checked', async () => {
  const pack = await readPack(path.join(projectRoot, 'content', 'test'));
  const imp = await api('POST', '/api/v1/content-packs', pack);
  assert.equal(imp.status, 201, JSON.stringify(imp.body));
  assert.equal(imp.body.bootenvs, 1);
  const env = (await api('GET', '/api/v1/bootenvs/test-install')).body;
  assert.equal(env.content_pack, 'test');
  assert.equal(env.kexec, true, 'the kexec flag comes through the import');
  assert.match(env.templates[0].contents, /partman-auto\/disk/, 'the file: reference was read into the bundle');
  assert.equal((await api('POST', '/api/v1/nodes', { name: 'inst-a.test', macs: ['52:54:00:20:00:01'], bootenv: 'test-install' })).status, 201);
  const missing = await (await fetch(`${t.url}/boot/nodes/52-54-00-20-00-01/ipxe`)).text();
  assert.match(missing, /missing parameter\(s\) test-disk/);
  assert.equal((await api('PATCH', '/api/v1/nodes/inst-a.test', { hints: { 'test-disk': '/dev/vda' } })).status, 200);
  assert.match(await (await fetch(`${t.url}/boot/nodes/52-54-00-20-00-01/ipxe`)).text(), /kernel .*test\/vmlinuz initrd=initrd\.img console=ttyS0 auto=true url=.*\/nodes\/52-54-00-20-00-01\/preseed/);
  const preseed = await (await fetch(`${t.url}/boot/nodes/52-54-00-20-00-01/preseed`)).text();
  assert.match(preseed, /get_hostname string inst-a\n/);
  assert.match(preseed, /partman-auto\/disk string \/dev\/vda/);
  // A broken template in a pack is refused, naming the key; nothing is stored.
  const bad = await api('POST', '/api/v1/content-packs', { name: 'badenv', version: '1', bootenvs: [{ name: 'broken-env', templates: [{ path: 'ipxe', contents: '{% if %}' }] }] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /bootenvs\[0\]\.templates\[0\]\.contents: not a valid template/);
  assert.equal((await api('GET', '/api/v1/bootenvs/broken-env')).status, 404);
});

test('metrics are exposed for Prometheus', async () => {
  const m = await (await fetch(`${t.url}/metrics`)).text();
  assert.match(m, /# TYPE fulcrum_dhcp_messages_total counter/);
  assert.match(m, /# TYPE fulcrum_dhcp_reply_seconds histogram/);
});
