// IPv4 and IPv6 addresses as numbers (BigInt), for range arithmetic: parse, format (RFC 5952 for
// IPv6), prefixes and host parts. Pure functions; the store keeps addresses as `inet`.
import net from 'node:net';

export interface Address { family: 4 | 6; value: bigint; prefix: number }

const BITS = { 4: 32, 6: 128 } as const;

/** `10.0.0.5`, `10.0.0.5/24`, `fd00::1/64`; the prefix defaults to the full length. Null when invalid. */
export function parseAddress(text: string): Address | null {
  const [ip, len, extra] = String(text).trim().split('/');
  if (extra !== undefined) return null;
  const kind = net.isIP(ip);
  if (kind === 0) return null;
  const family = kind as 4 | 6;
  const prefix = len === undefined ? BITS[family] : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= BITS[family])) return null;
  return { family, value: family === 4 ? v4ToBig(ip) : v6ToBig(ip), prefix };
}

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function v6ToBig(ip: string): bigint {
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = v4ToBig(v4[1]);
    text = text.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The address alone, without prefix length (IPv6 compressed per RFC 5952). */
export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups = [...Array(8)].map((_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let best = -1; let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export const formatAddress = (a: Address, withPrefix = true) => formatIp(a.family, a.value) + (withPrefix ? `/${a.prefix}` : '');

/** Netmask of a prefix as a number. */
export function mask(family: 4 | 6, prefix: number): bigint {
  const bits = BigInt(BITS[family]);
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

export const networkOf = (a: Address): bigint => a.value & mask(a.family, a.prefix);
export const hostPart = (a: Address): bigint => a.value & ~mask(a.family, a.prefix) & ((1n << BigInt(BITS[a.family])) - 1n);
export const broadcastOf = (a: Address): bigint => networkOf(a) | hostPart({ ...a, value: (1n << BigInt(BITS[a.family])) - 1n });
export const sameSubnet = (a: Address, b: Address) => a.family === b.family && a.prefix === b.prefix && networkOf(a) === networkOf(b);
/** Is `ip` (any prefix) inside the subnet of `net`? */
export const contains = (net: Address, ip: Address) => net.family === ip.family && (ip.value & mask(net.family, net.prefix)) === networkOf(net);
