import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  decode, encode, encodingLength, createPacket, getOption, setOption, setOptionByName, hasOption, deleteOption,
  messageType, maxMessageSize, DhcpDecodeError, DhcpEncodeError, MessageType, encodePxeVendorOptions,
  decodePxeVendorOptions, RelayAgentInformation, DHCP_OPTIONS, RELAY_AGENT_SUBOPTIONS, PXE_SUBOPTIONS,
  swapUuidEndianness, BROADCAST_FLAG, type DhcpPacket,
} from './packet.js';import * as codecs from './options.js';
import type { Codec, OptionSpace } from './options.js';

// Fixtures live beside the source: dist/src/dhcp → src/dhcp/fixtures.
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'dhcp', 'fixtures');

/** Hex octets; "#" comments; "XX*N" repeats octet XX N times. */
function loadFixture(name: string): Buffer {
  const octets: number[] = [];
  for (const line of readFileSync(join(FIXTURES, name), 'utf8').split('\n')) {
    for (const tok of line.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean)) {
      const m = /^([0-9a-f]{2})(?:\*(\d+))?$/i.exec(tok);
      if (!m) throw new Error(`${name}: bad token ${tok}`);
      for (let i = 0; i < Number(m[2] ?? 1); i++) octets.push(parseInt(m[1], 16));
    }
  }
  return Buffer.from(octets);
}
const fixtureNames = readdirSync(FIXTURES).filter((f) => f.endsWith('.hex')).sort();
const fixtures = new Map(fixtureNames.map((n) => [n, loadFixture(n)]));
const fixture = (n: string) => fixtures.get(n)!;

const ipxePrl = [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203];
const intelPrl = [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135];

/** The options area of an encoded packet, up to and including END. */
function optionsArea(b: Buffer): Buffer {
  let i = 240;
  while (i < b.length && b[i] !== 255) i += b[i] === 0 ? 1 : 2 + b[i + 1];
  return b.subarray(240, i + 1);
}

// ---------------------------------------------------------------------------------------------
// Every codec: encode → decode gives the value back, encodingLength is the encoded size.

const SAMPLES: Record<string, unknown[]> = {
  'dotted IPv4 address': ['10.0.0.1', '255.255.255.0', '0.0.0.0'],
  'list of dotted IPv4 address': [['10.0.0.1'], ['10.0.0.1', '10.0.0.2', '192.168.1.254']],
  'list of dotted IPv4 address (may be empty)': [[], ['10.0.0.9']],
  'list of {address, mask} address pairs': [[{ address: '10.0.0.0', mask: '255.0.0.0' }]],
  'list of {destination, router} address pairs': [[{ destination: '10.1.0.0', router: '10.0.0.1' }, { destination: '10.2.0.0', router: '10.0.0.2' }]],
  u8: [0, 8, 255],
  u16: [0, 576, 65535],
  u32: [0, 3600, 4294967295],
  i32: [-3600, 0, 2147483647, -2147483648],
  boolean: [true, false],
  'flag (no data)': [true],
  string: ['PXEClient:Arch:00007:UNDI:003000', '', 'caf\xe9\x00'],
  text: ['node-17', 'Jörg’s PC', '\ufeffBOM kept'],
  bytes: [Buffer.from([1, 2, 3]), Buffer.alloc(0)],
  'message type': [1, 5, 8],
  'list of u8 (may be empty)': [[1, 3, 6, 15, 119], []],
  'list of u16': [[1500], [576, 1006, 1492]],
  'client identifier {type, data}': [{ type: 1, data: Buffer.from('525400123456', 'hex') }, { type: 0, data: Buffer.from('node-17') }],
  'list of user class names': [['iPXE'], ['gPXE', 'fulcrum-discovery'], []],
  'list of architecture types (u16)': [[0], [7, 9], [11]],
  'network interface identifier {type, major, minor}': [{ type: 1, major: 3, minor: 16 }],
  'machine identifier {type, uuid}': [{ type: 0, uuid: '4c4c4544-0051-3510-8052-b2c04f4e3032' }],
  'list of {destination: "a.b.c.d/n", router}': [[
    { destination: '0.0.0.0/0', router: '10.0.0.1' }, { destination: '10.0.0.0/8', router: '10.0.0.2' },
    { destination: '192.168.1.128/25', router: '10.0.0.3' }, { destination: '172.16.5.7/32', router: '10.0.0.4' },
  ]],
  'list of domain names': [['lab.example.com', 'example.com', 'eng.lab.example.com', 'other.org'], [], ['dots\\.in\\\\label.example']],
  'client FQDN {flags, rcode1, rcode2, name}': [
    { flags: 0x05, rcode1: 0, rcode2: 0, name: 'node-17.lab.example.com.' },
    { flags: 0x04, rcode1: 0, rcode2: 0, name: 'node-17' },
    { flags: 0x00, rcode1: 255, rcode2: 255, name: 'node-17.lab.example.com' },
  ],
  'relay agent information': [new RelayAgentInformation(new Map<number, unknown>([
    [1, Buffer.from('Gi1/0/7')], [2, Buffer.from('001b213c4d5e', 'hex')], [5, '10.20.0.0'], [11, '10.0.0.1'], [200, Buffer.from([9])],
  ]))],
  'list of {type, addresses}': [[{ type: 1, addresses: ['10.0.0.1', '10.0.0.2'] }, { type: 32768, addresses: [] }]],
  'list of {type, description}': [[{ type: 0, description: 'Local boot' }, { type: 32768, description: 'Fulcrum' }]],
  '{timeout, prompt}': [{ timeout: 0, prompt: 'Press F8 for menu' }],
  '{type, layer}': [{ type: 32768, layer: 0 }],
};

function codecsOf(space: OptionSpace<any>): Array<[string, number, Codec<unknown>]> {
  return Object.entries(space.defs).map(([name, d]) => [name, (d as any).code, (d as any).codec]);
}

for (const space of [DHCP_OPTIONS, RELAY_AGENT_SUBOPTIONS, PXE_SUBOPTIONS] as OptionSpace<any>[]) {
  test(`every ${space.label} codec round-trips its samples`, () => {
    for (const [name, , codec] of codecsOf(space)) {
      const samples = SAMPLES[codec.kind];
      assert.ok(samples, `no samples for kind "${codec.kind}" (${space.label} ${name}): add some`);
      for (const v of samples) {
        const data = codec.encode(v);
        assert.equal(codec.encodingLength(v), data.length, `${name}: encodingLength`);
        assert.deepEqual(codec.decode(data), v, `${name}: ${JSON.stringify(v)}`);
      }
    }
  });
}

test('every DHCP option survives a trip through a whole packet', () => {
  for (const [name, code, codec] of codecsOf(DHCP_OPTIONS)) {
    if (code === 52) continue; // the framer's own
    for (const v of SAMPLES[codec.kind]) {
      const p = createPacket({ chaddr: '52:54:00:12:34:56' });
      setOption(p, 'message-type', MessageType.DISCOVER);
      setOptionByName(p, name, v);
      const back = decode(encode(p));
      assert.deepEqual(back.options.get(code), v, name);
    }
  }
});

test('codec properties (fast-check)', () => {
  const { ip, ips, u16, u32, i32, string, userClass, domainSearch, classlessRoutes, bytes } = codecs;
  const ipArb = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
  const rt = <T>(codec: Codec<T>, arb: fc.Arbitrary<T>) =>
    fc.assert(fc.property(arb, (v) => { assert.deepEqual(codec.decode(codec.encode(v)), v); }), { numRuns: 300, seed: 4578 });
  rt(ip, ipArb);
  rt(ips, fc.array(ipArb, { minLength: 1, maxLength: 70 }));
  rt(u16, fc.nat(65535));
  rt(u32, fc.nat(0xffffffff));
  rt(i32, fc.integer());
  rt(bytes, fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)));
  const latin1 = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1'));
  rt(string, latin1);
  rt(userClass, fc.array(fc.uint8Array({ minLength: 1, maxLength: 255 }).map((a) => Buffer.from(a).toString('latin1')), { maxLength: 5 }));
  const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
  rt(domainSearch, fc.array(fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.')), { maxLength: 12 }));
  rt(classlessRoutes, fc.array(fc.record({ w: fc.nat(32), dest: ipArb, router: ipArb }).map(({ w, dest, router }) => {
    const o = dest.split('.').map((x, i) => (i < Math.ceil(w / 8) ? x : '0'));
    return { destination: `${o.join('.')}/${w}`, router };
  }), { minLength: 1, maxLength: 10 }));
});

test('fixed-size options with the wrong length are refused, naming the option', () => {
  const p = fixture('relayed-request.hex');
  const at = p.indexOf(Buffer.from([54, 4, 10, 0, 0, 1]), 240);
  const bad = Buffer.concat([p.subarray(0, at), Buffer.from([54, 3, 10, 0, 0]), p.subarray(at + 6)]);
  assert.throws(() => decode(bad), (e: unknown) => e instanceof DhcpDecodeError && /option 54 \(server-identifier\): length 3, expected 4/.test(e.message));
  for (const [kind, data] of [[codecs.u16, Buffer.alloc(3)], [codecs.ips, Buffer.alloc(6)], [codecs.bool, Buffer.from([2])],
    [codecs.clientArch, Buffer.alloc(0)], [codecs.uuidGuid, Buffer.alloc(16)], [codecs.clientNdi, Buffer.alloc(2)], [codecs.flag, Buffer.alloc(1)]] as const) {
    assert.throws(() => (kind as Codec<unknown>).decode(data as Buffer), DhcpDecodeError, kind.kind);
  }
});

// ---------------------------------------------------------------------------------------------
// Golden fixtures

test('fixture: BIOS PXE DISCOVER', () => {
  const b = fixture('bios-pxe-discover.hex');
  assert.equal(b.length, 548);
  const p = decode(b);
  assert.equal(p.op, 1);
  assert.equal(p.htype, 1);
  assert.equal(p.hlen, 6);
  assert.equal(p.hops, 0);
  assert.equal(p.xid, 0xa1b2c3d4);
  assert.equal(p.secs, 4);
  assert.equal(p.flags, BROADCAST_FLAG);
  for (const f of ['ciaddr', 'yiaddr', 'siaddr', 'giaddr'] as const) assert.equal(p[f], '0.0.0.0');
  assert.equal(p.chaddr, '52:54:00:12:34:56');
  assert.equal(p.sname, '');
  assert.equal(p.file, '');
  assert.equal(messageType(p), MessageType.DISCOVER);
  assert.equal(getOption(p, 'max-message-size'), 1260);
  assert.deepEqual(getOption(p, 'client-arch'), [0]);
  assert.deepEqual(getOption(p, 'client-ndi'), { type: 1, major: 2, minor: 1 });
  assert.deepEqual(getOption(p, 'uuid-guid'), { type: 0, uuid: '4c4c4544-0051-3510-8052-b2c04f4e3032' });
  assert.deepEqual(getOption(p, 'parameter-request-list'), intelPrl);
  assert.equal(getOption(p, 'vendor-class'), 'PXEClient:Arch:00000:UNDI:002001');
  assert.deepEqual([...p.options.keys()], [53, 57, 93, 94, 97, 55, 60]);
  assert.equal(maxMessageSize(p), 1260 - 28);
  // Re-encoding gives the same header and options; only the trailing padding differs (548 → 303).
  const again = encode(p);
  assert.deepEqual(again.subarray(0, 240), b.subarray(0, 240));
  assert.deepEqual(optionsArea(again), optionsArea(b));
  assert.equal(again.length, encodingLength(p));
});

for (const [name, arch, vc, mac] of [
  ['uefi-x64-discover.hex', 7, 'PXEClient:Arch:00007:UNDI:003000', '52:54:00:aa:00:07'],
  ['uefi-arm64-discover.hex', 11, 'PXEClient:Arch:00011:UNDI:003000', '52:54:00:aa:00:11'],
] as const) {
  test(`fixture: ${name}`, () => {
    const b = fixture(name);
    const p = decode(b);
    assert.equal(p.op, 1);
    assert.equal(p.flags, 0);
    assert.equal(p.chaddr, mac);
    assert.equal(messageType(p), MessageType.DISCOVER);
    assert.equal(getOption(p, 'max-message-size'), 1472);
    assert.deepEqual(getOption(p, 'client-arch'), [arch]);
    assert.deepEqual(getOption(p, 'client-ndi'), { type: 1, major: 3, minor: 0 });
    assert.equal(getOption(p, 'uuid-guid')?.type, 0);
    assert.equal(getOption(p, 'vendor-class'), vc);
    assert.deepEqual(getOption(p, 'parameter-request-list'), intelPrl);
    assert.equal(getOption(p, 'user-class'), undefined);
    assert.deepEqual(encode(p), b, 'byte-exact re-encoding');
  });
}

test('fixture: iPXE DISCOVER (bare user class, option 175)', () => {
  const b = fixture('ipxe-discover.hex');
  const p = decode(b);
  assert.equal(p.chaddr, '52:54:00:ab:cd:ef');
  assert.equal(p.xid, 0x5eed1e55);
  assert.equal(messageType(p), MessageType.DISCOVER);
  assert.deepEqual(getOption(p, 'user-class'), ['iPXE']);
  assert.deepEqual(getOption(p, 'ipxe-encapsulated'), Buffer.from('b10501808610 0eeb0301150113010115010117010118 0101'.replace(/ /g, ''), 'hex'));
  assert.deepEqual(getOption(p, 'client-arch'), [0]);
  assert.equal(getOption(p, 'vendor-class'), 'PXEClient:Arch:00000:UNDI:002001');
  assert.deepEqual(getOption(p, 'parameter-request-list'), ipxePrl);
  assert.deepEqual(getOption(p, 'client-identifier'), { type: 1, data: Buffer.from('525400abcdef', 'hex') });
  assert.deepEqual(getOption(p, 'uuid-guid'), { type: 0, uuid: 'c0ffee00-1234-4abc-8def-001122334455' });
  assert.deepEqual([...p.options.keys()], [53, 57, 93, 94, 60, 77, 55, 175, 61, 97]);
  assert.deepEqual(decode(encode(p)), p);
});

test('fixture: relayed REQUEST with giaddr and option 82', () => {
  const b = fixture('relayed-request.hex');
  const p = decode(b);
  assert.equal(p.hops, 1);
  assert.equal(p.giaddr, '10.20.0.1');
  assert.equal(p.secs, 3);
  assert.equal(p.chaddr, '00:25:90:aa:bb:cc');
  assert.equal(messageType(p), MessageType.REQUEST);
  assert.equal(getOption(p, 'requested-ip'), '10.20.0.57');
  assert.equal(getOption(p, 'server-identifier'), '10.0.0.1');
  assert.equal(getOption(p, 'hostname'), 'node-17');
  assert.deepEqual(getOption(p, 'parameter-request-list'), [1, 3, 6, 12, 15, 28, 42, 119, 121]);
  const ra = getOption(p, 'relay-agent-information')!;
  assert.ok(ra instanceof RelayAgentInformation);
  assert.deepEqual(ra.circuitId, Buffer.from('00040 00a0107'.replace(/ /g, ''), 'hex'));
  assert.deepEqual(ra.remoteId, Buffer.from('0006001b213c4d5e', 'hex'));
  assert.equal(ra.linkSelection, '10.20.0.0');
  assert.equal(ra.serverIdentifierOverride, undefined);
  assert.deepEqual([...ra.subOptions.keys()], [1, 2, 5]);
  assert.deepEqual(encode(p), b, 'byte-exact re-encoding');
});

test('option 82 is echoed byte for byte, as the last option of the reply (RFC 3046 §2.2)', () => {
  const req = decode(fixture('relayed-request.hex'));
  const reply = createPacket({ op: 2, xid: req.xid, chaddr: req.chaddr, giaddr: req.giaddr, yiaddr: '10.20.0.57' });
  setOption(reply, 'relay-agent-information', getOption(req, 'relay-agent-information')!);
  setOption(reply, 'message-type', MessageType.ACK);
  setOption(reply, 'server-identifier', '10.0.0.1');
  setOption(reply, 'lease-time', 3600);
  const area = optionsArea(encode(reply));
  assert.deepEqual([...area.subarray(0, 3)], [53, 1, 5], 'message type first');
  const ra = Buffer.from('5218010600040 00a0107020800060 01b213c4d5e05040a140000ff'.replace(/ /g, ''), 'hex');
  assert.deepEqual(area.subarray(area.length - ra.length), ra);
});

test('fixture: PXE OFFER is what the encoder writes (golden output)', () => {
  const offer: DhcpPacket = createPacket({
    op: 2, xid: 0xa1b2c3d4, flags: BROADCAST_FLAG, yiaddr: '10.0.0.50', siaddr: '10.0.0.1',
    chaddr: '52:54:00:12:34:56', file: 'ipxe/undionly.kpxe',
  });
  setOption(offer, 'message-type', MessageType.OFFER);
  setOption(offer, 'server-identifier', '10.0.0.1');
  setOption(offer, 'lease-time', 3600);
  setOption(offer, 'renewal-time', 1800);
  setOption(offer, 'rebinding-time', 3150);
  setOption(offer, 'subnet-mask', '255.255.255.0');
  setOption(offer, 'routers', ['10.0.0.1']);
  setOption(offer, 'dns-servers', ['10.0.0.1']);
  setOption(offer, 'vendor-class', 'PXEClient');
  setOption(offer, 'vendor-specific', encodePxeVendorOptions({ discoveryControl: 8 }));
  const golden = fixture('pxe-offer.hex');
  assert.deepEqual(encode(offer), golden);
  assert.equal(encodingLength(offer), golden.length);
  assert.deepEqual(decode(golden), offer);
});

test('every fixture decodes, and decode ∘ encode gives the same packet', () => {
  assert.ok(fixtureNames.length >= 6);
  for (const [name, b] of fixtures) {
    const p = decode(b);
    assert.deepEqual(decode(encode(p)), p, name);
  }
});

// ---------------------------------------------------------------------------------------------
// Framing: RFC 3396 long options, option 52 overload, padding, errors

test('the encoder pads to the BOOTP minimum of 300 octets and puts the message type first', () => {
  const p = createPacket({ chaddr: 'aa:bb:cc:dd:ee:ff' });
  setOption(p, 'hostname', 'x');
  setOption(p, 'message-type', MessageType.INFORM);
  const b = encode(p);
  assert.equal(b.length, 300);
  assert.equal(encodingLength(p), 300);
  assert.deepEqual([...b.subarray(240, 249)], [53, 1, 8, 12, 1, 120, 255, 0, 0]);
});

test('an option longer than 255 octets is split into instances and joined again (RFC 3396)', () => {
  const p = createPacket({ chaddr: 'aa:bb:cc:dd:ee:ff' });
  const big = Buffer.alloc(600, 7);
  p.options.set(224, big);
  const b = encode(p);
  assert.deepEqual([b[240], b[241], b[240 + 257], b[241 + 257], b[240 + 514], b[241 + 514]], [224, 255, 224, 255, 224, 90]);
  assert.deepEqual(decode(b).options.get(224), big);
  // Several instances of a list option are one list.
  const twice = encode(createPacket({ chaddr: 'aa:bb:cc:dd:ee:ff' }));
  const withDns = Buffer.concat([twice.subarray(0, 240), Buffer.from([6, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 2, 255])]);
  assert.deepEqual(getOption(decode(withDns), 'dns-servers'), ['10.0.0.1', '10.0.0.2']);
  // A domain search list that does not fit one instance.
  const names = Array.from({ length: 40 }, (_, i) => `rack${i}.site${i % 3}.example.com`);
  const q = createPacket();
  setOption(q, 'domain-search', names);
  assert.deepEqual(getOption(decode(encode(q)), 'domain-search'), names);
});

test('options that do not fit the maximum size overflow into file and sname (option 52)', () => {
  const p = createPacket({ op: 2, chaddr: 'aa:bb:cc:dd:ee:ff', yiaddr: '10.0.0.9' });
  setOption(p, 'message-type', MessageType.ACK);
  const unnamed = Array.from({ length: 255 }, (_, c) => c).filter((c) => c >= 128 && !DHCP_OPTIONS.name(c)).slice(0, 50);
  unnamed.forEach((code, i) => p.options.set(code, Buffer.from([i, i])));
  const b = encode(p, { maxSize: 300 });
  assert.equal(b.length, 300);
  assert.deepEqual([...b.subarray(240, 246)], [53, 1, 5, 52, 1, 3], 'type first, then overload = file and sname');
  const back = decode(b);
  assert.equal(back.options.has(52), false);
  assert.equal(back.file, '');
  assert.equal(back.sname, '');
  assert.deepEqual(back.options, p.options);
  // Without a maximum, nothing is overloaded.
  assert.equal(encode(p).length, 240 + 3 + 50 * 4 + 1);
  // With a boot file set, only sname is free: too little room.
  p.file = 'ipxe/undionly.kpxe';
  assert.throws(() => encode(p, { maxSize: 300 }), (e: unknown) => e instanceof DhcpEncodeError && /send fewer options/.test(e.message));
  p.options = new Map([...p.options].slice(0, 25));
  const c = encode(p, { maxSize: 300 });
  assert.equal(c[245], 2, 'overload = sname only');
  assert.deepEqual(decode(c).options, p.options);
  assert.equal(decode(c).file, 'ipxe/undionly.kpxe');
});

test('decode refuses malformed packets with a reason', () => {
  const ok = fixture('relayed-request.hex');
  const cases: Array<[string, Buffer, RegExp]> = [
    ['too short', ok.subarray(0, 239), /239 octets, a DHCP message has at least 240/],
    ['bad op', Buffer.concat([Buffer.from([3]), ok.subarray(1)]), /op 3 is neither/],
    ['bad cookie', Buffer.concat([ok.subarray(0, 236), Buffer.from([1, 2, 3, 4]), ok.subarray(240)]), /magic cookie 0x01020304/],
    ['option overruns', Buffer.concat([ok.subarray(0, 240), Buffer.from([53, 1, 1, 12, 9, 65])]), /option 12 \(hostname\) at octet 243 \(options field\): length 9 overruns/],
    ['length octet missing', Buffer.concat([ok.subarray(0, 240), Buffer.from([53, 1, 1, 12])]), /length octet missing/],
    ['bad overload value', Buffer.concat([ok.subarray(0, 240), Buffer.from([52, 1, 4, 255])]), /option 52 \(overload\): value 4/],
    ['82 sub-option overruns', Buffer.concat([ok.subarray(0, 240), Buffer.from([82, 4, 1, 5, 0, 0, 255])]), /option 82 \(relay-agent-information\): relay agent sub-option 1 at octet 0: length 5 overruns/],
    ['82 link-selection length', Buffer.concat([ok.subarray(0, 240), Buffer.from([82, 5, 5, 3, 10, 0, 0, 255])]), /relay agent sub-option 5 \(link-selection\): length 3, expected 4/],
    ['119 forward pointer', Buffer.concat([ok.subarray(0, 240), Buffer.from([119, 4, 1, 97, 0xc0, 0x04, 255])]), /does not point backwards/],
    ['119 self pointer', Buffer.concat([ok.subarray(0, 240), Buffer.from([119, 2, 0xc0, 0x00, 255])]), /does not point backwards/],
    ['121 width > 32', Buffer.concat([ok.subarray(0, 240), Buffer.from([121, 5, 33, 10, 0, 0, 1, 255])]), /prefix width 33/],
  ];
  for (const [what, buf, re] of cases) {
    assert.throws(() => decode(buf), (e: unknown) => e instanceof DhcpDecodeError && re.test(e.message), what);
  }
});

test('a missing END and trailing padding are tolerated; options in overloaded fields are read', () => {
  const head = fixture('relayed-request.hex').subarray(0, 240);
  assert.equal(messageType(decode(Buffer.concat([head, Buffer.from([53, 1, 3])]))), 3);
  assert.equal(messageType(decode(Buffer.concat([head, Buffer.from([0, 0, 53, 1, 3, 255, 12, 99])]))), 3, 'bytes after END are ignored');
  const b = Buffer.concat([head, Buffer.from([53, 1, 3, 52, 1, 1, 255])]);
  b.fill(0, 108, 236);
  Buffer.from([12, 3, 0x61, 0x62, 0x63, 255]).copy(b, 108);
  const p = decode(b);
  assert.equal(getOption(p, 'hostname'), 'abc');
  assert.equal(p.file, '');
  assert.equal(p.sname, '', 'sname field not overloaded: read as a string');
});

test('encode refuses values it cannot send, naming the field or option', () => {
  const base = () => createPacket({ chaddr: 'aa:bb:cc:dd:ee:ff' });
  const cases: Array<[string, (p: DhcpPacket) => void, RegExp]> = [
    ['bad ip', (p) => { p.yiaddr = '10.0.0.256'; }, /yiaddr: "10.0.0.256" is not a dotted IPv4 address/],
    ['bad xid', (p) => { p.xid = -1; }, /xid -1/],
    ['bad chaddr', (p) => { p.chaddr = 'zz:11'; }, /chaddr "zz:11"/],
    ['long file', (p) => { p.file = 'x'.repeat(129); }, /file is 129 octets, the field holds 128/],
    ['bad option value', (p) => { p.options.set(3, ['10.0.0.1', 'gateway']); }, /option 3 \(routers\): "gateway" is not a dotted IPv4 address/],
    ['unknown option without bytes', (p) => { p.options.set(230, 'x'); }, /option 230: unknown option, its value must be a Buffer/],
    ['code 255', (p) => { p.options.set(255, Buffer.alloc(0)); }, /255 is not an option code/],
    ['u32 out of range', (p) => { p.options.set(51, 2 ** 32); }, /option 51 \(lease-time\): 4294967296 is not an integer/],
    ['bad uuid', (p) => { setOption(p, 'uuid-guid', { type: 0, uuid: 'nope' }); }, /"nope" is not a UUID/],
    ['empty user class', (p) => { setOption(p, 'user-class', ['']); }, /user class names are 1..255 bytes/],
    ['empty label', (p) => { setOption(p, 'domain-search', ['a..b']); }, /empty label/],
  ];
  for (const [what, mutate, re] of cases) {
    const p = base();
    mutate(p);
    assert.throws(() => encode(p), (e: unknown) => e instanceof DhcpEncodeError && re.test(e.message), what);
  }
  assert.throws(() => encode(base(), { maxSize: 200 }), DhcpEncodeError);
});

// ---------------------------------------------------------------------------------------------
// Accessors, helpers, PXE and user class specifics

test('getOption / setOption / setOptionByName / hasOption / deleteOption', () => {
  const p = createPacket({ chaddr: 'aa:bb:cc:dd:ee:ff' });
  assert.equal(p.hlen, 6);
  setOption(p, 'routers', ['10.0.0.1']);
  assert.deepEqual(getOption(p, 'routers'), ['10.0.0.1']);
  assert.deepEqual(getOption(p.options, 'routers'), ['10.0.0.1']);
  assert.equal(hasOption(p, 'routers'), true);
  setOptionByName(p, 'ntp-servers', ['10.0.0.2']);
  setOptionByName(p, '252', 'http://wpad/wpad.dat');
  setOptionByName(p, 224, Buffer.from('raw'));
  assert.deepEqual([...p.options.keys()], [3, 42, 252, 224]);
  assert.throws(() => setOptionByName(p, 'no-such-option', 1), /unknown option name "no-such-option"/);
  assert.throws(() => setOptionByName(p, 'lease-time', 'soon'), /option 51 \(lease-time\): "soon" is not an integer/);
  assert.equal(deleteOption(p, 'routers'), true);
  assert.equal(hasOption(p, 'routers'), false);
  assert.equal(messageType(p), undefined);
  assert.equal(maxMessageSize(p), 548);
  setOption(p, 'max-message-size', 400);
  assert.equal(maxMessageSize(p), 548, 'below 576 is ignored');
});

test('user class: RFC 3004 list or one bare string', () => {
  const { userClass } = codecs;
  assert.deepEqual(userClass.decode(Buffer.from('iPXE')), ['iPXE']);
  assert.deepEqual(userClass.decode(Buffer.from('\x04iPXE\x07fulcrum', 'latin1')), ['iPXE', 'fulcrum']);
  assert.deepEqual(userClass.decode(Buffer.from('\x04iPXE\x09fulcrum', 'latin1')), ['\x04iPXE\x09fulcrum'], 'does not consume exactly: bare');
  assert.deepEqual(userClass.decode(Buffer.from('\x00abc', 'latin1')), ['\x00abc'], 'zero-length item: bare');
  assert.deepEqual(userClass.encode(['iPXE']), Buffer.from('\x04iPXE', 'latin1'));
});

test('PXE vendor options (option 43)', () => {
  assert.deepEqual(encodePxeVendorOptions({ discoveryControl: 8 }), Buffer.from([6, 1, 8, 255]));
  assert.deepEqual(encodePxeVendorOptions({}), Buffer.alloc(0));
  const all = {
    discoveryControl: 7, multicastDiscoveryAddress: '224.0.1.2',
    bootServers: [{ type: 32768, addresses: ['10.0.0.1'] }], bootMenu: [{ type: 32768, description: 'Fulcrum' }],
    menuPrompt: { timeout: 5, prompt: 'Boot' }, other: new Map([[180, Buffer.from([1])]]),
  };
  const b = encodePxeVendorOptions(all);
  assert.deepEqual([...b.subarray(0, 3)], [6, 1, 7]);
  assert.equal(b[b.length - 1], 255);
  assert.deepEqual(decodePxeVendorOptions(b), all);
  assert.deepEqual(decodePxeVendorOptions(Buffer.from([0, 6, 1, 8])), { discoveryControl: 8 }, 'pad skipped, END optional');
});

test('UUID byte order helper (SMBIOS vs RFC 4122)', () => {
  assert.equal(swapUuidEndianness('44454c4c-5100-1035-8052-b2c04f4e3032'), '4c4c4544-0051-3510-8052-b2c04f4e3032');
  assert.equal(swapUuidEndianness(swapUuidEndianness('c0ffee00-1234-4abc-8def-001122334455')), 'c0ffee00-1234-4abc-8def-001122334455');
});

test('client FQDN: wire-format names, full and partial', () => {
  const { clientFqdn } = codecs;
  assert.deepEqual(clientFqdn.encode({ flags: 4, rcode1: 0, rcode2: 0, name: 'a.bc.' }), Buffer.from([4, 0, 0, 1, 97, 2, 98, 99, 0]));
  assert.deepEqual(clientFqdn.encode({ flags: 4, rcode1: 0, rcode2: 0, name: 'a' }), Buffer.from([4, 0, 0, 1, 97]));
  assert.throws(() => clientFqdn.decode(Buffer.from([4, 0, 0, 1, 97, 0xc0, 0])), /compression/);
});

// ---------------------------------------------------------------------------------------------
// Fuzz: decode never throws anything but DhcpDecodeError, never hangs, and whatever it accepts
// encodes again — and decodes to the same packet.

const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20240531);
const BATCH = 1000;
const BATCH_LIMIT_MS = 15_000;

// The packets are decoded in a worker so that a decoder stuck in a loop is stopped (terminate)
// and reported, instead of hanging the suite. The worker answers each batch with the first
// failure, if any, and its slowest decode.
const FUZZ_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const assert = require('node:assert/strict');
import(workerData.url).then(({ decode, encode, DhcpDecodeError }) => {
  parentPort.on('message', (batch) => {
    let slowest = 0;
    for (const input of batch) {
      const t0 = performance.now();
      let p;
      try {
        p = decode(Buffer.from(input));
      } catch (e) {
        slowest = Math.max(slowest, performance.now() - t0);
        if (e instanceof DhcpDecodeError) continue;
        return parentPort.postMessage({ failure: 'decode threw ' + (e && e.name) + ': ' + (e && e.message), input: Buffer.from(input).toString('hex') });
      }
      slowest = Math.max(slowest, performance.now() - t0);
      try {
        assert.deepEqual(decode(encode(p)), p);
      } catch (e) {
        return parentPort.postMessage({ failure: 're-encoding failed: ' + (e && e.name) + ': ' + (e && e.message), input: Buffer.from(input).toString('hex') });
      }
    }
    parentPort.postMessage({ slowest });
  });
  parentPort.postMessage({ ready: true });
});
`;

async function fuzzInWorker(inputs: Uint8Array[]): Promise<number> {
  const worker = new Worker(FUZZ_WORKER, { eval: true, workerData: { url: new URL('./packet.js', import.meta.url).href } });
  const next = () => new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`decode did not finish a batch of ${BATCH} inputs within ${BATCH_LIMIT_MS} ms (FUZZ_SEED=${FUZZ_SEED})`)), BATCH_LIMIT_MS);
    worker.once('message', (m) => { clearTimeout(timer); resolve(m); });
    worker.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
  try {
    await next(); // ready
    let slowest = 0;
    for (let i = 0; i < inputs.length; i += BATCH) {
      worker.postMessage(inputs.slice(i, i + BATCH));
      const answer = await next();
      if (answer.failure) assert.fail(`${answer.failure}\ninput: ${answer.input}\n(FUZZ_SEED=${FUZZ_SEED})`);
      slowest = Math.max(slowest, answer.slowest);
    }
    return slowest;
  } finally {
    await worker.terminate();
  }
}

const KNOWN_CODES = [...new Set(Object.values(DHCP_OPTIONS.defs).map((d) => (d as { code: number }).code)), 0, 255];
const tlv = fc.record({
  code: fc.oneof(fc.constantFrom(...KNOWN_CODES), fc.nat(255)),
  data: fc.oneof( // lengths that fixed-size and list codecs accept come often, so decoding goes deep
    { weight: 3, arbitrary: fc.constantFrom(1, 2, 3, 4, 8, 17).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 24 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 255 }) },
  ),
  lie: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat(255) }),
}).map(({ code, data, lie }) => Buffer.concat([Buffer.from([code, lie ?? data.length]), data]));
const structured = fc.record({
  header: fc.uint8Array({ minLength: 236, maxLength: 236 }),
  op: fc.constantFrom(1, 2),
  hlen: fc.oneof(fc.constant(6), fc.nat(255)),
  overload: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
  options: fc.array(tlv, { maxLength: 8 }),
  end: fc.boolean(),
}).map(({ header, op, hlen, overload, options, end }) => {
  const h = Buffer.from(header);
  h[0] = op;
  h[2] = hlen;
  if (overload) { h.fill(0, 44, 236); h[44] = 53; h[45] = 1; h[46] = 1; h[108] = 12; h[109] = 2; h[110] = 65; h[111] = 66; }
  return Buffer.concat([h, Buffer.from([0x63, 0x82, 0x53, 0x63]), ...(overload ? [Buffer.from([52, 1, overload])] : []), ...options, Buffer.from(end ? [255] : [])]);
});

test('fuzz: 20,000 random buffers', { timeout: 180_000 }, async () => {
  const inputs = fc.sample(fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 700 }) },
    { weight: 4, arbitrary: structured },
  ), { numRuns: 20_000, seed: FUZZ_SEED });
  const slowest = await fuzzInWorker(inputs);
  assert.ok(slowest < 250, `slowest decode took ${slowest.toFixed(1)} ms`);
});

test('fuzz: every option and sub-option decoder, alone, on random data', () => {
  const decoders: Array<[string, (d: Buffer) => unknown, (v: any) => Buffer]> = [
    ['decodePxeVendorOptions', decodePxeVendorOptions, encodePxeVendorOptions],
  ];
  for (const space of [DHCP_OPTIONS, RELAY_AGENT_SUBOPTIONS, PXE_SUBOPTIONS] as OptionSpace<any>[]) {
    for (const [name, , codec] of codecsOf(space)) decoders.push([`${space.label} ${name}`, (d) => codec.decode(d), (v) => codec.encode(v)]);
  }
  for (const [i, [name, dec, enc]] of decoders.entries()) {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
      let v: unknown;
      try { v = dec(Buffer.from(a)); } catch (e) {
        if (e instanceof DhcpDecodeError) return;
        throw new Error(`${name}: ${(e as Error).name}: ${(e as Error).message}`);
      }
      assert.deepEqual(dec(enc(v)), v, name);
    }), { numRuns: 300, seed: FUZZ_SEED + 10 + i });
  }
});

/** Offsets of every option length octet in a packet's options field (targets for corruption). */
function lengthOffsets(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 240; i < b.length && b[i] !== 255;) {
    if (b[i] === 0) { i++; continue; }
    out.push(i + 1);
    i += 2 + b[i + 1];
  }
  return out;
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; which: number; value: number; delta: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array };

function mutate(base: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(base);
  for (const m of muts) {
    if (b.length === 0) break;
    switch (m.kind) {
      case 'flip': b[m.at % b.length] ^= 1 << m.bit; break;
      case 'truncate': b = b.subarray(0, m.at % (b.length + 1)); break;
      case 'length': { // corrupt an option's length octet: a random value or off by a little
        const offs = lengthOffsets(b);
        if (offs.length) { const o = offs[m.which % offs.length]; b[o] = m.which % 2 ? (b[o] + m.delta) & 0xff : m.value; }
        break;
      }
      case 'byte': if (b.length > 240) b[240 + (m.at % (b.length - 240))] = m.value; break;
      case 'insert': { const at = m.at % (b.length + 1); b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]); break; }
    }
  }
  return b;
}

test('fuzz: 20,000 mutations of the fixtures (bit flips, truncations, length corruption)', { timeout: 180_000 }, async () => {
  const bases = [...fixtures.values()];
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('length' as const), which: fc.nat(), value: fc.oneof(fc.nat(255), fc.constantFrom(0, 1, 2, 3, 4, 5, 16, 17, 254, 255)), delta: fc.integer({ min: -3, max: 3 }) }),
    fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  );
  const inputs = fc.sample(fc.tuple(fc.nat(bases.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 })), { numRuns: 20_000, seed: FUZZ_SEED + 1 })
    .map(([i, muts]) => mutate(bases[i], muts));
  const slowest = await fuzzInWorker(inputs);
  assert.ok(slowest < 250, `slowest decode took ${slowest.toFixed(1)} ms`);
});
