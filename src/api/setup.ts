// First-run setup (docs/ui.md "First-run setup"): while the system is empty — setup never
// completed, no DHCP subnet, no managed node — the web UI offers a wizard that sets the admin
// network (a DHCP subnet with its gateway and pool), the cluster's domain, and the administrator's
// own password. Proof of being the operator is the setup code: the admin password the server
// printed at its first start (or FULCRUM_ADMIN_PASSWORD). One transaction: bad input stores nothing.
import type { FastifyInstance } from 'fastify';
import { Type as T } from 'typebox';
import type { Store, Sql } from '../store/db.js';
import { conflict, invalid, FulcrumError } from '../model/errors.js';
import { emit } from '../events/outbox.js';
import { hashPassword, issueToken, verifyPassword } from '../auth/auth.js';
import { PROVISIONING_RESOURCES } from './provisioning-resources.js';

const IPv4 = T.String({ format: 'ipv4' });
export const SetupBody = T.Object({
  setup_code: T.String({ minLength: 1, description: 'the admin password printed at first start (or FULCRUM_ADMIN_PASSWORD)' }),
  admin_password: T.String({ minLength: 10, maxLength: 200 }),
  domain: T.String({ pattern: '^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' }),
  network: T.Object({
    cidr: T.String({ pattern: '^\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+$' }),
    gateway: IPv4,
    pool_first: T.Optional(IPv4),
    pool_last: T.Optional(IPv4),
    dns: T.Optional(T.Array(IPv4, { maxItems: 8 })),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

export interface SetupStatus { needed: boolean; reason: string; domain: string | null }

const toInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** The subnet a CIDR names: its network and broadcast as integers; a clear error when it is not one. */
export function parseCidr(cidr: string): { net: number; bcast: number; prefix: number } {
  const [ip, bits] = cidr.split('/');
  const prefix = Number(bits);
  if (!ip.split('.').every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255)) throw invalid('network.cidr', `network.cidr: ${cidr} is not an IPv4 address/prefix`);
  if (!(prefix >= 8 && prefix <= 30)) throw invalid('network.cidr', `network.cidr: prefix /${bits} must be between /8 and /30`);
  const size = 2 ** (32 - prefix);
  const addr = toInt(ip);
  const net = addr - (addr % size);
  if (net !== addr) throw invalid('network.cidr', `network.cidr: ${cidr} has host bits set; the network is ${toIp(net)}/${prefix}`);
  return { net, bcast: net + size - 1, prefix };
}

/** The DHCP pool: given, or the upper half of the subnet without the gateway. */
export function poolFor(cidr: string, gateway: string, first?: string, last?: string): { first: string; last: string } {
  const { net, bcast } = parseCidr(cidr);
  const gw = toInt(gateway);
  if (gw <= net || gw >= bcast) throw invalid('network.gateway', `network.gateway: ${gateway} is not a host address inside ${cidr}`);
  if (first || last) {
    if (!first || !last) throw invalid(first ? 'network.pool_last' : 'network.pool_first', 'network: give both pool_first and pool_last, or neither');
    const f = toInt(first), l = toInt(last);
    if (f <= net || l >= bcast || f > l) throw invalid('network.pool_first', `network: pool ${first}-${last} must lie inside ${cidr}, first before last`);
    if (gw >= f && gw <= l) throw invalid('network.gateway', `network.gateway: ${gateway} is inside the pool ${first}-${last}`);
    return { first, last };
  }
  let f = net + Math.ceil((bcast - net) / 2);
  let l = bcast - 1;
  if (gw >= f) { if (gw === l) l -= 1; else if (gw === f) f += 1; else l = gw - 1; }
  if (f > l) throw invalid('network.cidr', `network.cidr: ${cidr} is too small for a pool beside the gateway`);
  return { first: toIp(f), last: toIp(l) };
}

export async function setupStatus(sql: Sql): Promise<SetupStatus> {
  const r = (await sql.query(
    `SELECT (SELECT value FROM settings WHERE key = 'setup') AS setup, (SELECT value FROM settings WHERE key = 'domain') AS domain,
            EXISTS (SELECT 1 FROM subnets) AS subnets, EXISTS (SELECT 1 FROM nodes WHERE NOT service) AS nodes`)).rows[0];
  const domain = typeof r.domain === 'string' ? r.domain : null;
  if (r.setup) return { needed: false, reason: 'setup completed', domain };
  if (r.subnets || r.nodes) return { needed: false, reason: 'the system is already configured (it has subnets or nodes)', domain };
  return { needed: true, reason: 'no administrator password, network or domain has been set yet', domain };
}

export function registerSetupApi(app: FastifyInstance, store: Store): void {
  app.get('/api/v1/setup', { config: { public: true } }, async () => setupStatus(store));

  app.post('/api/v1/setup', { config: { public: true }, schema: { body: SetupBody } }, async (req, reply) => {
    const b = req.body as { setup_code: string; admin_password: string; domain: string; network: { cidr: string; gateway: string; pool_first?: string; pool_last?: string; dns?: string[] } };
    const pool = poolFor(b.network.cidr, b.network.gateway, b.network.pool_first, b.network.pool_last);
    if (b.admin_password === b.setup_code) throw invalid('admin_password', 'admin_password: choose a new password, not the setup code');
    // Checked before any lock is taken: a stream of wrong codes holds nothing.
    const before = await setupStatus(store);
    if (!before.needed) throw conflict(`setup is not available: ${before.reason}; log in instead`);
    const admin = await store.query(`SELECT id, password_hash FROM users WHERE name = 'admin'`);
    if (!admin.rowCount || !(await verifyPassword(b.setup_code, admin.rows[0].password_hash))) {
      throw new FulcrumError('unauthorized', 'setup_code: wrong setup code; it is the admin password the server printed at its first start (or FULCRUM_ADMIN_PASSWORD)', 'setup_code');
    }
    const hash = await hashPassword(b.admin_password);
    const token = await store.tx(async (tx) => {
      // The settings table is the lock: a second wizard racing this one waits here, then sees it done.
      await tx.query(`LOCK TABLE settings IN SHARE ROW EXCLUSIVE MODE`);
      const st = await setupStatus(tx);
      if (!st.needed) throw conflict(`setup is not available: ${st.reason}; log in instead`);
      const now = await tx.query(`SELECT password_hash FROM users WHERE id = $1`, [admin.rows[0].id]);
      if (now.rows[0]?.password_hash !== admin.rows[0].password_hash) throw conflict('the admin password changed while setting up; use the new one as the setup code');
      await tx.query(`UPDATE users SET password_hash = $2, version = version + 1, updated_at = now() WHERE id = $1`, [admin.rows[0].id, hash]);
      // Old tokens issued with the setup code stop working.
      await tx.query(`DELETE FROM tokens WHERE user_id = $1`, [admin.rows[0].id]);
      const subnets = PROVISIONING_RESOURCES.find((r) => r.kind === 'subnets')!;
      await subnets.create!.run(tx, {
        name: 'admin', cidr: b.network.cidr, routers: [b.network.gateway], pools: [pool], domain: b.domain,
        ...(b.network.dns?.length ? { dns: b.network.dns } : {}),
      });
      await tx.query(`INSERT INTO settings (key, value) VALUES ('domain', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [JSON.stringify(b.domain)]);
      await tx.query(`INSERT INTO settings (key, value) VALUES ('setup', $1)`, [JSON.stringify({ completed_at: new Date().toISOString(), network: b.network.cidr, domain: b.domain })]);
      await emit(tx, { type: 'setup.completed', object_kind: 'setup', payload: { domain: b.domain, network: b.network.cidr, pool } });
      return issueToken(tx, { user_id: admin.rows[0].id }, 'setup');
    });
    return reply.status(201).send({ user: 'admin', token, domain: b.domain, subnet: 'admin', pool });
  });
}
