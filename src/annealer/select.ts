// Which runnable noderoles to start now (DESIGN.md §2, annealer rules 1-4), as a pure function.
// The store filters rule 1 in SQL (TODO, committed, node alive and available, parents ACTIVE,
// node idle); this applies the per-node and global limits to that ordered candidate list.

export interface Candidate { id: number; node_id: number; cohort: number }

export interface Limits {
  /** Global cap on running jobs (rule 3). */
  cap: number;
  /** Jobs running now, across every replica. */
  running: number;
  /** Nodes that already have a running job (rule 2). */
  busyNodes: ReadonlySet<number>;
}

/** Candidates ordered by (cohort, id) (rule 4), at most one per node, at most cap - running. */
export function selectRunnable(candidates: readonly Candidate[], limits: Limits): Candidate[] {
  const free = limits.cap - limits.running;
  if (free <= 0) return [];
  const ordered = [...candidates].sort((a, b) => a.cohort - b.cohort || a.id - b.id);
  const picked: Candidate[] = [];
  const nodes = new Set(limits.busyNodes);
  for (const c of ordered) {
    if (picked.length >= free) break;
    if (nodes.has(c.node_id)) continue;
    nodes.add(c.node_id);
    picked.push(c);
  }
  return picked;
}

/** Backoff before automatic retry number `attempt` (1-based): base, 2×base, 4×base... capped at 1 h. */
export function retryDelaySeconds(base: number, attempt: number): number {
  return Math.min(3600, base * 2 ** Math.max(0, attempt - 1));
}
