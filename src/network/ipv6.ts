// IPv6 for networks (DESIGN.md §4): a network's v6prefix is an explicit /64 or `auto`. `auto` is the
// cluster's unique-local /48 (RFC 4193 §3.1: fd00::/8 with L=1, then a 40-bit random Global ID),
// chosen once and stored, followed by the network id as the 16-bit subnet id. A node's interface id
// is the last 64 bits of MD5 of its FQDN, so its address is stable and computable anywhere.
import crypto from 'node:crypto';
import type { Sql } from '../store/db.js';
import { formatIp, parseAddress } from './address.js';
import { invalid } from '../model/errors.js';

const ULA_SETTING = 'network.ula_prefix';

/** A ULA /48 from 40 random bits: `fdXX:XXXX:XXXX::/48`. */
export function ulaFromGlobalId(globalId: Buffer): string {
  if (globalId.length !== 5) throw new Error('an RFC 4193 Global ID is 40 bits');
  const v = (0xfdn << 120n) | (BigInt(`0x${globalId.toString('hex')}`) << 80n);
  return `${formatIp(6, v)}/48`;
}

/** The cluster's ULA /48: chosen at first use, then always the same (stored in settings). */
export async function clusterUla(sql: Sql): Promise<string> {
  await sql.query(`INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
    [ULA_SETTING, JSON.stringify(ulaFromGlobalId(crypto.randomBytes(5)))]);
  return (await sql.query(`SELECT value FROM settings WHERE key = $1`, [ULA_SETTING])).rows[0].value as string;
}

/** The /64 of an `auto` network: the cluster /48 plus the network id as subnet id. */
export function autoPrefix(ula48: string, networkId: number): string {
  const a = parseAddress(ula48);
  if (!a || a.family !== 6 || a.prefix !== 48) throw new Error(`not an IPv6 /48: ${ula48}`);
  if (!Number.isInteger(networkId) || networkId < 0 || networkId > 0xffff) throw new Error(`network id ${networkId} does not fit a 16-bit subnet id`);
  return `${formatIp(6, a.value | (BigInt(networkId) << 64n))}/64`;
}

/** Last 64 bits of MD5(FQDN) (lower-cased, no trailing dot). */
export function interfaceId(fqdn: string): bigint {
  const digest = crypto.createHash('md5').update(fqdn.toLowerCase().replace(/\.$/, '')).digest();
  return BigInt(`0x${digest.subarray(8).toString('hex')}`);
}

/** The node's address in a /64: prefix + interface id, as `addr/64`. */
export function nodeAddress6(prefix64: string, fqdn: string): string {
  const p = parseAddress(prefix64);
  if (!p || p.family !== 6 || p.prefix !== 64) throw new Error(`not an IPv6 /64: ${prefix64}`);
  return `${formatIp(6, (p.value & ~((1n << 64n) - 1n)) | interfaceId(fqdn))}/64`;
}

/** Check a v6prefix as given by an operator: null, `auto`, or a /64 (normalized to its network). */
export function checkV6Prefix(v: string | null | undefined, field = 'v6prefix'): string | null {
  if (v === null || v === undefined || v === '') return null;
  if (v === 'auto') return 'auto';
  const a = parseAddress(v);
  if (!a || a.family !== 6 || a.prefix !== 64 || !v.includes('/')) throw invalid(field, `v6prefix ${JSON.stringify(v)} must be "auto" or an IPv6 /64 such as fd00:1:2:3::/64`);
  return `${formatIp(6, a.value & ~((1n << 64n) - 1n))}/64`;
}

/** The /64 a network uses, or null when it has no IPv6. */
export async function networkPrefix6(sql: Sql, network: { id: number; v6prefix: string | null }): Promise<string | null> {
  if (!network.v6prefix) return null;
  if (network.v6prefix !== 'auto') return network.v6prefix;
  return autoPrefix(await clusterUla(sql), network.id);
}
