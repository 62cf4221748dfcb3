// RFC 2136 push into a real Knot DNS (knotd, started by the test on a loopback port): Fulcrum's
// records appear there, follow node and role changes, replace stale records on the first push, and
// a wrong TSIG key is refused and reported (the secret is never shown by the API).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, type RunningServer } from '../src/server/server.js';
import { freshDatabaseUrl, stopOwnCluster } from './support/db.js';
import { ADMIN_PASSWORD, httpJson, waitFor } from './support/server.js';
import { exchangeTcp, updateMessage, verifyTsig } from '../src/dns/push.js';
import { TYPE } from '../src/dns/codec.js';
import { freeUdpPort } from './support/ports.js';

const onPath = (p: string) => ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(':')].some((d) => fsSync.existsSync(path.join(d, p)));
const missing = ['knotd', 'kdig'].filter((p) => !onPath(p));
const skip = missing.length ? `needs ${missing.join(', ')} (scripts/install-system-packages.sh dns)` : false;

const SECRET = Buffer.from('fulcrum-test-tsig-secret-0123456789').toString('base64');
let dir = '';
let knot: ChildProcess | undefined;
let knotLog = '';
let knotPort = 0;
let server: RunningServer;
let token = '';
const api = (method: string, p: string, body?: unknown) => httpJson(server.url, token, method, p, body);
const ok = async (method: string, p: string, body?: unknown) => {
  const r = await api(method, p, body);
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

function kdig(...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => execFile('kdig', ['@127.0.0.1', '-p', String(knotPort), '+short', '+retry=0', '+timeout=2', ...args], { timeout: 10000 },
    (err, stdout) => (err ? reject(err) : resolve(stdout.split('\n').filter(Boolean).sort()))));
}

before(async () => {
  if (missing.length) return;
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-knot-'));
  knotPort = await freeUdpPort();
  await fs.writeFile(path.join(dir, 'knot.conf'), `server:
    listen: 127.0.0.1@${knotPort}
    rundir: ${dir}
log:
  - target: stderr
    any: info
database:
    storage: ${dir}/db
key:
  - id: fulcrum-key.
    algorithm: hmac-sha256
    secret: ${SECRET}
acl:
  - id: update
    address: 127.0.0.1
    key: fulcrum-key.
    action: update
template:
  - id: default
    storage: ${dir}
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: push.test
    file: push.test.zone
    acl: update
`);
  // The zone as an operator had it: a stale address for n1 that Fulcrum's first push must replace.
  await fs.writeFile(path.join(dir, 'push.test.zone'), `$ORIGIN push.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 604800 60\n@ NS ns\nns A 127.0.0.1\nn1 A 10.0.0.99\nmail A 10.0.0.25\n`);
  knot = spawn('knotd', ['-c', path.join(dir, 'knot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  knot.stdout!.on('data', (d) => { knotLog += d; });
  knot.stderr!.on('data', (d) => { knotLog += d; });
  await waitFor('knotd to serve push.test', async () => {
    if (knot!.exitCode !== null) throw new Error(`knotd exited: ${knotLog}`);
    return (await kdig('A', 'n1.push.test').catch((): string[] => [])).includes('10.0.0.99');
  }, 10000, 100);

  process.env.FULCRUM_ADMIN_PASSWORD = ADMIN_PASSWORD;
  server = await startServer({ dataDir: path.join(dir, 'fulcrum'), listen: '127.0.0.1:0', databaseUrl: await freshDatabaseUrl() });
  token = (await httpJson(server.url, '', 'POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD })).body.token;
  await ok('POST', '/api/v1/dns-zones', { name: 'push.test' });
  await ok('POST', '/api/v1/subnets', { name: 'admin', cidr: '10.78.0.0/16' });
  await ok('POST', '/api/v1/roles', { name: 'web', jig: 'noop' });
  for (const i of [1, 2]) {
    await ok('POST', '/api/v1/nodes', { name: `n${i}.push.test`, macs: [`52:54:00:00:78:0${i}`] });
    await ok('POST', '/api/v1/reservations', { mac: `52:54:00:00:78:0${i}`, subnet: 'admin', address: `10.78.0.1${i}` });
  }
  await ok('POST', '/api/v1/dns-name-filters', { name: 'hosts', zone: 'push.test', template: '{{ node.short }}', ptr: false });
  await ok('POST', '/api/v1/dns-name-filters', { name: 'web-pool', zone: 'push.test', match: { role: 'web' }, template: 'www', ptr: false });
  await ok('POST', '/api/v1/dns-records', { zone: 'push.test', name: '_http._tcp', type: 'SRV', data: '0 0 80 www' });
});

after(async () => {
  await server?.close();
  if (knot && knot.exitCode === null) { knot.kill('SIGTERM'); await new Promise((r) => knot!.once('exit', r)); }
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  await stopOwnCluster();
});

test('records are pushed into Knot with TSIG, replacing stale ones, and follow changes', { skip }, async () => {
  const target = await ok('POST', '/api/v1/dns-push-targets', { name: 'knot', zone: 'push.test', server: `127.0.0.1:${knotPort}`, tsig: { name: 'fulcrum-key', secret: SECRET } });
  assert.equal(target.tsig_secret_set, true);
  assert.ok(!JSON.stringify(target).includes(SECRET), 'the TSIG secret is never shown');
  await waitFor('n1 and n2 in Knot', async () => (await kdig('A', 'n2.push.test')).includes('10.78.0.12'), 15000, 200);
  assert.deepEqual(await kdig('A', 'n1.push.test'), ['10.78.0.11'], 'the stale 10.0.0.99 was replaced');
  assert.deepEqual(await kdig('SRV', '_http._tcp.push.test'), ['0 0 80 www.push.test.']);
  assert.deepEqual(await kdig('A', 'mail.push.test'), ['10.0.0.25'], 'records Fulcrum does not own stay');

  // A pool that follows role bindings.
  await ok('POST', '/api/v1/noderoles', { role: 'web', node: 'n1.push.test' });
  await ok('POST', '/api/v1/noderoles', { role: 'web', node: 'n2.push.test' });
  await waitFor('www pool of two in Knot', async () => (await kdig('A', 'www.push.test')).length === 2, 15000, 200);
  // Deleting a node removes its records there too.
  const del = await api('DELETE', '/api/v1/nodes/n2.push.test');
  assert.ok(del.status < 300, JSON.stringify(del.body));
  await waitFor('n2 gone from Knot', async () => (await kdig('A', 'n2.push.test')).length === 0, 15000, 200);
  assert.deepEqual(await kdig('A', 'www.push.test'), ['10.78.0.11']);
  const shown = (await ok('GET', '/api/v1/dns-push-targets/knot'));
  assert.equal(shown.last_error, null);
  assert.ok(shown.pushed_records >= 3);
  assert.ok(!JSON.stringify(shown).includes(SECRET));
});

test('a wrong TSIG key is refused by Knot and reported', { skip }, async () => {
  await ok('POST', '/api/v1/dns-push-targets', { name: 'knot-bad-key', zone: 'push.test', server: `127.0.0.1:${knotPort}`, tsig: { name: 'fulcrum-key', secret: Buffer.from('not the key').toString('base64') } });
  const r = await api('POST', '/api/v1/dns-push-targets/knot-bad-key/push');
  assert.equal(r.status, 502);
  assert.match(r.body.message, /NOTAUTH/);
  const shown = await ok('GET', '/api/v1/dns-push-targets/knot-bad-key');
  assert.match(shown.last_error, /NOTAUTH/);
  // Unsigned updates are refused too (the ACL needs the key).
  await ok('POST', '/api/v1/dns-push-targets', { name: 'knot-unsigned', zone: 'push.test', server: `127.0.0.1:${knotPort}` });
  const u = await api('POST', '/api/v1/dns-push-targets/knot-unsigned/push');
  assert.equal(u.status, 502);
  assert.match(u.body.message, /REFUSED|NOTAUTH/);
  assert.deepEqual(await kdig('A', 'n1.push.test'), ['10.78.0.11']);
});

test("Knot's signed replies verify; a changed reply or another key does not", { skip }, async () => {
  const key = { name: 'fulcrum-key', algorithm: 'hmac-sha256' as const, secret: SECRET };
  const req = updateMessage(4242, 'push.test', [], [{ name: 'probe.push.test', type: TYPE.TXT, ttl: 60, data: ['x'] }], key);
  const raw = await exchangeTcp('127.0.0.1', knotPort, req);
  assert.equal(raw[3] & 0xf, 0, 'the update was accepted');
  verifyTsig(raw, req, key);
  const forged = Buffer.from(raw);
  forged[3] |= 0x05; // NOERROR -> REFUSED, the signature left as it was
  assert.throws(() => verifyTsig(forged, req, key), /signature is wrong/);
  assert.throws(() => verifyTsig(raw, req, { ...key, secret: Buffer.from('another key').toString('base64') }), /signature is wrong/);
  assert.throws(() => verifyTsig(raw, Buffer.from(req), key), /request was not signed/);
});
