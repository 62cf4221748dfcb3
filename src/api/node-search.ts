// Server-side node search for the node list (docs/api.md, docs/ui.md): `?q=` matches a node's name,
// any of its MACs (`:` or `-`, any case, a prefix or a fragment), or any of its addresses (DHCP
// lease, reservation, network allocation); `?role=` keeps nodes with that role bound.

/** The search text as matched: trimmed, lower case (names and MACs are stored in lower case). */
export function searchValue(q: string): string {
  return q.trim().toLowerCase();
}

/** A WHERE condition over the node view `v` for the search text in parameter $n. */
export function nodeSearchClause(n: number): string {
  const like = `'%' || replace(replace($${n}, '%', ''), '_', '') || '%'`;
  // A MAC typed with dashes (52-54-00-...) matches the stored colon form.
  const macLike = `'%' || replace(replace(replace($${n}, '%', ''), '_', ''), '-', ':') || '%'`;
  return `(v.name ILIKE ${like}
    OR EXISTS (SELECT 1 FROM node_macs m WHERE m.node_id = v.id AND m.mac::text LIKE ${macLike})
    OR EXISTS (SELECT 1 FROM reservations r WHERE r.node_id = v.id AND host(r.address) = $${n})
    OR EXISTS (SELECT 1 FROM network_allocations a WHERE a.node_id = v.id AND host(a.address) = $${n})
    OR EXISTS (SELECT 1 FROM leases l JOIN node_macs m ON m.mac = l.mac WHERE m.node_id = v.id AND host(l.address) = $${n}))`;
}

/** Nodes with role $n (a role name) bound in any deployment. */
export function nodeRoleClause(n: number): string {
  return `EXISTS (SELECT 1 FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE nr.node_id = v.id AND r.name = $${n})`;
}
