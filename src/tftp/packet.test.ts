import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode, encodingLength, ERROR_CODES, OPCODES, TftpDecodeError, type TftpOptions, type TftpPacket } from './packet.js';

/** Options object as the decoder builds it (so "__proto__" is a plain key here too). */
function opts(pairs: Array<[string, string]>): TftpOptions {
  const o: TftpOptions = {};
  for (const [k, v] of pairs) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---------------------------------------------------------------------------------------------
// Golden fixtures: datagrams captured from the real clients on this machine (curl 7.88.1,
// tftp-hpa 5.2) by a UDP listener.

const GOLDEN: Array<[string, string, TftpPacket]> = [
  ['curl --tftp-blksize 1468 tftp://host/pxelinux.0',
    '0001 7078656c696e75782e3000 6f6374657400 7473697a650030 00 626c6b73697a6500 3134363800 74696d656f757400 3600',
    { type: 'rrq', filename: 'pxelinux.0', mode: 'octet', options: { tsize: '0', blksize: '1468', timeout: '6' } }],
  ['curl tftp://host/ipxe/undionly.kpxe (no blksize given: asks for 512)',
    '0001 697078652f756e64696f6e6c792e6b70786500 6f6374657400 7473697a6500 3000 626c6b73697a6500 35313200 74696d656f757400 3600',
    { type: 'rrq', filename: 'ipxe/undionly.kpxe', mode: 'octet', options: { tsize: '0', blksize: '512', timeout: '6' } }],
  ['tftp-hpa -m binary -c get pxelinux.cfg/default (no options)',
    '0001 7078656c696e75782e6366672f64656661756c7400 6f6374657400',
    { type: 'rrq', filename: 'pxelinux.cfg/default', mode: 'octet', options: {} }],
  ['curl ACK of the OACK', '0004 0000', { type: 'ack', block: 0 }],
];

for (const [name, bytes, packet] of GOLDEN) {
  test(`golden: ${name}`, () => {
    const buf = hex(bytes);
    assert.deepEqual(decode(buf), packet);
    assert.deepEqual(encode(packet), buf);
    assert.equal(encodingLength(packet), buf.length);
  });
}

// ---------------------------------------------------------------------------------------------
// Every packet kind, both ways

const ROUND_TRIPS: Array<[string, TftpPacket, string]> = [
  ['RRQ with options', { type: 'rrq', filename: 'a/b', mode: 'octet', options: { blksize: '1468', windowsize: '8' } },
    '0001 612f6200 6f6374657400 626c6b73697a6500 3134363800 77696e646f7773697a6500 3800'],
  ['WRQ', { type: 'wrq', filename: 'up', mode: 'netascii', options: {} }, '0002 757000 6e65746173636969 00'],
  ['RRQ with a UTF-8 name', { type: 'rrq', filename: 'é', mode: 'octet', options: {} }, '0001 c3a900 6f6374657400'],
  ['DATA', { type: 'data', block: 65535, data: Buffer.from('hi') }, '0003 ffff 6869'],
  ['empty final DATA', { type: 'data', block: 7, data: Buffer.alloc(0) }, '0003 0007'],
  ['ACK', { type: 'ack', block: 258 }, '0004 0102'],
  ['ERROR', { type: 'error', code: ERROR_CODES.fileNotFound, message: 'nope' }, '0005 0001 6e6f706500'],
  ['ERROR without text', { type: 'error', code: 8, message: '' }, '0005 0008 00'],
  ['OACK', { type: 'oack', options: { tsize: '1048576' } }, '0006 7473697a6500 3130343835373600'],
  ['OACK without options', { type: 'oack', options: {} }, '0006'],
];

for (const [name, packet, bytes] of ROUND_TRIPS) {
  test(`codec: ${name}`, () => {
    const buf = encode(packet);
    assert.equal(buf.toString('hex'), hex(bytes).toString('hex'));
    assert.equal(encodingLength(packet), buf.length);
    assert.deepEqual(decode(buf), packet);
  });
}

test('encode into a caller buffer at an offset', () => {
  const out = Buffer.alloc(20, 0xee);
  const view = encode({ type: 'ack', block: 9 }, out, 3);
  assert.equal(view.toString('hex'), '00040009');
  assert.equal(out.subarray(0, 8).toString('hex'), 'eeeeee00040009ee');
  assert.throws(() => encode({ type: 'ack', block: 9 }, Buffer.alloc(3)), RangeError);
});

test('decode is lenient only where real clients need it', () => {
  // Trailing NUL padding after the last option (some firmware pads requests).
  assert.deepEqual(decode(hex('0001 6600 6f6374657400 0000000000')), { type: 'rrq', filename: 'f', mode: 'octet', options: {} });
  assert.deepEqual(decode(hex('0001 6600 6f6374657400 6100 3100 0000')), { type: 'rrq', filename: 'f', mode: 'octet', options: { a: '1' } });
  // An ERROR whose message lacks its NUL still aborts.
  assert.deepEqual(decode(hex('0005 0000 6f6f7073')), { type: 'error', code: 0, message: 'oops' });
  // ACK with trailing bytes.
  assert.deepEqual(decode(hex('0004 0001 ffff')), { type: 'ack', block: 1 });
  // Repeated option names (any case) keep the first value.
  assert.deepEqual(decode(hex('0001 6600 6f6374657400 6100 3100 4100 3200')).type, 'rrq');
  assert.deepEqual((decode(hex('0001 6600 6f6374657400 6100 3100 4100 3200')) as { options: TftpOptions }).options, { a: '1' });
});

test('an option named __proto__ is data, not a prototype', () => {
  const p = decode(encode({ type: 'rrq', filename: 'f', mode: 'octet', options: opts([['__proto__', 'x'], ['blksize', '8']]) }));
  assert.equal(p.type, 'rrq');
  const o = (p as { options: TftpOptions }).options;
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.deepEqual(Object.keys(o), ['__proto__', 'blksize']);
  assert.equal(Object.getOwnPropertyDescriptor(o, '__proto__')?.value, 'x');
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

const MALFORMED: Array<[string, string, RegExp]> = [
  ['empty', '', /no opcode/],
  ['one byte', '00', /no opcode/],
  ['opcode 0', '0000 0000', /unknown opcode 0/],
  ['opcode 7', '0007', /unknown opcode 7/],
  ['RRQ without terminator', '0001 6162', /filename is not NUL-terminated/],
  ['RRQ without mode', '0001 6100', /no mode/],
  ['RRQ with empty mode', '0001 6100 00', /mode is empty/],
  ['RRQ mode without terminator', '0001 6100 6f63', /mode is not NUL-terminated/],
  ['option without value', '0001 6100 6f6374657400 626c6b73697a6500', /has no value/],
  ['option value without terminator', '0001 6100 6f6374657400 6100 3132', /not NUL-terminated/],
  ['empty option name before data', '0001 6100 6f6374657400 00 6100 3100', /empty option name/],
  ['invalid UTF-8 filename', '0001 ff00 6f6374657400', /not valid UTF-8/],
  ['DATA without block', '0003 01', /no block number/],
  ['ACK without block', '0004', /no block number/],
  ['ERROR without code', '0005 00', /no error code/],
  ['OACK odd strings', '0006 6100', /has no value/],
];

for (const [name, bytes, message] of MALFORMED) {
  test(`decode refuses: ${name}`, () => {
    assert.throws(() => decode(hex(bytes)), (e: unknown) => e instanceof TftpDecodeError && message.test(e.message));
  });
}

test('encode refuses what cannot go on the wire', () => {
  assert.throws(() => encode({ type: 'rrq', filename: 'a\0b', mode: 'octet', options: {} }), TypeError);
  assert.throws(() => encode({ type: 'rrq', filename: 'a', mode: '', options: {} }), TypeError);
  assert.throws(() => encode({ type: 'oack', options: { '': '1' } }), TypeError);
  assert.throws(() => encode({ type: 'data', block: 65536, data: Buffer.alloc(0) }), RangeError);
  assert.throws(() => encode({ type: 'ack', block: -1 }), RangeError);
  assert.throws(() => encode({ type: 'error', code: 1.5, message: '' }), RangeError);
  assert.throws(() => encode({ type: 'nope' } as unknown as TftpPacket), TypeError);
});

test('opcodes are RFC 1350 / RFC 2347', () => {
  assert.deepEqual(OPCODES, { rrq: 1, wrq: 2, data: 3, ack: 4, error: 5, oack: 6 });
});

// ---------------------------------------------------------------------------------------------
// Properties and fuzzing

const text = (max: number) => fc.string({ unit: 'binary', maxLength: max }).filter((s) => !s.includes('\0') && Buffer.from(s, 'utf8').toString('utf8') === s);
const optionsArb = fc.uniqueArray(fc.tuple(text(12).filter((s) => s !== ''), text(12)), { maxLength: 6, selector: ([k]) => k.toLowerCase() })
  .map((pairs) => opts(pairs));
const packetArb: fc.Arbitrary<TftpPacket> = fc.oneof(
  fc.record({ type: fc.constantFrom('rrq' as const, 'wrq' as const), filename: text(40), mode: text(10).filter((s) => s !== ''), options: optionsArb }),
  fc.record({ type: fc.constant('data' as const), block: fc.nat(65535), data: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)) }),
  fc.record({ type: fc.constant('ack' as const), block: fc.nat(65535) }),
  fc.record({ type: fc.constant('error' as const), code: fc.nat(65535), message: text(60) }),
  fc.record({ type: fc.constant('oack' as const), options: optionsArb }),
).map((p) => ({ ...p }) as TftpPacket); // fc.record builds null-prototype objects

/** decode must return a packet or throw TftpDecodeError; what it returns must encode and decode the same. */
function decodeSafely(buf: Buffer): void {
  let p: TftpPacket;
  try {
    p = decode(buf);
  } catch (err) {
    if (!(err instanceof TftpDecodeError)) throw new Error(`decode threw ${(err as Error)?.name} for ${buf.toString('hex')}: ${(err as Error)?.message}`);
    return;
  }
  const again = encode(p);
  assert.equal(encodingLength(p), again.length);
  assert.deepEqual(decode(again), p);
}

test('property: every packet survives encode → decode', () => {
  fc.assert(fc.property(packetArb, (p) => {
    const buf = encode(p);
    assert.equal(encodingLength(p), buf.length);
    assert.deepEqual(decode(buf), p);
  }), { numRuns: 3000, seed: 1350 });
});

test('fuzz: random datagrams decode or throw TftpDecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), (a) => decodeSafely(Buffer.from(a))), { numRuns: 20000, seed: 2347 });
  // Datagrams that at least carry a real opcode reach the packet codecs.
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.uint8Array({ maxLength: 300 }), (op, a) => {
    const buf = Buffer.alloc(2 + a.length);
    buf.writeUInt16BE(op, 0);
    buf.set(a, 2);
    decodeSafely(buf);
  }), { numRuns: 20000, seed: 2348 });
});

/** A valid packet with some bytes flipped, cut, or inserted. */
export const mutatedPacketArb = fc.tuple(
  fc.oneof(packetArb.map((p) => encode(p)), fc.constantFrom(...GOLDEN.map(([, h]) => hex(h)))),
  fc.array(fc.tuple(fc.constantFrom('flip', 'cut', 'insert', 'nul'), fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
).map(([buf, edits]) => {
  let b = Buffer.from(buf);
  for (const [kind, at, byte] of edits) {
    const i = b.length ? at % b.length : 0;
    if (kind === 'flip' && b.length) b[i] = byte;
    else if (kind === 'cut') b = b.subarray(0, i);
    else if (kind === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
    else if (kind === 'nul' && b.length) b[i] = 0;
  }
  return b;
});

test('fuzz: mutated valid packets decode or throw TftpDecodeError', () => {
  fc.assert(fc.property(mutatedPacketArb, decodeSafely), { numRuns: 20000, seed: 2349 });
});

test('decode of a 64 KB run of tiny options stays fast (no quadratic work)', () => {
  const buf = Buffer.concat([hex('0001 6600 6f6374657400'), Buffer.from('a\0b\0'.repeat(16000))]);
  const unique = Buffer.concat([hex('0001 6600 6f6374657400'), ...Array.from({ length: 8000 }, (_, i) => Buffer.from(`o${i}\0v\0`))]);
  const t = process.hrtime.bigint();
  decode(buf);
  assert.equal(Object.keys((decode(unique) as { options: TftpOptions }).options).length, 8000);
  assert.ok(Number(process.hrtime.bigint() - t) / 1e6 < 500, 'decode took over 500 ms');
});
