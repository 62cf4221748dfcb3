// The DNS server inside `fulcrum server`, queried with the real dig and kdig: records from name
// filters over DHCP reservations and IPAM allocations, pools that follow role bindings, static
// records, negative answers, truncation and TCP fallback, REFUSED, forwarding, fuzzed packets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import fsSync from 'node:fs';
import { startServer, type RunningServer } from '../src/server/server.js';
import { freshDatabaseUrl, stopOwnCluster } from './support/db.js';
import { ADMIN_PASSWORD, httpJson, waitFor, within } from './support/server.js';
import { DnsServer } from '../src/dns/server.js';
import { AnswerTable } from '../src/dns/answers.js';
import { decode, encode, TYPE } from '../src/dns/codec.js';
import net from 'node:net';

const onPath = (p: string) => (process.env.PATH ?? '').split(':').some((d) => fsSync.existsSync(path.join(d, p)));
const missing = ['dig', 'kdig'].filter((p) => !onPath(p));

interface DigResult { status: string; flags: string[]; answer: string[]; authority: string[]; additional: string[]; raw: string }

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 15000 }, (err, stdout, stderr) => (err && !stdout ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout))));
}

function parse(raw: string): DigResult {
  const section = (name: string) => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(\\n\\n|$)`).exec(raw);
    return m ? m[1].split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.replace(/\s+/g, ' ').trim()) : [];
  };
  return {
    status: /status: (\w+)/.exec(raw)?.[1] ?? 'none',
    flags: (/flags: ([a-z ]+);/.exec(raw)?.[1] ?? '').trim().split(' '),
    answer: section('ANSWER'), authority: section('AUTHORITY'), additional: section('ADDITIONAL'), raw,
  };
}

let server: RunningServer;
let token = '';
let port = 0;
let dataDir = '';
const api = (method: string, p: string, body?: unknown) => httpJson(server.url, token, method, p, body);
const ok = async (method: string, p: string, body?: unknown) => {
  const r = await api(method, p, body);
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const dig = async (...args: string[]) => parse(await run('dig', [`@127.0.0.1`, '-p', String(port), '+time=3', '+tries=1', ...args]));
const data = (r: DigResult, type?: string) => r.answer.filter((l) => !type || l.split(' ')[3] === type).map((l) => l.split(' ').slice(4).join(' ')).sort();
const serial = async () => Number((await dig('SOA', 'cluster.test')).answer[0].split(' ')[6]);

before(async () => {
  if (missing.length) return;
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-dns-'));
  process.env.FULCRUM_ADMIN_PASSWORD = ADMIN_PASSWORD;
  server = await startServer({ dataDir, listen: '127.0.0.1:0', databaseUrl: await freshDatabaseUrl(), dns: { listen: '127.0.0.1:0' } });
  port = server.dns.server!.port;
  token = (await httpJson(server.url, '', 'POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD })).body.token;

  await ok('POST', '/api/v1/dns-zones', { name: 'cluster.test', ns_addresses: ['10.77.0.1'], minimum: 30 });
  await ok('POST', '/api/v1/dns-zones', { cidr: '10.77.0.0/16' });
  await ok('POST', '/api/v1/dns-zones', { cidr: 'fd00:77::/32' });
  await ok('POST', '/api/v1/subnets', { name: 'admin', cidr: '10.77.0.0/16' });
  await ok('POST', '/api/v1/roles', { name: 'etcd', jig: 'noop' });
  // Reservations by MAC, as an operator makes them by hand (node-linked ones belong to IPAM's DHCP sync).
  for (const i of [1, 2, 3]) {
    await ok('POST', '/api/v1/nodes', { name: `n${i}.cluster.test`, macs: [`52:54:00:00:77:0${i}`] });
    await ok('POST', '/api/v1/reservations', { mac: `52:54:00:00:77:0${i}`, subnet: 'admin', address: `10.77.0.1${i}` });
  }
  // An IPv6 address as IPAM allocates it (networks module, migration 004).
  const net = await server.store.query(`INSERT INTO networks (name, category, conduit) VALUES ('storage', 'storage', '1g1') RETURNING id`);
  await server.store.query(`INSERT INTO network_allocations (node_id, network_id, address) SELECT id, $1, 'fd00:77::11/64' FROM nodes WHERE name = 'n1.cluster.test'`, [net.rows[0].id]);
  await ok('POST', '/api/v1/dns-name-filters', { name: 'hosts', zone: 'cluster.test', template: '{{ node.short }}' });
  await ok('POST', '/api/v1/dns-name-filters', { name: 'etcd-pool', zone: 'cluster.test', match: { role: 'etcd' }, template: 'etcd', ptr: false, ttl: 10 });
  await ok('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: '_etcd-server._tcp', type: 'SRV', data: '0 10 2380 etcd.cluster.test.' });
  await ok('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: 'api', type: 'CNAME', data: 'etcd' });
  await ok('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: '@', type: 'TXT', data: '"fulcrum test zone"' });
  for (let i = 0; i < 30; i++) await ok('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: 'big', type: 'TXT', data: `"${String(i).padStart(2, '0')} ${'x'.repeat(90)}"` });
  await waitFor('the records to be served', async () => (await dig('TXT', 'big.cluster.test', '+tcp')).answer.length === 30, 10000);
});

after(async () => {
  await server?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  await stopOwnCluster();
});

const skip = missing.length ? `needs ${missing.join(', ')} (scripts/install-system-packages.sh dns)` : false;

test('A, AAAA and PTR (IPv4 and IPv6) from a name filter, authoritative', { skip }, async () => {
  const a = await dig('A', 'n1.cluster.test');
  assert.equal(a.status, 'NOERROR');
  assert.ok(a.flags.includes('aa'), a.raw);
  assert.deepEqual(data(a), ['10.77.0.11']);
  assert.deepEqual(data(await dig('AAAA', 'N1.Cluster.TEST')), ['fd00:77::11']);
  assert.deepEqual(data(await dig('-x', '10.77.0.12')), ['n2.cluster.test.']);
  assert.deepEqual(data(await dig('-x', 'fd00:77::11')), ['n1.cluster.test.']);
  // kdig too, over TCP.
  const k = await run('kdig', ['@127.0.0.1', '-p', String(port), '+tcp', '+retry=0', 'A', 'n3.cluster.test']);
  assert.match(k, /n3\.cluster\.test\.\s+\d+\s+IN\s+A\s+10\.77\.0\.13/);
});

test('SRV with the pool addresses in the additional section; CNAME followed in the answer', { skip }, async () => {
  await ok('POST', '/api/v1/noderoles', { role: 'etcd', node: 'n1.cluster.test' });
  await waitFor('etcd pool', async () => data(await dig('A', 'etcd.cluster.test')).length === 1, 10000);
  const srv = await dig('SRV', '_etcd-server._tcp.cluster.test');
  assert.deepEqual(data(srv), ['0 10 2380 etcd.cluster.test.']);
  assert.ok(srv.additional.some((l) => l.endsWith('A 10.77.0.11')), srv.raw);
  const c = await dig('A', 'api.cluster.test');
  assert.deepEqual(data(c, 'CNAME'), ['etcd.cluster.test.']);
  assert.deepEqual(data(c, 'A'), ['10.77.0.11']);
});

test('a round-robin pool grows and shrinks with role bindings, and the serial follows', { skip }, async () => {
  const s0 = await serial();
  await ok('POST', '/api/v1/noderoles', { role: 'etcd', node: 'n2.cluster.test' });
  await ok('POST', '/api/v1/noderoles', { role: 'etcd', node: 'n3.cluster.test' });
  await waitFor('a pool of three', async () => data(await dig('A', 'etcd.cluster.test')).length === 3, 10000);
  assert.deepEqual(data(await dig('A', 'etcd.cluster.test')), ['10.77.0.11', '10.77.0.12', '10.77.0.13']);
  const s1 = await serial();
  assert.ok(s1 > s0, `serial ${s0} -> ${s1}`);
  const nr = (await ok('GET', '/api/v1/noderoles?role=etcd&node=n1.cluster.test'))[0];
  await waitFor('unbinding etcd from n1', async () => (await api('DELETE', `/api/v1/noderoles/${nr.id}`)).status === 204, 15000, 200);
  await waitFor('a pool of two', async () => data(await dig('A', 'etcd.cluster.test')).length === 2, 10000);
  assert.deepEqual(data(await dig('A', 'etcd.cluster.test')), ['10.77.0.12', '10.77.0.13']);
  assert.ok((await serial()) > s1);
});

test('NXDOMAIN vs NODATA, both with the SOA in authority', { skip }, async () => {
  const nx = await dig('A', 'nope.cluster.test');
  assert.equal(nx.status, 'NXDOMAIN');
  assert.ok(nx.flags.includes('aa'));
  assert.equal(nx.authority.length, 1);
  assert.match(nx.authority[0], /^cluster\.test\. 30 IN SOA ns\.cluster\.test\. hostmaster\.cluster\.test\. \d+ /);
  const nodata = await dig('MX', 'n1.cluster.test');
  assert.equal(nodata.status, 'NOERROR');
  assert.equal(nodata.answer.length, 0);
  assert.match(nodata.authority[0], /IN SOA/);
  // An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
  const ent = await dig('A', '_tcp.cluster.test');
  assert.equal(ent.status, 'NOERROR');
  assert.equal(ent.answer.length, 0);
  // The apex: NS, and its address from ns_addresses.
  assert.deepEqual(data(await dig('NS', 'cluster.test')), ['ns.cluster.test.']);
  assert.deepEqual(data(await dig('A', 'ns.cluster.test')), ['10.77.0.1']);
});

test('a large answer is truncated over UDP and dig falls back to TCP', { skip }, async () => {
  const udp = await dig('TXT', 'big.cluster.test', '+ignore');
  assert.ok(udp.flags.includes('tc'), udp.raw);
  assert.equal(udp.answer.length, 0);
  const noedns = await dig('TXT', 'big.cluster.test', '+ignore', '+noedns');
  assert.ok(noedns.flags.includes('tc'));
  const fallback = await dig('TXT', 'big.cluster.test');
  assert.match(fallback.raw, /Truncated, retrying in TCP mode/);
  assert.equal(fallback.answer.length, 30);
  // A small answer fits in 512 bytes without EDNS and is not truncated.
  assert.ok(!(await dig('A', 'n1.cluster.test', '+noedns')).flags.includes('tc'));
});

test('names outside the served zones are REFUSED (no recursion without a forwarder)', { skip }, async () => {
  const r = await dig('A', 'example.com');
  assert.equal(r.status, 'REFUSED');
  assert.ok(!r.flags.includes('ra'));
  assert.equal((await dig('A', 'example.com', '+norec')).status, 'REFUSED');
  // Zone transfers are not served (push by RFC 2136 instead): dig reports the REFUSED transfer.
  assert.match((await dig('AXFR', 'cluster.test')).raw, /Transfer failed/);
});

test('deleting a node leaves no stale record behind', { skip }, async () => {
  const s0 = await serial();
  assert.deepEqual(data(await dig('A', 'n3.cluster.test')), ['10.77.0.13']);
  const r = await api('DELETE', '/api/v1/nodes/n3.cluster.test');
  assert.ok(r.status === 204 || r.status === 200 || r.status === 202, `${r.status} ${JSON.stringify(r.body)}`);
  await waitFor('n3 gone from DNS', async () => (await dig('A', 'n3.cluster.test')).status === 'NXDOMAIN', 30000, 200);
  assert.equal((await dig('-x', '10.77.0.13')).status, 'NXDOMAIN');
  assert.ok(!data(await dig('A', 'etcd.cluster.test')).includes('10.77.0.13'));
  const all = await ok('GET', '/api/v1/dns/records');
  assert.ok(!JSON.stringify(all).includes('10.77.0.13') && !JSON.stringify(all).includes('n3.'), JSON.stringify(all));
  assert.ok((await serial()) > s0);
});

test('bad input to the API names the field and stores nothing', { skip }, async () => {
  const bad = await api('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: 'x', type: 'SRV', data: '1 2 99999 t.' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'data');
  assert.match(bad.body.message, /SRV port/);
  const outside = await api('POST', '/api/v1/dns-records', { zone: 'cluster.test', name: 'x.other.test.', type: 'A', data: '10.0.0.1' });
  assert.equal(outside.status, 400);
  assert.match(outside.body.message, /not inside zone cluster\.test/);
  const tpl = await api('POST', '/api/v1/dns-name-filters', { name: 'broken', zone: 'cluster.test', template: '{{ node.name ' });
  assert.equal(tpl.status, 400);
  assert.equal(tpl.body.field, 'template');
  const match = await api('POST', '/api/v1/dns-name-filters', { name: 'broken', zone: 'cluster.test', template: 'x', match: { colour: 'red' } });
  assert.equal(match.status, 400);
  assert.match(match.body.message, /match\.colour: unknown key/);
  const rev = await api('POST', '/api/v1/dns-zones', { cidr: '10.0.0.0/20' });
  assert.equal(rev.status, 400);
  assert.match(rev.body.message, /\/8, \/16 or \/24/);
  assert.equal((await ok('GET', '/api/v1/dns-records?name=x.cluster.test')).length, 0);
});

test('fuzzed packets against the live server: dropped, counted by reason, and the server still answers', { skip }, async () => {
  const s = dgram.createSocket('udp4');
  const good = encode({ id: 1, flags: 0x0100, questions: [{ name: 'n1.cluster.test', type: TYPE.A, class: 1 }], answers: [], authorities: [], additionals: [] });
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let i = 0; i < 3000; i++) {
    let b: Buffer;
    if (i % 2) { b = Buffer.alloc(rnd() % 300); for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff; } else {
      b = Buffer.from(good);
      for (let k = 0; k < 1 + (rnd() % 4); k++) b[rnd() % b.length] = rnd() & 0xff;
      b = b.subarray(0, rnd() % (b.length + 1));
    }
    s.send(b, port, '127.0.0.1');
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  s.close();
  assert.deepEqual(data(await dig('A', 'n1.cluster.test')), ['10.77.0.11']);
  const metrics = (await httpJson(server.url, '', 'GET', '/metrics')).body as string;
  const dropped = [...metrics.matchAll(/^fulcrum_dns_dropped_total\{reason="([^"]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])] as const);
  assert.ok(dropped.length >= 3, metrics.split('\n').filter((l) => l.includes('dns')).join('\n'));
  assert.ok(dropped.reduce((n, [, c]) => n + c, 0) > 1000);
  assert.match(metrics, /fulcrum_dns_replies_total\{transport="udp",rcode="NOERROR"\} \d+/);
});

test('with a forwarder, other names are relayed to it (and its answer returned)', { skip }, async () => {
  const upstream = new DnsServer({ host: '127.0.0.1', port: 0 });
  await upstream.start();
  upstream.table = new AnswerTable([{ name: 'example.org', ttl: 60, soa: { mname: 'ns.example.org', rname: 'h.example.org', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } }],
    [{ name: 'www.example.org', type: TYPE.A, ttl: 60, data: '192.0.2.80' }]);
  const fwd = new DnsServer({ host: '127.0.0.1', port: 0, forwarder: { host: '127.0.0.1', port: upstream.port }, forwardTimeoutMs: 500 });
  await fwd.start();
  fwd.table = server.dns.server!.table;
  try {
    const q = async (...a: string[]) => parse(await run('dig', ['@127.0.0.1', '-p', String(fwd.port), '+time=3', '+tries=1', ...a]));
    const r = await q('A', 'www.example.org');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(data(r), ['192.0.2.80']);
    assert.deepEqual(data(await q('A', 'n1.cluster.test')), ['10.77.0.11']);
    await upstream.stop();
    assert.equal((await q('A', 'www.example.org')).status, 'SERVFAIL');
    assert.equal(fwd.counters.forwarded.timeout, 1);
  } finally {
    await fwd.stop();
  }
});

test('the CLI lists zones and the computed records', { skip }, async () => {
  const cli = (...args: string[]) => run(process.execPath, [path.join(process.cwd(), 'bin', 'fulcrum.js'), '--endpoint', server.url, '--token', token, ...args]);
  assert.match(await cli('dns-zones', 'list'), /cluster\.test\s+forward/);
  const records = await cli('dns', 'records', '--zone', 'cluster.test');
  assert.match(records, /^; zone cluster\.test serial \d+$/m);
  assert.match(records, /^n1\.cluster\.test\. 300 IN A 10\.77\.0\.11$/m);
  assert.match(records, /^_etcd-server\._tcp\.cluster\.test\. 300 IN SRV 0 10 2380 etcd\.cluster\.test\.$/m);
});

test('TCP: several queries on one connection (pipelined), idle connections closed', { skip }, async () => {
  const s = new DnsServer({ host: '127.0.0.1', port: 0, tcpIdleMs: 300 });
  await s.start();
  s.table = server.dns.server!.table;
  try {
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise<void>((r, j) => { sock.once('connect', () => r()); sock.once('error', j); });
    const frames = ['n1.cluster.test', 'n2.cluster.test', 'nope.cluster.test'].map((name, i) => {
      const m = encode({ id: 100 + i, flags: 0x0100, questions: [{ name, type: TYPE.A, class: 1 }], answers: [], authorities: [], additionals: [] });
      const h = Buffer.alloc(2); h.writeUInt16BE(m.length);
      return Buffer.concat([h, m]);
    });
    const closed = new Promise<number>((r) => { const t0 = Date.now(); sock.once('close', () => r(Date.now() - t0)); });
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.write(Buffer.concat(frames)); // all three in one segment
    const replies = await waitFor('three replies', async () => {
      const out = [];
      for (let at = 0; at + 2 <= buf.length && at + 2 + buf.readUInt16BE(at) <= buf.length; at += 2 + buf.readUInt16BE(at)) out.push(decode(buf.subarray(at + 2, at + 2 + buf.readUInt16BE(at))));
      return out.length === 3 ? out : undefined;
    }, 5000, 20);
    assert.deepEqual(replies.map((m) => [m.id, m.flags & 0xf, m.answers.map((a) => a.data)]), [[100, 0, ['10.77.0.11']], [101, 0, ['10.77.0.12']], [102, 3, []]]);
    const idle = await within(closed, 5000, -1);
    assert.ok(idle > 0 && idle < 3000, `closed after ${idle} ms idle`);
  } finally {
    await s.stop();
  }
});
