import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiError, Client, connectionError } from './client.js';
import { describeError } from './errors.js';

test('API error bodies become "error: message (field: f)"', () => {
  const e = apiError(400, 'Bad Request', '{"error":"invalid","message":"count must be >= 1","field":"count"}', 'http://h:1');
  assert.equal(e.status, 400);
  assert.equal(e.kind, 'invalid');
  assert.deepEqual(describeError(e), ['error: count must be >= 1 (field: count)']);
});

test('a 401 adds how to log in; a body that is not JSON still says what happened', () => {
  assert.deepEqual(describeError(apiError(401, 'Unauthorized', '{"error":"unauthorized","message":"bad token"}', 'http://h:1')),
    ['error: bad token', 'hint: log in with `fulcrum login --endpoint http://h:1 --user NAME --password PW`, or pass --token / set FULCRUM_TOKEN']);
  assert.deepEqual(describeError(apiError(502, 'Bad Gateway', '<html>oops</html>', 'http://h:1')),
    ['error: the server at http://h:1 answered 502 Bad Gateway: <html>oops</html>']);
});

test('a refused connection names the endpoint', () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const e = connectionError('http://127.0.0.1:7780', Object.assign(new TypeError('fetch failed'), { cause }));
  assert.equal(e.message, 'cannot connect to the Fulcrum server at http://127.0.0.1:7780: connection refused');
  assert.match(e.hint ?? '', /fulcrum server/);
});

test('urls join the endpoint, path and query, skipping undefined values', () => {
  const c = new Client({ endpoint: 'http://h:1' });
  assert.equal(c.url('/api/v1/nodes', { state: 'ERROR', limit: 5, offset: undefined }), 'http://h:1/api/v1/nodes?state=ERROR&limit=5');
});

test('errors are described without a stack trace', () => {
  const lines = describeError(new Error('boom'));
  assert.deepEqual(lines, ['error: boom']);
});
