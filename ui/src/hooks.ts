// Small React hooks: the client-side route, live events, and refreshes coalesced so that a burst
// of events (10,000 nodes turning ACTIVE) costs at most one reload per interval, not one per event.
import { useCallback, useEffect, useRef, useState } from 'react';
import { subscribe, type StreamFilter } from './api';
import type { EventRow } from './types';

export function usePath(): [string, (to: string) => void] {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  const go = useCallback((to: string) => {
    if (to !== location.pathname + location.search) history.pushState(null, '', to);
    setPath(location.pathname);
    window.scrollTo(0, 0);
  }, []);
  return [path, go];
}

/** Call `fn` at most once per `ms`; calls in between are folded into one trailing call. */
export function useCoalesced(fn: () => void, ms = 1000): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const state = useRef<{ timer?: number; lastRun: number }>({ lastRun: 0 });
  useEffect(() => () => window.clearTimeout(state.current.timer), []);
  return useCallback(() => {
    const s = state.current;
    if (s.timer !== undefined) return;
    const wait = Math.max(0, s.lastRun + ms - Date.now());
    s.timer = window.setTimeout(() => { s.timer = undefined; s.lastRun = Date.now(); ref.current(); }, wait);
  }, [ms]);
}

/** Subscribe to the event stream while mounted; `live` says whether the stream is connected. */
export function useEvents(filter: StreamFilter | null, onEvent: (e: EventRow) => void): boolean {
  const ref = useRef(onEvent);
  ref.current = onEvent;
  const [live, setLive] = useState(false);
  const key = JSON.stringify(filter);
  useEffect(() => {
    if (!filter) return;
    return subscribe(filter, (e) => ref.current(e), setLive);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return live;
}

export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): { data: T | undefined; error: string | undefined; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [n, setN] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    load(ctrl.signal).then((d) => { setData(d); setError(undefined); }, (e: Error) => { if (!ctrl.signal.aborted) setError(e.message); });
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return { data, error, reload: useCallback(() => setN((x) => x + 1), []) };
}
