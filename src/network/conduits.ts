// Conduits (DESIGN.md §4): a network names its interfaces logically, by speed and order, and each
// node resolves that against its own NICs. Grammar (docs/networks.md "Conduits"):
//   conduit := member ("," member)*          several members form a bond (needs use_team)
//   member  := "raw:" ifname                 that interface by name
//            | [sign] speed index            the index-th NIC (from 0) matching the speed
//   sign    := "+" (this speed or faster) | "-" (this or slower) | "?" (any speed, this one first)
//   speed   := digits ("m" | "g")            100m, 1g, 10g, 25g, 40g, 100g ...
// NICs are ordered by PCI path, then MAC, so the order is the same on every boot.
import { invalid, FulcrumError } from '../model/errors.js';

export type Sign = '' | '+' | '-' | '?';
export type Member = { kind: 'raw'; ifname: string; text: string } | { kind: 'speed'; sign: Sign; mbps: number; speed: string; index: number; text: string };

/** A NIC as the agent reports it in the node inventory (src/agent/fulcrum-agent.sh). */
export interface Nic { name: string; mac: string; speed_mbps?: number; pci_path?: string; driver?: string; link?: boolean }

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;
const SPEED_MEMBER = /^([+?-]?)(\d+)([mg])(\d+)$/;

export function parseConduit(text: string, field = 'conduit'): Member[] {
  if (typeof text !== 'string' || text.trim() === '') throw invalid(field, 'conduit is empty; give e.g. "1g0", "10g0,10g1" or "raw:eth3"');
  const members = text.split(',').map((raw, i): Member => {
    const t = raw.trim().toLowerCase();
    if (t.startsWith('raw:')) {
      const ifname = raw.trim().slice(4);
      if (!IFNAME.test(ifname)) throw invalid(field, `conduit ${JSON.stringify(text)}: member ${i + 1} "${raw.trim()}" is not a valid interface name`);
      return { kind: 'raw', ifname, text: `raw:${ifname}` };
    }
    const m = SPEED_MEMBER.exec(t);
    if (!m) throw invalid(field, `conduit ${JSON.stringify(text)}: member ${i + 1} "${raw.trim()}" is neither [+|-|?]<speed><index> (like 1g0, +10g1) nor raw:<ifname>`);
    const mbps = Number(m[2]) * (m[3] === 'g' ? 1000 : 1);
    if (mbps <= 0) throw invalid(field, `conduit ${JSON.stringify(text)}: member "${raw.trim()}" has speed 0`);
    return { kind: 'speed', sign: m[1] as Sign, mbps, speed: `${m[2]}${m[3]}`, index: Number(m[4]), text: `${m[1]}${m[2]}${m[3]}${Number(m[4])}` };
  });
  const first = members[0];
  for (const m of members.slice(1)) {
    if (m.kind !== first.kind) throw invalid(field, `conduit ${JSON.stringify(text)}: do not mix raw: members with speed members`);
    if (m.kind === 'speed' && first.kind === 'speed' && (m.sign !== first.sign || m.mbps !== first.mbps)) {
      throw invalid(field, `conduit ${JSON.stringify(text)}: every member of a bond must have the same speed and sign ("${first.text}" vs "${m.text}")`);
    }
  }
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.text)) throw invalid(field, `conduit ${JSON.stringify(text)}: member "${m.text}" appears twice`);
    seen.add(m.text);
  }
  return members;
}

/** Canonical text of a conduit (lower case, no spaces). */
export const normalizeConduit = (text: string) => parseConduit(text).map((m) => m.text).join(',');

export interface ConduitSettings { name: string; conduit: string; use_team: boolean; use_vlan: boolean; vlan: number }

/** Rules for one network's conduit: a bond needs use_team; a VLAN tag is 1-4094. */
export function checkNetworkConduit(n: ConduitSettings): void {
  const members = parseConduit(n.conduit);
  if (members.length > 1 && !n.use_team) {
    throw invalid('use_team', `network ${n.name}: conduit "${n.conduit}" has ${members.length} members (a bond); set use_team: true or name one interface`);
  }
  if (n.use_vlan && !(Number.isInteger(n.vlan) && n.vlan >= 1 && n.vlan <= 4094)) {
    throw invalid('vlan', `network ${n.name}: vlan ${n.vlan} is outside 1-4094 (use_vlan is set)`);
  }
}

/**
 * Conduits of two networks either are the same set of members or share none: one physical
 * interface cannot be a bond for one network and a plain interface (or another bond) for another.
 */
export function checkConduitOverlap(a: { name: string; conduit: string }, b: { name: string; conduit: string }): void {
  const sa = new Set(parseConduit(a.conduit).map((m) => m.text));
  const sb = new Set(parseConduit(b.conduit).map((m) => m.text));
  const shared = [...sa].filter((x) => sb.has(x));
  if (shared.length === 0) return;
  if (sa.size === sb.size && shared.length === sa.size) return;
  throw invalid('conduit', `conduit "${a.conduit}" of network ${a.name} partly overlaps conduit "${b.conduit}" of network ${b.name} (shared: ${shared.join(', ')}); conduits must be identical or disjoint`);
}

/** NICs in conduit order: by PCI path, then MAC. */
export function orderNics(nics: Nic[]): Nic[] {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return [...nics].sort((a, b) => cmp(a.pci_path ?? '', b.pci_path ?? '') || cmp(a.mac.toLowerCase(), b.mac.toLowerCase()));
}

/** The NICs a speed member can choose from, in the order its index counts. */
function candidates(m: Extract<Member, { kind: 'speed' }>, nics: Nic[]): Nic[] {
  const speed = (n: Nic) => (typeof n.speed_mbps === 'number' && n.speed_mbps > 0 ? n.speed_mbps : null);
  switch (m.sign) {
    case '': return nics.filter((n) => speed(n) === m.mbps);
    case '+': return nics.filter((n) => speed(n) !== null && speed(n)! >= m.mbps);
    case '-': return nics.filter((n) => speed(n) !== null && speed(n)! <= m.mbps);
    case '?': return [...nics.filter((n) => speed(n) === m.mbps), ...nics.filter((n) => speed(n) !== m.mbps)];
  }
}

/** Interfaces Fulcrum itself makes (bond-*, br-*, VLAN sub-interfaces `x.N`): never conduit members. */
const OWN = /^(bond-|br-)|\.\d+$/;

/**
 * The NICs a conduit counts: physical ones. When any NIC has a PCI path, only those count (bond0,
 * bridges and tunnels have none); without any (namespace nodes: veths), all do. Interfaces made by
 * network roles never count, so a node's conduits resolve the same before and after its roles ran.
 */
export function conduitNics(nics: Nic[]): Nic[] {
  const candidates = nics.filter((n) => n.name !== 'lo' && !OWN.test(n.name));
  const physical = candidates.filter((n) => (n.pci_path ?? '').includes('/pci'));
  return orderNics(physical.length ? physical : candidates);
}

/** Resolve a conduit against a node's NICs: the interface names, in member order. */
export function resolveConduit(conduit: string, nics: Nic[], node = 'the node'): string[] {
  const ordered = conduitNics(nics);
  const names = parseConduit(conduit).map((m) => {
    if (m.kind === 'raw') {
      if (!ordered.some((n) => n.name === m.ifname)) throw new FulcrumError('conflict', `conduit "${conduit}" on ${node}: there is no interface ${m.ifname} (has ${ordered.map((n) => n.name).join(', ') || 'no NICs in its inventory'})`);
      return m.ifname;
    }
    const c = candidates(m, ordered);
    if (m.index >= c.length) {
      const what = { '': 'of', '+': 'of at least', '-': 'of at most', '?': 'of any speed, preferring' }[m.sign];
      throw new FulcrumError('conflict', `conduit "${conduit}" on ${node}: member ${m.text} needs NIC #${m.index} ${what} ${m.speed}, but there ${c.length === 1 ? 'is' : 'are'} only ${c.length} (${c.map((n) => `${n.name} ${n.speed_mbps ?? '?'} Mb/s`).join(', ') || 'none'})`);
    }
    return c[m.index].name;
  });
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new FulcrumError('conflict', `conduit "${conduit}" on ${node}: two members resolve to the same interface ${dup}`);
  return names;
}
