// Fixed vectors for IPv6 auto prefixes and MD5-FQDN interface ids (issue 7 item 3). Expected
// strings are written out by hand; the MD5 digests are recomputed here with node:crypto so a
// wrong vector fails loudly rather than agreeing with the code under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { autoPrefix, checkV6Prefix, interfaceId, nodeAddress6, ulaFromGlobalId } from './ipv6.js';
import { formatIp, parseAddress } from './address.js';

test('the digests the vectors below rely on', () => {
  assert.equal(crypto.createHash('md5').update('node1.example.com').digest('hex'), 'ba42a7de06c9ecc9726446a8b44801fa');
  assert.equal(crypto.createHash('md5').update('d52540000001.fulcrum.internal').digest('hex'), '94773d4abca2ea6602938e9534cf08e6');
});

test('ULA /48 from a 40-bit global id (RFC 4193: fd + global id)', () => {
  assert.equal(ulaFromGlobalId(Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a])), 'fd12:3456:789a::/48');
  assert.equal(ulaFromGlobalId(Buffer.from([0, 0, 0, 0, 1])), 'fd00:0:1::/48');
  assert.equal(ulaFromGlobalId(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])), 'fdff:ffff:ffff::/48');
  assert.throws(() => ulaFromGlobalId(Buffer.alloc(4)), /40 bits/);
});

test('auto prefix: the network id is the 16-bit subnet id', () => {
  assert.equal(autoPrefix('fd12:3456:789a::/48', 5), 'fd12:3456:789a:5::/64');
  assert.equal(autoPrefix('fd12:3456:789a::/48', 0xbeef), 'fd12:3456:789a:beef::/64');
  assert.equal(autoPrefix('fd00:0:1::/48', 1), 'fd00:0:1:1::/64');
  assert.throws(() => autoPrefix('fd12:3456:789a::/48', 65536), /16-bit/);
  assert.throws(() => autoPrefix('fd12:3456:789a::/56', 1), /48/);
});

test('interface id: last 64 bits of MD5(FQDN), lower-cased, no trailing dot', () => {
  assert.equal(interfaceId('node1.example.com'), 0x726446a8b44801fan);
  assert.equal(interfaceId('NODE1.example.com.'), 0x726446a8b44801fan);
  assert.equal(nodeAddress6('fd12:3456:789a:5::/64', 'node1.example.com'), 'fd12:3456:789a:5:7264:46a8:b448:1fa/64');
  // A single zero group is written out, not compressed (RFC 5952 §4.2.2).
  assert.equal(nodeAddress6('2001:db8:0:1::/64', 'd52540000001.fulcrum.internal'), '2001:db8:0:1:293:8e95:34cf:8e6/64');
});

test('v6prefix: auto, a /64 (normalized), or refused naming the field', () => {
  assert.equal(checkV6Prefix('auto'), 'auto');
  assert.equal(checkV6Prefix(null), null);
  assert.equal(checkV6Prefix('2001:DB8:0:1:0:0:0:7/64'), '2001:db8:0:1::/64');
  for (const bad of ['2001:db8::/48', '10.0.0.0/24', 'fd00::1', 'nonsense']) {
    assert.throws(() => checkV6Prefix(bad), (e: any) => e.field === 'v6prefix' && /must be "auto" or an IPv6 \/64/.test(e.message), bad);
  }
});

test('address formatting follows RFC 5952', () => {
  const f = (s: string) => { const a = parseAddress(s)!; return formatIp(a.family, a.value); };
  assert.equal(f('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(f('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(f('::'), '::');
  assert.equal(f('::1'), '::1');
  assert.equal(f('fe80::'), 'fe80::');
  assert.equal(f('::ffff:10.0.0.1'), '::ffff:a00:1');
  assert.equal(f('10.1.2.3'), '10.1.2.3');
});

test('random addresses: format -> parse round trips, and IPv6 text matches the WHATWG URL serializer (RFC 5952)', () => {
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed; };
  for (let i = 0; i < 2000; i++) {
    // Groups biased towards zero so that runs of zeros (and ties between runs) are common.
    const groups = Array.from({ length: 8 }, () => (rnd() % 3 === 0 ? rnd() % 0x10000 : 0));
    const v = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
    const text = formatIp(6, v);
    assert.equal(parseAddress(text)!.value, v, text);
    assert.equal(text, new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1), groups.join(','));
    const v4 = BigInt(rnd()) * 2n + BigInt(rnd() % 2);
    assert.equal(parseAddress(formatIp(4, v4))!.value, v4);
  }
  for (const bad of ['1.2.3.4/33', '::1/129', '1.2.3', '1.2.3.4/24/1', '::1::2', 'x', '', '1.2.3.4/-1', '1.2.3.4/ 8']) assert.equal(parseAddress(bad), null, bad);
});
