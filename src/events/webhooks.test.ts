// Webhooks against the real things: a PostgreSQL database and an HTTP receiver on 127.0.0.1.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { testDatabase, stopOwnCluster } from '../../test/support/db.js';
import type { Store } from '../store/db.js';
import { emit, type Event, type NewEvent } from './outbox.js';
import { enqueueDeliveries, deliverDue, signature, verifySignature, backoffMs, deliveryBody } from './webhooks.js';

const SECRET = 's3cret-that-must-never-leak';

interface Received { path: string; headers: http.IncomingHttpHeaders; raw: Buffer }

let db: Awaited<ReturnType<typeof testDatabase>>;
let store: Store;
let server: http.Server;
let base: string;
let received: Received[] = [];
/** Per path: how to answer the next request (a status, or 'hang' to never answer). */
let answer: Record<string, (n: number) => number | 'hang'> = {};
const hanging: http.ServerResponse[] = [];

before(async () => {
  db = await testDatabase();
  store = db.store;
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, raw: Buffer.concat(chunks) });
      const n = received.filter((r) => r.path === path).length;
      const a = (answer[path] ?? (() => 200))(n);
      if (a === 'hang') { hanging.push(res); return; }
      res.writeHead(a, { 'content-type': 'text/plain' }).end(a < 300 ? 'ok' : `no (and the secret is ${SECRET})`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await db?.close();
  await stopOwnCluster();
});

beforeEach(async () => {
  await store.query(`TRUNCATE webhook_deliveries, webhooks, events RESTART IDENTITY`);
  received = [];
  answer = {};
});

async function webhook(name: string, opts: { types?: string[]; path?: string; active?: boolean; max_attempts?: number } = {}): Promise<number> {
  const r = await store.query(
    `INSERT INTO webhooks (name, url, secret, types, active, max_attempts) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [name, `${base}${opts.path ?? `/${name}`}`, SECRET, opts.types ?? [], opts.active ?? true, opts.max_attempts ?? 8]);
  return r.rows[0].id;
}

/** Emit events in a committed transaction and return them as the stream reads them. */
async function events(list: NewEvent[]): Promise<Event[]> {
  const before = (await store.query(`SELECT coalesce(max(id), 0) AS m FROM events`)).rows[0].m;
  await store.tx((tx) => emit(tx, list));
  return (await store.query(
    `SELECT id, type, object_kind, object_id, deployment_id, node_id, payload, at FROM events WHERE id > $1 ORDER BY id`, [before])).rows;
}

async function deliveries(): Promise<Array<{ id: number; webhook: string; event_type: string; state: string; attempts: number; last_error: string | null; due_in_ms: number; next_attempt_at: Date }>> {
  return (await store.query(
    `SELECT d.id, w.name AS webhook, e.type AS event_type, d.state, d.attempts, d.last_error, d.next_attempt_at,
            extract(epoch FROM d.next_attempt_at - now()) * 1000 AS due_in_ms
       FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id
      ORDER BY w.name, e.id`)).rows.map((r) => ({ ...r, due_in_ms: Number(r.due_in_ms) }));
}

const makeDue = () => store.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE state = 'pending'`);

test('signature: HMAC-SHA256 over "<timestamp>.<body>", verified in constant time with a replay window', () => {
  const body = '{"id":1,"type":"node.created"}';
  const ts = '1700000000';
  const sig = signature('k', ts, body);
  assert.equal(sig, 'sha256=' + crypto.createHmac('sha256', 'k').update(`${ts}.${body}`).digest('hex'));
  assert.equal(signature('k', ts, Buffer.from(body)), sig, 'bytes and their utf-8 string sign the same');
  const now = 1700000000 * 1000 + 10_000;
  assert.ok(verifySignature('k', ts, body, sig, { now }));
  assert.ok(verifySignature('k', ts, Buffer.from(body), sig, { now }));
  assert.ok(!verifySignature('other', ts, body, sig, { now }), 'wrong secret');
  assert.ok(!verifySignature('k', ts, body + ' ', sig, { now }), 'one byte more');
  assert.ok(!verifySignature('k', '1700000001', body, sig, { now }), 'timestamp is signed');
  assert.ok(!verifySignature('k', ts, body, sig.slice(0, -2), { now }), 'short header: false, no throw');
  assert.ok(!verifySignature('k', ts, body, undefined, { now }));
  assert.ok(!verifySignature('k', ts, body, sig, { now: now + 600_000 }), 'stale: outside the default 300 s window');
  assert.ok(verifySignature('k', ts, body, sig, { now: now + 600_000, toleranceSec: 3600 }));
  assert.ok(!verifySignature('k', 'abc', body, signature('k', 'abc', body), { now }), 'a timestamp must be unix seconds');
});

test('backoff: 1 s doubling per failed attempt, capped at 10 min, jitter only shortens by <= 10 %', () => {
  assert.deepEqual([1, 2, 3, 4, 10, 11, 30].map((n) => backoffMs(n, () => 0)), [1000, 2000, 4000, 8000, 512_000, 600_000, 600_000]);
  assert.equal(backoffMs(1, () => 0.999999), 900);
  for (let n = 1; n < 11; n++) assert.ok(backoffMs(n + 1, () => 0.999999) > backoffMs(n, () => 0), `attempt ${n + 1} waits longer than ${n}`);
});

test('enqueueDeliveries matches type prefixes like the event stream, once per pair, active webhooks only', async () => {
  await webhook('all');
  await webhook('noderoles', { types: ['noderole.'] });
  await webhook('node-word', { types: ['node'] }); // node.* but not noderole.*
  await webhook('exact', { types: ['node.created', 'deployment.committed'] });
  await webhook('paused', { active: false });
  const evs = await events([
    { type: 'node.created', object_kind: 'node', object_id: 1 },
    { type: 'noderole.state', object_kind: 'noderole', object_id: 2, payload: { from: 'TODO', to: 'ACTIVE' } },
    { type: 'deployment.committed', object_kind: 'deployment', object_id: 3 },
    { type: 'node.alive', object_kind: 'node', object_id: 1 },
  ]);
  assert.equal(await enqueueDeliveries(store, evs), 4 + 1 + 2 + 2);
  const got = (await deliveries()).map((d) => `${d.webhook} ${d.event_type}`);
  assert.deepEqual(got, [
    'all node.created', 'all noderole.state', 'all deployment.committed', 'all node.alive',
    'exact node.created', 'exact deployment.committed',
    'node-word node.created', 'node-word node.alive',
    'noderoles noderole.state',
  ]);
  assert.ok((await deliveries()).every((d) => d.state === 'pending' && d.attempts === 0));
  assert.equal(await enqueueDeliveries(store, evs), 0, 'a repeated batch (at-least-once) adds nothing');
  assert.equal(await enqueueDeliveries(store, []), 0);
});

test('a webhook is not sent the webhook.dead events about itself', async () => {
  const a = await webhook('a', { types: ['webhook.'] });
  const b = await webhook('b', { types: ['webhook.'] });
  const evs = await events([{ type: 'webhook.dead', object_kind: 'webhook', object_id: a, payload: {} }]);
  assert.equal(await enqueueDeliveries(store, evs), 1);
  assert.deepEqual((await deliveries()).map((d) => d.webhook), ['b']);
  assert.ok(b > a);
});

test('a delivery is a signed POST of the event; the receiver verifies it over the exact bytes', async () => {
  await webhook('ok');
  const [ev] = await events([{ type: 'node.created', object_kind: 'node', object_id: 7, deployment_id: 1, node_id: 7, payload: { name: 'n1.example.com', ünïcode: '✓' } }]);
  await enqueueDeliveries(store, [ev]);
  const [queued] = await deliveries();
  assert.deepEqual(await deliverDue(store), { delivered: 1, failed: 0, dead: 0 });

  assert.equal(received.length, 1);
  const { headers, raw } = received[0];
  assert.equal(headers['content-type'], 'application/json');
  assert.equal(headers['x-fulcrum-event'], 'node.created');
  assert.equal(headers['x-fulcrum-delivery'], String(queued.id));
  const ts = headers['x-fulcrum-timestamp'] as string;
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60);
  assert.ok(verifySignature(SECRET, ts, raw, headers['x-fulcrum-signature'] as string), 'verifies over the received bytes');
  assert.ok(!verifySignature(SECRET, ts, Buffer.concat([raw, Buffer.from('\n')]), headers['x-fulcrum-signature'] as string));
  const body = JSON.parse(raw.toString('utf8'));
  assert.deepEqual(Object.keys(body), ['id', 'type', 'object_kind', 'object_id', 'deployment_id', 'node_id', 'payload', 'at']);
  assert.deepEqual(body, JSON.parse(deliveryBody(ev)));
  assert.equal(body.id, ev.id);
  assert.equal(body.payload.ünïcode, '✓');
  assert.equal(new Date(body.at).getTime(), new Date(ev.at).getTime());

  const [done] = await deliveries();
  assert.equal(done.state, 'delivered');
  assert.equal(done.attempts, 1);
  assert.equal(done.last_error, null);
  assert.deepEqual(await deliverDue(store), { delivered: 0, failed: 0, dead: 0 }, 'delivered once');
  assert.equal(received.length, 1);
});

test('a receiver failing twice gets the event on the 3rd attempt, each retry later than the last', async () => {
  await webhook('flaky');
  answer['/flaky'] = (n) => (n <= 2 ? 503 : 204);
  await enqueueDeliveries(store, await events([{ type: 'node.created', object_kind: 'node', object_id: 1 }]));
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);

  assert.deepEqual(await deliverDue(store, { log }), { delivered: 0, failed: 1, dead: 0 });
  const first = (await deliveries())[0];
  assert.equal(first.state, 'pending');
  assert.equal(first.attempts, 1);
  assert.equal(first.last_error, 'HTTP 503 Service Unavailable');
  assert.ok(first.due_in_ms > 700 && first.due_in_ms <= 1000, `first retry in ~1 s, got ${first.due_in_ms}`);
  assert.deepEqual(await deliverDue(store, { log }), { delivered: 0, failed: 0, dead: 0 }, 'not due yet');

  await makeDue();
  assert.deepEqual(await deliverDue(store, { log }), { delivered: 0, failed: 1, dead: 0 });
  const second = (await deliveries())[0];
  assert.equal(second.attempts, 2);
  assert.ok(second.due_in_ms > 1600 && second.due_in_ms <= 2000, `second retry in ~2 s, got ${second.due_in_ms}`);
  assert.ok(second.due_in_ms > first.due_in_ms);
  assert.ok(second.next_attempt_at.getTime() > first.next_attempt_at.getTime());

  await makeDue();
  assert.deepEqual(await deliverDue(store, { log }), { delivered: 1, failed: 0, dead: 0 });
  const third = (await deliveries())[0];
  assert.equal(third.state, 'delivered');
  assert.equal(third.attempts, 3);
  assert.equal(third.last_error, null);

  assert.equal(received.length, 3);
  assert.equal(new Set(received.map((r) => r.headers['x-fulcrum-delivery'])).size, 1, 'one delivery id across attempts');
  assert.equal(new Set(received.map((r) => r.raw.toString())).size, 1, 'the same body every time');
  assert.equal(logs.length, 2);
  assert.match(logs[0], /webhook flaky: delivery \d+ of event \d+ \(node\.created\), attempt 1\/8, failed: HTTP 503.*next attempt in/);
  assert.ok(logs.every((m) => !m.includes(SECRET)));
});

test('a receiver that always fails: dead after max_attempts, and a webhook.dead event is recorded', async () => {
  const id = await webhook('down', { max_attempts: 3 });
  answer['/down'] = () => 500;
  const [ev] = await events([{ type: 'deployment.committed', object_kind: 'deployment', object_id: 4 }]);
  await enqueueDeliveries(store, [ev]);
  const logs: string[] = [];

  assert.deepEqual(await deliverDue(store, { log: (m) => logs.push(m) }), { delivered: 0, failed: 1, dead: 0 });
  await makeDue();
  assert.deepEqual(await deliverDue(store, { log: (m) => logs.push(m) }), { delivered: 0, failed: 1, dead: 0 });
  await makeDue();
  assert.deepEqual(await deliverDue(store, { log: (m) => logs.push(m) }), { delivered: 0, failed: 0, dead: 1 });

  const [d] = await deliveries();
  assert.equal(d.state, 'dead');
  assert.equal(d.attempts, 3);
  assert.equal(d.last_error, 'HTTP 500 Internal Server Error');
  assert.ok(!d.last_error?.includes(SECRET), 'the receiver echoed the secret; it is not recorded');
  await makeDue();
  assert.deepEqual(await deliverDue(store), { delivered: 0, failed: 0, dead: 0 }, 'a dead delivery is not tried again');
  assert.equal(received.length, 3);

  const dead = (await store.query(`SELECT * FROM events WHERE type = 'webhook.dead'`)).rows;
  assert.equal(dead.length, 1);
  assert.equal(dead[0].object_kind, 'webhook');
  assert.equal(dead[0].object_id, id);
  assert.deepEqual(dead[0].payload, { delivery: d.id, event: ev.id, event_type: 'deployment.committed', attempts: 3, last_error: 'HTTP 500 Internal Server Error' });
  assert.match(logs[2], /attempt 3\/3, failed: HTTP 500.*giving up/);
  assert.ok(logs.every((m) => !m.includes(SECRET)));
});

test('a hanging receiver times out, and that counts as a failed attempt', async () => {
  await webhook('hang');
  answer['/hang'] = () => 'hang';
  await enqueueDeliveries(store, await events([{ type: 'node.created', object_kind: 'node', object_id: 1 }]));
  const started = Date.now();
  assert.deepEqual(await deliverDue(store, { timeoutMs: 200 }), { delivered: 0, failed: 1, dead: 0 });
  assert.ok(Date.now() - started < 5000);
  const [d] = await deliveries();
  assert.equal(d.state, 'pending');
  assert.equal(d.attempts, 1);
  assert.equal(d.last_error, 'no answer within 200 ms');
  assert.equal(received.length, 1);
});

test('an unreachable receiver is a failed attempt with the connection error', async () => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await store.query(`INSERT INTO webhooks (name, url, secret) VALUES ('gone', $1, $2)`, [`http://127.0.0.1:${port}/`, SECRET]);
  await enqueueDeliveries(store, await events([{ type: 'node.created', object_kind: 'node', object_id: 1 }]));
  assert.deepEqual(await deliverDue(store), { delivered: 0, failed: 1, dead: 0 });
  assert.match((await deliveries())[0].last_error ?? '', /ECONNREFUSED|fetch failed/);
});

test('concurrent deliverDue calls lease rows: each delivery is POSTed once', async () => {
  await webhook('slow');
  answer['/slow'] = () => 200;
  const evs = await events(Array.from({ length: 20 }, (_, i) => ({ type: 'node.created', object_kind: 'node', object_id: i + 1 })));
  assert.equal(await enqueueDeliveries(store, evs), 20);
  const results = await Promise.all([deliverDue(store, { limit: 7 }), deliverDue(store, { limit: 7 }), deliverDue(store, { limit: 7 }), deliverDue(store, { limit: 7 })]);
  // LIMIT with FOR UPDATE may return fewer rows than asked when a re-check drops one: sweep up.
  const rest = await deliverDue(store);
  assert.equal(results.reduce((n, r) => n + r.delivered, 0) + rest.delivered, 20);
  assert.equal(received.length, 20);
  assert.equal(new Set(received.map((r) => r.headers['x-fulcrum-delivery'])).size, 20);
  assert.ok((await deliveries()).every((d) => d.state === 'delivered'));
});

test('deliveries of a paused webhook wait until it is active again', async () => {
  const id = await webhook('later');
  await enqueueDeliveries(store, await events([{ type: 'node.created', object_kind: 'node', object_id: 1 }]));
  await store.query(`UPDATE webhooks SET active = false WHERE id = $1`, [id]);
  assert.deepEqual(await deliverDue(store), { delivered: 0, failed: 0, dead: 0 });
  await store.query(`UPDATE webhooks SET active = true WHERE id = $1`, [id]);
  assert.deepEqual(await deliverDue(store), { delivered: 1, failed: 0, dead: 0 });
});
