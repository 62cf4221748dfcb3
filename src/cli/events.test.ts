import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEvent, frameEvent, renderEvent, SseParser } from './events.js';

test('frames dispatch on a blank line, with id, event and data', () => {
  const p = new SseParser();
  assert.deepEqual(p.push('id: 5\nevent: noderole.state\ndata: {"a":1}\n\n'), [{ id: '5', event: 'noderole.state', data: '{"a":1}' }]);
  assert.equal(p.lastEventId, '5');
});

test('a frame split across chunks anywhere, even inside CRLF, comes out whole and once', () => {
  const text = 'id: 1\r\ndata: {"x":\r\ndata: 2}\r\n\r\n: keep-alive\r\n\r\nid: 2\rdata: {}\r\r';
  for (let cut = 0; cut <= text.length; cut++) {
    const p = new SseParser();
    const frames = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
    assert.deepEqual(frames, [
      { id: '1', event: 'message', data: '{"x":\n2}' },
      { id: '2', event: 'message', data: '{}' },
    ], `cut at ${cut}`);
  }
});

test('comments and frames without data dispatch nothing; the id is remembered across frames', () => {
  const p = new SseParser();
  assert.deepEqual(p.push(': hello\n\nid: 9\n\nevent: x\n\n'), []);
  assert.equal(p.lastEventId, '9');
  assert.deepEqual(p.push('data: 1\n\n'), [{ id: '9', event: 'message', data: '1' }]);
  assert.deepEqual(p.push('data\n\n'), [{ id: '9', event: 'message', data: '' }]);
});

test('only one leading space is dropped from a value', () => {
  assert.deepEqual(new SseParser().push('data:  two spaces\n\n'), [{ id: undefined, event: 'message', data: ' two spaces' }]);
});

test('reset drops a half frame but keeps the resume id', () => {
  const p = new SseParser();
  p.push('id: 3\ndata: {}\n\nid: 4\ndata: {"half"');
  p.reset();
  assert.equal(p.lastEventId, '4');
  assert.deepEqual(p.push('data: {}\n\n'), [{ id: '4', event: 'message', data: '{}' }]);
});

test('frameEvent parses the JSON data and fills id and type from the frame', () => {
  assert.deepEqual(frameEvent({ id: '12', event: 'node.created', data: '{"object_kind":"node"}' }), { object_kind: 'node', id: 12, type: 'node.created' });
  assert.deepEqual(frameEvent({ id: '12', event: 'message', data: '{"id":3,"type":"t"}' }), { id: 3, type: 't' });
  assert.equal(frameEvent({ event: 'message', data: 'not json' }), undefined);
  assert.equal(frameEvent({ event: 'message', data: '[1]' }), undefined);
});

test('one line per event: time, type, object, state change then payload', () => {
  const ev = { id: 7, at: '2025-01-01T00:00:00.000Z', type: 'noderole.state', object_kind: 'noderole', object_id: 42,
    payload: { from: 'TODO', to: 'TRANSITION', node: 'n1', role: 'base', detail: { a: 1 } } };
  assert.equal(formatEvent(ev), '2025-01-01T00:00:00.000Z  noderole.state  noderole/42  TODO -> TRANSITION node=n1 role=base detail={"a":1}');
  assert.equal(formatEvent({ type: 'x' }), '-  x  -');
  assert.equal(renderEvent(ev, 'json'), JSON.stringify(ev) + '\n');
  assert.ok(renderEvent(ev, 'yaml').startsWith('---\n'));
});
