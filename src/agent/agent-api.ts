// The agent's side of the API (/api/v1/agent/...): key=value text in and out, node tokens.
// - register: the only unauthenticated write. It finds a machine again by MAC or machine UUID,
//   or creates it; rate-limited per source address. A machine already known may register again
//   (a new boot of the discovery ramdisk has no stored token) only while Fulcrum is serving it a
//   discovery bootenv — an installed system keeps its token (docs/decisions/0007).
// - everything else carries the node's token and reaches only that node's data and jobs.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { projectRoot } from '../paths.js';
import type { Store } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { authenticateNode, issueToken } from '../auth/auth.js';
import { createNode, setMacs, updateNode } from '../model/nodes.js';
import { findNode } from '../model/lookup.js';
import { finishJob } from '../annealer/annealer.js';
import { changeState } from '../model/noderoles.js';
import { setPath, type Data } from '../model/data.js';
import { jobBundle, parseKeyValues } from './bundle.js';
import { ensureSshKey } from './ssh-jig.js';
import { kexecPlanFromIpxe } from './boot-plan.js';
import type { FileTree } from '../provisioning/tree.js';
import type { EventStream } from '../events/stream.js';
import { FulcrumError } from '../model/errors.js';

const DISCOVERY_BOOTENVS = new Set(['discovery', 'unknown']);
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const text = (reply: FastifyReply, status: number, lines: Record<string, unknown>) =>
  reply.status(status).type('text/plain; charset=utf-8').send(Object.entries(lines).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');

/** Seconds an agent has to confirm a job it was handed before the claim lapses. */
export const CLAIM_CONFIRM_S = 10;

/** Registrations allowed per source address per minute. */
const REGISTER_LIMIT = 60;

export function registerAgentApi(app: FastifyInstance, store: Store, log: (m: string) => void, dataDir: string, bootTree?: FileTree, events?: EventStream): void {
  const recent = new Map<string, number[]>();

  const nodeOf = async (req: FastifyRequest, reply: FastifyReply) => {
    const h = req.headers.authorization ?? '';
    const node = h.startsWith('Bearer ') ? await authenticateNode(store, h.slice(7)) : null;
    if (!node) {
      text(reply, 401, { error: 'missing or invalid node token; register again' });
      return null;
    }
    return node;
  };
  const cfg = { config: { public: true }, schema: { hide: true } as any };

  app.post('/api/v1/agent/register', cfg, async (req, reply) => {
    const ip = req.socket.remoteAddress ?? '?';
    const now = Date.now();
    const times = (recent.get(ip) ?? []).filter((t) => now - t < 60_000);
    if (times.length >= REGISTER_LIMIT) return text(reply, 429, { error: `too many registrations from ${ip}; wait a minute` });
    recent.set(ip, [...times, now]);
    const kv = parseKeyValues(String(req.body ?? ''));
    const macs = (kv.get('macs') ?? '').split(',').map((m) => m.trim().toLowerCase()).filter((m) => MAC.test(m));
    if (macs.length === 0) return text(reply, 400, { error: 'macs: at least one MAC address is required' });
    const uuid = (kv.get('uuid') ?? '').trim().toLowerCase() || null;
    let inventory: Data = {};
    try { inventory = JSON.parse(kv.get('inventory') || '{}'); } catch { return text(reply, 400, { error: 'inventory: not valid JSON' }); }
    const result = await store.tx(async (tx) => {
      const known = await tx.query(
        `SELECT n.id, n.name, n.bootenv FROM nodes n WHERE n.id IN (SELECT node_id FROM node_macs WHERE mac = ANY($1::macaddr[]))
            OR ($2::text IS NOT NULL AND n.machine_uuid = $2) ORDER BY n.id LIMIT 1`, [macs, uuid]);
      if (known.rowCount) {
        const n = known.rows[0];
        if (!DISCOVERY_BOOTENVS.has(n.bootenv)) {
          return { status: 409, lines: { error: `node ${n.name} is already registered and boots ${n.bootenv}; its agent must use its token` } };
        }
        const node = await findNode(tx, n.id);
        await setMacs(tx, node, [...new Set([...macs, ...((await tx.query(`SELECT mac::text FROM node_macs WHERE node_id = $1`, [n.id])).rows.map((r) => r.mac))])]);
        await updateNode(tx, n.id, { alive: true, inventory });
        await emit(tx, { type: 'node.registered', object_kind: 'node', object_id: n.id, node_id: n.id, payload: { name: n.name, again: true } });
        return { status: 200, lines: { node: n.id, name: n.name, token: await issueToken(tx, { node_id: n.id }, 'agent') } };
      }
      const name = `d${macs[0].replace(/:/g, '')}.fulcrum.internal`;
      const node = await createNode(tx, { name, macs, inventory, alive: true, bootenv: 'discovery', provider: 'metal' });
      if (uuid) await tx.query('UPDATE nodes SET machine_uuid = $2 WHERE id = $1', [node.id, uuid]);
      await emit(tx, { type: 'node.registered', object_kind: 'node', object_id: node.id, node_id: node.id, payload: { name, again: false } });
      return { status: 201, lines: { node: node.id, name, token: await issueToken(tx, { node_id: node.id }, 'agent') } };
    });
    return text(reply, result.status, result.lines);
  });

  // The agent itself, for namespace nodes and installed systems (the discovery image carries it).
  app.get('/api/v1/agent/fulcrum-agent.sh', cfg, async (_req, reply) =>
    reply.type('text/x-shellscript').send(await fs.readFile(path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh'))));

  // The public key the ssh jig logs in with: install it on nodes that run no agent.
  app.get('/api/v1/ssh-key', { config: { capability: 'nodes:read' }, schema: { hide: true } as any }, async (_req, reply) =>
    reply.type('text/plain').send((await ensureSshKey(dataDir)).publicKey + '\n'));

  app.get('/api/v1/agent/whoami', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (node) return text(reply, 200, { node: node.id, name: node.name });
  });

  app.put('/api/v1/agent/inventory', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    let inventory: Data;
    try { inventory = JSON.parse(String(req.body ?? '')); } catch { return text(reply, 400, { error: 'inventory: not valid JSON' }); }
    await store.tx((tx) => updateNode(tx, node.id, { inventory, alive: true }));
    return text(reply, 200, { ok: 1 });
  });

  // Long-poll for work: a running job of an agent jig on this node that no agent has claimed.
  app.get('/api/v1/agent/jobs/next', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    const wait = Math.min(60, Math.max(0, Number((req.query as { wait?: string }).wait ?? 25)));
    const deadline = Date.now() + wait * 1000;
    let closed = false;
    // Woken by a state change of one of this node's noderoles (a job starting moves its noderole
    // to TRANSITION), with a slow poll as the fallback; subscribed before the first look, so a job
    // started in between is not missed.
    let changed = false;
    let wake: (() => void) | undefined;
    const unsubscribe = events?.subscribe({ node_id: node.id, types: ['noderole.state'] }, () => { changed = true; wake?.(); });
    req.raw.on('close', () => { closed = true; wake?.(); });
    try {
      for (;;) {
        changed = false;
        // Unclaimed, or claimed and not confirmed in time: the bundle went to a request whose
        // machine is gone (powered off mid-poll: no FIN ever ends that request).
        const r = await store.query(
          `UPDATE jobs SET claimed_at = clock_timestamp(), claimed_by = $3, acked_at = NULL WHERE id = (
             SELECT id FROM jobs WHERE node_id = $1 AND state = 'running' AND jig = ANY($2)
               AND (claimed_at IS NULL OR (acked_at IS NULL AND claimed_at < clock_timestamp() - make_interval(secs => $4)))
               AND EXISTS (SELECT 1 FROM tokens WHERE id = $3) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING id, input`, [node.id, AGENT_JIGS, node.token_id, CLAIM_CONFIRM_S]);
        if (r.rowCount) {
          const job = r.rows[0];
          await store.tx((tx) => emit(tx, { type: 'job.claimed', object_kind: 'job', object_id: job.id, node_id: node.id, payload: { node: node.name } }));
          return reply.status(200).type('text/plain; charset=utf-8').send(jobBundle(job.id, job.input));
        }
        if (closed || Date.now() >= deadline) return reply.status(204).send();
        if (!changed) {
          await new Promise<void>((res) => {
            const t = setTimeout(() => res(), Math.min(events ? 1000 : 200, Math.max(0, deadline - Date.now())));
            wake = () => { clearTimeout(t); res(); };
          });
          wake = undefined;
        }
      }
    } finally {
      unsubscribe?.();
    }
  });

  // Before a reboot: wait (bounded) until the node's bootenv is `expect` and its boot files are
  // served, then say how to kexec into it when the bootenv allows that. The plan is read from the
  // iPXE script the boot tree serves this node — the file its firmware would fetch.
  app.get('/api/v1/agent/boot', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    const q = req.query as { expect?: string; wait?: string };
    const wait = Math.min(60, Math.max(0, Number(q.wait ?? 25)));
    const deadline = Date.now() + wait * 1000;
    let closed = false;
    req.raw.on('close', () => { closed = true; });
    for (;;) {
      const r = (await store.query(
        `SELECT n.bootenv, b.kexec, b.netboot, (SELECT min(m.mac::text) FROM node_macs m WHERE m.node_id = n.id) AS mac
           FROM nodes n LEFT JOIN bootenvs b ON b.name = n.bootenv WHERE n.id = $1`, [node.id])).rows[0];
      if (!q.expect || r.bootenv === q.expect) {
        if (!bootTree || !r.mac) return text(reply, 200, { bootenv: r.bootenv, served: 0, error: bootTree ? 'the node has no MAC address to boot from' : 'boot serving is not enabled on this server' });
        const file = r.netboot ? await bootTree.resolve({ path: `nodes/${r.mac}/ipxe`, remote: req.socket.remoteAddress ?? '', protocol: 'http' }) : null;
        const plan = file && r.kexec ? kexecPlanFromIpxe((await file.read()).toString('utf8')) : undefined;
        return text(reply, 200, {
          bootenv: r.bootenv, served: 1, netboot: r.netboot ? 1 : 0, kexec: plan ? 1 : 0,
          ...(plan ? { kernel: plan.kernel, initrds: plan.initrds.join(' '), cmdline: plan.cmdline } : {}),
        });
      }
      if (closed || Date.now() >= deadline) return text(reply, 200, { bootenv: r.bootenv, served: 0, error: `the node boots ${r.bootenv}, not ${q.expect}` });
      await new Promise((res) => setTimeout(res, 200));
    }
  });

  // The agent confirms a claim before it runs the job (and runs nothing it cannot confirm).
  app.post('/api/v1/agent/jobs/:id/ack', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    const id = Number((req.params as { id: string }).id);
    const r = await store.query(
      `UPDATE jobs SET acked_at = clock_timestamp() WHERE id = $1 AND node_id = $2 AND state = 'running' AND claimed_by = $3 AND acked_at IS NULL
         AND claimed_at >= clock_timestamp() - make_interval(secs => $4) RETURNING id`, [id, node.id, node.token_id, CLAIM_CONFIRM_S]);
    if (!r.rowCount) return text(reply, 409, { error: `job ${id} is not claimed by this request's agent (claim lapsed, or taken by another)` });
    return text(reply, 200, { ok: 1 });
  });

  const ownJob = async (node: { id: number }, id: number) =>
    (await store.query(`SELECT id, noderole_id FROM jobs WHERE id = $1 AND node_id = $2 AND state = 'running'`, [id, node.id])).rows[0];

  app.post('/api/v1/agent/jobs/:id/log', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    const id = Number((req.params as { id: string }).id);
    const chunk = String(req.body ?? '');
    const job = await ownJob(node, id);
    if (!job) return text(reply, 409, { error: `job ${id} is not a running job of this node` });
    await store.tx(async (tx) => {
      await tx.query(`UPDATE jobs SET log = right(log || $2, 1000000) WHERE id = $1`, [id, chunk]);
      await emit(tx, { type: 'job.log', object_kind: 'job', object_id: id, node_id: node.id, payload: { noderole: job.noderole_id, text: chunk.slice(0, 4000) } });
    });
    return text(reply, 200, { ok: 1 });
  });

  app.post('/api/v1/agent/jobs/:id/complete', cfg, async (req, reply) => {
    const node = await nodeOf(req, reply);
    if (!node) return;
    const id = Number((req.params as { id: string }).id);
    const kv = parseKeyValues(String(req.body ?? ''));
    const code = Number(kv.get('exit_code') ?? NaN);
    if (!Number.isInteger(code) || code < 0 || code > 255) return text(reply, 400, { error: 'exit_code: an integer 0-255 is required' });
    const job = await ownJob(node, id);
    if (!job) return text(reply, 409, { error: `job ${id} is not a running job of this node (finished, cancelled or timed out)` });
    let wall: Data = {};
    const maps = new Map((await store.query(`SELECT name, map FROM attribs`)).rows.map((a) => [a.name as string, a.map as string]));
    for (const [k, v] of kv) {
      if (!k.startsWith('wall.')) continue;
      const name = k.slice(5);
      const raw = Buffer.from(v, 'base64').toString('utf8');
      let value: unknown = raw;
      try { value = JSON.parse(raw); } catch { /* a plain string */ }
      wall = setPath(wall, maps.get(name) ?? name, value);
    }
    const nextBootenv = kv.get('reboot_bootenv')?.trim();
    let refused = false;
    await store.tx(async (tx) => {
      if ((code & 15) === 0 && (code & 64) !== 0 && nextBootenv) {
        // The job asked to reboot into another bootenv: switch it in the same transaction, or fail
        // the job saying why (an unknown bootenv must not leave the node rebooting into nothing).
        try {
          await updateNode(tx, node.id, { bootenv: nextBootenv });
        } catch (err) {
          if (!(err instanceof FulcrumError)) throw err;
          await finishJob(tx, id, { status: 'failed', message: `the job asked to reboot into bootenv ${nextBootenv}: ${err.message}`, wall });
          refused = true;
          return;
        }
      }
      if ((code & 15) !== 0) {
        const tail = ((await tx.query(`SELECT right(log, 2000) AS t FROM jobs WHERE id = $1`, [id])).rows[0].t as string).trim().split('\n').slice(-10).join('\n');
        await finishJob(tx, id, { status: 'failed', message: `role scripts failed on ${node.name} with exit code ${code}; last output:\n${tail}`, wall });
      } else if ((code & 128) !== 0) {
        // Incomplete: the work asks to run again (after a reboot, say).
        const r = await tx.query(`UPDATE jobs SET state = 'cancelled', finished_at = clock_timestamp(), message = 'incomplete: run again' WHERE id = $1 AND state = 'running' RETURNING noderole_id`, [id]);
        if (r.rowCount) await changeState(tx, r.rows[0].noderole_id, 'ready', 'requeue', { detail: { job: id, incomplete: true } });
      } else {
        await finishJob(tx, id, { status: 'succeeded', wall });
      }
    });
    log(`job ${id} on ${node.name} finished with exit code ${code}`);
    return text(reply, 200, refused ? { ok: 1, reboot: 'refused' } : { ok: 1 });
  });
}

/** Jigs whose work the node's agent runs. */
export const AGENT_JIGS = ['script'];
