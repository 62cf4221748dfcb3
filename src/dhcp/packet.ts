// The DHCPv4 message (RFC 2131 §2): the BOOTP header, the magic cookie and the options, as one
// symmetric codec — decode, encode, encodingLength. Pure: no I/O.
//
// Framing rules kept here (the option values are options.ts's business):
// - PAD (0) is skipped, END (255) stops a field; a missing END is tolerated.
// - An option that appears several times is one option whose data is the concatenation, in the
//   order options field, file, sname (RFC 3396); an option longer than 255 octets is split so.
// - Option 52 (RFC 2132 §9.3) moves options into the file and/or sname fields: honoured on decode;
//   used on encode only when a maximum size is given and the options do not fit without it.
import {
  DHCP_OPTIONS, DhcpDecodeError, DhcpEncodeError, readIp, writeIp,
  type OptionMap, type OptionName, type OptionValue,
} from './options.js';

export {
  DhcpDecodeError, DhcpEncodeError, MessageType, messageTypeName, encodePxeVendorOptions, decodePxeVendorOptions,
  PxeDiscoveryControl, RELAY_AGENT_SUBOPTIONS, PXE_SUBOPTIONS, DHCP_OPTIONS, ClientArch, clientArchName,
  optionCode, optionName, swapUuidEndianness,
  type OptionName, type OptionValue, type ClientIdentifier, type ClientNdi, type UuidGuid, type ClientFqdn,
  RelayAgentInformation, type ClasslessRoute, type PxeVendorOptions, type RelaySubOptionName,
} from './options.js';

/** Options by code, in wire order; see options.ts for each code's value type. */
export type DhcpOptions = OptionMap;

export interface DhcpPacket {
  /** 1 BOOTREQUEST (client → server), 2 BOOTREPLY. */
  op: 1 | 2;
  /** Hardware type (1 = Ethernet) and address length (6). */
  htype: number;
  hlen: number;
  /** Relay hops. */
  hops: number;
  /** Transaction id chosen by the client (u32). */
  xid: number;
  secs: number;
  /** Bit 0x8000 asks the server to broadcast its reply (BROADCAST_FLAG). */
  flags: number;
  ciaddr: string;
  yiaddr: string;
  /** Next server (TFTP) in replies. */
  siaddr: string;
  /** The relay agent's address; 0.0.0.0 when the client is on the server's link. */
  giaddr: string;
  /** The first `hlen` octets of chaddr (at most 16), as "aa:bb:cc:dd:ee:ff". */
  chaddr: string;
  /** Server host name and boot file name (RFC 2131 sname/file), empty when the field is unused
   *  or carried options (overload). */
  sname: string;
  file: string;
  options: DhcpOptions;
}

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const BROADCAST_FLAG = 0x8000;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed header (236) + magic cookie (4). */
export const HEADER_SIZE = 240;
/** RFC 1542 §3.4 / RFC 951: BOOTP relays and old clients expect at least 300 octets. */
export const BOOTP_MIN_SIZE = 300;
/** RFC 2131 §2: every client accepts 576-octet IP datagrams, i.e. 548 octets of DHCP message. */
export const DEFAULT_MAX_SIZE = 548;
const IP_UDP_HEADERS = 28;

const SNAME = { offset: 44, size: 64 } as const;
const FILE = { offset: 108, size: 128 } as const;
const OVERLOAD = 52;
const MESSAGE_TYPE = 53;
const RELAY_AGENT_INFORMATION = 82;
const PAD = 0;
const END = 255;

// ---------------------------------------------------------------------------------------------
// Decode

/** Reads a packet; throws DhcpDecodeError (with the reason) for anything malformed. */
export function decode(buf: Uint8Array): DhcpPacket {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_SIZE) {
    throw new DhcpDecodeError(`${b.length} octets, a DHCP message has at least ${HEADER_SIZE} (BOOTP header and magic cookie)`);
  }
  const op = b[0];
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpDecodeError(`op ${op} is neither BOOTREQUEST (1) nor BOOTREPLY (2)`);
  const cookie = b.readUInt32BE(236);
  if (cookie !== MAGIC_COOKIE) throw new DhcpDecodeError(`magic cookie 0x${cookie.toString(16).padStart(8, '0')}, expected 0x63825363`);

  const hlen = b[2];
  const chunks = new Map<number, Buffer[]>();
  readOptionField(b, HEADER_SIZE, b.length, 'options', chunks);
  const overload = overloadOf(chunks);
  chunks.delete(OVERLOAD);
  if (overload & 1) readOptionField(b, FILE.offset, FILE.offset + FILE.size, 'file', chunks);
  if (overload & 2) readOptionField(b, SNAME.offset, SNAME.offset + SNAME.size, 'sname', chunks);
  chunks.delete(OVERLOAD); // only the options field's overload option counts

  const options: DhcpOptions = new Map();
  for (const [code, parts] of chunks) options.set(code, DHCP_OPTIONS.decodeValue(code, parts.length === 1 ? parts[0] : Buffer.concat(parts)));

  return {
    op: op as 1 | 2, htype: b[1], hlen, hops: b[3],
    xid: b.readUInt32BE(4), secs: b.readUInt16BE(8), flags: b.readUInt16BE(10),
    ciaddr: readIp(b, 12), yiaddr: readIp(b, 16), siaddr: readIp(b, 20), giaddr: readIp(b, 24),
    chaddr: formatMac(b.subarray(28, 28 + Math.min(hlen, 16))),
    sname: overload & 2 ? '' : cString(b, SNAME.offset, SNAME.size),
    file: overload & 1 ? '' : cString(b, FILE.offset, FILE.size),
    options,
  };
}

/** Collects code → data pieces from one field; offsets in errors are from the packet's start. */
function readOptionField(b: Buffer, start: number, end: number, field: string, into: Map<number, Buffer[]>): void {
  for (let i = start; i < end;) {
    const code = b[i];
    if (code === PAD) { i++; continue; }
    if (code === END) return;
    const where = () => `${DHCP_OPTIONS.describe(code)} at octet ${i} (${field} field)`;
    if (i + 1 >= end) throw new DhcpDecodeError(`${where()}: length octet missing, the ${field} field ends`);
    const len = b[i + 1];
    if (i + 2 + len > end) throw new DhcpDecodeError(`${where()}: length ${len} overruns the ${field} field by ${i + 2 + len - end} octets`);
    const data = b.subarray(i + 2, i + 2 + len);
    const parts = into.get(code);
    if (parts) parts.push(data); else into.set(code, [data]);
    i += 2 + len;
  }
}

function overloadOf(chunks: Map<number, Buffer[]>): number {
  const parts = chunks.get(OVERLOAD);
  if (!parts) return 0;
  const data = Buffer.concat(parts);
  if (data.length !== 1 || data[0] < 1 || data[0] > 3) {
    throw new DhcpDecodeError(`option 52 (overload): ${data.length !== 1 ? `length ${data.length}, expected 1` : `value ${data[0]}, expected 1, 2 or 3`}`);
  }
  return data[0];
}

/** A NUL-terminated latin1 string in a fixed field (the field may be full, without a NUL). */
function cString(b: Buffer, offset: number, size: number): string {
  const nul = b.indexOf(0, offset);
  return b.toString('latin1', offset, nul === -1 || nul > offset + size ? offset + size : nul);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function formatMac(m: Buffer): string {
  let out = m.length ? HEX[m[0]] : '';
  for (let i = 1; i < m.length; i++) out += ':' + HEX[m[i]];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encode

export interface EncodeOptions {
  /** The largest message (UDP payload) the receiver accepts; see maxMessageSize(). Without it the
   *  options field grows as needed and the sname/file fields are never used for options. */
  maxSize?: number;
}

interface Layout {
  /** Option instances (code, data ≤ 255 octets) in the order they are written. */
  instances: Array<{ code: number; data: Buffer }>;
  /** How many instances go in the options field, the file field and the sname field. */
  counts: { options: number; file: number; sname: number };
  overload: 0 | 1 | 2 | 3;
  length: number;
}

/** Writes a packet: magic cookie, message type first, then the options in map order, END, and
 *  zero padding to at least 300 octets. Throws DhcpEncodeError for a value that cannot be sent. */
export function encode(p: DhcpPacket, opts: EncodeOptions = {}): Buffer {
  const layout = plan(p, opts);
  const b = Buffer.alloc(layout.length);
  writeHeader(p, b, layout.overload);
  let next = 0;
  const fill = (start: number, n: number): number => {
    let at = start;
    for (const end = next + n; next < end; next++) {
      const { code, data } = layout.instances[next];
      b[at] = code;
      b[at + 1] = data.length;
      for (let i = 0; i < data.length; i++) b[at + 2 + i] = data[i];
      at += 2 + data.length;
    }
    b[at] = END;
    return at + 1;
  };
  fill(HEADER_SIZE, layout.counts.options);
  if (layout.overload & 1) fill(FILE.offset, layout.counts.file);
  if (layout.overload & 2) fill(SNAME.offset, layout.counts.sname);
  return b;
}

/** The size encode() will produce for the same arguments. */
export function encodingLength(p: DhcpPacket, opts: EncodeOptions = {}): number {
  return plan(p, opts).length;
}

/**
 * Option data of repeated plain values (a subnet's lease time and mask, our server identifier,
 * the message type): encoded once. Only strings and numbers, which cannot change under the cache;
 * at most MEMO_PER_CODE values per code (then that code's entries start over).
 */
const memo = new Map<number, Map<string | number, Buffer>>();
const MEMO_PER_CODE = 64;
function optionData(code: number, value: unknown): Buffer {
  if (typeof value !== 'string' && typeof value !== 'number') return DHCP_OPTIONS.encodeValue(code, value);
  let m = memo.get(code);
  const hit = m?.get(value);
  if (hit) return hit;
  const data = DHCP_OPTIONS.encodeValue(code, value);
  if (!m) memo.set(code, (m = new Map()));
  else if (m.size >= MEMO_PER_CODE) m.clear();
  m.set(value, data);
  return data;
}

function plan(p: DhcpPacket, opts: EncodeOptions): Layout {
  if (!(p?.options instanceof Map)) throw new DhcpEncodeError('packet.options must be a Map of option code → value');
  // Message type first; relay agent information last (RFC 3046 §2.2); the rest in map order.
  const instances: Layout['instances'] = [];
  let all = 0;
  const add = (code: number, value: unknown) => {
    const data = optionData(code, value);
    all += 2 * Math.max(1, Math.ceil(data.length / 255)) + data.length;
    if (data.length <= 255) { instances.push({ code, data }); return; }
    for (let i = 0; i < data.length; i += 255) instances.push({ code, data: data.subarray(i, i + 255) });
  };
  const options = p.options;
  if (options.has(MESSAGE_TYPE)) add(MESSAGE_TYPE, options.get(MESSAGE_TYPE));
  for (const [code, value] of options) if (code !== MESSAGE_TYPE && code !== OVERLOAD && code !== RELAY_AGENT_INFORMATION) add(code, value);
  if (options.has(RELAY_AGENT_INFORMATION)) add(RELAY_AGENT_INFORMATION, options.get(RELAY_AGENT_INFORMATION));
  const size = (from: number, n: number) => { let t = 0; for (let i = from; i < from + n; i++) t += 2 + instances[i].data.length; return t; };
  const simple = HEADER_SIZE + all + 1;
  const max = opts.maxSize;
  if (max !== undefined && (!Number.isInteger(max) || max < BOOTP_MIN_SIZE)) {
    throw new DhcpEncodeError(`maxSize ${max} is not an integer of at least ${BOOTP_MIN_SIZE} (the BOOTP minimum)`);
  }
  if (max === undefined || simple <= max) {
    return { instances, counts: { options: instances.length, file: 0, sname: 0 }, overload: 0, length: Math.max(BOOTP_MIN_SIZE, simple) };
  }

  // Overload: fill the options field (after option 52), then file, then sname — in order, so the
  // pieces of a split option stay in the order RFC 3396 joins them.
  const fields: Array<{ name: 'options' | 'file' | 'sname'; room: number }> = [{ name: 'options', room: max - HEADER_SIZE - 3 - 1 }];
  if (!p.file) fields.push({ name: 'file', room: FILE.size - 1 });
  if (!p.sname) fields.push({ name: 'sname', room: SNAME.size - 1 });
  const counts = { options: 0, file: 0, sname: 0 };
  let f = 0;
  let used = 0;
  for (const inst of instances) {
    while (f < fields.length && used + 2 + inst.data.length > fields[f].room) { f++; used = 0; }
    if (f === fields.length) {
      const room = fields.reduce((s, x) => s + x.room, 0);
      throw new DhcpEncodeError(`the options need ${all} octets but a ${max}-octet message has room for ${room}` +
        `${fields.length < 3 ? ' (sname/file are in use, so not all of them can carry options)' : ' even using sname and file'}; send fewer options`);
    }
    counts[fields[f].name]++;
    used += 2 + inst.data.length;
  }
  const overload = ((counts.file ? 1 : 0) | (counts.sname ? 2 : 0)) as Layout['overload'];
  // Option 52 goes in the options field, right after the message type.
  instances.splice(instances[0]?.code === MESSAGE_TYPE ? 1 : 0, 0, { code: OVERLOAD, data: Buffer.from([overload]) });
  counts.options++;
  return { instances, counts, overload, length: Math.max(BOOTP_MIN_SIZE, HEADER_SIZE + size(0, counts.options) + 1) };
}

/** `v` if it is an integer in 0 .. 2^bits - 1; else a DhcpEncodeError naming the field. */
function int(field: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new DhcpEncodeError(`${field} ${JSON.stringify(v)} is not an integer in 0..${max}`);
  }
  return v;
}

function writeHeader(p: DhcpPacket, b: Buffer, overload: number): void {
  if (p.op !== BOOTREQUEST && p.op !== BOOTREPLY) throw new DhcpEncodeError(`op ${JSON.stringify(p.op)} must be 1 (BOOTREQUEST) or 2 (BOOTREPLY)`);
  b[0] = p.op;
  b[1] = int('htype', p.htype, 0xff);
  b[2] = int('hlen', p.hlen, 0xff);
  b[3] = int('hops', p.hops, 0xff);
  const xid = int('xid', p.xid, 0xffffffff), secs = int('secs', p.secs, 0xffff), flags = int('flags', p.flags, 0xffff);
  b[4] = xid >>> 24; b[5] = (xid >>> 16) & 0xff; b[6] = (xid >>> 8) & 0xff; b[7] = xid & 0xff;
  b[8] = secs >> 8; b[9] = secs & 0xff; b[10] = flags >> 8; b[11] = flags & 0xff;
  headerIp(p, 'ciaddr', b, 12); headerIp(p, 'yiaddr', b, 16); headerIp(p, 'siaddr', b, 20); headerIp(p, 'giaddr', b, 24);
  if (!writeMac(p.chaddr, b, 28)) parseMac(p.chaddr).copy(b, 28);
  if (!(overload & 2)) writeField(b, 'sname', p.sname, SNAME);
  if (!(overload & 1)) writeField(b, 'file', p.file, FILE);
  b[236] = 0x63; b[237] = 0x82; b[238] = 0x53; b[239] = 0x63; // MAGIC_COOKIE
}

function headerIp(p: DhcpPacket, field: 'ciaddr' | 'yiaddr' | 'siaddr' | 'giaddr', b: Buffer, at: number): void {
  try { writeIp(p[field], b, at); } catch (e) {
    throw e instanceof DhcpEncodeError ? new DhcpEncodeError(`${field}: ${e.reason}`) : e;
  }
}

function writeField(b: Buffer, name: string, value: string, f: { offset: number; size: number }): void {
  if (value === '') return;
  if (typeof value !== 'string' || /[^\x00-\xff]/.test(value)) throw new DhcpEncodeError(`${name} ${JSON.stringify(value)} must be a latin1 string`);
  if (value.length > f.size) throw new DhcpEncodeError(`${name} is ${value.length} octets, the field holds ${f.size}; send it as option ${name === 'file' ? '67 (bootfile-name)' : '66 (tftp-server-name)'} instead`);
  b.write(value, f.offset, 'latin1');
}

const hexValue = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/** Fast path for the usual "aa:bb:cc:dd:ee:ff": written at `offset`, true; anything else: false. */
function writeMac(mac: string, b: Buffer, offset: number): boolean {
  if (typeof mac !== 'string' || mac.length !== 17) return false;
  for (let i = 0; i < 6; i++) {
    const hi = hexValue(mac.charCodeAt(i * 3)), lo = hexValue(mac.charCodeAt(i * 3 + 1));
    if (hi < 0 || lo < 0 || (i < 5 && mac.charCodeAt(i * 3 + 2) !== 58)) return false;
    b[offset + i] = hi * 16 + lo;
  }
  return true;
}

/** "aa:bb:cc:dd:ee:ff" (or with "-", or bare hex) → octets; at most 16. */
export function parseMac(mac: string): Buffer {
  const hex = typeof mac === 'string' ? mac.replace(/[:-]/g, '') : '?';
  if (!/^([0-9a-fA-F]{2}){0,16}$/.test(hex)) throw new DhcpEncodeError(`chaddr ${JSON.stringify(mac)} is not a hardware address (hex octets separated by ":")`);
  return Buffer.from(hex, 'hex');
}

// ---------------------------------------------------------------------------------------------
// Helpers for building and reading packets

/** A packet with every field zero/empty except those given; hlen defaults to chaddr's length. */
export function createPacket(init: Partial<DhcpPacket> = {}): DhcpPacket {
  return {
    op: BOOTREQUEST, htype: 1, hlen: init.chaddr !== undefined ? parseMac(init.chaddr).length : 6, hops: 0,
    xid: 0, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: '', sname: '', file: '', ...init, options: init.options ?? new Map(),
  };
}

type Options = DhcpPacket | DhcpOptions;
const mapOf = (o: Options): DhcpOptions => (o instanceof Map ? o : o.options);

/** A named option's decoded value, e.g. getOption(p, 'vendor-class') → string | undefined. */
export function getOption<N extends OptionName>(p: Options, name: N): OptionValue<N> | undefined {
  return DHCP_OPTIONS.get(mapOf(p), name);
}
/** Sets (or replaces, keeping its place) a named option. */
export function setOption<N extends OptionName>(p: Options, name: N, value: OptionValue<N>): void {
  DHCP_OPTIONS.set(mapOf(p), name, value);
}
/** For option names that arrive as data (subnet or reservation settings): a name or a code,
 *  checked now — an unknown name or a value the option cannot carry throws DhcpEncodeError. */
export function setOptionByName(p: Options, name: string | number, value: unknown): void {
  const code = typeof name === 'number' ? name : /^\d+$/.test(name) ? Number(name) : DHCP_OPTIONS.code(name as OptionName);
  DHCP_OPTIONS.encodeValue(code, value);
  mapOf(p).set(code, value);
}
export function hasOption(p: Options, name: OptionName): boolean {
  return mapOf(p).has(DHCP_OPTIONS.code(name));
}
export function deleteOption(p: Options, name: OptionName): boolean {
  return mapOf(p).delete(DHCP_OPTIONS.code(name));
}

/** Option 53, or undefined for a plain BOOTP message. */
export function messageType(p: Options): number | undefined {
  return getOption(p, 'message-type');
}

/** The reply size a client accepts (RFC 2132 §9.10: option 57 counts IP and UDP headers; never
 *  below 576), as a UDP payload size for EncodeOptions.maxSize. */
export function maxMessageSize(request: Options): number {
  const m = getOption(request, 'max-message-size');
  return m === undefined || m < 576 ? DEFAULT_MAX_SIZE : m - IP_UDP_HEADERS;
}
