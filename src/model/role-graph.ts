// The role graph as pure functions: parents of a role (requires, preceeds, and the owners of
// the attribs it wants), cycle detection with the cycle spelled out, cohorts.

export const FLAGS = ['implicit', 'cluster', 'service', 'discovery', 'bootstrap', 'destructive', 'milestone', 'powersave', 'abstract'] as const;
export type Flag = (typeof FLAGS)[number];
export const JIGS = ['noop', 'test', 'server', 'script', 'ssh', 'ansible'] as const;
export type Jig = (typeof JIGS)[number];

export interface RoleShape {
  name: string;
  requires: string[];
  preceeds: string[];
  wants_attribs: string[];
  provides: string[];
}

/** Parent role names of every role: requires, preceeds, and the owners of wanted attribs. */
export function roleParents(roles: RoleShape[], attribOwner: (attrib: string) => string | null | undefined): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of roles) {
    const owners = r.wants_attribs.map(attribOwner).filter((o): o is string => !!o && o !== r.name);
    m.set(r.name, [...new Set([...r.requires, ...r.preceeds, ...owners])]);
  }
  return m;
}

/**
 * The first cycle in a role graph (role -> the roles it needs), as a path in "needs" direction
 * with the first role repeated at the end, or null. Parents not in the graph are ignored.
 * Deterministic: input order.
 */
export function findRoleCycle(roles: Iterable<{ name: string; parents: string[] }>): string[] | null {
  const list = [...roles];
  const parents = new Map(list.map((r) => [r.name, r.parents]));
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'open');
    path.push(n);
    for (const p of parents.get(n)!) {
      const cycle = parents.has(p) ? visit(p) : null;
      if (cycle) return cycle;
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const r of list) {
    const cycle = visit(r.name);
    if (cycle) return cycle;
  }
  return null;
}

/** Cohort = 1 + the highest cohort among a role's parents; 0 without parents. The graph must be acyclic. */
export function cohorts(parents: Map<string, string[]>): Map<string, number> {
  const out = new Map<string, number>();
  const of = (name: string): number => {
    const known = out.get(name);
    if (known !== undefined) return known;
    const ps = (parents.get(name) ?? []).filter((p) => parents.has(p));
    const c = ps.length ? 1 + Math.max(...ps.map(of)) : 0;
    out.set(name, c);
    return c;
  };
  for (const name of parents.keys()) of(name);
  return out;
}
