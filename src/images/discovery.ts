// The discovery ramdisk (DESIGN.md §3 "Discovery ramdisk"): a Debian kernel and a small initramfs
// built from distribution packages (the kernel's modules for common NICs and disks, busybox), with
// Fulcrum's /init, a udhcpc script and the agent. docs/discovery-image.md describes the result.
//
// Reproducible: the initramfs is a newc cpio written here (sorted, fixed inode numbers, uid 0, one
// mtime) compressed with a fixed gzip header, so the same inputs give the same bytes. Cached: the
// inputs (package versions, module list, the scripts' hashes) make a key; a build whose key is in
// the cache only copies the result.
import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { projectRoot } from '../paths.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { elfDeps } from './elf.js';
import { builtinModules, indexModules, modulesAlias, modulesDep, resolveClosure, type ModInfo } from './modinfo.js';

const run = promisify(execFile);

/** Bump when the builder changes what it puts in the image for the same inputs. */
export const BUILDER_VERSION = 4;

/**
 * Drivers shipped by default (the ones this kernel has; the rest are reported missing). NICs:
 * virtio, Intel (e1000 … ice, igc), Mellanox ConnectX-4+, Broadcom NetXtreme-C/E and tg3, Realtek,
 * VMware. Disks: virtio, AHCI/SATA, IDE-mode PIIX, NVMe, SCSI disks, LSI/Broadcom SAS and MegaRAID,
 * HPE Smart Array (hpsa, smartpqi). USB keyboards (a BMC's virtual console) for the debug shell.
 */
export const DEFAULT_MODULES = [
  'virtio_pci', 'virtio_net', 'virtio_blk', 'virtio_scsi',
  'e1000', 'e1000e', 'igb', 'igc', 'ixgbe', 'i40e', 'ice', 'mlx5_core', 'bnxt_en', 'tg3', 'r8169', 'vmxnet3',
  'ahci', 'ata_piix', 'nvme', 'sd_mod', 'mpt3sas', 'megaraid_sas', 'hpsa', 'smartpqi',
  'xhci_pci', 'ehci_pci', 'uhci_hcd', 'ohci_pci', 'usbhid', 'hid_generic',
];

/** Loaded at every boot whatever the hardware (they have no device alias to be found by). */
const ALWAYS_LOAD = ['sd_mod'];

const KERNEL_META_PACKAGE = 'linux-image-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';

/**
 * Dynamically linked programs shipped beside busybox, with the shared libraries they need (found
 * by their ELF DT_NEEDED entries in the packages of their dependency closure): kexec, so the agent
 * can boot the next bootenv without a firmware reboot.
 */
export const PROGRAMS = [{ package: 'kexec-tools', path: 'sbin/kexec' }] as const;
const LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib'];
/** Packages of the dependency closure used only while installing packages: never shipped, not fetched. */
const INSTALL_ONLY = new Set(['debconf', 'cdebconf', 'dpkg', 'install-info', 'tar', 'readline-common', 'debianutils', 'perl-base']);

/** The packages resolved from apt: what the image is made from. */
export interface ImagePackages { kernel: PackageRef; busybox: PackageRef; programs: PackageRef[] }

export const INIT_TEMPLATE = path.join(projectRoot, 'src', 'images', 'discovery-init.sh');
export const UDHCPC_SCRIPT = path.join(projectRoot, 'src', 'images', 'udhcpc.script');
export const AGENT_SCRIPT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');

export interface BuildOptions {
  /** Where vmlinuz, initrd.img and discovery-image.json are written. */
  outDir: string;
  /** Downloaded packages (debs/) and built images (discovery/<key>/) are kept here. */
  cacheDir: string;
  log?: (msg: string) => void;
  /** Modules to ship in addition to the base list (with their dependencies). */
  extraModules?: string[];
  /** The base list instead of DEFAULT_MODULES (e.g. only virtio for a small lab image). */
  modules?: string[];
  /** Build again even when the cache holds this key (the packages are still reused). */
  force?: boolean;
  /** The agent to include: a file path, or null for none. Default src/agent/fulcrum-agent.sh if it exists. */
  agentScript?: string | null;
  /** The one mtime of every file in the initramfs; default $SOURCE_DATE_EPOCH, else 0. */
  sourceDateEpoch?: number;
}

export interface PackageRef { name: string; version: string }

export interface BuildResult {
  kernel: string;
  initrd: string;
  sizeBytes: { kernel: number; initrd: number };
  /** Every module in the image (requested ones and their dependencies), in load order. */
  modules: string[];
  cached: boolean;
  key: string;
  kernelRelease: string;
  packages: PackageRef[];
  /** Requested modules this kernel has neither as a module nor built in. */
  missingModules: string[];
  /** Requested modules built into this kernel. */
  builtinModules: string[];
  /** Firmware files the shipped modules may ask for (not in the image: Debian's firmware-* packages). */
  firmware: Record<string, string[]>;
  agent: boolean;
  /** Uncompressed initramfs size. */
  cpioBytes: number;
  sha256: { kernel: string; initrd: string };
}

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

async function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  try {
    const r = await run(cmd, args, { cwd: opts.cwd, maxBuffer: 64 << 20, env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } });
    return r.stdout;
  } catch (err) {
    const e = err as { code?: string | number; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error(`${cmd} not found: building the discovery image needs Debian's apt and dpkg tools`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' / ')}`);
  }
}

/** The candidate versions: the kernel package linux-image-amd64 points at, busybox-static, and PROGRAMS with their library packages. */
export async function resolvePackages(): Promise<ImagePackages> {
  // --no-all-versions: the candidate's record only.
  const show = await sh('apt-cache', ['show', '--no-all-versions', KERNEL_META_PACKAGE, BUSYBOX_PACKAGE]);
  const records = show.split(/\n\n+/).filter((r) => r.trim());
  const field = (pkg: string, name: string) => {
    const rec = records.find((r) => new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}$`, 'm').test(r));
    return rec && new RegExp(`^${name}: (.*)$`, 'm').exec(rec)?.[1];
  };
  const meta = field(KERNEL_META_PACKAGE, 'Depends');
  const dep = meta && /(linux-image-\S+-amd64)(?: \(= ([^)\s]+)\))?/.exec(meta);
  if (!dep) throw new Error(`cannot tell which kernel ${KERNEL_META_PACKAGE} depends on (no installable candidate? run apt-get update)`);
  const bbVersion = field(BUSYBOX_PACKAGE, 'Version');
  if (!bbVersion) throw new Error(`no installable version of ${BUSYBOX_PACKAGE} in the apt sources (apt-get update?)`);
  let kernelVersion: string | undefined = dep[2];
  if (!kernelVersion) {
    const policy = await sh('apt-cache', ['policy', dep[1]]);
    kernelVersion = /Candidate:\s*(\S+)/.exec(policy)?.[1];
    if (!kernelVersion || kernelVersion === '(none)') throw new Error(`no installable version of ${dep[1]} (apt-get update?)`);
  }
  return { kernel: { name: dep[1], version: kernelVersion }, busybox: { name: BUSYBOX_PACKAGE, version: bbVersion }, programs: await resolvePrograms() };
}

/** PROGRAMS' packages and the library packages of their dependency closure, at candidate versions. */
async function resolvePrograms(): Promise<PackageRef[]> {
  const roots = PROGRAMS.map((p) => p.package);
  const closure = await sh('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks',
    '--no-replaces', '--no-enhances', ...roots]);
  // Top-level lines are package names; <virtual> ones and indented relations are skipped. What a
  // program needs at run time is found by its ELF entries among all of them (zlib1g is a library
  // whose name does not start with lib), so only the installers' tools are left out.
  const names = [...new Set(closure.split('\n').filter((l) => /^[a-z0-9][a-z0-9.+-]+$/.test(l)))]
    .filter((n) => !INSTALL_ONLY.has(n)).sort();
  const show = await sh('apt-cache', ['show', '--no-all-versions', ...names]);
  const out: PackageRef[] = [];
  for (const rec of show.split(/\n\n+/)) {
    const name = /^Package: (\S+)$/m.exec(rec)?.[1];
    const version = /^Version: (\S+)$/m.exec(rec)?.[1];
    if (name && version && names.includes(name) && !out.some((p) => p.name === name)) out.push({ name, version });
  }
  for (const r of roots) if (!out.some((p) => p.name === r)) throw new Error(`no installable version of ${r} in the apt sources (apt-get update?)`);
  return out;
}

/**
 * What decides apt's candidates (package lists, sources, pins, installed packages) as a hash of
 * names, sizes and mtimes: while it is unchanged the last resolution is reused, without the
 * half a second an apt-cache run costs.
 */
function aptFingerprint(): string {
  const parts: string[] = [];
  const add = (p: string) => {
    try {
      const st = fs.statSync(p);
      if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) { if (e !== 'partial' && e !== 'lock') add(path.join(p, e)); }
      else parts.push(`${p} ${st.size} ${st.mtimeMs}`);
    } catch { parts.push(`${p} -`); }
  };
  for (const p of ['/var/lib/apt/lists', '/etc/apt', '/var/lib/dpkg/status']) add(p);
  return sha256(parts.join('\n'));
}

async function resolvePackagesCached(cacheDir: string): Promise<ImagePackages> {
  const file = path.join(cacheDir, 'apt-resolution.json');
  const fingerprint = aptFingerprint();
  try {
    const saved = JSON.parse(readText(file)) as { fingerprint: string; builder?: number; packages: ImagePackages };
    if (saved.fingerprint === fingerprint && saved.builder === BUILDER_VERSION) return saved.packages;
  } catch { /* none yet */ }
  const packages = await resolvePackages();
  fs.mkdirSync(cacheDir, { recursive: true });
  writeAtomic(file, JSON.stringify({ fingerprint, builder: BUILDER_VERSION, packages }, null, 2) + '\n');
  return packages;
}

/** The .deb of name=version in cacheDir/debs, downloaded with apt-get when not there yet. */
async function fetchDeb(pkg: PackageRef, debDir: string, log: (m: string) => void): Promise<string> {
  fs.mkdirSync(debDir, { recursive: true });
  // apt names the file <name>_<version, ':' as %3a>_<arch>.deb.
  const prefix = `${pkg.name}_${pkg.version.replace(/:/g, '%3a')}_`;
  const find = () => fs.readdirSync(debDir).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  let file = find();
  if (!file) {
    log(`downloading ${pkg.name} ${pkg.version}`);
    const t0 = Date.now();
    await sh('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pkg.name}=${pkg.version}`], { cwd: debDir });
    file = find();
    if (!file) throw new Error(`apt-get download ${pkg.name}=${pkg.version} left no ${prefix}*.deb in ${debDir}`);
    log(`downloaded ${file} (${(fs.statSync(path.join(debDir, file)).size / 1e6).toFixed(1)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return path.join(debDir, file);
}

function readText(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

interface Inputs {
  packages: ImagePackages;
  modules: string[];
  initTemplate: string;
  udhcpcScript: string;
  agent: Buffer | null;
  epoch: number;
}

function cacheKey(i: Inputs): string {
  return sha256(JSON.stringify({
    builder: BUILDER_VERSION,
    packages: i.packages,
    modules: i.modules,
    init: sha256(i.initTemplate),
    udhcpc: sha256(i.udhcpcScript),
    agent: i.agent ? sha256(i.agent) : null,
    epoch: i.epoch,
    // The gzip stream is zlib's: another zlib may compress differently.
    zlib: process.versions.zlib,
  }));
}

/** Replace @@NAME@@ placeholders; an unknown one is an error (a typo must not ship). */
export function renderInit(template: string, values: Record<string, string>): string {
  return template.replace(/@@([A-Z_]+)@@/g, (_m, k: string) => {
    if (!(k in values)) throw new Error(`init template: unknown placeholder @@${k}@@`);
    return values[k];
  });
}

/**
 * gzip with a fixed header: no name, mtime 0 (Node's zlib writes exactly that). Level 6: on the
 * default image level 9 saves 0.5 % (31 KB of 6.2 MB) for twelve times the time (5 s).
 */
export function gzipFixed(data: Buffer): Buffer {
  const gz = zlib.gzipSync(data, { level: 6, memLevel: 9 });
  // Header: 1f 8b 08 FLG MTIME(4) XFL OS. Make sure no name/time ever slips in.
  if (gz[3] !== 0 || gz.readUInt32LE(4) !== 0) throw new Error('gzip header carries a name or a timestamp');
  return gz;
}

interface Manifest {
  key: string;
  builder: number;
  kernelRelease: string;
  packages: PackageRef[];
  modules: string[];
  missingModules: string[];
  builtinModules: string[];
  firmware: Record<string, string[]>;
  agent: boolean;
  cpioBytes: number;
  sizeBytes: { kernel: number; initrd: number };
  sha256: { kernel: string; initrd: string };
  sourceDateEpoch: number;
}

/** Built images kept in the cache (each ≈15 MB); the least recently used beyond that are removed. */
const KEEP_IMAGES = 8;

function pruneImages(dir: string, keep: number, current: string) {
  const entries = fs.readdirSync(dir).filter((e) => /^[0-9a-f]{64}$/.test(e) && e !== current)
    .map((e) => ({ e, t: fs.statSync(path.join(dir, e)).mtimeMs })).sort((a, b) => b.t - a.t);
  for (const { e } of entries.slice(Math.max(0, keep - 1))) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
}

/** Extraction directories (≈400 MB) left by a build that was killed: work-<pid>-* of a dead pid. */
function removeStaleWork(cacheDir: string) {
  for (const e of fs.readdirSync(cacheDir)) {
    const m = /^work-(\d+)-/.exec(e);
    if (!m || Number(m[1]) === process.pid) continue;
    try { process.kill(Number(m[1]), 0); continue; } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    fs.rmSync(path.join(cacheDir, e), { recursive: true, force: true });
  }
}

function writeAtomic(file: string, data: Buffer | string) {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Copy the cached image to outDir unless it is already there. */
function install(entryDir: string, outDir: string, m: Manifest): { kernel: string; initrd: string } {
  fs.mkdirSync(outDir, { recursive: true });
  const kernel = path.join(outDir, 'vmlinuz'), initrd = path.join(outDir, 'initrd.img'), manifest = path.join(outDir, 'discovery-image.json');
  let current: Manifest | null = null;
  try { current = JSON.parse(readText(manifest)) as Manifest; } catch { /* absent or unreadable: copy */ }
  const same = current?.key === m.key && [kernel, initrd].every((f, i) => fs.existsSync(f) && fs.statSync(f).size === [m.sizeBytes.kernel, m.sizeBytes.initrd][i]);
  if (!same) {
    writeAtomic(kernel, fs.readFileSync(path.join(entryDir, 'vmlinuz')));
    writeAtomic(initrd, fs.readFileSync(path.join(entryDir, 'initrd.img')));
    writeAtomic(manifest, JSON.stringify(m, null, 2) + '\n');
  }
  return { kernel, initrd };
}

function result(m: Manifest, files: { kernel: string; initrd: string }, cached: boolean): BuildResult {
  return {
    kernel: files.kernel, initrd: files.initrd, sizeBytes: m.sizeBytes, modules: m.modules, cached, key: m.key, kernelRelease: m.kernelRelease,
    packages: m.packages, missingModules: m.missingModules, builtinModules: m.builtinModules, firmware: m.firmware, agent: m.agent,
    cpioBytes: m.cpioBytes, sha256: m.sha256,
  };
}

/** A file of an extracted package tree, following its symlinks inside the tree (absolute ones too). */
function readInTree(root: string, rel: string): Buffer | undefined {
  let p = path.join(root, rel);
  for (let hops = 0; hops < 16; hops++) {
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { return undefined; }
    if (!st.isSymbolicLink()) return st.isFile() ? fs.readFileSync(p) : undefined;
    const target = fs.readlinkSync(p);
    p = target.startsWith('/') ? path.join(root, target) : path.join(path.dirname(p), target);
  }
  throw new Error(`${rel}: too many symbolic links in the extracted packages`);
}

/**
 * Put PROGRAMS into the image with the closure of their DT_NEEDED libraries (into
 * /lib/x86_64-linux-gnu, which the loader searches without a cache) and their interpreter.
 * Returns the library sonames shipped.
 */
function shipPrograms(root: string, file: (p: string, data: Buffer, mode?: number) => void, symlink: (p: string, target: string) => void): string[] {
  const shipped: string[] = [];
  const interpreters = new Set<string>();
  const queue: Array<{ name: string; data: Buffer }> = [];
  for (const prog of PROGRAMS) {
    const data = readInTree(root, prog.path);
    if (!data) throw new Error(`${prog.package} has no ${prog.path}`);
    file(prog.path, data, 0o755);
    queue.push({ name: prog.path, data });
  }
  while (queue.length) {
    const { name, data } = queue.shift()!;
    const deps = elfDeps(data, name);
    if (deps.interpreter) interpreters.add(deps.interpreter);
    for (const soname of deps.needed) {
      if (shipped.includes(soname)) continue;
      const lib = LIB_DIRS.map((d) => readInTree(root, `${d}/${soname}`)).find((b) => b !== undefined);
      if (!lib) throw new Error(`${name} needs ${soname}, which no package of its dependency closure provides`);
      shipped.push(soname);
      file(`lib/x86_64-linux-gnu/${soname}`, lib, 0o755);
      queue.push({ name: soname, data: lib });
    }
  }
  for (const interp of interpreters) {
    const base = path.basename(interp);
    if (!shipped.includes(base)) {
      const data = LIB_DIRS.map((d) => readInTree(root, `${d}/${base}`)).find((x) => x !== undefined);
      if (!data) throw new Error(`the ELF interpreter ${interp} is in no package of the programs' closure`);
      file(`lib/x86_64-linux-gnu/${base}`, data, 0o755);
    }
    if (interp !== `/lib/x86_64-linux-gnu/${base}`) symlink(interp.replace(/^\//, ''), `/lib/x86_64-linux-gnu/${base}`);
  }
  return shipped.sort();
}

export async function buildDiscoveryImage(opts: BuildOptions): Promise<BuildResult> {
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const envEpoch = process.env.SOURCE_DATE_EPOCH;
  const epoch = opts.sourceDateEpoch ?? (envEpoch && /^\d+$/.test(envEpoch) ? Number(envEpoch) : 0);
  const agentPath = opts.agentScript === undefined ? (fs.existsSync(AGENT_SCRIPT) ? AGENT_SCRIPT : null) : opts.agentScript;
  const base = (opts.modules ?? DEFAULT_MODULES).map((m) => m.replace(/-/g, '_'));
  const modules = [...new Set([...base, ...(opts.extraModules ?? []).map((m) => m.replace(/-/g, '_'))])].sort();
  for (const m of modules) if (!/^[A-Za-z0-9_]+$/.test(m)) throw new Error(`bad module name "${m}"`);

  const inputs: Inputs = {
    packages: await resolvePackagesCached(opts.cacheDir),
    modules,
    initTemplate: readText(INIT_TEMPLATE),
    udhcpcScript: readText(UDHCPC_SCRIPT),
    agent: agentPath ? fs.readFileSync(agentPath) : null,
    epoch,
  };
  const key = cacheKey(inputs);
  const entryDir = path.join(opts.cacheDir, 'discovery', key);
  const manifestFile = path.join(entryDir, 'manifest.json');
  if (!opts.force && fs.existsSync(manifestFile)) {
    const m = JSON.parse(readText(manifestFile)) as Manifest;
    const now = new Date();
    fs.utimesSync(entryDir, now, now); // recently used: pruned last
    log(`cached image ${key.slice(0, 16)} (${inputs.packages.kernel.name} ${inputs.packages.kernel.version})`);
    return result(m, install(entryDir, opts.outDir, m), true);
  }

  const debDir = path.join(opts.cacheDir, 'debs');
  const kernelDeb = await fetchDeb(inputs.packages.kernel, debDir, log);
  const busyboxDeb = await fetchDeb(inputs.packages.busybox, debDir, log);
  const programDebs: string[] = [];
  for (const p of inputs.packages.programs) programDebs.push(await fetchDeb(p, debDir, log));

  fs.mkdirSync(opts.cacheDir, { recursive: true });
  removeStaleWork(opts.cacheDir);
  const work = fs.mkdtempSync(path.join(opts.cacheDir, `work-${process.pid}-`));
  try {
    log(`extracting ${path.basename(kernelDeb)} and ${path.basename(busyboxDeb)}`);
    const kroot = path.join(work, 'kernel'), broot = path.join(work, 'busybox');
    await Promise.all([sh('dpkg-deb', ['-x', kernelDeb, kroot]), sh('dpkg-deb', ['-x', busyboxDeb, broot])]);
    const proot = path.join(work, 'programs');
    for (const deb of programDebs) await sh('dpkg-deb', ['-x', deb, proot]);

    const releases = fs.readdirSync(path.join(kroot, 'lib', 'modules'));
    if (releases.length !== 1) throw new Error(`expected one kernel release in ${kernelDeb}, found: ${releases.join(', ')}`);
    const release = releases[0];
    const vmlinuz = fs.readFileSync(path.join(kroot, 'boot', `vmlinuz-${release}`));
    const moduleDir = path.join(kroot, 'lib', 'modules', release);

    const index = indexModules(moduleDir);
    const builtin = builtinModules(moduleDir);
    // Later Debian kernels compress modules; busybox insmod may not read those: decompress here.
    const moduleData = new Map<string, { rel: string; data: Buffer }>();
    const readModule = (rel: string) => {
      let m = moduleData.get(rel);
      if (!m) {
        const z = /\.ko\.(xz|zst|gz)$/.exec(rel);
        const file = path.join(moduleDir, rel);
        if (!z) m = { rel, data: fs.readFileSync(file) };
        else {
          const [cmd, ...args] = { xz: ['xz', '-dc'], zst: ['zstd', '-dcq'], gz: ['gzip', '-dc'] }[z[1] as 'xz' | 'zst' | 'gz'];
          m = { rel: rel.replace(/\.(xz|zst|gz)$/, ''), data: execFileSync(cmd, [...args, file], { maxBuffer: 256 << 20 }) };
        }
        moduleData.set(rel, m);
      }
      return m;
    };
    const { order, missing, builtin: isBuiltin } = resolveClosure(modules, index, builtin, (rel) => readModule(rel).data);
    if (missing.length) log(`not in kernel ${release}: ${missing.join(', ')}`);

    const entries: CpioEntry[] = [];
    const dirs = new Set<string>();
    const dir = (p: string) => {
      const parts = p.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const d = parts.slice(0, i).join('/');
        if (!dirs.has(d)) { dirs.add(d); entries.push({ path: d, type: 'dir', mode: d === 'tmp' ? 0o1777 : 0o755 }); }
      }
    };
    const file = (p: string, data: Buffer | string, mode = 0o644) => {
      if (p.includes('/')) dir(p.slice(0, p.lastIndexOf('/')));
      entries.push({ path: p, type: 'file', data: Buffer.isBuffer(data) ? data : Buffer.from(data), mode });
    };
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'root', 'etc', 'var/lib', 'var/log', 'mnt']) dir(d);
    entries.push({ path: 'dev/console', type: 'char', major: 5, minor: 1, mode: 0o600 });
    entries.push({ path: 'dev/null', type: 'char', major: 1, minor: 3, mode: 0o666 });

    // busybox and its applets (skipping "busybox" itself: a self-link would replace the binary).
    const busybox = path.join(broot, 'bin', 'busybox');
    file('bin/busybox', fs.readFileSync(busybox), 0o755);
    const applets = (await sh(busybox, ['--list-full'])).split('\n').map((l) => l.trim()).filter((l) => l && !l.endsWith('/busybox'));
    for (const a of applets) {
      // Top-level names (linuxrc) are not wanted: the kernel runs /init.
      if (a.startsWith('/') || a.includes('..') || !a.includes('/')) continue;
      dir(a.slice(0, a.lastIndexOf('/')));
      entries.push({ path: a, type: 'symlink', target: '/bin/busybox' });
    }

    // PROGRAMS, their ELF interpreter and every shared library they need, from the packages.
    const shippedLibs = shipPrograms(proot, file, (p, target) => { dir(p.slice(0, p.lastIndexOf('/'))); entries.push({ path: p, type: 'symlink', target }); });

    // Modules, with the modules.dep / modules.alias busybox modprobe reads.
    const kdir = `lib/modules/${release}`;
    const shipped: ModInfo[] = [];
    for (const m of order) {
      const p = readModule(m.rel);
      file(`${kdir}/${p.rel}`, p.data);
      shipped.push({ ...m, rel: p.rel });
    }
    file(`${kdir}/modules.dep`, modulesDep(shipped));
    file(`${kdir}/modules.alias`, modulesAlias(shipped));
    for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
      const src = path.join(moduleDir, f);
      if (f !== 'modules.order' && fs.existsSync(src)) file(`${kdir}/${f}`, fs.readFileSync(src));
    }
    const shippedNames = new Set(shipped.map((m) => m.name));
    // Modules with no device alias are never matched by hardware: /init loads them by name.
    const hasDeviceAlias = (n: string) => shipped.find((m) => m.name === n)!.aliases.some((a) => /^[a-z0-9]+:/.test(a) && !a.startsWith('devname:'));
    const always = [...new Set([...ALWAYS_LOAD, ...modules.filter((n) => !DEFAULT_MODULES.includes(n) && shippedNames.has(n) && !hasDeviceAlias(n))])]
      .filter((n) => shippedNames.has(n)).sort();
    file(`${kdir}/fulcrum.load`, always.map((n) => n + '\n').join(''));

    const firmware: Record<string, string[]> = {};
    for (const m of shipped) if (m.firmware.length) firmware[m.name] = [...m.firmware].sort();

    // Scripts, the agent, and a few files a shell expects.
    const imageId = key.slice(0, 16);
    file('init', renderInit(inputs.initTemplate, { IMAGE_ID: imageId, KERNEL_RELEASE: release, AGENT: inputs.agent ? 'yes' : 'no' }), 0o755);
    file('usr/share/udhcpc/default.script', inputs.udhcpcScript, 0o755);
    if (inputs.agent) file('usr/bin/fulcrum-agent', inputs.agent, 0o755);
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
    file('etc/group', 'root:x:0:\n');
    file('etc/hosts', '127.0.0.1 localhost\n::1 localhost\n');
    file('etc/hostname', 'fulcrum-discovery\n');
    file('etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1=\'fulcrum-discovery:\\w\\$ \'\n');
    file('etc/fulcrum-image', [
      `image=${imageId}`, `key=${key}`, `builder=${BUILDER_VERSION}`, `kernel=${release}`,
      `${inputs.packages.kernel.name}=${inputs.packages.kernel.version}`, `${inputs.packages.busybox.name}=${inputs.packages.busybox.version}`,
      ...inputs.packages.programs.map((p) => `${p.name}=${p.version}`), `libraries=${shippedLibs.join(',')}`,
      `agent=${inputs.agent ? sha256(inputs.agent) : 'none'}`, `modules=${shipped.map((m) => m.name).join(',')}`, '',
    ].join('\n'));

    const cpio = writeCpio(entries, epoch);
    const initrd = gzipFixed(cpio);

    const manifest: Manifest = {
      key, builder: BUILDER_VERSION, kernelRelease: release,
      packages: [inputs.packages.kernel, inputs.packages.busybox, ...inputs.packages.programs],
      modules: shipped.map((m) => m.name), missingModules: missing, builtinModules: isBuiltin, firmware,
      agent: !!inputs.agent, cpioBytes: cpio.length,
      sizeBytes: { kernel: vmlinuz.length, initrd: initrd.length },
      sha256: { kernel: sha256(vmlinuz), initrd: sha256(initrd) },
      sourceDateEpoch: epoch,
    };
    // Publish the cache entry whole: build it beside, then rename into place.
    const staging = path.join(work, 'entry');
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'vmlinuz'), vmlinuz);
    fs.writeFileSync(path.join(staging, 'initrd.img'), initrd);
    fs.writeFileSync(path.join(staging, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    fs.mkdirSync(path.dirname(entryDir), { recursive: true });
    fs.rmSync(entryDir, { recursive: true, force: true });
    try { fs.renameSync(staging, entryDir); } catch (err) {
      // Another build published the same key meanwhile: same inputs, same bytes.
      if (!fs.existsSync(manifestFile)) throw err;
    }
    pruneImages(path.dirname(entryDir), KEEP_IMAGES, key);
    log(`built ${imageId}: kernel ${release} ${(vmlinuz.length / 1e6).toFixed(2)} MB, initrd ${(initrd.length / 1e6).toFixed(2)} MB ` +
      `(${(cpio.length / 1e6).toFixed(2)} MB uncompressed, ${shipped.length} modules) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return result(manifest, install(entryDir, opts.outDir, manifest), false);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * `fulcrum image build discovery [--out DIR] [--cache DIR] [--data-dir DIR] [--module NAME]...
 * [--force]`: args are what follows `image build`. Returns the exit code; prints a summary.
 */
export async function runImageBuild(args: string[], io: { out?: (s: string) => void; err?: (s: string) => void } = {}): Promise<number> {
  const out = io.out ?? ((s: string) => process.stdout.write(s));
  const err = io.err ?? ((s: string) => process.stderr.write(s));
  const usage = 'usage: fulcrum image build discovery [--out DIR] [--cache DIR] [--data-dir DIR] [--module NAME]... [--modules LIST] [--no-agent] [--force] [--json]\n';
  let what: string | undefined, outDir: string | undefined, cacheDir: string | undefined, dataDir = './data', force = false, json = false, noAgent = false;
  const extra: string[] = [];
  let baseModules: string[] | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      return v;
    };
    try {
      switch (a) {
        case '--out': outDir = value(); break;
        case '--cache': cacheDir = value(); break;
        case '--data-dir': dataDir = value(); break;
        case '--module': extra.push(...value().split(',').filter(Boolean)); break;
        case '--modules': baseModules = value().split(',').filter(Boolean); break;
        case '--force': force = true; break;
        case '--no-agent': noAgent = true; break;
        case '--json': json = true; break;
        case '-h': case '--help': out(usage); return 0;
        default:
          if (a.startsWith('-') || what) throw new UsageError(`unexpected argument "${a}"`);
          what = a;
      }
    } catch (e) {
      if (e instanceof UsageError) { err(`error: ${e.message}\n${usage}`); return 2; }
      throw e;
    }
  }
  if (what !== 'discovery') { err(`error: ${what ? `unknown image "${what}"` : 'which image?'} (only "discovery")\n${usage}`); return 2; }
  try {
    const r = await buildDiscoveryImage({
      outDir: path.resolve(outDir ?? path.join(dataDir, 'boot', 'discovery')),
      cacheDir: path.resolve(cacheDir ?? path.join(dataDir, 'cache', 'images')),
      extraModules: extra, modules: baseModules, force, agentScript: noAgent ? null : undefined,
      log: json ? undefined : (m) => err(`${m}\n`),
    });
    if (json) { out(JSON.stringify(r, null, 2) + '\n'); return 0; }
    const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
    out([
      `discovery image ${r.key.slice(0, 16)}${r.cached ? ' (cached)' : ''}`,
      `  kernel  ${r.kernel}  ${mb(r.sizeBytes.kernel)}  (${r.kernelRelease})`,
      `  initrd  ${r.initrd}  ${mb(r.sizeBytes.initrd)}  (${mb(r.cpioBytes)} uncompressed)`,
      `  agent   ${r.agent ? 'included' : 'not included (the ramdisk fetches it from the server)'}`,
      `  modules ${r.modules.length}: ${[...r.modules].sort().join(' ')}`,
      ...(r.missingModules.length ? [`  not in this kernel: ${r.missingModules.join(' ')}`] : []),
      ...(r.builtinModules.length ? [`  built into the kernel: ${r.builtinModules.join(' ')}`] : []),
      '',
    ].join('\n'));
    return 0;
  } catch (e) {
    err(`error: ${(e as Error).message}\n`);
    return 1;
  }
}
class UsageError extends Error {}

