// `fulcrum server`: the store (embedded PostgreSQL or DATABASE_URL), migrations, the annealer,
// the event stream, leader-only consumers (role hooks, webhooks) and the API, in one process.
// N of these may share one external database; all coordination goes through it.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Store } from '../store/db.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../store/embedded.js';
import { migrate } from '../store/migrate.js';
import { ensureSystemDeployment } from '../model/deployments.js';
import { ensureAdmin } from '../auth/auth.js';
import { Annealer, type AnnealerOptions } from '../annealer/annealer.js';
import { EventStream, consume } from '../events/stream.js';
import { dispatchHooks } from '../events/hooks.js';
import { deliverDue, enqueueDeliveries } from '../events/webhooks.js';
import { buildApi } from '../api/app.js';

export interface ServerOptions {
  dataDir: string;
  listen: string;
  databaseUrl?: string;
  log?: (msg: string) => void;
  annealer?: Omit<AnnealerOptions, 'log'>;
}

export interface RunningServer {
  url: string;
  store: Store;
  annealer: Annealer;
  events: EventStream;
  replicaId: string;
  close(): Promise<void>;
}

/** A replica keeps its id across restarts (in its data dir), so it can recover its own runs at once. */
async function replicaIdFor(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'replica-id');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    const id = `replica-${crypto.randomBytes(6).toString('hex')}`;
    await fs.mkdir(dataDir, { recursive: true });
    await fs.writeFile(file, id + '\n');
    return id;
  }
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  await fs.mkdir(opts.dataDir, { recursive: true });
  let embedded: EmbeddedPostgres | undefined;
  let url = opts.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(opts.dataDir, log);
    url = embedded.url;
  }
  const store = new Store(url);
  const applied = await migrate(store);
  if (applied.length) log(`applied migrations: ${applied.join(', ')}`);
  await store.tx((tx) => ensureSystemDeployment(tx));
  const admin = await ensureAdmin(store);
  if (admin.created) {
    log(admin.password
      ? `created user admin with password ${admin.password} (shown once; set FULCRUM_ADMIN_PASSWORD to choose it)`
      : 'created user admin with the password from FULCRUM_ADMIN_PASSWORD');
  }

  const replicaId = await replicaIdFor(opts.dataDir);
  const events = new EventStream(store, log);
  await events.start();
  const annealer = new Annealer(store, replicaId, { ...opts.annealer, log });
  await annealer.start();

  // Leader-only consumers of the outbox, woken by new events and by a slow timer.
  let consuming = false;
  const runConsumers = async () => {
    if (consuming || !annealer.isLeader) return;
    consuming = true;
    try {
      await consume(store, 'hooks', (evs) => dispatchHooks(store, evs, log));
      await consume(store, 'webhooks', async (evs) => { await enqueueDeliveries(store, evs); });
      await deliverDue(store, { log });
    } catch (err) {
      log(`event consumers: ${(err as Error).message}`);
    } finally {
      consuming = false;
    }
  };
  const unsubscribe = events.subscribe({}, () => void runConsumers());
  const consumerTimer = setInterval(() => void runConsumers(), 1000);

  let ready = false;
  const app = await buildApi({ store, events, ready: () => ready, log });
  const [host, port] = splitListen(opts.listen);
  const address = await app.listen({ host, port });
  ready = true;
  const bound = app.server.address();
  const realPort = typeof bound === 'object' && bound ? bound.port : port;
  const serverUrl = `http://${host.includes(':') ? `[${host}]` : host}:${realPort}`;
  log(`replica ${replicaId} serving ${address}`);

  return {
    url: serverUrl, store, annealer, events, replicaId,
    async close() {
      ready = false;
      clearInterval(consumerTimer);
      unsubscribe();
      await app.close();
      await annealer.stop();
      await events.stop();
      await store.close();
      if (embedded) await embedded.stop();
    },
  };
}

function splitListen(listen: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen "${listen}" must be HOST:PORT`);
  return [m[1], Number(m[2])];
}
