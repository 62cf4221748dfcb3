// A real `fulcrum server` for integration tests, in this process, on a free loopback port.
// Store mode from FULCRUM_TEST_STORE: `embedded` (the server starts its own PostgreSQL under its
// data dir) or `external` (default: DATABASE_URL to a fresh database on a separately started server).
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';
import { freshDatabaseUrl } from './db.js';

export type StoreMode = 'embedded' | 'external';
export const storeMode = (): StoreMode => (process.env.FULCRUM_TEST_STORE === 'embedded' ? 'embedded' : 'external');

export interface ApiResponse { status: number; body: any; headers: Headers }

/** One JSON request to a Fulcrum server (bounded at 30 s); the body parsed when it is JSON. */
export async function httpJson(base: string, token: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const res = await fetch(base + p, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

export interface TestServer {
  server: RunningServer;
  url: string;
  token: string;
  dataDir: string;
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  close(): Promise<void>;
}

export const ADMIN_PASSWORD = 'test-admin-password';

export async function startTestServer(opts: { mode?: StoreMode; databaseUrl?: string; annealer?: ServerOptions['annealer']; log?: (m: string) => void } = {}): Promise<TestServer> {
  const mode = opts.mode ?? storeMode();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-test-'));
  process.env.FULCRUM_ADMIN_PASSWORD = ADMIN_PASSWORD;
  const databaseUrl = mode === 'external' ? (opts.databaseUrl ?? await freshDatabaseUrl()) : undefined;
  const server = await startServer({ dataDir, listen: '127.0.0.1:0', databaseUrl, log: opts.log, annealer: opts.annealer });
  const api = (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => httpJson(server.url, token, method, p, body, headers);
  let token = '';
  const login = await api('POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD });
  if (login.status !== 200) throw new Error(`test login failed: ${login.status} ${JSON.stringify(login.body)}`);
  token = login.body.token;
  return {
    server, url: server.url, token, dataDir, api,
    async close() {
      await server.close();
      await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** Poll `check` until it returns a truthy value; bounded by `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `p`, or `fallback` after `ms` (the timer is cleared either way, so it never holds the process). */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => { timer = setTimeout(() => r(fallback), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

export function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}
