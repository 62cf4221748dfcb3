// Read-only TFTP server over the boot file tree (DESIGN.md §3): RFC 1350 with the option
// extension (RFC 2347) for blksize (RFC 2348), timeout and tsize (RFC 2349) and windowsize
// (RFC 7440). Every transfer gets its own UDP socket (a new TID, RFC 1350 §4) on the server's
// address; requests arrive on the listening socket only.
//
// Option negotiation is a pure function over a table (`negotiateOptions`), so it is tested
// without sockets; the shell around it is the `Transfer` state machine below:
//   resolving → (oack →) data → done
import dgram from 'node:dgram';
import net from 'node:net';
import { BootPathError, type BootFile, type FileTree } from '../provisioning/tree.js';
import { decode, encode, ERROR_CODES, OPCODES, type RequestPacket, type TftpOptions, type TftpPacket } from './packet.js';

/** Protocol limits from the RFCs. */
export const TFTP_LIMITS = {
  /** RFC 1350 block size when no blksize option is negotiated. */
  defaultBlksize: 512,
  /** RFC 2348 §2. */
  blksize: { min: 8, max: 65464 },
  /** RFC 2349 §2, seconds. */
  timeout: { min: 1, max: 255 },
  /** RFC 7440 §3. */
  windowsize: { min: 1, max: 65535 },
} as const;

export interface NegotiationLimits {
  maxBlksize: number;
  maxWindowsize: number;
  defaultTimeoutMs: number;
}

export interface TransferSettings {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
}

export interface Negotiation {
  settings: TransferSettings;
  /** The OACK's options (client's spelling of each name), or null: no option accepted, no OACK. */
  oack: TftpOptions | null;
}

interface OptionRule {
  /** The value to answer, or null to ignore the option (RFC 2347: the server omits what it does not accept). */
  negotiate(requested: number, ctx: { size: number; limits: NegotiationLimits }): number | null;
  apply?(settings: TransferSettings, accepted: number): void;
}

/** The options this server negotiates; anything else a client asks for is ignored (RFC 2347). */
export const OPTION_RULES: Record<string, OptionRule> = {
  // RFC 2348: answer the requested size or a smaller one.
  blksize: {
    negotiate: (n, { limits }) => (n < TFTP_LIMITS.blksize.min ? null : Math.min(n, TFTP_LIMITS.blksize.max, limits.maxBlksize)),
    apply: (s, n) => { s.blksize = n; },
  },
  // RFC 2349 §2: the server must use the client's value or not acknowledge the option.
  timeout: {
    negotiate: (n) => (n >= TFTP_LIMITS.timeout.min && n <= TFTP_LIMITS.timeout.max ? n : null),
    apply: (s, n) => { s.timeoutMs = n * 1000; },
  },
  // RFC 2349 §4: on a read request the client sends 0 and the server answers the file's size.
  // Not for an empty file: curl refuses an OACK with tsize 0 ("invalid tsize"), and the empty
  // DATA 1 says the size anyway.
  tsize: { negotiate: (_n, { size }) => (size > 0 ? size : null) },
  // RFC 7440 §3: answer the requested window or a smaller one.
  windowsize: {
    negotiate: (n, { limits }) => (n < TFTP_LIMITS.windowsize.min || n > TFTP_LIMITS.windowsize.max ? null : Math.min(n, limits.maxWindowsize)),
    apply: (s, n) => { s.windowsize = n; },
  },
};

/** Option negotiation for a read request of a file of `size` bytes (pure). */
export function negotiateOptions(requested: TftpOptions, size: number, limits: NegotiationLimits): Negotiation {
  const settings: TransferSettings = { blksize: TFTP_LIMITS.defaultBlksize, windowsize: 1, timeoutMs: limits.defaultTimeoutMs };
  const oack: TftpOptions = {};
  let accepted = 0;
  for (const [name, raw] of Object.entries(requested)) {
    const rule = Object.hasOwn(OPTION_RULES, name.toLowerCase()) ? OPTION_RULES[name.toLowerCase()] : undefined;
    if (!rule || !/^\d{1,10}$/.test(raw)) continue;
    const value = rule.negotiate(Number(raw), { size, limits });
    if (value === null) continue;
    rule.apply?.(settings, value);
    Object.defineProperty(oack, name, { value: String(value), enumerable: true, writable: true, configurable: true });
    accepted++;
  }
  return { settings, oack: accepted > 0 ? oack : null };
}

/** Why a packet or request was not served; each is a key of `counters.dropped`. */
export const DROP_REASONS = [
  'malformed', // not a TFTP packet (decode failed)
  'unexpected-packet', // DATA/ACK/OACK on the request port, DATA/RRQ/... on a transfer port
  'wrong-tid', // a packet on a transfer port from someone other than that transfer's client
  'hostile-path', // the tree refused the path (`..`, backslash, NUL, link escaping the root)
  'not-found',
  'write-refused', // WRQ: this server is read-only
  'bad-mode', // `mail` or an unknown mode
  'busy', // maxTransfers transfers already running
  'duplicate-request', // a client's retransmitted RRQ for a transfer already started
  'client-abort', // the client sent an ERROR (e.g. 8 after the OACK, or after reading tsize)
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface TftpCounters {
  /** RRQ and WRQ packets received. */
  requests: number;
  /** Transfers whose last block the client acknowledged. */
  completed: number;
  /** Transfers the server gave up on: retries exhausted, read failures, socket errors. */
  errors: number;
  dropped: Record<DropReason, number>;
}

export type TransferOutcome = 'completed' | 'refused' | 'timeout' | 'aborted' | 'failed' | 'stopped';

export interface TftpTransferStats {
  /** Client address and port (its TID). */
  remote: string;
  path: string;
  outcome: TransferOutcome;
  /** ERROR code sent to the client (refused, failed, timeout) or received from it (aborted). */
  errorCode?: number;
  message?: string;
  size?: number;
  blksize?: number;
  windowsize?: number;
  timeoutMs?: number;
  /** Bytes of the file the client acknowledged. */
  bytes: number;
  /** DATA/OACK packets sent again after a timeout. */
  retransmits: number;
  durationMs: number;
}

export interface TftpServerOptions {
  tree: FileTree;
  /** Address to serve on, and the source address of every transfer. Default 0.0.0.0. */
  host?: string;
  /** Default 69; 0 picks a free port (tests). */
  port?: number;
  log?: (msg: string) => void;
  /** Concurrent transfers (one socket each); beyond, requests get ERROR 0 "busy". Default 1000. */
  maxTransfers?: number;
  /** Retransmissions of one packet/window before a transfer is abandoned. Default 5. */
  retries?: number;
  /** Retransmission timeout when the client does not negotiate `timeout`. Default 1000 ms. */
  defaultTimeoutMs?: number;
  /** Largest blksize granted. Default 65464 (RFC 2348 maximum). */
  maxBlksize?: number;
  /** Largest windowsize granted. Default 64. */
  maxWindowsize?: number;
  /** Called once per request that was answered: completed, refused or failed. */
  onTransfer?: (stats: TftpTransferStats) => void;
}

/**
 * Files up to this size are read whole once per transfer; bigger ones in chunks of about this
 * size, at most two held at a time (the memory bound per transfer).
 */
const CHUNK_BYTES = 1024 * 1024;

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`TFTP server option ${name}=${v} must be an integer in ${min}..${max}`);
  return v;
}

function endpoint(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

export class TftpServer {
  readonly counters: TftpCounters = {
    requests: 0, completed: 0, errors: 0,
    dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
  };

  private readonly tree: FileTree;
  private readonly host: string;
  private readonly port: number;
  private readonly socketType: 'udp4' | 'udp6';
  readonly limits: NegotiationLimits & { maxTransfers: number; retries: number };
  /** @internal */
  readonly log: (msg: string) => void;
  private readonly onTransfer?: (stats: TftpTransferStats) => void;
  private socket: dgram.Socket | null = null;
  /** Active transfers by client endpoint. */
  private readonly transfers = new Map<string, Transfer>();

  constructor(opts: TftpServerOptions) {
    this.tree = opts.tree;
    this.host = opts.host ?? '0.0.0.0';
    if (!net.isIP(this.host)) throw new TypeError(`TFTP host ${JSON.stringify(this.host)} is not an IP address`);
    this.socketType = net.isIPv6(this.host) ? 'udp6' : 'udp4';
    this.port = checkInt('port', opts.port ?? 69, 0, 65535);
    this.limits = {
      maxTransfers: checkInt('maxTransfers', opts.maxTransfers ?? 1000, 1, 1_000_000),
      retries: checkInt('retries', opts.retries ?? 5, 0, 1000),
      defaultTimeoutMs: checkInt('defaultTimeoutMs', opts.defaultTimeoutMs ?? 1000, 1, 255_000),
      maxBlksize: checkInt('maxBlksize', opts.maxBlksize ?? TFTP_LIMITS.blksize.max, TFTP_LIMITS.blksize.min, TFTP_LIMITS.blksize.max),
      maxWindowsize: checkInt('maxWindowsize', opts.maxWindowsize ?? 64, 1, TFTP_LIMITS.windowsize.max),
    };
    this.log = opts.log ?? (() => {});
    this.onTransfer = opts.onTransfer;
  }

  /** Transfers running now. */
  get active(): number {
    return this.transfers.size;
  }

  async start(): Promise<{ port: number }> {
    if (this.socket) throw new Error('TFTP server already started');
    const socket = await bindSocket(this.socketType, this.host, this.port).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`TFTP cannot listen on ${endpoint(this.host, this.port)}: ${err.code ?? err.message}` +
        (err.code === 'EACCES' ? ' (port 69 needs root or CAP_NET_BIND_SERVICE)' : err.code === 'EADDRINUSE' ? ' (another TFTP server is running there?)' : ''));
    });
    this.socket = socket;
    // A rack powering on at once sends a burst of requests (the kernel caps this at rmem_max).
    try { socket.setRecvBufferSize(4 * 1024 * 1024); } catch { /* keep the default */ }
    socket.on('message', (msg, rinfo) => this.onRequest(msg, rinfo));
    socket.on('error', (err) => this.log(`tftp: listening socket error: ${err.message}`));
    return { port: socket.address().port };
  }

  async stop(): Promise<void> {
    const closing = [...this.transfers.values()].map((t) => t.finish('stopped'));
    const socket = this.socket;
    this.socket = null;
    if (socket) closing.push(new Promise<void>((resolve) => socket.close(() => resolve())));
    await Promise.all(closing);
  }

  /** @internal used by Transfer */
  drop(reason: DropReason): void {
    this.counters.dropped[reason]++;
  }

  /** @internal an ERROR from the listening socket, for requests refused before a transfer starts. */
  refuse(rinfo: dgram.RemoteInfo, code: number, message: string, reason: DropReason | null, path: string, started = Date.now()): void {
    if (reason) this.drop(reason);
    this.sendFromRequestPort(encode({ type: 'error', code, message }), rinfo);
    this.report({ remote: endpoint(rinfo.address, rinfo.port), path, outcome: 'refused', errorCode: code, message, bytes: 0, retransmits: 0, durationMs: Date.now() - started });
  }

  /** @internal */
  sendFromRequestPort(packet: Buffer, rinfo: dgram.RemoteInfo): void {
    this.socket?.send(packet, rinfo.port, rinfo.address);
  }

  /** @internal */
  report(stats: TftpTransferStats): void {
    if (stats.outcome === 'refused' || stats.outcome === 'timeout' || stats.outcome === 'failed') {
      this.log(`tftp: ${stats.remote} ${JSON.stringify(stats.path)}: ${stats.outcome}: ${stats.message ?? ''}`);
    }
    try {
      this.onTransfer?.(stats);
    } catch (err) {
      this.log(`tftp: onTransfer hook failed: ${(err as Error).message}`);
    }
  }

  /** @internal */
  removeTransfer(t: Transfer): void {
    if (this.transfers.get(t.key) === t) this.transfers.delete(t.key);
  }

  private onRequest(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let p: TftpPacket;
    try {
      p = decode(msg);
    } catch {
      // No answer to garbage: the request port must not be a reflector.
      this.drop('malformed');
      return;
    }
    if (p.type === 'wrq') {
      this.counters.requests++;
      this.refuse(rinfo, ERROR_CODES.accessViolation, 'this TFTP server is read-only', 'write-refused', p.filename);
      return;
    }
    if (p.type !== 'rrq') {
      this.drop('unexpected-packet');
      return;
    }
    this.counters.requests++;
    const key = endpoint(rinfo.address, rinfo.port);
    const existing = this.transfers.get(key);
    if (existing) {
      // The client retransmitted its request before our first answer reached it.
      if (!existing.heard && existing.sameRequest(p)) {
        this.drop('duplicate-request');
        return;
      }
      // Same client port, new request (tftp-hpa reuses its port): the old transfer is over.
      void existing.finish('aborted', { message: 'client sent a new request from the same port' });
    }
    if (this.transfers.size >= this.limits.maxTransfers) {
      this.refuse(rinfo, ERROR_CODES.notDefined, `server busy (${this.limits.maxTransfers} transfers), try again`, 'busy', p.filename);
      return;
    }
    // RFC 1350 modes are case-insensitive. netascii is served as octet: boot files are binary and a
    // line-ending conversion would change their size (and the tsize answered).
    const mode = p.mode.toLowerCase();
    if (mode !== 'octet' && mode !== 'netascii') {
      const message = mode === 'mail' ? 'mail mode is not supported' : `unknown transfer mode ${JSON.stringify(p.mode)}`;
      this.refuse(rinfo, ERROR_CODES.illegalOperation, message, 'bad-mode', p.filename);
      return;
    }
    const t = new Transfer(this, this.tree, this.socketType, this.host, key, rinfo, p);
    this.transfers.set(key, t);
    void t.run();
  }
}

function ignoreSendError(): void {}

function bindSocket(type: 'udp4' | 'udp6', address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type });
    const onError = (err: Error) => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** One read transfer: its own socket, the negotiated settings, the window of blocks in flight. */
class Transfer {
  /** A packet came from the client on this transfer's socket. */
  heard = false;
  private state: 'resolving' | 'oack' | 'data' | 'done' = 'resolving';
  private socket: dgram.Socket | null = null;
  private file: BootFile | null = null;
  private settings: TransferSettings | null = null;
  private oack: TftpOptions | null = null;
  private size = 0;
  private totalBlocks = 0;
  /** First block (absolute, from 1; never wraps) the client has not acknowledged. */
  private base = 1;
  /** Highest block sent so far. */
  private sentUpTo = 0;
  private retries = 0;
  private retransmits = 0;
  private timer: NodeJS.Timeout | null = null;
  private sendSeq = 0;
  /** A window is waiting for its data from the tree. */
  private reading = false;
  private readonly started = Date.now();
  private whole: Promise<Buffer> | null = null;
  private readonly chunks = new Map<number, Promise<Buffer>>();
  private chunkBytes = 0;
  private closed: Promise<void> | null = null;

  constructor(
    private readonly server: TftpServer,
    private readonly tree: FileTree,
    private readonly socketType: 'udp4' | 'udp6',
    private readonly host: string,
    readonly key: string,
    private readonly remote: dgram.RemoteInfo,
    private readonly request: RequestPacket,
  ) {}

  private isDone(): boolean {
    return this.state === 'done';
  }

  sameRequest(p: RequestPacket): boolean {
    return p.filename === this.request.filename && p.mode === this.request.mode &&
      JSON.stringify(p.options) === JSON.stringify(this.request.options);
  }

  async run(): Promise<void> {
    const path = this.request.filename;
    let file: BootFile | null;
    const { retries, defaultTimeoutMs } = this.server.limits;
    this.timer = setTimeout(() => this.fail('failed', `looking up the file took over ${(retries + 1) * defaultTimeoutMs} ms`), (retries + 1) * defaultTimeoutMs);
    try {
      file = await this.tree.resolve({ path, remote: this.remote.address, protocol: 'tftp' });
    } catch (err) {
      if (this.state === 'done') return;
      this.clearTimer();
      this.server.removeTransfer(this);
      this.state = 'done';
      if (err instanceof BootPathError) {
        this.server.refuse(this.remote, ERROR_CODES.accessViolation, `access violation: ${err.message}`, 'hostile-path', path, this.started);
      } else {
        this.server.counters.errors++;
        this.server.refuse(this.remote, ERROR_CODES.notDefined, 'internal error looking up the file', null, path, this.started);
        this.server.log(`tftp: looking up ${JSON.stringify(path)} failed: ${(err as Error).stack ?? err}`);
      }
      return;
    }
    if (this.state === 'done') return;
    this.clearTimer();
    if (!file) {
      this.server.removeTransfer(this);
      this.state = 'done';
      this.server.refuse(this.remote, ERROR_CODES.fileNotFound, `file not found: ${path}`, 'not-found', path, this.started);
      return;
    }
    this.file = file;
    this.size = file.size;
    const { settings, oack } = negotiateOptions(this.request.options, file.size, this.server.limits);
    this.settings = settings;
    this.oack = oack;
    // Blocks are numbered from 1; a file that is a multiple of blksize ends with an empty block.
    this.totalBlocks = Math.floor(file.size / settings.blksize) + 1;
    // A chunk holds whole blocks and at least one window, so a window spans at most two chunks.
    this.chunkBytes = settings.blksize * Math.max(settings.windowsize, Math.ceil(CHUNK_BYTES / settings.blksize));
    try {
      this.socket = await bindSocket(this.socketType, this.host, 0);
    } catch (err) {
      this.fail('failed', `cannot open a transfer socket: ${(err as Error).message}`);
      return;
    }
    if (this.isDone()) {
      this.socket.close();
      this.socket = null;
      return;
    }
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket.on('error', (err) => this.fail('failed', `transfer socket error: ${err.message}`));
    if (oack) {
      this.state = 'oack';
      this.sendOack();
    } else {
      this.state = 'data';
      void this.sendWindow();
    }
  }

  private send(p: TftpPacket, address = this.remote.address, port = this.remote.port): void {
    // A failed send is a lost datagram: the retransmission timer deals with it.
    this.socket?.send(encode(p), port, address, ignoreSendError);
  }

  private sendOack(): void {
    this.send({ type: 'oack', options: this.oack! });
    this.armTimer();
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.state === 'done') return;
    if (rinfo.address !== this.remote.address || rinfo.port !== this.remote.port) {
      // RFC 1350 §4: answer a stranger with ERROR 5 and carry on (never answer an ERROR: no loops).
      this.server.drop('wrong-tid');
      if (!(msg.length >= 2 && msg.readUInt16BE(0) === OPCODES.error)) {
        this.send({ type: 'error', code: ERROR_CODES.unknownTransferId, message: 'unknown transfer ID' }, rinfo.address, rinfo.port);
      }
      return;
    }
    let p: TftpPacket;
    try {
      p = decode(msg);
    } catch {
      this.server.drop('malformed');
      return;
    }
    this.heard = true;
    if (p.type === 'error') {
      void this.finish('aborted', { errorCode: p.code, message: `client sent error ${p.code}: ${p.message}` });
    } else if (p.type === 'ack') {
      this.onAck(p.block);
    } else {
      this.server.drop('unexpected-packet');
    }
  }

  private onAck(block: number): void {
    if (this.state === 'oack') {
      if (block !== 0) return;
      this.state = 'data';
      this.retries = 0;
      void this.sendWindow();
      return;
    }
    if (this.state !== 'data') return;
    // The absolute block this 16-bit number names, counting from the last acknowledged one.
    const acked = this.base - 1 + ((block - (this.base - 1)) & 0xffff);
    // A duplicate ACK (acked === base - 1) is ignored: resending on it is the Sorcerer's
    // Apprentice bug (RFC 1123 §4.2.3.1). Lost packets are resent by the timer alone.
    if (acked < this.base || acked > this.sentUpTo) return;
    this.base = acked + 1;
    this.retries = 0;
    if (acked >= this.totalBlocks) {
      void this.finish('completed');
      return;
    }
    // A full window acknowledged, or (RFC 7440 §4) a partial one: continue after the acknowledged block.
    void this.sendWindow();
  }

  private async sendWindow(): Promise<void> {
    const seq = ++this.sendSeq;
    // A deadline while the read is pending too: a stalled disk ends in a timeout, not a hang.
    if (!this.timer) this.armTimer();
    const first = this.base;
    const last = Math.min(first + this.settings!.windowsize - 1, this.totalBlocks);
    let blocks: Buffer[];
    this.reading = true;
    try {
      blocks = await this.blocks(first, last);
    } catch (err) {
      this.fail('failed', `reading the file failed: ${(err as Error).message}`);
      return;
    } finally {
      if (seq === this.sendSeq) this.reading = false;
    }
    // An ACK (or a stop) that arrived during the read has started a newer window, or ended this.
    if (seq !== this.sendSeq || this.state !== 'data') return;
    this.sentUpTo = Math.max(this.sentUpTo, last);
    for (let b = first; b <= last; b++) this.sendData(b & 0xffff, blocks[b - first]);
    this.armTimer();
  }

  /** A DATA packet as two buffers (4-byte header + the block, not copied): the hot path of a transfer. */
  private sendData(block: number, data: Buffer): void {
    const header = Buffer.allocUnsafe(4);
    header.writeUInt16BE(OPCODES.data, 0);
    header.writeUInt16BE(block, 2);
    this.socket?.send([header, data], this.remote.port, this.remote.address, ignoreSendError);
  }

  private armTimer(): void {
    // One timer per transfer, re-armed in place (a new one per window costs on every block).
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.onTimeout(), this.settings!.timeoutMs);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimeout(): void {
    this.timer = null;
    if (this.state === 'done') return;
    if (this.retries >= this.server.limits.retries) {
      const tries = `${this.retries + 1} tries of ${this.settings!.timeoutMs} ms`;
      if (this.reading) this.fail('failed', `reading the file stalled (${tries})`);
      else this.fail('timeout', `no acknowledgement of ${this.state === 'oack' ? 'the option acknowledgement' : `block ${this.base}`} after ${tries}`);
      return;
    }
    this.retries++;
    this.retransmits++;
    // RFC 7440 §4: on timeout, send the window again from the first unacknowledged block.
    if (this.state === 'oack') this.sendOack();
    else void this.sendWindow();
  }

  /** Data of blocks first..last (absolute). */
  private async blocks(first: number, last: number): Promise<Buffer[]> {
    const bs = this.settings!.blksize;
    const out: Buffer[] = [];
    if (this.size <= CHUNK_BYTES) {
      this.whole ??= this.size === 0 ? Promise.resolve(Buffer.alloc(0)) : this.readRange(0, this.size);
      const buf = await this.whole;
      for (let b = first; b <= last; b++) out.push(buf.subarray((b - 1) * bs, Math.min(b * bs, this.size)));
      return out;
    }
    const chunkOf = (b: number) => Math.floor(((b - 1) * bs) / this.chunkBytes);
    for (const k of this.chunks.keys()) if (k < chunkOf(first)) this.chunks.delete(k);
    for (let b = first; b <= last; b++) {
      const c = chunkOf(b);
      const chunk = await this.chunk(c);
      const offset = (b - 1) * bs - c * this.chunkBytes;
      out.push(chunk.subarray(offset, Math.min(offset + bs, chunk.length)));
    }
    // Read ahead, so the next window does not wait for the disk; only once the window has left
    // the previous chunk, so no more than two chunks are held.
    if (chunkOf(first) === chunkOf(last)) this.chunk(chunkOf(last) + 1).catch(() => {});
    return out;
  }

  private chunk(c: number): Promise<Buffer> {
    let p = this.chunks.get(c);
    if (!p) {
      const start = c * this.chunkBytes;
      p = start >= this.size ? Promise.resolve(Buffer.alloc(0)) : this.readRange(start, Math.min(start + this.chunkBytes, this.size));
      p.catch(() => {});
      this.chunks.set(c, p);
    }
    return p;
  }

  /** Bytes [start, end) of the file. */
  private async readRange(start: number, end: number): Promise<Buffer> {
    const buf = await this.file!.read(start, end - 1);
    if (buf.length !== end - start) throw new Error(`file changed while being served (got ${buf.length} bytes at ${start}, wanted ${end - start})`);
    return buf;
  }

  private fail(outcome: 'timeout' | 'failed', message: string): void {
    if (this.state === 'done') return;
    this.server.counters.errors++;
    void this.finish(outcome, { errorCode: ERROR_CODES.notDefined, message, notify: true });
  }

  /** End the transfer: stop the timer, tell the client when asked, close the socket, count and report. */
  finish(outcome: TransferOutcome, detail: { errorCode?: number; message?: string; notify?: boolean } = {}): Promise<void> {
    if (this.closed) return this.closed;
    this.state = 'done';
    this.sendSeq++;
    this.clearTimer();
    this.server.removeTransfer(this);
    if (outcome === 'completed') this.server.counters.completed++;
    if (outcome === 'aborted') this.server.drop('client-abort');
    const s = this.settings;
    this.server.report({
      remote: this.key, path: this.request.filename, outcome, ...detail.errorCode !== undefined ? { errorCode: detail.errorCode } : {},
      ...detail.message ? { message: detail.message } : {},
      ...this.file ? { size: this.size } : {},
      ...s ? { blksize: s.blksize, windowsize: s.windowsize, timeoutMs: s.timeoutMs } : {},
      bytes: s ? Math.min(this.size, (this.base - 1) * s.blksize) : 0,
      retransmits: this.retransmits,
      durationMs: Date.now() - this.started,
    });
    const socket = this.socket;
    this.socket = null;
    const notify = detail.notify || outcome === 'stopped';
    const message = outcome === 'stopped' ? 'server shutting down' : detail.message ?? 'transfer failed';
    const error = encode({ type: 'error', code: detail.errorCode ?? ERROR_CODES.notDefined, message });
    this.closed = new Promise<void>((resolve) => {
      if (!socket) {
        // Still looking the file up: answer from the request port.
        if (notify) this.server.sendFromRequestPort(error, this.remote);
        return resolve();
      }
      const close = () => socket.close(() => resolve());
      if (notify) {
        socket.send(error, this.remote.port, this.remote.address, close);
      } else {
        close();
      }
    });
    return this.closed;
  }
}
