// The one boot file tree behind TFTP and HTTP:
//   /nodes/<mac>/<file>   rendered at fetch time from the node's current bootenv (unknown MACs
//                         get the `unknown` bootenv), e.g. /nodes/52-54-00-12-34-56/ipxe
//   /ipxe/<binary>        iPXE binaries, from the operator's directory or Debian's ipxe package
//   /<anything else>      static files under <data-dir>/boot (kernels, initrds, images)
// Paths are split into checked segments and joined under a fixed root, then resolved with
// realpath and re-checked: no request can name a file outside its root.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Sql } from '../store/db.js';
import { BootPathError, safeSegments, type BootFile, type BootRequest, type FileTree } from './tree.js';
import { findBootenv, renderBootFile, type BootContext } from './bootenvs.js';

export interface BootTreeOptions {
  sql: Sql;
  /** <data-dir>/boot */
  staticRoot: string;
  /** Where iPXE binaries are: the operator's choice first, then Debian's ipxe package. */
  ipxeRoots?: string[];
  /** Base URLs the rendered files point at. */
  server: (req: BootRequest) => BootContext['server'];
  /** Called after a per-node file was rendered (for events/metrics). */
  onRender?: (mac: string, file: string, bootenv: string) => void;
  /** Memory cache of static files. */
  cache?: StaticCacheOptions;
}

export const DEFAULT_IPXE_ROOTS = ['/usr/lib/ipxe', '/usr/share/ipxe'];

const MAC = /^([0-9a-f]{2}[-:]){5}[0-9a-f]{2}$/i;

export function bufferFile(buf: Buffer, contentType = 'application/octet-stream'): BootFile {
  return { size: buf.length, contentType, read: async (s = 0, e = buf.length - 1) => buf.subarray(s, e + 1) };
}

export interface StaticCacheOptions {
  /** Files up to this size are kept in memory. Default 64 MiB (kernels, initrds). */
  maxFileBytes?: number;
  /** Memory for cached files across one root, least recently used evicted first. Default 256 MiB. */
  maxTotalBytes?: number;
  /** A cached answer is re-checked against the disk (realpath + stat) at most this often. Default 1000 ms. */
  revalidateMs?: number;
}

interface Entry { real: string; dev: number; ino: number; size: number; mtimeMs: number; checkedAt: number; buf?: Buffer }

const sameFile = (e: Entry, st: fs.Stats) => e.dev === st.dev && e.ino === st.ino && e.size === st.size && e.mtimeMs === st.mtimeMs;

/**
 * Static files under one root, as a boot storm wants them: a path is checked at most once per
 * `revalidateMs`, files up to `maxFileBytes` are served from memory while their (device, inode,
 * size, mtime) is unchanged, larger ones stream from disk in 1 MiB reads. Concurrent first fetches
 * of one file share one read.
 *
 * No answer comes from outside the root: every open is checked by what the kernel actually opened
 * (/proc/self/fd), not by a path resolved beforehand — a file replaced by a link out of the root,
 * even between two checks, is refused.
 */
export class StaticRoot {
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<Entry | null>>();
  #bytes = 0;
  #root: { real: string | null; checkedAt: number } | undefined;
  readonly #maxFile: number;
  readonly #maxTotal: number;
  readonly #revalidateMs: number;

  constructor(readonly dir: string, opts: StaticCacheOptions = {}) {
    this.#maxFile = opts.maxFileBytes ?? 64 * 1024 * 1024;
    this.#maxTotal = opts.maxTotalBytes ?? 256 * 1024 * 1024;
    this.#revalidateMs = opts.revalidateMs ?? 1000;
  }

  /** Bytes held in memory now. */
  get cachedBytes(): number { return this.#bytes; }

  async file(segs: string[]): Promise<BootFile | null> {
    const key = segs.join('/');
    const hit = this.#entries.get(key);
    if (hit && Date.now() - hit.checkedAt < this.#revalidateMs) return this.#serve(key, hit);
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = this.#load(key, segs, hit).finally(() => this.#loading.delete(key));
      this.#loading.set(key, loading);
    }
    const entry = await loading;
    return entry ? this.#serve(key, entry) : null;
  }

  async #load(key: string, segs: string[], hit: Entry | undefined): Promise<Entry | null> {
    const now = Date.now();
    if (!this.#root || now - this.#root.checkedAt >= this.#revalidateMs) {
      this.#root = { real: await fsp.realpath(this.dir).catch(() => null), checkedAt: now };
    }
    const rootReal = this.#root.real;
    const opened = rootReal ? await openUnder(rootReal, path.join(rootReal, ...segs)) : null;
    if (!opened) { this.#drop(key); return null; }
    try {
      const st = await opened.fh.stat();
      if (!st.isFile()) { this.#drop(key); return null; }
      if (hit && hit.real === opened.real && sameFile(hit, st)) {
        hit.checkedAt = now;
        return hit;
      }
      const entry: Entry = { real: opened.real, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, checkedAt: now };
      if (st.size <= this.#maxFile && st.size <= this.#maxTotal) {
        entry.buf = await opened.fh.readFile();
        entry.size = entry.buf.length;
      }
      this.#drop(key);
      if (entry.buf) {
        for (const [k, e] of this.#entries) {
          if (this.#bytes + entry.size <= this.#maxTotal) break;
          if (e.buf) this.#drop(k);
        }
        this.#bytes += entry.size;
      }
      this.#entries.set(key, entry);
      return entry;
    } finally {
      await opened.fh.close();
    }
  }

  #drop(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    if (e.buf) this.#bytes -= e.buf.length;
    this.#entries.delete(key);
  }

  #serve(key: string, e: Entry): BootFile {
    // Most recently used last: eviction walks from the front.
    this.#entries.delete(key);
    this.#entries.set(key, e);
    if (e.buf) return bufferFile(e.buf);
    const root = this.#root?.real ?? '';
    // Large files are opened per request; what was opened must still be this entry's file.
    const check = (fd: number) => {
      const real = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (!isUnder(root, real)) throw new BootPathError('path escapes its root through a link');
      const st = fs.fstatSync(fd);
      if (!sameFile(e, st)) throw new BootPathError(`${e.real} changed on disk while being served; fetch it again`);
    };
    return {
      size: e.size,
      async read(s = 0, end = e.size - 1) {
        const fh = await fsp.open(e.real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        try {
          check(fh.fd);
          const buf = Buffer.alloc(end - s + 1);
          await fh.read(buf, 0, buf.length, s);
          return buf;
        } finally { await fh.close(); }
      },
      stream: (s = 0, end = e.size - 1) => {
        const stream = fs.createReadStream(e.real, { start: s, end, highWaterMark: 1024 * 1024 });
        // 'open' comes before the first read: a wrong file is refused before any byte is sent.
        stream.once('open', (fd: number) => {
          try { check(fd); } catch (err) { stream.destroy(err as Error); }
        });
        return stream;
      },
    };
  }
}

const isUnder = (root: string, real: string) => real === root || real.startsWith(root + path.sep);

/** Open `candidate` (following links, as the OS does) and accept it only if what was opened lies under `rootReal`. */
async function openUnder(rootReal: string, candidate: string): Promise<{ fh: fsp.FileHandle; real: string } | null> {
  let fh: fsp.FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted in the tree must not hang the open (it is then refused as not a file).
    fh = await fsp.open(candidate, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  const real = await fsp.readlink(`/proc/self/fd/${fh.fd}`).catch(() => null);
  if (real && isUnder(rootReal, real)) return { fh, real };
  await fh.close();
  if (!real) return null;
  throw new BootPathError('path escapes its root through a link');
}

export class BootTree implements FileTree {
  readonly #static: StaticRoot;
  readonly #ipxe: StaticRoot[];

  constructor(private readonly opts: BootTreeOptions) {
    this.#static = new StaticRoot(opts.staticRoot, opts.cache);
    this.#ipxe = (opts.ipxeRoots ?? DEFAULT_IPXE_ROOTS).map((r) => new StaticRoot(r, opts.cache));
  }

  async resolve(req: BootRequest): Promise<BootFile | null> {
    const segs = safeSegments(req.path);
    if (segs.length === 0) return null;
    if (segs[0] === 'nodes' && segs.length === 3 && MAC.test(segs[1])) return this.rendered(req, segs[1], segs[2]);
    if (segs[0] === 'ipxe' && segs.length >= 2) {
      for (const root of this.#ipxe) {
        const f = await root.file(segs.slice(1));
        if (f) return f;
      }
      return null;
    }
    return this.#static.file(segs);
  }

  private async rendered(req: BootRequest, macSeg: string, file: string): Promise<BootFile | null> {
    const mac = macSeg.toLowerCase().replace(/-/g, ':');
    const { rows } = await this.opts.sql.query(
      `SELECT n.id, n.name, n.uuid, n.bootenv, n.hints FROM node_macs m JOIN nodes n ON n.id = m.node_id WHERE m.mac = $1`, [mac]);
    const node = rows[0] ?? null;
    const bootenv = await findBootenv(this.opts.sql, node?.bootenv ?? 'unknown');
    if (!bootenv) return null;
    const text = await renderBootFile({ mac, node, bootenv, server: this.opts.server(req) }, file);
    if (text === null) return null;
    this.opts.onRender?.(mac, file, bootenv.name);
    return bufferFile(Buffer.from(text), 'text/plain; charset=utf-8');
  }
}
