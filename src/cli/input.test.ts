import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CliError } from './errors.js';
import { applySets, parseFilters, parseObjectText, parseValue, readBody } from './input.js';

test('--set values are JSON when they parse, strings otherwise', () => {
  assert.equal(parseValue('42'), 42);
  assert.equal(parseValue('true'), true);
  assert.equal(parseValue('null'), null);
  assert.deepEqual(parseValue('["a","b"]'), ['a', 'b']);
  assert.deepEqual(parseValue('{"x":1}'), { x: 1 });
  assert.equal(parseValue('"42"'), '42');
  assert.equal(parseValue('node1.example.com'), 'node1.example.com');
  assert.equal(parseValue(''), '');
  assert.equal(parseValue('a=b'), 'a=b');
});

test('--set splits at the first =, sets dotted keys nested, later pairs win', () => {
  assert.deepEqual(applySets({}, ['name=n1', 'url=http://x/?a=b', 'alive=false']), { name: 'n1', url: 'http://x/?a=b', alive: false });
  assert.deepEqual(applySets({ hints: { a: 1 } }, ['hints.rack=r12', 'hints.a=2']), { hints: { a: 2, rack: 'r12' } });
  assert.deepEqual(applySets({ hints: 'x' }, ['hints.a.b=1']), { hints: { a: { b: 1 } } });
  assert.deepEqual(applySets({}, ['n=1', 'n=2']), { n: 2 });
});

test('--set does not change the object it starts from', () => {
  const base = { hints: { a: 1 } };
  applySets(base, ['hints.a=2']);
  assert.deepEqual(base, { hints: { a: 1 } });
});

test('malformed pairs are refused naming the pair', () => {
  assert.throws(() => applySets({}, ['novalue']), (e: Error) => e instanceof CliError && /"novalue"/.test(e.message));
  assert.throws(() => applySets({}, ['=1']), CliError);
  assert.throws(() => applySets({}, ['a..b=1']), /empty part/);
  assert.throws(() => parseFilters(['state']), /--filter "state"/);
});

test('--filter pairs stay strings', () => {
  assert.deepEqual(parseFilters(['state=ERROR', 'deployment=system', 'id=12']), { state: 'ERROR', deployment: 'system', id: '12' });
});

test('files are JSON or YAML holding one object', () => {
  assert.deepEqual(parseObjectText('{"name":"a"}', 'f'), { name: 'a' });
  assert.deepEqual(parseObjectText('name: a\nflags: [x]\n', 'f'), { name: 'a', flags: ['x'] });
  assert.throws(() => parseObjectText('- 1\n- 2\n', 'f.yaml'), /f.yaml must hold one object/);
  assert.throws(() => parseObjectText('a: [', 'f.yaml'), /f.yaml is neither JSON nor YAML/);
});

test('readBody lays --set over the file, and wants at least one of them', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-cli-'));
  const file = path.join(dir, 'node.yaml');
  await writeFile(file, 'name: n1\nhints: {rack: r1}\n');
  assert.deepEqual(await readBody({ file, set: ['hints.rack=r2', 'alive=true'] }), { name: 'n1', hints: { rack: 'r2' }, alive: true });
  await assert.rejects(readBody({ set: [] }), /nothing to send/);
  await assert.rejects(readBody({ file: path.join(dir, 'missing.json') }), /missing.json: no such file/);
});
