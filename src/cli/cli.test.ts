// The `fulcrum` binary end to end against a stand-in HTTP server that answers as docs/api.md says:
// flags reach the right requests, answers are printed, exit codes hold. The real server's own
// tests cover the server; these pin the CLI's side of the contract.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { projectRoot } from '../paths.js';

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: unknown }
const seen: Seen[] = [];
let endpoint = '';
let server: http.Server;
let home = '';
const annealCalls = new Map<string, number>();

const node1 = { id: 1, uuid: 'u1', name: 'n1.example.com', alive: true, available: true, bootenv: 'local', state: 'ACTIVE', deployment: 'system', inventory: { cpus: 4 } };

function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

function summary(over: Record<string, unknown>) {
  return { finished: 0, working: 0, scheduled: 0, failed: 0, blocked: 0, proposed: 0, total: 0, running: [], errors: [], ...over };
}

function anneal(deployment: string | null) {
  const n = (annealCalls.get(deployment ?? '') ?? 0) + 1;
  annealCalls.set(deployment ?? '', n);
  switch (deployment) {
    case 'good': return n < 3 ? summary({ scheduled: 2, working: 1, finished: n - 1, total: 3 }) : summary({ finished: 3, total: 3 });
    case 'bad': return summary({ finished: 1, failed: 1, blocked: 1, total: 3, errors: [{ id: 7, node: 'n1.example.com', role: 'etcd', deployment: 'bad', state: 'ERROR', runlog: 'starting\nboom: disk full\n' }] });
    default: return summary({ working: 1, total: 1, running: [{ id: 3, node: 'n1.example.com', role: 'slow' }] });
  }
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: unknown) {
  const url = new URL(req.url!, 'http://x');
  const p = url.pathname;
  if (p === '/api/v1/login') {
    const b = body as { user?: string; password?: string };
    return b.password === 'pw' ? send(res, 200, { token: 'tok', user: b.user }) : send(res, 401, { error: 'unauthorized', message: 'wrong user name or password' });
  }
  if (req.headers.authorization !== 'Bearer tok') return send(res, 401, { error: 'unauthorized', message: 'no or bad token' });
  if (p === '/api/v1/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': hello\n\n');
    res.write('id: 1\nevent: node.created\ndata: {"id":1,"type":"node.created","object_kind":"node","object_id":1,"at":"2025-01-01T00:00:00Z","payload":{"name":"n1"}}\n\n');
    res.write('id: 2\ndata: {"id":2,"type":"noderole.state","object_kind":"noderole","object_id":5,"at":"2025-01-01T00:00:01Z","payload":{"from":"TODO","to":"TRANSITION"}}\n\n');
    return; // stays open, as a live stream does
  }
  if (p === '/api/v1/nodes' && req.method === 'GET') return send(res, 200, [node1], { 'x-total-count': '7' });
  if (p === '/api/v1/nodes' && req.method === 'POST') {
    const b = body as Record<string, unknown>;
    return b.name ? send(res, 201, { id: 2, ...b }) : send(res, 400, { error: 'invalid', message: 'a node needs a name', field: 'name' });
  }
  if (p === '/api/v1/nodes/n1.example.com' && req.method === 'GET') return send(res, 200, node1, { etag: '"3"' });
  if (p === '/api/v1/nodes/n1.example.com' && req.method === 'PATCH') return send(res, 200, { ...node1, ...(body as object) });
  if (p === '/api/v1/nodes/n1.example.com' && req.method === 'DELETE') return send(res, 204);
  if (p.startsWith('/api/v1/nodes/')) return send(res, 404, { error: 'not_found', message: `no node "${decodeURIComponent(p.slice(14))}"` });
  if (p === '/api/v1/noderoles' && req.method === 'POST') return send(res, 201, { id: 9, ...(body as object), state: 'PROPOSED', blocked_by: null, run_count: 0 });
  if (p === '/api/v1/deployments/good/commit') return send(res, 200, { id: 4, name: 'good', state: 'committed' });
  if (p.startsWith('/api/v1/deployments/')) return send(res, 200, { id: 4, name: decodeURIComponent(p.split('/')[4]) });
  if (p === '/api/v1/anneal') return send(res, 200, anneal(url.searchParams.get('deployment')));
  if (p === '/api/v1/sim/nodes') return send(res, 201, [node1]);
  return send(res, 404, { error: 'not_found', message: `no route ${req.method} ${p}` });
}

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-cli-e2e-'));
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const body = text ? JSON.parse(text) : undefined;
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      void handle(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

interface Run { code: number | null; stdout: string; stderr: string }

function fulcrum(args: string[], env: Record<string, string> = {}, until?: (stdout: string) => boolean): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'fulcrum.js'), ...args], {
      env: { PATH: process.env.PATH, HOME: home, FULCRUM_CONFIG: path.join(home, 'config.json'), FULCRUM_ENDPOINT: endpoint, FULCRUM_TOKEN: 'tok', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (until?.(stdout)) child.kill('SIGINT');
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const last = () => seen[seen.length - 1];

test('login stores endpoint and token (0600) and later commands use them', async () => {
  const bad = await fulcrum(['login', '--endpoint', endpoint, '--user', 'admin', '--password', 'nope'], { FULCRUM_TOKEN: '', FULCRUM_ENDPOINT: '' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: wrong user name or password\n/);
  const r = await fulcrum(['login', '--endpoint', endpoint, '--user', 'admin', '--password', 'pw'], { FULCRUM_TOKEN: '', FULCRUM_ENDPOINT: '' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(last().headers.authorization, undefined);
  const file = path.join(home, 'config.json');
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { endpoint, token: 'tok' });
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const list = await fulcrum(['nodes', 'list', '-o', 'json'], { FULCRUM_TOKEN: '', FULCRUM_ENDPOINT: '' });
  assert.equal(list.code, 0, list.stderr);
  assert.equal(last().headers.authorization, 'Bearer tok');
});

test('list -o json prints the array as the API returned it; filters and paging become the query', async () => {
  const r = await fulcrum(['nodes', 'list', '--filter', 'state=ERROR', '--filter', 'deployment=system', '--limit', '5', '--offset', '1', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [node1]);
  assert.equal(last().url, '/api/v1/nodes?state=ERROR&deployment=system&limit=5&offset=1');
});

test('list as a table shows the kind\'s columns and says on stderr when there are more', async () => {
  const r = await fulcrum(['nodes', 'list']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n')[0].split(/\s+/), ['ID', 'NAME', 'ALIVE', 'AVAILABLE', 'BOOTENV', 'STATE', 'DEPLOYMENT']);
  assert.match(r.stdout.split('\n')[1], /^1\s+n1\.example\.com\s+true\s+true\s+local\s+ACTIVE\s+system$/);
  assert.match(r.stderr, /1-1 of 7 shown/);
});

test('show, -o yaml, and the etag on stderr', async () => {
  const r = await fulcrum(['nodes', 'show', 'n1.example.com']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^id +1$/m);
  assert.match(r.stdout, /^inventory:\n {2}cpus: 4$/m);
  assert.match(r.stderr, /etag: "3"/);
  const y = await fulcrum(['-o', 'yaml', 'nodes', 'show', 'n1.example.com']);
  assert.match(y.stdout, /^name: n1\.example\.com$/m);
});

test('create from a file and --set; a 400 prints the message and field, exit 1, no stack', async () => {
  const r = await fulcrum(['nodes', 'create', '--set', 'name=n2', '--set', 'hints.rack=12', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(last().body, { name: 'n2', hints: { rack: 12 } });
  const bad = await fulcrum(['nodes', 'create', '--set', 'alive=true']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'error: a node needs a name (field: name)\n');
});

test('update sends a merge patch with If-Match; delete; 404 is a clean error', async () => {
  const r = await fulcrum(['nodes', 'update', 'n1.example.com', '--set', 'available=false', '--if-match', '"3"']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(last().method, 'PATCH');
  assert.equal(last().headers['if-match'], '"3"');
  assert.deepEqual(last().body, { available: false });
  const d = await fulcrum(['nodes', 'delete', 'n1.example.com']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(d.stdout, 'deleted nodes n1.example.com\n');
  const m = await fulcrum(['nodes', 'show', 'ghost']);
  assert.equal(m.code, 1);
  assert.equal(m.stderr, 'error: no node "ghost"\n');
});

test('bind, commit and sim nodes post to their endpoints', async () => {
  const b = await fulcrum(['bind', 'etcd', 'n1.example.com', '--deployment', 'k8s', '-o', 'json']);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(last().url, '/api/v1/noderoles');
  assert.deepEqual(last().body, { role: 'etcd', node: 'n1.example.com', deployment: 'k8s' });
  const c = await fulcrum(['commit', 'good']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(last().url, '/api/v1/deployments/good/commit');
  const s = await fulcrum(['sim', 'nodes', '--count', '3', '--deployment', 'k8s', '-o', 'json']);
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual(last().body, { count: 3, deployment: 'k8s' });
});

test('converge: exit 0 when converged', async () => {
  const r = await fulcrum(['converge', 'good', '--timeout', '20']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /converged deployment good: 3\/3 noderoles finished/);
  assert.match(r.stderr, /0\/3 finished {2}1 working {2}2 scheduled/);
});

test('converge: exit 1 on a failed noderole, with its run log', async () => {
  const r = await fulcrum(['converge', 'bad', '--timeout', '20']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /noderole 7: node n1\.example\.com, role etcd, deployment bad \(ERROR\)\n {2}\| starting\n {2}\| boom: disk full\n/);
});

test('converge: exit 2 on timeout, naming what still runs', async () => {
  const r = await fulcrum(['converge', 'slow', '--timeout', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /timed out after 1s/);
  assert.match(r.stderr, /running: job 3 node n1\.example\.com role slow/);
});

test('events: one line per event, filters in the query, Ctrl-C exits 0', async () => {
  const r = await fulcrum(['events', '--type', 'node.,noderole.', '--deployment', 'k8s'], {}, (out) => out.split('\n').length > 2);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    '2025-01-01T00:00:00Z  node.created  node/1  name=n1',
    '2025-01-01T00:00:01Z  noderole.state  noderole/5  TODO -> TRANSITION',
  ]);
  const req = seen.find((s) => s.url.startsWith('/api/v1/events'))!;
  assert.equal(req.url, '/api/v1/events?type=node.%2Cnoderole.&deployment=k8s');
  assert.equal(req.headers.accept, 'text/event-stream');
});

test('events -o json prints JSON lines', async () => {
  const r = await fulcrum(['events', '-o', 'json'], {}, (out) => out.split('\n').length > 2);
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => e.type), ['node.created', 'noderole.state']);
});

test('a bad token prints how to log in; a refused connection names the endpoint', async () => {
  const r = await fulcrum(['nodes', 'list'], { FULCRUM_TOKEN: 'wrong' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: no or bad token\nhint: log in with `fulcrum login/);
  const free = http.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const port = (free.address() as AddressInfo).port;
  await new Promise((r) => free.close(r));
  const dead = await fulcrum(['nodes', 'list'], { FULCRUM_ENDPOINT: `http://127.0.0.1:${port}` });
  assert.equal(dead.code, 1);
  assert.ok(dead.stderr.startsWith(`error: cannot connect to the Fulcrum server at http://127.0.0.1:${port}: connection refused\n`), dead.stderr);
  assert.doesNotMatch(dead.stderr, /\n\s+at /);
});
