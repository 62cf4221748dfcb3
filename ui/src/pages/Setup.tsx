// First-run setup wizard: shown while the system is empty (GET /api/v1/setup says so).
// Three steps, then one POST /api/v1/setup that stores everything or nothing.
import { useState } from 'react';
import { api, ApiError, type Session } from '../api';
import type { SetupBody } from '../types';

const STEPS = ['Setup code', 'Admin network', 'Domain', 'Administrator'];

export function Setup({ onDone }: { onDone: (s: Session) => void }) {
  const [step, setStep] = useState(0);
  const [code, setCode] = useState('');
  const [cidr, setCidr] = useState('');
  const [gateway, setGateway] = useState('');
  const [poolFirst, setPoolFirst] = useState('');
  const [poolLast, setPoolLast] = useState('');
  const [domain, setDomain] = useState('');
  const [pw, setPw] = useState('');
  const [pw2, setPw2] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const next = (e: React.FormEvent) => {
    e.preventDefault();
    setError(undefined);
    if (step === 1 && (!!poolFirst !== !!poolLast)) return setError('Give both ends of the pool, or leave both empty for the default.');
    if (step < 3) return setStep(step + 1);
    if (pw !== pw2) return setError('The two passwords differ.');
    void submit();
  };
  const submit = async () => {
    setBusy(true);
    try {
      const body: SetupBody = {
        setup_code: code, admin_password: pw, domain: domain.trim().toLowerCase(),
        network: { cidr: cidr.trim(), gateway: gateway.trim(), ...(poolFirst ? { pool_first: poolFirst.trim(), pool_last: poolLast.trim() } : {}) },
      };
      const r = await api<{ user: string; token: string }>('POST', '/api/v1/setup', body);
      onDone({ user: r.user, token: r.token });
    } catch (err) {
      const f = err instanceof ApiError ? err.field ?? '' : '';
      setError(err instanceof ApiError ? err.message : `cannot reach the server: ${(err as Error).message}`);
      if (f.startsWith('setup_code')) setStep(0);
      else if (f.startsWith('network')) setStep(1);
      else if (f.startsWith('domain')) setStep(2);
    } finally { setBusy(false); }
  };

  return (
    <main className="center">
      <form className="card wizard" onSubmit={next} aria-labelledby="setup-title">
        <h1 id="setup-title">Set up Fulcrum</h1>
        <ol className="steps" aria-label="Setup steps">
          {STEPS.map((s, i) => <li key={s} aria-current={i === step ? 'step' : undefined} className={i < step ? 'done' : ''}>{s}</li>)}
        </ol>
        {step === 0 && (
          <fieldset>
            <legend>Setup code</legend>
            <p className="muted">The admin password <code>fulcrum server</code> printed when it first started (or <code>FULCRUM_ADMIN_PASSWORD</code>). It proves you run this server.</p>
            <label htmlFor="setup-code">Setup code</label>
            <input id="setup-code" type="password" autoComplete="off" required autoFocus value={code} onChange={(e) => setCode(e.target.value)} />
          </fieldset>
        )}
        {step === 1 && (
          <fieldset>
            <legend>Admin network</legend>
            <p className="muted">The network nodes boot on. It becomes the DHCP subnet <code>admin</code>.</p>
            <label htmlFor="setup-cidr">Network (CIDR)</label>
            <input id="setup-cidr" required placeholder="192.168.124.0/24" autoFocus value={cidr} onChange={(e) => setCidr(e.target.value)} />
            <label htmlFor="setup-gateway">Gateway</label>
            <input id="setup-gateway" required placeholder="192.168.124.1" value={gateway} onChange={(e) => setGateway(e.target.value)} />
            <div className="row2">
              <div><label htmlFor="setup-pool-first">DHCP pool from (optional)</label>
                <input id="setup-pool-first" placeholder="default: upper half" value={poolFirst} onChange={(e) => setPoolFirst(e.target.value)} /></div>
              <div><label htmlFor="setup-pool-last">to</label>
                <input id="setup-pool-last" value={poolLast} onChange={(e) => setPoolLast(e.target.value)} /></div>
            </div>
          </fieldset>
        )}
        {step === 2 && (
          <fieldset>
            <legend>Domain</legend>
            <label htmlFor="setup-domain">DNS domain of the cluster</label>
            <input id="setup-domain" required placeholder="cluster.example.com" autoFocus value={domain} onChange={(e) => setDomain(e.target.value)} />
          </fieldset>
        )}
        {step === 3 && (
          <fieldset>
            <legend>Administrator</legend>
            <p className="muted">The new password of the user <code>admin</code> (at least 10 characters). The setup code stops working.</p>
            <label htmlFor="setup-pw">New admin password</label>
            <input id="setup-pw" type="password" autoComplete="new-password" minLength={10} required autoFocus value={pw} onChange={(e) => setPw(e.target.value)} />
            <label htmlFor="setup-pw2">Repeat it</label>
            <input id="setup-pw2" type="password" autoComplete="new-password" minLength={10} required value={pw2} onChange={(e) => setPw2(e.target.value)} />
          </fieldset>
        )}
        {error && <p className="error" role="alert">{error}</p>}
        <div className="actions">
          {step > 0 && <button type="button" onClick={() => { setError(undefined); setStep(step - 1); }}>Back</button>}
          <button type="submit" className="primary" disabled={busy}>{step < 3 ? 'Next' : busy ? 'Setting up…' : 'Finish setup'}</button>
        </div>
      </form>
    </main>
  );
}
