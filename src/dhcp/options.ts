// DHCPv4 options (RFC 2132 and the RFCs named beside each entry): one codec per kind of value,
// each with the same three faces — encode, decode, encodingLength — and one registry that maps an
// option code to its name and codec (STYLE.md "Symmetric codecs"). Pure: no I/O.
//
// Codecs work on an option's whole data, after the framer (packet.ts) has joined the instances of
// a split option (RFC 3396). Decoders throw DhcpDecodeError, encoders DhcpEncodeError; the framer
// adds which option it was.

/** The packet or one of its options is malformed. `reason` says what, for the operator's log. */
export class DhcpDecodeError extends Error {
  override name = 'DhcpDecodeError';
  constructor(readonly reason: string) { super(`malformed DHCP packet: ${reason}`); }
}

/** A packet or option value cannot be put on the wire as given. */
export class DhcpEncodeError extends Error {
  override name = 'DhcpEncodeError';
  constructor(readonly reason: string) { super(`cannot encode DHCP packet: ${reason}`); }
}

export interface Codec<T> {
  /** What the value is, for messages ("dotted IPv4 address", "list of u16"...). */
  readonly kind: string;
  encode(value: T): Buffer;
  decode(data: Buffer): T;
  encodingLength(value: T): number;
}

const malformed = (reason: string): never => { throw new DhcpDecodeError(reason); };
const unencodable = (reason: string): never => { throw new DhcpEncodeError(reason); };
const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : Buffer.isBuffer(v) ? `<${v.length} bytes>` : String(v));

function needLength(data: Buffer, n: number): void {
  if (data.length !== n) malformed(`length ${data.length}, expected ${n}`);
}
function needMultiple(data: Buffer, n: number, min: number): void {
  if (data.length % n !== 0 || data.length < min) {
    malformed(`length ${data.length}, expected a multiple of ${n}${min ? ` (at least ${min})` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars

function uint(bits: 8 | 16 | 32): Codec<number> {
  const size = bits / 8;
  const max = 2 ** bits - 1;
  return {
    kind: `u${bits}`,
    encode(v) {
      if (!Number.isInteger(v) || v < 0 || v > max) unencodable(`${show(v)} is not an integer in 0..${max}`);
      const b = Buffer.alloc(size);
      b.writeUIntBE(v, 0, size);
      return b;
    },
    decode(data) { needLength(data, size); return data.readUIntBE(0, size); },
    encodingLength: () => size,
  };
}
export const u8 = uint(8);
export const u16 = uint(16);
export const u32 = uint(32);

export const i32: Codec<number> = {
  kind: 'i32',
  encode(v) {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) unencodable(`${show(v)} is not a signed 32-bit integer`);
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return b;
  },
  decode(data) { needLength(data, 4); return data.readInt32BE(0); },
  encodingLength: () => 4,
};

/** RFC 2132 §2: one octet, 0 or 1. */
export const bool: Codec<boolean> = {
  kind: 'boolean',
  encode(v) {
    if (typeof v !== 'boolean') unencodable(`${show(v)} is not a boolean`);
    return Buffer.from([v ? 1 : 0]);
  },
  decode(data) {
    needLength(data, 1);
    if (data[0] > 1) malformed(`boolean value ${data[0]}, expected 0 or 1`);
    return data[0] === 1;
  },
  encodingLength: () => 1,
};

/** A zero-length option whose presence is the value (RFC 4039 rapid commit). */
export const flag: Codec<true> = {
  kind: 'flag (no data)',
  encode: () => Buffer.alloc(0),
  decode(data) { needLength(data, 0); return true; },
  encodingLength: () => 0,
};

// ---------------------------------------------------------------------------------------------
// Addresses

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** "10.0.0.1" → 4 bytes written at `offset`; throws DhcpEncodeError for anything else. */
export function writeIp(ip: string, buf: Buffer, offset: number): void {
  // Fast path (every packet writes several): digits and three dots, each octet 1-3 digits ≤ 255.
  if (typeof ip === 'string' && ip.length >= 7 && ip.length <= 15) {
    let octet = 0, digits = 0, i = 0, n = 0;
    for (; i < ip.length; i++) {
      const c = ip.charCodeAt(i);
      if (c >= 48 && c <= 57) { octet = octet * 10 + (c - 48); if (++digits > 3) break; }
      else if (c === 46 && digits > 0 && n < 3 && octet <= 255) { buf[offset + n++] = octet; octet = 0; digits = 0; }
      else break;
    }
    if (i === ip.length && n === 3 && digits > 0 && octet <= 255) { buf[offset + 3] = octet; return; }
  }
  const m = typeof ip === 'string' ? DOTTED.exec(ip) : null;
  const octets = m ? m.slice(1).map(Number) : [];
  if (!m || octets.some((o) => o > 255)) unencodable(`${show(ip)} is not a dotted IPv4 address`);
  for (let i = 0; i < 4; i++) buf[offset + i] = octets[i];
}
export const readIp = (buf: Buffer, offset: number): string =>
  `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;

export const ip: Codec<string> = {
  kind: 'dotted IPv4 address',
  encode(v) { const b = Buffer.alloc(4); writeIp(v, b, 0); return b; },
  decode(data) { needLength(data, 4); return readIp(data, 0); },
  encodingLength: () => 4,
};

function listOf<T>(item: Codec<T>, size: number, min: number): Codec<T[]> {
  return {
    kind: `list of ${item.kind}${min === 0 ? ' (may be empty)' : ''}`,
    encode(v) {
      if (!Array.isArray(v)) unencodable(`${show(v)} is not a list of ${item.kind}`);
      if (v.length < min) unencodable(`needs at least ${min} item(s)`);
      return Buffer.concat(v.map((x) => item.encode(x)));
    },
    decode(data) {
      needMultiple(data, size, min * size);
      const out: T[] = [];
      for (let i = 0; i < data.length; i += size) out.push(item.decode(data.subarray(i, i + size)));
      return out;
    },
    encodingLength: (v) => v.length * size,
  };
}
/** One or more addresses (RFC 2132 lists: routers, DNS, NTP...). */
export const ips = listOf(ip, 4, 1);
/** Zero or more addresses (RFC 2132 §8.3 mobile IP home agent may be empty). */
export const ipsOrNone = listOf(ip, 4, 0);
export const u8s = listOf(u8, 1, 0);
export const u16s = listOf(u16, 2, 1);

/** Pairs of addresses (RFC 2132 §4.3 policy filter, §5.8 static routes). */
function ipPairs<A extends string, B extends string>(a: A, b: B): Codec<Array<Record<A | B, string>>> {
  return {
    kind: `list of {${a}, ${b}} address pairs`,
    encode(v) {
      if (!Array.isArray(v) || v.length === 0) unencodable(`expected a non-empty list of {${a}, ${b}}`);
      const buf = Buffer.alloc(v.length * 8);
      v.forEach((pair, i) => { writeIp(pair?.[a], buf, i * 8); writeIp(pair?.[b], buf, i * 8 + 4); });
      return buf;
    },
    decode(data) {
      needMultiple(data, 8, 8);
      const out: Array<Record<A | B, string>> = [];
      for (let i = 0; i < data.length; i += 8) out.push({ [a]: readIp(data, i), [b]: readIp(data, i + 4) } as Record<A | B, string>);
      return out;
    },
    encodingLength: (v) => v.length * 8,
  };
}

// ---------------------------------------------------------------------------------------------
// Text and bytes

/** Bytes as a latin1 string: every byte maps to one character, so decode∘encode is byte-exact.
 *  RFC 2132 strings are NVT ASCII; identifiers (vendor class, domain names) use this. */
export const string: Codec<string> = {
  kind: 'string',
  encode(v) {
    if (typeof v !== 'string') unencodable(`${show(v)} is not a string`);
    if (/[^\x00-\xff]/.test(v)) unencodable(`${show(v)} has characters outside latin1; this option carries raw bytes`);
    return Buffer.from(v, 'latin1');
  },
  decode: (data) => data.toString('latin1'),
  encodingLength: (v) => v.length,
};

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Human text (host name, server message): UTF-8 when the bytes are valid UTF-8, else latin1;
 *  trailing NULs some clients append are dropped. */
export const text: Codec<string> = {
  kind: 'text',
  encode(v) {
    if (typeof v !== 'string') unencodable(`${show(v)} is not a string`);
    return Buffer.from(v, 'utf8');
  },
  decode(data) {
    let end = data.length;
    while (end > 0 && data[end - 1] === 0) end--;
    const d = data.subarray(0, end);
    try { return utf8Strict.decode(d); } catch { return d.toString('latin1'); }
  },
  encodingLength: (v) => Buffer.byteLength(v, 'utf8'),
};

export const bytes: Codec<Buffer> = {
  kind: 'bytes',
  encode(v) {
    if (!(v instanceof Uint8Array)) unencodable(`${show(v)} is not a Buffer`);
    return Buffer.from(v);
  },
  decode: (data) => Buffer.from(data),
  encodingLength: (v) => v.length,
};

// ---------------------------------------------------------------------------------------------
// Structured options

/** RFC 2132 §9.6 / RFC 2131 §3.1 message types, plus the lease-query family (RFC 3203, 4388, 6926, 7724). */
export const MessageType = {
  DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8,
  FORCERENEW: 9, LEASEQUERY: 10, LEASEUNASSIGNED: 11, LEASEUNKNOWN: 12, LEASEACTIVE: 13,
  BULKLEASEQUERY: 14, LEASEQUERYDONE: 15, ACTIVELEASEQUERY: 16, LEASEQUERYSTATUS: 17, TLS: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
const MESSAGE_TYPE_NAMES = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, k]));
/** "DISCOVER", or "unknown(42)". */
export const messageTypeName = (t: number | undefined): string =>
  (t === undefined ? 'none' : MESSAGE_TYPE_NAMES.get(t) ?? `unknown(${t})`);

/** Option 53. Any octet decodes (a server ignores types it does not know); the value is a number
 *  so an unknown type is not mistyped as a known one. */
export const messageType: Codec<number> = { ...u8, kind: 'message type' };

/** RFC 2132 §9.14 option 61: a type octet (1 = Ethernet, as htype; 0 = opaque; 255 = RFC 4361) and the identifier. */
export interface ClientIdentifier { type: number; data: Buffer }
export const clientIdentifier: Codec<ClientIdentifier> = {
  kind: 'client identifier {type, data}',
  encode(v) {
    u8.encode(v?.type);
    return Buffer.concat([Buffer.from([v.type]), bytes.encode(v.data)]);
  },
  decode(data) {
    if (data.length < 1) malformed('length 0, expected at least 1 (type octet)');
    return { type: data[0], data: Buffer.from(data.subarray(1)) };
  },
  encodingLength: (v) => 1 + v.data.length,
};

/** RFC 4578 §2.1 processor architecture types (IANA registry; RFC 4578 erratum 4624 swaps 7 and 9:
 *  7 is x64 UEFI, 9 is EFI byte code — firmware in the field sends both for x86-64 UEFI). */
export const ClientArch: Readonly<Record<number, string>> = {
  0: 'x86 BIOS', 1: 'NEC/PC98', 2: 'Itanium', 3: 'DEC Alpha', 4: 'Arc x86', 5: 'Intel Lean Client',
  6: 'x86 (32-bit) UEFI', 7: 'x64 UEFI', 8: 'XScale EFI', 9: 'EBC (x64 UEFI in practice)', 10: 'ARM 32-bit UEFI',
  11: 'ARM 64-bit UEFI', 12: 'PowerPC Open Firmware', 13: 'PowerPC ePAPR', 14: 'POWER OPAL v3',
  15: 'x86 UEFI HTTP', 16: 'x64 UEFI HTTP', 17: 'EBC UEFI HTTP', 18: 'ARM 32-bit UEFI HTTP', 19: 'ARM 64-bit UEFI HTTP',
  20: 'x86 BIOS HTTP', 21: 'ARM 32-bit U-Boot', 22: 'ARM 64-bit U-Boot', 23: 'ARM 32-bit U-Boot HTTP',
  24: 'ARM 64-bit U-Boot HTTP', 25: 'RISC-V 32-bit UEFI', 26: 'RISC-V 32-bit UEFI HTTP', 27: 'RISC-V 64-bit UEFI',
  28: 'RISC-V 64-bit UEFI HTTP', 29: 'RISC-V 128-bit UEFI', 30: 'RISC-V 128-bit UEFI HTTP',
};
export const clientArchName = (code: number) => ClientArch[code] ?? `unknown architecture ${code}`;

/** Option 93 (RFC 4578 §2.1): one or more 16-bit architecture types. */
export const clientArch: Codec<number[]> = { ...u16s, kind: 'list of architecture types (u16)' };

/** Option 94 (RFC 4578 §2.2): interface type (1 = UNDI) and its major/minor version (2.1, 3.0...). */
export interface ClientNdi { type: number; major: number; minor: number }
export const clientNdi: Codec<ClientNdi> = {
  kind: 'network interface identifier {type, major, minor}',
  encode: (v) => Buffer.from([v?.type, v?.major, v?.minor].map((x) => u8.encode(x)[0])),
  decode(data) { needLength(data, 3); return { type: data[0], major: data[1], minor: data[2] }; },
  encodingLength: () => 3,
};

/** Option 97 (RFC 4578 §2.3): type 0 and a 16-octet GUID. `uuid` prints the octets in wire order;
 *  firmware often copies the SMBIOS bytes, whose first three fields are little-endian — compare
 *  with the DMI UUID both ways (swapUuidEndianness). */
export interface UuidGuid { type: number; uuid: string }
const HEX32 = /^[0-9a-f]{32}$/;
export function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
export function parseUuid(s: string): Buffer {
  const h = typeof s === 'string' ? s.replace(/[-{}]/g, '').toLowerCase() : '';
  if (!HEX32.test(h)) unencodable(`${show(s)} is not a UUID (32 hex digits)`);
  return Buffer.from(h, 'hex');
}
/** Between RFC 4122 (big-endian) and SMBIOS ≥ 2.6 (first three fields little-endian) order. */
export function swapUuidEndianness(uuid: string): string {
  const b = parseUuid(uuid);
  b.subarray(0, 4).reverse(); b.subarray(4, 6).reverse(); b.subarray(6, 8).reverse();
  return formatUuid(b);
}
export const uuidGuid: Codec<UuidGuid> = {
  kind: 'machine identifier {type, uuid}',
  encode: (v) => Buffer.concat([u8.encode(v?.type), parseUuid(v?.uuid)]),
  decode(data) { needLength(data, 17); return { type: data[0], uuid: formatUuid(data.subarray(1)) }; },
  encodingLength: () => 17,
};

/** Option 77 (RFC 3004): length-prefixed class names. iPXE and some firmware send one bare string
 *  ("iPXE"), so: if the RFC 3004 reading consumes the data exactly, use it, else the data is one
 *  name. Encodes RFC 3004 form; a single name too long for it (> 255 bytes) is sent bare. */
export const userClass: Codec<string[]> = {
  kind: 'list of user class names',
  encode(v) {
    if (!Array.isArray(v)) unencodable(`${show(v)} is not a list of strings`);
    const names = v.map((s) => string.encode(s));
    if (names.length === 1 && names[0].length > 255) return names[0];
    for (const n of names) if (n.length < 1 || n.length > 255) unencodable(`user class names are 1..255 bytes, got ${n.length}`);
    return Buffer.concat(names.flatMap((n) => [Buffer.from([n.length]), n]));
  },
  decode(data) {
    const names: string[] = [];
    let i = 0;
    while (i < data.length) {
      const len = data[i];
      if (len === 0 || i + 1 + len > data.length) return [data.toString('latin1')];
      names.push(data.toString('latin1', i + 1, i + 1 + len));
      i += 1 + len;
    }
    return names;
  },
  encodingLength(v) { return this.encode(v).length; },
};

/** Option 121 (RFC 3442) and 249 (the same, Microsoft's code): destination as "a.b.c.d/width".
 *  Only the significant octets travel; decode∘encode keeps them as received. */
export interface ClasslessRoute { destination: string; router: string }
export const classlessRoutes: Codec<ClasslessRoute[]> = {
  kind: 'list of {destination: "a.b.c.d/n", router}',
  encode(v) {
    if (!Array.isArray(v) || v.length === 0) unencodable('expected a non-empty list of {destination, router}');
    return Buffer.concat(v.map((r) => {
      const [addr, width, extra] = typeof r?.destination === 'string' ? r.destination.split('/') : [];
      const w = Number(width);
      if (extra !== undefined || !/^\d{1,2}$/.test(width ?? '') || w > 32) unencodable(`${show(r?.destination)} is not "a.b.c.d/n" with n in 0..32`);
      const significant = Math.ceil(w / 8);
      const b = Buffer.alloc(1 + significant + 4);
      const dest = Buffer.alloc(4);
      writeIp(addr, dest, 0);
      b[0] = w;
      dest.copy(b, 1, 0, significant);
      writeIp(r.router, b, 1 + significant);
      return b;
    }));
  },
  decode(data) {
    const out: ClasslessRoute[] = [];
    let i = 0;
    if (data.length === 0) malformed('length 0, expected at least one route');
    while (i < data.length) {
      const w = data[i];
      if (w > 32) malformed(`route at octet ${i}: prefix width ${w} > 32`);
      const significant = Math.ceil(w / 8);
      if (i + 1 + significant + 4 > data.length) malformed(`route at octet ${i}: truncated (needs ${1 + significant + 4} octets, ${data.length - i} left)`);
      const dest = Buffer.alloc(4);
      data.copy(dest, 0, i + 1, i + 1 + significant);
      out.push({ destination: `${readIp(dest, 0)}/${w}`, router: readIp(data, i + 1 + significant) });
      i += 1 + significant + 4;
    }
    return out;
  },
  encodingLength(v) { return this.encode(v).length; },
};

// ---------------------------------------------------------------------------------------------
// Domain names (RFC 1035 §3.1 wire format, §4.1.4 compression) for options 119 and 81.
// Names are written without the trailing dot; a "." or "\" inside a label is escaped with "\".

const MAX_NAME = 255;

/** "a.example\\.com." → labels; `absolute` when it ends with an unescaped dot ("." is the root). */
function parseName(name: string): { labels: Buffer[]; absolute: boolean } {
  if (typeof name !== 'string') unencodable(`${show(name)} is not a domain name`);
  const raw: string[] = [];
  let cur = '';
  let absolute = false;
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === '\\' && i + 1 < name.length) cur += name[++i];
    else if (c === '.' && i === name.length - 1) absolute = true;
    else if (c === '.') { raw.push(cur); cur = ''; } else cur += c;
  }
  if (cur !== '' || raw.length > 0) raw.push(cur);
  const labels = raw.map((l) => {
    if (l.length === 0) unencodable(`${show(name)} has an empty label`);
    const b = string.encode(l);
    if (b.length > 63) unencodable(`${show(name)} has a label longer than 63 octets`);
    return b;
  });
  if (labels.reduce((n, l) => n + 1 + l.length, 1) > MAX_NAME) unencodable(`${show(name)} is longer than ${MAX_NAME} octets`);
  return { labels, absolute };
}

const escapeLabel = (b: Buffer) => b.toString('latin1').replace(/[\\.]/g, (c) => `\\${c}`);

/** Reads one name at `offset`. Pointers must point strictly backwards, so reading always ends. */
function readName(data: Buffer, offset: number, pointers: boolean): { name: string; next: number; terminated: boolean } {
  const labels: string[] = [];
  let i = offset;
  let next = -1;
  let wire = 1;
  for (;;) {
    if (i >= data.length) {
      if (pointers || next !== -1) malformed(`name at octet ${offset} runs past the end of the option`);
      return { name: labels.join('.'), next: i, terminated: false }; // RFC 4702 partial name
    }
    const len = data[i];
    if (len === 0) { if (next === -1) next = i + 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (!pointers) malformed(`name at octet ${offset} uses compression, which this option does not allow`);
      if (i + 1 >= data.length) malformed(`name at octet ${offset}: truncated compression pointer`);
      const target = ((len & 0x3f) << 8) | data[i + 1];
      if (target >= i) malformed(`name at octet ${offset}: compression pointer to ${target} does not point backwards`);
      if (next === -1) next = i + 2;
      i = target;
      continue;
    }
    if (len > 63) malformed(`name at octet ${offset}: label type 0x${(len & 0xc0).toString(16)} is not supported`);
    if (i + 1 + len > data.length) malformed(`name at octet ${offset}: label overruns the option`);
    wire += 1 + len;
    if (wire > MAX_NAME) malformed(`name at octet ${offset} is longer than ${MAX_NAME} octets`);
    labels.push(escapeLabel(data.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  return { name: labels.join('.'), next, terminated: true };
}

/** Option 119 (RFC 3397): a list of names, compressed against each other (offsets count from the
 *  start of the joined option data). */
export const domainSearch: Codec<string[]> = {
  kind: 'list of domain names',
  encode(v) {
    if (!Array.isArray(v)) unencodable(`${show(v)} is not a list of domain names`);
    const parts: Buffer[] = [];
    const seen = new Map<string, number>();
    let at = 0;
    for (const name of v) {
      const { labels } = parseName(name);
      let k = 0;
      for (; k < labels.length; k++) {
        const suffix = labels.slice(k).map((l) => `${l.length}:${l.toString('latin1')}`).join('');
        const ptr = seen.get(suffix);
        if (ptr !== undefined) { parts.push(Buffer.from([0xc0 | (ptr >> 8), ptr & 0xff])); at += 2; break; }
        if (at < 0x4000) seen.set(suffix, at);
        parts.push(Buffer.from([labels[k].length]), labels[k]);
        at += 1 + labels[k].length;
      }
      if (k === labels.length) { parts.push(Buffer.from([0])); at += 1; }
    }
    return Buffer.concat(parts);
  },
  decode(data) {
    const names: string[] = [];
    for (let i = 0; i < data.length;) {
      const r = readName(data, i, true);
      names.push(r.name);
      i = r.next;
    }
    return names;
  },
  encodingLength(v) { return this.encode(v).length; },
};

/** Option 81 (RFC 4702): flags (S=1, O=2, E=4, N=8), two deprecated RCODEs, and the name — in DNS
 *  wire format when E is set (a trailing "." marks a fully qualified name), else ASCII. */
export interface ClientFqdn { flags: number; rcode1: number; rcode2: number; name: string }
export const clientFqdn: Codec<ClientFqdn> = {
  kind: 'client FQDN {flags, rcode1, rcode2, name}',
  encode(v) {
    const head = Buffer.from([u8.encode(v?.flags)[0], u8.encode(v?.rcode1)[0], u8.encode(v?.rcode2)[0]]);
    if (!(v.flags & 4)) return Buffer.concat([head, string.encode(v.name)]);
    const { labels, absolute } = parseName(v.name);
    return Buffer.concat([head, ...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from(absolute ? [0] : [])]);
  },
  decode(data) {
    if (data.length < 3) malformed(`length ${data.length}, expected at least 3`);
    const [flags, rcode1, rcode2] = data;
    const rest = data.subarray(3);
    if (!(flags & 4)) return { flags, rcode1, rcode2, name: rest.toString('latin1') };
    if (rest.length === 0) return { flags, rcode1, rcode2, name: '' };
    const r = readName(rest, 0, false);
    if (r.next !== rest.length) malformed(`${rest.length - r.next} octets after the name`);
    return { flags, rcode1, rcode2, name: r.terminated ? `${r.name}.` : r.name };
  },
  encodingLength(v) { return this.encode(v).length; },
};

// ---------------------------------------------------------------------------------------------
// Option spaces: a registry of code → {name, codec}. The DHCP options are one; option 82's
// sub-options (RFC 3046) and option 43's PXE sub-options are others, framed the same way.

export interface OptionDef<T> { code: number; codec: Codec<T> }
export const def = <T>(code: number, codec: Codec<T>): OptionDef<T> => ({ code, codec });
type Defs = Record<string, OptionDef<any>>;
export type ValueOf<D> = D extends OptionDef<infer T> ? T : never;

/** Options keyed by code, in wire order (Map keeps insertion order). A value is the decoded form
 *  of the option's codec; unknown codes hold their raw bytes as a Buffer. */
export type OptionMap = Map<number, unknown>;

export class OptionSpace<D extends Defs> {
  private readonly byCode = new Map<number, { name: string; codec: Codec<unknown> }>();
  private readonly byName = new Map<string, number>();

  /** `padEnd`: codes 0 and 255 are PAD and END in this space (DHCP, PXE), not in option 82. */
  constructor(readonly label: string, readonly defs: D, readonly padEnd: boolean) {
    for (const [name, d] of Object.entries(defs)) {
      if (this.byCode.has(d.code)) throw new Error(`${label}: code ${d.code} registered twice`);
      this.byCode.set(d.code, { name, codec: d.codec });
      this.byName.set(name, d.code);
    }
  }

  code(name: keyof D & string): number {
    const c = this.byName.get(name);
    if (c === undefined) throw new DhcpEncodeError(`unknown ${this.label} name ${show(name)}`);
    return c;
  }
  name(code: number): string | undefined { return this.byCode.get(code)?.name; }
  describe(code: number): string { return `${this.label} ${code}${this.name(code) ? ` (${this.name(code)})` : ''}`; }

  /** The option's data → its value; a Buffer for codes this space does not know. */
  decodeValue(code: number, data: Buffer): unknown {
    const entry = this.byCode.get(code);
    if (!entry) return Buffer.from(data);
    try {
      return entry.codec.decode(data);
    } catch (e) {
      if (e instanceof DhcpDecodeError) throw new DhcpDecodeError(`${this.describe(code)}: ${e.reason}`);
      throw e;
    }
  }

  /** A value → the option's data. A Buffer is always sent as it is (raw bytes for any code). */
  encodeValue(code: number, value: unknown): Buffer {
    if (!Number.isInteger(code) || code < 0 || code > 255 || (this.padEnd && (code === 0 || code === 255))) {
      throw new DhcpEncodeError(`${this.label}: ${show(code)} is not an option code (1..254)`);
    }
    const entry = this.byCode.get(code);
    if (value instanceof Uint8Array && (!entry || entry.codec !== bytes)) return Buffer.from(value);
    if (!entry) throw new DhcpEncodeError(`${this.describe(code)}: unknown option, its value must be a Buffer`);
    try {
      return entry.codec.encode(value);
    } catch (e) {
      if (e instanceof DhcpEncodeError) throw new DhcpEncodeError(`${this.describe(code)}: ${e.reason}`);
      if (e instanceof TypeError || e instanceof RangeError) throw new DhcpEncodeError(`${this.describe(code)}: ${show(value)} is not a ${entry.codec.kind}`);
      throw e;
    }
  }

  get<N extends keyof D & string>(map: OptionMap, name: N): ValueOf<D[N]> | undefined {
    return map.get(this.code(name)) as ValueOf<D[N]> | undefined;
  }
  set<N extends keyof D & string>(map: OptionMap, name: N, value: ValueOf<D[N]>): void {
    map.set(this.code(name), value);
  }

  /** Sub-option framing: code, length, data; no splitting (each is at most 255 octets). A code
   *  seen twice is refused: the map could not give the bytes back as they came. */
  decodeSubOptions(data: Buffer): OptionMap {
    const map: OptionMap = new Map();
    for (let i = 0; i < data.length;) {
      const code = data[i];
      if (this.padEnd && code === 0) { i++; continue; }
      if (this.padEnd && code === 255) break;
      if (i + 1 >= data.length) malformed(`${this.label} ${code} at octet ${i}: length octet missing`);
      const len = data[i + 1];
      if (i + 2 + len > data.length) malformed(`${this.label} ${code} at octet ${i}: length ${len} overruns the option by ${i + 2 + len - data.length}`);
      if (map.has(code)) malformed(`${this.describe(code)} appears twice`);
      map.set(code, this.decodeValue(code, data.subarray(i + 2, i + 2 + len)));
      i += 2 + len;
    }
    return map;
  }
  encodeSubOptions(map: OptionMap): Buffer {
    if (!(map instanceof Map)) unencodable(`${show(map)} is not a Map of ${this.label}s`);
    const parts: Buffer[] = [];
    for (const [code, value] of map) {
      const data = this.encodeValue(code, value);
      if (data.length > 255) unencodable(`${this.describe(code)} is ${data.length} octets; sub-options hold at most 255`);
      parts.push(Buffer.from([code, data.length]), data);
    }
    if (this.padEnd && parts.length) parts.push(Buffer.from([255]));
    return Buffer.concat(parts);
  }
}

// ---------------------------------------------------------------------------------------------
// Option 82, relay agent information (RFC 3046). A server echoes it unchanged in its replies
// (RFC 3046 §2.2): the sub-options are kept as a map in wire order and re-encode byte for byte;
// the getters read the common ones.

export const RELAY_AGENT_SUBOPTIONS = new OptionSpace('relay agent sub-option', {
  'circuit-id': def(1, bytes),
  'remote-id': def(2, bytes),
  'docsis-device-class': def(4, u32), // RFC 3256
  'link-selection': def(5, ip), // RFC 3527: the client's link, when giaddr is only the way back
  'subscriber-id': def(6, string), // RFC 3993
  'radius-attributes': def(7, bytes), // RFC 4014
  authentication: def(8, bytes), // RFC 4030
  'vendor-specific': def(9, bytes), // RFC 4243
  'relay-agent-flags': def(10, u8), // RFC 5010
  'server-identifier-override': def(11, ip), // RFC 5107
  'relay-id': def(12, bytes), // RFC 6925
  'virtual-subnet-selection': def(151, bytes), // RFC 6607
  'virtual-subnet-selection-control': def(152, bytes), // RFC 6607
}, false);
type RelayDefs = typeof RELAY_AGENT_SUBOPTIONS.defs;
export type RelaySubOptionName = keyof RelayDefs & string;

export class RelayAgentInformation {
  /** Sub-option code → value (Buffer for codes not in RELAY_AGENT_SUBOPTIONS), in wire order. */
  constructor(readonly subOptions: OptionMap = new Map()) {}
  get<N extends RelaySubOptionName>(name: N): ValueOf<RelayDefs[N]> | undefined { return RELAY_AGENT_SUBOPTIONS.get(this.subOptions, name); }
  set<N extends RelaySubOptionName>(name: N, value: ValueOf<RelayDefs[N]>): this { RELAY_AGENT_SUBOPTIONS.set(this.subOptions, name, value); return this; }
  get circuitId(): Buffer | undefined { return this.get('circuit-id'); }
  get remoteId(): Buffer | undefined { return this.get('remote-id'); }
  get linkSelection(): string | undefined { return this.get('link-selection'); }
  get serverIdentifierOverride(): string | undefined { return this.get('server-identifier-override'); }
  get subscriberId(): string | undefined { return this.get('subscriber-id'); }
}

export const relayAgentInformation: Codec<RelayAgentInformation> = {
  kind: 'relay agent information',
  encode(v) {
    const x: unknown = v; // a plain Map of sub-options is accepted too
    if (x instanceof Map) return RELAY_AGENT_SUBOPTIONS.encodeSubOptions(x);
    if (!(x instanceof RelayAgentInformation)) unencodable(`${show(x)} is not a RelayAgentInformation`);
    return RELAY_AGENT_SUBOPTIONS.encodeSubOptions(v.subOptions);
  },
  decode: (data) => new RelayAgentInformation(RELAY_AGENT_SUBOPTIONS.decodeSubOptions(data)),
  encodingLength(v) { return this.encode(v).length; },
};

// ---------------------------------------------------------------------------------------------
// Option 43 for PXE clients (PXE 2.1 specification §2.4, "PXE vendor options"): sub-options in
// DHCP framing, ended by 255. Fulcrum mostly sends {discoveryControl: 8}: boot the file named in
// the offer, no boot-server discovery (LAB-NOTES: saves iPXE 2-3 s).

export interface PxeBootServer { type: number; addresses: string[] }
export interface PxeMenuItem { type: number; description: string }
export interface PxeMenuPrompt { timeout: number; prompt: string }
export interface PxeBootItem { type: number; layer: number }

const bootServers: Codec<PxeBootServer[]> = {
  kind: 'list of {type, addresses}',
  encode: (v) => Buffer.concat(v.map((s) => {
    if (!Array.isArray(s?.addresses) || s.addresses.length > 255) unencodable('a boot server entry has 0..255 addresses');
    return Buffer.concat([u16.encode(s.type), Buffer.from([s.addresses.length]), ipsOrNone.encode(s.addresses)]);
  })),
  decode(data) {
    const out: PxeBootServer[] = [];
    for (let i = 0; i < data.length;) {
      if (i + 3 > data.length) malformed(`boot server entry at octet ${i} is truncated`);
      const count = data[i + 2];
      const end = i + 3 + 4 * count;
      if (end > data.length) malformed(`boot server entry at octet ${i} lists ${count} addresses past the end`);
      out.push({ type: data.readUInt16BE(i), addresses: ipsOrNone.decode(data.subarray(i + 3, end)) });
      i = end;
    }
    return out;
  },
  encodingLength(v) { return this.encode(v).length; },
};
const bootMenu: Codec<PxeMenuItem[]> = {
  kind: 'list of {type, description}',
  encode: (v) => Buffer.concat(v.map((m) => {
    const d = string.encode(m?.description);
    if (d.length > 255) unencodable('a boot menu description is at most 255 octets');
    return Buffer.concat([u16.encode(m.type), Buffer.from([d.length]), d]);
  })),
  decode(data) {
    const out: PxeMenuItem[] = [];
    for (let i = 0; i < data.length;) {
      if (i + 3 > data.length || i + 3 + data[i + 2] > data.length) malformed(`boot menu entry at octet ${i} is truncated`);
      out.push({ type: data.readUInt16BE(i), description: data.toString('latin1', i + 3, i + 3 + data[i + 2]) });
      i += 3 + data[i + 2];
    }
    return out;
  },
  encodingLength(v) { return this.encode(v).length; },
};
const menuPrompt: Codec<PxeMenuPrompt> = {
  kind: '{timeout, prompt}',
  encode: (v) => Buffer.concat([u8.encode(v?.timeout), string.encode(v?.prompt)]),
  decode(data) {
    if (data.length < 1) malformed('length 0, expected at least 1');
    return { timeout: data[0], prompt: data.toString('latin1', 1) };
  },
  encodingLength: (v) => 1 + v.prompt.length,
};
const bootItem: Codec<PxeBootItem> = {
  kind: '{type, layer}',
  encode: (v) => Buffer.concat([u16.encode(v?.type), u16.encode(v?.layer)]),
  decode(data) { needLength(data, 4); return { type: data.readUInt16BE(0), layer: data.readUInt16BE(2) }; },
  encodingLength: () => 4,
};

export const PXE_SUBOPTIONS = new OptionSpace('PXE sub-option', {
  mtftpAddress: def(1, ip),
  mtftpClientPort: def(2, u16),
  mtftpServerPort: def(3, u16),
  mtftpTimeout: def(4, u8),
  mtftpDelay: def(5, u8),
  /** Bits: 1 no broadcast discovery, 2 no multicast discovery, 4 only listed boot servers,
   *  8 boot the offered file without prompting or discovery. */
  discoveryControl: def(6, u8),
  multicastDiscoveryAddress: def(7, ip),
  bootServers: def(8, bootServers),
  bootMenu: def(9, bootMenu),
  menuPrompt: def(10, menuPrompt),
  bootItem: def(71, bootItem),
}, true);

type PxeDefs = typeof PXE_SUBOPTIONS.defs;
export type PxeVendorOptions = { [K in keyof PxeDefs]?: ValueOf<PxeDefs[K]> } & {
  /** Sub-options not named above, raw. */
  other?: Map<number, Buffer>;
};
export const PxeDiscoveryControl = { NO_BROADCAST: 1, NO_MULTICAST: 2, ONLY_LISTED_SERVERS: 4, USE_BOOTFILE: 8 } as const;

/** Option 43 data for a PXE client, in sub-option code order, ended by 255. */
export function encodePxeVendorOptions(o: PxeVendorOptions): Buffer {
  const map: OptionMap = new Map();
  for (const [name, d] of Object.entries(PXE_SUBOPTIONS.defs).sort((a, b) => a[1].code - b[1].code)) {
    const v = (o as Record<string, unknown>)[name];
    if (v !== undefined) map.set(d.code, v);
  }
  for (const [code, v] of o.other ?? []) map.set(code, v);
  return PXE_SUBOPTIONS.encodeSubOptions(map);
}
export function decodePxeVendorOptions(data: Buffer): PxeVendorOptions {
  const out: Record<string, unknown> = {};
  const other = new Map<number, Buffer>();
  for (const [code, v] of PXE_SUBOPTIONS.decodeSubOptions(data)) {
    const name = PXE_SUBOPTIONS.name(code);
    if (name) out[name] = v; else other.set(code, v as Buffer);
  }
  if (other.size) out.other = other;
  return out as PxeVendorOptions;
}

// ---------------------------------------------------------------------------------------------
// The DHCP options (RFC 2132 unless noted). Codes 0 (pad), 255 (end) and 52 (overload) belong to
// the framer in packet.ts; 52 is listed so it has a name.

export const DHCP_OPTIONS = new OptionSpace('option', {
  'subnet-mask': def(1, ip),
  'time-offset': def(2, i32),
  routers: def(3, ips),
  'time-servers': def(4, ips),
  'ien116-name-servers': def(5, ips),
  'dns-servers': def(6, ips),
  'log-servers': def(7, ips),
  'cookie-servers': def(8, ips),
  'lpr-servers': def(9, ips),
  'impress-servers': def(10, ips),
  'resource-location-servers': def(11, ips),
  hostname: def(12, text),
  'boot-size': def(13, u16),
  'merit-dump': def(14, string),
  'domain-name': def(15, string),
  'swap-server': def(16, ip),
  'root-path': def(17, string),
  'extensions-path': def(18, string),
  'ip-forwarding': def(19, bool),
  'non-local-source-routing': def(20, bool),
  'policy-filter': def(21, ipPairs('address', 'mask')),
  'max-datagram-reassembly': def(22, u16),
  'default-ip-ttl': def(23, u8),
  'path-mtu-aging-timeout': def(24, u32),
  'path-mtu-plateau-table': def(25, u16s),
  'interface-mtu': def(26, u16),
  'all-subnets-local': def(27, bool),
  'broadcast-address': def(28, ip),
  'perform-mask-discovery': def(29, bool),
  'mask-supplier': def(30, bool),
  'router-discovery': def(31, bool),
  'router-solicitation-address': def(32, ip),
  'static-routes': def(33, ipPairs('destination', 'router')),
  'trailer-encapsulation': def(34, bool),
  'arp-cache-timeout': def(35, u32),
  'ieee802-3-encapsulation': def(36, bool),
  'default-tcp-ttl': def(37, u8),
  'tcp-keepalive-interval': def(38, u32),
  'tcp-keepalive-garbage': def(39, bool),
  'nis-domain': def(40, string),
  'nis-servers': def(41, ips),
  'ntp-servers': def(42, ips),
  'vendor-specific': def(43, bytes), // PXE clients: encodePxeVendorOptions / decodePxeVendorOptions
  'netbios-name-servers': def(44, ips),
  'netbios-dd-servers': def(45, ips),
  'netbios-node-type': def(46, u8),
  'netbios-scope': def(47, string),
  'font-servers': def(48, ips),
  'x-display-managers': def(49, ips),
  'requested-ip': def(50, ip),
  'lease-time': def(51, u32),
  overload: def(52, u8),
  'message-type': def(53, messageType),
  'server-identifier': def(54, ip),
  'parameter-request-list': def(55, u8s),
  message: def(56, text),
  'max-message-size': def(57, u16),
  'renewal-time': def(58, u32), // T1
  'rebinding-time': def(59, u32), // T2
  'vendor-class': def(60, string),
  'client-identifier': def(61, clientIdentifier),
  'nisplus-domain': def(64, string),
  'nisplus-servers': def(65, ips),
  'tftp-server-name': def(66, string),
  'bootfile-name': def(67, string),
  'mobile-ip-home-agents': def(68, ipsOrNone),
  'smtp-servers': def(69, ips),
  'pop3-servers': def(70, ips),
  'nntp-servers': def(71, ips),
  'www-servers': def(72, ips),
  'finger-servers': def(73, ips),
  'irc-servers': def(74, ips),
  'streettalk-servers': def(75, ips),
  'streettalk-directory-assistance-servers': def(76, ips),
  'user-class': def(77, userClass), // RFC 3004
  'rapid-commit': def(80, flag), // RFC 4039
  'client-fqdn': def(81, clientFqdn), // RFC 4702
  'relay-agent-information': def(82, relayAgentInformation), // RFC 3046
  authentication: def(90, bytes), // RFC 3118
  'client-last-transaction-time': def(91, u32), // RFC 4388
  'associated-ips': def(92, ips), // RFC 4388
  'client-arch': def(93, clientArch), // RFC 4578
  'client-ndi': def(94, clientNdi), // RFC 4578
  'uuid-guid': def(97, uuidGuid), // RFC 4578
  'posix-timezone': def(100, string), // RFC 4833
  'tzdb-timezone': def(101, string), // RFC 4833
  'ipv6-only-preferred': def(108, u32), // RFC 8925
  'captive-portal': def(114, string), // RFC 8910
  'auto-config': def(116, u8), // RFC 2563
  'subnet-selection': def(118, ip), // RFC 3011
  'domain-search': def(119, domainSearch), // RFC 3397
  'classless-static-routes': def(121, classlessRoutes), // RFC 3442
  'vi-vendor-class': def(124, bytes), // RFC 3925
  'vi-vendor-specific': def(125, bytes), // RFC 3925
  'tftp-server-addresses': def(150, ips), // RFC 5859
  'ipxe-encapsulated': def(175, bytes), // iPXE's own options; its presence says "this is iPXE"
  'pxelinux-config-file': def(209, string), // RFC 5071
  'pxelinux-path-prefix': def(210, string), // RFC 5071
  'pxelinux-reboot-time': def(211, u32), // RFC 5071
  'ms-classless-static-routes': def(249, classlessRoutes),
  'wpad-url': def(252, string),
}, true);

type DhcpDefs = typeof DHCP_OPTIONS.defs;
export type OptionName = keyof DhcpDefs & string;
/** The value type of a named option, e.g. OptionValue<'routers'> = string[]. */
export type OptionValue<N extends OptionName> = ValueOf<DhcpDefs[N]>;

export const optionCode = (name: OptionName): number => DHCP_OPTIONS.code(name);
export const optionName = (code: number): string | undefined => DHCP_OPTIONS.name(code);
