import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AnswerTable } from './answers.js';
import { assemble } from './reply.js';
import { decode, encode, RCODE, readQuery, TC, TYPE, type Message } from './codec.js';
import { DnsServer } from './server.js';
import { absoluteName, computeRecords, matches, reverseName, reverseZoneOf, type ZoneRow } from './filters.js';

const SOA = { mname: 'ns.c.test', rname: 'h.c.test', serial: 7, refresh: 1, retry: 1, expire: 1, minimum: 30 };
const table = new AnswerTable([{ name: 'c.test', ttl: 300, soa: SOA }], [
  { name: 'a.c.test', type: TYPE.A, ttl: 60, data: '10.0.0.1' },
  { name: 'a.c.test', type: TYPE.A, ttl: 60, data: '10.0.0.2' },
  { name: 'www.c.test', type: TYPE.CNAME, ttl: 60, data: 'a.c.test' },
  { name: 'x.deep.c.test', type: TYPE.TXT, ttl: 60, data: ['t'] },
  ...Array.from({ length: 8 }, (_, i) => ({ name: 'big.c.test', type: TYPE.TXT, ttl: 60, data: [`${i} ${'y'.repeat(100)}`] })),
  { name: 'elsewhere.test', type: TYPE.A, ttl: 60, data: '10.9.9.9' },
]);

function ask(name: string, type: number, edns = 0): Message {
  const q: Message = { id: 9, flags: 0x0100, questions: [{ name, type, class: 1 }], answers: [], authorities: [], additionals: [] };
  if (edns) q.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: Buffer.alloc(0) };
  const b = encode(q);
  const v = readQuery(b);
  const p = table.lookup(v.qname, v.qtype);
  assert.ok(p, `${name} is in a served zone`);
  return decode(assemble(b, v.qEnd, v.ednsSize, p, true));
}

test('answers: AA, NXDOMAIN vs NODATA (empty non-terminals too), SOA TTL, CNAME, outside records', () => {
  const a = ask('A.c.TEST', TYPE.A);
  assert.equal(a.flags & 0x0400, 0x0400);
  assert.equal(a.questions[0].name, 'A.c.TEST', 'the question is echoed as asked');
  assert.deepEqual(a.answers.map((r) => r.data), ['10.0.0.1', '10.0.0.2']);
  const nx = ask('nope.c.test', TYPE.A);
  assert.equal(nx.flags & 0xf, RCODE.NXDOMAIN);
  assert.deepEqual(nx.authorities.map((r) => [r.type, r.ttl]), [[TYPE.SOA, 30]]);
  for (const [n, t] of [['a.c.test', TYPE.AAAA], ['deep.c.test', TYPE.A]] as const) {
    const nd = ask(n, t);
    assert.equal(nd.flags & 0xf, RCODE.NOERROR, n);
    assert.equal(nd.answers.length, 0);
    assert.equal(nd.authorities[0].type, TYPE.SOA);
  }
  const c = ask('www.c.test', TYPE.A);
  assert.deepEqual(c.answers.map((r) => r.type), [TYPE.CNAME, TYPE.A, TYPE.A]);
  assert.equal(table.lookup('elsewhere.test', TYPE.A), undefined);
  assert.deepEqual(table.outside.map((r) => r.name), ['elsewhere.test']);
});

test('a pool is served round robin: each record first in turn', () => {
  const firsts = Array.from({ length: 4 }, () => ask('a.c.test', TYPE.A).answers.map((r) => r.data));
  assert.deepEqual(firsts.map((a) => a.length), [2, 2, 2, 2]);
  assert.deepEqual(new Set(firsts.map((a) => a[0])), new Set(['10.0.0.1', '10.0.0.2']));
  assert.notDeepEqual(firsts[0], firsts[1]);
  assert.deepEqual(firsts[0], firsts[2]);
});

test('truncation: over 512 without EDNS, over the EDNS size with it, never over TCP', () => {
  const q = encode({ id: 1, flags: 0, questions: [{ name: 'big.c.test', type: TYPE.TXT, class: 1 }], answers: [], authorities: [], additionals: [] });
  const v = readQuery(q);
  const p = table.lookup(v.qname, v.qtype)!;
  const udp = decode(assemble(q, v.qEnd, v.ednsSize, p, true));
  assert.equal(udp.flags & TC, TC);
  assert.equal(udp.answers.length, 0);
  assert.equal(decode(assemble(q, v.qEnd, v.ednsSize, p, false)).answers.length, 8);
  assert.equal(ask('big.c.test', TYPE.TXT, 4096).answers.length, 8, 'fits in 1232 with EDNS');
});

test('the fast path gives byte-identical replies to the full path (differential fuzz)', () => {
  const s = new DnsServer({ host: '127.0.0.1', port: 0 });
  s.table = table;
  const names = ['a.c.test', 'A.C.TEST', 'www.c.test', 'nope.c.test', 'big.c.test', 'x.deep.c.test', 'elsewhere.test', 'a.c.test.extra'];
  let fast = 0;
  fc.assert(fc.property(fc.constantFrom(...names), fc.constantFrom(TYPE.A, TYPE.AAAA, TYPE.TXT, TYPE.CNAME, TYPE.ANY), fc.constantFrom(0, 512, 1232, 4096),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 1 }), (name, type, edns, flips) => {
      const m: Message = { id: 77, flags: 0x0100, questions: [{ name, type, class: 1 }], answers: [], authorities: [], additionals: [] };
      if (edns) m.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: Buffer.alloc(0) };
      const b = encode(m);
      for (const [at, v] of flips) b[at % b.length] = v;
      const x = s.fastReply(b, true);
      if (!x) return;
      fast++;
      const v = readQuery(b);
      const p = table.lookup(v.qname, v.qtype)!;
      // Pools rotate per query: compare with the records in order; everything else byte for byte.
      const norm = (m: Message) => ({ ...m, answers: [...m.answers].sort((x, y) => String(x.data).localeCompare(String(y.data))) });
      const y = assemble(b, v.qEnd, v.ednsSize, p, true);
      assert.equal(x.length, y.length);
      assert.deepEqual(norm(decode(x)), norm(decode(y)));
      if (p.an < 2) assert.deepEqual(x, y);
    }), { numRuns: 5000 });
  assert.ok(fast > 300, `${fast} took the fast path`);
});

test('filters: reverse names and zones, relative names, matchers, pools', () => {
  assert.equal(reverseName('10.1.2.3'), '3.2.1.10.in-addr.arpa');
  assert.equal(reverseName('fd00::1'), `1.${'0.'.repeat(27)}0.0.d.f.ip6.arpa`);
  assert.equal(reverseZoneOf('10.1.0.0/16'), '1.10.in-addr.arpa');
  assert.equal(reverseZoneOf('fd00:1::/32'), '1.0.0.0.0.0.d.f.ip6.arpa');
  assert.throws(() => reverseZoneOf('10.0.0.0/20'), /\/8, \/16 or \/24/);
  assert.equal(absoluteName('etcd', 'c.test'), 'etcd.c.test');
  assert.equal(absoluteName('Etcd.C.test', 'c.test'), 'etcd.c.test');
  assert.equal(absoluteName('other.example.', 'c.test'), 'other.example');
  assert.equal(absoluteName('@', 'c.test'), 'c.test');
  const node = { id: 1, name: 'n1.c.test', deployment: 'prod', roles: ['etcd'], hints: { rack: 'r1' } };
  const a4 = { node_id: 1, address: '10.0.0.1', network: 'admin', category: 'admin', range: 'host', source: 'allocation' as const };
  assert.ok(matches({}, node, a4));
  assert.ok(matches({ role: 'etcd', category: 'admin', deployment: 'prod', attrib: { name: 'rack', value: 'r1' }, family: 4 }, node, a4));
  assert.ok(!matches({ role: 'k8s' }, node, a4));
  assert.ok(!matches({ attrib: { name: 'rack', value: 'r2' } }, node, a4));
  assert.ok(!matches({ family: 6 }, node, a4));
  const zone: ZoneRow = { id: 1, name: 'c.test', kind: 'forward', ttl: 300, primary_ns: 'ns.c.test', admin_email: 'h.c.test', nameservers: [], ns_addresses: [], refresh: 1, retry: 1, expire: 1, minimum: 1, serial: 1 };
  const rev: ZoneRow = { ...zone, id: 2, name: '10.in-addr.arpa', kind: 'reverse' };
  const nodes = [node, { ...node, id: 2, name: 'n2.c.test' }, { ...node, id: 3, name: 'n3.c.test', roles: [] }];
  const addrs = nodes.map((n, i) => ({ ...a4, node_id: n.id, address: `10.0.0.${i + 1}` }));
  const out = computeRecords([zone, rev], [
    { id: 1, name: 'hosts', zone: 'c.test', match: {}, template: '{{ node.short }}', ptr: true, ttl: null, enabled: true },
    { id: 2, name: 'pool', zone: 'c.test', match: { role: 'etcd' }, template: 'etcd', ptr: false, ttl: 5, enabled: true },
    { id: 3, name: 'broken', zone: 'c.test', match: {}, template: '{{ node.name | nosuchfilter }}', ptr: false, ttl: null, enabled: true },
  ], nodes, addrs, []);
  const lines = (z: string) => out.byZone.get(z)!.map((r) => `${r.name} ${r.type} ${String(r.data)}`);
  assert.deepEqual(lines('c.test').filter((l) => l.startsWith('etcd')), ['etcd.c.test 1 10.0.0.1', 'etcd.c.test 1 10.0.0.2']);
  assert.ok(lines('c.test').includes('n3.c.test 1 10.0.0.3'));
  assert.ok(lines('10.in-addr.arpa').includes('3.0.0.10.in-addr.arpa 12 n3.c.test'));
  assert.equal(lines('10.in-addr.arpa').filter((l) => l.includes(' 12 ')).length, 3, 'one PTR per address: pools make none');
  assert.match(out.problems.join('\n'), /name filter broken: template: .*nosuchfilter/);
});

test('fuzz: the fast path and the whole handler never throw on random or mutated packets', () => {
  const s = new DnsServer({ host: '127.0.0.1', port: 0 });
  s.table = table;
  const seed = encode({ id: 1, flags: 0x0100, questions: [{ name: 'a.c.test', type: TYPE.A, class: 1 }], answers: [], authorities: [], additionals: [], edns: { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: Buffer.alloc(0) } });
  let replies = 0;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), (a, flips, cut) => {
    s.handle(Buffer.from(a), true, () => { replies++; });
    const b = Buffer.from(seed);
    for (const [at, v] of flips) b[at % b.length] = v;
    s.handle(b.subarray(0, cut % (b.length + 1)), true, () => { replies++; });
  }), { numRuns: 20000 });
  assert.ok(replies > 0);
  assert.ok(Object.values(s.counters.dropped).reduce((x, y) => x + y, 0) > 1000);
});
