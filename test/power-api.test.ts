// Power through the API with a real server and PostgreSQL: settings validated (naming the field),
// the password sealed at rest and never returned, and actions driving a real QEMU process through
// the vm driver (QMP), each recorded as an event. The ipmi driver through the API is exercised by
// the flagship discovery test (test/discovery-vm.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from './support/server.js';
import { stopOwnCluster } from './support/db.js';
import { ensurePackages } from './support/packages.js';
import { SecretBox } from '../src/store/secrets.js';

let t: TestServer;
const api = (m: string, p: string, b?: unknown) => t.api(m, p, b);
const PASSWORD = 'Sealed-Bmc-Secret-99';

before(async () => {
  await ensurePackages('vm');
  t = await startTestServer();
});
after(async () => { await t?.close(); await stopOwnCluster(); });

test('power settings are validated, sealed at rest and never returned', async () => {
  assert.equal((await api('POST', '/api/v1/nodes', { name: 'p1.lab.test' })).status, 201);
  const missing = await api('PUT', '/api/v1/nodes/p1.lab.test/power', { driver: 'ipmi', address: '10.0.0.5', password: PASSWORD });
  assert.equal(missing.status, 400);
  assert.match(missing.body.message, /username is required/);
  assert.ok(!JSON.stringify(missing.body).includes(PASSWORD));
  const unknown = await api('PUT', '/api/v1/nodes/p1.lab.test/power', { driver: 'smoke-signals' });
  assert.equal(unknown.status, 400);
  assert.match(unknown.body.message, /driver must be one of ipmi, redfish, vm/);
  const extra = await api('PUT', '/api/v1/nodes/p1.lab.test/power', { driver: 'ipmi', address: '10.0.0.5', username: 'admin', password: PASSWORD, colour: 'red' });
  assert.equal(extra.status, 400);
  assert.match(extra.body.message, /colour is not a ipmi setting/);
  assert.equal((await api('PUT', '/api/v1/nodes/nope.lab.test/power', { driver: 'ipmi', address: '10.0.0.5', username: 'a', password: 'b' })).status, 404);
  assert.equal((await api('POST', '/api/v1/nodes/p1.lab.test/power/actions', { action: 'on' })).status, 409, 'no settings yet');
  assert.equal((await api('POST', '/api/v1/nodes/p1.lab.test/power/actions', { action: 'explode' })).status, 400);

  const ok = await api('PUT', '/api/v1/nodes/p1.lab.test/power', { driver: 'ipmi', address: '10.0.0.5', username: 'admin', password: PASSWORD, cipherSuite: 17 });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual({ ...ok.body, state_at: undefined }, { driver: 'ipmi', address: '10.0.0.5', username: 'admin', password: '***', cipherSuite: 17, state: null, state_at: undefined, version: 1 });
  const row = (await t.server.store.query(`SELECT p.settings, p.secrets FROM node_power p JOIN nodes n ON n.id = p.node_id WHERE n.name = 'p1.lab.test'`)).rows[0];
  assert.equal(row.settings.password, undefined, 'no password in the clear column');
  assert.ok(!Buffer.from(row.secrets).includes(Buffer.from(PASSWORD)), 'the sealed blob does not contain the password');
  const box = SecretBox.forDataDir(t.dataDir);
  const id = (await api('GET', '/api/v1/nodes/p1.lab.test')).body.id;
  assert.deepEqual(box.open(row.secrets, `node ${id} power`), { password: PASSWORD });
  assert.throws(() => box.open(row.secrets, `node ${id + 1} power`), /cannot be opened/, 'bound to its node');
  const events = (await api('GET', '/api/v1/events?type=node.power.configured')).body as any[];
  assert.equal(events.length, 1);
  assert.ok(!JSON.stringify(events).includes(PASSWORD));
});

test('the vm driver (a command the server runs) is refused unless the server is a lab', async () => {
  assert.equal((await api('POST', '/api/v1/nodes', { name: 'p3.lab.test' })).status, 201);
  delete process.env.FULCRUM_LAB_VM_POWER;
  const r = await api('PUT', '/api/v1/nodes/p3.lab.test/power', { driver: 'vm', address: '/tmp/x.sock', launch: ['sh', '-c', 'touch /tmp/fulcrum-should-not-exist'] });
  assert.equal(r.status, 400);
  assert.equal(r.body.field, 'driver');
  assert.match(r.body.message, /FULCRUM_LAB_VM_POWER=1/);
  assert.equal((await api('GET', '/api/v1/nodes/p3.lab.test/power')).status, 404, 'nothing stored');
});

test('a failed power action says why, with no password in the answer or the event', async () => {
  const { startRedfishStandIn } = await import('../src/power/redfish-standin.js');
  const bmc = await startRedfishStandIn({ username: 'admin', password: 'the-real-one' });
  try {
    assert.equal((await api('POST', '/api/v1/nodes', { name: 'p4.lab.test' })).status, 201);
    const url = new URL(bmc.url);
    assert.equal((await api('PUT', '/api/v1/nodes/p4.lab.test/power', { driver: 'redfish', scheme: 'http', address: url.hostname, port: Number(url.port), username: 'admin', password: PASSWORD })).status, 200);
    const r = await api('POST', '/api/v1/nodes/p4.lab.test/power/actions', { action: 'on' });
    assert.equal(r.status, 502);
    assert.equal(r.body.error, 'power-failed');
    assert.equal(r.body.retryable, false);
    assert.match(r.body.message, /node p4\.lab\.test: BMC .*redfish.*admin/);
    const failed = ((await api('GET', '/api/v1/events?type=node.power.failed')).body as any[]).filter((e) => e.payload.name === 'p4.lab.test');
    assert.equal(failed.length, 1);
    assert.ok(!JSON.stringify(r.body).includes(PASSWORD) && !JSON.stringify(failed).includes(PASSWORD), 'no password in the answer or the event');
  } finally {
    await bmc.close();
  }
});

test('power actions drive a real QEMU through the vm driver and are recorded as events', async () => {
  assert.equal((await api('POST', '/api/v1/nodes', { name: 'p2.lab.test' })).status, 201);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-power-api-'));
  const qmp = path.join(dir, 'qmp.sock');
  process.env.FULCRUM_LAB_VM_POWER = '1';
  try {
    const launch = ['qemu-system-x86_64', '-nodefaults', '-machine', 'pc', '-accel', 'tcg', '-m', '32', '-display', 'none', '-serial', 'null', '-S'];
    assert.equal((await api('PUT', '/api/v1/nodes/p2.lab.test/power', { driver: 'vm', address: qmp, launch })).status, 200);
    const act = async (action: string, extra: Record<string, unknown> = {}) => {
      const r = await api('POST', '/api/v1/nodes/p2.lab.test/power/actions', { action, ...extra });
      assert.equal(r.status, 200, `${action}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    assert.equal((await act('status')).state, 'off');
    await act('pxe');
    assert.equal((await act('on')).state, 'on');
    const pid = Number(fs.readFileSync(`${qmp}.pid`, 'utf8'));
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.equal(argv[argv.indexOf('-boot') + 1], 'once=n', 'the one-time PXE boot reached QEMU');
    assert.equal((await act('status')).state, 'on');
    assert.equal((await api('GET', '/api/v1/nodes/p2.lab.test/power')).body.state, 'on');
    assert.equal((await act('off')).state, 'off');
    assert.ok(!fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === '', 'QEMU is gone');
    const actions = ((await api('GET', '/api/v1/events?type=node.power')).body as any[]).filter((e) => e.type === 'node.power' && e.payload.name === 'p2.lab.test');
    assert.deepEqual(actions.map((e) => [e.payload.action, e.payload.state]), [['status', 'off'], ['pxe', null], ['on', 'on'], ['status', 'on'], ['off', 'off']]);
  } finally {
    delete process.env.FULCRUM_LAB_VM_POWER;
    try { process.kill(Number(fs.readFileSync(`${qmp}.pid`, 'utf8')), 'SIGKILL'); } catch { /* not running */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a replica with another secret key is refused before it seals or opens anything', async () => {
  await assert.rejects(new SecretBox(Buffer.alloc(32, 9)).checkClusterKey(t.server.store), /not the one the cluster seals secrets with: give every replica the same FULCRUM_SECRET_KEY/);
  await SecretBox.forDataDir(t.dataDir).checkClusterKey(t.server.store);
});

test('a secret key of the wrong size is refused with a clear message', () => {
  assert.throws(() => SecretBox.forDataDir(os.tmpdir(), { FULCRUM_SECRET_KEY: Buffer.alloc(16).toString('base64') }), /FULCRUM_SECRET_KEY must be 32 bytes in base64.*16 bytes/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-key-'));
  try {
    SecretBox.forDataDir(dir, {});
    assert.equal(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777, 0o600);
    const sealed = SecretBox.forDataDir(dir, {}).seal({ a: 1 }, 'ctx');
    assert.deepEqual(SecretBox.forDataDir(dir, {}).open(sealed, 'ctx'), { a: 1 }, 'the key file is reused');
    assert.throws(() => new SecretBox(Buffer.alloc(32, 7)).open(sealed, 'ctx'), /cannot be opened with this server's key/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
