// A deployment role's attribs, edited in its proposed data at each attrib's map path and checked
// against the attrib's JSON schema (type, enum, bounds, pattern) before the PATCH; the server
// applies them at commit.
import { useState } from 'react';
import { api, list, ApiError } from '../api';
import { useAsync } from '../hooks';
import type { AttribRow, DataPatch, DeploymentRoleRow } from '../types';

function getAt(data: Record<string, unknown>, map: string): unknown {
  let v: unknown = data;
  for (const k of map.split('/')) { if (v && typeof v === 'object') v = (v as Record<string, unknown>)[k]; else return undefined; }
  return v;
}
function setAt(data: Record<string, unknown>, map: string, value: unknown): Record<string, unknown> {
  const [k, ...rest] = map.split('/');
  const copy = { ...data };
  if (!rest.length) { if (value === undefined) delete copy[k]; else copy[k] = value; return copy; }
  copy[k] = setAt((data[k] && typeof data[k] === 'object' ? data[k] : {}) as Record<string, unknown>, rest.join('/'), value);
  return copy;
}

/** The value typed in `text` for `schema`, or an error naming what is wrong. */
export function parseValue(text: string, schema: Record<string, any>): { value?: unknown; error?: string } {
  const t = schema?.type;
  let v: unknown;
  if (text.trim() === '') return { value: undefined };
  if (t === 'string') v = text;
  else if (t === 'integer' || t === 'number') { v = Number(text); if (Number.isNaN(v) || (t === 'integer' && !Number.isInteger(v))) return { error: `must be ${t === 'integer' ? 'an integer' : 'a number'}` }; }
  else if (t === 'boolean') { if (text !== 'true' && text !== 'false') return { error: 'must be true or false' }; v = text === 'true'; }
  else { try { v = JSON.parse(text); } catch { return { error: 'must be JSON' }; } }
  if (schema?.enum && !schema.enum.some((e: unknown) => JSON.stringify(e) === JSON.stringify(v))) return { error: `must be one of ${schema.enum.map((e: unknown) => JSON.stringify(e)).join(', ')}` };
  if (typeof v === 'number' && schema?.minimum !== undefined && v < schema.minimum) return { error: `must be ≥ ${schema.minimum}` };
  if (typeof v === 'number' && schema?.maximum !== undefined && v > schema.maximum) return { error: `must be ≤ ${schema.maximum}` };
  if (typeof v === 'string' && schema?.pattern && !new RegExp(schema.pattern).test(v)) return { error: `must match ${schema.pattern}` };
  if (typeof v === 'string' && schema?.minLength !== undefined && v.length < schema.minLength) return { error: `must have at least ${schema.minLength} characters` };
  return { value: v };
}

const show = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function AttribEditor({ dr, onSaved }: { dr: DeploymentRoleRow; onSaved: () => void }) {
  const attribs = useAsync((s) => list<AttribRow>('/api/v1/attribs', { role: dr.role, limit: 1000 }, s).then((p) => p.rows), [dr.role]);
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [msg, setMsg] = useState<string>();
  if (!attribs.data) return null;
  if (!attribs.data.length) return <p className="muted small">{dr.role}: no attribs to set.</p>;
  const base = `dr-${dr.id}`;
  return (
    <form className="attribs" aria-label={`Attribs of ${dr.role}`} onSubmit={async (e) => {
      e.preventDefault();
      let data = dr.proposed_data ?? {};
      const errs: Record<string, string> = {};
      for (const a of attribs.data!) {
        if (!(a.name in draft)) continue;
        const r = parseValue(draft[a.name], a.schema ?? {});
        if (r.error) errs[a.name] = `${a.name} ${r.error}`; else data = setAt(data, a.map, r.value);
      }
      setErrors(errs);
      if (Object.keys(errs).length) { setMsg('Not saved: fix the marked fields.'); return; }
      try {
        const body: DataPatch = { proposed_data: data };
        await api('PATCH', `/api/v1/deployment-roles/${dr.id}`, body);
        setDraft({}); setMsg('Saved to proposed data; commit the deployment to apply.'); onSaved();
      } catch (x) { setMsg(`Not saved: ${x instanceof ApiError ? x.message : (x as Error).message}`); }
    }}>
      <h3>{dr.role}</h3>
      {attribs.data.map((a) => {
        const id = `${base}-${a.name}`;
        const current = getAt(dr.proposed_data ?? {}, a.map);
        const t = a.schema?.type ?? 'json';
        return (
          <div key={a.name} className="attrib-row">
            <label htmlFor={id}>{a.name} <span className="muted small">({t}{a.secret ? ', secret' : ''})</span></label>
            <input id={id} type={a.secret ? 'password' : 'text'} aria-invalid={!!errors[a.name]} aria-describedby={errors[a.name] ? `${id}-err` : undefined}
              placeholder={a.description || a.map} value={draft[a.name] ?? show(current)} onChange={(e) => setDraft({ ...draft, [a.name]: e.target.value })} />
            {errors[a.name] && <span id={`${id}-err`} className="error small">{errors[a.name]}</span>}
          </div>
        );
      })}
      <button type="submit" disabled={!Object.keys(draft).length}>Save {dr.role} attribs</button>
      {msg && <span className="status small" role="status"> {msg}</span>}
    </form>
  );
}
