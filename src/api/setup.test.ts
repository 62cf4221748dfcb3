import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, poolFor } from './setup.js';
import { searchValue } from './node-search.js';
import { isServerPath } from './ui-static.js';

test('the default DHCP pool is the upper half of the subnet, without the gateway', () => {
  assert.deepEqual(poolFor('10.0.0.0/24', '10.0.0.1'), { first: '10.0.0.128', last: '10.0.0.254' });
  assert.deepEqual(poolFor('10.0.0.0/24', '10.0.0.254'), { first: '10.0.0.128', last: '10.0.0.253' });
  assert.deepEqual(poolFor('10.0.0.0/24', '10.0.0.128'), { first: '10.0.0.129', last: '10.0.0.254' });
  assert.deepEqual(poolFor('10.0.0.0/24', '10.0.0.200'), { first: '10.0.0.128', last: '10.0.0.199' });
  assert.deepEqual(poolFor('172.16.0.0/16', '172.16.0.1'), { first: '172.16.128.0', last: '172.16.255.254' });
  assert.deepEqual(poolFor('192.168.1.0/30', '192.168.1.1'), { first: '192.168.1.2', last: '192.168.1.2' });
});

test('a given pool is checked against the subnet and the gateway', () => {
  assert.deepEqual(poolFor('10.0.0.0/24', '10.0.0.1', '10.0.0.50', '10.0.0.60'), { first: '10.0.0.50', last: '10.0.0.60' });
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.1', '10.0.0.50'), /give both pool_first and pool_last/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.1', '10.0.1.5', '10.0.1.9'), /must lie inside 10.0.0.0\/24/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.1', '10.0.0.60', '10.0.0.50'), /first before last/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.55', '10.0.0.50', '10.0.0.60'), /network.gateway: 10.0.0.55 is inside the pool/);
});

test('bad networks are refused with the field and the reason', () => {
  assert.throws(() => parseCidr('10.0.0.5/24'), (e: any) => e.field === 'network.cidr' && /host bits set; the network is 10.0.0.0\/24/.test(e.message));
  assert.throws(() => parseCidr('10.0.0.0/31'), /between \/8 and \/30/);
  assert.throws(() => parseCidr('300.0.0.0/24'), /not an IPv4 address/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.0'), /10.0.0.0 is not a host address inside/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.0.0.255'), /not a host address/);
  assert.throws(() => poolFor('10.0.0.0/24', '10.9.0.1'), /not a host address/);
});

test('node search text is trimmed and lower case', () => {
  assert.equal(searchValue(' 52-54-00-AB-cd-01 '), '52-54-00-ab-cd-01');
  assert.equal(searchValue('Web-01.Example'), 'web-01.example');
});

test('server paths are never the UI', () => {
  for (const p of ['/api/v1/nodes', '/api', '/boot/x/y', '/boot', '/metrics', '/healthz']) assert.equal(isServerPath(p), true, p);
  for (const p of ['/', '/nodes', '/apis', '/metrics-page', '/bootstrap', '/nodes/api']) assert.equal(isServerPath(p), false, p);
});
