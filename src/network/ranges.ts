// Range rules (docs/networks.md "Ranges"), after the original platform's network ranges: first and
// last are of one family and in one subnet, first comes before last, neither is the subnet or the
// broadcast address; lease times default (0 means the default) and are at least 60 s; the legacy
// names "host" (bound leases only) and "dhcp" (anonymous leases only) set the lease kinds when the
// caller leaves them out. Pure functions: the store calls them before writing anything.
import { invalid } from '../model/errors.js';
import { broadcastOf, formatAddress, networkOf, parseAddress, sameSubnet, type Address } from './address.js';

export interface RangeInput {
  name: string; first: string; last: string;
  allow_bound_leases?: boolean; allow_anon_leases?: boolean; bound_lease_time?: number; anon_lease_time?: number;
}

export interface CheckedRange {
  name: string; first: Address; last: Address;
  allow_bound_leases: boolean; allow_anon_leases: boolean; bound_lease_time: number; anon_lease_time: number;
}

export const BOUND_LEASE_DEFAULT = 2592000; // 30 days
export const ANON_LEASE_DEFAULT = 60;
const NAME = /^[a-z0-9][a-z0-9-]*$/;

export function checkRange(r: RangeInput, field = ''): CheckedRange {
  const label = `range ${JSON.stringify(r.name)}`;
  if (!NAME.test(r.name ?? '')) throw invalid(`${field}name`, `${label}: the name must match ${NAME}`);
  const first = parseAddress(r.first ?? '');
  const last = parseAddress(r.last ?? '');
  if (!first || !String(r.first).includes('/')) throw invalid(`${field}first`, `${label}: first ${JSON.stringify(r.first)} must be an address with its prefix length, like 10.0.0.10/24`);
  if (!last || !String(r.last).includes('/')) throw invalid(`${field}last`, `${label}: last ${JSON.stringify(r.last)} must be an address with its prefix length, like 10.0.0.200/24`);
  if (first.family !== last.family) throw invalid(`${field}last`, `${label}: ${r.first} and ${r.last} must be of the same type (both IPv4 or both IPv6)`);
  if (!sameSubnet(first, last)) throw invalid(`${field}last`, `${label}: ${r.first} and ${r.last} must be in the same subnet`);
  if (first.value > last.value) throw invalid(`${field}first`, `${label}: first ${r.first} comes after last ${r.last}`);
  const pointToPoint = first.family === 4 ? first.prefix >= 31 : first.prefix >= 127;
  if (!pointToPoint && first.value === networkOf(first)) throw invalid(`${field}first`, `${label}: ${r.first} is the subnet address and cannot be in a range`);
  if (first.family === 4 && !pointToPoint && last.value === broadcastOf(last)) throw invalid(`${field}last`, `${label}: ${r.last} is the broadcast address and cannot be in a range`);

  const legacy = r.name === 'host' ? { bound: true, anon: false } : r.name === 'dhcp' ? { bound: false, anon: true } : { bound: true, anon: false };
  const allow_bound_leases = r.allow_bound_leases ?? legacy.bound;
  const allow_anon_leases = r.allow_anon_leases ?? legacy.anon;
  if (!allow_bound_leases && !allow_anon_leases) throw invalid(`${field}allow_bound_leases`, `${label}: allows neither bound nor anonymous leases; set one of allow_bound_leases, allow_anon_leases`);
  const time = (v: number | undefined, dflt: number, key: string) => {
    if (v === undefined || v === 0) return dflt;
    if (!Number.isInteger(v) || v < 60) throw invalid(`${field}${key}`, `${label}: ${key} ${v} must be a whole number of seconds, at least 60 (0 for the default, ${dflt})`);
    return v;
  };
  return {
    name: r.name, first, last, allow_bound_leases, allow_anon_leases,
    bound_lease_time: time(r.bound_lease_time, BOUND_LEASE_DEFAULT, 'bound_lease_time'),
    anon_lease_time: time(r.anon_lease_time, ANON_LEASE_DEFAULT, 'anon_lease_time'),
  };
}

export const rangesOverlap = (a: { first: Address; last: Address }, b: { first: Address; last: Address }) =>
  a.first.family === b.first.family && a.first.value <= b.last.value && b.first.value <= a.last.value;

export const rangeText = (r: { first: Address; last: Address }) => `${formatAddress(r.first, false)}-${formatAddress(r.last, false)}`;
export const rangeSize = (r: { first: Address; last: Address }) => r.last.value - r.first.value + 1n;
