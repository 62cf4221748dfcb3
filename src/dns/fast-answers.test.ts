import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FastAnswers } from './fast-answers.js';
import { assemble, type Prepared } from './reply.js';

const wire = (name: string) => Buffer.from(name.split('.').map((l) => String.fromCharCode(l.length) + l).join('') + '\0', 'latin1');
const prepared = (tag: number, bodyLength = 16): Prepared => ({ flags: 0x0400 | (tag & 3), an: tag & 0xff, ns: 1, ar: 2, body: Buffer.alloc(bodyLength, tag & 0xff) });
/** A query for `name` (as sent: any case) and `type`, optionally with a bare EDNS OPT record. */
function query(name: string, type: number, edns = 0): { b: Buffer; nameEnd: number; qEnd: number } {
  const opt = edns ? Buffer.from([0, 0, 41, edns >> 8, edns & 0xff, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  const b = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0]), wire(name), Buffer.from([type >> 8, type & 0xff, 0, 1]), opt]);
  const nameEnd = 12 + wire(name).length;
  return { b, nameEnd, qEnd: nameEnd + 4 };
}

test('fast answers: a name in any case and its type give the same bytes as assembling the prepared answer', () => {
  const www = prepared(7), aaaa = prepared(9, 300), soa = prepared(3, 0);
  const fast = new FastAnswers([{ name: wire('www.c.test'), type: 1, prepared: www }, { name: wire('www.c.test'), type: 28, prepared: aaaa }, { name: wire('c.test'), type: 6, prepared: soa }]);
  for (const [name, type, p] of [['WwW.C.tEsT', 1, www], ['www.c.test', 28, aaaa], ['C.TEST', 6, soa]] as const) {
    for (const edns of [0, 512, 4096]) {
      const q = query(name, type, edns);
      const r = fast.reply(q.b, q.nameEnd, type, q.qEnd, edns, true);
      assert.deepEqual(r, assemble(q.b, q.qEnd, edns, p, true), `${name} ${type} edns ${edns}`);
      assert.equal(r!.toString('latin1', 12, q.nameEnd), q.b.toString('latin1', 12, q.nameEnd), 'the question is echoed as sent');
    }
  }
  const miss = (name: string, type: number) => { const q = query(name, type); return fast.reply(q.b, q.nameEnd, type, q.qEnd, 0, true); };
  assert.equal(miss('www.c.test', 16), undefined, 'another type is a miss');
  assert.equal(miss('www.c.tesu', 1), undefined, 'one differing byte is a miss');
  assert.equal(miss('ww.c.test', 1), undefined, 'a shorter name is a miss');
  assert.equal(miss('x.www.c.test', 1), undefined, 'a longer name is a miss');
  assert.equal(fast.size, 3);
});

test('fast answers: a pool is served in turn from its rotations', () => {
  const rotations = [prepared(1), prepared(2), prepared(3)];
  const pool: Prepared = { ...rotations[0], rotations, turn: 2 };
  const fast = new FastAnswers([{ name: wire('etcd.c.test'), type: 1, prepared: pool }]);
  const q = query('etcd.c.test', 1);
  const seen = [0, 1, 2, 3].map(() => fast.reply(q.b, q.nameEnd, 1, q.qEnd, 0, true)![7]);
  assert.deepEqual(seen, [1, 2, 3, 1]);
});

test('fast answers: an answer over 65,535 bytes is left to the slow path, the rest still served', () => {
  const small = prepared(5), huge = prepared(6, 70_000);
  const fast = new FastAnswers([{ name: wire('all.c.test'), type: 33, prepared: huge }, { name: wire('a.c.test'), type: 1, prepared: small }]);
  const big = query('all.c.test', 33), a = query('a.c.test', 1);
  assert.equal(fast.reply(big.b, big.nameEnd, 33, big.qEnd, 0, false), undefined);
  assert.deepEqual(fast.reply(a.b, a.nameEnd, 1, a.qEnd, 0, true), assemble(a.b, a.qEnd, 0, small, true));
  assert.equal(fast.size, 1);
});

test('fast answers: refuses upper-case names and duplicates, naming the entry', () => {
  assert.throws(() => new FastAnswers([{ name: wire('A.test'), type: 1, prepared: prepared(1) }]), /entry 0: name bytes must be lower case/);
  assert.throws(() => new FastAnswers([{ name: wire('a.test'), type: 1, prepared: prepared(1) }, { name: wire('a.test'), type: 1, prepared: prepared(2) }]), /entry 1: duplicate name and type/);
});

test('fast answers: agree with a Map of lower-cased names over random names, types and bodies', () => {
  const label = '[a-z0-9-]{1,12}';
  fc.assert(fc.property(
    fc.uniqueArray(fc.tuple(fc.stringMatching(new RegExp(`^${label}(\\.${label}){0,3}$`)), fc.constantFrom(1, 5, 28, 33, 256, 65535), fc.nat(600)), { selector: ([n, t]) => `${t}:${n}`, maxLength: 300 }),
    fc.array(fc.tuple(fc.stringMatching(/^[a-zA-Z0-9-]{1,12}(\.[a-zA-Z0-9-]{1,12}){0,3}$/), fc.constantFrom(1, 5, 28, 33, 256, 65535)), { maxLength: 50 }),
    (keys, probes) => {
      const entries = keys.map(([n, t, len], i) => ({ name: wire(n), type: t, prepared: prepared(i, len) }));
      const fast = new FastAnswers(entries);
      const ref = new Map(keys.map(([n, t], i) => [`${t}:${n}`, entries[i].prepared]));
      const check = (name: string, type: number) => {
        const q = query(name, type, 4096);
        const p = ref.get(`${type}:${name.toLowerCase()}`);
        assert.deepEqual(fast.reply(q.b, q.nameEnd, type, q.qEnd, 4096, false), p && assemble(q.b, q.qEnd, 4096, p, false));
      };
      for (const [n, t] of keys) check(n.toUpperCase(), t);
      for (const [n, t] of probes) check(n, t);
    }), { numRuns: 200 });
});
