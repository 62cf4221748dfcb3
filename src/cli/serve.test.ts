import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseListen } from './serve.js';

test('--listen takes HOST:PORT, IPv6 in brackets', () => {
  assert.deepEqual(parseListen('127.0.0.1:7780'), { host: '127.0.0.1', port: 7780 });
  assert.deepEqual(parseListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseListen('[::1]:8080'), { host: '::1', port: 8080 });
  assert.deepEqual(parseListen('fulcrum.example.com:80'), { host: 'fulcrum.example.com', port: 80 });
});

test('--listen refuses what is not HOST:PORT', () => {
  for (const bad of ['7780', 'host', 'host:', ':7780', 'host:99999', '::1:7780', 'host:port', 'a b:1']) {
    assert.throws(() => parseListen(bad), /HOST:PORT/, bad);
  }
});
