// The UI's only door to the server: JSON requests with the session's bearer token, and the live
// event stream. The token lives in sessionStorage (docs/decisions/0009-web-ui-stack.md): it is the
// same bearer token the API and CLI use, it is gone when the tab closes, and because nothing is
// sent automatically by the browser there is no cross-site request forgery to defend against.
import type { EventRow } from './types';

const KEY = 'fulcrum.session';
export interface Session { user: string; token: string }

export function loadSession(): Session | null {
  try { return JSON.parse(sessionStorage.getItem(KEY) ?? 'null'); } catch { return null; }
}
export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s)); else sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event('fulcrum-session'));
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) { super(message); }
}

export interface Page<T> { rows: T[]; total: number }

async function request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  const s = loadSession();
  const res = await fetch(path, {
    method, signal,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(s ? { authorization: `Bearer ${s.token}` } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 && s && !path.endsWith('/login')) saveSession(null);
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    let field: string | undefined;
    try { const j = await res.json(); msg = j.message ?? msg; field = j.field; } catch { /* not JSON */ }
    throw new ApiError(res.status, msg, field);
  }
  return res;
}

export async function api<T = any>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await request(method, path, body, signal);
  return res.status === 204 ? (undefined as T) : res.json();
}

export async function list<T>(path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal): Promise<Page<T>> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const res = await request('GET', `${path}${q.size ? `?${q}` : ''}`, undefined, signal);
  return { rows: await res.json(), total: Number(res.headers.get('x-total-count') ?? 0) };
}

/** Every row of a collection, 1000 at a time, up to `max`. */
export async function listAll<T>(path: string, params: Record<string, string | number | undefined> = {}, max = 10000): Promise<T[]> {
  const out: T[] = [];
  for (let offset = 0; offset < max; offset += 1000) {
    const p = await list<T>(path, { ...params, limit: 1000, offset });
    out.push(...p.rows);
    if (p.rows.length < 1000 || out.length >= p.total) break;
  }
  return out;
}

export interface StreamFilter { type?: string; node?: string | number; deployment?: string | number; object_kind?: string }

/**
 * The live event stream (GET /api/v1/events, text/event-stream). EventSource cannot send an
 * Authorization header, so this reads the stream with fetch. On a drop it reconnects after a
 * growing pause (1 s … 15 s) and resumes from the last event id it saw, so nothing is missed.
 */
export function subscribe(filter: StreamFilter, onEvent: (e: EventRow) => void, onState?: (live: boolean) => void): () => void {
  let stopped = false;
  let last: number | undefined;
  let ctrl: AbortController | undefined;
  let pause = 1000;
  const run = async () => {
    while (!stopped) {
      ctrl = new AbortController();
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== '') q.set(k, String(v));
      if (last !== undefined) q.set('since', String(last));
      try {
        const s = loadSession();
        const res = await fetch(`/api/v1/events?${q}`, { headers: { accept: 'text/event-stream', ...(s ? { authorization: `Bearer ${s.token}` } : {}) }, signal: ctrl.signal });
        if (res.status === 401) { saveSession(null); return; }
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        onState?.(true);
        pause = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (!data) continue;
            try { const e = JSON.parse(data) as EventRow; last = e.id; onEvent(e); } catch { /* a partial or foreign frame */ }
          }
        }
      } catch { /* dropped or aborted */ }
      onState?.(false);
      if (stopped) return;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 15000);
    }
  };
  void run();
  return () => { stopped = true; ctrl?.abort(); };
}
