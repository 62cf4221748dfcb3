import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sandboxedLiquid, templateError } from './sandbox.js';

const liquid = sandboxedLiquid({ parseLimit: 10_000, renderLimit: 200, memoryLimit: 1e6 });

test('a sandboxed template cannot read files', async () => {
  for (const t of ["{% include '/etc/passwd' %}", "{% render '/etc/hostname' %}", "{% layout '/etc/passwd' %}x"]) {
    const out = await liquid.parseAndRender(t, {}).catch((e: Error) => `refused: ${e.message}`);
    assert.ok(!/root:|localhost/.test(out), `${t} read nothing: ${out.slice(0, 80)}`);
  }
});

test('a sandboxed template cannot run away', async () => {
  await assert.rejects(liquid.parseAndRender('{% for i in (1..100000000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}', {}), /limit/i);
  assert.match(templateError(liquid, 'x'.repeat(20_000)) ?? '', /limit/i, 'parse size is bounded');
  assert.match(templateError(liquid, '{% if %}') ?? '', /.+/, 'a syntax error is reported');
  assert.equal(templateError(liquid, 'hello {{ node.name }}'), null);
  assert.equal(await liquid.parseAndRender('hello {{ node.name }}', { node: { name: 'n1' } }), 'hello n1');
});
