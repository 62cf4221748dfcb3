import { useState } from 'react';
import { api, ApiError, type Session } from '../api';
import type { LoginBody } from '../types';

export function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [user, setUser] = useState('admin');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <main className="center">
      <form className="card narrow" aria-labelledby="login-title" onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true); setError(undefined);
        try {
          const body: LoginBody = { user, password };
          const r = await api<{ user: string; token: string }>('POST', '/api/v1/login', body);
          onLogin({ user: r.user, token: r.token });
        } catch (err) {
          setError(err instanceof ApiError ? err.message : `cannot reach the server: ${(err as Error).message}`);
        } finally { setBusy(false); }
      }}>
        <h1 id="login-title">Fulcrum</h1>
        <p className="muted">Log in with a Fulcrum user (the same users and capabilities as the API and CLI).</p>
        <label htmlFor="login-user">User</label>
        <input id="login-user" name="user" autoComplete="username" required value={user} onChange={(e) => setUser(e.target.value)} />
        <label htmlFor="login-password">Password</label>
        <input id="login-password" name="password" type="password" autoComplete="current-password" required autoFocus
          value={password} onChange={(e) => setPassword(e.target.value)} />
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit" className="primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
      </form>
    </main>
  );
}
