// HTTP boot serving from the boot tree, with Range (RFC 9110 §14) for large images. Mounted at
// /boot on the API port and, when a boot address is configured, on its own listener there.
// Firmware cannot authenticate, so this path is public and read-only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { BootPathError, type FileTree } from './tree.js';
import { bootFiles } from '../metrics.js';

/** Parse a single-range `bytes=` header against `size`: [start, end] inclusive, 'unsatisfiable', or null (serve whole). */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return [start, end];
}

export async function serveBoot(tree: FileTree, req: IncomingMessage, res: ServerResponse, pathInTree: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  let file;
  try {
    file = await tree.resolve({ path: decodeURIComponent(pathInTree), remote: req.socket.remoteAddress ?? '', protocol: 'http' });
  } catch (err) {
    if (err instanceof BootPathError || err instanceof URIError) {
      bootFiles.inc({ protocol: 'http', result: 'hostile-path' });
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad path: ${(err as Error).message}\n`);
      return;
    }
    throw err;
  }
  if (!file) {
    bootFiles.inc({ protocol: 'http', result: 'not-found' });
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const range = parseRange(req.headers.range, file.size);
  const type = file.contentType ?? 'application/octet-stream';
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${file.size}` }).end();
    return;
  }
  const [start, end] = range ?? [0, file.size - 1];
  bootFiles.inc({ protocol: 'http', result: range ? 'partial' : 'ok' });
  const headers = { 'content-type': type, 'content-length': String(Math.max(0, end - start + 1)), 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
  if (range) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${file.size}` });
  else res.writeHead(200, headers);
  if (req.method === 'HEAD' || file.size === 0) { res.end(); return; }
  if (file.stream) {
    // pipeline: a read error (file removed, refused) ends the response instead of the process, and
    // a client that goes away closes the file.
    pipeline(file.stream(start, end) as NodeJS.ReadableStream & Readable, res, () => {});
    return;
  }
  res.end(await file.read(start, end));
}
