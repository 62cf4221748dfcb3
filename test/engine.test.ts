// The orchestration engine through its API, on a real server and a real PostgreSQL: every role
// flag and relationship of the `test` pack, ripples with reasons, failures, retries, timeouts,
// alive flips, async jigs, events and hooks, and the API's error contract.
// Runs twice from npm test: against an external PostgreSQL and with the server's embedded one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readPack } from '../src/content/pack.js';
import { projectRoot } from '../src/paths.js';
import { registerRoleHooks } from '../src/events/hooks.js';
import { startTestServer, waitFor, type TestServer, storeMode } from './support/server.js';
import { stopOwnCluster } from './support/db.js';

let t: TestServer;
const api = (m: string, p: string, b?: unknown, h?: Record<string, string>) => t.api(m, p, b, h);

before(async () => {
  t = await startTestServer({ annealer: { sweepMs: 200, deadAfterMs: 3000 } });
  const pack = await readPack(path.join(projectRoot, 'content', 'test'));
  const r = await api('POST', '/api/v1/content-packs', pack);
  assert.equal(r.status, 201, JSON.stringify(r.body));
});
after(async () => {
  await t?.close();
  await stopOwnCluster();
});

let seq = 0;
async function deployment(): Promise<string> {
  const name = `d${++seq}`;
  assert.equal((await api('POST', '/api/v1/deployments', { name })).status, 201);
  return name;
}
async function nodes(dep: string, count: number, hints: Record<string, unknown> = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `n${++seq}.${dep}.test`;
    const r = await api('POST', '/api/v1/nodes', { name, deployment: dep, alive: true, hints });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    out.push(name);
  }
  return out;
}
async function bind(role: string, node: string, dep: string) {
  const r = await api('POST', '/api/v1/noderoles', { role, node, deployment: dep });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
const noderoles = async (q: string) => (await api('GET', `/api/v1/noderoles?limit=1000&${q}`)).body as any[];
const one = async (role: string, node: string) => (await noderoles(`role=${role}&node=${node}`))[0];
async function converged(dep: string, timeoutMs = 20000) {
  return waitFor(`deployment ${dep} to converge`, async () => {
    const a = (await api('GET', `/api/v1/anneal?deployment=${dep}`)).body;
    return a.total > 0 && a.finished === a.total ? a : undefined;
  }, timeoutMs);
}
const commit = async (dep: string) => assert.equal((await api('POST', `/api/v1/deployments/${dep}/commit`)).status, 200);

test(`[${storeMode()}] discovery roles are bound to every new node and run at once`, async () => {
  const dep = await deployment();
  const [n] = await nodes(dep, 1);
  const nr = await waitFor('discovery ACTIVE', async () => { const x = await one('test-discovery', n); return x?.state === 'ACTIVE' && x; });
  assert.equal(nr.run_count, 1);
});

test('bind, commit and converge: requires, implicit, cluster, service, preceeds and the milestone', async () => {
  const dep = await deployment();
  const [a, b] = await nodes(dep, 2);
  // A non-implicit parent is looked for on the same node first, then in the deployment:
  // binding the consumer on each node first keeps one per node.
  await bind('test-consumer', a, dep);
  await bind('test-consumer', b, dep);
  await bind('test-cluster-client', a, dep);
  await bind('test-cluster-client', b, dep);
  await bind('test-cluster', b, dep);
  await bind('test-milestone', a, dep);
  await bind('test-milestone', b, dep);
  await bind('test-uses-service', a, dep);
  await bind('test-uses-service', b, dep);
  await bind('test-preceeds-a', a, dep);
  await bind('test-preceeds-b', a, dep);
  const before = await noderoles(`deployment=${dep}`);
  assert.ok(before.filter((x) => x.node === a || x.node === b).every((x) => x.state === 'PROPOSED' || x.role === 'test-discovery'), 'nothing runs before commit');
  // implicit: bound on the same node as its child
  assert.ok(before.some((x) => x.role === 'test-implicit' && x.node === a));
  assert.ok(before.some((x) => x.role === 'test-implicit' && x.node === b));
  // service: once per deployment, on the pseudo-node
  const services = before.filter((x) => x.role === 'test-service');
  assert.equal(services.length, 1);
  assert.equal(services[0].node, `services.${dep}.fulcrum.internal`);
  // cluster: one unit; the client on b waits for the peer bound with a's client
  const client = (await api('GET', `/api/v1/noderoles/${(await one('test-cluster-client', b)).id}`)).body;
  const peers = before.filter((x) => x.role === 'test-cluster').map((x) => x.id);
  assert.equal(peers.length, 2);
  assert.deepEqual(client.parents.filter((p: any) => peers.includes(p.id)).map((p: any) => p.id), peers);
  // preceeds: a soft edge, never a binding
  const pb = (await api('GET', `/api/v1/noderoles/${(await one('test-preceeds-b', a)).id}`)).body;
  assert.deepEqual(pb.parents.map((p: any) => p.kind), ['soft']);

  await commit(dep);
  const summary = await converged(dep);
  assert.equal(summary.failed, 0);
  // cohort order held: no child started before its parent finished
  const jobs = (await api('GET', `/api/v1/jobs?limit=1000`)).body as any[];
  const finished = new Map<number, string>(jobs.filter((j) => j.state === 'succeeded').map((j) => [j.noderole, j.finished_at]));
  for (const nr of await noderoles(`deployment=${dep}`)) {
    const detail = (await api('GET', `/api/v1/noderoles/${nr.id}`)).body;
    const started = jobs.find((j) => j.noderole === nr.id)?.started_at;
    for (const p of detail.parents.filter((x: any) => x.kind === 'hard')) {
      if (started && finished.get(p.id)) assert.ok(finished.get(p.id)! <= started, `noderole ${nr.id} started before parent ${p.id} finished`);
    }
  }
});

test('a new cluster peer joins existing children: they wait for it and run again', async () => {
  const dep = await deployment();
  const [a, b, c] = await nodes(dep, 3);
  await bind('test-cluster-client', a, dep);
  await bind('test-cluster-client', b, dep);
  await commit(dep);
  await converged(dep);
  const clientA = await one('test-cluster-client', a);
  assert.equal(clientA.run_count, 1);
  await bind('test-cluster', c, dep);
  const blocked = await one('test-cluster-client', a);
  assert.equal(blocked.state, 'BLOCKED');
  const newPeer = await one('test-cluster', c);
  assert.deepEqual(blocked.blocked_by, { kind: 'parent-not-active', noderole: newPeer.id });
  await commit(dep);
  await converged(dep);
  assert.equal((await one('test-cluster-client', a)).run_count, 2);
  assert.equal((await one('test-cluster-client', b)).run_count, 2);
});

test('conflicts and abstract roles are refused with both roles named', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-conflict-a', a, dep);
  const r = await api('POST', '/api/v1/noderoles', { role: 'test-conflict-b', node: a, deployment: dep });
  assert.equal(r.status, 409);
  assert.match(r.body.message, /test-conflict-b conflicts with role test-conflict-a/);
  const ab = await api('POST', '/api/v1/noderoles', { role: 'test-abstract', node: a, deployment: dep });
  assert.equal(ab.status, 409);
  assert.match(ab.body.message, /abstract/);
});

test('a failure blocks every descendant with the reason; retry converges', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-consumer', a, dep);
  const base = await one('test-base', a);
  assert.equal((await api('PATCH', `/api/v1/noderoles/${base.id}`, { proposed_data: { test: { fail: true } } })).status, 200);
  await commit(dep);
  const failed = await waitFor('test-base ERROR', async () => { const x = await one('test-base', a); return x.state === 'ERROR' && x; });
  const consumer = await waitFor('consumer blocked by error', async () => { const x = await one('test-consumer', a); return x.state === 'BLOCKED' && x; });
  assert.deepEqual(consumer.blocked_by, { kind: 'error', noderole: failed.id });
  const anneal = (await api('GET', `/api/v1/anneal?deployment=${dep}`)).body;
  assert.equal(anneal.failed, 1);
  assert.match(anneal.errors[0].runlog, /test jig asked to fail/);
  // fix and retry
  await api('PATCH', `/api/v1/noderoles/${base.id}`, { proposed_data: { test: { fail: false } } });
  await commit(dep);
  const retry = await api('POST', `/api/v1/noderoles/${base.id}/retry`);
  assert.equal(retry.status, 200, JSON.stringify(retry.body));
  await converged(dep);
  const again = await api('POST', `/api/v1/noderoles/${base.id}/retry`);
  assert.equal(again.status, 409, 'only an ERROR can be retried');
});

test('automatic retry with backoff, and the TRANSITION timeout', async () => {
  const dep = await deployment();
  const [a, b] = await nodes(dep, 2);
  await bind('test-retry', a, dep);
  await bind('test-slow', b, dep);
  const slow = await one('test-slow', b);
  await api('PATCH', `/api/v1/noderoles/${slow.id}`, { proposed_data: { test: { delay: 60000 } } });
  await commit(dep);
  const retried = await waitFor('test-retry ACTIVE after automatic retries', async () => { const x = await one('test-retry', a); return x.state === 'ACTIVE' && x; }, 20000);
  const jobs = (await api('GET', `/api/v1/jobs?noderole=${retried.id}`)).body as any[];
  assert.deepEqual(jobs.map((j) => j.state), ['failed', 'failed', 'succeeded']);
  const timedOut = await waitFor('test-slow ERROR by timeout', async () => { const x = await one('test-slow', b); return x.state === 'ERROR' && x; }, 15000);
  const detail = (await api('GET', `/api/v1/noderoles/${timedOut.id}`)).body;
  assert.match(detail.runlog, /timed out after 2 s in TRANSITION \(role test-slow on node/);
});

test('a node going not-alive is deactivated; back alive it converges, destructive roles are skipped', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-destructive', a, dep);
  await commit(dep);
  await converged(dep);
  const d1 = await one('test-destructive', a);
  assert.equal(d1.run_count, 1);
  assert.equal((await api('PATCH', `/api/v1/nodes/${a}`, { alive: false })).status, 200);
  const down = await noderoles(`node=${a}`);
  assert.ok(down.every((x) => x.state === 'TODO' || x.state === 'BLOCKED'), JSON.stringify(down.map((x) => [x.role, x.state])));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok((await noderoles(`node=${a}`)).every((x) => x.state !== 'TRANSITION'), 'nothing runs on a dead node');
  await api('PATCH', `/api/v1/nodes/${a}`, { alive: true });
  await converged(dep);
  const d2 = await one('test-destructive', a);
  assert.equal(d2.run_count, 1, 'destructive role did not run again');
  const jobs = (await api('GET', `/api/v1/jobs?noderole=${d2.id}`)).body as any[];
  assert.deepEqual(jobs.map((j) => j.state), ['succeeded', 'skipped']);
});

test('attribute injection: the wanting role gets the provider value, and a change pokes it', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-wants', a, dep);
  const producer = await one('test-producer', a);
  await api('PATCH', `/api/v1/noderoles/${producer.id}`, { proposed_data: { test: { token: 'first' } } });
  await commit(dep);
  await converged(dep);
  const wants = await one('test-wants', a);
  let jobs = (await api('GET', `/api/v1/jobs?noderole=${wants.id}`)).body as any[];
  const input1 = (await api('GET', `/api/v1/jobs/${jobs[0].id}`)).body.input;
  assert.equal(input1.attribs['test-token'], 'first');
  await api('PATCH', `/api/v1/noderoles/${producer.id}`, { proposed_data: { test: { token: 'second' } } });
  await commit(dep);
  await waitFor('test-wants re-ran', async () => (await one('test-wants', a)).run_count === 2);
  jobs = (await api('GET', `/api/v1/jobs?noderole=${wants.id}`)).body as any[];
  const input2 = (await api('GET', `/api/v1/jobs/${jobs.at(-1).id}`)).body.input;
  assert.equal(input2.attribs['test-token'], 'second', 'run data is the snapshot taken when the run was queued');
});

test('attribute injection through provides: an abstract owner is supplied by the role that provides it', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-provider', a, dep);
  await bind('test-abstract-user', a, dep);
  const user = await one('test-abstract-user', a);
  const detail = (await api('GET', `/api/v1/noderoles/${user.id}`)).body;
  assert.deepEqual(detail.parents.map((p: any) => p.id), [(await one('test-provider', a)).id], 'the provider is the parent');
  await commit(dep);
  await converged(dep);
  const job = ((await api('GET', `/api/v1/jobs?noderole=${user.id}`)).body as any[])[0];
  assert.equal((await api('GET', `/api/v1/jobs/${job.id}`)).body.input.attribs['test-abstract-value'], 'from-test-provider');
});

test('async jig: the noderole stays in TRANSITION until the job is completed through the API', async () => {
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-base', a, dep);
  const base = await one('test-base', a);
  await api('PATCH', `/api/v1/noderoles/${base.id}`, { proposed_data: { test: { async: true } } });
  await commit(dep);
  const job = await waitFor('async job', async () => {
    const j = ((await api('GET', `/api/v1/jobs?noderole=${base.id}`)).body as any[])[0];
    return j?.async && j;
  });
  assert.equal((await one('test-base', a)).state, 'TRANSITION');
  const done = await api('POST', `/api/v1/jobs/${job.id}/complete`, { status: 'succeeded', wall: { answer: 42 } });
  assert.equal(done.status, 200);
  const nr = await one('test-base', a);
  assert.equal(nr.state, 'ACTIVE');
  assert.equal(nr.wall.answer, 42);
  assert.equal((await api('POST', `/api/v1/jobs/${job.id}/complete`, { status: 'succeeded' })).status, 409);
});

test('events stream over SSE with filters, and role hooks fire for ripple-blocked noderoles', async () => {
  const blockedSeen: number[] = [];
  const unregister = registerRoleHooks('test-consumer', { on_blocked: (e) => { blockedSeen.push(e.object_id!); } });
  const dep = await deployment();
  const depId = (await api('GET', `/api/v1/deployments/${dep}`)).body.id;
  const ctrl = new AbortController();
  const res = await fetch(`${t.url}/api/v1/events?type=noderole.state&deployment=${dep}`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${t.token}` }, signal: ctrl.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const frames: any[] = [];
  const reading = (async () => {
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as any) {
      buf += dec.decode(chunk);
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (data) frames.push(JSON.parse(data.slice(6)));
      }
    }
  })().catch(() => undefined);
  const [a] = await nodes(dep, 1);
  await bind('test-consumer', a, dep);
  const base = await one('test-base', a);
  await api('PATCH', `/api/v1/noderoles/${base.id}`, { proposed_data: { test: { fail: true } } });
  await commit(dep);
  const consumer = await waitFor('consumer blocked', async () => { const x = await one('test-consumer', a); return x.state === 'BLOCKED' && x; });
  await waitFor('hook delivered', async () => blockedSeen.includes(consumer.id), 10000);
  await waitFor('ERROR event streamed', async () => frames.some((f) => f.object_id === base.id && f.payload.to === 'ERROR'), 10000);
  ctrl.abort();
  await reading;
  unregister();
  assert.ok(frames.length > 0 && frames.every((f) => f.type === 'noderole.state' && f.deployment_id === depId), 'filters applied');
  const blockedEvent = frames.find((f) => f.object_id === consumer.id && f.payload.to === 'BLOCKED');
  assert.ok(blockedEvent, 'the ripple-blocked noderole has its own event');
  // since= replays what a client missed
  const replay = await api('GET', `/api/v1/events?type=noderole.state&deployment=${dep}&since=0&limit=1000`);
  assert.ok(replay.body.some((e: any) => e.id === blockedEvent.id));
});

test('API contract: auth, validation naming the field, 404, cycle 409 with the path, ETag/If-Match, pagination', async () => {
  assert.equal((await fetch(`${t.url}/api/v1/nodes`)).status, 401);
  assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  const bad = await api('POST', '/api/v1/nodes', { name: 'x.test', alive: 'maybe' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'alive');
  const unknownField = await api('POST', '/api/v1/nodes', { name: 'x.test', colour: 'red' });
  assert.equal(unknownField.status, 400);
  assert.match(unknownField.body.message, /colour/);
  const missing = await api('POST', '/api/v1/noderoles', { role: 'test-base', node: 'nope.test' });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.field, 'node');
  assert.equal((await api('GET', '/api/v1/nodes/does-not-exist.test')).status, 404);
  // a cycle is refused with the path, and nothing is stored
  assert.equal((await api('POST', '/api/v1/roles', { name: 'cyc-a', jig: 'noop' })).status, 201);
  assert.equal((await api('POST', '/api/v1/roles', { name: 'cyc-b', jig: 'noop', requires: ['cyc-a'] })).status, 201);
  const cyc = await api('PATCH', '/api/v1/roles/cyc-a', { requires: ['cyc-b'] });
  assert.equal(cyc.status, 409);
  assert.match(cyc.body.message, /role cycle: cyc-(a|b) -> cyc-(a|b) -> cyc-(a|b)/);
  assert.deepEqual((await api('GET', '/api/v1/roles/cyc-a')).body.requires, []);
  // ETag + If-Match + merge patch
  const dep = await deployment();
  const [n] = await nodes(dep, 1, { 'test-delay': 1 });
  const got = await api('GET', `/api/v1/nodes/${n}`);
  const etag = got.headers.get('etag')!;
  const ok = await api('PATCH', `/api/v1/nodes/${n}`, { hints: { 'test-fail': false } }, { 'if-match': etag });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.hints, { 'test-delay': 1, 'test-fail': false }, 'merge patch keeps other keys');
  const stale = await api('PATCH', `/api/v1/nodes/${n}`, { description: 'x' }, { 'if-match': etag });
  assert.equal(stale.status, 412);
  // by uuid and by id
  assert.equal((await api('GET', `/api/v1/nodes/${got.body.uuid}`)).body.name, n);
  assert.equal((await api('GET', `/api/v1/nodes/${got.body.id}`)).body.name, n);
  // pagination
  const page = await api('GET', '/api/v1/nodes?limit=2&offset=1');
  assert.equal(page.body.length, 2);
  assert.ok(Number(page.headers.get('x-total-count')) >= 3);
  assert.equal((await api('GET', '/api/v1/nodes?colour=red')).status, 400);
  // capabilities
  assert.equal((await api('POST', '/api/v1/users', { name: 'viewer', password: 'viewer-password', capabilities: ['nodes:read'] })).status, 201);
  const login = await api('POST', '/api/v1/login', { user: 'viewer', password: 'viewer-password' });
  const h = { authorization: `Bearer ${login.body.token}` };
  assert.equal((await fetch(`${t.url}/api/v1/nodes`, { headers: h })).status, 200);
  const denied = await fetch(`${t.url}/api/v1/roles`, { headers: h });
  assert.equal(denied.status, 403);
  assert.match((await denied.json()).message, /roles:read/);
  const users = (await api('GET', '/api/v1/users')).body;
  assert.ok(users.every((u: any) => !('password_hash' in u)), 'password hashes are never returned');
  // OpenAPI document from the same schemas
  const doc = (await api('GET', '/api/v1/openapi.json')).body;
  assert.ok(doc.openapi.startsWith('3.'));
  assert.ok(doc.paths['/api/v1/nodes'].post.requestBody, 'request schemas are in the document');
});

test('a malformed content pack names the key and stores nothing', async () => {
  const before = (await api('GET', '/api/v1/roles?limit=1000')).headers.get('x-total-count');
  const r = await api('POST', '/api/v1/content-packs', {
    name: 'broken', version: '1', roles: [{ name: 'broken-a', jig: 'test' }, { name: 'broken-b', jig: 'test', requires: ['nope'] }],
  });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.match(r.body.message, /roles\[1\]\.requires\[0\]/);
  assert.equal((await api('GET', '/api/v1/roles?limit=1000')).headers.get('x-total-count'), before);
  assert.equal((await api('GET', '/api/v1/roles/broken-a')).status, 404, 'nothing half-imported');
  // re-importing the same pack is a no-op
  const pack = await readPack(path.join(projectRoot, 'content', 'test'));
  const again = await api('POST', '/api/v1/content-packs', pack);
  assert.equal(again.status, 200);
  assert.equal(again.body.changed, false);
});

test('connections dropped under the server (database restart): the annealer and event stream reconnect', async () => {
  const killed = await t.server.store.query(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'fulcrum' AND pid <> pg_backend_pid() AND datname = current_database()`);
  assert.ok(killed.rows[0].n >= 2, 'the LISTEN connections were among those terminated');
  const dep = await deployment();
  const [a] = await nodes(dep, 1);
  await bind('test-base', a, dep);
  await commit(dep);
  await converged(dep, 20000);
});

test('profiles attached to a node feed its run data, below its hints; unknown profiles are refused', async () => {
  assert.equal((await api('POST', '/api/v1/profiles', { name: 'slowish', values: { 'test-delay': 5, 'test-fail': false } })).status, 201);
  const dep = await deployment();
  const bad = await api('POST', '/api/v1/nodes', { name: `prof.${dep}.test`, deployment: dep, alive: true, profiles: ['nope'] });
  assert.equal(bad.status, 404);
  assert.equal(bad.body.field, 'profiles[0]');
  const ok = await api('POST', '/api/v1/nodes', { name: `prof.${dep}.test`, deployment: dep, alive: true, profiles: ['slowish'], hints: { 'test-delay': 7 } });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.profiles, ['slowish']);
  await bind('test-base', ok.body.name, dep);
  await commit(dep);
  await converged(dep);
  const nr = await one('test-base', ok.body.name);
  const job = ((await api('GET', `/api/v1/jobs?noderole=${nr.id}`)).body as any[])[0];
  const input = (await api('GET', `/api/v1/jobs/${job.id}`)).body.input;
  assert.equal(input.attribs['test-fail'], false, 'from the profile');
  assert.equal(input.attribs['test-delay'], 7, 'the node hint beats the profile');
});
