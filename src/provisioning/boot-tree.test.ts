import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BootTree, StaticRoot } from './boot-tree.js';
import { BootPathError, safeSegments } from './tree.js';
import { parseRange, serveBoot } from './http-boot.js';
import { BUILTIN_BOOTENVS, render, renderBootFile } from './bootenvs.js';
import type { Sql } from '../store/db.js';

let root: string;
let outside: string;
// A store stand-in for the two lookups the tree makes (node by MAC, bootenv by name): the
// rendering paths are pinned against real PostgreSQL in test/provisioning.test.ts.
const nodesByMac: Record<string, any> = {};
const sql: Sql = {
  async query(text: string, values?: unknown[]) {
    if (text.includes('FROM node_macs')) { const n = nodesByMac[String(values![0])]; return { rows: n ? [n] : [], rowCount: n ? 1 : 0 } as any; }
    if (text.includes('FROM bootenvs')) { const b = BUILTIN_BOOTENVS.find((x) => x.name === values![0]); return { rows: b ? [b] : [], rowCount: b ? 1 : 0 } as any; }
    throw new Error(`unexpected query ${text}`);
  },
};
let tree: BootTree;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'boot-root-'));
  outside = await fs.mkdtemp(path.join(os.tmpdir(), 'boot-outside-'));
  await fs.writeFile(path.join(outside, 'secret'), 'top secret');
  await fs.mkdir(path.join(root, 'discovery'));
  await fs.writeFile(path.join(root, 'discovery', 'vmlinuz'), Buffer.alloc(5000, 7));
  await fs.symlink(path.join(outside, 'secret'), path.join(root, 'leak'));
  tree = new BootTree({ sql, staticRoot: root, ipxeRoots: [root], server: () => ({ http: 'http://10.0.0.1:8091/boot', api: 'http://10.0.0.1:8091', tftp: '10.0.0.1' }) });
});
after(async () => { await fs.rm(root, { recursive: true, force: true }); await fs.rm(outside, { recursive: true, force: true }); });

const get = (p: string) => tree.resolve({ path: p, remote: '10.0.0.50', protocol: 'http' });

test('hostile paths never leave the root', async () => {
  for (const p of ['../secret', '/../../etc/passwd', 'discovery/../../secret', 'a\\..\\b', 'x\0y', '..']) {
    await assert.rejects(get(p), BootPathError, p);
  }
  await assert.rejects(get('leak'), BootPathError, 'a symlink out of the root is refused');
  assert.equal(await get('/etc/passwd'), null, 'an absolute path is inside the root, where it does not exist');
  assert.deepEqual(safeSegments('//a/./b/'), ['a', 'b']);
});

test('static files and byte ranges', async () => {
  const f = (await get('/discovery/vmlinuz'))!;
  assert.equal(f.size, 5000);
  assert.equal((await f.read(10, 19)).length, 10);
  assert.equal(await get('discovery/missing'), null);
  assert.deepEqual(parseRange('bytes=0-99', 5000), [0, 99]);
  assert.deepEqual(parseRange('bytes=4900-', 5000), [4900, 4999]);
  assert.deepEqual(parseRange('bytes=-100', 5000), [4900, 4999]);
  assert.deepEqual(parseRange('bytes=0-99999', 5000), [0, 4999]);
  assert.equal(parseRange('bytes=6000-', 5000), 'unsatisfiable');
  assert.equal(parseRange('bytes=5-1', 5000), 'unsatisfiable');
  assert.equal(parseRange('items=1-2', 5000), null);
  assert.equal(parseRange(undefined, 5000), null);
});

test('an unknown MAC gets the discovery path; a node in local gets no kernel', async () => {
  const unknown = (await get('/nodes/52-54-00-aa-bb-cc/ipxe'))!;
  const text = (await unknown.read()).toString();
  assert.match(text, /^#!ipxe/);
  assert.match(text, /kernel http:\/\/10\.0\.0\.1:8091\/boot\/discovery\/vmlinuz initrd=initrd\.img .*fulcrum\.mac=52:54:00:aa:bb:cc/);
  assert.match(text, /initrd http:\/\/10\.0\.0\.1:8091\/boot\/discovery\/initrd\.img/);
  nodesByMac['52:54:00:aa:bb:dd'] = { id: 1, name: 'n1.test', uuid: 'u', bootenv: 'local', hints: {} };
  const local = (await (await get('/nodes/52-54-00-aa-bb-dd/ipxe'))!.read()).toString();
  assert.match(local, /sanboot/);
  assert.doesNotMatch(local, /kernel/);
  assert.equal(await get('/nodes/52-54-00-aa-bb-cc/nothing'), null);
});

test('missing required params render an explanation, not a broken boot', async () => {
  const bootenv = { ...BUILTIN_BOOTENVS[1], name: 'needs', required_params: ['os-disk'] };
  const text = await renderBootFile({ mac: 'aa:bb:cc:dd:ee:ff', node: { id: 1, name: 'n.test', uuid: 'u', bootenv: 'needs', hints: {} }, bootenv, server: { http: 'h', api: 'a', tftp: 't' } }, 'ipxe');
  assert.match(text!, /cannot boot bootenv needs: missing parameter\(s\) os-disk/);
});

test('templates are sandboxed: no file includes, bounded work', async () => {
  await assert.rejects(render('{% include "/etc/passwd" %}', {}));
  await assert.rejects(render('{% render "x" %}', {}));
  await assert.rejects(render('{% for i in (1..100000000) %}{{ i }}{% endfor %}', {}));
  assert.equal(await render('{{ a | upcase }}', { a: 'x' }), 'X');
});

const collect = (s: NodeJS.ReadableStream) => new Promise<Buffer>((resolve, reject) => {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  s.on('end', () => resolve(Buffer.concat(parts)));
  s.on('error', reject);
});

test('static cache: a file replaced by a link out of the root is refused, even inside the revalidation window', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'boot-cache-'));
  try {
    await fs.writeFile(path.join(dir, 'big.img'), Buffer.alloc(100, 1));
    await fs.writeFile(path.join(dir, 'small.cfg'), 'original');
    const st = new StaticRoot(dir, { maxFileBytes: 50, revalidateMs: 60_000 });
    const big = (await st.file(['big.img']))!;
    assert.equal((await collect(big.stream!(0, 99))).length, 100);
    assert.equal((await st.file(['small.cfg']))!.size, 8);
    // Replaced by links to a secret outside, while the cache still trusts both paths.
    await fs.rm(path.join(dir, 'big.img'));
    await fs.symlink(path.join(outside, 'secret'), path.join(dir, 'big.img'));
    await fs.rm(path.join(dir, 'small.cfg'));
    await fs.symlink(path.join(outside, 'secret'), path.join(dir, 'small.cfg'));
    const again = (await st.file(['big.img']))!;
    await assert.rejects(collect(again.stream!(0, 9)), BootPathError, 'the stream refuses what it opened');
    await assert.rejects(again.read(0, 9), BootPathError);
    await assert.rejects(big.read(0, 9), BootPathError, 'a BootFile handed out earlier refuses too');
    const small = (await st.file(['small.cfg']))!;
    assert.equal((await small.read()).toString(), 'original', 'the cached bytes were read from inside the root');
    // Past the window the paths are checked again: refused outright.
    const fresh = new StaticRoot(dir, { maxFileBytes: 50 });
    await assert.rejects(fresh.file(['big.img']), BootPathError);
    await assert.rejects(fresh.file(['small.cfg']), BootPathError);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('static cache: concurrent first fetches share one read, the byte count stays exact, files changed on disk are served fresh', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'boot-cache-'));
  try {
    const file = path.join(dir, 'initrd.img');
    await fs.writeFile(file, Buffer.alloc(1_000_000, 3));
    const st = new StaticRoot(dir, { revalidateMs: 0, maxTotalBytes: 2_500_000 });
    const all = await Promise.all(Array.from({ length: 50 }, () => st.file(['initrd.img'])));
    assert.ok(all.every((f) => f!.size === 1_000_000));
    assert.equal(st.cachedBytes, 1_000_000, 'one copy in memory');
    await fs.writeFile(file, Buffer.alloc(10, 4));
    assert.deepEqual([...(await (await st.file(['initrd.img']))!.read())], Array(10).fill(4), 'a changed file is read again');
    assert.equal(st.cachedBytes, 10);
    await fs.rm(file);
    assert.equal(await st.file(['initrd.img']), null);
    assert.equal(st.cachedBytes, 0, 'a removed file leaves nothing counted');
    // The budget: the least recently used is evicted.
    for (const n of ['a', 'b', 'c']) await fs.writeFile(path.join(dir, n), Buffer.alloc(1_000_000, 5));
    for (const n of ['a', 'b', 'c']) await st.file([n]);
    assert.equal(st.cachedBytes, 2_000_000, 'within 2.5 MB: the oldest of three 1 MB files went');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('serving a large file that disappears ends the response, not the process', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'boot-cache-'));
  const http = await import('node:http');
  try {
    await fs.writeFile(path.join(dir, 'big.img'), Buffer.alloc(200, 1));
    const st = new StaticRoot(dir, { maxFileBytes: 50, revalidateMs: 60_000 });
    const tree = { resolve: (r: { path: string }) => st.file(safeSegments(r.path)) };
    await st.file(['big.img']);
    await fs.rm(path.join(dir, 'big.img'));
    const server = http.createServer((req, res) => { void serveBoot(tree, req, res, req.url!.slice(1)); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const outcome = await fetch(`http://127.0.0.1:${port}/big.img`).then((r) => r.arrayBuffer().then(() => 'complete', () => 'cut'), () => 'cut');
    assert.equal(outcome, 'cut', 'the response is cut short');
    assert.equal((await fetch(`http://127.0.0.1:${port}/missing`)).status, 404, 'and the server still answers');
    server.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
