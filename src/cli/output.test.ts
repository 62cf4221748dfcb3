import assert from 'node:assert/strict';
import { test } from 'node:test';
import YAML from 'yaml';
import { cell, columnsFor, render, renderObject, renderTable } from './output.js';

const noderoles = [
  { id: 1, uuid: 'u1', node: 'n1', role: 'base', deployment: 'system', state: 'ACTIVE', blocked_by: null, run_count: 1, runlog: 'ok\n', wall: {} },
  { id: 2, uuid: 'u2', node: 'n1', role: 'etcd', deployment: 'system', state: 'BLOCKED', blocked_by: { kind: 'error', noderole: 7 }, run_count: 0, runlog: '', wall: {} },
];

test('a kind shows its preferred columns, in order, when the rows have them', () => {
  assert.deepEqual(columnsFor('noderoles', noderoles), ['id', 'node', 'role', 'deployment', 'state', 'blocked_by', 'run_count']);
});

test('a reference named <col>_id stands in for <col>; absent columns are dropped', () => {
  const nodes = [{ id: 3, name: 'n3', alive: true, available: true, bootenv: 'local', deployment_id: 1, inventory: {} }];
  assert.deepEqual(columnsFor('nodes', nodes), ['id', 'name', 'alive', 'available', 'bootenv', 'deployment_id']);
});

test('unknown kinds fall back to every scalar top-level field', () => {
  const rows = [{ id: 1, name: 'a', data: { x: 1 }, tags: ['t'] }, { id: 2, extra: true }];
  assert.deepEqual(columnsFor('widgets', rows), ['id', 'name', 'extra']);
  assert.deepEqual(columnsFor(undefined, rows), ['id', 'name', 'extra']);
});

test('cells: "-" for nothing, lists joined, blocked_by as kind:noderole, long values cut', () => {
  assert.equal(cell(null), '-');
  assert.equal(cell(undefined), '-');
  assert.equal(cell(''), '-');
  assert.equal(cell(false), 'false');
  assert.equal(cell(['a', 'b']), 'a,b');
  assert.equal(cell([]), '-');
  assert.equal(cell({ kind: 'parent-not-active', noderole: 4 }, 'blocked_by'), 'parent-not-active:4');
  assert.equal(cell({ a: 1 }), '{"a":1}');
  assert.equal(cell('two\nlines'), 'two lines');
  const long = cell('x'.repeat(100));
  assert.equal([...long].length, 60);
  assert.ok(long.endsWith('…'));
});

test('tables align columns, upper-case the header and leave no trailing blanks', () => {
  const text = renderTable(noderoles, ['id', 'node', 'state', 'blocked_by']);
  assert.equal(text, [
    'ID  NODE  STATE    BLOCKED_BY',
    '1   n1    ACTIVE   -',
    '2   n1    BLOCKED  error:7',
    '',
  ].join('\n'));
});

test('-o json prints the API answer unchanged; -o yaml round-trips', () => {
  assert.deepEqual(JSON.parse(render(noderoles, 'json', 'noderoles')), noderoles);
  assert.deepEqual(JSON.parse(render([], 'json', 'nodes')), []);
  assert.deepEqual(YAML.parse(render(noderoles, 'yaml')), noderoles);
});

test('-o table renders a list as a table with the kind\'s columns, an empty list as nothing', () => {
  const text = render(noderoles, 'table', 'noderoles');
  assert.match(text.split('\n')[0], /^ID\s+NODE\s+ROLE\s+DEPLOYMENT\s+STATE\s+BLOCKED_BY\s+RUN_COUNT$/);
  assert.equal(text.trimEnd().split('\n').length, 3);
  assert.ok(!text.includes('runlog'));
  assert.equal(render([], 'table', 'nodes'), '');
});

test('one object shows scalars as key/value, then structured and multi-line fields as blocks', () => {
  const text = renderObject({ id: 2, name: 'n', flags: ['a', 'b'], hints: {}, runlog: 'line1\nline2\n', wall: { x: { y: 1 } }, blocked_by: { kind: 'error', noderole: 7 } });
  assert.equal(text, [
    'id          2',
    'name        n',
    'flags       a, b',
    'hints       {}',
    'blocked_by  error:7',
    'runlog:',
    '  line1',
    '  line2',
    'wall:',
    '  x:',
    '    y: 1',
    '',
  ].join('\n'));
});
