// The DNS wire format (RFC 1035 §4, EDNS0 RFC 6891), by hand. One codec per record type in a table
// (encode, decode, presentation text); names are compressed on encode and decoded with pointers
// that must point strictly backwards, so no packet can make the decoder loop. Every malformed input
// becomes a DnsFormatError with a short reason (the server counts drops by it).

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, TSIG: 250, AXFR: 252, ANY: 255 } as const;
export const TYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, NOTIFY: 4, UPDATE: 5 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, YXDOMAIN: 6, YXRRSET: 7, NXRRSET: 8, NOTAUTH: 9, NOTZONE: 10 } as const;
export const RCODE_NAME: Record<number, string> = Object.fromEntries(Object.entries(RCODE).map(([k, v]) => [v, k]));

// Header flag bits (RFC 1035 §4.1.1).
export const QR = 0x8000, AA = 0x0400, TC = 0x0200, RD = 0x0100, RA = 0x0080;

export class DnsFormatError extends Error {
  constructor(readonly reason: string, detail: string) { super(`malformed DNS message (${reason}): ${detail}`); }
}

export interface Soa { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }
export interface Srv { priority: number; weight: number; port: number; target: string }
/** A: dotted quad; AAAA: RFC 5952 text; NS/CNAME/PTR: a name; TXT: its strings; others: raw bytes. */
export type Rdata = string | string[] | Soa | Srv | Buffer;

export interface Question { name: string; type: number; class: number }
export interface ResourceRecord { name: string; type: number; class: number; ttl: number; data: Rdata }
export interface Edns { udpSize: number; extendedRcode: number; version: number; dnssecOk: boolean; options: Buffer }

export interface Message {
  id: number;
  flags: number; // the 16 header bits, rcode in the low 4
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
  /** The OPT pseudo-record, taken out of `additionals` (RFC 6891 §6.1.1: at most one). */
  edns?: Edns;
}

export const opcodeOf = (flags: number) => (flags >> 11) & 0xf;
export const rcodeOf = (flags: number) => flags & 0xf;

// ------------------------------------------------------------------------------------------------
// Names: presentation text <-> labels. Labels keep their case; `\.` and `\DDD` escape the rest.

const MAX_NAME = 255;

/** Labels of a presentation-format name ("" or "." is the root). Throws on an invalid name. */
export function nameLabels(name: string): Buffer[] {
  if (name === '' || name === '.') return [];
  const labels: Buffer[] = [];
  let cur: number[] = [];
  let total = 1;
  const end = name.endsWith('.') && !name.endsWith('\\.') ? name.length - 1 : name.length;
  for (let i = 0; i < end; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2e) { // '.'
      if (cur.length === 0) throw new Error(`name "${name}" has an empty label`);
      labels.push(Buffer.from(cur)); total += cur.length + 1; cur = [];
    } else if (c === 0x5c) { // '\'
      const d = /^\d{3}/.exec(name.slice(i + 1, i + 4));
      if (d) { const v = Number(d[0]); if (v > 255) throw new Error(`name "${name}": escape \\${d[0]} is above 255`); cur.push(v); i += 3; } else if (i + 1 < end) { cur.push(name.charCodeAt(++i)); } else throw new Error(`name "${name}" ends in a lone backslash`);
    } else if (c > 0x7f) throw new Error(`name "${name}" has a non-ASCII character; use its IDNA (xn--) form`);
    else cur.push(c);
    if (cur.length > 63) throw new Error(`name "${name}" has a label longer than 63 bytes`);
  }
  if (cur.length === 0 && end > 0) throw new Error(`name "${name}" has an empty label`);
  if (cur.length) { labels.push(Buffer.from(cur)); total += cur.length + 1; }
  if (total > MAX_NAME) throw new Error(`name "${name}" is longer than 255 bytes on the wire`);
  return labels;
}

function labelText(b: Buffer, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c === 0x2e || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c <= 0x20 || c >= 0x7f) s += '\\' + String(c).padStart(3, '0');
    else s += String.fromCharCode(c);
  }
  return s;
}

/** Canonical form for lookups: lower case, no trailing dot ("" for the root). */
export function canonicalName(name: string): string {
  let n = name.toLowerCase();
  if (n.endsWith('.') && !n.endsWith('\\.')) n = n.slice(0, -1);
  return n;
}

/**
 * Read a (possibly compressed) name at `off`. Every pointer must point before the label that holds
 * it, so each jump strictly decreases the position: no loop is possible, and the total work is
 * bounded by the packet length.
 */
export function readName(b: Buffer, off: number): { name: string; next: number } {
  let pos = off;
  let next = -1;
  let wire = 1;
  let limit = off; // a pointer must be below the start of the label sequence it continues
  const parts: string[] = [];
  for (;;) {
    if (pos >= b.length) throw new DnsFormatError('truncated', `name at ${off} runs past the end`);
    const len = b[pos];
    if (len === 0) { if (next < 0) next = pos + 1; break; }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= b.length) throw new DnsFormatError('truncated', `pointer at ${pos} runs past the end`);
      const target = ((len & 0x3f) << 8) | b[pos + 1];
      if (next < 0) next = pos + 2;
      if (target >= limit) throw new DnsFormatError('bad-pointer', `pointer at ${pos} to ${target} does not point backwards`);
      limit = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new DnsFormatError('bad-label', `label type 0x${kind.toString(16)} at ${pos}`);
    if (pos + 1 + len > b.length) throw new DnsFormatError('truncated', `label at ${pos} runs past the end`);
    wire += len + 1;
    if (wire > MAX_NAME) throw new DnsFormatError('name-too-long', `name at ${off} is longer than 255 bytes`);
    parts.push(labelText(b, pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: parts.join('.'), next };
}

// ------------------------------------------------------------------------------------------------
// Writer with name compression (RFC 1035 §4.1.4).

export class Writer {
  buf: Buffer;
  len = 0;
  /** canonical suffix -> offset of its first occurrence (only offsets a pointer can reach). */
  private names = new Map<string, number>();
  constructor(size = 512) { this.buf = Buffer.alloc(size); }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void { this.room(1); this.buf[this.len++] = v; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16BE(v, this.len); this.len += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32BE(v >>> 0, this.len); this.len += 4; }
  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.len); this.len += b.length; }

  name(name: string, compress = true): void {
    const labels = nameLabels(name);
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).map((l) => l.toString('latin1').toLowerCase()).join('.');
      const at = compress ? this.names.get(key) : undefined;
      if (at !== undefined) { this.u16(0xc000 | at); return; }
      if (this.len < 0x3fff) this.names.set(key, this.len);
      this.u8(labels[i].length);
      this.bytes(labels[i]);
    }
    this.u8(0);
  }

  result(): Buffer { return this.buf.subarray(0, this.len); }
}

// ------------------------------------------------------------------------------------------------
// Record data: one codec per type.

interface RdataCodec {
  encode(w: Writer, d: Rdata): void;
  decode(b: Buffer, off: number, len: number): Rdata;
  /** Presentation text (zone-file style) -> data, and back. */
  parse(text: string): Rdata;
  format(d: Rdata): string;
}

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function ipv6Bytes(text: string): Buffer {
  let s = text;
  const out = Buffer.alloc(16);
  let tail4: number[] = [];
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) { if (!ipv4.test(m[2])) throw new Error(`"${text}" is not an IPv6 address`); tail4 = m[2].split('.').map(Number); s = m[1] + '0:0'; }
  const halves = s.split('::');
  if (halves.length > 2) throw new Error(`"${text}" is not an IPv6 address`);
  const group = (g: string) => { if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`"${text}" is not an IPv6 address`); return parseInt(g, 16); };
  const head = halves[0] ? halves[0].split(':').map(group) : [];
  const tail = halves.length === 2 ? (halves[1] ? halves[1].split(':').map(group) : []) : [];
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) throw new Error(`"${text}" is not an IPv6 address`);
  const groups = halves.length === 1 ? head : [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  if (tail4.length) out.set(tail4, 12);
  return out;
}

/** RFC 5952 text of 16 bytes: lower case, longest zero run (length >= 2) as "::". */
export function ipv6Text(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i; while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function ipBytes(text: string): Buffer {
  if (ipv4.test(text)) return Buffer.from(text.split('.').map(Number));
  return ipv6Bytes(text);
}

const nameCodec = (compress: boolean): RdataCodec => ({
  encode: (w, d) => w.name(d as string, compress),
  decode: (b, off, len) => { const r = readName(b, off); if (r.next !== off + len) throw new DnsFormatError('bad-rdata', 'name does not fill the record data'); return r.name; },
  parse: (t) => { nameLabels(t.trim()); return canonicalName(t.trim()); },
  format: (d) => `${d as string}.`,
});

const int = (s: string | undefined, max: number, what: string) => {
  if (s === undefined || !/^\d+$/.test(s) || Number(s) > max) throw new Error(`${what} must be a whole number 0-${max}, not "${s ?? ''}"`);
  return Number(s);
};

/** TXT presentation: one or more strings, quoted ("a b" "c") or bare words. */
function parseTxt(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  if (!out.length) throw new Error('TXT needs at least one string');
  for (const s of out) if (Buffer.byteLength(s) > 255) throw new Error('a TXT string is longer than 255 bytes; split it into several quoted strings');
  return out;
}

export const RDATA: Record<number, RdataCodec> = {
  [TYPE.A]: {
    encode: (w, d) => w.bytes(ipBytes(d as string)),
    decode: (b, off, len) => { if (len !== 4) throw new DnsFormatError('bad-rdata', `A record of ${len} bytes`); return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`; },
    parse: (t) => { if (!ipv4.test(t.trim())) throw new Error(`"${t}" is not an IPv4 address`); return t.trim(); },
    format: (d) => d as string,
  },
  [TYPE.AAAA]: {
    encode: (w, d) => w.bytes(ipv6Bytes(d as string)),
    decode: (b, off, len) => { if (len !== 16) throw new DnsFormatError('bad-rdata', `AAAA record of ${len} bytes`); return ipv6Text(b.subarray(off, off + 16)); },
    parse: (t) => ipv6Text(ipv6Bytes(t.trim())),
    format: (d) => d as string,
  },
  [TYPE.NS]: nameCodec(true),
  [TYPE.CNAME]: nameCodec(true),
  [TYPE.PTR]: nameCodec(true),
  [TYPE.SOA]: {
    encode: (w, d) => {
      const s = d as Soa;
      w.name(s.mname); w.name(s.rname);
      for (const v of [s.serial, s.refresh, s.retry, s.expire, s.minimum]) w.u32(v);
    },
    decode: (b, off, len) => {
      const m = readName(b, off);
      const r = readName(b, m.next);
      if (r.next + 20 !== off + len) throw new DnsFormatError('bad-rdata', 'SOA record data has the wrong length');
      const u = (i: number) => b.readUInt32BE(r.next + i * 4);
      return { mname: m.name, rname: r.name, serial: u(0), refresh: u(1), retry: u(2), expire: u(3), minimum: u(4) };
    },
    parse: (t) => {
      const f = t.trim().split(/\s+/);
      if (f.length !== 7) throw new Error('SOA needs "mname rname serial refresh retry expire minimum"');
      nameLabels(f[0]); nameLabels(f[1]);
      const n = f.slice(2).map((x, i) => int(x, 0xffffffff, ['serial', 'refresh', 'retry', 'expire', 'minimum'][i]));
      return { mname: canonicalName(f[0]), rname: canonicalName(f[1]), serial: n[0], refresh: n[1], retry: n[2], expire: n[3], minimum: n[4] };
    },
    format: (d) => { const s = d as Soa; return `${s.mname}. ${s.rname}. ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`; },
  },
  [TYPE.SRV]: {
    // RFC 2782: the target is not compressed.
    encode: (w, d) => { const s = d as Srv; w.u16(s.priority); w.u16(s.weight); w.u16(s.port); w.name(s.target, false); },
    decode: (b, off, len) => {
      if (len < 7) throw new DnsFormatError('bad-rdata', `SRV record of ${len} bytes`);
      const t = readName(b, off + 6);
      if (t.next !== off + len) throw new DnsFormatError('bad-rdata', 'SRV target does not fill the record data');
      return { priority: b.readUInt16BE(off), weight: b.readUInt16BE(off + 2), port: b.readUInt16BE(off + 4), target: t.name };
    },
    parse: (t) => {
      const f = t.trim().split(/\s+/);
      if (f.length !== 4) throw new Error('SRV needs "priority weight port target"');
      nameLabels(f[3]);
      return { priority: int(f[0], 65535, 'SRV priority'), weight: int(f[1], 65535, 'SRV weight'), port: int(f[2], 65535, 'SRV port'), target: canonicalName(f[3]) };
    },
    format: (d) => { const s = d as Srv; return `${s.priority} ${s.weight} ${s.port} ${s.target}.`; },
  },
  [TYPE.TXT]: {
    encode: (w, d) => { for (const s of d as string[]) { const b = Buffer.from(s); w.u8(b.length); w.bytes(b); } },
    decode: (b, off, len) => {
      const out: string[] = [];
      let p = off;
      while (p < off + len) { const l = b[p]; if (p + 1 + l > off + len) throw new DnsFormatError('bad-rdata', 'TXT string runs past its record'); out.push(b.toString('utf8', p + 1, p + 1 + l)); p += 1 + l; }
      if (!out.length) throw new DnsFormatError('bad-rdata', 'empty TXT record');
      return out;
    },
    parse: parseTxt,
    format: (d) => (d as string[]).map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`).join(' '),
  },
};

/** Presentation text of `data` for `type` ("10.0.0.1", "10 5 2379 etcd-1.example."). */
export function formatRdata(type: number, data: Rdata): string {
  const c = RDATA[type];
  return c ? c.format(data) : `\\# ${(data as Buffer).length} ${(data as Buffer).toString('hex')}`;
}

/** Parse presentation text for a served type; throws an operator-readable error. */
export function parseRdata(type: number, text: string): Rdata {
  const c = RDATA[type];
  if (!c || type === TYPE.SOA) throw new Error(`record type ${TYPE_NAME[type] ?? type} is not one Fulcrum serves (A, AAAA, NS, CNAME, PTR, SRV, TXT)`);
  return c.parse(text);
}

// ------------------------------------------------------------------------------------------------
// Messages.

export function writeRecord(w: Writer, rr: ResourceRecord): void {
  w.name(rr.name);
  w.u16(rr.type); w.u16(rr.class); w.u32(rr.ttl);
  const lenAt = w.len;
  w.u16(0);
  const c = RDATA[rr.type];
  if (c) c.encode(w, rr.data); else w.bytes(rr.data as Buffer);
  w.buf.writeUInt16BE(w.len - lenAt - 2, lenAt);
}

/** The OPT pseudo-record (RFC 6891 §6.1.2). */
export function writeOpt(w: Writer, e: Edns): void {
  w.u8(0); w.u16(TYPE.OPT); w.u16(e.udpSize);
  w.u8(e.extendedRcode); w.u8(e.version); w.u16(e.dnssecOk ? 0x8000 : 0);
  w.u16(e.options.length); w.bytes(e.options);
}

export function encode(m: Message): Buffer {
  const w = new Writer();
  w.u16(m.id); w.u16(m.flags);
  w.u16(m.questions.length); w.u16(m.answers.length); w.u16(m.authorities.length); w.u16(m.additionals.length + (m.edns ? 1 : 0));
  for (const q of m.questions) { w.name(q.name); w.u16(q.type); w.u16(q.class); }
  for (const rr of [...m.answers, ...m.authorities, ...m.additionals]) writeRecord(w, rr);
  if (m.edns) writeOpt(w, m.edns);
  return Buffer.from(w.result());
}

function readRecord(b: Buffer, off: number): { rr: ResourceRecord; next: number } {
  const n = readName(b, off);
  let p = n.next;
  if (p + 10 > b.length) throw new DnsFormatError('truncated', `record at ${off} runs past the end`);
  const type = b.readUInt16BE(p), cls = b.readUInt16BE(p + 2), ttl = b.readUInt32BE(p + 4), len = b.readUInt16BE(p + 8);
  p += 10;
  if (p + len > b.length) throw new DnsFormatError('truncated', `record data at ${p} runs past the end`);
  const c = RDATA[type];
  // RFC 2136 deletions carry empty record data (class ANY or NONE with rdlength 0).
  const data = c && len > 0 ? c.decode(b, p, len) : Buffer.from(b.subarray(p, p + len));
  return { rr: { name: n.name, type, class: cls, ttl, data }, next: p + len };
}

export function decode(b: Buffer): Message {
  if (b.length < 12) throw new DnsFormatError('short-header', `${b.length} bytes is shorter than a DNS header`);
  const counts = [b.readUInt16BE(4), b.readUInt16BE(6), b.readUInt16BE(8), b.readUInt16BE(10)];
  // Each question needs 5 bytes and each record 11: reject impossible counts before looping.
  if (counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11 > b.length - 12) throw new DnsFormatError('bad-count', 'section counts exceed the message length');
  const m: Message = { id: b.readUInt16BE(0), flags: b.readUInt16BE(2), questions: [], answers: [], authorities: [], additionals: [] };
  let p = 12;
  for (let i = 0; i < counts[0]; i++) {
    const n = readName(b, p);
    if (n.next + 4 > b.length) throw new DnsFormatError('truncated', 'question runs past the end');
    m.questions.push({ name: n.name, type: b.readUInt16BE(n.next), class: b.readUInt16BE(n.next + 2) });
    p = n.next + 4;
  }
  const sections = [m.answers, m.authorities, m.additionals];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]; i++) {
      const { rr, next } = readRecord(b, p);
      p = next;
      if (rr.type === TYPE.OPT) {
        if (s !== 2 || rr.name !== '' || m.edns) throw new DnsFormatError('bad-opt', 'OPT record misplaced, named or repeated');
        m.edns = { udpSize: rr.class, extendedRcode: rr.ttl >>> 24, version: (rr.ttl >>> 16) & 0xff, dnssecOk: (rr.ttl & 0x8000) !== 0, options: rr.data as Buffer };
        continue;
      }
      sections[s].push(rr);
    }
  }
  return m;
}

// ------------------------------------------------------------------------------------------------
// The server's hot path: just the question of a query, read without building objects.

export interface QueryView {
  id: number;
  flags: number;
  /** Canonical (lower case) question name. */
  qname: string;
  qtype: number;
  qclass: number;
  /** End of the question section: bytes [12, qEnd) are echoed in the reply. */
  qEnd: number;
  /** EDNS UDP payload size, or 0 without EDNS; version for BADVERS. */
  ednsSize: number;
  ednsVersion: number;
}

/** A standard query with one question, or a DnsFormatError (other opcodes are the caller's). */
export function readQuery(b: Buffer): QueryView {
  if (b.length < 12) throw new DnsFormatError('short-header', `${b.length} bytes is shorter than a DNS header`);
  const flags = b.readUInt16BE(2);
  if (flags & QR) throw new DnsFormatError('not-a-query', 'QR bit set');
  if (b.readUInt16BE(4) !== 1) throw new DnsFormatError('bad-count', `QDCOUNT ${b.readUInt16BE(4)} (a query has one question)`);
  let p = 12;
  let qname = '';
  let wire = 1;
  for (;;) {
    if (p >= b.length) throw new DnsFormatError('truncated', 'question name runs past the end');
    const len = b[p];
    if (len === 0) { p++; break; }
    if (len > 63) throw new DnsFormatError(len & 0xc0 ? 'bad-pointer' : 'bad-label', 'compressed or extended label in a question');
    if (p + 1 + len > b.length) throw new DnsFormatError('truncated', 'question label runs past the end');
    wire += len + 1;
    if (wire > MAX_NAME) throw new DnsFormatError('name-too-long', 'question name longer than 255 bytes');
    let fast = true;
    for (let i = p + 1; i <= p + len; i++) { const c = b[i]; if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) { fast = false; break; } }
    const label = fast ? b.toString('latin1', p + 1, p + 1 + len).toLowerCase() : labelText(b, p + 1, p + 1 + len).toLowerCase();
    qname = qname ? `${qname}.${label}` : label;
    p += 1 + len;
  }
  if (p + 4 > b.length) throw new DnsFormatError('truncated', 'question type/class missing');
  const qtype = b.readUInt16BE(p), qclass = b.readUInt16BE(p + 2);
  const qEnd = p + 4;
  let ednsSize = 0, ednsVersion = 0;
  const an = b.readUInt16BE(6), ns = b.readUInt16BE(8), ar = b.readUInt16BE(10);
  if (ar > 0 && an === 0 && ns === 0) {
    // Look for the OPT record among the additionals (usually the only one: 11 bytes, root name).
    let q = qEnd;
    for (let i = 0; i < ar && i < 8; i++) {
      const { rr, next } = readRecord(b, q);
      if (rr.type === TYPE.OPT) {
        if (ednsSize) throw new DnsFormatError('bad-opt', 'two OPT records');
        ednsSize = Math.max(512, rr.class); ednsVersion = (rr.ttl >>> 16) & 0xff;
      }
      q = next;
    }
  }
  return { id: b.readUInt16BE(0), flags, qname, qtype, qclass, qEnd, ednsSize, ednsVersion };
}
