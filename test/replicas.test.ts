// Two `fulcrum server` replicas — real child processes — on one PostgreSQL converge 200 simulated
// nodes × 5 roles (test jig with delays). The job history in the database then shows, for the
// whole run, never two jobs on one node at once (annealer rule 2), never more running jobs than the
// global cap (rule 3), every noderole run exactly once, children started only after their parents
// finished, and work done by BOTH replicas (otherwise the test would prove nothing about them).
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

const NODES = 200;
const ADMIN_PASSWORD = 'replicas-test-password';
/** Five test-jig roles in a chain; the four parents are implicit so every node gets its own chain. */
const ROLES = [
  { name: 'rep-1', delay: 20 },
  { name: 'rep-2', delay: 30 },
  { name: 'rep-3', delay: 25 },
  { name: 'rep-4', delay: 35 },
  { name: 'rep-5', delay: 20 },
];

interface Replica {
  name: string;
  proc: ChildProcess;
  dataDir: string;
  url: string;
  output: string[];
  exited: Promise<number | null>;
  token?: string;
}

const replicas: Replica[] = [];
const dirs: string[] = [];
let db: pg.Client | undefined;

/** Start `fulcrum server` as a child process; resolves once it prints the URL it listens on. */
async function spawnReplica(name: string, databaseUrl: string): Promise<Replica> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `fulcrum-${name}-`));
  dirs.push(dataDir);
  // Port 0: the kernel hands each replica a distinct free port; the server prints the one it got.
  const proc = spawn(process.execPath, serverArgv(['--data-dir', dataDir, '--listen', '127.0.0.1:0']), {
    env: { ...process.env, DATABASE_URL: databaseUrl, FULCRUM_ADMIN_PASSWORD: ADMIN_PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const r: Replica = { name, proc, dataDir, url: '', output, exited };
  replicas.push(r);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s:\n${output.join('')}`)), 60000);
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      const m = /Fulcrum is listening on (http:\/\/\S+)/.exec(output.join(''));
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}) before listening:\n${output.join('')}`)); });
  });
  r.url = url;
  return r;
}

const api = (r: Replica, method: string, p: string, body?: unknown) => httpJson(r.url, r.token ?? '', method, p, body);

async function stopReplica(r: Replica): Promise<void> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  r.proc.kill('SIGTERM');
  const done = await within(r.exited.then(() => true), 10000, false);
  if (!done) {
    r.proc.kill('SIGKILL');
    await r.exited;
  }
}

after(async () => {
  await db?.end().catch(() => undefined);
  await Promise.all(replicas.map((r) => stopReplica(r).catch(() => undefined)));
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true }).catch(() => undefined);
  await stopOwnCluster();
});

test(`two replicas on one PostgreSQL converge ${NODES} nodes × ${ROLES.length} roles: one job per node at a time, never over the cap, both replicas work`, { timeout: 420000 }, async () => {
  const t0 = Date.now();
  const databaseUrl = await freshDatabaseUrl();
  // Both start at once on an empty database: migrations and first-start setup must serialise.
  const [a, b] = await Promise.all([spawnReplica('replica-a', databaseUrl), spawnReplica('replica-b', databaseUrl)]);
  for (const r of [a, b]) {
    await waitFor(`${r.name} /healthz`, async () => (await api(r, 'GET', '/healthz').catch(() => ({ status: 0 }))).status === 200, 30000, 100);
    const login = await api(r, 'POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    r.token = login.body.token;
  }
  db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const replicaIds = (await db.query('SELECT id FROM replicas')).rows.map((x) => x.id as string).sort();
  assert.equal(replicaIds.length, 2, `both replicas registered: ${replicaIds.join(', ')}`);
  const cap = Number((await db.query(`SELECT value FROM settings WHERE key = 'annealer.cap'`)).rows[0]?.value ?? 10);
  assert.ok(cap >= 1);

  // Five chained test-jig roles; created through both replicas.
  for (const [i, role] of ROLES.entries()) {
    const r = await api(i % 2 ? b : a, 'POST', '/api/v1/roles', {
      name: role.name, jig: 'test', template: { test: { delay: role.delay } },
      requires: i === 0 ? [] : [ROLES[i - 1].name], flags: i < ROLES.length - 1 ? ['implicit'] : [],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  assert.equal((await api(a, 'POST', '/api/v1/deployments', { name: 'replicas' })).status, 201);
  const sim = await api(b, 'POST', '/api/v1/sim/nodes', { count: NODES, deployment: 'replicas' });
  assert.equal(sim.status, 201, JSON.stringify(sim.body));
  assert.equal(sim.body.created, NODES);
  const names: string[] = sim.body.nodes;

  // Bind the leaf on every node (its implicit parents come with it), alternating replicas.
  const leaf = ROLES.at(-1)!.name;
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(names.slice(i, i + 8).map(async (node, j) => {
      const r = await api((i + j) % 2 ? b : a, 'POST', '/api/v1/noderoles', { role: leaf, node, deployment: 'replicas' });
      assert.equal(r.status, 201, `bind ${leaf} on ${node}: ${JSON.stringify(r.body)}`);
    }));
  }
  const total = NODES * ROLES.length;
  const bound = (await api(a, 'GET', '/api/v1/anneal?deployment=replicas')).body;
  assert.equal(bound.total, total, 'one noderole per role per node');
  assert.equal(bound.proposed, total, 'nothing runs before the commit');
  const perNode = await db.query(`SELECT node_id, count(*)::int AS n FROM noderoles GROUP BY node_id HAVING count(*) <> $1`, [ROLES.length]);
  assert.equal(perNode.rowCount, 0, 'every node carries its own chain of five noderoles');
  const tBound = Date.now();

  assert.equal((await api(a, 'POST', '/api/v1/deployments/replicas/commit')).status, 200);
  const summary = await waitFor('all noderoles ACTIVE', async () => {
    const s = (await api(b, 'GET', '/api/v1/anneal?deployment=replicas')).body;
    if (s.failed > 0) throw new Error(`noderoles went to ERROR: ${JSON.stringify(s.errors)}`);
    return s.finished === total ? s : undefined;
  }, 240000, 250);
  assert.equal(summary.total, total);
  const tConverged = Date.now();

  // --- the job history ---
  const jobs = (await db.query(
    `SELECT id, node_id, noderole_id, owner, state,
            (extract(epoch FROM started_at) * 1000000)::bigint AS s, (extract(epoch FROM finished_at) * 1000000)::bigint AS f
       FROM jobs ORDER BY id`)).rows.map((j) => ({ ...j, s: Number(j.s), f: j.f === null ? null : Number(j.f) }));
  assert.ok(jobs.every((j) => j.state !== 'running' && j.f !== null), 'no job is still running after convergence');
  assert.ok(jobs.every((j) => j.f! >= j.s), 'every job finished after it started');
  const succeeded = jobs.filter((j) => j.state === 'succeeded');
  assert.equal(succeeded.length, total, `one successful run per noderole (states: ${JSON.stringify(countBy(jobs, (j) => j.state))})`);
  assert.equal(new Set(succeeded.map((j) => j.noderole_id)).size, total, 'no noderole ran twice');
  assert.equal(jobs.length, total, 'no extra (failed, cancelled, skipped) runs');

  // Rule 2: per node, the [started, finished] intervals never overlap.
  const byNode = new Map<number, typeof jobs>();
  for (const j of jobs) (byNode.get(j.node_id) ?? byNode.set(j.node_id, []).get(j.node_id)!).push(j);
  assert.equal(byNode.size, NODES);
  for (const [node, list] of byNode) {
    list.sort((x, y) => x.s - y.s);
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i].s >= list[i - 1].f!,
        `node ${node}: job ${list[i].id} (owner ${list[i].owner}) started ${list[i - 1].f! - list[i].s} µs before job ${list[i - 1].id} (owner ${list[i - 1].owner}) finished`);
    }
  }

  // Rule 3: sweep over every start (+1) and finish (-1); at equal instants finishes come first
  // (intervals are half-open: a slot freed at t may be taken at t).
  const points = jobs.flatMap((j) => [{ t: j.s, d: +1, id: j.id }, { t: j.f!, d: -1, id: j.id }]).sort((x, y) => x.t - y.t || x.d - y.d);
  let running = 0, peak = 0, peakAt = 0;
  for (const p of points) {
    running += p.d;
    if (running > peak) { peak = running; peakAt = p.t; }
    assert.ok(running <= cap, `${running} jobs running at once (cap ${cap}) when job ${p.id} started`);
  }
  assert.equal(running, 0);
  assert.ok(peak >= Math.min(cap, 2), `the run used the parallelism available (peak ${peak})`);

  // Ordering: every child started after each of its hard parents finished (the chain on the node).
  const finishedOf = new Map(succeeded.map((j) => [Number(j.noderole_id), j.f!]));
  const startOf = new Map(succeeded.map((j) => [Number(j.noderole_id), j.s]));
  const edges = (await db.query(`SELECT parent_id, child_id FROM noderole_edges WHERE kind = 'hard'`)).rows;
  assert.equal(edges.length, NODES * (ROLES.length - 1));
  for (const e of edges) {
    assert.ok(startOf.get(Number(e.child_id))! >= finishedOf.get(Number(e.parent_id))!, `noderole ${e.child_id} started before its parent ${e.parent_id} finished`);
  }

  // Both replicas did real work; the owners are exactly the two registered replicas.
  const owners = countBy(jobs, (j) => j.owner as string);
  assert.deepEqual(Object.keys(owners).sort(), replicaIds, `job owners: ${JSON.stringify(owners)}`);
  for (const [owner, n] of Object.entries(owners)) {
    assert.ok(n >= total * 0.1, `replica ${owner} ran only ${n} of ${total} jobs: the work did not spread (${JSON.stringify(owners)})`);
  }
  // Cross-replica hand-offs on single nodes: a node whose chain was run by both replicas shows
  // the per-node exclusion held across processes, not just inside one.
  const mixedNodes = [...byNode.values()].filter((l) => new Set(l.map((j) => j.owner)).size > 1).length;
  assert.ok(mixedNodes > 0, 'some nodes had jobs from both replicas');

  // Both replicas are still healthy.
  for (const r of [a, b]) assert.equal((await api(r, 'GET', '/healthz')).status, 200, `${r.name} healthy at the end`);
  const span = (points.at(-1)!.t - points[0].t) / 1e6;
  console.log(`# replicas: setup ${((tBound - t0) / 1000).toFixed(1)} s, converge ${((tConverged - tBound) / 1000).toFixed(1)} s; ` +
    `${jobs.length} jobs in ${span.toFixed(1)} s of job history, cap ${cap}, peak ${peak} running (at ${new Date(peakAt / 1000).toISOString()}), ` +
    `owners ${JSON.stringify(owners)}, ${mixedNodes}/${NODES} nodes served by both replicas`);

  // A clean stop of both replicas.
  for (const r of [a, b]) {
    r.proc.kill('SIGTERM');
    const code = await within(r.exited, 20000, 'timeout');
    assert.equal(code, 0, `${r.name} exits 0 on SIGTERM:\n${r.output.join('').slice(-2000)}`);
  }
});
