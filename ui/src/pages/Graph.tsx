// The noderole dependency graph as SVG: layers by longest path from the roots, hard edges solid,
// soft edges dashed, each noderole coloured by state with its blocked reason in the tooltip.
import { useMemo } from 'react';
import { blockedText } from '../components';
import type { GraphAnswer } from '../types';

const W = 170, H = 34, GX = 60, GY = 14, MAX = 400;

export function Graph({ data }: { data: GraphAnswer }) {
  const layout = useMemo(() => {
    const all = [...data.noderoles.map((n) => ({ ...n, deployment: '' })), ...data.external.map((n) => ({ ...n, node_id: 0, cohort: 0 }))].slice(0, MAX);
    const ids = new Set(all.map((n) => n.id));
    const edges = data.edges.filter((e) => ids.has(e.parent) && ids.has(e.child));
    const parents = new Map<number, number[]>();
    for (const e of edges) parents.set(e.child, [...(parents.get(e.child) ?? []), e.parent]);
    const layer = new Map<number, number>();
    const depth = (id: number, seen: number): number => {
      if (layer.has(id)) return layer.get(id)!;
      if (seen > 64) return 0; // a cycle cannot happen (the model refuses them); stay bounded anyway
      const ps = parents.get(id) ?? [];
      const d = ps.length ? 1 + Math.max(...ps.map((p) => depth(p, seen + 1))) : 0;
      layer.set(id, d);
      return d;
    };
    for (const n of all) depth(n.id, 0);
    const columns: number[][] = [];
    for (const n of all.slice().sort((a, b) => a.node.localeCompare(b.node) || a.role.localeCompare(b.role))) (columns[layer.get(n.id)!] ??= []).push(n.id);
    const pos = new Map<number, { x: number; y: number }>();
    columns.forEach((col, ci) => col.forEach((id, ri) => pos.set(id, { x: 10 + ci * (W + GX), y: 10 + ri * (H + GY) })));
    const width = 20 + columns.length * (W + GX) - GX;
    const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
    const byId = new Map(all.map((n) => [n.id, n]));
    return { all, edges, pos, width, height, byId };
  }, [data]);

  if (!layout.all.length) return <p className="muted">No noderoles.</p>;
  const byId = layout.byId;
  return (
    <div className="graph-wrap" tabIndex={0} aria-label="Dependency graph, scrollable">
      <svg width={layout.width} height={layout.height} role="img" aria-label={`Dependency graph of ${layout.all.length} noderoles`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555" /></marker>
        </defs>
        {layout.edges.map((e) => {
          const a = layout.pos.get(e.parent)!, b = layout.pos.get(e.child)!;
          return <path key={`${e.parent}-${e.child}`} className={`edge ${e.kind}`} d={`M ${a.x + W} ${a.y + H / 2} C ${a.x + W + GX / 2} ${a.y + H / 2}, ${b.x - GX / 2} ${b.y + H / 2}, ${b.x} ${b.y + H / 2}`} markerEnd="url(#arrow)">
            <title>{`${e.kind} edge`}</title></path>;
        })}
        {layout.all.map((n) => {
          const p = layout.pos.get(n.id)!;
          const why = blockedText(n.blocked_by, (id) => { const p = byId.get(id); return p ? `${p.role} on ${p.node.split('.')[0]}` : undefined; });
          return (
            <g key={n.id} transform={`translate(${p.x},${p.y})`} className={`gnode state-${n.state.toLowerCase()}`} data-noderole={n.id}>
              <title>{`${n.role} on ${n.node}: ${n.state}${why ? ` — ${why}` : ''}${(n as any).deployment ? ` (in ${(n as any).deployment})` : ''}`}</title>
              <rect width={W} height={H} rx="5" />
              <text x="8" y="14" className="g-role">{n.role.length > 24 ? `${n.role.slice(0, 23)}…` : n.role}</text>
              <text x="8" y="28" className="g-node">{(n.node.split('.')[0] ?? '').slice(0, 18)} · {n.state}</text>
            </g>
          );
        })}
      </svg>
      {(data.truncated || data.noderoles.length + data.external.length > MAX) && <p className="muted small">Showing the first {MAX} noderoles.</p>}
      <p className="legend small"><span className="solid">—</span> hard edge (waits) <span className="dashed">- -</span> soft edge (ordering only)</p>
    </div>
  );
}
