// The TFTP server against a hand-written client (every protocol corner, byte for byte) and
// against the real clients firmware-era tooling uses: curl and tftp-hpa.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { BootPathError, safeSegments, type BootFile, type BootRequest, type FileTree } from '../provisioning/tree.js';
import { decode, encode, type TftpOptions, type TftpPacket } from './packet.js';
import { DROP_REASONS, negotiateOptions, TftpServer, type TftpServerOptions, type TftpTransferStats } from './server.js';

const run = promisify(execFile);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Trees: an in-memory one that logs reads, and a directory-backed one that checks paths the way
// the real tree does (safe segments, then realpath must stay under the root).

class MemoryTree implements FileTree {
  readonly reads = new Map<string, Array<[number, number]>>();
  constructor(readonly files: Map<string, Buffer | BootFile>) {}
  async resolve(req: BootRequest): Promise<BootFile | null> {
    const key = safeSegments(req.path).join('/');
    const f = this.files.get(key);
    if (!f) return null;
    if (!Buffer.isBuffer(f)) return f;
    const log: Array<[number, number]> = [];
    this.reads.set(key, log);
    return { size: f.length, read: async (s = 0, e = f.length - 1) => { log.push([s, e]); return f.subarray(s, e + 1); } };
  }
}

class DirTree implements FileTree {
  constructor(readonly root: string) {}
  async resolve(req: BootRequest): Promise<BootFile | null> {
    const segs = safeSegments(req.path);
    if (segs.length === 0) return null;
    const rootReal = await fsp.realpath(this.root);
    const real = await fsp.realpath(path.join(rootReal, ...segs)).catch(() => null);
    if (!real) return null;
    if (real !== rootReal && !real.startsWith(rootReal + path.sep)) throw new BootPathError('path escapes its root through a link');
    const st = await fsp.stat(real);
    if (!st.isFile()) return null;
    return {
      size: st.size,
      async read(s = 0, e = st.size - 1) {
        const fh = await fsp.open(real, 'r');
        try {
          const buf = Buffer.alloc(e - s + 1);
          let n = 0;
          while (n < buf.length) {
            const { bytesRead } = await fh.read(buf, n, buf.length - n, s + n);
            if (bytesRead === 0) break;
            n += bytesRead;
          }
          return buf.subarray(0, n);
        } finally {
          await fh.close();
        }
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// A hand-written client: one UDP socket, a queue of what arrived.

interface Rx { p: TftpPacket; port: number; raw: Buffer }

class Client {
  private readonly q: Rx[] = [];
  private wake: (() => void) | null = null;
  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (raw, r) => {
      let p: TftpPacket;
      try { p = decode(raw); } catch { return; }
      this.q.push({ p, port: r.port, raw });
      this.wake?.();
    });
  }
  static async open(): Promise<Client> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return new Client(s);
  }
  get port(): number { return this.socket.address().port; }
  private pending = 0;
  private flushed: (() => void) | null = null;
  send(p: TftpPacket | Buffer, port: number): void {
    this.pending++;
    this.socket.send(Buffer.isBuffer(p) ? p : encode(p), port, '127.0.0.1', () => {
      if (--this.pending === 0) this.flushed?.();
    });
  }
  rrq(port: number, filename: string, options: TftpOptions = {}, mode = 'octet'): void {
    this.send({ type: 'rrq', filename, mode, options }, port);
  }
  async recv(ms = 3000): Promise<Rx | null> {
    const deadline = Date.now() + ms;
    while (this.q.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((res) => {
        const t = setTimeout(() => { this.wake = null; res(); }, left);
        this.wake = () => { clearTimeout(t); this.wake = null; res(); };
      });
    }
    return this.q.shift()!;
  }
  async expect<T extends TftpPacket['type']>(type: T, ms = 3000): Promise<Rx & { p: Extract<TftpPacket, { type: T }> }> {
    const rx = await this.recv(ms);
    assert.ok(rx, `expected ${type}, got nothing in ${ms} ms`);
    assert.equal(rx.p.type, type, `expected ${type}, got ${JSON.stringify(rx.p.type === 'data' ? { ...rx.p, data: rx.p.data.length } : rx.p)}`);
    return rx as Rx & { p: Extract<TftpPacket, { type: T }> };
  }
  /** Everything that arrives within `ms`. */
  async drain(ms: number): Promise<Rx[]> {
    const out: Rx[] = [];
    const end = Date.now() + ms;
    for (let rx = await this.recv(ms); rx; rx = await this.recv(Math.max(0, end - Date.now()))) out.push(rx);
    return out;
  }
  /** Close once every queued datagram is on the wire (a send is asynchronous). */
  async close(): Promise<void> {
    if (this.pending > 0) await new Promise<void>((r) => { this.flushed = r; });
    await new Promise<void>((r) => this.socket.close(() => r()));
  }
}

interface Fetched { data: Buffer; oack: TftpOptions | null; tid: number; blocksSeen: Set<number>; acks: number }

/**
 * Download as an RFC 1350 / RFC 7440 receiver: ACK the last block of each window (or the final
 * block); on a gap, ACK the last block received in order. `lose(block, nth)` drops an arriving
 * in-order block (nth = how many times that block arrived before).
 */
async function fetchFile(port: number, filename: string, options: TftpOptions = {}, lose?: (block: number, nth: number) => boolean): Promise<Fetched> {
  const c = await Client.open();
  try {
    c.rrq(port, filename, options);
    const first = await c.recv();
    assert.ok(first, `no answer to RRQ ${filename}`);
    if (first.p.type === 'error') throw Object.assign(new Error(`TFTP error ${first.p.code}: ${first.p.message}`), { code: first.p.code });
    const tid = first.port;
    let oack: TftpOptions | null = null;
    let blksize = 512, window = 1;
    const pending: Rx[] = [];
    if (first.p.type === 'oack') {
      oack = first.p.options;
      const get = (k: string) => Object.entries(oack!).find(([n]) => n.toLowerCase() === k)?.[1];
      blksize = Number(get('blksize') ?? 512);
      window = Number(get('windowsize') ?? 1);
      c.send({ type: 'ack', block: 0 }, tid);
    } else {
      pending.push(first);
    }
    const parts: Buffer[] = [];
    const seen = new Map<number, number>();
    const blocksSeen = new Set<number>();
    let next = 1, inWindow = 0, acks = 0, idle = 0;
    const ack = (abs: number) => { acks++; c.send({ type: 'ack', block: abs & 0xffff }, tid); };
    for (;;) {
      const rx = pending.shift() ?? (await c.recv(1500));
      if (!rx) {
        if (++idle > 4) throw new Error(`transfer of ${filename} stalled at block ${next}`);
        ack(next - 1);
        continue;
      }
      idle = 0;
      assert.equal(rx.port, tid, 'DATA from another TID');
      if (rx.p.type === 'error') throw Object.assign(new Error(`TFTP error ${rx.p.code}: ${rx.p.message}`), { code: rx.p.code });
      assert.equal(rx.p.type, 'data');
      const { block, data } = rx.p as { block: number; data: Buffer };
      if (block !== (next & 0xffff)) {
        // Out of order (a block was lost) or a duplicate: say where we are (RFC 7440 §4).
        if (window > 1 && block !== ((next - 1) & 0xffff)) { ack(next - 1); inWindow = 0; }
        else if (window === 1) ack(next - 1);
        continue;
      }
      const nth = seen.get(next) ?? 0;
      seen.set(next, nth + 1);
      if (lose?.(next, nth)) continue;
      blocksSeen.add(block);
      parts.push(Buffer.from(data));
      next++;
      inWindow++;
      if (data.length < blksize) { ack(next - 1); break; }
      if (inWindow === window) { ack(next - 1); inWindow = 0; }
    }
    return { data: Buffer.concat(parts), oack, tid, blocksSeen, acks };
  } finally {
    await c.close();
  }
}

async function withServer<T>(opts: Omit<TftpServerOptions, 'host' | 'port'>, fn: (port: number, srv: TftpServer, stats: TftpTransferStats[]) => Promise<T>): Promise<T> {
  const stats: TftpTransferStats[] = [];
  const srv = new TftpServer({ host: '127.0.0.1', port: 0, ...opts, onTransfer: (s) => { stats.push(s); opts.onTransfer?.(s); } });
  const { port } = await srv.start();
  try {
    return await fn(port, srv, stats);
  } finally {
    await srv.stop();
  }
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const rand = (n: number) => crypto.randomBytes(n);
const FILES = new Map<string, Buffer>([
  ['empty', Buffer.alloc(0)],
  ['f511', rand(511)], ['f512', rand(512)], ['f513', rand(513)],
  ['small', rand(1200)],
  ['mid', rand(200 * 1024 + 7)],
  // 65,549 blocks at blksize 8: the block number wraps inside a window.
  ['roll', rand(65536 * 8 + 100)],
  // Bigger than one read chunk (1 MB): read in pieces, not whole.
  ['big', rand(5 * 1024 * 1024 + 3)],
]);
const memTree = () => new MemoryTree(new Map(FILES));

// ---------------------------------------------------------------------------------------------
// Option negotiation (pure)

describe('option negotiation', () => {
  const limits = { maxBlksize: 65464, maxWindowsize: 64, defaultTimeoutMs: 1000 };
  const cases: Array<[string, TftpOptions, TftpOptions | null, Partial<{ blksize: number; windowsize: number; timeoutMs: number }>]> = [
    ['no options: no OACK, RFC 1350 defaults', {}, null, { blksize: 512, windowsize: 1, timeoutMs: 1000 }],
    ['blksize granted as asked', { blksize: '1468' }, { blksize: '1468' }, { blksize: 1468 }],
    ['blksize above the RFC 2348 maximum is clamped', { blksize: '70000' }, { blksize: '65464' }, { blksize: 65464 }],
    ['blksize below 8 is ignored', { blksize: '7' }, null, { blksize: 512 }],
    ['blksize 8 is the minimum', { blksize: '8' }, { blksize: '8' }, { blksize: 8 }],
    ['tsize answers the size', { tsize: '0' }, { tsize: '12345' }, {}],
    ['timeout in range is echoed', { timeout: '3' }, { timeout: '3' }, { timeoutMs: 3000 }],
    ['timeout 0 is ignored', { timeout: '0' }, null, { timeoutMs: 1000 }],
    ['timeout 256 is ignored', { timeout: '256' }, null, { timeoutMs: 1000 }],
    ['windowsize granted', { windowsize: '16' }, { windowsize: '16' }, { windowsize: 16 }],
    ['windowsize capped at the server maximum', { windowsize: '1000' }, { windowsize: '64' }, { windowsize: 64 }],
    ['windowsize 0 is ignored', { windowsize: '0' }, null, { windowsize: 1 }],
    ['unknown options are ignored', { multicast: '', utimeout: '1000', foo: 'bar' }, null, {}],
    ['non-numeric values are ignored', { blksize: '1e3', tsize: '-1', timeout: ' 5' }, null, {}],
    ['names are case-insensitive and echoed as sent', { BLKSIZE: '1024', TSize: '0' }, { BLKSIZE: '1024', TSize: '12345' }, { blksize: 1024 }],
    ['only what is accepted is answered', { blksize: '1468', foo: '1', windowsize: '0' }, { blksize: '1468' }, { blksize: 1468, windowsize: 1 }],
  ];
  for (const [name, req, oack, settings] of cases) {
    test(name, () => {
      const n = negotiateOptions(req, 12345, limits);
      assert.deepEqual(n.oack, oack);
      for (const [k, v] of Object.entries(settings)) assert.equal(n.settings[k as keyof typeof n.settings], v, k);
    });
  }
  test('tsize is not answered for an empty file (curl refuses tsize 0)', () => {
    assert.deepEqual(negotiateOptions({ tsize: '0', blksize: '1468' }, 0, limits).oack, { blksize: '1468' });
    assert.equal(negotiateOptions({ tsize: '0' }, 0, limits).oack, null);
  });
  test('a server maxBlksize caps blksize', () => {
    assert.deepEqual(negotiateOptions({ blksize: '9000' }, 1, { ...limits, maxBlksize: 1468 }).oack, { blksize: '1468' });
  });
  test('constructor refuses impossible limits', () => {
    const tree = memTree();
    assert.throws(() => new TftpServer({ tree, maxBlksize: 70000 }), /maxBlksize=70000/);
    assert.throws(() => new TftpServer({ tree, port: -1 }), /port=-1/);
    assert.throws(() => new TftpServer({ tree, host: 'localhost' }), /not an IP address/);
  });
});

// ---------------------------------------------------------------------------------------------
// Protocol, with the hand-written client

describe('TFTP server, hand-written client', () => {
  test('lock-step without options: DATA 1 at once, from a new TID; short and empty final blocks', async () => {
    await withServer({ tree: memTree() }, async (port, srv, stats) => {
      for (const name of ['empty', 'f511', 'f512', 'f513', 'small', 'mid']) {
        const got = await fetchFile(port, name);
        assert.equal(got.oack, null);
        assert.notEqual(got.tid, port, 'transfer must come from its own port');
        assert.equal(sha(got.data), sha(FILES.get(name)!), name);
      }
      await until('all reported', () => stats.length === 6);
      assert.equal(srv.counters.completed, 6);
      assert.equal(srv.counters.requests, 6);
      assert.equal(srv.active, 0);
      const f512 = stats.find((s) => s.path === 'f512')!;
      assert.deepEqual({ ...f512, durationMs: 0, remote: '' }, {
        remote: '', path: 'f512', outcome: 'completed', size: 512, blksize: 512, windowsize: 1, timeoutMs: 1000, bytes: 512, retransmits: 0, durationMs: 0,
      });
    });
  });

  test('OACK answers accepted options only, in the client\'s spelling; then ACK 0 starts the data', async () => {
    await withServer({ tree: memTree() }, async (port) => {
      const got = await fetchFile(port, 'mid', { BlkSize: '1468', tsize: '0', timeout: '3', windowsize: '4', foo: 'bar' });
      assert.deepEqual(got.oack, { BlkSize: '1468', tsize: String(FILES.get('mid')!.length), timeout: '3', windowsize: '4' });
      assert.equal(sha(got.data), sha(FILES.get('mid')!));
      // Only unacceptable options: plain RFC 1350 transfer.
      const plain = await fetchFile(port, 'small', { blksize: '4', foo: 'bar' });
      assert.equal(plain.oack, null);
      assert.equal(sha(plain.data), sha(FILES.get('small')!));
      // Largest block size.
      const huge = await fetchFile(port, 'big', { blksize: '65464' });
      assert.deepEqual(huge.oack, { blksize: '65464' });
      assert.equal(sha(huge.data), sha(FILES.get('big')!));
    });
  });

  test('windowsize (RFC 7440): a window per ACK, and the file intact', async () => {
    await withServer({ tree: memTree() }, async (port, srv, stats) => {
      const got = await fetchFile(port, 'mid', { windowsize: '8', blksize: '512' });
      assert.deepEqual(got.oack, { windowsize: '8', blksize: '512' });
      assert.equal(sha(got.data), sha(FILES.get('mid')!));
      const blocks = Math.floor(FILES.get('mid')!.length / 512) + 1;
      assert.equal(got.acks, Math.ceil(blocks / 8));
      await until('reported', () => stats.length === 1);
      assert.equal(stats[0].retransmits, 0);
      assert.equal(stats[0].windowsize, 8);
      assert.equal(srv.counters.completed, 1);
    });
  });

  test('windowsize: a lost block is resent from the block after the client\'s ACK', async () => {
    await withServer({ tree: memTree() }, async (port) => {
      // Lose block 3 (first arrival) and block 20 (first two arrivals).
      const got = await fetchFile(port, 'mid', { windowsize: '8' }, (b, nth) => (b === 3 && nth === 0) || (b === 20 && nth < 2));
      assert.equal(sha(got.data), sha(FILES.get('mid')!));
    });
  });

  test('windowsize: no ACK for a window → the whole window again from the last ACKed block', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 500 }, async (port, _srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'mid', { windowsize: '4' });
      const o = await c.expect('oack');
      c.send({ type: 'ack', block: 0 }, o.port);
      const firstWindow = (await c.drain(200)).map((r) => (r.p as { block: number }).block);
      assert.deepEqual(firstWindow, [1, 2, 3, 4]);
      c.send({ type: 'ack', block: 4 }, o.port);
      const second = (await c.drain(200)).map((r) => (r.p as { block: number }).block);
      assert.deepEqual(second, [5, 6, 7, 8]);
      // Silence: after the timeout the server sends 5..8 again, not 1..4.
      const again = (await c.drain(700)).map((r) => (r.p as { block: number }).block);
      assert.deepEqual(again.slice(0, 4), [5, 6, 7, 8]);
      c.send({ type: 'error', code: 0, message: 'enough' }, o.port);
      await until('reported', () => stats.length === 1);
      assert.ok(stats[0].retransmits >= 1);
      await c.close();
    });
  });

  test('block numbers roll over past 65535 (to 0), inside windows too', async () => {
    await withServer({ tree: memTree() }, async (port) => {
      const got = await fetchFile(port, 'roll', { blksize: '8', windowsize: '64' });
      assert.ok(got.blocksSeen.has(0) && got.blocksSeen.has(65535), 'blocks 65535 and 0 were both sent');
      assert.equal(sha(got.data), sha(FILES.get('roll')!));
    });
  });

  test('retransmission: a client that drops the first ACK gets the block again', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 150 }, async (port, srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'small');
      const d1 = await c.expect('data');
      assert.equal(d1.p.block, 1);
      // (our ACK 1 is "lost": not sent)
      const again = await c.expect('data', 1000);
      assert.equal(again.p.block, 1);
      assert.equal(again.port, d1.port);
      assert.deepEqual(again.p.data, d1.p.data);
      for (let b = 1; b <= 3; b++) {
        c.send({ type: 'ack', block: b }, d1.port);
        if (b < 3) assert.equal((await c.expect('data')).p.block, b + 1);
      }
      await until('completed', () => srv.counters.completed === 1);
      assert.ok(stats[0].retransmits >= 1);
      await c.close();
    });
  });

  test('duplicate ACKs do not trigger a resend (no Sorcerer\'s Apprentice)', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 1000 }, async (port, srv) => {
      const c = await Client.open();
      c.rrq(port, 'small');
      const d1 = await c.expect('data');
      c.send({ type: 'ack', block: 1 }, d1.port);
      c.send({ type: 'ack', block: 1 }, d1.port);
      c.send({ type: 'ack', block: 1 }, d1.port);
      const got = await c.drain(300);
      assert.deepEqual(got.map((r) => (r.p as { block: number }).block), [2], 'block 2 exactly once');
      c.send({ type: 'ack', block: 2 }, d1.port);
      c.send({ type: 'ack', block: 2 }, d1.port);
      const last = await c.drain(300);
      assert.deepEqual(last.map((r) => (r.p as { block: number }).block), [3]);
      c.send({ type: 'ack', block: 3 }, d1.port);
      await until('completed', () => srv.counters.completed === 1);
      await c.close();
    });
  });

  test('a stranger on a transfer port gets ERROR 5 and the transfer goes on', async () => {
    await withServer({ tree: memTree() }, async (port, srv) => {
      const c = await Client.open();
      const stranger = await Client.open();
      c.rrq(port, 'small');
      const d1 = await c.expect('data');
      stranger.send({ type: 'ack', block: 1 }, d1.port);
      const e = await stranger.expect('error');
      assert.equal(e.p.code, 5);
      assert.equal(e.port, d1.port);
      // An ERROR from a stranger is not answered (no error ping-pong).
      stranger.send({ type: 'error', code: 5, message: 'x' }, d1.port);
      assert.equal(await stranger.recv(200), null);
      for (let b = 1; b <= 3; b++) {
        c.send({ type: 'ack', block: b }, d1.port);
        if (b < 3) assert.equal((await c.expect('data')).p.block, b + 1);
      }
      await until('completed', () => srv.counters.completed === 1);
      assert.equal(srv.counters.dropped['wrong-tid'], 2);
      await c.close();
      await stranger.close();
    });
  });

  test('an ERROR from the client ends the transfer cleanly (also ERROR 8 refusing the OACK)', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 100 }, async (port, srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'small');
      const d1 = await c.expect('data');
      c.send({ type: 'error', code: 0, message: 'user cancelled' }, d1.port);
      assert.equal(await c.recv(400), null, 'nothing more after the client aborted');

      const c2 = await Client.open();
      c2.rrq(port, 'mid', { blksize: '1468', tsize: '0' });
      const o = await c2.expect('oack');
      c2.send({ type: 'error', code: 8, message: 'blksize not acceptable' }, o.port);
      assert.equal(await c2.recv(400), null, 'no DATA after ERROR 8');

      await until('both reported', () => stats.length === 2);
      assert.deepEqual(stats.map((s) => [s.outcome, s.errorCode]), [['aborted', 0], ['aborted', 8]]);
      assert.equal(srv.counters.dropped['client-abort'], 2);
      assert.equal(srv.counters.errors, 0);
      assert.equal(srv.active, 0);
      await c.close();
      await c2.close();
    });
  });

  test('retries are bounded: the server gives up, says so, and counts an error', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 100, retries: 2 }, async (port, srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'small');
      const got = await c.drain(1000);
      assert.deepEqual(got.map((r) => r.p.type), ['data', 'data', 'data', 'error']);
      assert.equal((got[3].p as { code: number }).code, 0);
      // The OACK is retransmitted the same way.
      c.rrq(port, 'small', { tsize: '0' });
      const o = await c.drain(1000);
      assert.deepEqual(o.map((r) => r.p.type), ['oack', 'oack', 'oack', 'error']);
      await until('reported', () => stats.length === 2);
      assert.deepEqual(stats.map((s) => [s.outcome, s.retransmits]), [['timeout', 2], ['timeout', 2]]);
      assert.equal(srv.counters.errors, 2);
      assert.equal(srv.active, 0);
      await c.close();
    });
  });

  test('WRQ is refused (read-only), mail and unknown modes refused, netascii served as octet, missing file → 1', async () => {
    await withServer({ tree: memTree() }, async (port, srv) => {
      const c = await Client.open();
      c.send({ type: 'wrq', filename: 'small', mode: 'octet', options: {} }, port);
      assert.deepEqual((await c.expect('error')).p, { type: 'error', code: 2, message: 'this TFTP server is read-only' });
      c.rrq(port, 'small', {}, 'mail');
      assert.equal((await c.expect('error')).p.code, 4);
      c.rrq(port, 'small', {}, 'binary');
      assert.equal((await c.expect('error')).p.code, 4);
      c.rrq(port, 'nothing-here');
      const nf = await c.expect('error');
      assert.equal(nf.p.code, 1);
      assert.match(nf.p.message, /file not found: nothing-here/);
      await c.close();
      const got = await fetchFile(port, 'small', {}, undefined);
      assert.equal(sha(got.data), sha(FILES.get('small')!));
      const c2 = await Client.open();
      c2.rrq(port, 'f513', {}, 'NetASCII');
      assert.equal((await c2.expect('data')).p.data.length, 512);
      await c2.close();
      assert.equal(srv.counters.dropped['write-refused'], 1);
      assert.equal(srv.counters.dropped['bad-mode'], 2);
      assert.equal(srv.counters.dropped['not-found'], 1);
    });
  });

  test('maxTransfers bounds concurrent transfers: beyond, ERROR 0 busy', async () => {
    await withServer({ tree: memTree(), maxTransfers: 2, defaultTimeoutMs: 5000 }, async (port, srv) => {
      const [a, b, c] = [await Client.open(), await Client.open(), await Client.open()];
      a.rrq(port, 'small');
      b.rrq(port, 'small');
      await a.expect('data');
      await b.expect('data');
      assert.equal(srv.active, 2);
      c.rrq(port, 'small');
      const e = await c.expect('error');
      assert.equal(e.p.code, 0);
      assert.match(e.p.message, /busy/);
      assert.equal(srv.counters.dropped.busy, 1);
      for (const x of [a, b, c]) await x.close();
    });
  });

  test('a retransmitted RRQ does not start a second transfer; a new request from the same port replaces the old one', async () => {
    await withServer({ tree: memTree() }, async (port, srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'small');
      c.rrq(port, 'small');
      const got = await c.drain(300);
      assert.equal(got.length, 1, 'one DATA 1, from one TID');
      assert.equal(srv.counters.dropped['duplicate-request'], 1);
      c.send({ type: 'ack', block: 1 }, got[0].port);
      assert.equal((await c.expect('data')).p.block, 2);
      // tftp-hpa reuses its port for the next file.
      c.rrq(port, 'f511');
      const d = await c.expect('data');
      assert.notEqual(d.port, got[0].port);
      assert.equal(d.p.data.length, 511);
      c.send({ type: 'ack', block: 1 }, d.port);
      await until('reported', () => stats.length === 2);
      assert.deepEqual(stats.map((s) => [s.path, s.outcome]), [['small', 'aborted'], ['f511', 'completed']]);
      await c.close();
    });
  });

  test('a big file is read in chunks, not whole and not per block', async () => {
    const tree = memTree();
    await withServer({ tree }, async (port) => {
      const got = await fetchFile(port, 'big', { blksize: '1468', windowsize: '16' });
      assert.equal(sha(got.data), sha(FILES.get('big')!));
      const reads = tree.reads.get('big')!;
      const size = FILES.get('big')!.length;
      const total = reads.reduce((n, [s, e]) => n + (e - s + 1), 0);
      assert.ok(reads.length >= 5 && reads.length <= 8, `${reads.length} reads`);
      assert.ok(Math.max(...reads.map(([s, e]) => e - s + 1)) <= 1024 * 1024 + 1468 * 16, 'no read beyond a chunk');
      assert.equal(total, size, 'every byte read once');
    });
  });

  test('read failures and lookup failures end the transfer with ERROR 0, counted as errors', async () => {
    const failing: BootFile = { size: 5000, read: async () => { throw new Error('disk on fire'); } };
    const shrinking: BootFile = { size: 5000, read: async () => Buffer.alloc(10) };
    const tree = new MemoryTree(new Map<string, Buffer | BootFile>([['bad', failing], ['shrunk', shrinking]]));
    const broken: FileTree = { resolve: async (req) => { if (req.path === 'boom') throw new Error('database down'); return tree.resolve(req); } };
    await withServer({ tree: broken }, async (port, srv, stats) => {
      const c = await Client.open();
      for (const name of ['bad', 'shrunk', 'boom']) {
        c.rrq(port, name);
        const e = await c.expect('error');
        assert.equal(e.p.code, 0, name);
      }
      await until('reported', () => stats.length === 3);
      assert.match(stats[0].message!, /disk on fire/);
      assert.match(stats[1].message!, /changed while being served/);
      assert.deepEqual(stats.map((s) => s.outcome), ['failed', 'failed', 'refused']);
      assert.equal(srv.counters.errors, 3);
      await c.close();
    });
  });

  test('a lookup or a read that never finishes ends in ERROR 0 within the retry budget', async () => {
    const stalled: BootFile = { size: 5000, read: () => new Promise<Buffer>(() => {}) };
    const tree: FileTree = { resolve: async (req) => (req.path === 'hang' ? new Promise<BootFile>(() => {}) : stalled) };
    await withServer({ tree, defaultTimeoutMs: 50, retries: 1 }, async (port, srv, stats) => {
      const c = await Client.open();
      c.rrq(port, 'hang');
      const e1 = await c.expect('error', 1000);
      assert.match(e1.p.message, /looking up the file took over 100 ms/);
      c.rrq(port, 'stall');
      const e2 = await c.expect('error', 1000);
      assert.match(e2.p.message, /reading the file stalled/);
      await until('reported', () => stats.length === 2);
      assert.equal(srv.counters.errors, 2);
      assert.equal(srv.active, 0);
      await c.close();
    });
  });

  test('malformed packets on the request port and on a transfer port are counted; the server survives', async () => {
    await withServer({ tree: memTree(), defaultTimeoutMs: 5000 }, async (port, srv) => {
      const garbage = fc.sample(fc.oneof(
        fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
        // Real opcodes with random bodies, and mutated RRQs.
        fc.tuple(fc.integer({ min: 1, max: 6 }), fc.uint8Array({ maxLength: 80 })).map(([op, a]) => Buffer.concat([Buffer.from([0, op]), a])),
        fc.tuple(fc.nat(40), fc.nat(255)).map(([i, v]) => { const b = encode({ type: 'rrq', filename: 'small', mode: 'octet', options: { blksize: '1468' } }); b[i % b.length] = v; return b; }),
      ), { numRuns: 1500, seed: 69 });
      const undecodable = (b: Buffer) => { try { decode(b); return false; } catch { return true; } };
      const kinds = garbage.map((b) => (undecodable(b) ? 'malformed' : decode(b).type));
      const sink = await Client.open();
      for (let i = 0; i < garbage.length; i += 50) {
        for (const b of garbage.slice(i, i + 50)) sink.send(b, port);
        await sleep(2);
      }
      const want = kinds.filter((k) => k === 'malformed').length;
      const unexpected = kinds.filter((k) => k === 'data' || k === 'ack' || k === 'error' || k === 'oack').length;
      assert.ok(want > 500, `${want} malformed of ${garbage.length}`);
      await until('all counted', () => srv.counters.dropped.malformed === want && srv.counters.dropped['unexpected-packet'] === unexpected);

      // On a transfer port: garbage from the client is ignored, from a stranger answered with ERROR 5.
      const c = await Client.open();
      const stranger = await Client.open();
      c.rrq(port, 'small');
      const d1 = await c.expect('data');
      const bad = garbage.filter(undecodable).slice(0, 200);
      for (let i = 0; i < bad.length; i += 20) {
        for (const b of bad.slice(i, i + 20)) c.send(b, d1.port);
        if (i < 100) for (const b of bad.slice(i, i + 20)) stranger.send(b, d1.port);
        await sleep(2);
      }
      await until('transfer-port garbage counted', () => srv.counters.dropped.malformed === want + 200 && srv.counters.dropped['wrong-tid'] === 100);
      for (let b = 1; b <= 3; b++) {
        c.send({ type: 'ack', block: b }, d1.port);
        if (b < 3) assert.equal((await c.expect('data')).p.block, b + 1);
      }
      await until('completed', () => srv.counters.completed === 1);
      const ok = await fetchFile(port, 'mid', { blksize: '1468' });
      assert.equal(sha(ok.data), sha(FILES.get('mid')!));
      for (const x of [sink, c, stranger]) await x.close();
      assert.deepEqual(Object.keys(srv.counters.dropped).sort(), [...DROP_REASONS].sort());
    });
  });

  test('stop() ends running transfers with an ERROR and releases every socket', async () => {
    const stats: TftpTransferStats[] = [];
    const srv = new TftpServer({ tree: memTree(), host: '127.0.0.1', port: 0, onTransfer: (s) => stats.push(s) });
    const { port } = await srv.start();
    const c = await Client.open();
    c.rrq(port, 'mid');
    const d1 = await c.expect('data');
    await srv.stop();
    const e = await c.expect('error');
    assert.equal(e.port, d1.port);
    assert.match(e.p.type === 'error' ? e.p.message : '', /shutting down/);
    assert.equal(stats[0].outcome, 'stopped');
    assert.equal(srv.active, 0);
    // The port is free again.
    const again = new TftpServer({ tree: memTree(), host: '127.0.0.1', port });
    await again.start();
    await again.stop();
    await c.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile paths against a directory tree

async function makeDirTree(): Promise<{ base: string; root: string }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'fulcrum-tftp-'));
  const root = path.join(base, 'root');
  await fsp.mkdir(path.join(root, 'etc'), { recursive: true });
  await fsp.mkdir(path.join(root, 'sub'));
  await fsp.writeFile(path.join(root, 'etc', 'passwd'), 'tree passwd\n');
  await fsp.writeFile(path.join(root, 'ok.txt'), 'ok\n');
  await fsp.writeFile(path.join(base, 'secret'), 'SECRET outside the root\n');
  await fsp.symlink(path.join(base, 'secret'), path.join(root, 'link-out'));
  await fsp.symlink(base, path.join(root, 'link-dir'));
  return { base, root };
}

describe('hostile paths', () => {
  let dirs: { base: string; root: string };
  before(async () => { dirs = await makeDirTree(); });
  after(async () => { await fsp.rm(dirs.base, { recursive: true, force: true }); });

  test('never leave the tree root; absolute paths map into it', async () => {
    await withServer({ tree: new DirTree(dirs.root) }, async (port, srv) => {
      const refused: Array<[string, number]> = [
        ['../secret', 2], ['../../../../etc/passwd', 2], ['sub/../../secret', 2], ['..', 2],
        ['a\\..\\b', 2], ['..\\secret', 2], ['link-out', 2], ['link-dir/secret', 2], ['/../secret', 2],
        ['', 1], ['/', 1], ['sub', 1], ['secret', 1],
      ];
      for (const [p, code] of refused) {
        await assert.rejects(fetchFile(port, p), (e: Error & { code?: number }) => e.code === code, `${JSON.stringify(p)} → ERROR ${code}`);
      }
      for (const p of ['/etc/passwd', '//etc//passwd', 'etc/./passwd']) {
        assert.equal((await fetchFile(port, p)).data.toString(), 'tree passwd\n', p);
      }
      // A NUL ends the filename on the wire (RFC 1350 framing): the rest is read as the mode,
      // which is then not a mode (ERROR 4), or as an option without a value (malformed: no
      // answer). Never any data.
      const c = await Client.open();
      for (const raw of ['ok.txt\0../secret\0octet\0', '../secret\0ok.txt\0octet\0', 'ok.txt\0octet\0../secret\0']) {
        c.send(Buffer.concat([Buffer.from([0, 1]), Buffer.from(raw)]), port);
        const rx = await c.recv(500);
        assert.ok(!rx || (rx.p.type === 'error' && [1, 2, 4].includes(rx.p.code)), `${JSON.stringify(raw)}: ${JSON.stringify(rx?.p)}`);
      }
      await c.close();
      assert.equal(srv.counters.dropped['hostile-path'], 9);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Real clients: curl and tftp-hpa

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Install a Debian package when its binary is missing (root only); fail, never skip, when impossible. */
function ensureTool(bin: string, pkg: string, check: () => string | null): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!have(bin) || check()) {
    if (process.getuid?.() !== 0) {
      throw new Error(`${bin} (${pkg}) is missing and the tests are not running as root: install it with "apt-get install -y ${pkg}" or scripts/install-system-packages.sh`);
    }
    let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, encoding: 'utf8' });
    if (r.status !== 0 || !have(bin)) {
      spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
      r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, encoding: 'utf8' });
    }
    if (!have(bin)) throw new Error(`${bin} is missing and "apt-get install -y ${pkg}" failed: ${(r.stderr ?? '').slice(-600)}`);
  }
  const problem = check();
  if (problem) throw new Error(`${bin} is not usable for these tests: ${problem}`);
}

describe('real clients: curl and tftp-hpa', () => {
  let dirs: { base: string; root: string };
  let out: string;
  let srv: TftpServer;
  let port: number;
  const sizes: Array<[string, number]> = [['z0', 0], ['z511', 511], ['z512', 512], ['z513', 513], ['z1m', 1024 * 1024]];
  const BIG = 33 * 1024 * 1024; // 67,585 blocks at 512: past 65535

  before(async () => {
    ensureTool('curl', 'curl', () => (/\btftp\b/.test(spawnSync('curl', ['--version'], { encoding: 'utf8' }).stdout) ? null : 'this curl has no tftp support'));
    ensureTool('tftp', 'tftp-hpa', () => (/tftp-hpa/.test(spawnSync('tftp', ['-V'], { encoding: 'utf8' }).stdout ?? '') ? null : 'the tftp on PATH is not tftp-hpa'));
    dirs = await makeDirTree();
    out = path.join(dirs.base, 'out');
    await fsp.mkdir(out);
    for (const [name, n] of sizes) await fsp.writeFile(path.join(dirs.root, name), rand(n));
    await fsp.writeFile(path.join(dirs.root, 'z33m'), rand(BIG));
    srv = new TftpServer({ tree: new DirTree(dirs.root), host: '127.0.0.1', port: 0 });
    ({ port } = await srv.start());
  });
  after(async () => {
    await srv?.stop();
    if (dirs) await fsp.rm(dirs.base, { recursive: true, force: true });
  });

  const fileSha = (p: string) => sha(fs.readFileSync(p));
  const curl = (name: string, dest: string, ...args: string[]) =>
    run('curl', ['-sS', '--fail', '--max-time', '60', ...args, `tftp://127.0.0.1:${port}/${name}`, '-o', dest]);
  const tftpHpa = (name: string, dest: string, ...flags: string[]) =>
    run('tftp', [...flags, '127.0.0.1', String(port), '-m', 'binary', '-c', 'get', name, dest], { timeout: 60_000 });

  for (const bs of [512, 1468, 8192, 65464]) {
    test(`curl --tftp-blksize ${bs}: sizes 0, 511, 512, 513, 1 MB`, async () => {
      for (const [name] of sizes) {
        const dest = path.join(out, `curl-${bs}-${name}`);
        await curl(name, dest, '--tftp-blksize', String(bs));
        assert.equal(fileSha(dest), fileSha(path.join(dirs.root, name)), `${name} at ${bs}`);
      }
    });
  }

  test('curl: 33 MB at blksize 512 (block number rollover)', async () => {
    const dest = path.join(out, 'curl-33m');
    await curl('z33m', dest, '--tftp-blksize', '512');
    assert.equal(fileSha(dest), fileSha(path.join(dirs.root, 'z33m')));
    fs.rmSync(dest);
  });

  test('tftp-hpa: sizes 0, 511, 512, 513, 1 MB, plain and verbose', async () => {
    for (const [name, n] of sizes) {
      for (const flags of [[], ['-v']]) {
        const dest = path.join(out, `hpa-${name}${flags.join('')}`);
        const r = await tftpHpa(name, dest, ...flags);
        assert.equal(fileSha(dest), fileSha(path.join(dirs.root, name)), `${name} ${flags}`);
        // (tftp-hpa prints no statistics for an empty file)
        if (flags.length && n > 0) assert.match(r.stdout + r.stderr, new RegExp(`Received ${n} bytes`));
      }
    }
  });

  test('tftp-hpa: 33 MB (lock-step at 512, block number rollover)', async () => {
    const dest = path.join(out, 'hpa-33m');
    await tftpHpa('z33m', dest);
    assert.equal(fileSha(dest), fileSha(path.join(dirs.root, 'z33m')));
    fs.rmSync(dest);
  });

  test('50 concurrent curl downloads, mixed block sizes, all intact', async () => {
    const want = fileSha(path.join(dirs.root, 'z1m'));
    const before = srv.counters.completed;
    const bs = [512, 1468, 8192, 65464];
    await Promise.all(Array.from({ length: 50 }, (_, i) => curl('z1m', path.join(out, `par-${i}`), '--tftp-blksize', String(bs[i % 4]))));
    for (let i = 0; i < 50; i++) assert.equal(fileSha(path.join(out, `par-${i}`)), want, `download ${i}`);
    assert.equal(srv.counters.completed - before, 50);
    await until('all transfers closed', () => srv.active === 0);
  });

  test('hostile paths through real clients leak nothing', async () => {
    const secret = 'SECRET outside the root';
    for (const p of ['../secret', '../../../../../../etc/passwd', 'link-out', 'a\\..\\secret']) {
      const dest = path.join(out, 'hostile');
      fs.rmSync(dest, { force: true });
      await assert.rejects(curl(p, dest, '--path-as-is'), `curl ${p}`);
      assert.ok(!fs.existsSync(dest) || !fs.readFileSync(dest, 'utf8').includes(secret));
      const r = await tftpHpa(p, dest).catch((e: { stdout: string; stderr: string }) => e);
      assert.match(r.stdout + r.stderr, /Error code 2/, `tftp-hpa ${p}`);
      assert.ok(!fs.existsSync(dest) || !fs.readFileSync(dest, 'utf8').includes(secret));
    }
    // An absolute path is a path in the tree, not on the machine.
    const dest = path.join(out, 'passwd');
    await curl('/etc/passwd', dest, '--path-as-is');
    assert.equal(fs.readFileSync(dest, 'utf8'), 'tree passwd\n');
    await tftpHpa('/etc/passwd', dest);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'tree passwd\n');
    const missing = await tftpHpa('no-such-file', path.join(out, 'missing')).catch((e: { stdout: string; stderr: string }) => e);
    assert.match(missing.stdout + missing.stderr, /Error code 1/);
  });
});
