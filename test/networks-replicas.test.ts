// Two `fulcrum server` replicas — real child processes on one PostgreSQL — allocate addresses for
// 500 nodes at once, requests split between them (issue 7 item 2): every node gets an address, no
// address is handed out twice, and the addresses are exactly the first 500 of the range (first
// free, no gaps). A range too small for its 150 askers gives 100 addresses and 50 clear refusals.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { serverArgv } from '../src/paths.js';
import { freshDatabaseUrl, stopOwnCluster } from './support/db.js';
import { countBy, httpJson, waitFor, within } from './support/server.js';

const NODES = 500;
const TIGHT = { askers: 150, size: 100 };
const IN_FLIGHT = 32; // per replica
const PASSWORD = 'networks-replicas-password';

interface Replica { name: string; proc: ChildProcess; dataDir: string; url: string; output: string[]; exited: Promise<unknown>; token: string }
const replicas: Replica[] = [];
let db: pg.Client | undefined;

async function spawnReplica(name: string, databaseUrl: string): Promise<Replica> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `fulcrum-${name}-`));
  const proc = spawn(process.execPath, serverArgv(['--data-dir', dataDir, '--listen', '127.0.0.1:0']), {
    env: { ...process.env, DATABASE_URL: databaseUrl, FULCRUM_ADMIN_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const r: Replica = { name, proc, dataDir, url: '', output, exited, token: '' };
  replicas.push(r);
  proc.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  r.url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s:\n${output.join('')}`)), 60000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      output.push(chunk.toString());
      const m = /Fulcrum is listening on (http:\/\/\S+)/.exec(output.join(''));
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}) before listening:\n${output.join('')}`)); });
  });
  await waitFor(`${name} /healthz`, async () => (await httpJson(r.url, '', 'GET', '/healthz').catch(() => ({ status: 0 }))).status === 200, 30000, 100);
  const login = await httpJson(r.url, '', 'POST', '/api/v1/login', { user: 'admin', password: PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  r.token = login.body.token;
  return r;
}
const api = (r: Replica, method: string, p: string, body?: unknown) => httpJson(r.url, r.token, method, p, body);

after(async () => {
  await db?.end().catch(() => undefined);
  for (const r of replicas) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      r.proc.kill('SIGTERM');
      if ((await within(r.exited.then(() => true), 10000, false)) === false) { r.proc.kill('SIGKILL'); await r.exited; }
    }
    await fs.rm(r.dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
  await stopOwnCluster();
});

/** Run `work` over `items`, `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, work: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  }));
  return out;
}

test(`two replicas allocate for ${NODES} nodes at once: no duplicate address, no gap`, { timeout: 300000 }, async () => {
  const databaseUrl = await freshDatabaseUrl();
  const a = await spawnReplica('net-a', databaseUrl);
  const b = await spawnReplica('net-b', databaseUrl);
  db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();

  assert.equal((await api(a, 'POST', '/api/v1/networks', { name: 'admin', category: 'admin', conduit: '1g0',
    ranges: [{ name: 'host', first: '10.60.0.10/16', last: '10.60.7.250/16' }] })).status, 201);
  assert.equal((await api(b, 'POST', '/api/v1/networks', { name: 'tight', category: 'storage', conduit: '10g0',
    ranges: [{ name: 'host', first: '10.61.0.1/24', last: `10.61.0.${TIGHT.size}/24` }] })).status, 201);
  const sim = await api(a, 'POST', '/api/v1/sim/nodes', { count: NODES, prefix: 'alloc' });
  assert.equal(sim.status, 201, JSON.stringify(sim.body));
  const names: string[] = sim.body.nodes;

  const t0 = Date.now();
  const results = await pool(names, IN_FLIGHT * 2, async (node, i) => {
    const r = i % 2 ? b : a;
    const res = await api(r, 'POST', '/api/v1/network-allocations', { node, network: 'admin' });
    return { node, replica: r.name, status: res.status, address: res.body?.address as string, body: res.body };
  });
  const ms = Date.now() - t0;
  const failed = results.filter((x) => x.status !== 201);
  assert.equal(failed.length, 0, `failed allocations: ${JSON.stringify(failed.slice(0, 5))}`);
  assert.deepEqual(countBy(results, (x) => x.replica), { 'net-a': NODES / 2, 'net-b': NODES / 2 }, 'both replicas allocated');
  const addresses = results.map((x) => x.address);
  assert.equal(new Set(addresses).size, NODES, 'no address handed out twice (API answers)');
  const stored = (await db.query(`SELECT host(a.address) AS address, a.node_id FROM network_allocations a JOIN networks n ON n.id = a.network_id
    WHERE n.name = 'admin' AND family(a.address) = 4`)).rows;
  assert.equal(stored.length, NODES);
  assert.equal(new Set(stored.map((s) => s.address)).size, NODES, 'no address stored twice');
  assert.equal(new Set(stored.map((s) => s.node_id)).size, NODES, 'one address per node');
  // First free, no gaps: exactly the first 500 addresses of the range.
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const ints = stored.map((s) => toInt(s.address)).sort((x, y) => x - y);
  assert.equal(ints[0], toInt('10.60.0.10'));
  assert.equal(ints.at(-1), toInt('10.60.0.10') + NODES - 1);

  // A range too small: exactly its size succeed, the rest are told the range is out of addresses.
  const tight = await pool(names.slice(0, TIGHT.askers), IN_FLIGHT * 2, async (node, i) =>
    api(i % 2 ? b : a, 'POST', '/api/v1/network-allocations', { node, network: 'tight' }));
  assert.deepEqual(countBy(tight, (x) => String(x.status)), { 201: TIGHT.size, 409: TIGHT.askers - TIGHT.size });
  for (const r of tight.filter((x) => x.status === 409)) {
    assert.equal(r.body.message, `range tight.host is out of addresses (10.61.0.1-10.61.0.${TIGHT.size}, ${TIGHT.size} of ${TIGHT.size} used); widen it or free an allocation`);
  }
  assert.equal(new Set(tight.filter((x) => x.status === 201).map((x) => x.body.address)).size, TIGHT.size);
  console.log(`# networks replicas: ${NODES} allocations over two replicas in ${ms} ms (${Math.round(NODES / (ms / 1000))}/s), ${IN_FLIGHT} in flight per replica`);
});
