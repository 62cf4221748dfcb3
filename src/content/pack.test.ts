import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FLAGS, PackError, checkBundle, findRoleCycle, packDigest, readPack, validateReferences, type PackBundle,
} from './pack.js';

// dist/src/content/pack.test.js -> the repository root
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TEST_PACK = join(ROOT, 'content', 'test');

async function tempPack(files: Record<string, string>, links: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-pack-'));
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), text);
  }
  for (const [rel, target] of Object.entries(links)) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await symlink(target, join(dir, rel));
  }
  return dir;
}

async function withPack<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>, links?: Record<string, string>): Promise<T> {
  const dir = await tempPack(files, links);
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the test pack reads and validates standalone', async () => {
  const pack = await readPack(TEST_PACK, { standalone: true });
  assert.equal(pack.name, 'test');
  assert.match(pack.digest, /^[0-9a-f]{64}$/);
  const role = (n: string) => {
    const r = pack.roles.find((x) => x.name === n);
    assert.ok(r, `role ${n}`);
    return r;
  };
  // every flag and every relationship is exercised
  for (const flag of FLAGS) assert.ok(pack.roles.some((r) => r.flags.includes(flag)), `flag ${flag}`);
  for (const rel of ['requires', 'wants_attribs', 'preceeds', 'provides', 'conflicts'] as const) {
    assert.ok(pack.roles.some((r) => r[rel].length > 0), `relationship ${rel}`);
  }
  assert.deepEqual(role('test-retry').retry, { count: 2, backoff: 1 });
  assert.equal(role('test-slow').timeout, 2);
  assert.equal(role('test-base').timeout, 1800);
  assert.deepEqual(role('test-base').retry, { count: 0, backoff: 30 });
  assert.equal(role('test-milestone').jig, 'noop');
  assert.deepEqual(role('test-preceeds-b').preceeds, ['test-preceeds-a']);
  const attrib = (n: string) => pack.attribs.find((a) => a.name === n);
  for (const [n, map] of [['test-delay', 'test/delay'], ['test-fail', 'test/fail'], ['test-fail-times', 'test/fail_times']]) {
    assert.equal(attrib(n)?.map, map);
    assert.equal(attrib(n)?.role, null);
  }
  assert.equal(attrib('test-token')?.role, 'test-producer');
  assert.equal(attrib('test-abstract-value')?.role, 'test-abstract');
  assert.ok(pack.profiles.some((p) => p.name === 'test-slow-profile' && typeof p.values['test-delay'] === 'number'));
  // the README documents every role
  const readme = await readFile(join(TEST_PACK, 'README.md'), 'utf8');
  for (const r of pack.roles) assert.match(readme, new RegExp(`\`${r.name}\``), `README documents ${r.name}`);
  // the bundle is plain JSON
  assert.deepEqual(JSON.parse(JSON.stringify(pack)), pack);
});

test('the digest is stable and follows the content', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-pack-'));
  try {
    await cp(TEST_PACK, dir, { recursive: true });
    const a = await readPack(dir);
    const b = await readPack(dir);
    assert.equal(a.digest, b.digest);
    assert.equal(packDigest(a), a.digest);
    // key order in the YAML does not matter, content does
    const file = join(dir, 'profiles', 'test-slow-profile.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('3000', '4000'));
    assert.notEqual((await readPack(dir)).digest, a.digest);
    const [n, d, values, delay] = text.split('\n');
    await writeFile(file, [values, delay, d, n].join('\n'));
    assert.equal((await readPack(dir)).digest, a.digest);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('file: references are replaced by the file content, and count in the digest', async () => {
  const files = {
    'pack.yaml': 'name: p\nversion: "1"\nroles:\n  - name: a\n    jig: script\n    jig_config:\n      script: file:scripts/a/10-run.sh\n      more: [file:scripts/a/notes.txt, plain]\n',
    'scripts/a/10-run.sh': '#!/bin/sh\necho hi\n',
    'scripts/a/notes.txt': 'notes',
  };
  await withPack(files, async (dir) => {
    const pack = await readPack(dir, { standalone: true });
    assert.deepEqual(pack.roles[0].jig_config, { script: '#!/bin/sh\necho hi\n', more: ['notes', 'plain'] });
    await writeFile(join(dir, 'scripts/a/10-run.sh'), '#!/bin/sh\necho bye\n');
    assert.notEqual((await readPack(dir)).digest, pack.digest);
  });
});

const PACK = 'name: p\nversion: "1"\n';
const ROLE_A = 'name: a\njig: test\n';
const PACK_A = `${PACK}roles:\n  - name: a\n`;
interface Bad { name: string; files: Record<string, string>; links?: Record<string, string>; file: string; key: string; match: RegExp }
const BAD: Bad[] = [
  { name: 'no pack.yaml', files: { 'roles/a.yaml': ROLE_A }, file: 'pack.yaml', key: '', match: /missing/ },
  { name: 'YAML syntax', files: { 'pack.yaml': 'name: [p\n' }, file: 'pack.yaml', key: '', match: /invalid YAML: .*line/ },
  { name: 'YAML syntax in a role file', files: { 'pack.yaml': PACK, 'roles/a.yaml': 'name: a\n  jig: : test\n' }, file: 'roles/a.yaml', key: '', match: /invalid YAML/ },
  { name: 'duplicate YAML key', files: { 'pack.yaml': 'name: p\nname: q\nversion: "1"\n' }, file: 'pack.yaml', key: '', match: /invalid YAML/ },
  { name: 'pack name missing', files: { 'pack.yaml': 'version: "1"\n' }, file: 'pack.yaml', key: 'name', match: /missing \(required\)/ },
  { name: 'version not a string', files: { 'pack.yaml': 'name: p\nversion: 1.0\n' }, file: 'pack.yaml', key: 'version', match: /quote it/ },
  { name: 'unknown top-level key', files: { 'pack.yaml': `${PACK}bootenv: x\n` }, file: 'pack.yaml', key: 'bootenv', match: /unknown key/ },
  { name: 'unknown role key', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}requirez: [b]\n` }, file: 'roles/a.yaml', key: 'roles[0].requirez', match: /unknown key \(expected one of: name, / },
  { name: 'bad flag', files: { 'pack.yaml': `${PACK}roles:\n  - name: a\n    flags: [cluster, clustered]\n` }, file: 'pack.yaml', key: 'roles[0].flags[1]', match: /unknown flag "clustered" \(one of: implicit/ },
  { name: 'bad jig', files: { 'pack.yaml': PACK, 'roles/a.yaml': 'name: a\njig: puppet\n' }, file: 'roles/a.yaml', key: 'roles[0].jig', match: /unknown jig "puppet"/ },
  { name: 'bad role name', files: { 'pack.yaml': `${PACK}roles:\n  - name: Etcd_Server\n` }, file: 'pack.yaml', key: 'roles[0].name', match: /invalid name "Etcd_Server"/ },
  { name: 'role file not a mapping', files: { 'pack.yaml': PACK, 'roles/a.yaml': '- name: a\n' }, file: 'roles/a.yaml', key: 'roles[0]', match: /must be a mapping/ },
  { name: 'timeout not a positive integer', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}timeout: 30s\n` }, file: 'roles/a.yaml', key: 'roles[0].timeout', match: /integer >= 1, got "30s"/ },
  { name: 'unknown retry key', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}retry: { count: 1, delay: 3 }\n` }, file: 'roles/a.yaml', key: 'roles[0].retry.delay', match: /unknown key/ },
  { name: 'requires listed twice', files: { 'pack.yaml': `${PACK_A}  - name: b\n    requires: [a, a]\n` }, file: 'pack.yaml', key: 'roles[1].requires[1]', match: /listed twice/ },
  { name: 'template not JSON', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}template: { x: .inf }\n` }, file: 'roles/a.yaml', key: 'roles[0].template.x', match: /not a JSON number/ },
  { name: 'attrib map missing', files: { 'pack.yaml': PACK, 'attribs/x.yaml': 'name: x\n' }, file: 'attribs/x.yaml', key: 'attribs[0].map', match: /missing \(required\)/ },
  { name: 'attrib map empty segment', files: { 'pack.yaml': `${PACK}attribs:\n  - name: x\n    map: a//b\n` }, file: 'pack.yaml', key: 'attribs[0].map', match: /invalid map path "a\/\/b"/ },
  { name: 'attrib schema invalid', files: { 'pack.yaml': PACK, 'attribs/x.yaml': 'name: x\nmap: x\nschema: { type: nope }\n' }, file: 'attribs/x.yaml', key: 'attribs[0].schema', match: /not a valid JSON schema/ },
  { name: 'attrib owned by a role not in the pack', files: { 'pack.yaml': `${PACK_A}attribs:\n  - name: x\n    map: x\n    role: b\n` }, file: 'pack.yaml', key: 'attribs[0].role', match: /unknown role "b": an attrib's owning role must be in the same pack/ },
  { name: 'duplicate role across files', files: { 'pack.yaml': `${PACK_A}`, 'roles/a.yaml': ROLE_A }, file: 'roles/a.yaml', key: 'roles[0].name', match: /duplicate role "a" \(also at pack.yaml: roles\[0\]\)/ },
  { name: 'abstract with another flag', files: { 'pack.yaml': PACK, 'roles/a.yaml': 'name: a\nflags: [abstract, discovery]\n' }, file: 'roles/a.yaml', key: 'roles[0].flags', match: /abstract role is never bound/ },
  { name: 'role requires itself', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}requires: [a]\n` }, file: 'roles/a.yaml', key: 'roles[0].requires[0]', match: /cannot name itself/ },
  { name: 'requires and conflicts', files: { 'pack.yaml': `${PACK_A}  - name: b\n    requires: [a]\n    conflicts: [a]\n` }, file: 'pack.yaml', key: 'roles[1].conflicts[0]', match: /"a" is also required/ },
  { name: 'unknown required role', files: { 'pack.yaml': `${PACK_A}`, 'roles/etcd.yaml': 'name: etcd\nrequires: [a, etcd-bootstrapp]\n', 'roles/etcd-bootstrap.yaml': 'name: etcd-bootstrap\n' }, file: 'roles/etcd.yaml', key: 'roles[0].requires[1]', match: /unknown role "etcd-bootstrapp" \(did you mean "etcd-bootstrap"\?\)/ },
  { name: 'unknown wanted attrib', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}wants_attribs: [token]\n` }, file: 'roles/a.yaml', key: 'roles[0].wants_attribs[0]', match: /unknown attrib "token"/ },
  { name: 'unknown preceeds role', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}preceeds: [zz]\n` }, file: 'roles/a.yaml', key: 'roles[0].preceeds[0]', match: /unknown role "zz"/ },
  { name: 'profile value for an unknown attrib', files: { 'pack.yaml': PACK, 'profiles/slow.yaml': 'name: slow\nvalues: { nope: 1 }\n' }, file: 'profiles/slow.yaml', key: 'profiles[0].values.nope', match: /unknown attrib "nope"/ },
  { name: 'profile value against the schema', files: { 'pack.yaml': `${PACK}attribs:\n  - name: delay\n    map: d\n    schema: { type: integer, minimum: 0 }\n`, 'profiles/slow.yaml': 'name: slow\nvalues: { delay: -1 }\n' }, file: 'profiles/slow.yaml', key: 'profiles[0].values.delay', match: /does not match the schema of attrib "delay": value must be >= 0/ },
  { name: 'cycle through requires', files: { 'pack.yaml': `${PACK}roles:\n  - name: a\n    requires: [c]\n  - name: b\n    requires: [a]\n  - name: c\n    requires: [b]\n` }, file: 'pack.yaml', key: 'roles[0]', match: /role cycle: a -> c -> b -> a/ },
  { name: 'cycle through preceeds', files: { 'pack.yaml': `${PACK}roles:\n  - name: a\n    preceeds: [b]\n  - name: b\n    requires: [a]\n`, 'roles/c.yaml': 'name: c\n' }, file: 'pack.yaml', key: 'roles[0]', match: /role cycle: a -> b -> a/ },
  { name: 'cycle through wants_attribs', files: { 'pack.yaml': `${PACK}roles:\n  - name: a\n    requires: [b]\nattribs:\n  - name: t\n    map: t\n    role: a\n`, 'roles/b.yaml': 'name: b\nwants_attribs: [t]\n' }, file: 'pack.yaml', key: 'roles[0]', match: /role cycle: a -> b -> a/ },
  { name: 'file: escaping with ..', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}jig_config: { script: "file:../../etc/passwd" }\n` }, file: 'roles/a.yaml', key: 'roles[0].jig_config.script', match: /"\.\." is not allowed/ },
  { name: 'file: absolute', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}jig_config: { s: [x, "file:/etc/passwd"] }\n` }, file: 'roles/a.yaml', key: 'roles[0].jig_config.s[1]', match: /absolute paths are not allowed/ },
  { name: 'file: missing', files: { 'pack.yaml': `${PACK}roles:\n  - name: a\n    jig_config: { s: "file:scripts/nope.sh" }\n` }, file: 'pack.yaml', key: 'roles[0].jig_config.s', match: /no such file in the pack/ },
  { name: 'file: symlink out of the pack', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}jig_config: { s: "file:scripts/out" }\n` }, links: { 'scripts/out': '/etc/hostname' }, file: 'roles/a.yaml', key: 'roles[0].jig_config.s', match: /symlink leading outside the pack/ },
  { name: 'file: a directory', files: { 'pack.yaml': PACK, 'roles/a.yaml': `${ROLE_A}jig_config: { s: "file:scripts" }\n`, 'scripts/x': '' }, file: 'roles/a.yaml', key: 'roles[0].jig_config.s', match: /not a regular file/ },
];

for (const bad of BAD) {
  test(`malformed pack: ${bad.name}`, () => withPack(bad.files, async (dir) => {
    await assert.rejects(readPack(dir, { standalone: true }), (e: unknown) => {
      assert.ok(e instanceof PackError, `a PackError, got ${String(e)}`);
      assert.equal(e.file, bad.file);
      assert.equal(e.key, bad.key);
      assert.match(e.message, bad.match);
      assert.ok(e.message.startsWith(bad.key ? `${bad.file}: ${bad.key}: ` : `${bad.file}: `), e.message);
      return true;
    });
  }, bad.links));
}

test('references outside the pack are checked against what is already stored', async () => {
  const files = {
    'pack.yaml': PACK,
    'roles/a.yaml': `${ROLE_A}requires: [base]\nwants_attribs: [token]\n`,
    'profiles/p.yaml': 'name: p\nvalues: { delay: 5 }\n',
  };
  await withPack(files, async (dir) => {
    await assert.rejects(readPack(dir, { standalone: true }), /roles\/a.yaml: roles\[0\].requires\[0\]: unknown role "base"/);
    const pack: PackBundle = await readPack(dir);
    const known = { roles: new Set(['base']), attribs: new Set(['token', 'delay']) };
    validateReferences(pack, known);
    // after the bundle crossed the wire the objects are located by index in the pack
    const wired = JSON.parse(JSON.stringify(pack)) as PackBundle;
    assert.throws(() => validateReferences(wired, { ...known, attribs: new Set(['token']) }),
      (e: unknown) => e instanceof PackError && e.message === 'pack p: profiles[0].values.delay: unknown attrib "delay"');
  });
});

test('a bundle from the wire is checked again and its digest recomputed', async () => {
  const pack = await readPack(TEST_PACK);
  assert.deepEqual(checkBundle(JSON.parse(JSON.stringify({ ...pack, digest: 'forged' }))), pack);
  const tampered = JSON.parse(JSON.stringify(pack)) as PackBundle;
  (tampered.roles[1].flags as string[]).push('sticky');
  assert.throws(() => checkBundle(tampered), (e: unknown) => e instanceof PackError && e.file === 'bundle' && e.key === 'roles[1].flags[1]');
  tampered.roles[1].flags = [];
  tampered.roles[0].requires = [tampered.roles[2].name];
  tampered.roles[2].requires = [tampered.roles[0].name];
  const names = tampered.roles.map((r) => r.name);
  assert.throws(() => checkBundle(tampered), { name: 'PackError', message: `pack test: roles[0]: role cycle: ${names[0]} -> ${names[2]} -> ${names[0]} (each waits for the next through requires, wants_attribs or preceeds)` });
  assert.throws(() => checkBundle('nope'), { name: 'PackError', message: 'bundle: must be a mapping, got "nope"' });
});

test('findRoleCycle', () => {
  assert.equal(findRoleCycle([]), null);
  assert.equal(findRoleCycle([{ name: 'a', parents: ['b'] }, { name: 'b', parents: ['outside'] }]), null);
  assert.deepEqual(findRoleCycle([{ name: 'a', parents: ['a'] }]), ['a', 'a']);
  const diamond = [
    { name: 'top', parents: ['l', 'r'] }, { name: 'l', parents: ['base'] }, { name: 'r', parents: ['base'] }, { name: 'base', parents: [] },
  ];
  assert.equal(findRoleCycle(diamond), null);
  assert.deepEqual(findRoleCycle([
    { name: 'x', parents: ['a'] }, { name: 'a', parents: ['b'] }, { name: 'b', parents: ['c'] }, { name: 'c', parents: ['a'] },
  ]), ['a', 'b', 'c', 'a']);
  // a long chain does not blow the stack
  const chain = Array.from({ length: 5000 }, (_, i) => ({ name: `r${i}`, parents: i ? [`r${i - 1}`] : [] }));
  assert.equal(findRoleCycle(chain), null);
  chain[0].parents = ['r4999'];
  assert.equal(findRoleCycle(chain)?.length, 5001);
});
