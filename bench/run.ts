// `npm run bench`: the two scale figures of DESIGN.md §7, measured on this machine.
//  1. Annealer throughput: 1,000 simulated nodes × 10 roles (zero-delay test jig), one server with
//     its embedded PostgreSQL; noderole transitions per second from the commit to convergence,
//     counted from the `noderole.state` events. Target ≥ 1,000/s.
//  2. API latency: GET /api/v1/nodes?limit=100&offset=<random> with 10,000 nodes, ~500 sequential
//     requests; p50 and p99. Target p99 < 100 ms.
// Options (environment): BENCH_CAP (annealer cap for the throughput run, default 100),
// BENCH_NODES (default 1000), BENCH_READ_NODES (default 10000), BENCH_REQUESTS (default 500).
// Then the provisioning plane (bench/provisioning.ts: DHCP, TFTP, HTTP boot against Kea, dnsmasq,
// tftpd-hpa and nginx; needs root). One part only: `npm run bench -- --only annealer|provisioning`
// or BENCH_ONLY=annealer|provisioning. Then discovery (bench/discovery.ts: ramdisk size, VM boot,
// agent dispatch latency and idle cost; needs root): `--only discovery`.
// DNS (bench/dns.ts: dnsperf against Fulcrum, Knot, dnsmasq and a bare UDP reflector): `--only dns`.
// Results are documented in docs/performance.md.
import fs from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { startServer, type RunningServer } from '../src/server/server.js';
import { runProvisioningBench } from './provisioning.js';
import { runDiscoveryBench } from './discovery.js';
import { runDnsBench } from './dns.js';
import { labPrerequisitesMissing } from '../src/lab/lab.js';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const READ_NODES = Number(process.env.BENCH_READ_NODES ?? 10000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 500);
const CAP = Number(process.env.BENCH_CAP ?? 100);
const CONVERGE_LIMIT_MS = 6 * 60 * 1000;
const TARGET_RATE = 1000;
const TARGET_P99_MS = 100;

/**
 * Ten roles in a small DAG, every parent implicit so each node gets its own copy:
 * 0 ← 1,2,3;  1←4, 2←5, 3←6;  4,5←7;  5,6←8;  7,8←9. Binding role 9 binds all ten.
 */
const ROLES: Array<{ name: string; requires: string[] }> = [
  { name: 'bench-0', requires: [] },
  { name: 'bench-1', requires: ['bench-0'] },
  { name: 'bench-2', requires: ['bench-0'] },
  { name: 'bench-3', requires: ['bench-0'] },
  { name: 'bench-4', requires: ['bench-1'] },
  { name: 'bench-5', requires: ['bench-2'] },
  { name: 'bench-6', requires: ['bench-3'] },
  { name: 'bench-7', requires: ['bench-4', 'bench-5'] },
  { name: 'bench-8', requires: ['bench-5', 'bench-6'] },
  { name: 'bench-9', requires: ['bench-7', 'bench-8'] },
];

let server: RunningServer | undefined;
let token = '';

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(server!.url + p, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function must(r: { status: number; body: any }, what: string, status = [200, 201]): any {
  if (!status.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

async function main(): Promise<void> {
  const started = performance.now();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-bench-'));
  // Should the process die before `finally` (an uncaught error while stopping), still remove the
  // data dir — unless its PostgreSQL is still running from it.
  process.once('exit', () => {
    if (!existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))) rmSync(dataDir, { recursive: true, force: true });
  });
  const password = crypto.randomBytes(12).toString('hex');
  process.env.FULCRUM_ADMIN_PASSWORD = password;
  try {
    log(`starting a server with embedded PostgreSQL in ${dataDir}`);
    server = await startServer({ dataDir, listen: '127.0.0.1:0', annealer: { cap: CAP } });
    const store = server.store;
    await store.query(`INSERT INTO settings (key, value) VALUES ('annealer.cap', $1) ON CONFLICT (key) DO UPDATE SET value = $1`, [JSON.stringify(CAP)]);
    token = must(await api('POST', '/api/v1/login', { user: 'admin', password }), 'login').token;

    // --- 1. throughput ---
    for (const r of ROLES) {
      must(await api('POST', '/api/v1/roles', { name: r.name, jig: 'test', requires: r.requires, flags: r.name === 'bench-9' ? [] : ['implicit'] }), `role ${r.name}`);
    }
    must(await api('POST', '/api/v1/deployments', { name: 'bench' }), 'deployment');
    const tCreate = performance.now();
    const names: string[] = [];
    for (let made = 0; made < NODES; made += 500) {
      names.push(...must(await api('POST', '/api/v1/sim/nodes', { count: Math.min(500, NODES - made), deployment: 'bench' }), 'sim nodes').nodes);
    }
    const createMs = performance.now() - tCreate;
    log(`${NODES} nodes created in ${sec(createMs)}; binding bench-9 on each`);
    const tBind = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < names.length) {
        const node = names[next++];
        must(await api('POST', '/api/v1/noderoles', { role: 'bench-9', node, deployment: 'bench' }), `bind on ${node}`);
      }
    }));
    const bindMs = performance.now() - tBind;
    const total = Number((await store.query(`SELECT count(*) AS n FROM noderoles`)).rows[0].n);
    if (total !== NODES * ROLES.length) throw new Error(`expected ${NODES * ROLES.length} noderoles, found ${total}`);
    log(`${total} noderoles bound in ${sec(bindMs)}; committing`);

    const baseline = Number((await store.query(`SELECT coalesce(max(id), 0) AS id FROM events`)).rows[0].id);
    const baselineJobs = Number((await store.query(`SELECT coalesce(max(id), 0) AS id FROM jobs`)).rows[0].id);
    const t0 = performance.now();
    must(await api('POST', '/api/v1/deployments/bench/commit'), 'commit');
    const commitMs = performance.now() - t0;
    const afterCommit = Number((await store.query(`SELECT coalesce(max(id), 0) AS id FROM events`)).rows[0].id);
    log(`commit answered in ${sec(commitMs)}; converging`);
    let remaining = total;
    let lastReport = performance.now();
    while (remaining > 0 && performance.now() - t0 < CONVERGE_LIMIT_MS) {
      remaining = Number((await store.query(`SELECT count(*) AS n FROM noderoles WHERE state <> 'ACTIVE'`)).rows[0].n);
      if (remaining > 0) await new Promise((r) => setTimeout(r, 20));
      if (performance.now() - lastReport > 10000) { log(`${remaining} noderoles not ACTIVE yet`); lastReport = performance.now(); }
    }
    const convergeMs = performance.now() - t0;
    const converged = remaining === 0;
    const errors = Number((await store.query(`SELECT count(*) AS n FROM noderoles WHERE state = 'ERROR'`)).rows[0].n);
    const transitions = Number((await store.query(`SELECT count(*) AS n FROM events WHERE id > $1 AND type = 'noderole.state'`, [baseline])).rows[0].n);
    const byKind = (await store.query(
      `SELECT payload->>'from' || '→' || (payload->>'to') AS t, count(*)::int AS n FROM events WHERE id > $1 AND type = 'noderole.state' GROUP BY 1 ORDER BY 2 DESC`, [baseline])).rows;
    const annealTransitions = Number((await store.query(`SELECT count(*) AS n FROM events WHERE id > $1 AND type = 'noderole.state'`, [afterCommit])).rows[0].n);
    const jobs = Number((await store.query(`SELECT count(*) AS n FROM jobs WHERE id > $1`, [baselineJobs])).rows[0].n);
    const spans = (await store.query(
      `SELECT (extract(epoch FROM started_at) * 1e6)::bigint AS s, (extract(epoch FROM finished_at) * 1e6)::bigint AS f FROM jobs WHERE id > $1 AND finished_at IS NOT NULL`,
      [baselineJobs])).rows;
    const points = spans.flatMap((j) => [[Number(j.s), 1], [Number(j.f), -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let running = 0, peak = 0;
    for (const [, d] of points) peak = Math.max(peak, (running += d));
    const rate = transitions / (convergeMs / 1000);
    const annealRate = annealTransitions / ((convergeMs - commitMs) / 1000);
    log(`converged=${converged} in ${sec(convergeMs)}: ${transitions} transitions, ${jobs} jobs`);

    // --- 2. paginated node list with READ_NODES nodes ---
    const have = Number((await store.query(`SELECT count(*) AS n FROM nodes`)).rows[0].n);
    const tMore = performance.now();
    for (let n = have; n < READ_NODES; n += 1000) {
      must(await api('POST', '/api/v1/sim/nodes', { count: Math.min(1000, READ_NODES - n), deployment: 'bench', prefix: 'read' }), 'sim nodes (read set)');
    }
    const moreMs = performance.now() - tMore;
    const nodeCount = Number((await store.query(`SELECT count(*) AS n FROM nodes`)).rows[0].n);
    log(`${nodeCount} nodes (${nodeCount - have} more created through the API in ${sec(moreMs)}); measuring ${REQUESTS} list requests`);
    const maxOffset = Math.max(0, nodeCount - 100);
    const get = async () => {
      const offset = Math.floor(Math.random() * (maxOffset + 1));
      const t = performance.now();
      const res = await fetch(`${server!.url}/api/v1/nodes?limit=100&offset=${offset}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as unknown[];
      const ms = performance.now() - t;
      if (res.status !== 200 || body.length !== Math.min(100, nodeCount - offset)) throw new Error(`node list at offset ${offset}: HTTP ${res.status}, ${body.length} rows`);
      samples.push({ offset, ms });
      return ms;
    };
    const samples: Array<{ offset: number; ms: number }> = [];
    for (let i = 0; i < 20; i++) await get(); // warm-up
    samples.length = 0;
    const lat: number[] = [];
    for (let i = 0; i < REQUESTS; i++) lat.push(await get());
    lat.sort((a, b) => a - b);
    const median = (xs: number[]) => (xs.length ? quantile([...xs].sort((a, b) => a - b), 0.5) : NaN);
    const nearStart = median(samples.filter((x) => x.offset < maxOffset * 0.1).map((x) => x.ms));
    const nearEnd = median(samples.filter((x) => x.offset >= maxOffset * 0.9).map((x) => x.ms));
    const p50 = quantile(lat, 0.5), p99 = quantile(lat, 0.99);

    // --- report ---
    const mark = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    const rows: Array<[string, string, string, string]> = [
      ['noderole transitions/s (commit → converged)', converged ? rate.toFixed(0) : `${rate.toFixed(0)} (not converged)`, `≥ ${TARGET_RATE}/s`, mark(converged && errors === 0 && rate >= TARGET_RATE)],
      ['GET /api/v1/nodes?limit=100 p50', `${p50.toFixed(1)} ms`, '', ''],
      ['GET /api/v1/nodes?limit=100 p99', `${p99.toFixed(1)} ms`, `< ${TARGET_P99_MS} ms`, mark(p99 < TARGET_P99_MS)],
    ];
    const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['measure', 'result', 'target', ''][i].length));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
    const cpu = os.cpus();
    console.log('');
    console.log(`Fulcrum bench — ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, embedded PostgreSQL`);
    console.log('');
    console.log(line(['measure', 'result', 'target', '']));
    console.log(line(w.map((n) => '-'.repeat(n))));
    for (const r of rows) console.log(line(r));
    console.log('');
    console.log(`throughput run: ${NODES} nodes × ${ROLES.length} roles = ${total} noderoles, test jig with zero delay, annealer cap ${CAP}`);
    console.log(`  setup: nodes created in ${sec(createMs)}, bound in ${sec(bindMs)}`);
    console.log(`  the commit request took ${sec(commitMs)}; ${converged ? 'converged' : 'NOT converged'} ${sec(convergeMs)} after it was sent, ${errors} in ERROR`);
    console.log(`  ${transitions} noderole.state events (${byKind.map((k) => `${k.t} ${k.n}`).join(', ')})`);
    console.log(`  ${jobs} jobs: ${(jobs / ((convergeMs - commitMs) / 1000)).toFixed(0)} jobs/s after the commit, peak ${peak} running at once`);
    console.log(`  after the commit returned: ${annealTransitions} transitions in ${sec(convergeMs - commitMs)} = ${annealRate.toFixed(0)}/s (the annealer without the commit transaction)`);
    console.log(`read run: ${nodeCount} nodes (${nodeCount - have} created for it in ${sec(moreMs)}), ${REQUESTS} sequential requests at random offsets after 20 warm-up;` +
      ` min ${lat[0].toFixed(1)} ms, p90 ${quantile(lat, 0.9).toFixed(1)} ms, max ${lat.at(-1)!.toFixed(1)} ms;` +
      ` median ${nearStart.toFixed(1)} ms at offsets in the first tenth, ${nearEnd.toFixed(1)} ms in the last tenth`);
    console.log(`total bench time ${sec(performance.now() - started)}`);
  } finally {
    await server?.close().catch((e) => log(`closing the server: ${(e as Error).message}`));
    await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

process.once('SIGINT', () => {
  log('interrupted: stopping the server and its PostgreSQL');
  void (server?.close() ?? Promise.resolve()).finally(() => process.exit(130));
});

function onlyPart(): 'annealer' | 'provisioning' | 'discovery' | 'dns' | undefined {
  const i = process.argv.indexOf('--only');
  const v = i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? process.env.BENCH_ONLY;
  if (v === undefined || v === '' || v === 'all') return undefined;
  if (v !== 'annealer' && v !== 'provisioning' && v !== 'discovery' && v !== 'dns') throw new Error(`--only takes annealer, provisioning, discovery or dns, not '${v}'`);
  return v;
}

async function all(): Promise<void> {
  const only = onlyPart();
  if (only === undefined || only === 'annealer') await main();
  if (only === 'annealer') return;
  // DNS (bench/dns.ts): dnsperf against Fulcrum, Knot, dnsmasq and a bare UDP reflector; loopback, no root needed.
  if (only === undefined || only === 'dns') console.log((await runDnsBench()).text);
  if (only === 'dns') return;
  const missing = labPrerequisitesMissing();
  if (missing && only === undefined) {
    log(`skipping the provisioning and discovery benches: ${missing} (run as root, or --only annealer)`);
    return;
  }
  if (only === undefined || only === 'provisioning') console.log((await runProvisioningBench()).text);
  if (only === undefined || only === 'discovery') await runDiscoveryBench((m) => log(`discovery: ${m}`));
}

all().then(() => process.exit(0), (err) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
