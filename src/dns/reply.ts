// Replies built from prepared sections: what a query costs once the answer logic has run ahead of
// time (answers.ts). A reply is the query's header (id, opcode, RD) with our flags and counts, the
// question echoed as sent (0x20 case kept), the prepared answer/authority/additional bytes, and an
// OPT record when the query had one.
import { QR, RD, TC, TYPE, type QueryView } from './codec.js';

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

/** Round robin over a pool's rotations (a plain reply is returned as is). */
export function pick(p: Prepared): Prepared {
  const r = p.rotations;
  if (!r) return p;
  p.turn = ((p.turn ?? 0) + 1) % r.length;
  return r[p.turn];
}

/** Our advertised EDNS UDP payload size (RFC 9715 / DNS flag day 2020: 1232 avoids fragmentation). */
export const EDNS_SIZE = 1232;

/**
 * The reply to a query (bytes `query`, its question ending at `qEnd`, its EDNS size or 0 without
 * OPT) from prepared sections: `flags` (AA, rcode), the counts, and the body `src[at, at + len)`.
 * Over UDP a reply longer than 512 (or the client's EDNS size, up to ours) is cut to the question
 * with TC set.
 */
export function assembleFrom(query: Uint8Array, qEnd: number, ednsSize: number, pflags: number, pan: number, pns: number, par: number,
  src: Uint8Array, from: number, len: number, udp: boolean): Buffer {
  const opt = ednsSize ? 11 : 0;
  const limit = !udp ? 65535 : ednsSize ? Math.min(ednsSize, EDNS_SIZE) : 512;
  const truncated = qEnd + len + opt > limit;
  const out = Buffer.allocUnsafe(qEnd + (truncated ? 0 : len) + opt);
  // Byte stores and loops, not writeUInt16BE/copy: for replies this small the native calls cost more than the work.
  const flags = QR | (((query[2] << 8) | query[3]) & (0x7800 | RD)) | pflags | (truncated ? TC : 0);
  const an = truncated ? 0 : pan, ns = truncated ? 0 : pns, ar = (truncated ? 0 : par) + (opt ? 1 : 0);
  out[0] = query[0]; out[1] = query[1]; out[2] = flags >> 8; out[3] = flags & 0xff; out[4] = 0; out[5] = 1;
  out[6] = an >> 8; out[7] = an & 0xff; out[8] = ns >> 8; out[9] = ns & 0xff; out[10] = ar >> 8; out[11] = ar & 0xff;
  for (let i = 12; i < qEnd; i++) out[i] = query[i];
  let at = qEnd;
  if (!truncated) {
    if (len > 256) out.set(src.subarray(from, from + len), at); else for (let i = 0; i < len; i++) out[at + i] = src[from + i];
    at += len;
  }
  if (opt) {
    out[at] = 0; out[at + 1] = 0; out[at + 2] = TYPE.OPT; out[at + 3] = EDNS_SIZE >> 8; out[at + 4] = EDNS_SIZE & 0xff;
    for (let i = at + 5; i < at + 11; i++) out[i] = 0;
  }
  return out;
}

/** The reply to a query from a prepared answer (see assembleFrom). */
export function assemble(query: Uint8Array, qEnd: number, ednsSize: number, p: Prepared, udp: boolean): Buffer {
  return assembleFrom(query, qEnd, ednsSize, p.flags, p.an, p.ns, p.ar, p.body, 0, p.body.length, udp);
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
