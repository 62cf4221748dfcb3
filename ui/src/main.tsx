// The Fulcrum web UI: one page application served by `fulcrum server` at / (docs/ui.md).
import { StrictMode, useEffect, useState, lazy, Suspense } from 'react';
import { createRoot } from 'react-dom/client';
import { api, loadSession, saveSession, type Session } from './api';
import { usePath } from './hooks';
import { Nav, Link } from './components';
import { Login } from './pages/Login';
import { Setup } from './pages/Setup';
import { Nodes } from './pages/Nodes';
import type { SetupStatus } from './types';
import './styles.css';

// Pages other than the first one load on demand, keeping the first load small.
const NodeDetail = lazy(() => import('./pages/NodeDetail').then((m) => ({ default: m.NodeDetail })));
const Deployments = lazy(() => import('./pages/Deployments').then((m) => ({ default: m.Deployments })));
const Annealer = lazy(() => import('./pages/Annealer').then((m) => ({ default: m.Annealer })));
const Networks = lazy(() => import('./pages/Networks').then((m) => ({ default: m.Networks })));
const Content = lazy(() => import('./pages/Content').then((m) => ({ default: m.Content })));

const SECTIONS = [
  { to: '/nodes', label: 'Nodes' },
  { to: '/deployments', label: 'Deployments' },
  { to: '/annealer', label: 'Annealer' },
  { to: '/networks', label: 'Networks' },
  { to: '/content', label: 'Content packs' },
];

function App() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const [setup, setSetup] = useState<SetupStatus | null>(null);
  const [path, go] = usePath();

  useEffect(() => {
    const on = () => setSession(loadSession());
    window.addEventListener('fulcrum-session', on);
    return () => window.removeEventListener('fulcrum-session', on);
  }, []);
  // Only needed to choose between the wizard and the login page: a logged-in tab does not wait for it.
  useEffect(() => { if (!session) api<SetupStatus>('GET', '/api/v1/setup').then(setSetup, () => setSetup({ needed: false, reason: '', domain: null })); }, [session]);

  useEffect(() => {
    const section = SECTIONS.find((s) => path.startsWith(s.to));
    document.title = section ? `${section.label} · Fulcrum` : 'Fulcrum';
  }, [path]);

  if (!session && !setup) return <main className="center" aria-busy="true"><p>Loading…</p></main>;
  if (!session && setup?.needed) {
    return <Setup onDone={(s) => { setSetup({ ...setup, needed: false }); saveSession(s); go('/nodes'); }} />;
  }
  if (!session) return <Login onLogin={(s) => saveSession(s)} />;

  let page;
  const m = path.match(/^\/nodes\/([^/]+)$/);
  if (m) page = <NodeDetail nodeKey={decodeURIComponent(m[1])} />;
  else if (path.startsWith('/deployments')) page = <Deployments name={decodeURIComponent(path.split('/')[2] ?? '')} />;
  else if (path.startsWith('/annealer')) page = <Annealer />;
  else if (path.startsWith('/networks')) page = <Networks />;
  else if (path.startsWith('/content')) page = <Content />;
  else page = <Nodes />;

  return (
    <Nav.Provider value={go}>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <Link to="/nodes" className="brand">Fulcrum</Link>
        <nav aria-label="Main">
          <ul>
            {SECTIONS.map((s) => (
              <li key={s.to}><a href={s.to} aria-current={path.startsWith(s.to) || (s.to === '/nodes' && path === '/') ? 'page' : undefined}
                onClick={(e) => { if (e.button === 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); go(s.to); } }}>{s.label}</a></li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span>{session.user}</span>
          <button type="button" onClick={() => { void api('POST', '/api/v1/logout').catch(() => undefined).finally(() => saveSession(null)); }}>Log out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p aria-busy="true">Loading…</p>}>{page}</Suspense>
      </main>
    </Nav.Provider>
  );
}

createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
