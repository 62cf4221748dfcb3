// Real DHCP clients (ISC dhclient, busybox udhcpc, dhcpcd) run inside a lab namespace, kept away
// from every host file: each gets its own script, lease/pid/state paths and configuration, and
// runs in the foreground so its PID and log are ours. Scripts apply the leased address to the
// client's interface only (never a route, never resolv.conf or the hostname) and record every
// event for the test.
import fs from 'node:fs';
import path from 'node:path';
import type { Namespace } from './lab.js';
import {
  LabError, requireBinary, statusText, tail, waitUntil, type ExitStatus, type LabProcess,
} from './processes.js';

export type DhcpClientKind = 'dhclient' | 'udhcpc' | 'dhcpcd';

export interface DhcpClientOptions {
  /** Bound on obtaining a lease (and on release). Default 20 s. */
  timeoutMs?: number;
  /** Option 12. */
  hostname?: string;
  /** Option 60, e.g. 'PXEClient:Arch:00000:UNDI:002001'. */
  vendorClass?: string;
  /** Option 61 as hex bytes, e.g. '01:52:54:00:12:34:56' (type 1 + MAC). */
  clientId?: string;
  /** Ask for this address (option 50). */
  requestAddress?: string;
  /** An executable run after the lab's own script, with the same arguments and environment. */
  hook?: string;
  /** Extra command-line arguments for the client. */
  extraArgs?: string[];
}

export interface DhclientOptions extends DhcpClientOptions {
  /** -lf; default a fresh file in the lab directory (pass the same file again to test INIT-REBOOT). */
  leaseFile?: string;
  /** -pf; default a file in the lab directory. Removed before start when stale. */
  pidFile?: string;
  /** Extra dhclient.conf statements. */
  config?: string;
}

export interface UdhcpcOptions extends DhcpClientOptions {
  /** -p; default a file in the lab directory. */
  pidFile?: string;
}

export interface DhcpcdOptions extends DhcpClientOptions {
  /** Directory mounted on /var/lib/dhcpcd for this client (lease, DUID, secret); default a fresh one. */
  stateDir?: string;
  /** Extra dhcpcd.conf lines. */
  config?: string;
}

export interface DhcpLease {
  address: string;
  prefixLength: number;
  /** address/prefixLength */
  cidr: string;
  serverId?: string;
  router?: string;
  dns: string[];
  leaseSeconds?: number;
  /** siaddr (BOOTP next server). */
  nextServer?: string;
  /** BOOTP file field / option 67. */
  bootFile?: string;
  hostname?: string;
  domain?: string;
}

export interface DhcpClientEvent {
  /** As the client names it: BOUND, RENEW, RELEASE... (dhclient, dhcpcd) or bound, deconfig... (udhcpc). */
  event: string;
  /** Every variable the client passed to its script (new_ip_address, serverid, ...). */
  vars: Record<string, string>;
}

export interface DhcpReleaseResult {
  /** The client reported sending DHCPRELEASE. */
  released: boolean;
  /** The leased address is gone from the interface. */
  addressRemoved: boolean;
  exit: ExitStatus;
  elapsedMs: number;
  events: DhcpClientEvent[];
}

/** A DHCP client failed to obtain a lease in time (or exited without one). */
export class DhcpNoLeaseError extends LabError {
  constructor(message: string, readonly kind: DhcpClientKind, readonly events: DhcpClientEvent[], output: string) {
    super(message, { output });
    this.name = 'DhcpNoLeaseError';
  }
}

const BOUND_EVENTS = new Set(['BOUND', 'RENEW', 'REBIND', 'REBOOT', 'bound', 'renew']);
const SHELL_VARS = new Set(['PATH', 'PWD', 'OLDPWD', 'SHLVL', '_', 'LANG', 'HOME']);

export interface DhcpClientFiles {
  dir: string;
  script: string;
  events: string;
  pidFile?: string;
  leaseFile?: string;
  config?: string;
  stateDir?: string;
}

/** A running DHCP client holding a lease. */
export class DhcpClientSession {
  #lease: DhcpLease | undefined;
  #elapsed = 0;

  constructor(
    readonly kind: DhcpClientKind, readonly ns: Namespace, readonly iface: string,
    readonly process: LabProcess, readonly files: DhcpClientFiles,
    private readonly releaser: (s: DhcpClientSession, timeoutMs: number) => Promise<{ released: boolean }>,
    private readonly timeoutMs: number,
  ) {}

  /** The lease obtained at start (its address verified on the interface with `ip -4 addr`). */
  get lease(): DhcpLease {
    if (!this.#lease) throw new LabError(`${this.kind} on ${this.ns.name}/${this.iface} has no lease yet`);
    return this.#lease;
  }

  /** Milliseconds from start to the address being on the interface. */
  get elapsedMs(): number {
    return this.#elapsed;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** Events recorded by the client's script so far, oldest first. */
  events(): DhcpClientEvent[] {
    return readEvents(this.files.events);
  }

  /** @internal */
  async acquire(started: number): Promise<this> {
    const what = `${this.kind} on ${this.ns.name}/${this.iface} to obtain a lease`;
    let bound: DhcpClientEvent;
    try {
      bound = await waitUntil(what, this.timeoutMs, () => {
        const ev = this.events().find((e) => BOUND_EVENTS.has(e.event));
        if (ev) return ev;
        if (!this.process.running) {
          throw new LabError(`${this.kind} on ${this.ns.name}/${this.iface} exited (${statusText(this.process.exitStatus!)}) without a lease`);
        }
        return undefined;
      }, 20);
    } catch (e) {
      await this.process.stop().catch(() => undefined);
      throw new DhcpNoLeaseError((e as Error).message, this.kind, this.events(), tail(this.process.output()));
    }
    const lease = parseLease(this.kind, bound.vars);
    if (lease && lease.nextServer === undefined && this.kind === 'dhcpcd') {
      // dhcpcd exports no siaddr; its lease file is the server's DHCPACK as received.
      const siaddr = bootpSiaddr(path.join(this.files.stateDir!, `${this.iface}.lease`));
      if (siaddr) lease.nextServer = siaddr;
    }
    if (!lease) {
      await this.process.stop().catch(() => undefined);
      throw new LabError(`${this.kind} on ${this.ns.name}/${this.iface} reported ${bound.event} without an address: ${JSON.stringify(bound.vars)}`, { output: tail(this.process.output()) });
    }
    // The script (or dhcpcd itself) applies the address before the event is recorded; confirm it.
    await waitUntil(`${lease.cidr} to appear on ${this.ns.name}/${this.iface}`, 3000, async () =>
      (await this.ns.addresses(this.iface)).some((a) => a.address === lease.address) ? true : undefined);
    this.#lease = lease;
    this.#elapsed = Date.now() - started;
    return this;
  }

  /** Send DHCPRELEASE, deconfigure the address and stop the client. Bounded by the client's timeout. */
  async release(): Promise<DhcpReleaseResult> {
    const started = Date.now();
    const lease = this.lease;
    const { released } = await this.releaser(this, this.timeoutMs);
    const exit = (await this.process.waitForExit(3000)) ?? (await this.process.stop());
    const addressRemoved = !(await this.ns.addresses(this.iface)).some((a) => a.address === lease.address);
    return { released, addressRemoved, exit, elapsedMs: Date.now() - started, events: this.events() };
  }

  /** Stop the client without releasing (SIGTERM, SIGKILL after 3 s). */
  stop(): Promise<ExitStatus> {
    return this.process.stop();
  }
}

/** ISC dhclient in the foreground (-d) with its own script, config, lease file and pid file. */
export async function dhclient(ns: Namespace, iface: string, opts: DhclientOptions = {}): Promise<DhcpClientSession> {
  const bin = requireBinary('dhclient', 'isc-dhcp-client');
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const files = prepare(ns, iface, 'dhclient');
  files.leaseFile = opts.leaseFile ?? path.join(files.dir, 'dhclient.leases');
  files.pidFile = opts.pidFile ?? path.join(files.dir, 'dhclient.pid');
  files.config = path.join(files.dir, 'dhclient.conf');
  fs.rmSync(files.pidFile, { force: true });
  const send: string[] = [];
  if (opts.hostname) send.push(`send host-name "${opts.hostname}";`);
  if (opts.vendorClass) send.push(`send vendor-class-identifier "${opts.vendorClass}";`);
  if (opts.clientId) send.push(`send dhcp-client-identifier ${opts.clientId};`);
  if (opts.requestAddress) send.push(`send dhcp-requested-address ${opts.requestAddress};`);
  fs.writeFileSync(files.config, [
    '# Fulcrum lab dhclient: give up after the timeout, retry fast.',
    `timeout ${Math.max(1, Math.ceil(timeoutMs / 1000))};`,
    'initial-interval 1;',
    'backoff-cutoff 2;',
    'request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name, host-name;',
    ...send,
    opts.config ?? '',
    '',
  ].join('\n'));
  writeScript(files, 'dhclient', `
case "$event" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr del "$old_ip_address/\${old_subnet_mask:-255.255.255.255}" dev "$interface"
    fi
    ip -4 addr replace "$new_ip_address/\${new_subnet_mask:-255.255.255.255}" broadcast + dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP)
    [ -z "$old_ip_address" ] || ip -4 addr del "$old_ip_address/\${old_subnet_mask:-255.255.255.255}" dev "$interface" ;;
esac`, opts.hook);
  const common = ['-cf', files.config, '-sf', files.script, '-lf', files.leaseFile, '-pf', files.pidFile];
  const started = Date.now();
  const proc = ns.spawn(bin, ['-d', '-1', '-v', '-4', ...common, ...(opts.extraArgs ?? []), iface], { label: `dhclient in ${ns.name}` });
  const session = new DhcpClientSession('dhclient', ns, iface, proc, files, async (s, t) => {
    // `dhclient -r` would SIGTERM the PID in the pid file and then sleep 1 s: stop our client
    // ourselves and drop the pid file; -r then sends DHCPRELEASE from the lease file and runs the
    // script (RELEASE), which removes the address.
    await s.process.stop();
    fs.rmSync(files.pidFile!, { force: true });
    const r = await ns.exec(bin, ['-r', '-v', '-4', ...common, iface], { timeoutMs: t, check: false });
    return { released: r.code === 0 && /DHCPRELEASE/.test(r.stdout + r.stderr) };
  }, timeoutMs);
  return session.acquire(started);
}

/** busybox udhcpc in the foreground with its own script (busybox ships none) and pid file. */
export async function udhcpc(ns: Namespace, iface: string, opts: UdhcpcOptions = {}): Promise<DhcpClientSession> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const bin = requireBinary('udhcpc', 'udhcpc');
  const files = prepare(ns, iface, 'udhcpc');
  files.pidFile = opts.pidFile ?? path.join(files.dir, 'udhcpc.pid');
  fs.rmSync(files.pidFile, { force: true });
  const applied = path.join(files.dir, 'applied-address');
  writeScript(files, 'udhcpc', `
applied='${applied}'
case "$event" in
  deconfig)
    ip link set dev "$interface" up
    if [ -s "$applied" ]; then ip -4 addr del "$(cat "$applied")" dev "$interface"; rm -f "$applied"; fi ;;
  bound|renew)
    new="$ip/\${mask:-32}"
    if [ -s "$applied" ] && [ "$(cat "$applied")" != "$new" ]; then ip -4 addr del "$(cat "$applied")" dev "$interface"; fi
    ip -4 addr replace "$new" broadcast + dev "$interface" && echo "$new" > "$applied" ;;
esac`, opts.hook);
  const args = [
    '-f', '-i', iface, '-s', files.script, '-p', files.pidFile,
    // Discover every second until the timeout, then exit (-n) rather than go to the background.
    '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000))), '-T', '1', '-n',
  ];
  if (opts.hostname) args.push('-x', `hostname:${opts.hostname}`);
  if (opts.vendorClass) args.push('-V', opts.vendorClass);
  if (opts.clientId) args.push('-x', `0x3d:${opts.clientId.replace(/:/g, '')}`);
  if (opts.requestAddress) args.push('-r', opts.requestAddress);
  const started = Date.now();
  const proc = ns.spawn(bin, [...args, ...(opts.extraArgs ?? [])], { label: `udhcpc in ${ns.name}` });
  const session = new DhcpClientSession('udhcpc', ns, iface, proc, files, async (s, t) => {
    if (!s.process.running) return { released: false };
    // SIGUSR2: release the lease (the script gets deconfig), stay running unbound.
    const before = s.process.output().length;
    s.process.signal('SIGUSR2');
    try {
      await waitUntil('udhcpc to release', Math.min(t, 5000), () => (/sending release/.test(s.process.output().slice(before)) ? true : undefined));
    } catch { /* reported as released: false */ }
    const released = /sending release/.test(s.process.output().slice(before));
    await s.process.stop();
    return { released };
  }, timeoutMs);
  return session.acquire(started);
}

/**
 * dhcpcd in the foreground, IPv4 only, no default route, no IPv4LL, with its own config and script.
 * dhcpcd's run and state paths are compiled in (/run/dhcpcd for pid file and control socket,
 * /var/lib/dhcpcd for leases, DUID and secret), so it runs in a private mount namespace with a
 * tmpfs on /run and the client's own directory bound on /var/lib/dhcpcd: the host's are untouched.
 */
export async function dhcpcd(ns: Namespace, iface: string, opts: DhcpcdOptions = {}): Promise<DhcpClientSession> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const bin = requireBinary('dhcpcd', 'dhcpcd-base');
  const unshare = requireBinary('unshare', 'util-linux');
  const files = prepare(ns, iface, 'dhcpcd');
  files.config = path.join(files.dir, 'dhcpcd.conf');
  files.stateDir = opts.stateDir ?? path.join(files.dir, 'state');
  fs.mkdirSync(files.stateDir, { recursive: true });
  if (!fs.existsSync('/var/lib/dhcpcd')) {
    throw new LabError('/var/lib/dhcpcd does not exist (it is the mount point for the lab client\'s state); reinstall dhcpcd-base');
  }
  fs.writeFileSync(files.config, [
    '# Fulcrum lab dhcpcd: IPv4 only, address only (no default route), no link-local fallback,',
    '# no ARP probe, no start-up delay, no udev (veths in a namespace are never announced).',
    'ipv4only', 'noipv4ll', 'nogateway', 'noarp', 'nodelay', 'nodev',
    'option domain_name_servers, domain_name, host_name',
    ...(opts.hostname ? [`hostname ${opts.hostname}`] : []),
    ...(opts.vendorClass ? [`vendorclassid ${opts.vendorClass}`] : []),
    ...(opts.clientId ? [`clientid ${opts.clientId}`] : []),
    opts.config ?? '',
    '',
  ].join('\n'));
  writeScript(files, 'dhcpcd', ':  # dhcpcd configures the interface itself', opts.hook);
  const args = [
    '-f', files.config, '-c', files.script, '-B', '-4', '-d',
    '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000))),
    ...(opts.requestAddress ? ['-r', opts.requestAddress] : []),
    ...(opts.extraArgs ?? []), iface,
  ];
  // unshare and sh exec in turn, so the spawned PID ends up being dhcpcd's manager process.
  const started = Date.now();
  const proc = ns.spawn(unshare, ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c',
    'mount -t tmpfs -o mode=0755,size=1m fulcrum-lab /run && mount --bind "$1" /var/lib/dhcpcd && shift && exec "$@"',
    'sh', files.stateDir, bin, ...args], { label: `dhcpcd in ${ns.name}` });
  const session = new DhcpClientSession('dhcpcd', ns, iface, proc, files, async (s, t) => {
    if (!s.process.running) return { released: false };
    // SIGALRM: release the lease, deconfigure, exit (what `dhcpcd -k` sends without a control socket).
    s.process.signal('SIGALRM');
    await s.process.waitForExit(Math.min(t, 10_000));
    return { released: /sending RELEASE/.test(s.process.output()) };
  }, timeoutMs);
  return session.acquire(started);
}

// ---- shared plumbing ----------------------------------------------------------------------------

function prepare(ns: Namespace, iface: string, kind: DhcpClientKind): DhcpClientFiles {
  const dir = ns.lab.makeDir(`${kind}-${ns.label}-${iface}`);
  const events = path.join(dir, 'events');
  fs.mkdirSync(events);
  return { dir, events, script: path.join(dir, `${kind}-script.sh`) };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The client's script: apply (client-specific), then record the event and every variable. */
function writeScript(files: DhcpClientFiles, kind: DhcpClientKind, apply: string, hook?: string): void {
  const body = `#!/bin/sh
# Fulcrum lab ${kind} script: changes only this namespace's interface, records each event.
# udhcpc passes the event as $1; dhclient and dhcpcd in $reason.
event="\${1:-$reason}"
${apply.trim()}
f=${shellQuote(files.events)}/"$(date +%s%N)-$$"
{ printf 'lab_event=%s\\0' "$event"; /usr/bin/env -0; } > "$f.tmp" && mv "$f.tmp" "$f.env"
${hook ? `exec ${shellQuote(hook)} "$@"` : 'exit 0'}
`;
  fs.writeFileSync(files.script, body, { mode: 0o755 });
}

function readEvents(dir: string): DhcpClientEvent[] {
  let names: string[];
  try { names = fs.readdirSync(dir).filter((n) => n.endsWith('.env')).sort(); } catch { return []; }
  return names.map((n) => {
    const vars: Record<string, string> = {};
    let event = '';
    for (const entry of fs.readFileSync(path.join(dir, n), 'utf8').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const k = entry.slice(0, eq);
      const v = entry.slice(eq + 1);
      if (k === 'lab_event') event = v;
      else if (!SHELL_VARS.has(k)) vars[k] = v;
    }
    return { event, vars };
  });
}

/** siaddr of a raw BOOTP/DHCP message file (RFC 2131 section 2: bytes 20-23), unless 0.0.0.0. */
function bootpSiaddr(file: string): string | undefined {
  let msg: Buffer;
  try { msg = fs.readFileSync(file); } catch { return undefined; }
  if (msg.length < 240) return undefined;
  const ip = [...msg.subarray(20, 24)].join('.');
  return ip === '0.0.0.0' ? undefined : ip;
}

function maskToPrefix(mask: string): number | undefined {
  const octets = mask.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) return undefined;
  const bits = octets.reduce((n, o) => n * 256 + o, 0).toString(2).padStart(32, '0');
  return /^1*0*$/.test(bits) ? bits.indexOf('0') === -1 ? 32 : bits.indexOf('0') : undefined;
}

function words(v: string | undefined): string[] {
  return (v ?? '').split(/\s+/).filter(Boolean);
}

function num(v: string | undefined): number | undefined {
  return v === undefined || v === '' || Number.isNaN(Number(v)) ? undefined : Number(v);
}

/** The lease as each client names its variables. */
export function parseLease(kind: DhcpClientKind, v: Record<string, string>): DhcpLease | undefined {
  let lease: Omit<DhcpLease, 'cidr'> | undefined;
  if (kind === 'udhcpc') {
    if (!v.ip) return undefined;
    lease = {
      address: v.ip, prefixLength: num(v.mask) ?? (v.subnet ? maskToPrefix(v.subnet) ?? 32 : 32),
      serverId: v.serverid, router: words(v.router)[0], dns: words(v.dns), leaseSeconds: num(v.lease),
      nextServer: v.siaddr, bootFile: v.boot_file, hostname: v.hostname, domain: v.domain,
    };
  } else {
    if (!v.new_ip_address) return undefined;
    const prefix = kind === 'dhcpcd' ? num(v.new_subnet_cidr) : v.new_subnet_mask ? maskToPrefix(v.new_subnet_mask) : undefined;
    lease = {
      address: v.new_ip_address, prefixLength: prefix ?? 32,
      serverId: v.new_dhcp_server_identifier, router: words(v.new_routers)[0], dns: words(v.new_domain_name_servers),
      leaseSeconds: num(v.new_dhcp_lease_time), nextServer: v.new_next_server ?? v.new_siaddr,
      bootFile: v.new_filename ?? v.new_bootfile_name, hostname: v.new_host_name, domain: v.new_domain_name,
    };
  }
  const clean = Object.fromEntries(Object.entries(lease).filter(([, x]) => x !== undefined && x !== '')) as Omit<DhcpLease, 'cidr'>;
  return { ...clean, dns: lease.dns, cidr: `${lease.address}/${lease.prefixLength}` };
}
