// dnsmasq as a known-good DHCP server inside a lab namespace: it validates the client wrappers and
// gives tests a reference to compare Fulcrum's DHCP server against.
import fs from 'node:fs';
import path from 'node:path';
import type { Namespace } from './lab.js';
import { LabError, readPidFile, requireBinary, waitUntil, type ExitStatus, type LabProcess } from './processes.js';

export interface DnsmasqOptions {
  /** Interface to serve (must already carry an address inside the range's subnet). */
  iface: string;
  /** A --dhcp-range value, e.g. '10.0.0.100,10.0.0.150,255.255.255.0,1h'. */
  range: string;
  /** More dnsmasq arguments, e.g. '--dhcp-boot=undionly.kpxe', '--dhcp-host=52:54:00:00:00:01,10.0.0.50'. */
  extraArgs?: string[];
  /** Bound on start-up. Default 10 s. */
  timeoutMs?: number;
}

export interface DnsmasqLease {
  /** Unix seconds (0 = infinite). */
  expiry: number;
  mac: string;
  address: string;
  hostname?: string;
  clientId?: string;
}

export class Dnsmasq {
  constructor(readonly ns: Namespace, readonly process: LabProcess, readonly leaseFile: string, readonly pidFile: string) {}

  /** The current lease database (dnsmasq rewrites its lease file on every change). */
  leases(): DnsmasqLease[] {
    let text = '';
    try { text = fs.readFileSync(this.leaseFile, 'utf8'); } catch { return []; }
    return text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('duid')).map((l) => {
      const [expiry, mac, address, hostname, clientId] = l.trim().split(/\s+/);
      return { expiry: Number(expiry), mac, address, hostname: hostname === '*' ? undefined : hostname, clientId: clientId === '*' ? undefined : clientId };
    });
  }

  /** Poll the lease file until `accept` holds; LabError after `timeoutMs` (default 5 s). */
  waitForLeases(accept: (leases: DnsmasqLease[]) => boolean, timeoutMs = 5000): Promise<DnsmasqLease[]> {
    return waitUntil(`dnsmasq in ${this.ns.name} to show the expected leases (now: ${JSON.stringify(this.leases())})`, timeoutMs, () => {
      const l = this.leases();
      return accept(l) ? l : undefined;
    });
  }

  stop(): Promise<ExitStatus> {
    return this.process.stop();
  }
}

/**
 * Start dnsmasq as a DHCP-only server (DNS off, no config files, no ICMP probe before offering)
 * in the foreground inside `ns`; resolves once it serves.
 */
export async function dnsmasq(ns: Namespace, opts: DnsmasqOptions): Promise<Dnsmasq> {
  const bin = requireBinary('dnsmasq', 'dnsmasq-base');
  const dir = ns.lab.makeDir(`dnsmasq-${ns.label}`);
  const leaseFile = path.join(dir, 'leases');
  const pidFile = path.join(dir, 'dnsmasq.pid');
  const args = [
    '--keep-in-foreground', // unlike --no-daemon, still writes the pid file
    '--conf-file=/dev/null', '--no-hosts', '--no-resolv', '--port=0',
    `--interface=${opts.iface}`, '--bind-interfaces',
    `--dhcp-range=${opts.range}`, '--dhcp-authoritative', '--no-ping',
    `--dhcp-leasefile=${leaseFile}`, `--pid-file=${pidFile}`,
    '--log-dhcp', '--log-facility=-',
    ...(opts.extraArgs ?? []),
  ];
  const proc = ns.spawn(bin, args, { label: `dnsmasq in ${ns.name}` });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  await proc.waitForOutput(/DHCP, (sockets bound|IP range)/, timeoutMs);
  try {
    await waitUntil(`dnsmasq to write ${pidFile}`, timeoutMs, () => (readPidFile(pidFile) === proc.pid ? true : undefined));
  } catch (e) {
    await proc.stop();
    throw new LabError(`dnsmasq in ${ns.name} did not start: ${(e as Error).message}`, { output: proc.output() });
  }
  return new Dnsmasq(ns, proc, leaseFile, pidFile);
}
