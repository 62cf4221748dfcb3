// The annealer: overall progress, errors (log + Retry), running jobs with a live log tail, and what
// is queued — from GET /api/v1/anneal, reloaded at most once a second while events arrive.
import { useState } from 'react';
import { api, list, ApiError } from '../api';
import { useAsync, useCoalesced, useEvents } from '../hooks';
import { Link, LiveDot, StateBadge } from '../components';
import type { AnnealSummary, NodeRoleRow } from '../types';

export function Annealer() {
  const sum = useAsync((s) => api<AnnealSummary>('GET', '/api/v1/anneal', undefined, s), []);
  const queued = useAsync((s) => list<NodeRoleRow>('/api/v1/noderoles', { state: 'TODO', limit: 50 }, s), []);
  const [tails, setTails] = useState<Record<number, string>>({});
  const [msg, setMsg] = useState<string>();
  const reload = useCoalesced(() => { sum.reload(); queued.reload(); }, 1000);
  const live = useEvents({ type: 'noderole.state,job,deployment' }, (e) => {
    if (e.type === 'job.log' && e.payload.noderole) setTails((t) => ({ ...t, [e.payload.noderole]: ((t[e.payload.noderole] ?? '') + e.payload.text).slice(-4000) }));
    else reload();
  });
  const s = sum.data;
  const pct = s && s.total ? Math.round((s.finished / s.total) * 100) : 0;
  return (
    <section className="page" aria-labelledby="ann-title">
      <div className="page-head"><h1 id="ann-title">Annealer</h1><LiveDot live={live} /></div>
      {sum.error && <p className="error" role="alert">{sum.error}</p>}
      {msg && <p className="status" role="status">{msg}</p>}
      {s && (
        <div className="card">
          <h2>Progress</h2>
          <progress max={s.total || 1} value={s.finished} aria-label={`${s.finished} of ${s.total} noderoles active`} />
          <p className="counts"><strong>{pct}%</strong> — {s.finished} active of {s.total};
            <span><StateBadge state="TRANSITION" /> {s.working}</span> <span><StateBadge state="TODO" /> {s.scheduled}</span>
            <span><StateBadge state="BLOCKED" /> {s.blocked}</span> <span><StateBadge state="PROPOSED" /> {s.proposed}</span>
            <span><StateBadge state="ERROR" /> {s.failed}</span></p>
        </div>
      )}
      <div className="card">
        <h2>Errors {s ? `(${s.failed})` : ''}</h2>
        {s?.errors.length ? (
          <ul className="plain errors">
            {s.errors.map((e) => (
              <li key={e.id} className="error-item" data-noderole={e.id}>
                <div className="row-head">
                  <StateBadge state="ERROR" /> <strong>{e.role}</strong> on <Link to={`/nodes/${encodeURIComponent(e.node)}`}>{e.node}</Link>
                  <span className="muted small">in {e.deployment}; {e.failures} failure{e.failures === 1 ? '' : 's'}{e.retry_at ? `, automatic retry at ${new Date(e.retry_at).toLocaleTimeString()}` : ''}</span>
                  <button type="button" className="primary" onClick={async () => {
                    setMsg(`retrying ${e.role} on ${e.node}…`);
                    try { await api('POST', `/api/v1/noderoles/${e.id}/retry`); setMsg(`retried ${e.role} on ${e.node}`); reload(); } catch (x) { setMsg(`retry failed: ${x instanceof ApiError ? x.message : (x as Error).message}`); }
                  }}>Retry</button>
                </div>
                <pre className="log" tabIndex={0} aria-label={`Log of ${e.role} on ${e.node}`}>{e.runlog || '(no log)'}</pre>
              </li>
            ))}
          </ul>
        ) : <p className="muted">No errors.</p>}
      </div>
      <div className="card">
        <h2>Running {s ? `(${s.working})` : ''}</h2>
        {s?.running.length ? (
          <ul className="plain">
            {s.running.map((j) => (
              <li key={j.id}><StateBadge state="TRANSITION" /> <strong>{j.role}</strong> on <Link to={`/nodes/${encodeURIComponent(j.node)}`}>{j.node}</Link>
                <span className="muted small"> job {j.id}, since {new Date(j.started_at).toLocaleTimeString()}</span>
                {(tails[j.noderole] || j.log) && <pre className="log tail" aria-live="off">{(j.log ?? '') + (tails[j.noderole] ?? '')}</pre>}
              </li>
            ))}
          </ul>
        ) : <p className="muted">Nothing running.</p>}
      </div>
      <div className="card">
        <h2>Queued {queued.data ? `(${queued.data.total})` : ''}</h2>
        {queued.data?.rows.length ? (
          <div className="scroll-x"><table><thead><tr><th scope="col">Role</th><th scope="col">Node</th><th scope="col">Deployment</th><th scope="col">Cohort</th></tr></thead>
            <tbody>{queued.data.rows.map((r) => <tr key={r.id}><td>{r.role}</td><td>{r.node}</td><td>{r.deployment}</td><td>{r.cohort}</td></tr>)}</tbody></table></div>
        ) : <p className="muted">Nothing queued.</p>}
      </div>
    </section>
  );
}
