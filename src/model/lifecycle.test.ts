import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  STATES, TRANSITIONS, canTransition, applyChange, emptyGraph, addEdge, checkInvariants, readyOrBlocked,
  type Graph, type State, type Cause, TransitionError,
} from './lifecycle.js';
import { selectRunnable } from '../annealer/select.js';

function graph(states: Record<number, State>, edges: Array<[number, number]>): Graph {
  const g = emptyGraph();
  for (const [id, state] of Object.entries(states)) g.noderoles.set(Number(id), { id: Number(id), state, blocked_by: null });
  for (const [p, c] of edges) addEdge(g, p, c);
  for (const nr of g.noderoles.values()) if (nr.state === 'BLOCKED') nr.blocked_by = readyOrBlocked(g, nr.id).blocked_by;
  return g;
}
const stateOf = (g: Graph) => Object.fromEntries([...g.noderoles.values()].map((n) => [n.id, n.state]));

test('the transition table refuses every edge it does not list', () => {
  let allowed = 0;
  for (const from of STATES) for (const to of STATES) {
    const causes = TRANSITIONS[from][to] ?? [];
    allowed += causes.length;
    assert.equal(canTransition(from, to, 'start'), causes.includes('start'), `${from}->${to}`);
  }
  assert.ok(allowed > 10);
  // The edges that matter most, spelled out.
  assert.ok(canTransition('PROPOSED', 'TODO', 'commit'));
  assert.ok(canTransition('TODO', 'TRANSITION', 'start'));
  assert.ok(canTransition('TODO', 'ACTIVE', 'skip'));
  assert.ok(canTransition('ERROR', 'TODO', 'retry'));
  assert.ok(!canTransition('PROPOSED', 'TRANSITION', 'start'), 'nothing runs before commit');
  assert.ok(!canTransition('ACTIVE', 'TRANSITION', 'start'), 'a run starts only from TODO');
  assert.ok(!canTransition('ERROR', 'ACTIVE', 'succeeded'));
  assert.ok(!canTransition('TRANSITION', 'PROPOSED', 'propose'), 'a running noderole cannot be edited');
  assert.throws(() => applyChange(graph({ 1: 'ACTIVE' }, []), 1, 'TRANSITION', 'start'), TransitionError);
});

// Table-driven ripples: [name, states before, edges, change, states after, blocked reasons after].
const ripples: Array<{
  name: string; before: Record<number, State>; edges: Array<[number, number]>;
  change: [number, State, Cause]; after: Record<number, State>; reasons?: Record<number, [string, number]>;
}> = [
  {
    name: '-> ACTIVE promotes BLOCKED children whose parents are all ACTIVE',
    before: { 1: 'TRANSITION', 2: 'BLOCKED', 3: 'BLOCKED', 4: 'BLOCKED', 5: 'TODO' },
    edges: [[1, 2], [1, 3], [5, 3], [2, 4]],
    change: [1, 'ACTIVE', 'succeeded'],
    after: { 1: 'ACTIVE', 2: 'TODO', 3: 'BLOCKED', 4: 'BLOCKED', 5: 'TODO' },
  },
  {
    name: '-> ACTIVE leaves PROPOSED and ERROR children alone',
    before: { 1: 'TRANSITION', 2: 'PROPOSED', 3: 'ERROR' },
    edges: [[1, 2], [1, 3]],
    change: [1, 'ACTIVE', 'succeeded'],
    after: { 1: 'ACTIVE', 2: 'PROPOSED', 3: 'ERROR' },
  },
  {
    name: '-> TODO blocks descendants recursively, naming the parent the ripple came through',
    before: { 1: 'ACTIVE', 2: 'ACTIVE', 3: 'TODO', 4: 'ERROR' },
    edges: [[1, 2], [2, 3], [3, 4]],
    change: [1, 'TODO', 'poke'],
    after: { 1: 'TODO', 2: 'BLOCKED', 3: 'BLOCKED', 4: 'BLOCKED' },
    reasons: { 2: ['parent-not-active', 1], 3: ['parent-not-active', 2], 4: ['parent-not-active', 3] },
  },
  {
    name: 'ripples stop at PROPOSED and TRANSITION',
    before: { 1: 'ACTIVE', 2: 'TRANSITION', 3: 'BLOCKED', 4: 'PROPOSED', 5: 'BLOCKED' },
    edges: [[1, 2], [2, 3], [1, 4], [4, 5]],
    change: [1, 'TODO', 'poke'],
    after: { 1: 'TODO', 2: 'TRANSITION', 3: 'BLOCKED', 4: 'PROPOSED', 5: 'BLOCKED' },
  },
  {
    name: '-> ERROR blocks every descendant with reason error naming the failed noderole',
    before: { 1: 'TRANSITION', 2: 'TODO', 3: 'ACTIVE', 4: 'BLOCKED', 5: 'PROPOSED' },
    edges: [[1, 2], [2, 3], [3, 4], [1, 5]],
    change: [1, 'ERROR', 'failed'],
    after: { 1: 'ERROR', 2: 'BLOCKED', 3: 'BLOCKED', 4: 'BLOCKED', 5: 'PROPOSED' },
    reasons: { 2: ['error', 1], 3: ['error', 1], 4: ['error', 1] },
  },
  {
    name: 'retry of an ERROR rewrites the reasons of what it had blocked',
    before: { 1: 'ERROR', 2: 'BLOCKED', 3: 'BLOCKED' },
    edges: [[1, 2], [2, 3]],
    change: [1, 'TODO', 'retry'],
    after: { 1: 'TODO', 2: 'BLOCKED', 3: 'BLOCKED' },
    reasons: { 2: ['parent-not-active', 1], 3: ['parent-not-active', 2] },
  },
  {
    name: 'commit of a PROPOSED noderole whose parent is not ACTIVE -> BLOCKED with the parent named',
    before: { 1: 'TODO', 2: 'PROPOSED' },
    edges: [[1, 2]],
    change: [2, 'BLOCKED', 'commit'],
    after: { 1: 'TODO', 2: 'BLOCKED' },
  },
  {
    name: 'a diamond is blocked once per descendant',
    before: { 1: 'ACTIVE', 2: 'ACTIVE', 3: 'ACTIVE', 4: 'ACTIVE' },
    edges: [[1, 2], [1, 3], [2, 4], [3, 4]],
    change: [1, 'TODO', 'poke'],
    after: { 1: 'TODO', 2: 'BLOCKED', 3: 'BLOCKED', 4: 'BLOCKED' },
  },
];

for (const r of ripples) {
  test(`ripple: ${r.name}`, () => {
    const g = graph(r.before, r.edges);
    const [id, to, cause] = r.change;
    const by = to === 'BLOCKED' ? readyOrBlocked(g, id).blocked_by : null;
    const changes = applyChange(g, id, to, cause, by);
    assert.deepEqual(stateOf(g), Object.fromEntries(Object.entries(r.after).map(([k, v]) => [Number(k), v])));
    for (const [nid, [kind, by2]] of Object.entries(r.reasons ?? {})) {
      assert.deepEqual(g.noderoles.get(Number(nid))!.blocked_by, { kind, noderole: by2 }, `reason of ${nid}`);
    }
    // Every change is reported exactly once, in order, from the state it really left.
    assert.equal(new Set(changes.map((c) => c.id)).size, changes.length);
    for (const c of changes) assert.equal(r.before[c.id], c.from);
    assert.deepEqual(checkInvariantsOn(g, r.edges), []);
  });
}

function checkInvariantsOn(g: Graph, edges: Array<[number, number]>): string[] {
  const isAncestor = (a: number, d: number): boolean => {
    const stack = [a]; const seen = new Set<number>();
    while (stack.length) {
      const x = stack.pop()!;
      for (const [p, c] of edges) if (p === x && !seen.has(c)) { if (c === d) return true; seen.add(c); stack.push(c); }
    }
    return false;
  };
  return checkInvariants(g, isAncestor);
}

/**
 * Property: a pure simulation of the annealer over random DAGs of >= 200 noderoles on random
 * nodes, with random failures, retries and node alive flips. After every step: invariants hold,
 * never two TRANSITION noderoles on one node, never more running than the cap.
 */
test('property: random graphs, failures, retries and alive flips keep every invariant', () => {
  const arb = fc.record({
    size: fc.integer({ min: 200, max: 260 }),
    nodes: fc.integer({ min: 10, max: 40 }),
    cap: fc.integer({ min: 1, max: 12 }),
    seed: fc.integer(),
    steps: fc.array(fc.record({ op: fc.integer({ min: 0, max: 99 }), pick: fc.nat() }), { minLength: 300, maxLength: 600 }),
  });
  fc.assert(fc.property(arb, ({ size, nodes, cap, seed, steps }) => {
    let rnd = seed >>> 0;
    const next = () => (rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const g = emptyGraph();
    const edges: Array<[number, number]> = [];
    const nodeOf = new Map<number, number>();
    for (let id = 1; id <= size; id++) {
      g.noderoles.set(id, { id, state: 'PROPOSED', blocked_by: null });
      nodeOf.set(id, Math.floor(next() * nodes));
      const k = Math.floor(next() * 3);
      for (let j = 0; j < k && id > 1; j++) {
        const p = 1 + Math.floor(next() * (id - 1));
        if (!edges.some(([a, b]) => a === p && b === id)) { edges.push([p, id]); addEdge(g, p, id); }
      }
    }
    const alive = new Set(Array.from({ length: nodes }, (_, i) => i));
    const running = new Set<number>();
    const cohort = new Map<number, number>();
    for (let id = 1; id <= size; id++) cohort.set(id, Math.max(0, ...(g.parents.get(id) ?? []).map((p) => cohort.get(p)! + 1)));
    // commit everything
    for (let id = 1; id <= size; id++) {
      const r = readyOrBlocked(g, id);
      applyChange(g, id, r.to, 'commit', r.blocked_by);
    }
    const check = () => {
      assert.deepEqual(checkInvariantsOn(g, edges), []);
      const perNode = new Map<number, number>();
      for (const nr of g.noderoles.values()) if (nr.state === 'TRANSITION') perNode.set(nodeOf.get(nr.id)!, (perNode.get(nodeOf.get(nr.id)!) ?? 0) + 1);
      for (const [n, c] of perNode) assert.ok(c <= 1, `node ${n} has ${c} noderoles in TRANSITION`);
      assert.ok(running.size <= cap, `running ${running.size} > cap ${cap}`);
    };
    check();
    for (const { op, pick } of steps) {
      if (op < 45) {
        // the annealer picks
        const busy = new Set([...running].map((r) => nodeOf.get(r)!));
        const candidates = [...g.noderoles.values()]
          .filter((n) => n.state === 'TODO' && alive.has(nodeOf.get(n.id)!) && readyOrBlocked(g, n.id).to === 'TODO' && !busy.has(nodeOf.get(n.id)!))
          .map((n) => ({ id: n.id, node_id: nodeOf.get(n.id)!, cohort: cohort.get(n.id)! }));
        for (const c of selectRunnable(candidates, { cap, running: running.size, busyNodes: busy })) {
          applyChange(g, c.id, 'TRANSITION', 'start');
          running.add(c.id);
        }
      } else if (op < 80 && running.size) {
        // a run finishes; 15% fail
        const id = [...running][pick % running.size];
        running.delete(id);
        if (op < 75) {
          const r = readyOrBlocked(g, id);
          applyChange(g, id, r.to === 'TODO' ? 'ACTIVE' : 'BLOCKED', 'succeeded', r.blocked_by);
        } else applyChange(g, id, 'ERROR', 'failed');
      } else if (op < 88) {
        // retry an ERROR whose parents are ACTIVE
        const errs = [...g.noderoles.values()].filter((n) => n.state === 'ERROR');
        if (errs.length) {
          const e = errs[pick % errs.length];
          const r = readyOrBlocked(g, e.id);
          applyChange(g, e.id, r.to, 'retry', r.blocked_by);
        }
      } else if (op < 94) {
        // poke an ACTIVE noderole
        const act = [...g.noderoles.values()].filter((n) => n.state === 'ACTIVE');
        if (act.length) applyChange(g, act[pick % act.length].id, 'TODO', 'poke');
      } else {
        // a node flips alive: going down deactivates its noderoles and drops its run
        const n = pick % nodes;
        if (alive.has(n)) {
          alive.delete(n);
          const mine = [...g.noderoles.values()].filter((x) => nodeOf.get(x.id) === n).sort((a, b) => cohort.get(a.id)! - cohort.get(b.id)! || a.id - b.id);
          for (const x of mine) {
            if (x.state !== 'ACTIVE' && x.state !== 'TRANSITION') continue;
            running.delete(x.id);
            const r = readyOrBlocked(g, x.id);
            applyChange(g, x.id, r.to, 'deactivate', r.blocked_by);
          }
        } else alive.add(n);
      }
      check();
    }
  }), { numRuns: 25, verbose: 1 });
});
