// The role graph as pure functions: parents of a role (requires, preceeds, and the owners of
// the attribs it wants), cycle detection with the cycle spelled out, cohorts.

export const FLAGS = ['implicit', 'cluster', 'service', 'discovery', 'bootstrap', 'destructive', 'milestone', 'powersave', 'abstract'] as const;
export type Flag = (typeof FLAGS)[number];

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

/** A cycle as a path in "needs" direction (a -> b: a needs b), first role repeated at the end; or null. */
export function findRoleCycle(parents: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>(); // 1 on the stack, 2 done
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    state.set(name, 1);
    stack.push(name);
    for (const p of parents.get(name) ?? []) {
      if (state.get(p) === 1) return [...stack.slice(stack.indexOf(p)), p];
      if (!state.has(p)) { const c = visit(p); if (c) return c; }
    }
    stack.pop();
    state.set(name, 2);
    return null;
  };
  for (const name of [...parents.keys()].sort()) {
    if (!state.has(name)) { const c = visit(name); if (c) return c; }
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
