// Power through the API (docs/power.md): a node's power settings (secrets sealed at rest, never
// returned), and power actions that go through the verified driver, each recorded as an event.
//
//   PUT    /api/v1/nodes/:key/power          settings (PowerSettingsSchema)   nodes:write
//   GET    /api/v1/nodes/:key/power          settings with secrets as "***"   nodes:read
//   DELETE /api/v1/nodes/:key/power                                           nodes:write
//   POST   /api/v1/nodes/:key/power/actions  {action: status|on|off|cycle|pxe|disk, persistent?}  nodes:power
// The vm driver's settings are a command line the server runs: refused unless the server runs
// with FULCRUM_LAB_VM_POWER=1.
import type { FastifyInstance } from 'fastify';
import { Type as T } from 'typebox';
import { emit } from '../events/outbox.js';
import { FulcrumError, invalid, notFound } from '../model/errors.js';
import { keyClause } from '../model/lookup.js';
import type { Store } from '../store/db.js';
import { SecretBox } from '../store/secrets.js';
import { PowerError, type PowerState } from './driver.js';
import { SECRET_FIELDS, parsePowerSettings, powerControl, type PowerConfig } from './registry.js';
import type { PowerPolicy } from './verified.js';

export const POWER_ACTIONS = ['status', 'on', 'off', 'cycle', 'pxe', 'disk'] as const;
export type PowerRequest = (typeof POWER_ACTIONS)[number];

const PowerActionBody = T.Object({
  action: T.Union(POWER_ACTIONS.map((a) => T.Literal(a))),
  persistent: T.Optional(T.Boolean({ description: 'pxe/disk: keep the device for every later boot (default: next boot only)' })),
}, { additionalProperties: false });

interface NodeRow { id: number; name: string; deployment_id: number | null }

async function nodeRow(store: Store, key: string): Promise<NodeRow> {
  const { where, value } = keyClause(key, true);
  const r = await store.query(`SELECT id, name, deployment_id FROM nodes WHERE ${where}`, [value]);
  if (!r.rowCount) throw notFound('node', key, 'node');
  return r.rows[0];
}

const context = (nodeId: number) => `node ${nodeId} power`;

/** Split settings into what is stored in the clear and what is sealed. */
function split(settings: PowerConfig): { clear: Record<string, unknown>; secret: Record<string, unknown> } {
  const clear: Record<string, unknown> = { ...settings };
  const secret: Record<string, unknown> = {};
  for (const f of SECRET_FIELDS) {
    if (clear[f] !== undefined) { secret[f] = clear[f]; delete clear[f]; }
  }
  return { clear, secret };
}

/** The node's full power settings (secrets opened), or undefined when none are set. */
export async function nodePowerConfig(store: Store, box: SecretBox, nodeId: number): Promise<PowerConfig | undefined> {
  const r = await store.query('SELECT settings, secrets FROM node_power WHERE node_id = $1', [nodeId]);
  if (!r.rowCount) return undefined;
  const secret = r.rows[0].secrets ? box.open<Record<string, unknown>>(r.rows[0].secrets, context(nodeId)) : {};
  return { ...r.rows[0].settings, ...secret } as PowerConfig;
}

function redacted(row: { driver: string; settings: Record<string, unknown>; secrets: Buffer | null; state: string | null; state_at: Date | null; version: number }) {
  const masked = row.secrets ? Object.fromEntries(SECRET_FIELDS.map((f) => [f, '***'])) : {};
  return { ...row.settings, ...masked, driver: row.driver, state: row.state, state_at: row.state_at, version: row.version };
}

/** Run one power request through the verified driver. Exposed for the CLI's direct mode and tests. */
export async function runPowerAction(config: PowerConfig, action: PowerRequest, opts: { persistent?: boolean; policy?: PowerPolicy } = {}): Promise<PowerState | undefined> {
  const power = powerControl(config, opts.policy);
  switch (action) {
    case 'status': return power.status();
    case 'on': await power.on(); return 'on';
    case 'off': await power.off(); return 'off';
    case 'cycle': await power.cycle(); return 'on';
    case 'pxe': case 'disk': await power.nextBoot(action, { persistent: opts.persistent }); return undefined;
  }
}

export function registerPowerApi(app: FastifyInstance, store: Store, dataDir: string, policy: PowerPolicy = {}): void {
  let box: Promise<SecretBox> | undefined;
  const secrets = () => (box ??= (async () => {
    const b = SecretBox.forDataDir(dataDir);
    await b.checkClusterKey(store);
    return b;
  })().catch((err: Error) => { box = undefined; throw new FulcrumError('conflict', err.message); }));
  const view = async (nodeId: number) =>
    (await store.query('SELECT driver, settings, secrets, state, state_at, version FROM node_power WHERE node_id = $1', [nodeId])).rows[0];

  app.put('/api/v1/nodes/:key/power', { config: { capability: 'nodes:write' }, schema: { body: { type: 'object' }, tags: ['nodes'] } }, async (req) => {
    const node = await nodeRow(store, (req.params as { key: string }).key);
    let settings: PowerConfig;
    try {
      settings = parsePowerSettings(req.body, 'power');
    } catch (err) {
      throw invalid('power', (err as Error).message);
    }
    if (settings.driver === 'vm' && process.env.FULCRUM_LAB_VM_POWER !== '1') {
      // Its settings are a command the server runs: only for labs whose operators run the server.
      throw invalid('driver', 'the vm power driver runs a command on the Fulcrum server; it is accepted only when the server runs with FULCRUM_LAB_VM_POWER=1 (labs)');
    }
    const { clear, secret } = split(settings);
    const sealed = Object.keys(secret).length ? (await secrets()).seal(secret, context(node.id)) : null;
    await store.tx(async (tx) => {
      await tx.query(
        `INSERT INTO node_power (node_id, driver, settings, secrets) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node_id) DO UPDATE SET driver = $2, settings = $3, secrets = $4, state = NULL, state_at = NULL,
           version = node_power.version + 1, updated_at = now()`,
        [node.id, settings.driver, clear, sealed]);
      await emit(tx, { type: 'node.power.configured', object_kind: 'node', object_id: node.id, node_id: node.id, deployment_id: node.deployment_id, payload: { name: node.name, driver: settings.driver } });
    });
    return redacted(await view(node.id));
  });

  app.get('/api/v1/nodes/:key/power', { config: { capability: 'nodes:read' }, schema: { tags: ['nodes'] } }, async (req) => {
    const node = await nodeRow(store, (req.params as { key: string }).key);
    const row = await view(node.id);
    if (!row) throw notFound('power settings of node', node.name);
    return redacted(row);
  });

  app.delete('/api/v1/nodes/:key/power', { config: { capability: 'nodes:write' }, schema: { tags: ['nodes'] } }, async (req, reply) => {
    const node = await nodeRow(store, (req.params as { key: string }).key);
    await store.query('DELETE FROM node_power WHERE node_id = $1', [node.id]);
    return reply.status(204).send();
  });

  app.post('/api/v1/nodes/:key/power/actions', { config: { capability: 'nodes:power' }, schema: { body: PowerActionBody, tags: ['nodes'] } }, async (req, reply) => {
    const node = await nodeRow(store, (req.params as { key: string }).key);
    const { action, persistent } = req.body as { action: PowerRequest; persistent?: boolean };
    const config = await nodePowerConfig(store, await secrets(), node.id);
    if (!config) throw new FulcrumError('conflict', `node ${node.name} has no power settings; PUT /api/v1/nodes/${node.name}/power first`);
    if (config.driver === 'vm' && process.env.FULCRUM_LAB_VM_POWER !== '1') {
      throw new FulcrumError('conflict', `node ${node.name} uses the vm power driver, which this server does not run (FULCRUM_LAB_VM_POWER=1 is not set)`);
    }
    const started = Date.now();
    let state: PowerState | undefined;
    let failure: PowerError | Error | undefined;
    try {
      state = await runPowerAction(config, action, { persistent, policy: { ...policy, node: node.name } });
    } catch (err) {
      failure = err as Error;
    }
    const elapsedMs = Date.now() - started;
    await store.tx(async (tx) => {
      if (state) await tx.query('UPDATE node_power SET state = $2, state_at = now() WHERE node_id = $1', [node.id, state]);
      await emit(tx, {
        type: failure ? 'node.power.failed' : 'node.power', object_kind: 'node', object_id: node.id, node_id: node.id, deployment_id: node.deployment_id,
        payload: { name: node.name, driver: config.driver, action, state: state ?? null, elapsed_ms: elapsedMs, ...(failure ? { error: failure.message } : {}) },
      });
    });
    if (failure) {
      return reply.status(502).send({ error: 'power-failed', message: failure.message, retryable: failure instanceof PowerError ? failure.retryable : true });
    }
    return { node: node.name, action, state: state ?? null, elapsed_ms: elapsedMs };
  });
}
