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
}

export const DEFAULT_IPXE_ROOTS = ['/usr/lib/ipxe', '/usr/share/ipxe'];

const MAC = /^([0-9a-f]{2}[-:]){5}[0-9a-f]{2}$/i;

/** Small static files are cached in memory: a per-request read stream costs 5x (LAB-NOTES). */
const CACHE_LIMIT = 4 * 1024 * 1024;

export function bufferFile(buf: Buffer, contentType = 'application/octet-stream'): BootFile {
  return { size: buf.length, contentType, read: async (s = 0, e = buf.length - 1) => buf.subarray(s, e + 1) };
}

async function fileUnder(root: string, segs: string[]): Promise<BootFile | null> {
  const rootReal = await fsp.realpath(root).catch(() => null);
  if (!rootReal) return null;
  const candidate = path.join(rootReal, ...segs);
  const real = await fsp.realpath(candidate).catch(() => null);
  if (!real) return null;
  if (real !== rootReal && !real.startsWith(rootReal + path.sep)) throw new BootPathError(`path escapes its root through a link`);
  const st = await fsp.stat(real);
  if (!st.isFile()) return null;
  if (st.size <= CACHE_LIMIT) return bufferFile(await fsp.readFile(real));
  return {
    size: st.size,
    async read(s = 0, e = st.size - 1) {
      const fh = await fsp.open(real, 'r');
      try {
        const buf = Buffer.alloc(e - s + 1);
        await fh.read(buf, 0, buf.length, s);
        return buf;
      } finally { await fh.close(); }
    },
    stream: (s = 0, e = st.size - 1) => fs.createReadStream(real, { start: s, end: e }),
  };
}

export class BootTree implements FileTree {
  constructor(private readonly opts: BootTreeOptions) {}

  async resolve(req: BootRequest): Promise<BootFile | null> {
    const segs = safeSegments(req.path);
    if (segs.length === 0) return null;
    if (segs[0] === 'nodes' && segs.length === 3 && MAC.test(segs[1])) return this.rendered(req, segs[1], segs[2]);
    if (segs[0] === 'ipxe' && segs.length >= 2) {
      for (const root of this.opts.ipxeRoots ?? DEFAULT_IPXE_ROOTS) {
        const f = await fileUnder(root, segs.slice(1));
        if (f) return f;
      }
      return null;
    }
    return fileUnder(this.opts.staticRoot, segs);
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
