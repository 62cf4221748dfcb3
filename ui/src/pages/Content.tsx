// Content packs: what is installed and what each provides; import by uploading a bundle — a JSON
// bundle, or a pack.yaml that holds everything inline (a pack with separate files is imported with
// the CLI, which reads the directory).
import { useState } from 'react';
import { parse } from 'yaml';
import { api, list, ApiError } from '../api';
import { useAsync } from '../hooks';

interface Pack { name: string; version: string; description: string; digest: string; imported_at: string; manifest?: Record<string, any> }
const KINDS = ['roles', 'attribs', 'profiles', 'bootenvs', 'networks'];

export function Content() {
  const packs = useAsync((s) => list<Pack>('/api/v1/content-packs', { limit: 1000 }, s).then((p) => p.rows), []);
  const [detail, setDetail] = useState<Record<string, Pack>>({});
  const [msg, setMsg] = useState<string>();
  const [err, setErr] = useState<string>();
  const [busy, setBusy] = useState(false);

  const upload = async (file: File) => {
    setMsg(undefined); setErr(undefined); setBusy(true);
    try {
      if (file.size > 16 * 1024 * 1024) throw new Error(`${file.name} is ${Math.round(file.size / 1048576)} MiB; the limit is 16 MiB`);
      const text = await file.text();
      let body: unknown;
      try { body = /\.json$/i.test(file.name) ? JSON.parse(text) : parse(text); } catch (e) { throw new Error(`${file.name} is not valid ${/\.json$/i.test(file.name) ? 'JSON' : 'YAML'}: ${(e as Error).message}`); }
      const r = await api<{ name: string; version: string; changed: boolean; roles?: number; bootenvs?: number }>('POST', '/api/v1/content-packs', body);
      setMsg(r.changed ? `Imported ${r.name} ${r.version}.` : `${r.name} ${r.version} is already installed, unchanged.`);
      packs.reload();
    } catch (e) { setErr(e instanceof ApiError ? `Import refused: ${e.message}` : (e as Error).message); } finally { setBusy(false); }
  };

  return (
    <section className="page" aria-labelledby="cp-title">
      <div className="page-head"><h1 id="cp-title">Content packs</h1></div>
      <div className="card">
        <h2>Import</h2>
        <label htmlFor="pack-file">Pack bundle (.json, or a self-contained pack.yaml)</label>
        <input id="pack-file" type="file" accept=".json,.yaml,.yml,application/json" disabled={busy}
          onChange={(e) => { const f = e.target.files?.[0]; if (f) void upload(f); e.target.value = ''; }} />
        {msg && <p className="status" role="status">{msg}</p>}
        {err && <p className="error" role="alert">{err}</p>}
      </div>
      <div className="card">
        <h2>Installed</h2>
        {packs.error && <p className="error" role="alert">{packs.error}</p>}
        {packs.data?.length ? (
          <div className="scroll-x"><table>
            <thead><tr><th scope="col">Name</th><th scope="col">Version</th><th scope="col">Description</th><th scope="col">Imported</th><th scope="col">Provides</th></tr></thead>
            <tbody>{packs.data.map((p) => {
              const d = detail[p.name];
              return (
                <tr key={p.name}>
                  <td><strong>{p.name}</strong></td><td>{p.version}</td><td>{p.description}</td><td>{new Date(p.imported_at).toLocaleString()}</td>
                  <td>{d?.manifest ? (
                    <ul className="plain small">{KINDS.filter((k) => d.manifest![k]?.length).map((k) => (
                      <li key={k}><strong>{d.manifest![k].length} {k}</strong>: {d.manifest![k].map((x: { name: string }) => x.name).join(', ')}</li>
                    ))}</ul>
                  ) : <button type="button" onClick={async () => setDetail({ ...detail, [p.name]: await api<Pack>('GET', `/api/v1/content-packs/${encodeURIComponent(p.name)}`) })}>Show what it provides</button>}</td>
                </tr>
              );
            })}</tbody>
          </table></div>
        ) : <p className="muted">No content packs.</p>}
      </div>
    </section>
  );
}
