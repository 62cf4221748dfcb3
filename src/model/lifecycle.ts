// The noderole lifecycle (DESIGN.md §2 "NodeRole states and ripple rules") as data:
// a transition table you can print, and the ripple rules as pure functions over a
// plain in-memory graph. The store loads the neighbourhood, calls these, writes the result.

export const STATES = ['PROPOSED', 'TODO', 'TRANSITION', 'ACTIVE', 'ERROR', 'BLOCKED'] as const;
export type State = (typeof STATES)[number];

export type BlockedKind = 'parent-not-active' | 'error';
export interface BlockedBy { kind: BlockedKind; noderole: number }

/** Why a noderole changes state; each allowed transition names its causes. */
export type Cause =
  | 'commit'      // deployment commit of a PROPOSED noderole
  | 'propose'     // operator sends a noderole back to PROPOSED to edit it
  | 'start'       // the annealer starts a run
  | 'skip'        // a destructive role that already ran: ACTIVE without running (rule 6)
  | 'succeeded'   // the run finished well
  | 'failed'      // the run failed or timed out
  | 'requeue'     // the run was dropped (node not alive, server died): run again
  | 'poke'        // a wanted attrib or committed data changed: converge again
  | 'deactivate'  // the node is no longer alive
  | 'retry'       // operator or automatic retry of an ERROR
  | 'ripple';     // a parent changed state

/** from -> to -> the causes that may take that edge. Anything else is refused. */
export const TRANSITIONS: Record<State, Partial<Record<State, Cause[]>>> = {
  PROPOSED: { TODO: ['commit'], BLOCKED: ['commit', 'ripple'] },
  TODO: { TRANSITION: ['start'], ACTIVE: ['skip'], BLOCKED: ['ripple', 'deactivate'], PROPOSED: ['propose'], TODO: ['poke', 'deactivate'] },
  TRANSITION: {
    ACTIVE: ['succeeded'], ERROR: ['failed'], TODO: ['requeue', 'deactivate'],
    BLOCKED: ['succeeded', 'requeue', 'deactivate'],
  },
  ACTIVE: { TODO: ['poke', 'deactivate'], BLOCKED: ['ripple', 'poke', 'deactivate'], PROPOSED: ['propose'] },
  ERROR: { TODO: ['retry'], BLOCKED: ['ripple', 'retry', 'deactivate'], PROPOSED: ['propose'] },
  BLOCKED: { TODO: ['ripple', 'commit', 'retry'], BLOCKED: ['ripple', 'commit', 'deactivate', 'poke'], PROPOSED: ['propose'] },
};

export function canTransition(from: State, to: State, cause: Cause): boolean {
  return TRANSITIONS[from][to]?.includes(cause) ?? false;
}

export class TransitionError extends Error {
  constructor(readonly from: State, readonly to: State, readonly because: Cause, readonly noderole: number) {
    super(`noderole ${noderole} cannot go from ${from} to ${to} (${because}); allowed from ${from}: ${
      Object.entries(TRANSITIONS[from]).map(([s, c]) => `${s} (${c!.join(', ')})`).join('; ') || 'nothing'}`);
  }
}

/** The slice of the noderole graph a ripple needs. Edges here are hard edges only. */
export interface GraphNodeRole { id: number; state: State; blocked_by: BlockedBy | null }
export interface Graph {
  noderoles: Map<number, GraphNodeRole>;
  parents: Map<number, number[]>;
  children: Map<number, number[]>;
}

export interface Change { id: number; from: State; to: State; blocked_by: BlockedBy | null; cause: Cause }

export function emptyGraph(): Graph {
  return { noderoles: new Map(), parents: new Map(), children: new Map() };
}

export function addEdge(g: Graph, parent: number, child: number): void {
  (g.children.get(parent) ?? g.children.set(parent, []).get(parent)!).push(child);
  (g.parents.get(child) ?? g.parents.set(child, []).get(child)!).push(parent);
}

/** The first hard parent that is not ACTIVE, or undefined when the noderole may run. */
export function firstInactiveParent(g: Graph, id: number): number | undefined {
  return (g.parents.get(id) ?? []).find((p) => g.noderoles.get(p)?.state !== 'ACTIVE');
}

/** State for a noderole that wants to (re)run: TODO when every hard parent is ACTIVE, else BLOCKED. */
export function readyOrBlocked(g: Graph, id: number): { to: State; blocked_by: BlockedBy | null } {
  const p = firstInactiveParent(g, id);
  return p === undefined ? { to: 'TODO', blocked_by: null } : { to: 'BLOCKED', blocked_by: { kind: 'parent-not-active', noderole: p } };
}

const blocks = (s: State) => s === 'TODO' || s === 'ERROR' || s === 'ACTIVE' || s === 'BLOCKED';

/**
 * Apply one requested state change and every change it ripples into, in order.
 * The graph is updated in place; the returned list is what the store must write
 * (and emit as events, so hooks fire for every ripple too).
 *
 * - -> TODO / BLOCKED / PROPOSED: descendants in TODO, ERROR, ACTIVE or BLOCKED become BLOCKED
 *   (reason: the parent through which the ripple reached them). An ACTIVE child of a parent that
 *   converges again is blocked too: its inputs are being recomputed (docs/decisions/0003).
 * - -> ACTIVE: immediate BLOCKED children whose hard parents are all ACTIVE become TODO; those
 *   still waiting on another parent get that parent as their reason.
 * - -> ERROR: every descendant not PROPOSED or TRANSITION becomes BLOCKED, reason `error`
 *   naming the failed noderole.
 * PROPOSED and TRANSITION descendants are left alone and the ripple does not pass through them.
 */
export function applyChange(g: Graph, id: number, to: State, cause: Cause, blockedBy: BlockedBy | null = null): Change[] {
  const nr = g.noderoles.get(id);
  if (!nr) throw new Error(`noderole ${id} is not in the loaded graph`);
  if (!canTransition(nr.state, to, cause)) throw new TransitionError(nr.state, to, cause, id);
  const changes: Change[] = [];
  const set = (n: GraphNodeRole, state: State, by: BlockedBy | null, c: Cause) => {
    changes.push({ id: n.id, from: n.state, to: state, blocked_by: by, cause: c });
    n.state = state;
    n.blocked_by = by;
  };
  set(nr, to, to === 'BLOCKED' ? blockedBy : null, cause);

  if (to === 'ACTIVE') {
    for (const c of g.children.get(id) ?? []) {
      const child = g.noderoles.get(c);
      if (child?.state !== 'BLOCKED') continue;
      const still = firstInactiveParent(g, c);
      if (still === undefined) set(child, 'TODO', null, 'ripple');
      else if (child.blocked_by?.noderole === id) set(child, 'BLOCKED', { kind: 'parent-not-active', noderole: still }, 'ripple');
    }
    return changes;
  }
  if (to === 'TRANSITION') return changes;

  // Breadth-first over hard descendants.
  const seen = new Set<number>([id]);
  const queue: Array<[number, number]> = (g.children.get(id) ?? []).map((c) => [c, id]);
  while (queue.length) {
    const [cid, via] = queue.shift()!;
    if (seen.has(cid)) continue;
    seen.add(cid);
    const child = g.noderoles.get(cid);
    if (!child || !blocks(child.state)) continue;
    const by: BlockedBy = to === 'ERROR' ? { kind: 'error', noderole: id } : { kind: 'parent-not-active', noderole: via };
    if (child.state !== 'BLOCKED' || child.blocked_by?.kind !== by.kind || child.blocked_by?.noderole !== by.noderole) {
      set(child, 'BLOCKED', by, 'ripple');
    }
    for (const gc of g.children.get(cid) ?? []) queue.push([gc, cid]);
  }
  return changes;
}

/**
 * The invariants the whole system keeps (checked by the property test after every step):
 * no TODO or ACTIVE noderole has a non-ACTIVE hard parent, and every BLOCKED noderole names
 * a correct reason. Returns the violations as readable strings.
 */
export function checkInvariants(g: Graph, isAncestor: (anc: number, id: number) => boolean): string[] {
  const out: string[] = [];
  for (const nr of g.noderoles.values()) {
    const bad = firstInactiveParent(g, nr.id);
    if ((nr.state === 'TODO' || nr.state === 'ACTIVE') && bad !== undefined) {
      out.push(`noderole ${nr.id} is ${nr.state} but its parent ${bad} is ${g.noderoles.get(bad)!.state}`);
    }
    if (nr.state !== 'BLOCKED') continue;
    if (bad === undefined) out.push(`noderole ${nr.id} is BLOCKED but every parent is ACTIVE`);
    const by = nr.blocked_by;
    if (!by) out.push(`noderole ${nr.id} is BLOCKED without a reason`);
    else if (by.kind === 'parent-not-active') {
      if (!(g.parents.get(nr.id) ?? []).includes(by.noderole)) out.push(`noderole ${nr.id} blocked by ${by.noderole}, not a parent`);
      else if (g.noderoles.get(by.noderole)!.state === 'ACTIVE') out.push(`noderole ${nr.id} blocked by ${by.noderole}, which is ACTIVE`);
    } else if (by.kind === 'error') {
      if (!isAncestor(by.noderole, nr.id)) out.push(`noderole ${nr.id} blocked by error of ${by.noderole}, not an ancestor`);
      else if (g.noderoles.get(by.noderole)?.state !== 'ERROR') out.push(`noderole ${nr.id} blocked by error of ${by.noderole}, which is ${g.noderoles.get(by.noderole)?.state}`);
    }
  }
  return out;
}
