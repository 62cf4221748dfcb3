// `fulcrum server`: start the control plane in this process and stop it cleanly on a signal.
import path from 'node:path';
import { CliError } from './errors.js';

export const DEFAULT_LISTEN = '127.0.0.1:7780';
export const DEFAULT_DATA_DIR = './data';

/** HOST:PORT, with IPv6 hosts in brackets ([::1]:7780); port 0 lets the system choose. */
export function parseListen(listen: string): { host: string; port: number } {
  if (listen.startsWith('unix:')) return { host: listen, port: 0 };
  const m = /^(\[[0-9a-fA-F:.%\w]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new CliError(`--listen "${listen}" must be HOST:PORT with a port 0-65535, e.g. ${DEFAULT_LISTEN} or [::1]:7780`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

export async function runServer(opts: { dataDir: string; listen: string; bootAddress?: string; bootPort?: string; dhcp?: boolean; sampleContent?: boolean; dnsListen?: string; dnsForwarder?: string }): Promise<void> {
  parseListen(opts.listen);
  // Imported here so every other command starts without loading the server.
  const { startServer } = await import('../server/server.js');
  const log = (msg: string) => process.stdout.write(msg.endsWith('\n') ? msg : msg + '\n');
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const boot = opts.bootAddress ? { address: opts.bootAddress, httpPort: Number(opts.bootPort ?? 8091), dhcp: opts.dhcp !== false } : undefined;
  if (opts.dnsForwarder && !opts.dnsListen) throw new CliError('--dns-forwarder needs --dns-listen (the DNS server is off without it)');
  const dns = opts.dnsListen ? { listen: opts.dnsListen, forwarder: opts.dnsForwarder } : undefined;
  const server = await startServer({ dataDir: path.resolve(opts.dataDir), listen: opts.listen, databaseUrl, log, boot, sampleContent: opts.sampleContent, dns });
  log(`Fulcrum is listening on ${server.url}`);
  log(`Log in with: fulcrum login --endpoint ${server.url} --user admin --password <admin password>`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without waiting for a clean stop\n`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: stopping (send it again to exit at once)`);
    server.close().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`error: stopping the server failed: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
