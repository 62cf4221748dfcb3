// Users, passwords and tokens. Passwords: scrypt (memory-hard, from node:crypto). Tokens: 32
// random bytes shown once; only their SHA-256 is stored. Agent tokens (node-scoped) live in the
// same table but carry a node instead of a user and only ever reach that node's data.
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import type { Sql, Store } from '../store/db.js';

const scrypt = promisify(crypto.scrypt) as (pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;
const PARAMS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const key = await scrypt(password, salt, 32, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, N, r, p, salt, key] = stored.split('$');
  if (alg !== 'scrypt') return false;
  const expected = Buffer.from(key, 'base64');
  const got = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(N), r: Number(r), p: Number(p), maxmem: PARAMS.maxmem });
  return crypto.timingSafeEqual(expected, got);
}

const digest = (token: string) => crypto.createHash('sha256').update(token).digest('hex');

export async function issueToken(sql: Sql, owner: { user_id?: number; node_id?: number }, name = ''): Promise<string> {
  const token = crypto.randomBytes(32).toString('base64url');
  await sql.query(`INSERT INTO tokens (user_id, node_id, name, hash) VALUES ($1, $2, $3, $4)`, [owner.user_id ?? null, owner.node_id ?? null, name, digest(token)]);
  return token;
}

export interface Principal { kind: 'user'; id: number; name: string; capabilities: string[] }

export async function authenticate(sql: Sql, token: string): Promise<Principal | null> {
  const r = await sql.query(
    `SELECT u.id, u.name, u.capabilities FROM tokens t JOIN users u ON u.id = t.user_id
      WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())`, [digest(token)]);
  return r.rowCount ? { kind: 'user', ...r.rows[0] } : null;
}

export function allowed(p: Principal, capability: string): boolean {
  const [kind] = capability.split(':');
  return p.capabilities.some((c) => c === '*' || c === capability || c === `${kind}:*`);
}

/**
 * The first administrator, created at first start: password from FULCRUM_ADMIN_PASSWORD, or
 * generated and returned once so the server can print it.
 */
export async function ensureAdmin(store: Store, password = process.env.FULCRUM_ADMIN_PASSWORD): Promise<{ created: boolean; password?: string }> {
  const any = await store.query('SELECT 1 FROM users LIMIT 1');
  if (any.rowCount) return { created: false };
  const pw = password || crypto.randomBytes(12).toString('base64url');
  const r = await store.query(`INSERT INTO users (name, password_hash, capabilities) VALUES ('admin', $1, '{*}') ON CONFLICT DO NOTHING`, [await hashPassword(pw)]);
  return { created: (r.rowCount ?? 0) > 0, password: password ? undefined : pw };
}

/** An agent's node token: it reaches that node's data and jobs, nothing else. */
/** The node a node token belongs to, and the token's id (a re-registration deletes the old agent's tokens). */
export async function authenticateNode(sql: Sql, token: string): Promise<{ id: number; name: string; token_id: number } | null> {
  const r = await sql.query(
    `SELECT n.id, n.name, t.id AS token_id FROM tokens t JOIN nodes n ON n.id = t.node_id WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())`, [digest(token)]);
  return r.rowCount ? r.rows[0] : null;
}
