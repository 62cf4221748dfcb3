// Content packs (docs/content-packs.md): read a pack directory, validate it and return the
// bundle the server imports in one transaction. The object shapes are field tables checked
// by one generic walker; the cross-object rules are tables too. The only I/O is reading files.
import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';

import { FLAGS, JIGS, findRoleCycle, type Flag, type Jig } from '../model/role-graph.js';

export { FLAGS, JIGS, findRoleCycle, type Flag, type Jig };

export interface RoleSpec {
  name: string;
  description: string;
  jig: Jig;
  flags: Flag[];
  requires: string[];
  wants_attribs: string[];
  preceeds: string[];
  provides: string[];
  conflicts: string[];
  template: Record<string, unknown>;
  /** Seconds in TRANSITION before ERROR. */
  timeout: number;
  /** Automatic retries after ERROR; backoff in seconds, doubling each time. */
  retry: { count: number; backoff: number };
  /** `file:` strings are already replaced by the file's content. */
  jig_config: Record<string, unknown>;
}
export interface AttribSpec {
  name: string;
  description: string;
  /** Owning role; null for a node-scoped attrib. */
  role: string | null;
  map: string;
  schema: Record<string, unknown>;
  secret: boolean;
}
export interface ProfileSpec { name: string; description: string; values: Record<string, unknown> }
/** What a node boots next (docs/provisioning.md); template contents may be `file:` references. */
export interface BootenvSpec {
  name: string; description: string; netboot: boolean; kernel: string | null; initrds: string[];
  boot_params: string; templates: Array<{ path: string; contents: string }>; required_params: string[]; kexec: boolean;
}
/** A network (docs/networks.md); its ranges and router are checked by the server's rules at import. */
export interface NetworkSpec {
  name: string; description: string; category: string; conduit: string; vlan: number; use_vlan: boolean; use_bridge: boolean;
  team_mode: number; use_team: boolean; configure: boolean; v6prefix: string | null;
  ranges: Array<{ name: string; first: string; last: string; allow_bound_leases: boolean | null; allow_anon_leases: boolean | null; bound_lease_time: number; anon_lease_time: number }>;
  router: { address: string; pref: number } | null;
}
export interface PackBundle {
  name: string;
  version: string;
  description: string;
  roles: RoleSpec[];
  attribs: AttribSpec[];
  profiles: ProfileSpec[];
  bootenvs: BootenvSpec[];
  networks: NetworkSpec[];
  /** sha256 (hex) of the canonical JSON of everything else: see packDigest. */
  digest: string;
}
export type PackContent = Omit<PackBundle, 'digest'>;
export interface KnownNames { roles: Set<string>; attribs: Set<string> }

/** A problem in a pack, located by file and key path: `roles/etcd.yaml: roles[0].requires[1]: unknown role "x"`. */
export class PackError extends Error {
  override readonly name = 'PackError';
  constructor(readonly file: string, readonly key: string, readonly reason: string) {
    super([file, key, reason].filter(Boolean).join(': '));
  }
}

// ---- Generic checks. They throw Invalid (key path + reason); inFile adds the file name. ----

class Invalid extends Error {
  constructor(readonly key: string, readonly reason: string) { super(reason); }
}
const invalid = (key: string, reason: string): never => { throw new Invalid(key, reason); };
type Check<T> = (v: unknown, key: string) => T;
type Plain = Record<string, unknown>;

const at = (key: string, k: string | number): string =>
  typeof k === 'number' ? `${key}[${k}]` : key ? `${key}.${k}` : k;
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};
const isPlain = (v: unknown): v is Plain =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;

const NAME = /^[a-z0-9][a-z0-9-]*$/;
const MAP_PATH = /^[^/]+(\/[^/]+)*$/;

const str: Check<string> = (v, key) => typeof v === 'string' ? v : invalid(key, `must be a string, got ${show(v)}`);
const bool: Check<boolean> = (v, key) => typeof v === 'boolean' ? v : invalid(key, `must be true or false, got ${show(v)}`);
const name: Check<string> = (v, key) => NAME.test(str(v, key)) ? v as string
  : invalid(key, `invalid name ${show(v)}: use lower-case letters, digits and "-", not starting with "-"`);
const version: Check<string> = (v, key) => typeof v === 'number'
  ? invalid(key, `must be a string; quote it (version: "${v}") so YAML keeps it as written`)
  : str(v, key) !== '' ? v as string : invalid(key, 'must not be empty');
const mapPath: Check<string> = (v, key) => MAP_PATH.test(str(v, key)) ? v as string
  : invalid(key, `invalid map path ${show(v)}: non-empty segments separated by "/", e.g. etcd/peers`);
const int = (min: number): Check<number> => (v, key) =>
  Number.isInteger(v) && (v as number) >= min ? v as number : invalid(key, `must be an integer >= ${min}, got ${show(v)}`);
const oneOf = <T extends string>(what: string, allowed: readonly T[]): Check<T> => (v, key) =>
  allowed.includes(v as T) ? v as T : invalid(key, `unknown ${what} ${show(v)} (one of: ${allowed.join(', ')})`);
const nullable = <T>(check: Check<T>): Check<T | null> => (v, key) => v === null ? null : check(v, key);
const list = <T>(item: Check<T>): Check<T[]> => (v, key) => {
  if (!Array.isArray(v)) return invalid(key, `must be a list, got ${show(v)}`);
  const out = v.map((x, i) => item(x, at(key, i)));
  out.forEach((x, i) => { if (out.indexOf(x) !== i) invalid(at(key, i), `${show(x)} is listed twice`); });
  return out;
};
/** Plain JSON data only (YAML can also say .inf, .nan). */
const json: Check<unknown> = (v, key) => {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : invalid(key, `${v} is not a JSON number`);
  if (Array.isArray(v)) return v.map((x, i) => json(x, at(key, i)));
  if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, json(x, at(key, k))]));
  return invalid(key, `not JSON data: ${show(v)}`);
};
const object: Check<Plain> = (v, key) => isPlain(v) ? json(v, key) as Plain : invalid(key, `must be a mapping, got ${show(v)}`);

/** A field is [check, default]; REQUIRED instead of a default makes it required. Absent and null are the same. */
const REQUIRED = Symbol('required');
type Fields<T> = { [K in keyof T]-?: [Check<T[K]>, T[K] | typeof REQUIRED] };
const record = <T>(fields: Fields<T>): Check<T> => (v, key) => {
  if (!isPlain(v)) return invalid(key, `must be a mapping, got ${show(v)}`);
  for (const k of Object.keys(v)) {
    if (!Object.hasOwn(fields, k)) invalid(at(key, k), `unknown key (expected one of: ${Object.keys(fields).join(', ')})`);
  }
  const out: Plain = {};
  for (const [k, [check, dflt]] of Object.entries(fields) as [string, [Check<unknown>, unknown]][]) {
    if (v[k] !== undefined && v[k] !== null) out[k] = check(v[k], at(key, k));
    else if (dflt === REQUIRED) invalid(at(key, k), 'missing (required)');
    else out[k] = structuredClone(dflt);
  }
  return out as T;
};

// ---- The format (docs/content-packs.md) as field tables. ----

const ROLE = record<RoleSpec>({
  name: [name, REQUIRED],
  description: [str, ''],
  jig: [oneOf('jig', JIGS), 'noop'],
  flags: [list(oneOf('flag', FLAGS)), []],
  requires: [list(name), []],
  wants_attribs: [list(name), []],
  preceeds: [list(name), []],
  provides: [list(name), []],
  conflicts: [list(name), []],
  template: [object, {}],
  timeout: [int(1), 1800],
  retry: [record<RoleSpec['retry']>({ count: [int(0), 0], backoff: [int(0), 30] }), { count: 0, backoff: 30 }],
  jig_config: [object, {}],
});
const ATTRIB = record<AttribSpec>({
  name: [name, REQUIRED],
  description: [str, ''],
  role: [nullable(name), null],
  map: [mapPath, REQUIRED],
  schema: [object, {}],
  secret: [bool, false],
});
const PROFILE = record<ProfileSpec>({ name: [name, REQUIRED], description: [str, ''], values: [object, {}] });
const TEMPLATE = record<BootenvSpec['templates'][number]>({ path: [str, REQUIRED], contents: [str, REQUIRED] });
const BOOTENV = record<BootenvSpec>({
  name: [name, REQUIRED], description: [str, ''], netboot: [bool, true], kernel: [nullable(str), null],
  initrds: [list(str), []], boot_params: [str, ''], templates: [list(TEMPLATE), []], required_params: [list(str), []], kexec: [bool, false],
});
const RANGE = record<NetworkSpec['ranges'][number]>({
  name: [name, REQUIRED], first: [str, REQUIRED], last: [str, REQUIRED], allow_bound_leases: [nullable(bool), null], allow_anon_leases: [nullable(bool), null],
  bound_lease_time: [int(0), 0], anon_lease_time: [int(0), 0],
});
const NETWORK = record<NetworkSpec>({
  name: [name, REQUIRED], description: [str, ''], category: [name, REQUIRED], conduit: [str, REQUIRED], vlan: [int(0), 0], use_vlan: [bool, false],
  use_bridge: [bool, false], team_mode: [int(0), 5], use_team: [bool, false], configure: [bool, true], v6prefix: [nullable(str), null],
  ranges: [list(RANGE), []], router: [nullable(record<NonNullable<NetworkSpec['router']>>({ address: [str, REQUIRED], pref: [int(0), 65536] })), null],
});
const MANIFEST = record<PackContent>({
  name: [name, REQUIRED],
  version: [version, REQUIRED],
  description: [str, ''],
  roles: [list(ROLE), []],
  attribs: [list(ATTRIB), []],
  profiles: [list(PROFILE), []],
  bootenvs: [list(BOOTENV), []],
  networks: [list(NETWORK), []],
});

const KINDS = { roles: 'role', attribs: 'attrib', profiles: 'profile', bootenvs: 'bootenv', networks: 'network' } as const;
type Kind = keyof typeof KINDS;

// ---- Where each object came from, so later checks can name the file and key. ----

interface Origin { file: string; key: string }
const ORIGIN = new WeakMap<object, Origin>();
/** A bundle that crossed the wire has no files; its objects are then located in the pack by index. */
const locate = (bundle: PackContent, kind: Kind, i: number): Origin =>
  ORIGIN.get(bundle[kind][i]) ?? { file: `pack ${bundle.name}`, key: `${kind}[${i}]` };
const fail = (o: Origin, path: (string | number)[], reason: string): never => {
  throw new PackError(o.file, path.reduce<string>(at, o.key), reason);
};
function inFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof Invalid ? new PackError(file, e.key, e.reason) : e;
  }
}

// ---- Reading. ----

async function loadYaml(root: string, file: string): Promise<unknown> {
  const doc = parseDocument(await readFile(join(root, file), 'utf8'));
  const err = doc.errors[0];
  if (err) throw new PackError(file, '', `invalid YAML: ${err.message.split('\n')[0].replace(/:$/, '')}`);
  return doc.toJS();
}

/** `roles/*.yaml` etc.: one object per file, in file-name order, each called `<kind>[0]` in errors. */
async function readEach<T extends object>(root: string, kind: Kind, check: Check<T>): Promise<T[]> {
  const names = await readdir(join(root, kind)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  const out: T[] = [];
  for (const f of names.filter((n) => /\.ya?ml$/.test(n)).sort()) {
    const file = `${kind}/${f}`;
    const key = `${kind}[0]`;
    const obj = await loadYaml(root, file);
    const parsed = inFile(file, () => check(obj, key));
    ORIGIN.set(parsed, { file, key });
    out.push(parsed);
  }
  return out;
}

/** Replace every `file:<path>` string by that file's content; the path stays inside the pack. In order, so the first bad reference is reported. */
async function resolveFiles(root: string, v: unknown, o: Origin): Promise<unknown> {
  if (typeof v === 'string' && v.startsWith('file:')) return readPackFile(root, v.slice('file:'.length), o);
  if (!Array.isArray(v) && !isPlain(v)) return v;
  const out: Plain | unknown[] = Array.isArray(v) ? [] : {};
  for (const [k, x] of Object.entries(v)) {
    (out as Plain)[k] = await resolveFiles(root, x, { ...o, key: at(o.key, Array.isArray(v) ? Number(k) : k) });
  }
  return out;
}

async function readPackFile(root: string, rel: string, o: Origin): Promise<string> {
  const bad = (reason: string): never => fail(o, [], `"file:${rel}": ${reason}`);
  if (rel === '') bad('no file named');
  if (isAbsolute(rel)) bad('absolute paths are not allowed; name a file relative to the pack root');
  if (rel.split(/[\\/]/).includes('..')) bad('".." is not allowed; the file must be inside the pack');
  const real = await realpath(join(root, rel)).catch(() => bad('no such file in the pack'));
  if (!real.startsWith(root + sep)) bad('is a symlink leading outside the pack');
  if (!(await stat(real)).isFile()) bad('not a regular file');
  return readFile(real, 'utf8');
}

/** Read, validate and bundle the pack in `dir`. `standalone`: every reference must resolve inside the pack. */
export async function readPack(dir: string, opts: { standalone?: boolean } = {}): Promise<PackBundle> {
  const root = await realpath(dir).catch(() => { throw new PackError('pack.yaml', '', `no content pack at ${dir}`); });
  const raw = await loadYaml(root, 'pack.yaml').catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT' ? new PackError('pack.yaml', '', `missing: ${root} is not a content pack directory`) : e;
  });
  const content = inFile('pack.yaml', () => MANIFEST(raw, ''));
  for (const kind of Object.keys(KINDS) as Kind[]) {
    content[kind].forEach((spec, i) => ORIGIN.set(spec, { file: 'pack.yaml', key: `${kind}[${i}]` }));
  }
  content.roles.push(...await readEach(root, 'roles', ROLE));
  content.attribs.push(...await readEach(root, 'attribs', ATTRIB));
  content.profiles.push(...await readEach(root, 'profiles', PROFILE));
  content.bootenvs.push(...await readEach(root, 'bootenvs', BOOTENV));
  content.networks.push(...await readEach(root, 'networks', NETWORK));
  for (const env of content.bootenvs) {
    const o = ORIGIN.get(env)!;
    env.templates = await resolveFiles(root, env.templates, { ...o, key: at(o.key, 'templates') }) as BootenvSpec['templates'];
  }
  for (const role of content.roles) {
    const o = ORIGIN.get(role)!;
    role.jig_config = await resolveFiles(root, role.jig_config, { ...o, key: at(o.key, 'jig_config') }) as Plain;
  }
  checkPack(content);
  if (opts.standalone) validateReferences(content, { roles: new Set(), attribs: new Set() });
  return { ...content, digest: packDigest(content) };
}

/**
 * Validate a bundle that crossed the wire (the server trusts no client) by the same rules, except
 * references to stored objects (see validateReferences). The digest is recomputed, not trusted.
 */
export function checkBundle(obj: unknown): PackBundle {
  const fields = isPlain(obj) ? Object.fromEntries(Object.entries(obj).filter(([k]) => k !== 'digest')) : obj;
  const content = inFile('bundle', () => MANIFEST(fields, ''));
  checkPack(content);
  return { ...content, digest: packDigest(content) };
}

// ---- Rules across objects. ----

/** Rules on one role: [key, reason it is wrong or undefined]. */
const ROLE_RULES: [keyof RoleSpec, (r: RoleSpec) => string | undefined][] = [
  ['flags', (r) => r.flags.includes('abstract') && r.flags.length > 1
    ? 'an abstract role is never bound, so it takes no other flag' : undefined],
  ['jig', (r) => r.flags.includes('abstract') && r.jig !== 'noop'
    ? 'an abstract role is never bound or run: use jig noop (or leave jig out)' : undefined],
  ['flags', (r) => r.flags.includes('service') && (r.flags.includes('discovery') || r.flags.includes('bootstrap'))
    ? 'a service role is bound on the deployment pseudo-node, so it cannot also be discovery or bootstrap' : undefined],
];
const RELATIONS = ['requires', 'wants_attribs', 'preceeds', 'provides', 'conflicts'] as const;
const TARGET = { requires: 'role', wants_attribs: 'attrib', preceeds: 'role', provides: 'role', conflicts: 'role' } as const;

function checkPack(pack: PackContent): void {
  for (const kind of Object.keys(KINDS) as Kind[]) {
    const seen = new Map<string, Origin>();
    pack[kind].forEach((spec, i) => {
      const first = seen.get(spec.name);
      if (first) fail(locate(pack, kind, i), ['name'], `duplicate ${KINDS[kind]} "${spec.name}" (also at ${first.file}: ${first.key})`);
      seen.set(spec.name, locate(pack, kind, i));
    });
  }
  pack.roles.forEach((r, i) => {
    const o = locate(pack, 'roles', i);
    for (const [key, rule] of ROLE_RULES) { const why = rule(r); if (why) fail(o, [key], why); }
    for (const rel of RELATIONS) {
      if (TARGET[rel] === 'role' && r[rel].includes(r.name)) fail(o, [rel, r[rel].indexOf(r.name)], 'a role cannot name itself');
    }
    r.conflicts.forEach((c, j) => { if (r.requires.includes(c)) fail(o, ['conflicts', j], `"${c}" is also required`); });
  });
  const roleNames = new Set(pack.roles.map((r) => r.name));
  const ajv = new Ajv({ strict: false });
  const validators = new Map<string, ValidateFunction>();
  pack.attribs.forEach((a, i) => {
    const o = locate(pack, 'attribs', i);
    if (a.role !== null && !roleNames.has(a.role)) {
      fail(o, ['role'], `unknown role "${a.role}": an attrib's owning role must be in the same pack${suggest(a.role, roleNames)}`);
    }
    try {
      validators.set(a.name, ajv.compile(a.schema));
    } catch (e) {
      fail(o, ['schema'], `not a valid JSON schema: ${(e as Error).message.replace(/^schema is invalid: /, '').replace(/\bdata\//g, '')}`);
    }
  });
  pack.profiles.forEach((p, i) => {
    for (const [attrib, value] of Object.entries(p.values)) {
      const validate = validators.get(attrib);
      if (validate && !validate(value)) {
        fail(locate(pack, 'profiles', i), ['values', attrib], `does not match the schema of attrib "${attrib}": ${ajv.errorsText(validate.errors, { dataVar: 'value' })}`);
      }
    }
  });
  const owner = new Map(pack.attribs.map((a) => [a.name, a.role]));
  const parents = pack.roles.map((r) => ({ name: r.name, parents: [
    ...r.requires,
    ...r.preceeds,
    ...r.wants_attribs.map((a) => owner.get(a)).filter((o): o is string => typeof o === 'string' && o !== r.name),
  ] }));
  const cycle = findRoleCycle(parents);
  if (cycle) {
    fail(locate(pack, 'roles', pack.roles.findIndex((r) => r.name === cycle[0])), [],
      `role cycle: ${cycle.join(' -> ')} (each waits for the next through requires, wants_attribs or preceeds)`);
  }
}

/**
 * Every role and attrib a pack names must be in the pack or in `known` (already stored on the server).
 * readPack calls it with nothing known when standalone; the importer calls it with what is stored.
 */
export function validateReferences(bundle: PackContent, known: KnownNames): void {
  const names = {
    // A network in the pack brings its network-<name> role.
    role: new Set([...known.roles, ...bundle.roles.map((r) => r.name), ...bundle.networks.map((n) => `network-${n.name}`)]),
    attrib: new Set([...known.attribs, ...bundle.attribs.map((a) => a.name)]),
  };
  bundle.roles.forEach((r, i) => {
    for (const rel of RELATIONS) {
      const kind = TARGET[rel];
      r[rel].forEach((n, j) => {
        if (!names[kind].has(n)) fail(locate(bundle, 'roles', i), [rel, j], `unknown ${kind} "${n}"${suggest(n, names[kind])}`);
      });
    }
  });
  bundle.profiles.forEach((p, i) => {
    for (const n of Object.keys(p.values)) {
      if (!names.attrib.has(n)) fail(locate(bundle, 'profiles', i), ['values', n], `unknown attrib "${n}"${suggest(n, names.attrib)}`);
    }
  });
}

/** sha256 hex of the canonical JSON (keys sorted) of a pack's content: unchanged pack, same digest. */
export function packDigest(content: PackContent): string {
  const { name: n, version: v, description, roles, attribs, profiles, bootenvs, networks } = content;
  // networks only when present, so packs without any keep the digest they had before networks existed.
  return createHash('sha256').update(canonical({ name: n, version: v, description, roles, attribs, profiles, bootenvs, ...(networks.length ? { networks } : {}) })).digest('hex');
}
const canonical = (v: unknown): string => Array.isArray(v) ? `[${v.map(canonical).join(',')}]`
  : isPlain(v) ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
  : JSON.stringify(v);

/** ` (did you mean "x"?)` when a known name is within two edits: most unknown names are typos. */
function suggest(name: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestDist = 3;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}
