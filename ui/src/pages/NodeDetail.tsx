// One node: switches, inventory, addresses, noderoles (state, blocked reason, run log), power,
// and the node's events — live from the event stream filtered to this node.
import { useState } from 'react';
import { api, list, ApiError } from '../api';
import { useAsync, useCoalesced, useEvents } from '../hooks';
import { Flag, Link, LiveDot, StateBadge, blockedText, fmtBytes, ErrorText } from '../components';
import type { EventRow, NodeRoleRow, NodeRow } from '../types';

interface Address { source: string; address: string; mac: string | null; subnet: string; state: string; expires_at: string | null }

export function NodeDetail({ nodeKey }: { nodeKey: string }) {
  const node = useAsync((s) => api<NodeRow>('GET', `/api/v1/nodes/${encodeURIComponent(nodeKey)}`, undefined, s), [nodeKey]);
  const n = node.data;
  const nrs = useAsync((s) => (n ? list<NodeRoleRow>('/api/v1/noderoles', { node_id: n.id, limit: 1000 }, s).then((p) => p.rows) : Promise.resolve([])), [n?.id]);
  const addrs = useAsync((s) => (n ? api<Address[]>('GET', `/api/v1/nodes/${n.id}/addresses`, undefined, s) : Promise.resolve([])), [n?.id]);
  const events = useAsync((s) => (n ? api<EventRow[]>('GET', `/api/v1/events?node=${n.id}&limit=50`, undefined, s) : Promise.resolve([])), [n?.id]);
  const [liveEvents, setLiveEvents] = useState<EventRow[]>([]);
  const [logs, setLogs] = useState<Record<number, string>>({});
  const [open, setOpen] = useState<number | null>(null);
  const [msg, setMsg] = useState<string>();

  const reload = useCoalesced(() => { node.reload(); nrs.reload(); addrs.reload(); }, 1000);
  const live = useEvents(n ? { node: n.id } : null, (e) => {
    setLiveEvents((l) => [e, ...l].slice(0, 200));
    if (e.type === 'job.log' && e.payload.noderole) setLogs((m) => ({ ...m, [e.payload.noderole]: ((m[e.payload.noderole] ?? '') + e.payload.text).slice(-20000) }));
    if (e.type !== 'job.log') reload();
    if (open !== null && e.object_id === open) void showLog(open);
  });

  const showLog = async (id: number) => {
    const d = await api<NodeRoleRow>('GET', `/api/v1/noderoles/${id}`);
    setLogs((m) => ({ ...m, [id]: d.runlog ?? '' }));
  };
  const act = async (what: string, f: () => Promise<unknown>) => {
    setMsg(`${what}…`);
    try { await f(); setMsg(`${what}: done`); reload(); } catch (e) { setMsg(`${what}: ${e instanceof ApiError ? e.message : (e as Error).message}`); }
  };

  if (node.error) return <ErrorText error={node.error} />;
  if (!n) return <p aria-busy="true">Loading…</p>;
  const inv = n.inventory ?? {};
  const disks: any[] = Array.isArray(inv.disks) ? inv.disks : [];
  const nics: any[] = Array.isArray(inv.nics) ? inv.nics : [];
  const allEvents = [...liveEvents, ...(events.data ?? []).slice().reverse()].filter((e, i, a) => a.findIndex((x) => x.id === e.id) === i).slice(0, 100);

  return (
    <section className="page" aria-labelledby="node-title">
      <p className="crumbs"><Link to="/nodes">Nodes</Link> /</p>
      <div className="page-head">
        <h1 id="node-title">{n.name}</h1>
        <StateBadge state={n.state} />
        <Flag on={n.alive} yes="alive" no="dead" /> <Flag on={n.available} yes="available" no="reserved" />
        <LiveDot live={live} />
      </div>
      <div className="toolbar" role="group" aria-label="Node actions">
        <button type="button" onClick={() => act(n.available ? 'make unavailable' : 'make available', () => api('PATCH', `/api/v1/nodes/${n.id}`, { available: !n.available }))}>
          {n.available ? 'Make unavailable' : 'Make available'}</button>
        <button type="button" onClick={() => act(n.alive ? 'mark dead' : 'mark alive', () => api('PATCH', `/api/v1/nodes/${n.id}`, { alive: !n.alive }))}>
          {n.alive ? 'Mark dead' : 'Mark alive'}</button>
        {['status', 'on', 'off', 'cycle', 'pxe'].map((a) => (
          <button type="button" key={a} onClick={() => act(`power ${a}`, () => api('POST', `/api/v1/nodes/${n.id}/power/actions`, { action: a }))}>Power {a}</button>
        ))}
      </div>
      {msg && <p className="status" role="status">{msg}</p>}

      <div className="grid2">
        <div className="card">
          <h2>Summary</h2>
          <dl className="kv">
            <dt>Deployment</dt><dd><Link to={`/deployments/${encodeURIComponent(n.deployment)}`}>{n.deployment}</Link></dd>
            <dt>Bootenv</dt><dd>{n.bootenv}</dd>
            <dt>Provider</dt><dd>{n.provider}</dd>
            <dt>MACs</dt><dd className="mono">{n.macs.join(', ') || '—'}</dd>
            <dt>Profiles</dt><dd>{n.profiles.join(', ') || '—'}</dd>
            <dt>UUID</dt><dd className="mono small">{n.uuid}</dd>
          </dl>
        </div>
        <div className="card">
          <h2>Inventory</h2>
          <dl className="kv">
            <dt>CPUs</dt><dd>{inv.cpu?.count ?? '—'} {inv.cpu?.model ? `× ${inv.cpu.model}` : ''}</dd>
            <dt>Memory</dt><dd>{inv.memory_kb ? fmtBytes(inv.memory_kb * 1024) : '—'}</dd>
            <dt>System</dt><dd>{[inv.dmi?.vendor, inv.dmi?.product].filter(Boolean).join(' ') || '—'}</dd>
          </dl>
          <h3>Disks</h3>
          {disks.length ? (
            <div className="scroll-x"><table><thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Size</th><th scope="col">Model</th></tr></thead>
              <tbody>{disks.map((d) => <tr key={d.name}><td>{d.name}</td><td><span className={`badge disk-${String(d.kind).toLowerCase()}`}>{d.kind ?? (d.rotational ? 'HDD' : 'SSD')}</span></td><td>{fmtBytes(d.size_bytes)}</td><td>{d.model || '—'}</td></tr>)}</tbody></table></div>
          ) : <p className="muted">No disks reported.</p>}
          <h3>NICs</h3>
          {nics.length ? (
            <div className="scroll-x"><table><thead><tr><th scope="col">Name</th><th scope="col">MAC</th><th scope="col">Link</th><th scope="col">Speed</th></tr></thead>
              <tbody>{nics.map((x) => <tr key={x.name}><td>{x.name}</td><td className="mono">{x.mac}</td><td>{x.link ? 'up' : 'down'}</td><td>{x.speed_mbps > 0 ? `${x.speed_mbps} Mb/s` : '—'}</td></tr>)}</tbody></table></div>
          ) : <p className="muted">No NICs reported.</p>}
        </div>
      </div>

      <div className="card">
        <h2>Addresses</h2>
        {addrs.data?.length ? (
          <div className="scroll-x"><table><thead><tr><th scope="col">Address</th><th scope="col">Source</th><th scope="col">Subnet / network</th><th scope="col">MAC</th><th scope="col">State</th></tr></thead>
            <tbody>{addrs.data.map((a, i) => <tr key={i}><td className="mono">{a.address}</td><td>{a.source}</td><td>{a.subnet}</td><td className="mono">{a.mac ?? '—'}</td><td>{a.state}</td></tr>)}</tbody></table></div>
        ) : <p className="muted">No leases, reservations or allocations.</p>}
      </div>

      <div className="card">
        <h2>Noderoles</h2>
        {nrs.data?.length ? (
          <div className="scroll-x"><table>
            <thead><tr><th scope="col">Role</th><th scope="col">Deployment</th><th scope="col">State</th><th scope="col">Blocked because</th><th scope="col">Runs</th><th scope="col">Log</th></tr></thead>
            <tbody>{nrs.data.map((r) => (
              <tr key={r.id}>
                <td>{r.role}</td><td>{r.deployment}</td><td><StateBadge state={r.state} /></td>
                <td className="small">{blockedText(r.blocked_by, (id) => { const p = nrs.data?.find((x) => x.id === id); return p ? `${p.role} on this node` : undefined; }) || '—'}</td><td>{r.run_count}{r.failures ? ` (${r.failures} failed)` : ''}</td>
                <td>
                  <button type="button" aria-expanded={open === r.id} onClick={() => { if (open === r.id) setOpen(null); else { setOpen(r.id); void showLog(r.id); } }}>{open === r.id ? 'Hide log' : 'Show log'}</button>
                  {r.state === 'ERROR' && <button type="button" onClick={() => act(`retry ${r.role}`, () => api('POST', `/api/v1/noderoles/${r.id}/retry`))}>Retry</button>}
                </td>
              </tr>
            ))}</tbody>
          </table></div>
        ) : <p className="muted">No roles bound.</p>}
        {open !== null && <pre className="log" aria-label="Run log" tabIndex={0}>{logs[open] || '(empty log)'}</pre>}
      </div>

      <div className="card">
        <h2>Events</h2>
        {allEvents.length ? (
          <ol className="events">{allEvents.map((e) => (
            <li key={e.id}><time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> <code>{e.type}</code> {eventText(e)}</li>
          ))}</ol>
        ) : <p className="muted">No events yet.</p>}
      </div>
    </section>
  );
}

export function eventText(e: EventRow): string {
  const p = e.payload ?? {};
  if (e.type === 'noderole.state') return `${p.role ?? ''} ${p.from ?? ''} → ${p.to ?? ''}${p.cause ? ` (${p.cause})` : ''}`;
  if (e.type === 'job.log') return String(p.text ?? '').slice(0, 120);
  const keys = Object.keys(p).slice(0, 4);
  return keys.map((k) => `${k}=${typeof p[k] === 'object' ? JSON.stringify(p[k]) : p[k]}`).join(' ');
}
