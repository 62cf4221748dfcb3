// The authoritative answer logic, as a table: zones and records in, one prepared reply body per
// (name, type) out. A query costs a map lookup and three copies (header, the query's own question,
// the body); everything else (CNAME chains, NXDOMAIN vs NODATA, SOA in authority, additional
// addresses) is decided once, when the records change (the "DNS logic nearly free").
import { AA, CLASS, RCODE, TYPE, Writer, writeRecord, type Rdata, type Soa, type Srv } from './codec.js';
import { pick, type Prepared } from './reply.js';
import { FastAnswers, type FastEntry } from './fast-answers.js';

export interface ZoneInfo {
  /** Canonical origin, e.g. "cluster.example" or "0.10.in-addr.arpa". */
  name: string;
  soa: Soa;
  /** TTL of the SOA and NS records. */
  ttl: number;
}

export interface Rr { name: string; type: number; ttl: number; data: Rdata }

const MAX_ROTATIONS = 8;
const MAX_LAZY = 50_000;
const MAX_CNAME_CHAIN = 8;

export class AnswerTable {
  private zones = new Map<string, ZoneInfo>();
  private byName = new Map<string, Map<number, Rr[]>>();
  /** Every name that exists in a zone, including empty non-terminals (RFC 8020: NODATA, not NXDOMAIN). */
  private exists = new Set<string>();
  private eager = new Map<string, Prepared>();
  /** Prepared answers by the question's wire bytes: the server's fast path. */
  private readonly fast: FastAnswers;
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
    const fast: FastEntry[] = [];
    for (const [name, types] of this.byName) {
      // Names with escapes, upper case or non-ASCII bytes take the slow path only (the fast path folds ASCII case).
      const wireKey = /[\\A-Z\x80-\uffff]/.test(name) ? undefined : wireName(name);
      for (const type of types.keys()) {
        const p = this.prepare(name, type);
        this.eager.set(`${type}:${name}`, p);
        if (wireKey !== undefined) fast.push({ name: wireKey, type, prepared: p });
      }
    }
    this.fast = new FastAnswers(fast);
  }

  /** The reply from an eagerly prepared answer, found by the query's wire bytes (see FastAnswers.reply), or undefined. */
  fastReply(query: Uint8Array, nameEnd: number, qtype: number, qEnd: number, ednsSize: number, udp: boolean): Buffer | undefined {
    return this.fast.reply(query, nameEnd, qtype, qEnd, ednsSize, udp);
  }

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

/** A canonical name in wire format (length-prefixed labels, final 0). */
function wireName(name: string): Buffer {
  let out = '';
  for (const l of name ? name.split('.') : []) out += String.fromCharCode(l.length) + l;
  return Buffer.from(out + '\0', 'latin1');
}
