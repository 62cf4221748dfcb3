// Kernel module metadata read straight from the `.ko` files (the `.modinfo` ELF section), so the
// image builder needs no kmod on the build host: dependencies, soft dependencies, device aliases
// and firmware names. From them it writes the `modules.dep` and `modules.alias` that busybox
// modprobe reads in the ramdisk.
import fs from 'node:fs';
import path from 'node:path';

export interface ModInfo {
  /** Normalised name (dashes → underscores), as the kernel and modprobe know it. */
  name: string;
  /** Path relative to /lib/modules/<release>/, e.g. kernel/drivers/net/virtio_net.ko. */
  rel: string;
  depends: string[];
  /** `softdep=pre: a b post: c` → the pre and post modules. */
  softdep: string[];
  aliases: string[];
  firmware: string[];
}

export const normaliseModuleName = (n: string) => n.replace(/-/g, '_');

/** The NUL-separated key=value strings of an ELF64 little-endian object's `.modinfo` section. */
export function readModinfoSection(elf: Buffer): Array<[string, string]> {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (elf[4] !== 2 || elf[5] !== 1) throw new Error('only 64-bit little-endian modules are supported');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a), shnum = elf.readUInt16LE(0x3c), shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const base = shoff + i * shentsize;
    return { name: elf.readUInt32LE(base), offset: Number(elf.readBigUInt64LE(base + 0x18)), size: Number(elf.readBigUInt64LE(base + 0x20)) };
  };
  const strtab = section(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const start = strtab.offset + s.name;
    const end = elf.indexOf(0, start);
    if (elf.toString('latin1', start, end) !== '.modinfo') continue;
    return elf.toString('utf8', s.offset, s.offset + s.size).split('\0').filter(Boolean).map((kv) => {
      const eq = kv.indexOf('=');
      return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
    });
  }
  return [];
}

export function parseModinfo(rel: string, elf: Buffer): ModInfo {
  const fields = readModinfoSection(elf);
  const all = (k: string) => fields.filter(([key]) => key === k).map(([, v]) => v);
  const base = path.basename(rel).replace(/\.ko(\.(xz|zst|gz))?$/, '');
  const softdep = all('softdep').flatMap((v) => v.split(/\s+/).filter((w) => w && !/^(pre|post):$/.test(w)));
  return {
    name: normaliseModuleName(all('name')[0] || base),
    rel,
    depends: all('depends').flatMap((v) => v.split(',')).filter(Boolean).map(normaliseModuleName),
    softdep: softdep.map(normaliseModuleName),
    aliases: all('alias'),
    firmware: all('firmware'),
  };
}

/** Every module file under a module tree, by normalised name → relative path. */
export function indexModules(moduleDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(moduleDir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.set(normaliseModuleName(e.name.replace(/\.ko(\.(xz|zst|gz))?$/, '')), r);
    }
  };
  walk('kernel');
  return out;
}

/** Names of modules built into the kernel (`modules.builtin` lists them as .ko paths). */
export function builtinModules(moduleDir: string): Set<string> {
  const file = path.join(moduleDir, 'modules.builtin');
  if (!fs.existsSync(file)) return new Set();
  return new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => normaliseModuleName(path.basename(l).replace(/\.ko$/, ''))));
}

export interface Closure {
  /** Every module to ship, in a valid load order (dependencies first), ties broken by name. */
  order: ModInfo[];
  /** Requested modules that exist neither as a module nor built in. */
  missing: string[];
  /** Requested modules that are built into the kernel (nothing to ship). */
  builtin: string[];
}

/**
 * The requested modules plus everything they depend on (hard dependencies and soft ones that
 * exist), with a deterministic topological order. `read(rel)` returns a module file's bytes.
 */
export function resolveClosure(requested: string[], index: Map<string, string>, builtin: Set<string>, read: (rel: string) => Buffer): Closure {
  const info = new Map<string, ModInfo>();
  const missing: string[] = [], isBuiltin: string[] = [];
  const queue = [...new Set(requested.map(normaliseModuleName))];
  const requestedSet = new Set(queue);
  while (queue.length) {
    const name = queue.shift()!;
    if (info.has(name)) continue;
    const rel = index.get(name);
    if (!rel) {
      if (builtin.has(name)) { if (requestedSet.has(name)) isBuiltin.push(name); }
      else if (requestedSet.has(name)) missing.push(name);
      else throw new Error(`module dependency "${name}" is neither a module file nor built in`);
      continue;
    }
    const m = parseModinfo(rel, read(rel));
    m.name = name;
    // A soft dependency is optional by definition: keep the ones this kernel has as modules.
    m.softdep = m.softdep.filter((s) => index.has(s));
    info.set(name, m);
    queue.push(...m.depends, ...m.softdep);
  }
  // Kahn's algorithm over hard dependencies; the ready set is kept sorted so the order is stable.
  const order: ModInfo[] = [];
  const done = new Set<string>();
  const pending = new Set([...info.keys()].sort());
  while (pending.size) {
    const ready = [...pending].filter((n) => info.get(n)!.depends.every((d) => done.has(d) || !info.has(d))).sort();
    if (!ready.length) throw new Error(`module dependency cycle among: ${[...pending].join(', ')}`);
    for (const n of ready) { order.push(info.get(n)!); done.add(n); pending.delete(n); }
  }
  return { order, missing: missing.sort(), builtin: isBuiltin.sort() };
}

/** All hard dependencies of `name` (transitively), in load order. */
function loadOrderOf(name: string, byName: Map<string, ModInfo>, position: Map<string, number>): string[] {
  const seen = new Set<string>();
  const visit = (n: string) => {
    for (const d of byName.get(n)?.depends ?? []) if (!seen.has(d) && byName.has(d)) { seen.add(d); visit(d); }
  };
  visit(name);
  return [...seen].sort((a, b) => position.get(a)! - position.get(b)!);
}

/**
 * `modules.dep` as kmod's depmod writes it: `module: deps...`, the dependencies listed so that the
 * last one is loaded first (busybox modprobe reads it the same way).
 */
export function modulesDep(order: ModInfo[]): string {
  const byName = new Map(order.map((m) => [m.name, m]));
  const position = new Map(order.map((m, i) => [m.name, i]));
  return order.map((m) => {
    const deps = loadOrderOf(m.name, byName, position).reverse().map((d) => byName.get(d)!.rel);
    return `${m.rel}:${deps.length ? ' ' + deps.join(' ') : ''}\n`;
  }).join('');
}

/** `modules.alias`: `alias PATTERN module` lines, and `modules.softdep` for soft dependencies. */
export function modulesAlias(order: ModInfo[]): string {
  const lines: string[] = [];
  for (const m of [...order].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    for (const a of m.aliases) lines.push(`alias ${a} ${m.name}\n`);
  }
  return '# Aliases of the modules in this image (written by Fulcrum from each module\'s .modinfo)\n' + lines.join('');
}
