// The REST API under /api/v1 (docs/api.md): Fastify, JSON-schema validation that is also the
// OpenAPI document, bearer-token auth with capabilities, and operator-readable errors.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { Store } from '../store/db.js';
import { FulcrumError, notFound } from '../model/errors.js';
import { keyClause } from '../model/lookup.js';
import { commitDeployment, proposeDeployment } from '../model/deployments.js';
import { createNode } from '../model/nodes.js';
import { finishJob } from '../annealer/annealer.js';
import { buildRunInput } from '../annealer/run-input.js';
import { allowed, authenticate, issueToken, verifyPassword, type Principal } from '../auth/auth.js';
import { importPack } from '../content/import.js';
import type { EventStream, EventFilter } from '../events/stream.js';
import type { Event } from '../events/outbox.js';
import { RESOURCES, retryNodeRole, type Resource } from './resources.js';
import { PROVISIONING_RESOURCES } from './provisioning-resources.js';
import { serveBoot } from '../provisioning/http-boot.js';
import type { FileTree } from '../provisioning/tree.js';
import { registry } from '../metrics.js';
import { registerPowerApi } from '../power/api.js';
import { registerAgentApi } from '../agent/agent-api.js';
import { SERVICE_RESOURCES, registerServiceApi } from '../services/api.js';
import { DNS_RESOURCES, registerDnsApi } from '../dns/api.js';
import { registerAnsibleApi } from '../annealer/ansible-jig.js';
import { NETWORK_RESOURCES, registerNetworkApi } from '../network/api.js';
import { mergePatch } from './merge-patch.js';
import { registerUi } from './ui-static.js';
import { registerSetupApi } from './setup.js';
import { registerSessionApi } from './session.js';
import { nodeRoleClause, nodeSearchClause, searchValue } from './node-search.js';
import { registerUiViews } from './ui-views.js';
import { projectRoot } from '../paths.js';
import path from 'node:path';
import * as S from './schemas.js';

declare module 'fastify' {
  interface FastifyRequest { principal?: Principal }
  interface FastifyContextConfig { capability?: string; public?: boolean }
}

export interface ApiDeps { store: Store; events: EventStream; ready: () => boolean; log?: (m: string) => void; bootTree?: FileTree; dataDir: string }

const etag = (kind: string, row: { id: unknown; version?: number }) => `"${kind}-${row.id}-${row.version ?? 0}"`;

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { store } = deps;
  const app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024, ajv: { customOptions: { allErrors: false, coerceTypes: 'array', removeAdditional: false } } });
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, (_req, body, done) => {
    try { done(null, JSON.parse(body as string)); } catch (err) { done(err as Error, undefined); }
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Fulcrum API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((err: any, _req, reply) => {
    if (err instanceof FulcrumError) return reply.status(err.status).send({ error: err.kind, message: err.message, ...(err.field ? { field: err.field } : {}) });
    if (err.validation) {
      const v = err.validation[0];
      const field = [err.validationContext === 'querystring' ? 'query' : '', (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.'),
        v.params?.missingProperty ?? v.params?.additionalProperty ?? ''].filter(Boolean).join('.');
      const what = v.keyword === 'additionalProperties' ? `unknown field "${v.params.additionalProperty}"` : v.message;
      return reply.status(400).send({ error: 'invalid', message: `${field || 'body'}: ${what}`, field: field || 'body' });
    }
    if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'invalid', message: err.message });
    const code = err.code as string | undefined;
    if (code === '23505') return reply.status(409).send({ error: 'conflict', message: `already exists: ${err.detail ?? err.message}` });
    if (code === '23503') return reply.status(409).send({ error: 'conflict', message: `still referenced: ${err.detail ?? err.message}` });
    if (code === '23514' || code === '22P02') return reply.status(400).send({ error: 'invalid', message: err.message });
    deps.log?.(`internal error: ${err.stack ?? err.message}`);
    return reply.status(500).send({ error: 'internal', message: 'internal error; see the server log' });
  });

  app.addHook('onRequest', async (req, reply) => {
    const cfg = req.routeOptions.config;
    if (cfg?.public || !req.url.startsWith('/api/')) return;
    const h = req.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    const p = token ? await authenticate(store, token) : null;
    if (!p) return reply.status(401).send({ error: 'unauthorized', message: 'missing or invalid token; log in with POST /api/v1/login (fulcrum login)' });
    if (cfg?.capability && !allowed(p, cfg.capability)) {
      return reply.status(403).send({ error: 'forbidden', message: `user ${p.name} lacks the capability ${cfg.capability}` });
    }
    req.principal = p;
  });

  app.get('/healthz', { config: { public: true }, schema: { hide: true } as any }, async (_req, reply) => {
    if (!deps.ready()) return reply.status(503).send({ status: 'starting' });
    await store.query('SELECT 1');
    return { status: 'ok' };
  });
  app.get('/api/v1/openapi.json', { config: { public: true }, schema: { hide: true } as any }, async () => app.swagger());

  app.post('/api/v1/login', { config: { public: true }, schema: { body: S.Login } }, async (req, reply) => {
    const { user, password } = req.body as { user: string; password: string };
    const u = await store.query('SELECT id, password_hash FROM users WHERE name = $1', [user]);
    if (!u.rowCount || !(await verifyPassword(password, u.rows[0].password_hash))) {
      return reply.status(401).send({ error: 'unauthorized', message: 'wrong user name or password' });
    }
    return { user, token: await issueToken(store, { user_id: u.rows[0].id }, 'login') };
  });

  for (const r of [...RESOURCES, ...PROVISIONING_RESOURCES, ...SERVICE_RESOURCES, ...NETWORK_RESOURCES, ...DNS_RESOURCES]) registerResource(app, store, r);
  registerDnsApi(app, store);
  registerNetworkApi(app, store, deps.events, deps.log);
  registerAgentApi(app, store, deps.log ?? (() => {}), deps.dataDir, deps.bootTree, deps.events);
  registerPowerApi(app, store, deps.dataDir);
  registerSetupApi(app, store);
  registerSessionApi(app, store);
  registerUiViews(app, store);
  registerUi(app, path.join(projectRoot, 'dist', 'ui'));
  registerServiceApi(app, store);
  registerAnsibleApi(app, store);

  // Boot files are public: firmware cannot authenticate. Read-only; see provisioning/boot-tree.ts.
  app.route({
    method: ['GET', 'HEAD'], url: '/boot/*', config: { public: true }, schema: { hide: true } as any,
    handler: async (req, reply) => {
      if (!deps.bootTree) return reply.status(404).send({ error: 'not-found', message: 'boot serving is not enabled on this server' });
      reply.hijack();
      await serveBoot(deps.bootTree, req.raw, reply.raw, (req.params as { '*': string })['*']);
    },
  });
  app.get('/metrics', { config: { public: true }, schema: { hide: true } as any }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  app.post('/api/v1/deployments/:key/commit', { config: { capability: 'deployments:write' } }, async (req) =>
    store.tx((tx) => commitDeployment(tx, (req.params as any).key)));
  app.post('/api/v1/deployments/:key/propose', { config: { capability: 'deployments:write' } }, async (req) =>
    store.tx((tx) => proposeDeployment(tx, (req.params as any).key)));
  app.post('/api/v1/noderoles/:key/retry', { config: { capability: 'noderoles:write' } }, async (req) => {
    const id = await idOf(store, RESOURCES.find((x) => x.kind === 'noderoles')!, (req.params as any).key);
    await store.tx((tx) => retryNodeRole(tx, id));
    return showRow(store, RESOURCES.find((x) => x.kind === 'noderoles')!, id);
  });
  app.get('/api/v1/noderoles/:key/attribs', { config: { capability: 'noderoles:read' } }, async (req) => {
    const id = await idOf(store, RESOURCES.find((x) => x.kind === 'noderoles')!, (req.params as any).key);
    const input = await buildRunInput(store, id);
    return input.attribs;
  });
  app.post('/api/v1/jobs/:key/complete', { config: { capability: 'jobs:write' }, schema: { body: S.JobComplete } }, async (req, reply) => {
    const b = req.body as any;
    const id = Number((req.params as any).key);
    const done = await store.tx((tx) => finishJob(tx, id, b.status === 'succeeded'
      ? { status: 'succeeded', wall: b.wall, log: b.log } : { status: 'failed', message: b.message ?? 'reported failed', wall: b.wall, log: b.log }));
    if (!done) return reply.status(409).send({ error: 'conflict', message: `job ${id} is not running (finished, cancelled or timed out)` });
    return { id, status: b.status };
  });
  app.post('/api/v1/content-packs', { config: { capability: 'content-packs:write' }, schema: { body: { type: 'object' } } }, async (req, reply) => {
    const result = await store.tx((tx) => importPack(tx, req.body));
    return reply.status(result.changed ? 201 : 200).send(result);
  });
  app.post('/api/v1/sim/nodes', { config: { capability: 'nodes:write' }, schema: { body: S.SimNodes } }, async (req, reply) => {
    const b = req.body as { count: number; deployment?: string | number; prefix?: string };
    const prefix = b.prefix ?? 'sim';
    const names = await store.tx(async (tx) => {
      const start = Number((await tx.query(`SELECT count(*) AS n FROM nodes WHERE provider = 'sim'`)).rows[0].n);
      const out: string[] = [];
      for (let i = 1; i <= b.count; i++) {
        const n = await createNode(tx, { name: `${prefix}-${String(start + i).padStart(5, '0')}.sim.fulcrum.internal`, provider: 'sim', alive: true, bootenv: 'local', deployment: b.deployment });
        out.push(n.name);
      }
      return out;
    });
    return reply.status(201).send({ created: names.length, nodes: names });
  });

  app.get('/api/v1/anneal', { config: { capability: 'noderoles:read' } }, async (req) => {
    const q = req.query as { deployment?: string };
    let depId: number | null = null;
    if (q.deployment) {
      const d = await store.query(`SELECT id FROM deployments WHERE ${keyClause(q.deployment).where}`, [keyClause(q.deployment).value]);
      if (!d.rowCount) throw notFound('deployment', q.deployment, 'deployment');
      depId = d.rows[0].id;
    }
    const where = depId === null ? '' : 'WHERE deployment_id = $1';
    const args = depId === null ? [] : [depId];
    const c = (await store.query(
      `SELECT count(*) FILTER (WHERE state = 'ACTIVE')::int AS finished, count(*) FILTER (WHERE state = 'TRANSITION')::int AS working,
              count(*) FILTER (WHERE state = 'TODO')::int AS scheduled, count(*) FILTER (WHERE state = 'ERROR')::int AS failed,
              count(*) FILTER (WHERE state = 'BLOCKED')::int AS blocked, count(*) FILTER (WHERE state = 'PROPOSED')::int AS proposed,
              count(*)::int AS total FROM noderoles ${where}`, args)).rows[0];
    const running = (await store.query(
      `SELECT j.id, j.noderole_id AS noderole, n.name AS node, r.name AS role, j.started_at, j.async, right(j.log, 2000) AS log
         FROM jobs j JOIN nodes n ON n.id = j.node_id JOIN roles r ON r.id = j.role_id
        WHERE j.state = 'running' ${depId === null ? '' : 'AND j.deployment_id = $1'} ORDER BY j.id LIMIT 100`, args)).rows;
    const errors = (await store.query(
      `SELECT nr.id, n.name AS node, r.name AS role, d.name AS deployment, nr.state, nr.failures, nr.retry_at, right(nr.runlog, 4000) AS runlog
         FROM noderoles nr JOIN nodes n ON n.id = nr.node_id JOIN roles r ON r.id = nr.role_id JOIN deployments d ON d.id = nr.deployment_id
        WHERE nr.state = 'ERROR' ${depId === null ? '' : 'AND nr.deployment_id = $1'} ORDER BY nr.id LIMIT 100`, args)).rows;
    return { ...c, running, errors };
  });

  app.get('/api/v1/events', { config: { capability: 'events:read' } }, async (req, reply) => {
    const q = req.query as Record<string, string>;
    const filter: EventFilter = {
      types: q.type ? q.type.split(',') : undefined,
      object_kind: q.object_kind,
      object_id: q.object_id ? Number(q.object_id) : undefined,
      deployment_id: q.deployment ? await idOf(store, RESOURCES.find((x) => x.kind === 'deployments')!, q.deployment) : undefined,
      node_id: q.node ? await idOf(store, RESOURCES.find((x) => x.kind === 'nodes')!, q.node) : undefined,
    };
    const since = q.since ? Number(q.since) : undefined;
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      const recent = await store.query(`SELECT * FROM events WHERE ($1::bigint IS NULL OR id > $1) ORDER BY id DESC LIMIT 1000`, [since ?? null]);
      const { matches } = await import('../events/stream.js');
      return recent.rows.filter((e) => matches(filter, e as Event)).slice(0, Number(q.limit ?? 100)).reverse();
    }
    return streamEvents(deps, req, reply, filter, since);
  });

  return app;
}

async function streamEvents(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, filter: EventFilter, since?: number) {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const send = (e: Event) => res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  const buffered: Event[] = [];
  let replaying = since !== undefined;
  const unsubscribe = deps.events.subscribe(filter, (e) => (replaying ? buffered.push(e) : send(e)));
  if (since !== undefined) {
    const { matches } = await import('../events/stream.js');
    const old = await deps.store.query(`SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT 10000`, [since]);
    const seen = new Set<number>();
    for (const e of old.rows as Event[]) if (matches(filter, e)) { send(e); seen.add(e.id); }
    replaying = false;
    for (const e of buffered) if (!seen.has(e.id)) send(e);
  }
  res.write(': connected\n\n');
  const ping = setInterval(() => res.write(': ping\n\n'), 15000);
  req.raw.on('close', () => { clearInterval(ping); unsubscribe(); });
}

async function idOf(store: Store, r: Resource, key: string | number): Promise<number> {
  const { where, value } = keyClause(key, r.named);
  const found = await store.query(`SELECT id FROM (${r.view}) v WHERE ${where}`, [value]);
  if (!found.rowCount) throw notFound(r.what, key);
  return found.rows[0].id;
}

async function showRow(store: Store, r: Resource, id: unknown) {
  const found = await store.query(`SELECT v.*${r.detail ? `, ${r.detail}` : ''} FROM (${r.view}) v WHERE v.id = $1`, [id]);
  return found.rows[0];
}

function registerResource(app: FastifyInstance, store: Store, r: Resource): void {
  const base = `/api/v1/${r.kind}`;
  const read = `${r.kind}:read`;
  const write = `${r.kind}:write`;
  const keyOf = (req: FastifyRequest) => (req.params as { key: string }).key;

  app.get(base, { config: { capability: read }, schema: { querystring: S.ListQuery, tags: [r.kind] } }, async (req, reply) => {
    const q = req.query as Record<string, string>;
    const conds: string[] = [];
    const args: unknown[] = [];
    for (const [k, v] of Object.entries(q)) {
      if (k === 'limit' || k === 'offset') continue;
      if (r.kind === 'nodes' && (k === 'q' || k === 'role')) {
        if (k === 'q' && !String(v).trim()) continue;
        args.push(k === 'q' ? searchValue(String(v)) : v);
        conds.push(k === 'q' ? nodeSearchClause(args.length) : nodeRoleClause(args.length));
        continue;
      }
      if (!r.filters.includes(k)) throw new FulcrumError('invalid', `unknown filter "${k}" for ${r.kind}; filters: ${[...r.filters, ...(r.kind === 'nodes' ? ['q', 'role'] : [])].join(', ')}`, `query.${k}`);
      args.push(v);
      conds.push(`v.${k}::text = $${args.length}`);
    }
    const where = conds.length ? `WHERE ${conds.join(' AND ')}` : '';
    const limit = Math.min(Number(q.limit ?? 100), 1000);
    const offset = Number(q.offset ?? 0);
    const [rows, total] = await Promise.all([
      store.query(`SELECT v.* FROM (${r.view}) v ${where} ORDER BY v.id LIMIT ${limit} OFFSET ${offset}`, args),
      store.query(`SELECT count(*)::int AS n FROM (${r.view}) v ${where}`, args),
    ]);
    reply.header('x-total-count', String(total.rows[0].n));
    return rows.rows;
  });

  app.get(`${base}/:key`, { config: { capability: read }, schema: { tags: [r.kind] } }, async (req, reply) => {
    const row = await showRow(store, r, await idOf(store, r, keyOf(req)));
    reply.header('etag', etag(r.kind, row));
    return row;
  });

  if (r.create) {
    const create = r.create;
    app.post(base, { config: { capability: write }, schema: { body: create.schema, tags: [r.kind] } }, async (req, reply) => {
      const id = await store.tx((tx) => create.run(tx, req.body));
      const row = await showRow(store, r, id);
      // A generated webhook secret is shown once, here.
      if (r.kind === 'webhooks') {
        const s = await store.query('SELECT secret FROM webhooks WHERE id = $1', [id]);
        Object.assign(row, { secret: s.rows[0].secret });
      }
      reply.header('etag', etag(r.kind, row));
      return reply.status(201).send(row);
    });
  }

  if (r.patch) {
    const patch = r.patch;
    app.patch(`${base}/:key`, { config: { capability: write }, schema: { body: patch.schema, tags: [r.kind] } }, async (req, reply) => {
      const id = await idOf(store, r, keyOf(req));
      await store.tx(async (tx) => {
        const table = (await tx.query(`SELECT v.* FROM (${r.view}) v WHERE v.id = $1`, [id])).rows[0];
        const ifMatch = req.headers['if-match'];
        if (ifMatch && ifMatch !== '*' && ifMatch !== etag(r.kind, table)) {
          throw new FulcrumError('precondition-failed', `${r.what} ${keyOf(req)} changed since you read it (now ${etag(r.kind, table)}); read it again and retry`);
        }
        const merged = mergePatch(patch.editable(table), req.body);
        await patch.run(tx, table, merged);
      });
      const row = await showRow(store, r, id);
      reply.header('etag', etag(r.kind, row));
      return row;
    });
  }

  if (r.remove) {
    const remove = r.remove;
    app.delete(`${base}/:key`, { config: { capability: write }, schema: { tags: [r.kind] } }, async (req, reply) => {
      const id = await idOf(store, r, keyOf(req));
      await store.tx(async (tx) => remove(tx, (await tx.query(`SELECT v.* FROM (${r.view}) v WHERE v.id = $1`, [id])).rows[0]));
      return reply.status(204).send();
    });
  }
}
