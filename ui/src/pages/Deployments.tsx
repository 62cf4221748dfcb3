// Deployments: the role × node matrix coloured by state, the noderole dependency graph, binding by
// dragging a node onto a role (or with the form, from the keyboard), propose / commit, and the
// deployment's role attribs edited against their schemas. Live from the deployment's events.
import { useMemo, useState } from 'react';
import { api, list, listAll, ApiError } from '../api';
import { useAsync, useCoalesced, useEvents } from '../hooks';
import { Link, LiveDot, StateBadge, ErrorText } from '../components';
import { Graph } from './Graph';
import { AttribEditor } from './AttribEditor';
import type { BindBody, DeploymentRoleRow, DeploymentRow, GraphAnswer, NodeRoleRow, NodeRow, RoleRow } from '../types';

export function Deployments({ name }: { name: string }) {
  const deps = useAsync((s) => list<DeploymentRow>('/api/v1/deployments', { limit: 1000 }, s).then((p) => p.rows), []);
  const current = name || deps.data?.find((d) => !d.system)?.name || deps.data?.[0]?.name || '';
  const [newName, setNewName] = useState('');
  const [err, setErr] = useState<string>();
  return (
    <div className="split">
      <nav className="side card" aria-label="Deployments">
        <h2>Deployments</h2>
        <ErrorText error={deps.error} />
        <ul className="plain">
          {(deps.data ?? []).map((d) => (
            <li key={d.id}><Link to={`/deployments/${encodeURIComponent(d.name)}`} className={d.name === current ? 'current' : ''}>{d.name}</Link> <span className={`badge status-${d.status}`}>{d.status}</span></li>
          ))}
        </ul>
        <form onSubmit={async (e) => {
          e.preventDefault(); setErr(undefined);
          try { await api('POST', '/api/v1/deployments', { name: newName.trim() }); setNewName(''); deps.reload(); } catch (x) { setErr((x as Error).message); }
        }}>
          <label htmlFor="new-deployment">New deployment</label>
          <div className="inline-form"><input id="new-deployment" required pattern="[a-z0-9][a-z0-9-]*" title="lower-case letters, digits and dashes" value={newName} onChange={(e) => setNewName(e.target.value)} />
            <button type="submit">Create</button></div>
          <ErrorText error={err} />
        </form>
      </nav>
      {current ? <Deployment key={current} name={current} onChanged={deps.reload} /> : <p className="muted">No deployments.</p>}
    </div>
  );
}

function Deployment({ name, onChanged }: { name: string; onChanged: () => void }) {
  const dep = useAsync((s) => api<DeploymentRow>('GET', `/api/v1/deployments/${encodeURIComponent(name)}`, undefined, s), [name]);
  const nrs = useAsync(() => listAll<NodeRoleRow>('/api/v1/noderoles', { deployment: name }), [name]);
  const nodes = useAsync((s) => list<NodeRow>('/api/v1/nodes', { deployment: name, service: 'false', limit: 500 }, s), [name]);
  const roles = useAsync((s) => list<RoleRow>('/api/v1/roles', { limit: 1000 }, s).then((p) => p.rows.filter((r) => !r.flags.includes('abstract'))), []);
  const graph = useAsync((s) => api<GraphAnswer>('GET', `/api/v1/deployments/${encodeURIComponent(name)}/graph`, undefined, s), [name]);
  const droles = useAsync((s) => list<DeploymentRoleRow>('/api/v1/deployment-roles', { deployment: name, limit: 1000 }, s).then((p) => p.rows), [name]);
  const [msg, setMsg] = useState<string>();
  const [over, setOver] = useState<string | null>(null);
  const [bindNode, setBindNode] = useState('');
  const [bindRole, setBindRole] = useState('');
  const [nodeFilter, setNodeFilter] = useState('');

  const reload = useCoalesced(() => { nrs.reload(); graph.reload(); dep.reload(); droles.reload(); onChanged(); }, 1000);
  const live = useEvents({ deployment: name, type: 'noderole,deployment' }, reload);

  const act = async (what: string, f: () => Promise<unknown>) => {
    setMsg(`${what}…`);
    try { await f(); setMsg(`${what}: done`); reload(); onChanged(); } catch (e) { setMsg(`${what} failed: ${e instanceof ApiError ? e.message : (e as Error).message}`); }
  };
  const bind = (node: string, role: string) => {
    const body: BindBody = { node, role, deployment: name };
    return act(`bind ${role} to ${node}`, () => api('POST', '/api/v1/noderoles', body));
  };

  // The matrix: rows are nodes with noderoles here, columns the roles bound here.
  const matrix = useMemo(() => {
    const cells = new Map<string, NodeRoleRow>();
    const rowSet = new Set<string>(), colSet = new Set<string>();
    for (const r of nrs.data ?? []) { cells.set(`${r.node}\u0000${r.role}`, r); rowSet.add(r.node); colSet.add(r.role); }
    const cols = [...colSet].sort();
    return { cells, rows: [...rowSet].sort(), cols };
  }, [nrs.data]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const r of nrs.data ?? []) c[r.state] = (c[r.state] ?? 0) + 1;
    return c;
  }, [nrs.data]);

  const d = dep.data;
  const dropProps = (role: string) => ({
    onDragOver: (e: React.DragEvent) => { if (e.dataTransfer.types.includes('application/x-fulcrum-node')) { e.preventDefault(); e.dataTransfer.dropEffect = 'link'; setOver(role); } },
    onDragLeave: () => setOver((o) => (o === role ? null : o)),
    onDrop: (e: React.DragEvent) => { e.preventDefault(); setOver(null); const n = e.dataTransfer.getData('application/x-fulcrum-node'); if (n) void bind(n, role); },
  });
  const shownNodes = (nodes.data?.rows ?? []).filter((n) => !nodeFilter || n.name.includes(nodeFilter));

  return (
    <section className="page main-col" aria-labelledby="dep-title">
      <div className="page-head">
        <h1 id="dep-title">{name}</h1>
        {d && <span className={`badge status-${d.status}`}>{d.status}</span>}
        <LiveDot live={live} />
        <div className="spacer" />
        <button type="button" disabled={d?.state === 'proposed'} onClick={() => act('propose', () => api('POST', `/api/v1/deployments/${encodeURIComponent(name)}/propose`))}>Propose</button>
        <button type="button" className="primary" disabled={d?.state !== 'proposed'} onClick={() => act('commit', () => api('POST', `/api/v1/deployments/${encodeURIComponent(name)}/commit`))}>Commit</button>
      </div>
      {msg && <p className="status" role="status">{msg}</p>}
      <p className="counts" aria-label="Noderole states">
        {Object.entries(counts).map(([s, n]) => <span key={s}><StateBadge state={s} /> {n}</span>)}
        {!nrs.data?.length && <span className="muted">Nothing bound yet: drag a node onto a role.</span>}
      </p>

      <div className="grid2">
        <div className="card">
          <h2>Nodes in {name}</h2>
          <label htmlFor="palette-filter">Filter</label>
          <input id="palette-filter" value={nodeFilter} onChange={(e) => setNodeFilter(e.target.value)} />
          <ul className="palette" aria-label="Nodes to drag onto a role">
            {shownNodes.slice(0, 200).map((n) => (
              <li key={n.id} draggable data-node={n.name} className="chip node-chip"
                onDragStart={(e) => { e.dataTransfer.setData('application/x-fulcrum-node', n.name); e.dataTransfer.setData('text/plain', n.name); e.dataTransfer.effectAllowed = 'link'; }}>
                {n.name} <StateBadge state={n.state} />
              </li>
            ))}
            {!shownNodes.length && <li className="muted">No nodes in this deployment; move nodes here from their page or create them with the API.</li>}
          </ul>
          {(nodes.data?.total ?? 0) > 200 && <p className="muted small">Showing 200 of {nodes.data!.total}; filter to find others.</p>}
        </div>
        <div className="card">
          <h2>Roles</h2>
          <p className="muted small">Drop a node on a role to bind it (with the parents it needs).</p>
          <ul className="palette roles" aria-label="Roles (drop targets)">
            {(roles.data ?? []).map((r) => (
              <li key={r.id} data-role={r.name} className={`chip role-chip${over === r.name ? ' over' : ''}`} title={r.description} {...dropProps(r.name)}>{r.name}</li>
            ))}
          </ul>
          <form className="inline-form" onSubmit={(e) => { e.preventDefault(); if (bindNode && bindRole) void bind(bindNode, bindRole); }} aria-label="Bind a role to a node">
            <label htmlFor="bind-node" className="inline">Node</label>
            <select id="bind-node" value={bindNode} onChange={(e) => setBindNode(e.target.value)}>
              <option value="">choose…</option>{shownNodes.slice(0, 500).map((n) => <option key={n.id}>{n.name}</option>)}
            </select>
            <label htmlFor="bind-role" className="inline">Role</label>
            <select id="bind-role" value={bindRole} onChange={(e) => setBindRole(e.target.value)}>
              <option value="">choose…</option>{(roles.data ?? []).map((r) => <option key={r.id}>{r.name}</option>)}
            </select>
            <button type="submit" disabled={!bindNode || !bindRole}>Bind</button>
          </form>
        </div>
      </div>

      <div className="card">
        <h2>Role × node matrix</h2>
        {matrix.rows.length ? (
          <div className="matrix-wrap" tabIndex={0} aria-label="Role by node matrix, scrollable">
            <table className="matrix">
              <thead><tr><th scope="col">Node</th>{matrix.cols.map((c) => <th scope="col" key={c} data-role={c} className={over === c ? 'over' : ''} {...dropProps(c)}><span>{c}</span></th>)}</tr></thead>
              <tbody>{matrix.rows.slice(0, 300).map((n) => (
                <tr key={n}><th scope="row"><Link to={`/nodes/${encodeURIComponent(n)}`}>{n}</Link></th>
                  {matrix.cols.map((c) => { const x = matrix.cells.get(`${n}\u0000${c}`); return (
                    <td key={c} data-node={n} data-role={c} data-state={x?.state ?? ''} className={x ? `cell state-${x.state.toLowerCase()}` : 'cell none'} title={x ? `${c} on ${n}: ${x.state}` : ''}>
                      {x ? <span className="sr">{x.state}</span> : null}{x ? x.state[0] : ''}
                    </td>); })}
                </tr>))}
              </tbody>
            </table>
            {matrix.rows.length > 300 && <p className="muted small">First 300 of {matrix.rows.length} nodes.</p>}
          </div>
        ) : <p className="muted">No noderoles.</p>}
      </div>

      <div className="card">
        <h2>Dependency graph</h2>
        {graph.data ? <Graph data={graph.data} /> : <p aria-busy="true">Loading…</p>}
      </div>

      <div className="card">
        <h2>Role attribs</h2>
        {droles.data?.length ? droles.data.map((dr) => <AttribEditor key={dr.id} dr={dr} onSaved={reload} />) : <p className="muted">No deployment roles yet (they appear when a role is bound here).</p>}
      </div>
    </section>
  );
}
