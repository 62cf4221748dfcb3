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
import { projectRoot } from '../paths.js';
import { readPack } from '../content/pack.js';
import { importPack } from '../content/import.js';
import http from 'node:http';
import { ensureBuiltinBootenvs } from '../provisioning/bootenvs.js';
import { BootTree } from '../provisioning/boot-tree.js';
import { serveBoot } from '../provisioning/http-boot.js';
import { DhcpServer, pingProbe } from '../dhcp/server.js';
import { startRouterAdvertiser } from '../dhcp/router-advert.js';
import { registerJig } from '../annealer/jigs.js';
import { sshJig } from '../agent/ssh-jig.js';
import { ansibleJig } from '../annealer/ansible-jig.js';
import { internalDns, startServices } from '../services/start.js';
import { TftpServer } from '../tftp/server.js';
import { DnsService, type DnsOptions } from '../dns/service.js';
import { tftpBytes, tftpSeconds, tftpTransfers, watchTftpDrops } from '../metrics.js';

export interface ServerOptions {
  dataDir: string;
  listen: string;
  databaseUrl?: string;
  log?: (msg: string) => void;
  annealer?: Omit<AnnealerOptions, 'log'>;
  /** Import the content packs shipped in <project>/content at start (the README's quick start). */
  sampleContent?: boolean;
  /** Serve the provisioning plane (DHCP, TFTP, HTTP boot) on this address of the machine. */
  boot?: { address: string; httpPort: number; dhcp?: boolean; tftpPort?: number; ipxeRoots?: string[]; probe?: boolean };
  /** Serve DNS (docs/dns.md): the zones in the store, on this address, with an optional upstream forwarder. */
  dns?: DnsOptions;
}

export interface RunningServer {
  url: string;
  store: Store;
  annealer: Annealer;
  events: EventStream;
  replicaId: string;
  /** Records and RFC 2136 push; its `server` (sockets) when opts.dns.listen was given. */
  dns: DnsService;
  close(): Promise<void>;
}

/**
 * The content packs shipped in <project>/content, imported at start with --sample-content: the
 * sample content of the quick start (the test pack binds a discovery role to every new node, so a
 * production server does not load it unasked). Idempotent (an unchanged pack is skipped by its digest); upgrades keep bindings.
 */
async function importBuiltinContent(store: Store, log: (m: string) => void): Promise<void> {
  const root = path.join(projectRoot, 'content');
  const dirs = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  for (const d of dirs.filter((x) => x.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const pack = await readPack(path.join(root, d.name));
    const r = await store.tx((tx) => importPack(tx, pack));
    if (r.changed) log(`imported content pack ${r.name} ${r.version} (${r.roles} roles, ${r.bootenvs} bootenvs)`);
  }
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
  await ensureBuiltinBootenvs(store);
  if (opts.sampleContent) await importBuiltinContent(store, log);
  const admin = await ensureAdmin(store);
  if (admin.created) {
    log(admin.password
      ? `created user admin with password ${admin.password} (shown once; set FULCRUM_ADMIN_PASSWORD to choose it); it is also the setup code of the web UI's first-run wizard`
      : 'created user admin with the password from FULCRUM_ADMIN_PASSWORD');
  }

  const replicaId = await replicaIdFor(opts.dataDir);
  registerJig(sshJig(opts.dataDir, async () => new Map((await store.query('SELECT name, map FROM attribs')).rows.map((a) => [a.name, a.map]))));
  registerJig(ansibleJig(opts.dataDir, store));
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

  const boot = opts.boot;
  const bootBase = boot ? `http://${boot.address}:${boot.httpPort}` : undefined;
  const bootTree = new BootTree({
    sql: store,
    staticRoot: path.join(opts.dataDir, 'boot'),
    ipxeRoots: boot?.ipxeRoots,
    server: (req) => {
      const base = bootBase ?? `http://${req.remote.includes(':') ? '127.0.0.1' : req.remote}`;
      return { http: `${base}/boot`, api: base, tftp: boot?.address ?? '' };
    },
  });
  await fs.mkdir(path.join(opts.dataDir, 'boot'), { recursive: true });

  let ready = false;
  const app = await buildApi({ store, events, ready: () => ready, log, bootTree, dataDir: opts.dataDir });
  let address: string;
  let serverUrl: string;
  if (opts.listen.startsWith('unix:')) {
    const socketPath = opts.listen.slice(5);
    await fs.rm(socketPath, { force: true });
    address = await app.listen({ path: socketPath });
    serverUrl = opts.listen;
  } else {
    const [host, port] = splitListen(opts.listen);
    address = await app.listen({ host, port });
    const bound = app.server.address();
    const realPort = typeof bound === 'object' && bound ? bound.port : port;
    serverUrl = `http://${host.includes(':') ? `[${host}]` : host}:${realPort}`;
  }

  // The provisioning plane on the boot address: the same app (boot files, and the API agents
  // use) on the boot HTTP port, TFTP from the same tree, and DHCP.
  const stops: Array<() => Promise<void>> = [];
  if (boot) {
    // Boot files straight to the boot tree (firmware fetches are the hot path of a boot storm);
    // everything else (the agent API) through the app.
    const bootHttp = http.createServer((req, res) => {
      if (!req.url?.startsWith('/boot/')) { app.server.emit('request', req, res); return; }
      serveBoot(bootTree, req, res, req.url.slice('/boot/'.length).split('?')[0]).catch((err: unknown) => {
        log(`boot file ${req.url}: ${(err as Error).message}`);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => { bootHttp.once('error', reject); bootHttp.listen(boot.httpPort, boot.address, () => resolve()); });
    stops.push(() => new Promise((r) => bootHttp.close(() => r())));
    const tftp = new TftpServer({
      tree: bootTree, host: boot.address, port: boot.tftpPort ?? 69, log,
      onTransfer: (s) => { tftpTransfers.inc({ outcome: s.outcome }); tftpBytes.inc(s.bytes); tftpSeconds.observe(s.durationMs / 1000); },
    });
    await tftp.start();
    watchTftpDrops(() => tftp.counters.dropped);
    stops.push(() => tftp.stop());
    if (boot.dhcp !== false) {
      const dhcp = new DhcpServer({ store, address: boot.address, httpBase: `${bootBase}/boot`, log, probe: boot.probe === false ? undefined : pingProbe });
      await dhcp.start();
      stops.push(() => dhcp.stop());
      const ra = await startRouterAdvertiser(boot.address, path.join(opts.dataDir, 'run'), log);
      if (ra) stops.push(() => ra.stop());
    }
    log(`provisioning on ${boot.address}: ${boot.dhcp !== false ? 'DHCP, ' : ''}TFTP, HTTP ${bootBase}/boot`);
  }
  // The service registry: this replica's own services, and the server code of core/etcd roles.
  const tcpApi = opts.listen.startsWith('unix:') ? undefined : splitListen(opts.listen)[0];
  const services = await startServices({
    store, events, replicaId, isLeader: () => annealer.isLeader, log,
    api: tcpApi && !/^(127\.|::1$|localhost$|0\.0\.0\.0$|::$)/.test(tcpApi) ? { address: tcpApi, url: serverUrl } : undefined,
    boot: boot && bootBase ? { address: boot.address, httpBase: bootBase, dhcp: boot.dhcp !== false, tftpPort: boot.tftpPort ?? 69 } : undefined,
  });
  stops.push(async () => services.stop());
  // Records are computed (and pushed by RFC 2136, by the leader) on every replica; served only with a listen address.
  const dns = new DnsService(store, events, opts.dns ?? {}, () => annealer.isLeader, log);
  await dns.start();
  stops.push(() => dns.stop());
  if (opts.dns?.listen) log(`dns on ${opts.dns.listen} (udp, tcp)${opts.dns.forwarder ? `, forwarding other names to ${opts.dns.forwarder}` : ''}`);
  const ownDns = opts.dns?.listen ? internalDns(opts.dns.listen, boot?.address) : null;
  if (ownDns) await services.register([ownDns]);
  ready = true;
  log(`replica ${replicaId} serving ${address}`);

  return {
    url: serverUrl, store, annealer, events, replicaId, dns,
    async close() {
      ready = false;
      for (const stop of stops.reverse()) await stop();
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
