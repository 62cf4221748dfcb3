import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLASS, decode, DnsFormatError, encode, formatRdata, ipv6Text, ipBytes, parseRdata, readName, readQuery, RD, TYPE, type Message } from './codec.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Queries captured from the real clients on this machine by a UDP listener.
const DIG_A = hex('0030 0120 0001 0000 0000 0001 04657463640763 6c7573746572 076578616d706c6500 0001 0001 00002904d000000000000c000a000850c6bfc07a7681d7');
const KDIG_SRV = hex('caf6 0120 0001 0000 0000 0000 0c5f657463642d736572766572045f74637007636c7573746572076578616d706c6500 0021 0001');

test('golden: dig 9.18 A query with EDNS (1232) and a cookie', () => {
  const m = decode(DIG_A);
  assert.equal(m.id, 0x30);
  assert.equal(m.flags & RD, RD);
  assert.deepEqual(m.questions, [{ name: 'etcd.cluster.example', type: TYPE.A, class: CLASS.IN }]);
  assert.equal(m.edns?.udpSize, 1232);
  assert.equal(m.edns?.options.length, 12);
  assert.deepEqual(encode(m), DIG_A);
  const q = readQuery(DIG_A);
  assert.deepEqual([q.qname, q.qtype, q.ednsSize, q.qEnd], ['etcd.cluster.example', TYPE.A, 1232, 12 + 22 + 4]);
});

test('golden: kdig SRV query without EDNS', () => {
  const m = decode(KDIG_SRV);
  assert.deepEqual(m.questions, [{ name: '_etcd-server._tcp.cluster.example', type: TYPE.SRV, class: CLASS.IN }]);
  assert.equal(m.edns, undefined);
  assert.deepEqual(encode(m), KDIG_SRV);
  assert.equal(readQuery(KDIG_SRV).ednsSize, 0);
});

const SAMPLE: Message = {
  id: 4242, flags: 0x8400, questions: [{ name: 'etcd.cluster.example', type: TYPE.ANY, class: CLASS.IN }],
  answers: [
    { name: 'etcd.cluster.example', type: TYPE.A, class: 1, ttl: 60, data: '10.0.0.11' },
    { name: 'etcd.cluster.example', type: TYPE.AAAA, class: 1, ttl: 60, data: 'fd00::b' },
    { name: 'etcd.cluster.example', type: TYPE.TXT, class: 1, ttl: 60, data: ['pool of 3', 'x"y'] },
    { name: 'www.cluster.example', type: TYPE.CNAME, class: 1, ttl: 60, data: 'etcd.cluster.example' },
    { name: '_etcd._tcp.cluster.example', type: TYPE.SRV, class: 1, ttl: 60, data: { priority: 10, weight: 5, port: 2379, target: 'etcd.cluster.example' } },
    { name: '11.0.0.10.in-addr.arpa', type: TYPE.PTR, class: 1, ttl: 60, data: 'node-1.cluster.example' },
  ],
  authorities: [{ name: 'cluster.example', type: TYPE.SOA, class: 1, ttl: 300, data: { mname: 'ns.cluster.example', rname: 'hostmaster.cluster.example', serial: 7, refresh: 3600, retry: 600, expire: 86400, minimum: 60 } }],
  additionals: [{ name: 'cluster.example', type: TYPE.NS, class: 1, ttl: 300, data: 'ns.cluster.example' }],
  edns: { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: Buffer.alloc(0) },
};

test('every served record type round-trips, and names are compressed', () => {
  const b = encode(SAMPLE);
  assert.deepEqual(decode(b), SAMPLE);
  // "cluster.example" is written in full twice: in the question and in the SRV target, which
  // RFC 2782 says must not be compressed; every other occurrence is a pointer.
  assert.equal(b.toString('latin1').split('\x07cluster\x07example').length - 1, 2);
  assert.ok(b.length < 300, `${b.length} bytes`);
});

test('presentation text: parse and format agree, errors name the problem', () => {
  assert.deepEqual(parseRdata(TYPE.SRV, '0 10 2379 etcd-1.cluster.example.'), { priority: 0, weight: 10, port: 2379, target: 'etcd-1.cluster.example' });
  assert.equal(formatRdata(TYPE.SRV, parseRdata(TYPE.SRV, '0 10 2379 etcd-1.cluster.example.')), '0 10 2379 etcd-1.cluster.example.');
  assert.deepEqual(parseRdata(TYPE.TXT, '"v=1 a" b'), ['v=1 a', 'b']);
  assert.equal(parseRdata(TYPE.AAAA, 'FD00:0:0:0:0:0:0:0001'), 'fd00::1');
  assert.throws(() => parseRdata(TYPE.A, '10.0.0.256'), /not an IPv4 address/);
  assert.throws(() => parseRdata(TYPE.SRV, '1 2 70000 x.'), /SRV port must be a whole number 0-65535/);
  assert.throws(() => parseRdata(TYPE.CNAME, 'a..b'), /empty label/);
  assert.throws(() => parseRdata(TYPE.SOA, 'a b 1 2 3 4 5'), /not one Fulcrum serves/);
});

test('RFC 5952 IPv6 text', () => {
  for (const [i, o] of [['2001:db8::1', '2001:db8::1'], ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['::', '::'], ['::ffff:10.0.0.1', '::ffff:a00:1'], ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7']]) {
    assert.equal(ipv6Text(ipBytes(i)), o);
  }
});

test('compression pointers that loop or point forward are rejected, not followed', () => {
  // A name at 12 that points to itself, and one that points forward to a pointer back to it.
  const self = Buffer.concat([hex('0001 0000 0001 0000 0000 0000'), hex('c00c 0001 0001')]);
  assert.throws(() => decode(self), (e: unknown) => e instanceof DnsFormatError && e.reason === 'bad-pointer');
  const pair = Buffer.concat([hex('0001 0000 0001 0000 0000 0000'), hex('c00e c00c 0001 0001')]);
  assert.throws(() => readName(pair, 12), (e: unknown) => e instanceof DnsFormatError && e.reason === 'bad-pointer');
  // A long chain of backward pointers is fine and bounded by the packet.
  const chain = [hex('0161 00')];
  for (let i = 0; i < 100; i++) chain.push(hex((0xc000 + i * 2 + (i === 0 ? 0 : 1)).toString(16).padStart(4, '0')));
  const all = Buffer.concat(chain);
  assert.equal(readName(all, all.length - 2).name, 'a');
});

test('malformed headers, labels and lengths get a reason', () => {
  const reasons = (b: Buffer) => { try { decode(b); return 'ok'; } catch (e) { assert.ok(e instanceof DnsFormatError, String(e)); return e.reason; } };
  assert.equal(reasons(hex('0001')), 'short-header');
  assert.equal(reasons(hex('0001 0000 ffff 0000 0000 0000 00 0001 0001')), 'bad-count');
  assert.equal(reasons(hex('0001 0000 0001 0000 0000 0000 4161 00 0001 0001')), 'bad-label');
  assert.equal(reasons(hex('0001 0000 0001 0000 0000 0000 0561 00 0001 0001')), 'truncated');
  const long = Buffer.concat([hex('0001 0000 0001 0000 0000 0000'), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), hex('00 0001 0001')]);
  assert.equal(reasons(long), 'name-too-long');
});

// ------------------------------------------------------------------------------------------------
// Fuzz: random bytes and mutations of real packets. The decoder may accept or reject, but must only
// ever throw DnsFormatError, and quickly.

function check(b: Buffer): void {
  for (const f of [decode, readQuery]) {
    try { f(b); } catch (e) {
      if (!(e instanceof DnsFormatError)) throw new Error(`${f.name} threw ${String(e)} on ${b.toString('hex')}`);
    }
  }
}

test('fuzz: random packets never crash or hang the decoders', () => {
  const started = Date.now();
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (a) => check(Buffer.from(a))), { numRuns: 20000 });
  // Headers with plausible counts make the decoder go deeper than pure noise does.
  fc.assert(fc.property(fc.uint8Array({ minLength: 12, maxLength: 300 }), fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 4, maxLength: 4 }), (a, counts) => {
    const b = Buffer.from(a);
    counts.forEach((c, i) => b.writeUInt16BE(c, 4 + i * 2));
    check(b);
  }), { numRuns: 20000 });
  assert.ok(Date.now() - started < 30000);
});

test('fuzz: mutated real packets (bit flips, cuts, splices) never crash the decoders', () => {
  const seeds = [DIG_A, KDIG_SRV, encode(SAMPLE)];
  fc.assert(fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), (s, flips, cut) => {
    const b = Buffer.from(seeds[s]);
    for (const [at, v] of flips) b[at % b.length] = v;
    check(b);
    check(b.subarray(0, cut % (b.length + 1)));
  }), { numRuns: 30000 });
});
