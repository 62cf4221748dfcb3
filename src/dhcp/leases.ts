// DHCP subnets and leases: the shapes and the address arithmetic. Leases live in PostgreSQL (one row
// per address ever handed out; its state says whether it is held — bound, declined — or free
// again — released, expired) and, for the subnets this process serves, in the lease engine's
// memory (lease-engine.ts, docs/decisions/0008-dhcp-lease-engine.md).

export interface Pool { first: string; last: string }
export interface Subnet {
  id: number; name: string; cidr: string; server_address: string | null; proxy: boolean; pools: Pool[];
  routers: string[]; dns: string[]; ntp: string[]; domain: string | null; lease_time_s: number;
  offer_hold_s: number; probe: boolean; probe_timeout_ms: number; options: Record<string, unknown>; enabled: boolean;
}
export interface Client { mac: string; clientId?: string; hostname?: string }

export function ipToInt(ip: string): number {
  let n = 0, octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) { n = n * 256 + octet; octet = 0; } else octet = octet * 10 + (c - 48);
  }
  return n * 256 + octet;
}
export const intToIp = (n: number) => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

export function inCidr(cidr: string, ip: string): boolean {
  const [net, bits] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((ipToInt(net) & mask) >>> 0);
}

const MASKS = Array.from({ length: 33 }, (_, bits) => intToIp(bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0));
export function netmask(cidr: string): string {
  return MASKS[Number(cidr.slice(cidr.indexOf('/') + 1))];
}

const SUBNET_COLUMNS = `id, name, cidr::text, host(server_address) AS server_address, proxy, pools, routers::text[] AS routers,
  dns::text[] AS dns, ntp::text[] AS ntp, domain, lease_time_s, offer_hold_s, probe, probe_timeout_ms, options, enabled`;

const clean = (s: any): Subnet => ({ ...s, routers: s.routers.map(stripMask), dns: s.dns.map(stripMask), ntp: s.ntp.map(stripMask) });
const stripMask = (a: string) => a.replace(/\/32$/, '');

export const SUBNET_SELECT = `SELECT ${SUBNET_COLUMNS} FROM subnets WHERE enabled ORDER BY id`;
export const cleanSubnet = clean;
