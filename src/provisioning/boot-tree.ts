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

interface Entry { real: string; ino: number; size: number; mtimeMs: number; checkedAt: number; buf?: Buffer }

/**
 * Static files under one root, as a boot storm wants them: a path is resolved (realpath, checked
 * to stay under the root) and stat'ed at most once per `revalidateMs`; files up to `maxFileBytes`
 * are served from memory, kept while their (inode, size, mtime) is unchanged. Larger files stream
 * from disk in 1 MiB reads. A file replaced on disk is served fresh within `revalidateMs`.
 */
export class StaticRoot {
  readonly #entries = new Map<string, Entry>();
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
    const now = Date.now();
    const hit = this.#entries.get(key);
    if (hit && now - hit.checkedAt < this.#revalidateMs) return this.#serve(key, hit);
    const rootReal = await this.#rootReal(now);
    if (!rootReal) return null;
    const real = await fsp.realpath(path.join(rootReal, ...segs)).catch(() => null);
    if (!real) { this.#drop(key); return null; }
    if (real !== rootReal && !real.startsWith(rootReal + path.sep)) throw new BootPathError(`path escapes its root through a link`);
    const st = await fsp.stat(real).catch(() => null);
    if (!st?.isFile()) { this.#drop(key); return null; }
    if (hit && hit.real === real && hit.ino === st.ino && hit.size === st.size && hit.mtimeMs === st.mtimeMs) {
      hit.checkedAt = now;
      return this.#serve(key, hit);
    }
    this.#drop(key);
    const entry: Entry = { real, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, checkedAt: now };
    if (st.size <= this.#maxFile && st.size <= this.#maxTotal) {
      entry.buf = await fsp.readFile(real);
      entry.size = entry.buf.length;
      for (const [k, e] of this.#entries) {
        if (this.#bytes + entry.size <= this.#maxTotal) break;
        if (e.buf) this.#drop(k);
      }
      this.#bytes += entry.size;
    }
    this.#entries.set(key, entry);
    return this.#serve(key, entry);
  }

  async #rootReal(now: number): Promise<string | null> {
    if (!this.#root || now - this.#root.checkedAt >= this.#revalidateMs) {
      this.#root = { real: await fsp.realpath(this.dir).catch(() => null), checkedAt: now };
    }
    return this.#root.real;
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
    const { real, size } = e;
    return {
      size,
      async read(s = 0, end = size - 1) {
        const fh = await fsp.open(real, 'r');
        try {
          const buf = Buffer.alloc(end - s + 1);
          await fh.read(buf, 0, buf.length, s);
          return buf;
        } finally { await fh.close(); }
      },
      stream: (s = 0, end = size - 1) => fs.createReadStream(real, { start: s, end, highWaterMark: 1024 * 1024 }),
    };
  }
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
