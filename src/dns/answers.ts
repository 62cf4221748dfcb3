// The authoritative answer logic, as a table: zones and records in, one prepared reply body per
// (name, type) out. A query costs a map lookup and three copies (header, the query's own question,
// the body); everything else (CNAME chains, NXDOMAIN vs NODATA, SOA in authority, additional
// addresses) is decided once, when the records change (the "DNS logic nearly free").
import { AA, CLASS, QR, RCODE, RD, TC, TYPE, Writer, writeRecord, type QueryView, type Rdata, type Soa, type Srv } from './codec.js';

export interface ZoneInfo {
  /** Canonical origin, e.g. "cluster.example" or "0.10.in-addr.arpa". */
  name: string;
  soa: Soa;
  /** TTL of the SOA and NS records. */
  ttl: number;
}

export interface Rr { name: string; type: number; ttl: number; data: Rdata }

export interface Prepared {
  /** AA and the rcode. */
  flags: number;
  an: number;
  ns: number;
  ar: number;
  /** Answer, authority and additional sections, encoded after a question at offset 12. */
  body: Buffer;
  /** A pool (an RRset of several records): the same reply with the records rotated, served in turn. */
  rotations?: Prepared[];
  turn?: number;
}

const MAX_ROTATIONS = 8;

/** Round robin over a pool's rotations (a plain reply is returned as is). */
function pick(p: Prepared): Prepared {
  const r = p.rotations;
  if (!r) return p;
  p.turn = ((p.turn ?? 0) + 1) % r.length;
  return r[p.turn];
}

const MAX_LAZY = 50_000;
const MAX_CNAME_CHAIN = 8;

export class AnswerTable {
  private zones = new Map<string, ZoneInfo>();
  private byName = new Map<string, Map<number, Rr[]>>();
  /** Every name that exists in a zone, including empty non-terminals (RFC 8020: NODATA, not NXDOMAIN). */
  private exists = new Set<string>();
  private eager = new Map<string, Prepared>();
  /** qtype -> wire-format name (latin1, lower case) -> prepared answer: the server's fast path. */
  private wire = new Map<number, Map<string, Prepared>>();
  private lazy = new Map<string, Prepared>();
  /** Records outside every served zone (dropped; reported to the operator). */
  readonly outside: Rr[] = [];
  readonly recordCount: number;

  constructor(zones: ZoneInfo[], records: Rr[]) {
    for (const z of zones) this.zones.set(z.name, z);
    for (const z of zones) {
      this.add({ name: z.name, type: TYPE.SOA, ttl: z.ttl, data: z.soa });
    }
    let n = 0;
    for (const rr of records) {
      if (this.zoneOf(rr.name) === undefined) { this.outside.push(rr); continue; }
      if (rr.type === TYPE.SOA) continue;
      this.add(rr);
      n++;
    }
    this.recordCount = n;
    // Eager answers for every RRset that exists; the rest (NODATA, NXDOMAIN) on first use.
    for (const [name, types] of this.byName) {
      // Names with escapes or non-ASCII bytes take the slow path only (the fast key lower-cases latin1).
      const wireKey = /[\\\x80-\uffff]/.test(name) ? undefined : wireName(name);
      for (const type of types.keys()) {
        const p = this.prepare(name, type);
        this.eager.set(`${type}:${name}`, p);
        if (wireKey === undefined) continue;
        let m = this.wire.get(type);
        if (!m) { m = new Map(); this.wire.set(type, m); }
        m.set(wireKey, p);
      }
    }
  }

  /** The prepared answer for a question given as its wire-format name (latin1, lower-cased) and type. */
  lookupWire(name: string, qtype: number): Prepared | undefined { const p = this.wire.get(qtype)?.get(name); return p && pick(p); }

  private add(rr: Rr): void {
    let types = this.byName.get(rr.name);
    if (!types) { types = new Map(); this.byName.set(rr.name, types); }
    const set = types.get(rr.type) ?? [];
    // One RRset has one TTL (RFC 2181 §5.2): the lowest wins. Duplicates are one record.
    if (set.some((x) => JSON.stringify(x.data) === JSON.stringify(rr.data))) return;
    set.push(rr);
    const ttl = Math.min(...set.map((x) => x.ttl));
    for (const x of set) x.ttl = ttl;
    types.set(rr.type, set);
    const zone = this.zoneOf(rr.name)!;
    for (let name = rr.name; ; name = name.slice(name.indexOf('.') + 1)) {
      this.exists.add(name);
      if (name === zone || !name.includes('.')) break;
    }
  }

  /** The served zone a canonical name falls in (the deepest), or undefined. */
  zoneOf(name: string): string | undefined {
    for (let n = name; ; n = n.slice(n.indexOf('.') + 1)) {
      if (this.zones.has(n)) return n;
      if (!n.includes('.')) return this.zones.has('') ? '' : undefined;
    }
  }

  zoneNames(): string[] { return [...this.zones.keys()]; }
  rrset(name: string, type: number): Rr[] { return this.byName.get(name)?.get(type) ?? []; }
  /** All records, for pushing and listing: [name, type] order. */
  *all(): Iterable<Rr> { for (const types of this.byName.values()) for (const set of types.values()) yield* set; }

  /** The prepared reply for an IN-class question, or undefined when no served zone holds the name. */
  lookup(qname: string, qtype: number): Prepared | undefined {
    const key = `${qtype}:${qname}`;
    const hit = this.eager.get(key) ?? this.lazy.get(key);
    if (hit) return pick(hit);
    if (this.zoneOf(qname) === undefined) return undefined;
    if (this.lazy.size >= MAX_LAZY) this.lazy.clear(); // bounded: random-name floods cannot grow memory
    const p = this.prepare(qname, qtype);
    this.lazy.set(key, p);
    return pick(p);
  }

  /** The reply, and for a pool its rotations (at most 8: clients see every record first in turn for pools up to 8). */
  private prepare(qname: string, qtype: number): Prepared {
    const first = this.build(qname, qtype, 0);
    if (first.poolSize < 2) return first.prepared;
    const rotations = [first.prepared];
    for (let r = 1; r < Math.min(first.poolSize, MAX_ROTATIONS); r++) rotations.push(this.build(qname, qtype, r).prepared);
    return { ...first.prepared, rotations, turn: rotations.length - 1 };
  }

  private build(qname: string, qtype: number, rotate: number): { prepared: Prepared; poolSize: number } {
    const w = new Writer(512);
    w.len = 12;
    w.name(qname); w.u16(qtype); w.u16(CLASS.IN);
    const start = w.len;
    const answers: Rr[] = [];
    const authority: Rr[] = [];
    let rcode: number = RCODE.NOERROR;
    let name = qname;
    let poolSize = 0;
    for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
      const types = this.byName.get(name);
      const zone = this.zoneOf(name);
      if (zone === undefined) break; // a CNAME out of our zones: the resolver follows it
      if (!types) {
        if (!this.exists.has(name)) rcode = RCODE.NXDOMAIN;
        authority.push(this.soaFor(zone));
        break;
      }
      if (qtype === TYPE.ANY) { for (const set of types.values()) answers.push(...set); break; }
      const want = types.get(qtype);
      if (want) {
        poolSize = want.length;
        const k = rotate % want.length;
        answers.push(...want.slice(k), ...want.slice(0, k));
        break;
      }
      const cname = types.get(TYPE.CNAME);
      if (cname && qtype !== TYPE.CNAME) { answers.push(...cname); name = cname[0].data as string; continue; }
      authority.push(this.soaFor(zone)); // NODATA
      break;
    }
    const additional: Rr[] = [];
    for (const rr of answers) {
      const target = rr.type === TYPE.SRV ? (rr.data as Srv).target : rr.type === TYPE.NS ? rr.data as string : undefined;
      if (target === undefined) continue;
      for (const t of [TYPE.A, TYPE.AAAA]) for (const a of this.rrset(target, t)) if (!additional.includes(a)) additional.push(a);
    }
    for (const rr of [...answers, ...authority, ...additional]) writeRecord(w, { ...rr, class: CLASS.IN });
    return { prepared: { flags: AA | rcode, an: answers.length, ns: authority.length, ar: additional.length, body: Buffer.from(w.buf.subarray(start, w.len)) }, poolSize };
  }

  /** SOA for a negative answer: its TTL is min(SOA TTL, SOA minimum) (RFC 2308 §3). */
  private soaFor(zone: string): Rr {
    const z = this.zones.get(zone)!;
    return { name: z.name, type: TYPE.SOA, ttl: Math.min(z.ttl, z.soa.minimum), data: z.soa };
  }
}

/** A canonical name in wire format (length-prefixed labels, final 0) as a latin1 string. */
function wireName(name: string): string {
  let out = '';
  for (const l of name ? name.split('.') : []) out += String.fromCharCode(l.length) + l;
  return out + '\0';
}

/** Our advertised EDNS UDP payload size (RFC 9715 / DNS flag day 2020: 1232 avoids fragmentation). */
export const EDNS_SIZE = 1232;

/**
 * The reply to query `q` (bytes `query`) from a prepared body: the query's header id and RD bit,
 * its question echoed as sent (0x20 case kept), and an OPT record when the query had one. Over UDP
 * a reply longer than 512 (or the client's EDNS size, up to ours) is cut to the question with TC set.
 */
export function assemble(query: Buffer, q: QueryView, p: { flags: number; an: number; ns: number; ar: number; body: Buffer }, udp: boolean): Buffer {
  const qlen = q.qEnd - 12;
  const opt = q.ednsSize ? 11 : 0;
  const limit = !udp ? 65535 : q.ednsSize ? Math.min(q.ednsSize, EDNS_SIZE) : 512;
  let truncated = 12 + qlen + p.body.length + opt > limit;
  const out = Buffer.allocUnsafe(12 + qlen + (truncated ? 0 : p.body.length) + opt);
  // Byte stores and loops, not writeUInt16BE/copy: for replies this small the native calls cost more than the work.
  const flags = QR | (q.flags & (0x7800 | RD)) | p.flags | (truncated ? TC : 0);
  const an = truncated ? 0 : p.an, ns = truncated ? 0 : p.ns, ar = (truncated ? 0 : p.ar) + (opt ? 1 : 0);
  out[0] = q.id >> 8; out[1] = q.id & 0xff; out[2] = flags >> 8; out[3] = flags & 0xff; out[4] = 0; out[5] = 1;
  out[6] = an >> 8; out[7] = an & 0xff; out[8] = ns >> 8; out[9] = ns & 0xff; out[10] = ar >> 8; out[11] = ar & 0xff;
  for (let i = 12; i < q.qEnd; i++) out[i] = query[i];
  let at = 12 + qlen;
  if (!truncated) {
    const body = p.body;
    if (body.length > 256) body.copy(out, at); else for (let i = 0; i < body.length; i++) out[at + i] = body[i];
    at += body.length;
  }
  if (opt) {
    out[at] = 0; out[at + 1] = 0; out[at + 2] = TYPE.OPT; out[at + 3] = EDNS_SIZE >> 8; out[at + 4] = EDNS_SIZE & 0xff;
    for (let i = at + 5; i < at + 11; i++) out[i] = 0;
  }
  return out;
}

/** A reply with no records and `rcode` (REFUSED, FORMERR, NOTIMP, SERVFAIL), echoing the question when known. */
export function errorReply(query: Buffer, q: QueryView | undefined, rcode: number): Buffer {
  const qEnd = q?.qEnd ?? 12;
  const out = Buffer.alloc(qEnd);
  query.copy(out, 0, 0, Math.min(qEnd, query.length));
  const flags = query.length >= 4 ? query.readUInt16BE(2) : 0;
  out.writeUInt16BE(QR | (flags & (0x7800 | RD)) | (rcode & 0xf), 2);
  out.writeUInt16BE(q ? 1 : 0, 4);
  out.writeUInt32BE(0, 6); out.writeUInt16BE(0, 10);
  return out;
}
