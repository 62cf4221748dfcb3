import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AnnealSummary, convergeVerdict, countsKey, EMPTY_GRACE_MS, EXIT, failureReport, lastLines, progressBar, progressLine } from './converge.js';

const s = (o: Partial<AnnealSummary>): AnnealSummary => ({ finished: 0, working: 0, scheduled: 0, failed: 0, blocked: 0, proposed: 0, total: 0, ...o });

test('converged when nothing is scheduled, working, blocked or failed', () => {
  assert.equal(convergeVerdict(s({ finished: 5, total: 5 }), 0), 'converged');
  // PROPOSED noderoles do not run until commit: they do not hold converge up.
  assert.equal(convergeVerdict(s({ finished: 3, proposed: 2, total: 5 }), 0), 'converged');
});

test('waiting while anything is scheduled, working or blocked', () => {
  assert.equal(convergeVerdict(s({ finished: 4, scheduled: 1, total: 5 }), 0), 'waiting');
  assert.equal(convergeVerdict(s({ finished: 4, working: 1, total: 5 }), 0), 'waiting');
  assert.equal(convergeVerdict(s({ finished: 4, blocked: 1, total: 5 }), 0), 'waiting');
});

test('failed as soon as any noderole is in ERROR, even while others still work', () => {
  assert.equal(convergeVerdict(s({ failed: 1, total: 1 }), 0), 'failed');
  assert.equal(convergeVerdict(s({ failed: 1, working: 3, blocked: 2, total: 9 }), 0), 'failed');
  assert.equal(convergeVerdict(s({ failed: 1, total: 1, errors: [{ id: 1, retry_at: null }] }), 0), 'failed');
});

test('an ERROR with an automatic retry pending is waited on, not a failure', () => {
  assert.equal(convergeVerdict(s({ failed: 1, blocked: 1, total: 3, errors: [{ id: 1, retry_at: '2030-01-01T00:00:00Z' }] }), 0), 'waiting');
  // Only when every failed noderole is listed and retrying.
  assert.equal(convergeVerdict(s({ failed: 2, total: 3, errors: [{ id: 1, retry_at: '2030-01-01T00:00:00Z' }] }), 0), 'failed');
  assert.equal(convergeVerdict(s({ failed: 2, total: 3, errors: [{ id: 1, retry_at: 'x' }, { id: 2 }] }), 0), 'failed');
});

test('no noderoles at all: waited on briefly, then converged', () => {
  assert.equal(convergeVerdict(s({}), 0), 'waiting');
  assert.equal(convergeVerdict(s({}), EMPTY_GRACE_MS), 'converged');
});

test('exit codes: 0 converged, 1 failed, 2 timeout', () => {
  assert.deepEqual(EXIT, { converged: 0, failed: 1, timeout: 2 });
});

test('progress: a bar of finished/total and every count; the key ignores time', () => {
  assert.equal(progressBar(0, 0, 4), '[----]');
  assert.equal(progressBar(1, 2, 4), '[##--]');
  assert.equal(progressBar(2, 2, 4), '[####]');
  const line = progressLine(s({ finished: 1, working: 1, scheduled: 1, blocked: 1, failed: 0, proposed: 0, total: 4 }), 3500);
  assert.equal(line, '[######------------------] 1/4 finished  1 working  1 scheduled  1 blocked  0 failed  0 proposed  3s');
  assert.equal(countsKey(s({ finished: 1, total: 2 })), countsKey(s({ finished: 1, total: 2 })));
  assert.notEqual(countsKey(s({ finished: 1, total: 2 })), countsKey(s({ finished: 2, total: 2 })));
});

test('the failure report names each noderole, node and role with the last 20 log lines', () => {
  const runlog = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
  const text = failureReport([{ id: 7, node: 'n1', role: 'etcd', deployment: 'k8s', state: 'ERROR', runlog }, { id: 8, node_id: 3, role_id: 4, runlog: '' }], 3);
  const lines = text.split('\n');
  assert.equal(lines[0], '3 noderoles failed:');
  assert.equal(lines[1], 'noderole 7: node n1, role etcd, deployment k8s (ERROR)');
  assert.equal(lines[2], '  | line 11');
  assert.equal(lines[21], '  | line 30');
  assert.equal(lines[22], 'noderole 8: node 3, role 4');
  assert.equal(lines[23], '  (empty run log)');
  assert.match(text, /and 1 more/);
  assert.match(text, /fulcrum retry 7/);
});

test('lastLines keeps the tail and ignores trailing newlines', () => {
  assert.deepEqual(lastLines('a\nb\nc\n\n', 2), ['b', 'c']);
  assert.deepEqual(lastLines('', 5), []);
  assert.deepEqual(lastLines('only', 5), ['only']);
});
