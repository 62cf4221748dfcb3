// The web UI's built assets (ui/, built by `npm run build` into dist/ui) served at `/`.
// Hashed files under /assets/ are immutable and cached for a year; index.html is revalidated on
// every load. Any other path that is not a file and not an API, boot, metrics or health path gets
// index.html, so client routes (/nodes/42) survive a reload. Everything is read into memory at
// start (a few hundred kB) and gzipped once, when first asked for.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
  '.woff2': 'font/woff2', '.txt': 'text/plain; charset=utf-8', '.map': 'application/json',
};

/** Paths that belong to the server, never to the UI: unknown ones there are a JSON 404, not index.html. */
export const SERVER_PREFIXES = ['/api/', '/boot/', '/metrics', '/healthz'];

// The UI talks only to this origin; no inline scripts; no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const ASSET_EXT = /\.(js|mjs|css|map|png|jpe?g|gif|svg|ico|webp|woff2?|ttf|json|txt|webmanifest)$/i;

interface Asset { body: Buffer; compressible: boolean; gzip?: Buffer; type: string; immutable: boolean }

function loadAssets(root: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const walk = (dir: string, depth: number) => {
    if (depth > 8) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) { walk(p, depth + 1); continue; }
      const rel = '/' + path.relative(root, p).split(path.sep).join('/');
      const ext = path.extname(e.name);
      const body = fs.readFileSync(p);
      const text = /^(text|application\/json|image\/svg)/.test(TYPES[ext] ?? '');
      out.set(rel, { body, type: TYPES[ext] ?? 'application/octet-stream', compressible: text && body.length > 1024, immutable: rel.startsWith('/assets/') });
    }
  };
  walk(root, 0);
  return out;
}

export function isServerPath(url: string): boolean {
  return SERVER_PREFIXES.some((p) => (p.endsWith('/') ? url.startsWith(p) || url === p.slice(0, -1) : url === p || url.startsWith(`${p}/`)));
}

/** Register `/` and the catch-all for the UI built in `root` (dist/ui). */
export function registerUi(app: FastifyInstance, root: string): void {
  let assets: Map<string, Asset> | null = null;
  try { if (fs.existsSync(path.join(root, 'index.html'))) assets = loadAssets(root); } catch { assets = null; }

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    reply.header('content-type', a.type);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    reply.header('vary', 'accept-encoding');
    if (a.type.startsWith('text/html')) { reply.header('content-security-policy', CSP); reply.header('referrer-policy', 'no-referrer'); }
    const gz = a.compressible && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (gz) a.gzip ??= zlib.gzipSync(a.body, { level: 9 }); // once, on first use: servers that never serve the UI never pay for it
    if (gz) reply.header('content-encoding', 'gzip');
    return reply.send(gz ? a.gzip : a.body);
  };

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    let url: string;
    try { url = decodeURIComponent(req.url.split('?')[0] ?? '/'); } catch { return reply.status(400).type('text/plain; charset=utf-8').send('bad path: invalid percent-encoding\n'); }
    if (isServerPath(url)) return reply.status(404).send({ error: 'not-found', message: `no such endpoint: ${req.method} ${url}` });
    if (!assets) {
      return reply.status(503).type('text/plain; charset=utf-8')
        .send('The web UI is not built. Run `npm run build` (it builds ui/ into dist/ui) and restart the server.\n');
    }
    const file = assets.get(url);
    if (file && url !== '/index.html') return send(req, reply, file);
    // A missing asset (a stale /assets/x.js, /favicon.ico) is a 404, not the app; /nodes/n1.example.internal is a route.
    if (url.startsWith('/assets/') || ASSET_EXT.test(url)) return reply.status(404).type('text/plain; charset=utf-8').send(`not found: ${url}\n`);
    return send(req, reply, assets.get('/index.html')!);
  };
  app.route({ method: ['GET', 'HEAD'], url: '/', config: { public: true }, schema: { hide: true } as any, handler });
  app.route({ method: ['GET', 'HEAD'], url: '/*', config: { public: true }, schema: { hide: true } as any, handler });
}
