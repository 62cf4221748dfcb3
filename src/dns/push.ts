// RFC 2136 push of the computed records to an existing primary server (BIND, Knot, PowerDNS...):
// Fulcrum keeps what it pushed last and sends the difference, as UPDATE messages over TCP, signed
// with TSIG (RFC 8945) when a key is configured. The first push (or one after the target changed)
// replaces every RRset Fulcrum owns, so records left over from an earlier setup go too.
import crypto from 'node:crypto';
import net from 'node:net';
import type { Store } from '../store/db.js';
import { canonicalName, CLASS, decode, formatRdata, OPCODE, parseRdata, readName, RCODE_NAME, TYPE, TYPE_NAME, Writer, writeRecord, type Rdata } from './codec.js';
import type { Rr } from './answers.js';
import { loadRecords, splitHostPort, type Loaded } from './service.js';

/** [name, type, data (presentation), ttl] */
type Pushed = [string, string, string, number];

export interface TsigKey { name: string; algorithm: 'hmac-sha256' | 'hmac-sha512' | 'hmac-sha1'; secret: string }

const HASH = { 'hmac-sha256': 'sha256', 'hmac-sha512': 'sha512', 'hmac-sha1': 'sha1' } as const;
const MAX_UPDATES_PER_MESSAGE = 200;

/**
 * One UPDATE message (RFC 2136 §2): zone section, no prerequisites, the updates, and a TSIG record
 * last when `key` is given. `deletes` remove one record (class NONE) or, with data null, a whole
 * RRset (class ANY).
 */
export function updateMessage(id: number, zone: string, deletes: Array<{ name: string; type: number; data: Rdata | null }>, adds: Rr[], key?: TsigKey, now = Date.now()): Buffer {
  const w = new Writer(1024);
  w.u16(id); w.u16(OPCODE.UPDATE << 11);
  w.u16(1); w.u16(0); w.u16(deletes.length + adds.length); w.u16(0);
  w.name(zone); w.u16(TYPE.SOA); w.u16(CLASS.IN);
  for (const d of deletes) {
    if (d.data === null) { w.name(d.name); w.u16(d.type); w.u16(CLASS.ANY); w.u32(0); w.u16(0); } else writeRecord(w, { name: d.name, type: d.type, class: CLASS.NONE, ttl: 0, data: d.data });
  }
  for (const a of adds) writeRecord(w, { ...a, class: CLASS.IN });
  const msg = Buffer.from(w.result());
  return key ? signTsig(msg, id, key, Math.floor(now / 1000)) : msg;
}

const canon = (name: string) => { const w = new Writer(64); w.name(name.toLowerCase(), false); return Buffer.from(w.result()); };

/** The TSIG variables (RFC 8945 §4.3.3) that the MAC covers after the message. */
function tsigVariables(key: TsigKey, time: Buffer, fudge: number, error: number, other: Buffer): Buffer {
  const vars = new Writer(128);
  vars.bytes(canon(key.name)); vars.u16(CLASS.ANY); vars.u32(0);
  vars.bytes(canon(key.algorithm)); vars.bytes(time); vars.u16(fudge); vars.u16(error); vars.u16(other.length); vars.bytes(other);
  return Buffer.from(vars.result());
}

/** The MAC of the last message signed with each key (a reply's MAC covers it: RFC 8945 §5.3). */
const requestMacs = new WeakMap<Buffer, Buffer>();

/** Append a TSIG record (RFC 8945 §4.3): HMAC over the message and the TSIG variables. */
export function signTsig(msg: Buffer, id: number, key: TsigKey, timeSigned: number, fudge = 300): Buffer {
  const time = Buffer.alloc(6);
  time.writeUIntBE(timeSigned, 0, 6);
  const mac = crypto.createHmac(HASH[key.algorithm], Buffer.from(key.secret, 'base64')).update(msg).update(tsigVariables(key, time, fudge, 0, Buffer.alloc(0))).digest();
  const w = new Writer(msg.length + 128);
  w.bytes(msg);
  w.bytes(canon(key.name)); w.u16(TYPE.TSIG); w.u16(CLASS.ANY); w.u32(0);
  const lenAt = w.len; w.u16(0);
  w.bytes(canon(key.algorithm)); w.bytes(time); w.u16(fudge); w.u16(mac.length); w.bytes(mac); w.u16(id); w.u16(0); w.u16(0);
  w.buf.writeUInt16BE(w.len - lenAt - 2, lenAt);
  const out = Buffer.from(w.result());
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  requestMacs.set(out, mac);
  return out;
}

/** Offset of the last record of a message (where a TSIG record must be), walking every section. */
function lastRecordOffset(b: Buffer): number {
  let p = 12;
  for (let i = 0; i < b.readUInt16BE(4); i++) p = readName(b, p).next + 4;
  const n = b.readUInt16BE(6) + b.readUInt16BE(8) + b.readUInt16BE(10);
  let last = -1;
  for (let i = 0; i < n; i++) { last = p; const q = readName(b, p).next; p = q + 10 + b.readUInt16BE(q + 8); }
  if (last < 0 || p !== b.length) throw new Error('the reply has no records or trailing bytes');
  return last;
}

/**
 * Check the TSIG of a reply to `request` (RFC 8945 §5.3): the MAC covers the request's MAC, the
 * reply without its TSIG record (ARCOUNT one less, the original id) and the TSIG variables.
 */
export function verifyTsig(reply: Buffer, request: Buffer, key: TsigKey, now = Date.now()): void {
  const requestMac = requestMacs.get(request);
  if (!requestMac) throw new Error('the request was not signed');
  const at = lastRecordOffset(reply);
  const owner = readName(reply, at);
  if (reply.readUInt16BE(owner.next) !== TYPE.TSIG) throw new Error('the reply is not signed (no TSIG record)');
  if (owner.name.toLowerCase() !== canonicalName(key.name)) throw new Error(`the reply is signed with another key (${owner.name})`);
  let p = owner.next + 10;
  const alg = readName(reply, p);
  if (alg.name.toLowerCase() !== key.algorithm) throw new Error(`the reply is signed with ${alg.name}, not ${key.algorithm}`);
  p = alg.next;
  const time = reply.subarray(p, p + 6), fudge = reply.readUInt16BE(p + 6), macLen = reply.readUInt16BE(p + 8);
  const mac = reply.subarray(p + 10, p + 10 + macLen);
  p += 10 + macLen;
  const origId = reply.readUInt16BE(p), error = reply.readUInt16BE(p + 2), otherLen = reply.readUInt16BE(p + 4);
  const other = reply.subarray(p + 6, p + 6 + otherLen);
  const body = Buffer.from(reply.subarray(0, at));
  body.writeUInt16BE(origId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  const len = Buffer.alloc(2); len.writeUInt16BE(requestMac.length);
  const want = crypto.createHmac(HASH[key.algorithm], Buffer.from(key.secret, 'base64'))
    .update(len).update(requestMac).update(body).update(tsigVariables(key, time, fudge, error, other)).digest();
  if (mac.length !== want.length || !crypto.timingSafeEqual(mac, want)) throw new Error('the reply\'s TSIG signature is wrong (a spoofed reply, or another key)');
  const signed = time.readUIntBE(0, 6);
  if (Math.abs(now / 1000 - signed) > fudge) throw new Error(`the reply's TSIG time is ${Math.round(now / 1000 - signed)} s off (fudge ${fudge} s); check the clocks`);
}

/** Send one message over TCP and read one reply (bounded by `timeoutMs`). */
export function exchangeTcp(host: string, port: number, msg: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const fail = (e: Error) => { s.destroy(); reject(e); };
    s.setTimeout(timeoutMs, () => fail(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    s.on('error', (e) => fail(new Error(`${host}:${port}: ${e.message}`)));
    s.on('connect', () => { const h = Buffer.alloc(2); h.writeUInt16BE(msg.length); s.write(Buffer.concat([h, msg])); });
    s.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { s.end(); resolve(buf.subarray(2, 2 + buf.readUInt16BE(0))); }
    });
    s.on('end', () => { if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) fail(new Error(`${host}:${port} closed the connection before answering`)); });
  });
}

const pushable = (zone: string) => (r: Rr) => !(r.name === zone && (r.type === TYPE.NS || r.type === TYPE.SOA));

export interface PushResult { target: string; zone: string; server: string; added: number; deleted: number; messages: number; skipped?: boolean; error?: string }

async function pushOne(store: Store, t: any, records: Rr[], force: boolean): Promise<PushResult> {
  const desired: Pushed[] = records.filter(pushable(t.zone)).map((r) => [r.name, TYPE_NAME[r.type], formatRdata(r.type, r.data), r.ttl]);
  const hash = crypto.createHash('sha256').update(JSON.stringify(desired)).digest('hex').slice(0, 32);
  const result: PushResult = { target: t.name, zone: t.zone, server: t.server, added: 0, deleted: 0, messages: 0 };
  if (!force && hash === t.pushed_hash) return { ...result, skipped: true };
  const fresh = t.pushed_hash === '' || force;
  const key = (p: Pushed) => `${p[0]}|${p[1]}|${p[2]}|${p[3]}`;
  const before = new Set((t.pushed as Pushed[]).map(key));
  const after = new Set(desired.map(key));
  const deletes: Array<{ name: string; type: number; data: Rdata | null }> = [];
  if (fresh) {
    // Replace whole RRsets at every name Fulcrum owns, now or before.
    const sets = new Set([...desired, ...(t.pushed as Pushed[])].map((p) => `${p[0]}|${p[1]}`));
    for (const s of sets) { const [name, type] = s.split('|'); deletes.push({ name, type: (TYPE as Record<string, number>)[type], data: null }); }
  } else {
    for (const p of t.pushed as Pushed[]) if (!after.has(key(p))) deletes.push({ name: p[0], type: (TYPE as Record<string, number>)[p[1]], data: parseRdata((TYPE as Record<string, number>)[p[1]], p[2]) });
  }
  const adds: Rr[] = desired.filter((p) => fresh || !before.has(key(p))).map((p) => ({ name: p[0], type: (TYPE as Record<string, number>)[p[1]], ttl: p[3], data: parseRdata((TYPE as Record<string, number>)[p[1]], p[2]) }));
  const tsig: TsigKey | undefined = t.tsig_secret ? { name: t.tsig_name, algorithm: t.tsig_algorithm, secret: t.tsig_secret } : undefined;
  const { host, port } = splitHostPort(t.server, 'server', 53);
  try {
    // Deletions first, then additions, in bounded messages (each one atomic on the server).
    const steps: Array<() => Buffer> = [];
    for (let i = 0; i < deletes.length; i += MAX_UPDATES_PER_MESSAGE) { const part = deletes.slice(i, i + MAX_UPDATES_PER_MESSAGE); steps.push(() => updateMessage(crypto.randomInt(65536), t.zone, part, [], tsig)); }
    for (let i = 0; i < adds.length; i += MAX_UPDATES_PER_MESSAGE) { const part = adds.slice(i, i + MAX_UPDATES_PER_MESSAGE); steps.push(() => updateMessage(crypto.randomInt(65536), t.zone, [], part, tsig)); }
    for (const step of steps) {
      const msg = step();
      const raw = await exchangeTcp(host, port, msg);
      const reply = decode(raw);
      if (reply.id !== msg.readUInt16BE(0)) throw new Error('the reply does not answer our update (id mismatch)');
      const rcode = reply.flags & 0xf;
      if (rcode !== 0) throw new Error(`the server answered ${RCODE_NAME[rcode] ?? rcode}${rcode === 9 ? ' (NOTAUTH: wrong TSIG key or not the primary for the zone)' : rcode === 5 ? ' (REFUSED: the zone does not allow updates from this address or key)' : ''}`);
      if (tsig) verifyTsig(raw, msg, tsig);
      result.messages++;
    }
    result.added = adds.length; result.deleted = deletes.length;
    await store.query(`UPDATE dns_push_targets SET pushed = $2, pushed_hash = $3, last_push_at = now(), last_error = NULL WHERE id = $1`, [t.id, JSON.stringify(desired), hash]);
  } catch (err) {
    result.error = (err as Error).message;
    await store.query(`UPDATE dns_push_targets SET last_error = $2, last_push_at = now() WHERE id = $1`, [t.id, result.error]);
  }
  return result;
}

const TARGETS = `SELECT p.*, z.name AS zone FROM dns_push_targets p JOIN dns_zones z ON z.id = p.zone_id`;

/** After a rebuild (leader only): push every enabled target whose zone content differs from what it has. */
export async function pushAll(store: Store, loaded: Loaded, _serials: Map<string, number>, log: (m: string) => void): Promise<void> {
  const targets = (await store.query(`${TARGETS} WHERE p.enabled ORDER BY p.id`)).rows;
  for (const t of targets) {
    const r = await pushOne(store, t, loaded.computed.byZone.get(t.zone) ?? [], false);
    if (r.error && r.error !== t.last_error) log(`dns push ${t.name} (${t.zone} to ${t.server}): ${r.error}`);
  }
}

/** Push one target now (the API's push), optionally replacing everything. */
export async function pushTarget(store: Store, id: number, force: boolean): Promise<PushResult> {
  const t = (await store.query(`${TARGETS} WHERE p.id = $1`, [id])).rows[0];
  const loaded = await loadRecords(store);
  return pushOne(store, t, loaded.computed.byZone.get(t.zone) ?? [], force);
}
