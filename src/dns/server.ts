// The DNS server's sockets: UDP and TCP (RFC 7766: 2-byte length prefix, several queries per
// connection, idle timeout) on one address and port, answering from an AnswerTable that the
// service swaps whole when records change. Names outside every served zone are REFUSED, or relayed
// to the upstream forwarder when one is configured (bounded wait, then SERVFAIL).
import dgram from 'node:dgram';
import net from 'node:net';
import crypto from 'node:crypto';
import { AnswerTable } from './answers.js';
import { assemble, errorReply, EDNS_SIZE } from './reply.js';
import { literalLookup } from '../udp.js';
import { CLASS, DnsFormatError, opcodeOf, OPCODE, QR, RCODE, RCODE_NAME, readQuery, TYPE, type QueryView } from './codec.js';

export interface DnsServerOptions {
  host: string;
  port: number;
  /** Relay names outside the served zones to this resolver ("host:port"). */
  forwarder?: { host: string; port: number };
  forwardTimeoutMs?: number;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  log?: (m: string) => void;
}

export interface DnsCounters {
  /** transport:rcode -> replies sent */
  replies: Record<string, number>;
  /** reason -> packets dropped */
  dropped: Record<string, number>;
  forwarded: Record<string, number>;
  truncated: number;
}

const MAX_PENDING = 4096;

export class DnsServer {
  table = new AnswerTable([], []);
  /** Replies by transport (0 udp, 1 tcp) * 16 + rcode: a plain array on the hot path. */
  private replyCounts = new Float64Array(32);
  readonly counters: DnsCounters;
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  private upstream?: dgram.Socket;
  private pending = new Map<number, { reply: (b: Buffer) => void; id: number; timer: NodeJS.Timeout; query: Buffer; q: QueryView }>();
  private conns = new Set<net.Socket>();
  port = 0;

  constructor(private readonly opts: DnsServerOptions) {
    const counts = this.replyCounts;
    this.counters = {
      get replies() {
        const out: Record<string, number> = {};
        counts.forEach((n, i) => { if (n) out[`${i < 16 ? 'udp' : 'tcp'}:${RCODE_NAME[i & 15] ?? i & 15}`] = n; });
        return out;
      },
      dropped: {}, forwarded: {}, truncated: 0,
    };
  }

  async start(): Promise<void> {
    const type = this.opts.host.includes(':') ? 'udp6' : 'udp4';
    // Replies go to the address a query came from, always an IP literal.
    const udp = dgram.createSocket({ type, reuseAddr: false, lookup: literalLookup });
    await new Promise<void>((resolve, reject) => { udp.once('error', reject); udp.bind(this.opts.port, this.opts.host, () => { udp.off('error', reject); resolve(); }); });
    try { udp.setRecvBufferSize(4 << 20); udp.setSendBufferSize(4 << 20); } catch { /* capped by the kernel; not fatal */ }
    udp.on('error', (e) => this.opts.log?.(`dns udp: ${e.message}`));
    udp.on('message', (msg, rinfo) => {
      // The fast path answers without a closure; the rest may answer later (forwarding).
      const fast = this.fastReply(msg, true);
      if (fast) { this.count(fast, true); udp.send(fast, rinfo.port, rinfo.address); } else this.slow(msg, true, (b) => udp.send(b, rinfo.port, rinfo.address));
    });
    this.udp = udp;
    this.port = udp.address().port;

    const tcp = net.createServer((s) => this.serveTcp(s));
    tcp.maxConnections = this.opts.maxTcpConnections ?? 256;
    await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen(this.port, this.opts.host, () => { tcp.off('error', reject); resolve(); }); });
    this.tcp = tcp;

    if (this.opts.forwarder) {
      const f = this.opts.forwarder;
      const up = dgram.createSocket(f.host.includes(':') ? 'udp6' : 'udp4');
      await new Promise<void>((resolve) => up.bind(0, resolve));
      up.on('error', (e) => this.opts.log?.(`dns forwarder socket: ${e.message}`));
      up.on('message', (msg, rinfo) => this.relay(msg, rinfo));
      this.upstream = up;
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const c of this.conns) c.destroy();
    await Promise.all([
      this.udp && new Promise<void>((r) => this.udp!.close(() => r())),
      this.tcp && new Promise<void>((r) => this.tcp!.close(() => r())),
      this.upstream && new Promise<void>((r) => this.upstream!.close(() => r())),
    ]);
  }

  private drop(reason: string): void { this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1; }

  private count(b: Buffer, udp: boolean): void {
    this.replyCounts[(udp ? 0 : 16) + (b[3] & 0xf)]++;
    if (b[2] & 0x02) this.counters.truncated++;
  }

  private send(reply: (b: Buffer) => void, b: Buffer, udp: boolean): void {
    this.count(b, udp);
    reply(b);
  }

  /** One message in, at most one reply out. Never throws: malformed input is counted and dropped. */
  handle(msg: Buffer, udp: boolean, reply: (b: Buffer) => void): void {
    const fast = this.fastReply(msg, udp);
    if (fast) this.send(reply, fast, udp); else this.slow(msg, udp, reply);
  }

  /** Everything the fast path does not answer: the full decoder, errors, lazily prepared answers, forwarding. */
  private slow(msg: Buffer, udp: boolean, reply: (b: Buffer) => void): void {
    let q: QueryView;
    try {
      q = readQuery(msg);
    } catch (err) {
      if (err instanceof DnsFormatError) {
        this.drop(err.reason);
        // A well-formed header that is a query with something else wrong: FORMERR (RFC 1035 §4.1.1).
        if (err.reason === 'bad-count' && msg.length >= 12 && !(msg[2] & 0x80)) this.send(reply, errorReply(msg, undefined, RCODE.FORMERR), udp);
      } else this.drop('internal');
      return;
    }
    const opcode = opcodeOf(q.flags);
    if (opcode !== OPCODE.QUERY) return this.send(reply, errorReply(msg, q, RCODE.NOTIMP), udp);
    if (q.ednsVersion > 0) return this.send(reply, badVersion(msg, q), udp); // RFC 6891 §6.1.3
    if (q.qclass === CLASS.IN && q.qtype !== TYPE.AXFR && q.qtype !== 251) {
      const p = this.table.lookup(q.qname, q.qtype);
      if (p) return this.send(reply, assemble(msg, q.qEnd, q.ednsSize, p, udp), udp);
    } else if (this.table.zoneOf(q.qname) !== undefined) {
      // Zone transfers and other classes for our own names: not served (push by RFC 2136 instead).
      return this.send(reply, errorReply(msg, q, q.qclass === CLASS.IN ? RCODE.REFUSED : RCODE.NOTIMP), udp);
    }
    if (this.upstream) return this.forward(msg, q, udp, reply);
    this.send(reply, errorReply(msg, q, RCODE.REFUSED), udp);
  }

  /**
   * The common case without building objects: a plain IN query, one uncompressed question, no
   * records but at most a bare EDNS version-0 OPT, for a name and type with a prepared answer,
   * looked up by the question's bytes. Returns the reply; anything else (or a miss) returns
   * undefined and goes through readQuery and the full logic.
   */
  fastReply(b: Buffer, udp: boolean): Buffer | undefined {
    const len = b.length;
    if (len < 17 || (b[2] & 0xf8) !== 0 || b[4] !== 0 || b[5] !== 1 || (b[6] | b[7] | b[8] | b[9]) !== 0) return undefined;
    let p = 12;
    for (;;) {
      const l = b[p];
      if (l === 0) break;
      if (l > 63) return undefined;
      p += l + 1;
      if (p >= len) return undefined;
    }
    const qEnd = p + 5;
    if (qEnd > len || qEnd - 16 > 255 || b[p + 3] !== 0 || b[p + 4] !== 1) return undefined;
    const ar = b[11] | (b[10] << 8);
    let ednsSize = 0;
    if (ar === 1) {
      if (qEnd + 11 > len || b[qEnd] !== 0 || b[qEnd + 1] !== 0 || b[qEnd + 2] !== 41 || b[qEnd + 6] !== 0) return undefined;
      if (qEnd + 11 + ((b[qEnd + 9] << 8) | b[qEnd + 10]) !== len) return undefined;
      ednsSize = Math.max(512, (b[qEnd + 3] << 8) | b[qEnd + 4]);
    } else if (ar !== 0 || qEnd !== len) return undefined;
    const qtype = (b[p + 1] << 8) | b[p + 2];
    return this.table.fastReply(b, p + 1, qtype, qEnd, ednsSize, udp);
  }

  private forward(msg: Buffer, q: QueryView, udp: boolean, reply: (b: Buffer) => void): void {
    if (this.pending.size >= MAX_PENDING) { this.inc('full'); return this.send(reply, errorReply(msg, q, RCODE.SERVFAIL), udp); }
    let id = crypto.randomInt(0, 65536);
    for (let i = 0; this.pending.has(id) && i < 16; i++) id = crypto.randomInt(0, 65536);
    if (this.pending.has(id)) { this.inc('full'); return this.send(reply, errorReply(msg, q, RCODE.SERVFAIL), udp); }
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    const timer = setTimeout(() => {
      if (!this.pending.delete(id)) return;
      this.inc('timeout');
      this.send(reply, errorReply(msg, q, RCODE.SERVFAIL), udp);
    }, this.opts.forwardTimeoutMs ?? 2000);
    this.pending.set(id, { reply: (b) => this.send(reply, b, udp), id: q.id, timer, query: msg, q });
    const f = this.opts.forwarder!;
    this.upstream!.send(out, f.port, f.host);
  }

  private inc(outcome: string): void { this.counters.forwarded[outcome] = (this.counters.forwarded[outcome] ?? 0) + 1; }

  private relay(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const f = this.opts.forwarder!;
    if (msg.length < 12 || rinfo.port !== f.port || !(msg[2] & 0x80)) return this.drop('forward-stray');
    const p = this.pending.get(msg.readUInt16BE(0));
    if (!p) return this.drop('forward-stray');
    // The answer must be to the question we asked (RFC 5452 §9.1).
    try { const back = readQuery(Buffer.concat([Buffer.from([0, 0, 0, 0]), msg.subarray(4)])); if (back.qname !== p.q.qname || back.qtype !== p.q.qtype) return this.drop('forward-mismatch'); } catch { return this.drop('forward-malformed'); }
    this.pending.delete(msg.readUInt16BE(0));
    clearTimeout(p.timer);
    const out = Buffer.from(msg);
    out.writeUInt16BE(p.id, 0);
    this.inc('answered');
    p.reply(out);
  }

  private serveTcp(s: net.Socket): void {
    this.conns.add(s);
    s.setNoDelay(true);
    s.setTimeout(this.opts.tcpIdleMs ?? 10000, () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // Bounded: at most 64 messages per read, then wait for the next chunk.
      for (let n = 0; buf.length >= 2 && n < 64; n++) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.handle(Buffer.from(msg), false, (b) => {
          if (s.destroyed) return;
          const head = Buffer.allocUnsafe(2);
          head.writeUInt16BE(b.length, 0);
          s.write(Buffer.concat([head, b]));
        });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => this.conns.delete(s));
  }
}

/** BADVERS: extended rcode 1 in our OPT record (RFC 6891 §6.1.3). */
function badVersion(msg: Buffer, q: QueryView): Buffer {
  const head = errorReply(msg, q, 0);
  head.writeUInt16BE(1, 10);
  const opt = Buffer.from([0, 0, TYPE.OPT >> 8, TYPE.OPT & 0xff, EDNS_SIZE >> 8, EDNS_SIZE & 0xff, 1, 0, 0, 0, 0, 0]).subarray(0, 11);
  head[2] |= QR >> 8;
  return Buffer.concat([head, opt]);
}
