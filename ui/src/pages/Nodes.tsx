// The node list: server-side filters and search, a virtualised list that fetches only the pages
// on screen (200 rows each), bulk actions on the selection, live from node and noderole events.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, list, ApiError } from '../api';
import { useCoalesced, useEvents, useAsync } from '../hooks';
import { Flag, Link, LiveDot, StateBadge } from '../components';
import type { NodePatch, NodeRow } from '../types';

const ROW = 36;
const PAGE = 200;
const STATES = ['', 'ACTIVE', 'TODO', 'TRANSITION', 'PROPOSED', 'ERROR'];

interface Filters { q: string; state: string; alive: string; available: string; role: string; bootenv: string }

export function Nodes() {
  const [filters, setFilters] = useState<Filters>({ q: '', state: '', alive: '', available: '', role: '', bootenv: '' });
  const [typed, setTyped] = useState('');
  const [total, setTotal] = useState<number | null>(null);
  const [pages, setPages] = useState<Map<number, NodeRow[]>>(new Map());
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [range, setRange] = useState({ first: 0, last: 40 });
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>('');
  const loading = useRef(new Set<number>());
  const generation = useRef(0);
  const scroller = useRef<HTMLDivElement>(null);
  const bootenvs = useAsync((s) => list<{ name: string }>('/api/v1/bootenvs', { limit: 1000 }, s).then((p) => p.rows.map((b) => b.name)), []);

  // Typing waits 250 ms before it searches.
  useEffect(() => { const t = setTimeout(() => setFilters((f) => (f.q === typed ? f : { ...f, q: typed })), 250); return () => clearTimeout(t); }, [typed]);

  const params = useMemo(() => ({
    q: filters.q || undefined, state: filters.state || undefined, alive: filters.alive || undefined,
    available: filters.available || undefined, role: filters.role || undefined, bootenv: filters.bootenv || undefined,
  }), [filters]);

  const fetchPage = useCallback(async (p: number, gen: number) => {
    if (loading.current.has(p)) return;
    loading.current.add(p);
    try {
      const r = await list<NodeRow>('/api/v1/nodes', { ...params, limit: PAGE, offset: p * PAGE });
      if (gen !== generation.current) return;
      setTotal(r.total);
      setPages((old) => new Map(old).set(p, r.rows));
      setError(undefined);
    } catch (e) {
      if (gen === generation.current) setError((e as Error).message);
    } finally { loading.current.delete(p); }
  }, [params]);

  const visiblePages = useCallback(() => {
    const a = Math.floor(range.first / PAGE), b = Math.floor(range.last / PAGE);
    return b >= a ? Array.from({ length: b - a + 1 }, (_, i) => a + i) : [a];
  }, [range]);

  // New filters: start over.
  useEffect(() => {
    generation.current++;
    loading.current.clear();
    setPages(new Map());
    setTotal(null);
    scroller.current?.scrollTo({ top: 0 });
    setRange({ first: 0, last: 40 });
    void fetchPage(0, generation.current);
  }, [fetchPage]);

  // Pages coming into view.
  useEffect(() => { for (const p of visiblePages()) if (!pages.has(p)) void fetchPage(p, generation.current); }, [range, pages, visiblePages, fetchPage]);

  // Live: at most one reload of the pages on screen every 1.5 s, however many events arrive.
  const refresh = useCoalesced(() => {
    const gen = generation.current;
    const visible = visiblePages();
    // Pages off screen are dropped, so they are fetched fresh when scrolled back to.
    setPages((old) => new Map([...old].filter(([p]) => visible.includes(p))));
    for (const p of visible) { loading.current.delete(p); void fetchPage(p, gen); }
  }, 1500);
  const live = useEvents({ type: 'node,noderole.state' }, refresh);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const first = Math.max(0, Math.floor(el.scrollTop / ROW) - 10);
    const last = Math.floor((el.scrollTop + el.clientHeight) / ROW) + 10;
    setRange((r) => (r.first === first && r.last === last ? r : { first, last }));
  };

  const rows: Array<{ i: number; n?: NodeRow }> = [];
  const count = total ?? 0;
  for (let i = range.first; i <= Math.min(range.last, count - 1); i++) rows.push({ i, n: pages.get(Math.floor(i / PAGE))?.[i % PAGE] });

  const toggle = (id: number) => setSelected((s) => { const n = new Set(s); if (n.has(id)) n.delete(id); else n.add(id); return n; });
  const loaded = rows.filter((r) => r.n).map((r) => r.n!.id);
  const allLoadedSelected = loaded.length > 0 && loaded.every((id) => selected.has(id));

  const bulk = async (what: string, patch: NodePatch | null, power?: string) => {
    const ids = [...selected];
    setStatus(`${what}: 0 of ${ids.length}…`);
    let done = 0; const failed: string[] = [];
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          if (patch) await api('PATCH', `/api/v1/nodes/${id}`, patch);
          else await api('POST', `/api/v1/nodes/${id}/power/actions`, { action: power });
        } catch (e) { failed.push(`node ${id}: ${e instanceof ApiError ? e.message : (e as Error).message}`); }
        done++;
        if (done % 20 === 0) setStatus(`${what}: ${done} of ${ids.length}…`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, ids.length) }, worker));
    setStatus(`${what}: ${ids.length - failed.length} of ${ids.length} done${failed.length ? `; ${failed.length} failed — ${failed.slice(0, 3).join('; ')}` : ''}`);
    refresh();
  };
  const [bulkBootenv, setBulkBootenv] = useState('');

  return (
    <section aria-labelledby="nodes-title" className="page">
      <div className="page-head">
        <h1 id="nodes-title">Nodes</h1>
        <span className="muted" aria-live="polite">{total === null ? 'loading…' : `${total.toLocaleString()} node${total === 1 ? '' : 's'}`}</span>
        <LiveDot live={live} />
      </div>
      <form className="filters" role="search" aria-label="Filter nodes" onSubmit={(e) => { e.preventDefault(); setFilters((f) => ({ ...f, q: typed })); }}>
        <div className="grow">
          <label htmlFor="node-search">Search name, MAC or IP</label>
          <input id="node-search" type="search" placeholder="e.g. sim-00042, 52:54:00:12, 10.0.0.7" value={typed} onChange={(e) => setTyped(e.target.value)} />
        </div>
        <div>
          <label htmlFor="node-state">State</label>
          <select id="node-state" value={filters.state} onChange={(e) => setFilters({ ...filters, state: e.target.value })}>
            {STATES.map((s) => <option key={s} value={s}>{s || 'any'}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="node-alive">Alive</label>
          <select id="node-alive" value={filters.alive} onChange={(e) => setFilters({ ...filters, alive: e.target.value })}>
            <option value="">any</option><option value="true">alive</option><option value="false">dead</option>
          </select>
        </div>
        <div>
          <label htmlFor="node-available">Available</label>
          <select id="node-available" value={filters.available} onChange={(e) => setFilters({ ...filters, available: e.target.value })}>
            <option value="">any</option><option value="true">available</option><option value="false">reserved</option>
          </select>
        </div>
        <div>
          <label htmlFor="node-role">Role</label>
          <input id="node-role" placeholder="role name" value={filters.role} onChange={(e) => setFilters({ ...filters, role: e.target.value.trim() })} />
        </div>
        <div>
          <label htmlFor="node-bootenv">Bootenv</label>
          <select id="node-bootenv" value={filters.bootenv} onChange={(e) => setFilters({ ...filters, bootenv: e.target.value })}>
            <option value="">any</option>
            {(bootenvs.data ?? []).map((b) => <option key={b} value={b}>{b}</option>)}
          </select>
        </div>
      </form>

      <div className="bulk" role="group" aria-label="Bulk actions on selected nodes">
        <span><strong>{selected.size}</strong> selected</span>
        <button type="button" disabled={!selected.size} onClick={() => bulk('available on', { available: true })}>Make available</button>
        <button type="button" disabled={!selected.size} onClick={() => bulk('available off', { available: false })}>Make unavailable</button>
        <label htmlFor="bulk-bootenv" className="inline">Bootenv</label>
        <select id="bulk-bootenv" value={bulkBootenv} onChange={(e) => setBulkBootenv(e.target.value)}>
          <option value="">choose…</option>
          {(bootenvs.data ?? []).map((b) => <option key={b} value={b}>{b}</option>)}
        </select>
        <button type="button" disabled={!selected.size || !bulkBootenv} onClick={() => bulk(`bootenv ${bulkBootenv}`, { bootenv: bulkBootenv })}>Set bootenv</button>
        <button type="button" disabled={!selected.size} onClick={() => bulk('power on', null, 'on')}>Power on</button>
        <button type="button" disabled={!selected.size} onClick={() => bulk('power off', null, 'off')}>Power off</button>
        {selected.size > 0 && <button type="button" onClick={() => setSelected(new Set())}>Clear selection</button>}
      </div>
      {status && <p className="status" role="status">{status}</p>}
      {error && <p className="error" role="alert">{error}</p>}

      <div className="vtable" role="table" aria-label="Nodes" aria-rowcount={count + 1}>
        <div className="vrow vhead" role="row" aria-rowindex={1}>
          <span role="columnheader" className="c-sel">
            <input type="checkbox" aria-label="Select the nodes on screen" checked={allLoadedSelected}
              onChange={() => setSelected((s) => { const n = new Set(s); for (const id of loaded) { if (allLoadedSelected) n.delete(id); else n.add(id); } return n; })} />
          </span>
          <span role="columnheader" className="c-name">Name</span>
          <span role="columnheader" className="c-state">State</span>
          <span role="columnheader" className="c-flags">Alive · Available</span>
          <span role="columnheader" className="c-boot">Bootenv</span>
          <span role="columnheader" className="c-dep">Deployment</span>
          <span role="columnheader" className="c-mac">MAC</span>
        </div>
        <div className="vbody" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label="Node rows, scroll for more">
          <div style={{ height: count * ROW, position: 'relative' }}>
            {total === 0 && <p className="empty">No nodes match.</p>}
            {rows.map(({ i, n }) => (
              <div key={i} className={`vrow${n && selected.has(n.id) ? ' selected' : ''}`} role="row" aria-rowindex={i + 2} style={{ top: i * ROW }}>
                {n ? <>
                  <span role="cell" className="c-sel"><input type="checkbox" aria-label={`Select ${n.name}`} checked={selected.has(n.id)} onChange={() => toggle(n.id)} /></span>
                  <span role="cell" className="c-name"><Link to={`/nodes/${encodeURIComponent(n.name)}`}>{n.name}</Link></span>
                  <span role="cell" className="c-state"><StateBadge state={n.state} /></span>
                  <span role="cell" className="c-flags"><Flag on={n.alive} yes="alive" no="dead" /> <Flag on={n.available} yes="available" no="reserved" /></span>
                  <span role="cell" className="c-boot">{n.bootenv}</span>
                  <span role="cell" className="c-dep">{n.deployment}</span>
                  <span role="cell" className="c-mac mono">{n.macs[0] ?? '—'}{n.macs.length > 1 ? ` +${n.macs.length - 1}` : ''}</span>
                </> : <span role="cell" className="placeholder">…</span>}
              </div>
            ))}
          </div>
        </div>
      </div>
    </section>
  );
}
