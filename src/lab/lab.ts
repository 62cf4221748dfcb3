// Isolated networks for integration tests: network namespaces joined by veth pairs and bridges,
// processes run inside them, and a cleanup that removes all of it (docs/lab.md).
//
// Safety rules, enforced by construction:
// - every link is created namespace-to-namespace (`ip -n A link add ... peer ... netns B`), so no
//   interface of the lab ever exists in the host namespace and nothing is attached to it;
// - the lab never adds a route of its own; DHCP client wrappers apply addresses only, never a
//   default route;
// - every kill checks the PID first (command line, and network namespace where known).
import { spawn as spawnChild } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  LAB_ENV, LabError, LabProcess, describeCommand, findBinary, isSameProcess, netnsInodeOf, readPidFile, run, runSync,
  signalVerified, sleep, sleepSync, waitUntil,
  type ExecOptions, type ExecResult, type PidIdentity,
} from './processes.js';

export { LAB_ENV, LabError, LabProcess, type ExecOptions, type ExecResult, type ExitStatus } from './processes.js';
export {
  dhclient, udhcpc, dhcpcd, DhcpClientSession, DhcpNoLeaseError,
  type DhcpClientKind, type DhcpClientEvent, type DhcpClientOptions, type DhclientOptions, type UdhcpcOptions,
  type DhcpcdOptions, type DhcpLease, type DhcpReleaseResult,
} from './dhcp-clients.js';
export { dnsmasq, Dnsmasq, type DnsmasqOptions, type DnsmasqLease } from './dnsmasq.js';

const NETNS_DIR = '/run/netns';
const PREFIX = 'flab';
const STALE_NAME = /^flab-([0-9a-z]+)-[0-9a-z]+-/;
const SWITCH_LABEL = 'switch';

let labCounter = 0;
const live = new Set<Lab>();

function ipBinary(): string {
  const ip = findBinary('ip');
  if (!ip) throw new LabError('the ip command is missing; install iproute2 (scripts/install-system-packages.sh net)');
  return ip;
}

function checkIfaceName(name: string, what: string): void {
  // IFNAMSIZ is 16 including the terminating NUL.
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
    throw new LabError(`${what} '${name}' is not a valid interface name (1-15 characters: letters, digits, _ . -)`);
  }
}

function checkCidr(cidr: string, what: string): void {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new LabError(`${what} '${cidr}' is not an IPv4 address with prefix length (like 10.0.0.1/24)`);
  }
}

export interface LabOptions {
  /** Keep the lab's file directory after cleanup (also FULCRUM_LAB_KEEP=1), to read logs after a failure. */
  keepFiles?: boolean;
}

export interface InterfaceAddress {
  iface: string;
  family: 4 | 6;
  address: string;
  prefixLength: number;
  /** address/prefixLength */
  cidr: string;
}

export interface RouteEntry {
  dst: string;
  dev?: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
  prefsrc?: string;
}

export interface LinkEnd {
  ns: Namespace;
  iface: string;
  mac: string;
  /** CIDR given at creation, if any. */
  address?: string;
}

export interface Link {
  a: LinkEnd;
  /** The far end: in the other namespace, or the bridge port in the bridge's namespace. */
  b: LinkEnd;
  bridge?: Bridge;
}

export interface LinkOptions {
  /** Interface name in namespace A (default: next free ethN there). */
  ifaceA?: string;
  /** Interface name in namespace B (default: next free ethN; bridge ports are named <bridge>pN). */
  ifaceB?: string;
  addressA?: string;
  /** Not allowed when B is a bridge (a switch port has no address; give the bridge one instead). */
  addressB?: string;
  macA?: string;
  macB?: string;
  mtu?: number;
}

export interface BridgeOptions {
  /** Namespace to create the bridge in; default the lab's dedicated switch namespace. */
  in?: Namespace;
  /** Address on the bridge itself (makes that namespace a member of the segment). */
  address?: string;
}

export interface Bridge {
  readonly name: string;
  readonly ns: Namespace;
  readonly ports: string[];
}

export interface SpawnOptions {
  /** Default: LAB_ENV (PATH and LANG only). Pass { ...process.env } for a Node server that needs more. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Name used in errors (default: the command). */
  label?: string;
}

export interface DaemonOptions {
  /** The pid file the program writes after forking; removed first if stale. */
  pidFile: string;
  /** Substring the daemon's command line must contain before it is signalled (default: the command's basename). */
  match?: string;
  /** Bound on the launch and on the pid file appearing. Default 10 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface CleanupReport {
  lab: string;
  namespacesRemoved: string[];
  /** Processes that exited on SIGTERM. */
  processesStopped: number;
  /** Processes that needed SIGKILL. */
  processesKilled: number;
  /** Processes found in a lab namespace that the lab had not started itself (children, daemons). */
  strays: number;
  errors: string[];
  durationMs: number;
}

/** A daemon that forked itself and left a pid file, run inside a lab namespace. */
export class LabDaemon {
  constructor(readonly ns: Namespace, readonly pid: number, readonly pidFile: string, readonly match: string, readonly command: readonly string[]) {}

  get identity(): PidIdentity {
    return { match: this.match, netnsInode: this.ns.netnsInode };
  }

  get running(): boolean {
    return isSameProcess(this.pid, this.identity);
  }

  /** SIGTERM (after checking the PID), SIGKILL after `timeoutMs`. Returns how it ended. */
  async stop(timeoutMs = 3000): Promise<'not-running' | 'stopped' | 'killed'> {
    if (!signalVerified(this.pid, 'SIGTERM', this.identity)) return 'not-running';
    try {
      await waitUntil(`daemon ${this.match} (pid ${this.pid}) to exit`, timeoutMs, () => (this.running ? undefined : true));
      return 'stopped';
    } catch {
      signalVerified(this.pid, 'SIGKILL', this.identity);
      await waitUntil(`daemon ${this.match} (pid ${this.pid}) to die after SIGKILL`, 3000, () => (this.running ? undefined : true));
      return 'killed';
    }
  }
}

/** One network namespace of a lab. Every command here runs inside it. */
export class Namespace {
  readonly ifaces = new Set<string>();
  #inode: number | undefined;

  /** @internal created by Lab.namespace() */
  constructor(readonly lab: Lab, readonly label: string, readonly name: string) {}

  /** Inode of the namespace (matches /proc/PID/ns/net of processes inside it). */
  get netnsInode(): number | undefined {
    if (this.#inode === undefined) {
      try {
        this.#inode = fs.statSync(path.join(NETNS_DIR, this.name)).ino;
      } catch {
        return undefined;
      }
    }
    return this.#inode;
  }

  /** Run a command to completion inside the namespace (`ip netns exec`). Throws on non-zero unless check: false. */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    this.lab.assertOpen();
    return run([ipBinary(), 'netns', 'exec', this.name, cmd, ...args], { ...opts, env: opts.env ?? LAB_ENV });
  }

  /** Start a long-running process inside the namespace; the lab stops it at cleanup. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): LabProcess {
    this.lab.assertOpen();
    const argv = [ipBinary(), 'netns', 'exec', this.name, cmd, ...args];
    // `ip netns exec` execs the program, so the child's PID is the program's PID.
    const child = spawnChild(argv[0], argv.slice(1), { env: opts.env ?? LAB_ENV, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new LabProcess(argv, child, opts.label ?? `${path.basename(cmd)} in ${this.name}`);
    this.lab.track(proc);
    return proc;
  }

  /**
   * Run a program that daemonizes and writes `pidFile`; resolves once the pid file names a live
   * process whose command line contains `match` and which lives in this namespace.
   */
  async daemon(cmd: string, args: readonly string[], opts: DaemonOptions): Promise<LabDaemon> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const match = opts.match ?? path.basename(cmd);
    fs.rmSync(opts.pidFile, { force: true });
    await this.exec(cmd, args, { timeoutMs, env: opts.env });
    const pid = await waitUntil(`${describeCommand([cmd, ...args])} to write ${opts.pidFile}`, timeoutMs, () => {
      const p = readPidFile(opts.pidFile);
      return p !== undefined && isSameProcess(p, { match, netnsInode: this.netnsInode }) ? p : undefined;
    });
    const d = new LabDaemon(this, pid, opts.pidFile, match, [cmd, ...args]);
    this.lab.trackDaemon(d);
    return d;
  }

  /** `ip -n <ns> ARGS...`; returns stdout. */
  async ip(...args: string[]): Promise<string> {
    this.lab.assertOpen();
    return (await run([ipBinary(), '-n', this.name, ...args])).stdout;
  }

  async ipJson<T>(...args: string[]): Promise<T> {
    const out = await this.ip('-j', ...args);
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }

  async addAddress(iface: string, cidr: string): Promise<void> {
    checkCidr(cidr, `address for ${iface} in ${this.name}`);
    await this.ip('addr', 'add', cidr, 'dev', iface);
  }

  /** Addresses of one interface or all (IPv4 by default; link-local IPv6 included for family 6). */
  async addresses(iface?: string, family: 4 | 6 = 4): Promise<InterfaceAddress[]> {
    const rows = await this.ipJson<Array<{ ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>>(
      family === 4 ? '-4' : '-6', 'addr', 'show', ...(iface ? ['dev', iface] : []));
    return rows.flatMap((r) => (r.addr_info ?? []).map((a) => ({
      iface: r.ifname, family, address: a.local, prefixLength: a.prefixlen, cidr: `${a.local}/${a.prefixlen}`,
    })));
  }

  /** The main routing table. */
  async routes(family: 4 | 6 = 4): Promise<RouteEntry[]> {
    return this.ipJson<RouteEntry[]>(family === 4 ? '-4' : '-6', 'route', 'show');
  }

  async interfaces(): Promise<string[]> {
    return (await this.ipJson<Array<{ ifname: string }>>('link', 'show')).map((l) => l.ifname);
  }

  /** PIDs of every process living in this namespace. */
  async pids(): Promise<number[]> {
    const r = await run([ipBinary(), 'netns', 'pids', this.name], { check: false, timeoutMs: 5000 });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Next free ethN in this namespace. */
  nextIfaceName(): string {
    for (let i = 0; ; i++) if (!this.ifaces.has(`eth${i}`)) return `eth${i}`;
  }
}

/** A set of namespaces, bridges and processes for one test, removed as a whole by cleanup(). */
export class Lab {
  /** Unique per process and lab: flab-<pid base36>-<counter base36>. Prefix of every namespace name. */
  readonly id: string;
  /** Private directory for the lab's files (pid files, leases, scripts, logs). */
  readonly dir: string;
  readonly keepFiles: boolean;
  #namespaces = new Map<string, Namespace>();
  #bridges = new Map<string, Bridge>();
  #processes = new Set<LabProcess>();
  #daemons = new Set<LabDaemon>();
  #switch: Promise<Namespace> | undefined;
  #cleanup: Promise<CleanupReport> | undefined;
  #closed = false;
  #cleanupDone = false;
  #fileCounter = 0;

  constructor(opts: LabOptions = {}) {
    this.id = `${PREFIX}-${process.pid.toString(36)}-${(labCounter++).toString(36)}`;
    this.keepFiles = opts.keepFiles ?? process.env.FULCRUM_LAB_KEEP === '1';
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `fulcrum-lab-${this.id}-`));
    // Traversable, not listable: daemons that drop to another user (dnsmasq, dhcpcd, PostgreSQL) reach their files.
    fs.chmodSync(this.dir, 0o711);
    register(this);
  }

  get namespaces(): Namespace[] {
    return [...this.#namespaces.values()];
  }

  get bridges(): Bridge[] {
    return [...this.#bridges.values()];
  }

  /** @internal */
  assertOpen(): void {
    if (this.#closed) throw new LabError(`lab ${this.id} is cleaned up; create a new Lab`);
  }

  /** @internal */
  track(proc: LabProcess): void {
    this.#processes.add(proc);
    void proc.exited.then(() => { if (!this.#closed) this.#processes.delete(proc); });
  }

  /** @internal */
  trackDaemon(d: LabDaemon): void {
    this.#daemons.add(d);
  }

  /** A fresh directory inside the lab directory. */
  makeDir(prefix: string): string {
    const dir = path.join(this.dir, `${prefix.replace(/[^\w.-]/g, '_')}-${this.#fileCounter++}`);
    fs.mkdirSync(dir);
    return dir;
  }

  /** Create a namespace `<lab id>-<label>` with lo up. */
  async namespace(label: string): Promise<Namespace> {
    this.assertOpen();
    if (!/^[a-z0-9][a-z0-9-]{0,23}$/.test(label)) {
      throw new LabError(`namespace label '${label}' must be 1-24 characters: lower-case letters, digits, '-'`);
    }
    if (label === SWITCH_LABEL) throw new LabError(`namespace label '${SWITCH_LABEL}' is reserved for the lab's bridges`);
    return this.#createNamespace(label);
  }

  async #createNamespace(label: string): Promise<Namespace> {
    if (this.#namespaces.has(label)) throw new LabError(`lab ${this.id} already has a namespace '${label}'`);
    await sweepOnce();
    const ns = new Namespace(this, label, `${this.id}-${label}`);
    // Registered before it exists, so a failure half-way is still cleaned up.
    this.#namespaces.set(label, ns);
    await run([ipBinary(), 'netns', 'add', ns.name]);
    await ns.ip('link', 'set', 'dev', 'lo', 'up');
    return ns;
  }

  /** The lab's switch namespace, holding bridges by default (never the host namespace). */
  switchNamespace(): Promise<Namespace> {
    this.assertOpen();
    this.#switch ??= this.#createNamespace(SWITCH_LABEL);
    return this.#switch;
  }

  /** A bridge (STP off, no forwarding delay, no multicast snooping: a dumb switch). */
  async bridge(name: string, opts: BridgeOptions = {}): Promise<Bridge> {
    checkIfaceName(name, 'bridge name');
    if (opts.address) checkCidr(opts.address, `address of bridge ${name}`);
    const ns = opts.in ?? (await this.switchNamespace());
    if (ns.ifaces.has(name)) throw new LabError(`namespace ${ns.name} already has an interface '${name}'`);
    ns.ifaces.add(name);
    await ns.ip('link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0');
    await ns.ip('link', 'set', 'dev', name, 'up');
    if (opts.address) await ns.addAddress(name, opts.address);
    const bridge: Bridge = { name, ns, ports: [] };
    this.#bridges.set(`${ns.name}/${name}`, bridge);
    return bridge;
  }

  /** A veth pair from namespace `a` to namespace `b` or to a port of bridge `b`. Both ends come up. */
  async link(a: Namespace, b: Namespace | Bridge, opts: LinkOptions = {}): Promise<Link> {
    this.assertOpen();
    const bridge = b instanceof Namespace ? undefined : b;
    const bNs = bridge ? bridge.ns : (b as Namespace);
    for (const ns of [a, bNs]) if (ns.lab !== this) throw new LabError(`namespace ${ns.name} belongs to another lab`);
    if (bridge && opts.addressB) throw new LabError(`link to bridge ${bridge.name}: a bridge port takes no address; give the bridge one (bridge(name, { address }))`);
    const ifaceA = opts.ifaceA ?? a.nextIfaceName();
    if (a === bNs) a.ifaces.add(ifaceA); // so the default B name differs
    const ifaceB = opts.ifaceB ?? (bridge ? `${bridge.name.slice(0, 10)}p${bridge.ports.length}` : bNs.nextIfaceName());
    checkIfaceName(ifaceA, 'interface name A');
    checkIfaceName(ifaceB, 'interface name B');
    if (opts.addressA) checkCidr(opts.addressA, `address of ${ifaceA}`);
    if (opts.addressB) checkCidr(opts.addressB, `address of ${ifaceB}`);
    if (a !== bNs && a.ifaces.has(ifaceA)) throw new LabError(`namespace ${a.name} already has an interface '${ifaceA}'`);
    if (bNs.ifaces.has(ifaceB)) throw new LabError(`namespace ${bNs.name} already has an interface '${ifaceB}'`);
    if (a === bNs && ifaceA === ifaceB) throw new LabError(`both ends of a link in ${a.name} are named '${ifaceA}'`);
    a.ifaces.add(ifaceA);
    bNs.ifaces.add(ifaceB);
    if (bridge) bridge.ports.push(ifaceB);

    // Created inside A with the peer placed straight into B: neither end ever exists in the host namespace.
    await a.ip('link', 'add', 'name', ifaceA, ...(opts.macA ? ['address', opts.macA] : []), ...(opts.mtu ? ['mtu', String(opts.mtu)] : []),
      'type', 'veth', 'peer', 'name', ifaceB, ...(opts.macB ? ['address', opts.macB] : []), ...(opts.mtu ? ['mtu', String(opts.mtu)] : []),
      ...(a === bNs ? [] : ['netns', bNs.name]));
    if (bridge) await bNs.ip('link', 'set', 'dev', ifaceB, 'master', bridge.name);
    if (opts.addressA) await a.addAddress(ifaceA, opts.addressA);
    if (opts.addressB) await bNs.addAddress(ifaceB, opts.addressB);
    await a.ip('link', 'set', 'dev', ifaceA, 'up');
    await bNs.ip('link', 'set', 'dev', ifaceB, 'up');
    const mac = async (ns: Namespace, iface: string) => (await ns.ipJson<Array<{ address: string }>>('link', 'show', 'dev', iface))[0].address;
    return {
      a: { ns: a, iface: ifaceA, mac: await mac(a, ifaceA), address: opts.addressA },
      b: { ns: bNs, iface: ifaceB, mac: await mac(bNs, ifaceB), address: opts.addressB },
      bridge,
    };
  }

  /**
   * Throws when a lab namespace has a default route (IPv4 or IPv6) or a veth whose peer lives
   * outside the lab (in the host namespace or anywhere else).
   */
  async assertIsolated(): Promise<void> {
    const names = new Set(this.namespaces.map((n) => n.name));
    const problems: string[] = [];
    for (const ns of this.namespaces) {
      for (const fam of [4, 6] as const) {
        for (const r of await ns.routes(fam)) if (r.dst === 'default') problems.push(`${ns.name}: IPv${fam} default route via ${r.gateway ?? r.dev}`);
      }
      const links = await ns.ipJson<Array<{ ifname: string; link_netnsid?: number }>>('link', 'show');
      const ids = await ns.ipJson<Array<{ nsid: number; name?: string }>>('netns', 'list-id');
      for (const l of links) {
        if (l.link_netnsid === undefined) continue;
        const peer = ids.find((i) => i.nsid === l.link_netnsid)?.name;
        if (!peer || !names.has(peer)) problems.push(`${ns.name}: ${l.ifname} has its peer in ${peer ?? 'a namespace outside the lab (host?)'}`);
      }
    }
    if (problems.length) throw new LabError(`lab ${this.id} is not isolated:\n  ${problems.join('\n  ')}`);
  }

  /** Remove everything the lab created. Never throws; safe to call more than once (same report). */
  cleanup(): Promise<CleanupReport> {
    this.#cleanup ??= this.#doCleanup();
    return this.#cleanup;
  }

  async #doCleanup(): Promise<CleanupReport> {
    this.#closed = true;
    const started = Date.now();
    const report: CleanupReport = { lab: this.id, namespacesRemoved: [], processesStopped: 0, processesKilled: 0, strays: 0, errors: [], durationMs: 0 };
    const note = (what: string, e: unknown) => report.errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);

    await Promise.all([...this.#processes].map(async (p) => {
      if (!p.running) return;
      try {
        const s = await p.stop({ timeoutMs: 2000 });
        if (s.signal === 'SIGKILL') report.processesKilled++; else report.processesStopped++;
      } catch (e) { note(`stopping ${p.label}`, e); }
    }));
    await Promise.all([...this.#daemons].map(async (d) => {
      try {
        const how = await d.stop(2000);
        if (how === 'stopped') report.processesStopped++;
        if (how === 'killed') report.processesKilled++;
      } catch (e) { note(`stopping daemon ${d.match} (pid ${d.pid})`, e); }
    }));

    const namespaces = this.namespaces;
    // Anything still inside a lab namespace was started from it (children, daemons): ours.
    await Promise.all(namespaces.map(async (ns) => {
      const inode = ns.netnsInode;
      if (inode === undefined) return;
      let pids: number[];
      try { pids = await ns.pids(); } catch (e) { note(`listing processes in ${ns.name}`, e); return; }
      const ours = pids.filter((p) => netnsInodeOf(p) === inode);
      report.strays += ours.length;
      for (const p of ours) try { process.kill(p, 'SIGTERM'); } catch { /* gone */ }
      const gone = () => ours.every((p) => netnsInodeOf(p) !== inode);
      for (let i = 0; i < 40 && !gone(); i++) await sleep(50);
      for (const p of ours) if (netnsInodeOf(p) === inode) { try { process.kill(p, 'SIGKILL'); report.processesKilled++; } catch { /* gone */ } }
    }));

    await Promise.all(namespaces.map(async (ns) => {
      if (!fs.existsSync(path.join(NETNS_DIR, ns.name))) return;
      try {
        await run([ipBinary(), 'netns', 'del', ns.name], { timeoutMs: 10_000 });
        report.namespacesRemoved.push(ns.name);
      } catch (e) { note(`removing namespace ${ns.name}`, e); }
    }));
    if (!this.keepFiles) {
      try { fs.rmSync(this.dir, { recursive: true, force: true }); } catch (e) { note(`removing ${this.dir}`, e); }
    }
    this.#cleanupDone = true;
    unregister(this);
    report.durationMs = Date.now() - started;
    return report;
  }

  /** @internal Last-resort cleanup from process 'exit' or a signal: synchronous, bounded (~3 s). */
  cleanupSync(): void {
    if (this.#cleanupDone) return;
    this.#closed = true;
    const ip = findBinary('ip') ?? 'ip';
    for (const p of this.#processes) if (p.running) p.signal('SIGTERM');
    for (const d of this.#daemons) signalVerified(d.pid, 'SIGTERM', d.identity);
    const inPids = new Map<Namespace, number[]>();
    for (const ns of this.namespaces) {
      const inode = ns.netnsInode;
      if (inode === undefined) continue;
      const pids = runSync([ip, 'netns', 'pids', ns.name]).stdout.split(/\s+/).filter(Boolean).map(Number).filter((p) => netnsInodeOf(p) === inode);
      for (const p of pids) try { process.kill(p, 'SIGTERM'); } catch { /* gone */ }
      inPids.set(ns, pids);
    }
    for (let i = 0; i < 20; i++) {
      const alive = [...inPids].some(([ns, pids]) => pids.some((p) => netnsInodeOf(p) === ns.netnsInode)) || [...this.#processes].some((p) => p.running && readableAlive(p.pid));
      if (!alive) break;
      sleepSync(50);
    }
    // Our own unreaped children: their PIDs cannot have been reused, no command-line check needed.
    for (const p of this.#processes) if (p.running && readableAlive(p.pid)) p.signal('SIGKILL');
    for (const d of this.#daemons) signalVerified(d.pid, 'SIGKILL', d.identity);
    for (const [ns, pids] of inPids) for (const p of pids) if (netnsInodeOf(p) === ns.netnsInode) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    for (const ns of this.namespaces) if (fs.existsSync(path.join(NETNS_DIR, ns.name))) runSync([ip, 'netns', 'del', ns.name]);
    if (!this.keepFiles) try { fs.rmSync(this.dir, { recursive: true, force: true }); } catch { /* best effort */ }
    this.#cleanupDone = true;
    unregister(this);
  }
}

function readableAlive(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Run `body` with a fresh Lab and always clean it up, also when `body` throws. A cleanup problem
 * fails an otherwise passing body; when the body failed, its error wins and cleanup problems are
 * printed.
 */
export async function withLab<T>(body: (lab: Lab) => Promise<T> | T, opts: LabOptions = {}): Promise<T> {
  const lab = new Lab(opts);
  let result: T;
  try {
    result = await body(lab);
  } catch (err) {
    const report = await lab.cleanup();
    if (report.errors.length) console.error(`lab ${lab.id} cleanup after failure: ${report.errors.join('; ')}`);
    if (lab.keepFiles) console.error(`lab ${lab.id} files kept in ${lab.dir}`);
    throw err;
  }
  const report = await lab.cleanup();
  if (report.errors.length) throw new LabError(`lab ${lab.id} cleanup incomplete:\n  ${report.errors.join('\n  ')}`);
  return result;
}

// ---- process-wide registry: exit and signal hooks -----------------------------------------------

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function onExit(): void {
  for (const lab of [...live]) lab.cleanupSync();
}

function onSignal(sig: NodeJS.Signals): void {
  onExit();
  uninstallHooks();
  // Die of the same signal, as if no handler had been installed.
  process.kill(process.pid, sig);
}

let hooksInstalled = false;
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}

function register(lab: Lab): void {
  live.add(lab);
  installHooks();
}

function unregister(lab: Lab): void {
  live.delete(lab);
  if (live.size === 0) uninstallHooks();
}

// ---- leftovers of killed test runs --------------------------------------------------------------

let sweep: Promise<string[]> | undefined;
function sweepOnce(): Promise<string[]> {
  sweep ??= sweepStaleLabs().catch(() => []);
  return sweep;
}

/**
 * Remove namespaces (and their processes) and file directories left by labs whose process is gone
 * (a test run killed with SIGKILL). Only names this module creates (flab-<pid>-<n>-...) whose PID
 * no longer exists are touched. Runs automatically before a process's first namespace.
 */
export async function sweepStaleLabs(): Promise<string[]> {
  const removed: string[] = [];
  const dead = (pid36: string) => {
    const pid = parseInt(pid36, 36);
    return pid !== process.pid && !fs.existsSync(`/proc/${pid}`);
  };
  let names: string[] = [];
  try { names = fs.readdirSync(NETNS_DIR); } catch { /* no namespaces at all */ }
  for (const name of names) {
    const m = STALE_NAME.exec(name);
    if (!m || !dead(m[1])) continue;
    const inode = fs.statSync(path.join(NETNS_DIR, name)).ino;
    const r = await run([ipBinary(), 'netns', 'pids', name], { check: false });
    for (const p of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (netnsInodeOf(p) === inode) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
    const del = await run([ipBinary(), 'netns', 'del', name], { check: false });
    if (del.code === 0) removed.push(name);
  }
  for (const entry of fs.readdirSync(os.tmpdir())) {
    const m = /^fulcrum-lab-flab-([0-9a-z]+)-/.exec(entry);
    if (m && dead(m[1])) {
      fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
      removed.push(path.join(os.tmpdir(), entry));
    }
  }
  return removed;
}

/**
 * Why lab tests cannot run here (not root, or a needed program missing, with the Debian package to
 * install), or undefined when they can.
 */
export function labPrerequisitesMissing(programs: ReadonlyArray<readonly [name: string, debianPackage: string]> = []): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const missing = [['ip', 'iproute2'] as const, ...programs].filter(([name]) => !findBinary(name));
  if (missing.length) {
    return `missing ${missing.map(([n, p]) => `${n} (${p})`).join(', ')}: run scripts/install-system-packages.sh net`;
  }
  return undefined;
}
