// Name filters (docs/dns.md): a matcher over a node's address (network, category, range) and the node
// (deployment, bound role, attrib value) and a Liquid name template. Every (node, address) a filter
// matches yields an A or AAAA record at the rendered name, and a PTR back to it; several nodes
// rendering one name make a round-robin pool. Pure: plain data in, records and problems out.
import type { Template } from 'liquidjs';
import { sandboxedLiquid, templateError as parseError } from '../content/sandbox.js';
import { canonicalName, formatRdata, nameLabels, parseRdata, TYPE, TYPE_NAME, type Rdata } from './codec.js';
import type { Rr, ZoneInfo } from './answers.js';

export interface NodeFacts { id: number; name: string; deployment: string; roles: string[]; hints: Record<string, unknown> }
export interface AddressFacts { node_id: number; address: string; network: string | null; category: string | null; range: string | null; source: 'allocation' | 'reservation' | 'lease' }
export interface FilterMatch { network?: string; category?: string; range?: string; deployment?: string; role?: string; attrib?: { name: string; value: unknown }; family?: 4 | 6 }
export interface NameFilter { id: number; name: string; zone: string; match: FilterMatch; template: string; ptr: boolean; ttl: number | null; enabled: boolean }
export interface StaticRecord { id: number; zone: string; name: string; type: string; ttl: number | null; data: string }
export interface ZoneRow {
  id: number; name: string; kind: 'forward' | 'reverse'; ttl: number; primary_ns: string; admin_email: string; nameservers: string[]; ns_addresses: string[];
  refresh: number; retry: number; expire: number; minimum: number; serial: number;
}

/** Name templates: small, rendered once per (node, address) on every rebuild. */
const liquid = sandboxedLiquid({ parseLimit: 1e5, renderLimit: 100, memoryLimit: 1e7 });

/** The error message when `template` is not valid Liquid, else null. */
export function templateError(template: string): string | null {
  return parseError(liquid, template);
}

export const MATCH_KEYS = ['network', 'category', 'range', 'deployment', 'role', 'attrib', 'family'] as const;

/** Operator-readable problems with a match object (unknown keys, wrong shapes); empty when fine. */
export function matchErrors(m: unknown): string[] {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return ['match must be an object'];
  const out: string[] = [];
  for (const [k, v] of Object.entries(m)) {
    if (!(MATCH_KEYS as readonly string[]).includes(k)) out.push(`match.${k}: unknown key (keys: ${MATCH_KEYS.join(', ')})`);
    else if (k === 'attrib') { if (typeof v !== 'object' || v === null || typeof (v as any).name !== 'string' || !('value' in v)) out.push('match.attrib must be {"name": "<attrib>", "value": <value>}'); }
    else if (k === 'family') { if (v !== 4 && v !== 6) out.push('match.family must be 4 or 6'); }
    else if (typeof v !== 'string' || !v) out.push(`match.${k} must be a non-empty string`);
  }
  return out;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function matches(m: FilterMatch, n: NodeFacts, a: AddressFacts): boolean {
  if (m.network !== undefined && a.network !== m.network) return false;
  if (m.category !== undefined && a.category !== m.category) return false;
  if (m.range !== undefined && a.range !== m.range) return false;
  if (m.deployment !== undefined && n.deployment !== m.deployment) return false;
  if (m.role !== undefined && !n.roles.includes(m.role)) return false;
  if (m.attrib !== undefined && !sameJson(n.hints[m.attrib.name], m.attrib.value)) return false;
  if (m.family !== undefined && (a.address.includes(':') ? 6 : 4) !== m.family) return false;
  return true;
}

/** in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5). */
export function reverseName(address: string): string {
  if (!address.includes(':')) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  const hex = ipv6Hex(address);
  return `${hex.split('').reverse().join('.')}.ip6.arpa`;
}

function ipv6Hex(address: string): string {
  const [head, tail] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('').toLowerCase();
}

/** The reverse zone name of an IPv4 or IPv6 CIDR on a label boundary (/8, /16, /24; a multiple of 4 for v6). */
export function reverseZoneOf(cidr: string): string {
  const [addr, lenText] = cidr.split('/');
  const len = Number(lenText);
  if (!addr.includes(':')) {
    if (![8, 16, 24].includes(len)) throw new Error(`${cidr}: an IPv4 reverse zone needs a /8, /16 or /24 prefix (RFC 2317 classless delegation is not supported)`);
    return `${addr.split('.').slice(0, len / 8).reverse().join('.')}.in-addr.arpa`;
  }
  if (!(len > 0 && len <= 124 && len % 4 === 0)) throw new Error(`${cidr}: an IPv6 reverse zone needs a prefix length that is a multiple of 4`);
  return `${ipv6Hex(addr).slice(0, len / 4).split('').reverse().join('.')}.ip6.arpa`;
}

/** A rendered or typed name made absolute in `zone` (a trailing dot means already absolute). */
export function absoluteName(name: string, zone: string): string {
  const n = name.trim();
  if (n === '@') return zone;
  if (n.endsWith('.')) return canonicalName(n);
  const c = canonicalName(n);
  return c === zone || c.endsWith(`.${zone}`) ? c : `${c}.${zone}`;
}

export function zoneInfo(z: ZoneRow): ZoneInfo {
  return {
    name: z.name, ttl: z.ttl,
    soa: { mname: canonicalName(z.primary_ns), rname: canonicalName(z.admin_email), serial: Number(z.serial), refresh: z.refresh, retry: z.retry, expire: z.expire, minimum: z.minimum },
  };
}

export interface Computed {
  /** Records per zone name (SOA excluded). */
  byZone: Map<string, Rr[]>;
  problems: string[];
}

/** The records of every zone: zone NS and name server addresses, static records, filter output. */
export function computeRecords(zones: ZoneRow[], filters: NameFilter[], nodes: NodeFacts[], addresses: AddressFacts[], statics: StaticRecord[]): Computed {
  const byZone = new Map<string, Rr[]>(zones.map((z) => [z.name, []]));
  const problems: string[] = [];
  const zoneFor = (name: string): string | undefined => {
    for (let n = name; ; n = n.slice(n.indexOf('.') + 1)) { if (byZone.has(n)) return n; if (!n.includes('.')) return undefined; }
  };
  const put = (rr: Rr, quiet = false) => {
    const z = zoneFor(rr.name);
    if (z === undefined) { if (!quiet && problems.length < 100) problems.push(`${rr.name} ${TYPE_NAME[rr.type]} is in no served zone; dropped`); return; }
    byZone.get(z)!.push(rr);
  };
  for (const z of zones) {
    const nsNames = z.nameservers.length ? z.nameservers : [z.primary_ns];
    for (const ns of nsNames) put({ name: z.name, type: TYPE.NS, ttl: z.ttl, data: canonicalName(ns) });
    for (const a of z.ns_addresses) {
      const name = canonicalName(z.primary_ns);
      if (zoneFor(name) === z.name) put({ name, type: a.includes(':') ? TYPE.AAAA : TYPE.A, ttl: z.ttl, data: a });
    }
  }
  for (const s of statics) {
    try {
      const type = (TYPE as Record<string, number>)[s.type];
      const zone = zones.find((z) => z.name === s.zone);
      put({ name: s.name, type, ttl: s.ttl ?? zone?.ttl ?? 300, data: parseRdata(type, s.data) as Rdata });
    } catch (err) { if (problems.length < 100) problems.push(`record ${s.id} (${s.name} ${s.type}): ${(err as Error).message}`); }
  }
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  for (const f of filters) {
    if (!f.enabled) continue;
    let tpl: Template[];
    try { tpl = liquid.parse(f.template); } catch (err) { problems.push(`name filter ${f.name}: template: ${(err as Error).message.split('\n')[0]}`); continue; }
    const zone = zones.find((z) => z.name === f.zone);
    const ttl = f.ttl ?? zone?.ttl ?? 300;
    for (const a of addresses) {
      const n = nodeById.get(a.node_id);
      if (!n || !matches(f.match, n, a)) continue;
      const family = a.address.includes(':') ? 6 : 4;
      const ctx = {
        node: { id: n.id, name: n.name, short: n.name.split('.')[0], deployment: n.deployment, roles: n.roles, hints: n.hints },
        address: { ip: a.address, family, network: a.network, category: a.category, range: a.range, dashed: a.address.replace(/[.:]/g, '-') },
        zone: f.zone,
      };
      let rendered: string;
      try { rendered = (liquid.renderSync(tpl, ctx) as string).trim(); } catch (err) {
        if (problems.length < 100) problems.push(`name filter ${f.name}, node ${n.name}: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      if (!rendered) continue; // an empty name skips this node: templates can filter too
      const name = absoluteName(rendered, f.zone);
      try { nameLabels(name); } catch (err) {
        if (problems.length < 100) problems.push(`name filter ${f.name}, node ${n.name}: ${(err as Error).message}`);
        continue;
      }
      put({ name, type: family === 6 ? TYPE.AAAA : TYPE.A, ttl, data: family === 6 ? parseRdata(TYPE.AAAA, a.address) as string : a.address });
      if (f.ptr) put({ name: reverseName(a.address), type: TYPE.PTR, ttl, data: name }, true);
    }
  }
  for (const list of byZone.values()) list.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : x.type - y.type || (formatRdata(x.type, x.data) < formatRdata(y.type, y.data) ? -1 : 1)));
  return { byZone, problems };
}

/** One line per record, for hashing (serial bumps) and for listing. */
export function recordLine(rr: Rr): string {
  return `${rr.name}. ${rr.ttl} IN ${TYPE_NAME[rr.type]} ${formatRdata(rr.type, rr.data)}`;
}
