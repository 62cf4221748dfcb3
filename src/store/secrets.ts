// Secrets at rest (BMC passwords and the like): sealed with AES-256-GCM before they reach the
// database, so a dump or a replica's log shows ciphertext only. The key is FULCRUM_SECRET_KEY
// (32 bytes, base64) when set — every replica of one cluster must share it — otherwise
// <data dir>/secret.key, created on first use (mode 0600). docs/decisions/0010-secrets-at-rest.md.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Sql } from './db.js';

const VERSION = 1;

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new TypeError(`secret key must be 32 bytes, not ${key.length}`);
    this.#key = key;
  }

  /** The key from FULCRUM_SECRET_KEY, or the data directory's key file (made when missing). */
  static forDataDir(dataDir: string, env: NodeJS.ProcessEnv = process.env): SecretBox {
    const fromEnv = env.FULCRUM_SECRET_KEY;
    if (fromEnv) {
      const key = Buffer.from(fromEnv, 'base64');
      if (key.length !== 32) throw new TypeError(`FULCRUM_SECRET_KEY must be 32 bytes in base64 (44 characters), it decodes to ${key.length} bytes`);
      return new SecretBox(key);
    }
    const file = path.join(dataDir, 'secret.key');
    fs.mkdirSync(dataDir, { recursive: true });
    try {
      fs.writeFileSync(file, crypto.randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new TypeError(`${file} must hold 32 bytes in base64; it holds ${key.length}`);
    return new SecretBox(key);
  }

  /** Identifies the key without revealing it: HMAC-SHA256(key, a fixed label). */
  fingerprint(): Buffer {
    return crypto.createHmac('sha256', this.#key).update('fulcrum secret key check v1').digest();
  }

  /**
   * Make sure this key is the cluster's: the first replica to use a key records its fingerprint;
   * a replica with another key is refused, saying so (secret_key_check, migration 010).
   */
  async checkClusterKey(sql: Sql): Promise<void> {
    const mine = this.fingerprint();
    await sql.query('INSERT INTO secret_key_check (mac) VALUES ($1) ON CONFLICT (id) DO NOTHING', [mine]);
    const stored = (await sql.query('SELECT mac FROM secret_key_check')).rows[0].mac as Buffer;
    if (!stored.equals(mine)) {
      throw new Error('this server\'s secret key is not the one the cluster seals secrets with: give every replica the same FULCRUM_SECRET_KEY (or the same secret.key file)');
    }
  }

  /** version(1) | iv(12) | tag(16) | ciphertext; `context` (e.g. "node 12 power") is bound as associated data. */
  seal(value: unknown, context: string): Buffer {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', this.#key, iv);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, c.getAuthTag(), body]);
  }

  open<T = unknown>(sealed: Buffer, context: string): T {
    if (sealed.length < 29 || sealed[0] !== VERSION) throw new Error(`${context}: sealed secret has an unknown format`);
    const d = crypto.createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(1, 13));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(sealed.subarray(13, 29));
    try {
      return JSON.parse(Buffer.concat([d.update(sealed.subarray(29)), d.final()]).toString('utf8')) as T;
    } catch {
      throw new Error(`${context}: the stored secret cannot be opened with this server's key (FULCRUM_SECRET_KEY or secret.key differs from the one that sealed it)`);
    }
  }
}
