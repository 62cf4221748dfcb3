// DNS bench (issue 7): dnsperf against Fulcrum's DNS server (the real `fulcrum server --dns-listen`,
// records from the store), Knot, dnsmasq and a bare Node.js UDP reflector that does no DNS work,
// all serving the same 10,000 names on loopback. The server is pinned to one CPU, dnsperf (one
// thread) to the other; repetitions interleave the servers; medians and ratios are printed.
//  1. queries/s at saturation (dnsperf, up to BENCH_DNS_OUTSTANDING queries in flight);
//  2. server CPU µs per query at a fixed load every server sustains (BENCH_DNS_FIXED_QPS).
// Results in docs/performance.md ("DNS").
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot, serverArgv } from '../src/paths.js';
import { startEmbeddedPostgres } from '../src/store/embedded.js';
import { Store } from '../src/store/db.js';
import { migrate } from '../src/store/migrate.js';
import { DnsServer } from '../src/dns/server.js';
import { AnswerTable } from '../src/dns/answers.js';
import { encode, TYPE } from '../src/dns/codec.js';
import { freeUdpPort } from '../test/support/ports.js';

/** The DNS work alone, in this process without sockets: read the query, look up, assemble (µs per query). */
function logicCost(): number {
  const s = new DnsServer({ host: '127.0.0.1', port: 0 });
  const records = Array.from({ length: NAMES }, (_, i) => ({ name: `${host(i)}.${ZONE}`, type: TYPE.A, ttl: 300, data: addr(i) }));
  s.table = new AnswerTable([{ name: ZONE, ttl: 300, soa: { mname: `ns.${ZONE}`, rname: `hostmaster.${ZONE}`, serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 } }], records);
  const queries = records.map((r, i) => encode({ id: i & 0xffff, flags: 0x0100, questions: [{ name: r.name, type: TYPE.A, class: 1 }], answers: [], authorities: [], additionals: [],
    edns: { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: Buffer.alloc(0) } }));
  let bytes = 0;
  const reply = (b: Buffer) => { bytes += b.length; };
  for (let i = 0; i < 200_000; i++) s.handle(queries[i % queries.length], true, reply);
  const n = 1_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) s.handle(queries[i % queries.length], true, reply);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  if (!bytes) throw new Error('no replies in the logic bench');
  return us;
}

const NAMES = Number(process.env.BENCH_DNS_NAMES ?? 10000);
const SECONDS = Number(process.env.BENCH_DNS_SECONDS ?? 8);
const REPEAT = Number(process.env.BENCH_DNS_REPEAT ?? 3);
const FIXED_QPS = Number(process.env.BENCH_DNS_FIXED_QPS ?? 20000);
const OUTSTANDING = Number(process.env.BENCH_DNS_OUTSTANDING ?? 200);
const SERVER_CPU = '1';
const LOAD_CPU = '0';
const ZONE = 'bench.test';

const log = (m: string) => process.stderr.write(`[bench dns] ${m}\n`);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };
const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const host = (i: number) => `h${String(i).padStart(5, '0')}`;

interface Target { name: string; port: number; proc: ChildProcess; pid: () => number }

/** CPU seconds of a process, all its threads: utime + stime from /proc (USER_HZ 100). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return NaN; }
}

/** Wait until `port` answers one query for h00001 (bounded). */
async function answering(port: number, what: string, proc: ChildProcess, output: () => string): Promise<void> {
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`${what} exited: ${output().slice(-2000)}`);
    const r = spawnSync('dig', ['@127.0.0.1', '-p', String(port), '+time=1', '+tries=1', '+short', `${host(1)}.${ZONE}`, 'A'], { encoding: 'utf8' });
    if (r.stdout.trim() === addr(1)) return;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`${what} does not answer on port ${port}: ${output().slice(-2000)}`);
}

function start(name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): { proc: ChildProcess; output: () => string } {
  const proc = spawn('taskset', ['-c', SERVER_CPU, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let out = '';
  proc.stdout!.on('data', (d) => { out = (out + d).slice(-20000); });
  proc.stderr!.on('data', (d) => { out = (out + d).slice(-20000); });
  proc.on('error', (e) => { out += `\n${name}: ${e.message}`; });
  return { proc, output: () => out };
}

/** Pin every thread (some servers start workers after the first pin). */
function pinAll(pid: number): void { spawnSync('taskset', ['-a', '-c', '-p', SERVER_CPU, String(pid)], { stdio: 'ignore' }); }

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.pid === undefined) return;
  p.kill('SIGTERM');
  const done = new Promise((r) => p.once('exit', r));
  const t = setTimeout(() => p.kill('SIGKILL'), 10000);
  await done;
  clearTimeout(t);
}

interface Perf { qps: number; completed: number; sent: number; cpu: number }

function dnsperf(port: number, queryFile: string, opts: { qps?: number; seconds: number }, pid: number): Perf {
  const before = cpuSeconds(pid);
  const args = ['-c', LOAD_CPU, 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-l', String(opts.seconds), '-c', '1', '-T', '1', '-q', String(OUTSTANDING)];
  if (opts.qps) args.push('-Q', String(opts.qps));
  const r = spawnSync('taskset', args, { encoding: 'utf8', timeout: (opts.seconds + 30) * 1000 });
  const after = cpuSeconds(pid);
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const completed = num(/Queries completed:\s+(\d+)/);
  return { qps: num(/Queries per second:\s+([\d.]+)/), completed, sent: num(/Queries sent:\s+(\d+)/), cpu: after - before };
}

export async function runDnsBench(): Promise<{ text: string }> {
  const missing = ['dnsperf', 'knotd', 'dnsmasq', 'dig', 'taskset'].filter((b) => !['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(path.join(d, b))));
  if (missing.length) return { text: `DNS bench skipped: missing ${missing.join(', ')} (scripts/install-system-packages.sh dns)` };
  const load0 = os.loadavg();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-bench-dns-'));
  const targets: Target[] = [];
  const procs: ChildProcess[] = [];
  let pg: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  try {
    // The same names everywhere: a zone file (Knot), a hosts file (dnsmasq), the store (Fulcrum).
    const zoneLines = [`$ORIGIN ${ZONE}.`, '$TTL 300', '@ SOA ns hostmaster 1 3600 600 604800 60', '@ NS ns', 'ns A 10.255.255.1'];
    const hosts: string[] = [];
    const queries: string[] = [];
    for (let i = 0; i < NAMES; i++) { zoneLines.push(`${host(i)} A ${addr(i)}`); hosts.push(`${addr(i)} ${host(i)}.${ZONE}`); queries.push(`${host(i)}.${ZONE} A`); }
    for (let i = queries.length - 1; i > 0; i--) { const j = (i * 7919) % (i + 1); [queries[i], queries[j]] = [queries[j], queries[i]]; }
    await fs.writeFile(path.join(dir, `${ZONE}.zone`), zoneLines.join('\n') + '\n');
    await fs.writeFile(path.join(dir, 'hosts'), hosts.join('\n') + '\n');
    const queryFile = path.join(dir, 'queries.txt');
    await fs.writeFile(queryFile, queries.join('\n') + '\n');

    // Fulcrum: records in the store (static records), served by `fulcrum server --dns-listen`.
    log('loading 10,000 records into PostgreSQL');
    pg = await startEmbeddedPostgres(path.join(dir, 'pg'));
    const store = new Store(pg.url);
    await migrate(store);
    const z = await store.query(`INSERT INTO dns_zones (name, kind, primary_ns, admin_email) VALUES ($1, 'forward', $2, $3) RETURNING id`, [ZONE, `ns.${ZONE}`, `hostmaster.${ZONE}`]);
    await store.query(`INSERT INTO dns_records (zone_id, name, type, data) SELECT $1, 'h' || lpad(i::text, 5, '0') || '.' || $2, 'A',
      '10.' || ((i >> 16) & 255)::text || '.' || ((i >> 8) & 255)::text || '.' || (i & 255)::text FROM generate_series(0, $3 - 1) i`, [z.rows[0].id, ZONE, NAMES]);
    await store.close();

    const fport = await freeUdpPort();
    const f = start('fulcrum', process.execPath, serverArgv(['--data-dir', path.join(dir, 'fulcrum'), '--listen', '127.0.0.1:0', '--dns-listen', `127.0.0.1:${fport}`]),
      { ...process.env, DATABASE_URL: pg.url, FULCRUM_ADMIN_PASSWORD: 'bench-admin-password' });
    procs.push(f.proc);
    await answering(fport, 'fulcrum', f.proc, f.output);
    targets.push({ name: 'Fulcrum', port: fport, proc: f.proc, pid: () => f.proc.pid! });

    const kport = await freeUdpPort();
    await fs.writeFile(path.join(dir, 'knot.conf'), `server:\n    listen: 127.0.0.1@${kport}\n    rundir: ${dir}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\nlog:\n  - target: stderr\n    any: warning\ndatabase:\n    storage: ${dir}/knotdb\ntemplate:\n  - id: default\n    storage: ${dir}\n    journal-content: none\n    zonefile-sync: -1\nzone:\n  - domain: ${ZONE}\n    file: ${ZONE}.zone\n`);
    const k = start('knotd', 'knotd', ['-c', path.join(dir, 'knot.conf')]);
    procs.push(k.proc);
    await answering(kport, 'knotd', k.proc, k.output);
    targets.push({ name: 'Knot', port: kport, proc: k.proc, pid: () => k.proc.pid! });

    const dport = await freeUdpPort();
    const d = start('dnsmasq', 'dnsmasq', ['--keep-in-foreground', '--conf-file=/dev/null', '--no-hosts', '--no-resolv', `--addn-hosts=${path.join(dir, 'hosts')}`,
      `--port=${dport}`, '--listen-address=127.0.0.1', '--bind-interfaces', `--local=/${ZONE}/`, '--cache-size=0', '--user=root', `--pid-file=${path.join(dir, 'dnsmasq.pid')}`]);
    procs.push(d.proc);
    await answering(dport, 'dnsmasq', d.proc, d.output);
    targets.push({ name: 'dnsmasq', port: dport, proc: d.proc, pid: () => d.proc.pid! });

    // The floor: Node.js receiving and sending one datagram per query, no DNS work (QR bit set on the query).
    const rport = await freeUdpPort();
    const reflector = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{m[2]|=0x80;s.send(m,r.port,r.address)});s.bind(${rport},'127.0.0.1',()=>{try{s.setRecvBufferSize(4<<20);s.setSendBufferSize(4<<20)}catch{}})`;
    const r = start('reflector', process.execPath, ['-e', reflector]);
    procs.push(r.proc);
    await new Promise((res) => setTimeout(res, 500));
    targets.push({ name: 'reflector', port: rport, proc: r.proc, pid: () => r.proc.pid! });

    for (const t of targets) pinAll(t.pid());
    // Warm up every server (first queries build Fulcrum's lazily prepared answers, JIT, caches).
    for (const t of targets) dnsperf(t.port, queryFile, { seconds: 2 }, t.pid());

    // Background work of each server with no queries (Fulcrum's annealer, event poll, record look), in CPU µs per second.
    const idle = new Map<string, number>();
    for (const t of targets) { const c0 = cpuSeconds(t.pid()); await new Promise((res) => setTimeout(res, 5000)); idle.set(t.name, (cpuSeconds(t.pid()) - c0) / 5 * 1e6); }
    const sat = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const lost = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const t of targets) {
        const s = dnsperf(t.port, queryFile, { seconds: SECONDS }, t.pid());
        sat.get(t.name)!.push(s.qps);
        const fx = dnsperf(t.port, queryFile, { seconds: SECONDS, qps: FIXED_QPS }, t.pid());
        cpu.get(t.name)!.push((fx.cpu / Math.max(1, fx.completed)) * 1e6);
        lost.get(t.name)!.push(fx.sent - fx.completed);
        log(`rep ${rep + 1}: ${t.name} ${Math.round(s.qps)} q/s at saturation; at ${FIXED_QPS} q/s ${((fx.cpu / Math.max(1, fx.completed)) * 1e6).toFixed(1)} µs CPU/query, ${fx.sent - fx.completed} lost`);
      }
    }
    const med = (m: Map<string, number[]>, n: string) => median(m.get(n)!);
    const knot = med(sat, 'Knot'), refl = med(sat, 'reflector');
    const lines = [
      `load average (1, 5, 15 min) at the start: ${load0.map((x) => x.toFixed(1)).join(' ')}, at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (${os.cpus().length} CPUs; other work on the machine shows here)`,
      `DNS: dnsperf (1 thread, ${OUTSTANDING} in flight, CPU ${LOAD_CPU}) against servers pinned to CPU ${SERVER_CPU}, ${NAMES} A names on loopback, ${SECONDS} s runs, medians of ${REPEAT} interleaved`,
      '',
      '| server | queries/s at saturation | ÷ Knot | ÷ reflector | CPU µs/query at ' + FIXED_QPS + ' q/s | ÷ Knot | ÷ reflector | idle CPU µs/s | lost at ' + FIXED_QPS + ' q/s |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...targets.map((t) => {
        const q = med(sat, t.name), c = med(cpu, t.name);
        return `| ${t.name} | ${Math.round(q).toLocaleString('en-US')} | ${(q / knot).toFixed(2)} | ${(q / refl).toFixed(2)} | ${c.toFixed(1)} | ${(c / med(cpu, 'Knot')).toFixed(2)} | ${(c / med(cpu, 'reflector')).toFixed(2)} | ${Math.round(idle.get(t.name)!)} | ${med(lost, t.name)} |`;
      }),
    ];
    const logic = median([logicCost(), logicCost(), logicCost()]);
    lines.push('', `DNS work alone (read the query, look up the prepared answer, assemble the reply; no sockets, this process): ${logic.toFixed(2)} µs per query`);
    return { text: lines.join('\n') };
  } finally {
    for (const p of procs.reverse()) await stopProc(p).catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

// Run alone: node dist/bench/dns.js
if (process.argv[1] && path.resolve(process.argv[1]) === path.join(projectRoot, 'dist', 'bench', 'dns.js')) {
  runDnsBench().then((r) => { console.log(r.text); process.exit(0); }, (err) => { console.error(`dns bench failed: ${(err as Error).stack ?? err}`); process.exit(1); });
}
