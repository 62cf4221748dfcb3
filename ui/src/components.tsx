// Shared pieces: state badges, links that use the client router, messages.
import type { ReactNode } from 'react';
import { createContext, useContext } from 'react';

export const Nav = createContext<(to: string) => void>(() => {});

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const go = useContext(Nav);
  return (
    <a href={to} className={className} onClick={(e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      go(to);
    }}>{children}</a>
  );
}

/** Noderole / node state: the colour is never the only signal, the word is always shown. */
export function StateBadge({ state, title }: { state: string; title?: string }) {
  return <span className={`badge state-${state.toLowerCase()}`} title={title}>{state}</span>;
}

export function Flag({ on, yes, no }: { on: boolean; yes: string; no: string }) {
  return <span className={`badge ${on ? 'flag-on' : 'flag-off'}`}>{on ? yes : no}</span>;
}

export function ErrorText({ error }: { error?: string }) {
  return error ? <p className="error" role="alert">{error}</p> : null;
}

export function LiveDot({ live }: { live: boolean }) {
  return <span className={`live ${live ? 'on' : 'off'}`} role="status" aria-live="polite">{live ? 'live' : 'reconnecting…'}</span>;
}

/**
 * Why a noderole is BLOCKED, in words: `{kind, noderole}` from the model (parent-not-active, error).
 * `name` turns a noderole id into "role on node" when the caller knows it.
 */
export function blockedText(b: unknown, name?: (id: number) => string | undefined): string {
  if (!b) return '';
  if (typeof b === 'string') return b;
  const o = b as { kind?: string; noderole?: number };
  const who = o.noderole !== undefined ? (name?.(o.noderole) ?? `noderole ${o.noderole}`) : 'a parent';
  if (o.kind === 'parent-not-active') return `waits for ${who} to be ACTIVE`;
  if (o.kind === 'error') return `${who} failed (ERROR)`;
  return JSON.stringify(b);
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}
